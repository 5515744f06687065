"""High-dimensional LBP + PCA baseline: geometry, histograms, and the PCA round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from facerepro.models import to_input
from facerepro.models.lbp import CODES, LBPFeatures


def faces(n: int, size: tuple[int, int] = (56, 48), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)


# Counted by hand: size -> per-scale (h, w) -> cells per scale -> x radii x 59 codes.
@pytest.mark.parametrize("size, options, raw_dim", [
    # 56x48 -> 7x6 = 42 cells; 42x36 -> 5x4 = 20; 28x24 -> 3x3 = 9. 71 cells x 2 radii x 59.
    ((56, 48), {}, 8378),
    # 112x96 -> 14x12 = 168; 84x72 -> 10x9 = 90; 56x48 -> 7x6 = 42. 300 cells x 2 x 59.
    ((112, 96), {}, 35400),
    # 40x36 -> 6x6 = 36 cells; x0.6 -> 24x21.6, rounded to 24x22 -> 4x3 = 12. 48 x 1 x 59.
    ((40, 36), {"scales": (1.0, 0.6), "radii": (1,), "cell": 6}, 2832),
])
def test_raw_dim(size: tuple[int, int], options: dict, raw_dim: int) -> None:
    model = LBPFeatures(size, 4, **options)
    assert model.raw_dim == raw_dim
    assert model.describe(faces(2, size)).shape == (2, raw_dim)


def test_every_cell_histogram_sums_to_one() -> None:
    raw = LBPFeatures((56, 48), 4).describe(faces(3))
    # every block is a run of 59-bin cells, so the whole vector splits into cells
    cells = raw.reshape(3, -1, CODES)
    np.testing.assert_allclose(cells.sum(axis=2), 1.0, atol=1e-6)
    assert (raw >= 0).all()


def test_constant_face_is_one_code_everywhere() -> None:
    # Every neighbour equals the centre, and nri_uniform sets a bit where neighbour >= centre:
    # the all-ones pattern, whose code follows the P * (P - 1) rotated patterns with 1..P-1
    # ones and the all-zeros 0, i.e. 8 * 7 + 1 = 57. Non-zero grey, so a border padded with
    # zeros (skimage's own) would give the border pixels other codes.
    face = np.full((1, 56, 48, 3), 140, np.uint8)
    cells = LBPFeatures((56, 48), 4).describe(face).reshape(-1, CODES)
    expected = np.zeros(CODES)
    expected[57] = 1.0
    np.testing.assert_array_equal(cells, np.broadcast_to(expected, cells.shape))


def test_fit_forward_matches_sklearn_pca_of_root_histograms() -> None:
    train, test = faces(12, seed=1), faces(5, seed=2)
    model = LBPFeatures((56, 48), 4).fit(to_input(train).numpy())
    out = model(to_input(test))
    assert out.shape == (5, 4) and out.dtype == torch.float32

    # An exact PCA; the model's randomized one is exact here too, its 4 + 10 oversampled
    # directions spanning all 12 faces. Components are defined up to sign.
    pca = PCA(n_components=4, svd_solver="full").fit(np.sqrt(model.describe(train)))
    expected = (np.sqrt(model.describe(test)) - pca.mean_) @ pca.components_.T
    signs = np.sign((model.basis.numpy() * pca.components_).sum(axis=1))
    np.testing.assert_allclose(out.numpy(), expected * signs, rtol=1e-4, atol=1e-5)


def test_state_dict_round_trip() -> None:
    model = LBPFeatures((56, 48), 3).fit(to_input(faces(8)).numpy(), seed=3)
    fresh = LBPFeatures((56, 48), 3)
    x = to_input(faces(4, seed=4))
    assert not torch.equal(fresh(x), model(x))
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh(x), model(x))


@pytest.mark.parametrize("size, n, options, components", [
    ((56, 48), 5, {}, 6),                                        # more than the faces
    ((8, 8), 70, {"scales": (1.0,), "radii": (1,)}, 60),         # more than raw_dim = 59
])
def test_fit_refuses_too_many_components(size: tuple[int, int], n: int, options: dict,
                                         components: int) -> None:
    model = LBPFeatures(size, components, **options)
    with pytest.raises(ValueError, match="embedding_dim"):
        model.fit(to_input(faces(n, size)).numpy())
