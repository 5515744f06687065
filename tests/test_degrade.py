import cv2
import numpy as np
import pytest

from facerepro import degrade
from facerepro.features import View


def _faces(n=3, h=56, w=48, seed=0):
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (n * h, w, 3)).astype(np.uint8), (0, 0), 2)
    return smooth.reshape(n, h, w, 3)


def test_jpeg_round_trip_error_falls_with_quality():
    faces = _faces()
    errors = [np.abs(degrade.jpeg(faces, q).astype(int) - faces).mean() for q in (10, 50, 95)]
    assert errors[0] > errors[1] > errors[2] > 0


def test_jpeg_equals_an_independent_encode_of_each_crop():
    faces = _faces(n=2)
    out = degrade.jpeg(faces, 30)
    for face, got in zip(faces, out, strict=True):
        _, blob = cv2.imencode(".jpg", face[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 30])
        np.testing.assert_array_equal(got, cv2.imdecode(blob, cv2.IMREAD_COLOR)[:, :, ::-1])


@pytest.mark.parametrize(("fraction", "size"), [(0.25, (28, 24)), (1 / 56 / 48, (1, 1)),
                                                (1.0, (56, 48)), (1.35, (56, 48))])
def test_reduced_size_keeps_the_pixel_fraction(fraction, size):
    assert degrade.reduced_size(56, 48, fraction) == size


def test_resolution_keeps_the_size_and_removes_detail():
    faces = _faces()
    low = degrade.resolution(faces, 0.05)
    assert low.shape == faces.shape and low.dtype == np.uint8
    # a quarter of the pixels keeps more of the image than a twentieth
    assert (np.abs(degrade.resolution(faces, 0.25).astype(int) - faces).mean()
            < np.abs(low.astype(int) - faces).mean())
    np.testing.assert_array_equal(degrade.resolution(faces, 1.0), faces)


def test_a_flat_image_survives_resolution_loss():
    flat = np.full((1, 56, 48, 3), 77, np.uint8)
    np.testing.assert_array_equal(degrade.resolution(flat, 0.01), flat)


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8)])
def test_degradations_refuse_non_image_batches(bad):
    with pytest.raises(ValueError, match="uint8"):
        degrade.jpeg(bad, 50)


@pytest.mark.parametrize(("view", "name"), [
    (View(), "all"), (View("holdout"), "holdout"),
    (View(template="center_112x96"), "all~center_112x96"),
    (View(jpeg_quality=10), "all~jpeg10"), (View(resolution=0.033), "all~res0.033"),
    (View("all", "box_112x96", 20, 0.5), "all~box_112x96~jpeg20~res0.5")])
def test_view_names_round_trip(view, name):
    assert view.name == name
    assert View.parse(name) == view


def test_a_view_name_out_of_canonical_order_is_refused():
    with pytest.raises(ValueError, match="all~jpeg10~res0.5"):
        View.parse("all~res0.5~jpeg10")


def test_a_view_shows_its_degradation():
    faces = _faces()
    np.testing.assert_array_equal(View(jpeg_quality=20).show(faces), degrade.jpeg(faces, 20))
    np.testing.assert_array_equal(View().show(faces), faces)


