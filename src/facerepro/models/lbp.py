"""High-dimensional LBP + PCA: the hand-crafted baseline DeepID2+ and Compact int32 compare with.

DeepID2+ (Sun, Wang, Tang, "Deeply learned face representations are sparse, selective, and
robust", CVPR 2015, Figs. 16-17) measures occlusion robustness against "high-dimensional LBP",
and Fan et al. ("Learning deep face representation", 2014, Fig. 4) report "high-dim LBP + PCA"
at 96% above 1,000 dims and 81% at 32 dims. Both mean Chen, Cao, Wen, Sun, "Blessing of
dimensionality: high-dimensional feature and its efficient compression for face verification"
(CVPR 2013): uniform LBP histograms (Ojala, Pietikainen, Maenpaa, TPAMI 2002) over a grid of
cells (Ahonen, Hadid, Pietikainen, ECCV 2004) at several image scales, concatenated into tens of
thousands of dimensions and compressed by PCA.

Chen et al. sample cells around dense landmarks of large faces; our aligned faces are small and
carry no landmarks, so the cells tile the whole face instead, at every scale of an image pyramid
and every sampling radius.

OpenCV, scikit-image and scikit-learn are imported where they are called: every job that loads
a net imports this module with the others.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

NEIGHBOURS = 8
# "nri_uniform" with P neighbours: P * (P - 1) uniform patterns with 1..P-1 ones at each
# rotation, the all-zeros and all-ones patterns, and one shared bin for every non-uniform one.
CODES = NEIGHBOURS * (NEIGHBOURS - 1) + 3
# Bounds describe()'s working memory (float64 codes of a whole chunk) on large training sets.
_CHUNK = 1024


class LBPFeatures(nn.Module):
    """Multi-scale, multi-radius uniform LBP cell histograms, square-rooted, then PCA.

    The raw vector (:meth:`describe`) concatenates, for each scale in ``scales`` and then each
    radius in ``radii``, the 59-bin histograms of the ``cell`` x ``cell`` cells in row-major
    order. Scale s resizes the H x W face to h x w = round(H s) x round(W s) (halves rounded
    up; INTER_AREA); its grid is the floor(h / cell) x floor(w / cell) cells centred in that
    image, the leftover border rows and columns being left out. So

        raw_dim = 59 * len(radii) * sum over s of floor(h / cell) * floor(w / cell)

    which is 8,378 at 56 x 48 and 35,400 at 112 x 96 with the defaults.
    """

    def __init__(self, input_size: tuple[int, int], embedding_dim: int,
                 scales: tuple[float, ...] = (1.0, 0.75, 0.5), radii: tuple[int, ...] = (1, 2),
                 cell: int = 8) -> None:
        super().__init__()
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.scales = tuple(scales)
        self.radii = tuple(radii)
        self.cell = cell
        self.embedding_dim = embedding_dim
        # per scale: resized (h, w) and the cell grid (rows, cols) centred in it
        self._grids: list[tuple[tuple[int, int], tuple[int, int]]] = []
        for scale in self.scales:
            size = tuple(int(side * scale + 0.5) for side in self.input_size)
            grid = (size[0] // cell, size[1] // cell)
            if min(grid) < 1:
                raise ValueError(f"scale {scale} makes the {self.input_size} face {size}, "
                                 f"smaller than one {cell}-pixel cell")
            self._grids.append((size, grid))
        self.raw_dim = CODES * len(self.radii) * sum(r * c for _, (r, c) in self._grids)
        self.register_buffer("mean", torch.zeros(self.raw_dim))
        self.register_buffer("basis", torch.zeros(embedding_dim, self.raw_dim))

    def describe(self, images_uint8: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) RGB faces -> float32 (N, raw_dim) L1-normalised cell histograms."""
        images = np.asarray(images_uint8)
        if images.dtype != np.uint8 or images.shape[1:] != (*self.input_size, 3):
            raise ValueError(f"expected uint8 (N, {self.input_size[0]}, {self.input_size[1]}, 3)"
                             f" faces, got {images.dtype} {images.shape}")
        out = np.empty((len(images), self.raw_dim), np.float32)
        for start in range(0, len(images), _CHUNK):
            out[start:start + _CHUNK] = self._describe_chunk(images[start:start + _CHUNK])
        return out

    def _describe_chunk(self, images: np.ndarray) -> np.ndarray:
        import cv2

        n, (h, w) = len(images), self.input_size
        # the conversion is per pixel, so one call converts the whole stack
        gray = cv2.cvtColor(np.ascontiguousarray(images).reshape(n * h, w, 3),
                            cv2.COLOR_RGB2GRAY).reshape(n, h, w)
        parts = []
        for (size, (rows, cols)) in self._grids:
            scaled = gray if size == (h, w) else np.stack(
                [cv2.resize(g, (size[1], size[0]), interpolation=cv2.INTER_AREA) for g in gray])
            top, left = (size[0] - rows * self.cell) // 2, (size[1] - cols * self.cell) // 2
            # bin of each pixel in the flattened (n, cells, CODES) histogram array, less its code
            cell_of = (np.arange(rows).repeat(self.cell)[:, None] * cols
                       + np.arange(cols).repeat(self.cell)[None, :])
            base = (np.arange(n)[:, None, None] * (rows * cols) + cell_of) * CODES
            for radius in self.radii:
                codes = self._codes(scaled, radius)
                codes = codes[:, top:top + rows * self.cell, left:left + cols * self.cell]
                counts = np.bincount((base + codes).ravel(), minlength=n * rows * cols * CODES)
                # every cell is full, so dividing by its pixel count is the L1 normalisation
                parts.append(counts.reshape(n, -1) / self.cell ** 2)
        return np.concatenate(parts, axis=1)

    @staticmethod
    def _codes(images: np.ndarray, radius: int) -> np.ndarray:
        """nri_uniform codes of uint8 (N, h, w) images, as int (N, h, w)."""
        from skimage.feature import local_binary_pattern

        n, h, w = images.shape
        # skimage samples outside the image as 0, which would give the border pixels codes of
        # an edge that is not in the face; mirroring by the radius gives them real neighbours.
        padded = np.pad(images, ((0, 0), (radius, radius), (radius, radius)), mode="reflect")
        # A pixel's neighbours lie within `radius` of it, so inside its own padded image:
        # stacking the padded images into one tall image codes them all in a single call.
        tall = padded.reshape(n * (h + 2 * radius), w + 2 * radius)
        codes = local_binary_pattern(tall, NEIGHBOURS, radius, method="nri_uniform")
        codes = codes.reshape(n, h + 2 * radius, w + 2 * radius)
        return codes[:, radius:radius + h, radius:radius + w].astype(np.intp)

    def _roots(self, pixels: np.ndarray) -> np.ndarray:
        """Preprocessed float (N, 3, H, W) -> square-rooted raw vectors (N, raw_dim).

        The square root makes the Euclidean distance between two vectors their Hellinger
        distance, the standard choice for histograms (Arandjelovic & Zisserman, "Three things
        everyone should know to improve object retrieval", CVPR 2012): without it the few large
        bins of flat skin dominate both L2 distances and the PCA variance.
        """
        # undo to_input's (x - 127.5) / 128; exact for the float32 values it produces
        images = np.clip(np.rint(pixels * 128.0 + 127.5), 0, 255).astype(np.uint8)
        return np.sqrt(self.describe(images.transpose(0, 2, 3, 1)))

    def fit(self, pixels: np.ndarray, seed: int = 0) -> LBPFeatures:
        """Fit the PCA on (N, 3, H, W) preprocessed images, as :meth:`PixelPCA.fit` takes them."""
        if self.embedding_dim > min(len(pixels), self.raw_dim):
            raise ValueError(f"embedding_dim {self.embedding_dim} > min(N={len(pixels)}, "
                             f"raw_dim={self.raw_dim}): PCA has at most that many components")
        from sklearn.decomposition import PCA

        pca = PCA(n_components=self.embedding_dim, svd_solver="randomized", random_state=seed)
        pca.fit(self._roots(np.asarray(pixels)))
        self.mean.copy_(torch.from_numpy(pca.mean_))
        self.basis.copy_(torch.from_numpy(pca.components_))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed float (B, 3, H, W) -> (B, embedding_dim), on ``x``'s device.

        The LBP codes are computed in numpy on the CPU whatever the device.
        """
        roots = self._roots(x.detach().cpu().numpy())
        return (torch.from_numpy(roots).to(x.device) - self.mean) @ self.basis.T
