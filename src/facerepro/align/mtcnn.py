"""MTCNN face and five-landmark detector (Zhang et al., 2016) in torch, batched over images.

The standard three-stage cascade with the authors' weights (:mod:`mtcnn_weights`):

1. P-Net, a fully convolutional 12x12 classifier with stride 2, runs on an image pyramid
   (scales ``12 / min_face * factor**k`` while the shorter side stays >= 12 px). Cells whose
   face probability is >= ``thresholds[0]`` become boxes; non-maximum suppression (NMS) runs
   per image and scale (IoU ``nms[0]``), then per image over all scales (``nms[1]``); each box
   is moved by its regression output and made square.
2. R-Net scores a 24x24 crop of each box: keep >= ``thresholds[1]``, NMS (``nms[2]``),
   regression, square.
3. O-Net scores a 48x48 crop: keep >= ``thresholds[2]``; its five landmarks are read in the
   box it was given, the box is regressed, then NMS with the overlap measured against the
   smaller box ("Min", ``nms[3]``), so a box inside another is dropped.

Inputs are RGB uint8, normalised as ``(x - 127.5) / 128``. Images of one size are processed
as one batch (P-Net levels are stacked; R-Net and O-Net crops of all images share batches).

Large images. An image whose longer side exceeds ``max_side`` is first shrunk to that side
(OpenCV's area average) and its faces are mapped back to the original pixels: the pyramid's
memory grows with the image's area (a 4032x3024 photo needs over a gigabyte), while the faces
a face-recognition photo is taken for are far larger than ``min_face`` times the shrink
factor (:mod:`facerepro.align.landmarks` gives the default's reasoning). The authors' cascade
has no such step (``max_side: null``).

Geometry. Inside this module a pixel (row i, column j) covers ``[j, j+1) x [i, i+1)`` ("edge
coordinates"), so a box is a continuous rectangle and its width is ``x2 - x1``. Results are
returned in the project's pixel-centre convention (:mod:`facerepro.align.transform`), i.e.
0.5 is subtracted: a box around a whole W x H image is ``(-0.5, -0.5, W - 0.5, H - 0.5)``.
O-Net's landmark outputs are fractions of its crop's extent and are mapped as such.

Resampling. Every pyramid level and crop is an exact area average (box filter) of the source
pixels under each output pixel, with zeros outside the image (the reference pads crops with
zeros too): pyramid levels by separable weight matrices, crops by a summed-area table. This
differs from the reference code (facenet-pytorch, itself a port of the authors' MATLAB) only
below a pixel: boxes stay fractional instead of being truncated to integers before cropping,
and a pyramid level of ``ceil(s * side)`` pixels covers exactly ``1 / s`` source pixels per
output pixel instead of being stretched to ``int(s * side + 1)``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facerepro.align.mtcnn_weights import checked_file

CELL, STRIDE = 12, 2          # P-Net's window and stride in pyramid pixels
# Points (crop samples) per batch of the summed-area lookups: bounds the memory of stages 2-3.
CROP_POINTS = 1 << 21


@dataclass(frozen=True)
class Settings:
    """The detector's knobs; the defaults are the authors' (``nms`` as listed above)."""

    min_face: float = 20.0
    factor: float = 0.709
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    nms: tuple[float, float, float, float] = (0.5, 0.7, 0.7, 0.7)
    batch_size: int = 16          # images per P-Net batch
    max_side: int | None = None   # longer side images are shrunk to first (None: never)

    def __post_init__(self) -> None:
        if self.max_side is not None and self.max_side < self.min_face:
            raise ValueError(f"mtcnn max_side must be >= min_face ({self.min_face} px), got "
                             f"{self.max_side}")
        if not 0 < self.factor < 1:
            raise ValueError(f"mtcnn factor must be in (0, 1), got {self.factor}")
        if self.min_face < CELL:
            raise ValueError(f"mtcnn min_face must be >= {CELL} px, got {self.min_face}")
        if len(self.thresholds) != 3 or len(self.nms) != 4:
            raise ValueError("mtcnn needs 3 thresholds and 4 nms overlaps")


@dataclass
class Faces:
    """The faces found in one image, best score first, in pixel-centre coordinates."""

    boxes: np.ndarray       # (k, 4) x1, y1, x2, y2: the box's outer edges
    scores: np.ndarray      # (k,) O-Net's face probability
    landmarks: np.ndarray   # (k, 5, 2) left eye, right eye, nose, left, right mouth corner


class PNet(nn.Module):
    """12x12 proposal net, fully convolutional: face probability and box regression per cell."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)     # face / not face
        self.conv4_2 = nn.Conv2d(32, 4, 1)     # box regression

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_1(x).softmax(1)[:, 1], self.conv4_2(x)