def test_clustering_and_angular_fisher_protocols_leave_out_single_image_people(tmp_path):
    from test_protocol_kinds import save_features

    from facerepro.evaluation.analysis import angular_fisher_score
    from facerepro.evaluation.context import ProtocolContext
    from facerepro.evaluation.protocol import angular_fisher, clustering
    from facerepro.views import protocol_view

    rng = np.random.default_rng(0)
    centres = np.eye(4)
    identity = np.array(["a"] * 5 + ["b"] * 5 + ["c"] * 5 + ["lonely"])
    feats = centres[[0] * 5 + [1] * 5 + [2] * 5 + [3]] + rng.normal(0, 0.05, (16, 4))
    ids = [f"d/{p}/{i}" for i, p in enumerate(identity)]
    path = save_features(tmp_path / "f.npz", feats, ids, identity)

    def on_features(protocol: dict) -> ProtocolContext:
        return ProtocolContext(protocol, [path], tmp_path, {})

    spec = {"min_images": 2, "linkage": "average", "distance_threshold": None}
    result = clustering(on_features(spec))["cosine"]
    assert result["values"]["f_measure"] == 1.0 and result["values"]["nmi"] == pytest.approx(1.0)
    assert result["n"] == {"images": 15, "identities": 3, "clusters": 3}
    afs = angular_fisher(on_features({"min_images": 2}))["angular"]
    assert afs["values"]["afs"] == pytest.approx(angular_fisher_score(feats[:15], identity[:15]))
    assert afs["n"] == {"images": 15, "identities": 3}
    with pytest.raises(ValueError, match="lower min_images"):
        clustering(on_features({**spec, "min_images": 6}))
    assert protocol_view({"degrade": {"jpeg_quality": 10}, "template": "box_112x96"}).name == \
        "all~box_112x96~jpeg10"


def faces(n: int = 6, h: int = 55, w: int = 47) -> np.ndarray:
    # No zero pixels to begin with, so every 0 afterwards was blacked by the occluder.
    return np.random.default_rng(2).integers(1, 256, size=(n, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(("fraction", "rows"),
                         [(0.1, 6), (0.2, 11), (0.3, 17), (0.4, 22), (0.5, 28), (0.6, 33),
                          (0.7, 39), (0.0, 0), (1.0, 55)])
def test_occlude_bottom_rows(fraction, rows):
    images = faces()
    before = images.copy()
    out = degrade.occlude_bottom(images, fraction)
    np.testing.assert_array_equal(images, before)
    assert np.count_nonzero(out == 0) == 6 * rows * 47 * 3
    assert not out[:, 55 - rows:].any()
    np.testing.assert_array_equal(out[:, :55 - rows], before[:, :55 - rows])


def block_boxes(out: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    """Per image: (black pixel count, top, bottom, left, right) of the black region."""
    boxes = []
    for img in out:
        r, c = np.nonzero((img == 0).all(axis=2))
        boxes.append((len(r), r.min(), r.max() + 1, c.min(), c.max() + 1))
    return boxes


def test_occlude_blocks_square_inside_and_input_unchanged():
    images = faces(n=20)
    before = images.copy()
    out = degrade.occlude_blocks(images, size=10, seed=3)
    np.testing.assert_array_equal(images, before)
    assert np.count_nonzero(out == 0) == 20 * 100 * 3
    for count, top, bottom, left, right in block_boxes(out):
        assert count == 100 and (bottom - top, right - left) == (10, 10)
        assert 0 <= top and bottom <= 55 and 0 <= left and right <= 47
    np.testing.assert_array_equal(out[out != 0], before[out != 0])


def test_occlude_blocks_deterministic_by_seed():
    images = faces(n=20)
    a = degrade.occlude_blocks(images, size=10, seed=7)
    np.testing.assert_array_equal(a, degrade.occlude_blocks(images, size=10, seed=7))
    assert not np.array_equal(a, degrade.occlude_blocks(images, size=10, seed=8))


def test_occlude_blocks_scale_with_height():
    # 10 px on the 55-row face: 20 px on 110 rows, round(10 * 112 / 55 = 20.36) = 20 on 112.
    for h, w, side in ((110, 94, 20), (112, 96, 20), (28, 24, 5)):  # 10 * 28 / 55 = 5.09
        out = degrade.occlude_blocks(faces(n=4, h=h, w=w), size=10, seed=0)
        for count, top, bottom, left, right in block_boxes(out):
            assert count == side * side and (bottom - top, right - left) == (side, side)


def test_occlude_blocks_larger_than_face_is_clipped_to_it():
    out = degrade.occlude_blocks(faces(n=3), size=50, seed=0)  # 50 rows of the full 47-px width
    for count, top, bottom, left, right in block_boxes(out):
        assert count == 50 * 47 and (bottom - top, left, right) == (50, 0, 47)
    assert not degrade.occlude_blocks(faces(n=3), size=70, seed=0).any()
