"""Pixels + PCA: the no-learning baseline that calibrates how hard a dataset is."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class PixelPCA(nn.Module):
    """Project flattened, normalised pixels on the top principal components of a training set."""

    def __init__(self, input_size: tuple[int, int] = (112, 96), components: int = 150) -> None:
        super().__init__()
        dim = 3 * input_size[0] * input_size[1]
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("basis", torch.zeros(components, dim))
        self.embedding_dim = components

    def fit(self, pixels: np.ndarray, seed: int = 0) -> PixelPCA:
        """Fit on (N, 3, H, W) preprocessed images."""
        from sklearn.decomposition import PCA  # a fit's only: every net module is imported

        pca = PCA(n_components=self.embedding_dim, svd_solver="randomized", random_state=seed)
        pca.fit(pixels.reshape(len(pixels), -1))
        self.mean.copy_(torch.from_numpy(pca.mean_))
        self.basis.copy_(torch.from_numpy(pca.components_))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) - self.mean) @ self.basis.T