def _flatten(x: Tensor) -> Tensor:
    # The converted Caffe weights expect (width, height, channel) order in the dense layer.
    return x.permute(0, 3, 2, 1).flatten(1)


class RNet(nn.Module):
    """24x24 refinement net: face probability and box regression per crop."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu4(self.dense4(_flatten(self.prelu3(self.conv3(x)))))
        return self.dense5_1(x).softmax(1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """48x48 output net: face probability, box regression and five landmarks per crop."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)     # x of the five points, then their y

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu5(self.dense5(_flatten(self.prelu4(self.conv4(x)))))
        points = self.dense6_3(x).view(-1, 2, 5).transpose(1, 2)
        return self.dense6_1(x).softmax(1)[:, 1], self.dense6_2(x), points


def load_state_dict(weights_dir: str | Path, net: str) -> dict[str, Tensor]:
    """One net's state dict, from its hash-checked file."""
    return torch.load(checked_file(weights_dir, net), map_location="cpu", weights_only=True)


def pyramid_scales(height: int, width: int, min_face: float, factor: float) -> list[float]:
    """Scales at which P-Net's 12 px window sees faces of ``min_face`` px and larger."""
    scale, shorter, scales = CELL / min_face, min(height, width), []
    while shorter * scale >= CELL:
        scales.append(scale)
        scale *= factor
    return scales


def shrink(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The image with its longer side at most ``max_side`` (area average), and the (x, y)
    factors new size / old size (1, 1 when it is left as it is)."""
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image, np.ones(2)
    factor = max_side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return small, np.array([size[0] / width, size[1] / height])


def to_source(points: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(..., 2) pixel-centre points (or box edges as point pairs) of a shrunk image in the
    original's pixels: pixel ``k`` of the shrunk image spans ``[k, k+1) / factor`` there."""
    return (points + 0.5) / factors - 0.5


def area_weights(start: float, length: float, n_out: int, size: int,
                 device: torch.device | str = "cpu") -> Tensor:
    """(n_out, size) matrix averaging source pixels ``[p, p+1)`` over the ``n_out`` equal cells
    of ``[start, start + length)``; cells beyond the source get zero weight (zero padding)."""
    step = length / n_out
    lo = start + step * torch.arange(n_out, dtype=torch.float64, device=device)[:, None]
    p = torch.arange(size, dtype=torch.float64, device=device)[None]
    overlap = (torch.minimum(lo + step, p + 1) - torch.maximum(lo, p)).clamp(min=0)
    return (overlap / step).float()


def resize_area(images: Tensor, scale: float) -> Tensor:
    """(N, C, H, W) float images at ``scale``: ``ceil(H * scale) x ceil(W * scale)`` pixels,
    each the mean of the ``1 / scale`` source pixels it covers (zeros beyond the border)."""
    height, width = images.shape[-2:]
    out_h, out_w = math.ceil(height * scale), math.ceil(width * scale)
    wy = area_weights(0.0, out_h / scale, out_h, height, images.device)
    wx = area_weights(0.0, out_w / scale, out_w, width, images.device)
    return wy @ images @ wx.T


def integral_image(images: Tensor) -> Tensor:
    """(N, H+1, W+1, C) float64 summed-area table of (N, H, W, C) images: entry ``[y, x]`` is
    the sum over ``[0, x) x [0, y)``. Float64 keeps the sums exact (integers below 2**53)."""
    n, h, w, c = images.shape
    table = torch.zeros((n, h + 1, w + 1, c), dtype=torch.float64, device=images.device)
    table[:, 1:, 1:] = images.double().cumsum(1).cumsum(2)
    return table


def crop_area(table: Tensor, image: Tensor, boxes: Tensor, out_h: int, out_w: int) -> Tensor:
    """(K, C, out_h, out_w) float32 crops of the continuous ``boxes`` (K, 4, edge coordinates)
    of images ``image`` (K,), each output pixel the exact mean of the source area under it,
    zero outside the image.

    The table is the integral of the piecewise-constant image, which is bilinear inside each
    pixel, so bilinear interpolation of the table at fractional points is exact; clamping the
    points to the image makes everything outside contribute zero.
    """
    n, h1, w1, c = table.shape
    boxes = boxes.double()
    t_x = torch.linspace(0, 1, out_w + 1, dtype=torch.float64, device=table.device)
    t_y = torch.linspace(0, 1, out_h + 1, dtype=torch.float64, device=table.device)
    xs = (boxes[:, :1] + (boxes[:, 2:3] - boxes[:, :1]) * t_x).clamp(0, w1 - 1)
    ys = (boxes[:, 1:2] + (boxes[:, 3:4] - boxes[:, 1:2]) * t_y).clamp(0, h1 - 1)
    x0 = xs.floor().clamp(max=w1 - 2)
    y0 = ys.floor().clamp(max=h1 - 2)
    fx, fy = (xs - x0)[:, None, :, None], (ys - y0)[:, :, None, None]
    flat = table.view(n * h1 * w1, c)
    base = image.to(table.device)[:, None, None] * (h1 * w1)
    rows, cols = y0.long()[:, :, None] * w1, x0.long()[:, None, :]

    def at(dy: int, dx: int) -> Tensor:             # (K, out_h+1, out_w+1, C)
        index = base + rows + dy * w1 + cols + dx
        return flat.index_select(0, index.flatten()).view(*index.shape, c)

    top = at(0, 0) * (1 - fx) + at(0, 1) * fx
    bottom = at(1, 0) * (1 - fx) + at(1, 1) * fx
    s = top * (1 - fy) + bottom * fy
    sums = s[:, 1:, 1:] - s[:, :-1, 1:] - s[:, 1:, :-1] + s[:, :-1, :-1]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (out_h * out_w)
    return (sums / area[:, None, None, None]).permute(0, 3, 1, 2).float()


def box_overlap(a: Tensor, b: Tensor, mode: str = "union") -> Tensor:
    """(..., K, M) overlap of boxes a (..., K, 4) and b (..., M, 4): intersection over union
    (``union``) or over the smaller area (``min``)."""
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]))[..., :, None]
    area_b = ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]))[..., None, :]
    if mode == "union":
        denominator = area_a + area_b - inter
    elif mode == "min":
        denominator = torch.minimum(area_a, area_b)
    else:
        raise ValueError(f"unknown overlap mode {mode!r}; use 'union' or 'min'")
    return inter / denominator.clamp(min=1e-12)


def nms(boxes: Tensor, scores: Tensor, groups: Tensor, threshold: float, mode: str = "union",
        block: int = 1024) -> Tensor:
    """Greedy non-maximum suppression within each group: indices of the kept boxes, best first.

    A box is kept unless a kept box of its group with a higher score (ties: the earlier index)
    overlaps it by more than ``threshold``. Boxes are taken best first in blocks of ``block``:
    a block is first checked against the boxes kept so far, then the greedy rule inside the
    block is solved as a fixed point (``keep[i] = no kept j < i suppresses i``), exact after at
    most as many rounds as the longest suppression chain. Memory is O(block * (block + kept))
    whatever the number of boxes, and there is no per-box Python loop.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    boxes, groups = boxes[order], groups[order]
    keep = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    kept_boxes, kept_groups = boxes[:0], groups[:0]
    for start in range(0, len(order), block):
        b, g = boxes[start:start + block], groups[start:start + block]
        alive = torch.ones(len(b), dtype=torch.bool, device=boxes.device)
        if len(kept_boxes):
            hit = box_overlap(b, kept_boxes, mode) > threshold
            alive &= ~(hit & (g[:, None] == kept_groups[None])).any(1)
        # suppress[j, i]: j scores higher than i, same group, too much overlap
        suppress = box_overlap(b, b, mode) > threshold
        suppress &= (g[:, None] == g[None]) & torch.ones_like(suppress).triu(1)
        valid = alive
        while True:
            following = valid & ~(suppress & alive[:, None]).any(0)
            if torch.equal(following, alive):
                break
            alive = following
        keep[start:start + block] = alive
        kept_boxes = torch.cat([kept_boxes, b[alive]])
        kept_groups = torch.cat([kept_groups, g[alive]])
    return order[keep]


def regress(boxes: Tensor, offsets: Tensor) -> Tensor:
    """Move each edge by its offset times the box's width (x) or height (y)."""
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + offsets * size


def square(boxes: Tensor) -> Tensor:
    """The square with the same centre and the longer side."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).max(1, keepdim=True).values / 2
    return torch.cat([centre - half, centre + half], 1)


def _normalise(x: Tensor) -> Tensor:
    return (x - 127.5) * 0.0078125


@dataclass
class _Candidates:
    """Boxes (edge coordinates) still in the running, with their image and stage score."""

    boxes: Tensor
    scores: Tensor
    image: Tensor

    def take(self, index: Tensor) -> _Candidates:
        return _Candidates(self.boxes[index], self.scores[index], self.image[index])


class MTCNN:
    """The cascade with loaded weights on one device; :meth:`detect` takes a list of images."""

    def __init__(self, weights_dir: str | Path, device: torch.device | str = "cpu",
                 settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.device = torch.device(device)
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        for name, net in (("pnet", self.pnet), ("rnet", self.rnet), ("onet", self.onet)):
            net.load_state_dict(load_state_dict(weights_dir, name))
            net.eval().to(self.device)

    @torch.inference_mode()
    def detect(self, images: Sequence[np.ndarray]) -> list[Faces]:
        """Faces in each RGB uint8 (H, W, 3) image; images of equal size share batches."""
        by_size: dict[tuple, list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"image {i}: expected RGB uint8 (H, W, 3), got "
                                 f"{image.dtype} {image.shape}")
        shrunk = [shrink(image, self.settings.max_side) for image in images]
        for i, (image, _) in enumerate(shrunk):
            by_size[image.shape].append(i)
        # One set of arrays per batch, split per image at the end: many small arrays kept
        # between batches would pin the C heap under each batch's large temporaries.
        found: list[tuple[np.ndarray, ...]] = []
        step = self.settings.batch_size
        for members in by_size.values():
            for start in range(0, len(members), step):
                chunk = np.array(members[start:start + step])
                batch = torch.from_numpy(np.stack([shrunk[i][0] for i in chunk])).to(self.device)
                image, boxes, scores, points = self._detect_batch(batch)
                found.append((chunk[image], boxes, scores, points))
        if not found:
            return []
        image, boxes, scores, points = (np.concatenate(column)
                                        for column in zip(*found, strict=True))
        scale = np.array([factor for _, factor in shrunk])[image][:, None]   # (faces, 1, 2)
        boxes = to_source(boxes.reshape(-1, 2, 2), scale).reshape(-1, 4)
        points = to_source(points, scale)
        order = np.argsort(image, kind="stable")            # keeps best first per image
        cuts = np.cumsum(np.bincount(image, minlength=len(images)))[:-1]
        split = [np.split(a[order], cuts) for a in (boxes, scores, points)]
        return [Faces(*parts) for parts in zip(*split, strict=True)]

    def _detect_batch(self, batch: Tensor) -> tuple[np.ndarray, ...]:
        """All stages on (N, H, W, 3) uint8 images of one size: the image index (into the
        batch), box, score and landmarks of every face found."""
        s = self.settings
        table = integral_image(batch)
        proposals = self._propose(batch)
        refined = self._refine(table, proposals, self.rnet, 24, s.thresholds[1], s.nms[2])
        return self._output(table, refined)

    def _propose(self, batch: Tensor) -> _Candidates:
        """Stage 1: P-Net over the pyramid, NMS per scale and then per image, regressed and
        squared."""
        s, (_, height, width, _) = self.settings, batch.shape
        images = batch.permute(0, 3, 1, 2).float()
        levels, offsets = [], []
        for scale in pyramid_scales(height, width, s.min_face, s.factor):
            prob, regression = self.pnet(_normalise(resize_area(images, scale)))
            image, i, j = torch.nonzero(prob >= s.thresholds[0], as_tuple=True)
            corner = torch.stack([j, i], 1).float() * STRIDE
            level = _Candidates(torch.cat([corner, corner + CELL], 1) / scale,
                                prob[image, i, j], image)
            kept = nms(level.boxes, level.scores, level.image, s.nms[0])
            levels.append(level.take(kept))
            offsets.append(regression[image[kept], :, i[kept], j[kept]])
        if not levels:      # the image is smaller than min_face
            empty = torch.zeros((0, 4), device=self.device)
            return _Candidates(empty, empty[:, 0], empty[:, 0].long())
        merged = _Candidates(torch.cat([c.boxes for c in levels]),
                             torch.cat([c.scores for c in levels]),
                             torch.cat([c.image for c in levels]))
        kept = nms(merged.boxes, merged.scores, merged.image, s.nms[1])
        merged = merged.take(kept)
        return _Candidates(square(regress(merged.boxes, torch.cat(offsets)[kept])),
                           merged.scores, merged.image)

    def _score(self, table: Tensor, candidates: _Candidates, net: Callable, size: int
               ) -> list[Tensor]:
        """``net``'s outputs for the ``size`` x ``size`` crops of the candidates, in batches."""
        chunk = max(1, CROP_POINTS // ((size + 1) ** 2))
        outputs = []
        for start in range(0, len(candidates.boxes), chunk):
            part = slice(start, start + chunk)
            crops = crop_area(table, candidates.image[part], candidates.boxes[part], size, size)
            outputs.append(net(_normalise(crops)))
        return [torch.cat(column) for column in zip(*outputs, strict=True)]

    def _refine(self, table: Tensor, candidates: _Candidates, net: nn.Module, size: int,
                threshold: float, overlap: float) -> _Candidates:
        """Stage 2: score crops, keep the likely faces, NMS, regress, square."""
        candidates = candidates.take(self._croppable(candidates))
        if len(candidates.boxes) == 0:
            return candidates
        prob, offsets = self._score(table, candidates, net, size)
        passed = torch.nonzero(prob >= threshold).flatten()
        scored = _Candidates(candidates.boxes[passed], prob[passed], candidates.image[passed])
        kept = nms(scored.boxes, scored.scores, scored.image, overlap)
        return _Candidates(square(regress(scored.boxes[kept], offsets[passed][kept])),
                           scored.scores[kept], scored.image[kept])

    def _output(self, table: Tensor, candidates: _Candidates) -> tuple[np.ndarray, ...]:
        """Stage 3: O-Net scores, landmarks in the scored box, regression, "Min" NMS."""
        s = self.settings
        candidates = candidates.take(self._croppable(candidates))
        if len(candidates.boxes):
            prob, offsets, points = self._score(table, candidates, self.onet, 48)
            passed = torch.nonzero(prob >= s.thresholds[2]).flatten()
            boxes = candidates.boxes[passed]
            size = (boxes[:, 2:] - boxes[:, :2])[:, None]
            landmarks = boxes[:, None, :2] + points[passed] * size
            final = _Candidates(regress(boxes, offsets[passed]), prob[passed],
                                candidates.image[passed])
            kept = nms(final.boxes, final.scores, final.image, s.nms[3], mode="min")
            final, landmarks = final.take(kept), landmarks[kept]
        else:
            final, landmarks = candidates, candidates.boxes.new_zeros((0, 5, 2))
        # back to the pixel-centre convention
        return (final.image.cpu().numpy(), final.boxes.double().cpu().numpy() - 0.5,
                final.scores.double().cpu().numpy(), landmarks.double().cpu().numpy() - 0.5)

    @staticmethod
    def _croppable(candidates: _Candidates) -> Tensor:
        """Boxes of at least a pixel a side: regression can collapse a box."""
        side = (candidates.boxes[:, 2:] - candidates.boxes[:, :2]).min(1).values
        return torch.nonzero(side >= 1).flatten()
