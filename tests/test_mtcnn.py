"""MTCNN: resampling and NMS against brute force, the weights' checks, and the detector on two
real LFW photos (weights: the workflow's copy, else this test session's cache, else fetched)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from facerepro import paths
from facerepro.align import mtcnn, mtcnn_weights

ROOT = Path(__file__).resolve().parents[1]
LFW = Path(__file__).parent / "data" / "lfw" / "images"   # two real photos, tests/data/README.md


@pytest.fixture(scope="session")
def weights_dir(request: pytest.FixtureRequest) -> Path:
    workflow_copy = ROOT / Path(paths.mtcnn_weights("pnet")).parent
    if mtcnn_weights.verified(workflow_copy):
        return workflow_copy
    cache = request.config.cache.mkdir("mtcnn_weights")
    try:
        return mtcnn_weights.ensure(cache)
    except mtcnn_weights.WeightsError as error:
        pytest.fail(f"MTCNN weights are neither at {workflow_copy} (run `snakemake "
                    f"{paths.mtcnn_weights('pnet')}`) nor in the test cache {cache}, and "
                    f"fetching them failed: {error}")


@pytest.fixture(scope="session")
def detector(weights_dir: Path) -> mtcnn.MTCNN:
    return mtcnn.MTCNN(weights_dir)


@pytest.fixture(scope="session")
def lfw_photos() -> list[np.ndarray]:
    files = sorted(LFW.glob("*.jpg"))
    assert len(files) == 2, f"expected the two LFW photos in {LFW}"
    return [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]


# --- resampling ---------------------------------------------------------------------------

def test_resize_area_is_block_mean_and_matches_opencv() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (250, 250, 3)).astype(np.float32)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    half = mtcnn.resize_area(x, 0.5)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(half, image.reshape(125, 2, 125, 2, 3).mean((1, 3)), atol=1e-3)
    # 250 -> 150: a non-integer ratio, which OpenCV's INTER_AREA also averages exactly
    level = mtcnn.resize_area(x, 0.6)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(level, cv2.resize(image, (150, 150), interpolation=cv2.INTER_AREA),
                               atol=1e-2)


def test_resize_area_pads_with_zeros_past_the_border() -> None:
    x = torch.ones((1, 1, 5, 5))
    level = mtcnn.resize_area(x, 0.5)[0, 0]            # 3x3: the last row/column half outside
    assert level.shape == (3, 3)
    np.testing.assert_allclose(level[:2, :2], 1.0)
    np.testing.assert_allclose(level[2, :2], 0.5)
    np.testing.assert_allclose(level[2, 2], 0.25)


def _brute_crop(image: np.ndarray, box: tuple, size: int, sub: int = 4) -> np.ndarray:
    """Area means by supersampling: with box edges on a 1/sub grid, exact."""
    fine = np.kron(image, np.ones((sub, sub, 1)))
    pad = np.zeros((fine.shape[0] + 400 * sub, fine.shape[1] + 400 * sub, 3))
    pad[200 * sub:200 * sub + fine.shape[0], 200 * sub:200 * sub + fine.shape[1]] = fine
    x1, y1, x2, y2 = (round((v + 200) * sub) for v in box)
    region = pad[y1:y2, x1:x2]
    h, w = (y2 - y1) // size, (x2 - x1) // size
    return region.reshape(size, h, size, w, 3).mean((1, 3))


@pytest.mark.parametrize("box", [(0, 0, 24, 24), (3.25, 7.5, 51.25, 55.5),
                                 (-10.0, -6.0, 38.0, 42.0), (40.5, 30.75, 64.5, 54.75)])
def test_crop_area_is_the_exact_area_mean_with_zero_padding(box: tuple) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (50, 60, 3)).astype(np.uint8)
    table = mtcnn.integral_image(torch.from_numpy(image)[None])
    crop = mtcnn.crop_area(table, torch.tensor([0]), torch.tensor([box], dtype=torch.float32),
                           24, 24)
    np.testing.assert_allclose(crop[0].permute(1, 2, 0).numpy(),
                               _brute_crop(image.astype(float), box, 24), atol=1e-3)


def test_crop_area_picks_each_boxs_own_image() -> None:
    images = torch.stack([torch.full((8, 8, 3), v, dtype=torch.uint8) for v in (10, 200)])
    table = mtcnn.integral_image(images)
    crops = mtcnn.crop_area(table, torch.tensor([1, 0]), torch.tensor([[0, 0, 8, 8.0]] * 2), 4, 4)
    assert crops[0].unique().tolist() == [200.0] and crops[1].unique().tolist() == [10.0]


# --- NMS and box helpers --------------------------------------------------------------------

def _greedy(boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, threshold: float,
            mode: str) -> list[int]:
    """The textbook loop, one box at a time."""
    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda k: (-scores[k], k)):
        for j in kept:
            if groups[j] != groups[i]:
                continue
            lt = np.maximum(boxes[i, :2], boxes[j, :2])
            rb = np.minimum(boxes[i, 2:], boxes[j, 2:])
            inter = np.prod(np.clip(rb - lt, 0, None))
            area = [np.prod(b[2:] - b[:2]) for b in (boxes[i], boxes[j])]
            overlap = inter / (min(area) if mode == "min" else sum(area) - inter)
            if overlap > threshold:
                break
        else:
            kept.append(i)
    return kept


@pytest.mark.parametrize("mode", ["union", "min"])
@pytest.mark.parametrize("seed", range(4))
def test_nms_equals_the_greedy_loop(mode: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    corner = rng.uniform(0, 100, (n, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(5, 40, (n, 2))], 1).astype(np.float32)
    scores = rng.random(n).astype(np.float32)
    groups = rng.integers(0, 5, n)
    kept = mtcnn.nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                     torch.from_numpy(groups), 0.4, mode, block=64)
    assert kept.tolist() == _greedy(boxes, scores, groups, 0.4, mode)


def test_nms_min_mode_drops_a_box_inside_another() -> None:
    boxes = torch.tensor([[0, 0, 100, 100], [10, 10, 40, 40.0]])
    scores, groups = torch.tensor([0.9, 0.8]), torch.zeros(2, dtype=torch.long)
    assert mtcnn.nms(boxes, scores, groups, 0.7, "union").tolist() == [0, 1]
    assert mtcnn.nms(boxes, scores, groups, 0.7, "min").tolist() == [0]
    assert mtcnn.nms(boxes[:0], scores[:0], groups[:0], 0.7).numel() == 0


def test_regress_and_square() -> None:
    box = torch.tensor([[10.0, 20.0, 30.0, 60.0]])                # 20 wide, 40 high
    moved = mtcnn.regress(box, torch.tensor([[0.1, -0.1, 0.0, 0.5]]))
    np.testing.assert_allclose(moved, [[12, 16, 30, 80]])
    np.testing.assert_allclose(mtcnn.square(box), [[0, 20, 40, 60]])


def test_pyramid_covers_min_face_to_the_whole_image() -> None:
    scales = mtcnn.pyramid_scales(250, 250, 20, 0.709)
    assert scales[0] == pytest.approx(0.6)
    assert all(b / a == pytest.approx(0.709) for a, b in zip(scales, scales[1:], strict=False))
    assert 250 * scales[-1] >= 12 > 250 * scales[-1] * 0.709
    assert mtcnn.pyramid_scales(15, 300, 20, 0.709) == []      # shorter side below min_face


# --- weights ------------------------------------------------------------------------------

def test_weights_are_checked_before_loading(weights_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(mtcnn_weights.WeightsError, match="mtcnn_weights rule"):
        mtcnn_weights.checked_file(tmp_path, "pnet")
    (tmp_path / "pnet.pt").write_bytes((weights_dir / "pnet.pt").read_bytes()[:-1])
    with pytest.raises(mtcnn_weights.WeightsError, match="sha256"):
        mtcnn_weights.checked_file(tmp_path, "pnet")
    assert not mtcnn_weights.verified(tmp_path)


def test_state_dicts_fit_the_nets_exactly(weights_dir: Path) -> None:
    for name, net in (("pnet", mtcnn.PNet()), ("rnet", mtcnn.RNet()), ("onet", mtcnn.ONet())):
        state = mtcnn.load_state_dict(weights_dir, name)
        assert set(state) == set(net.state_dict())
        net.load_state_dict(state)       # strict: shapes match too


def test_shrink_and_map_back_by_hand() -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    small, factors = mtcnn.shrink(image, 200)
    assert small.shape == (150, 200, 3) and factors.tolist() == [0.5, 0.5]
    # pixel k of the half-size image covers source pixels 2k and 2k+1: its centre is 2k + 0.5
    points = np.array([[0.0, 0.0], [199.0, 149.0], [10.0, 3.0]])
    np.testing.assert_allclose(mtcnn.to_source(points, factors),
                               [[0.5, 0.5], [398.5, 298.5], [20.5, 6.5]])
    # a box around the whole small image is a box around the whole source image
    whole = np.array([[-0.5, -0.5], [199.5, 149.5]])
    np.testing.assert_allclose(mtcnn.to_source(whole, factors), [[-0.5, -0.5], [399.5, 299.5]])
    # an image within the limit, or no limit, is left as it is
    for limit in (400, None):
        same, ones = mtcnn.shrink(image, limit)
        assert same is image and ones.tolist() == [1, 1]
    with pytest.raises(ValueError, match="max_side must be >= min_face"):
        mtcnn.Settings(max_side=15)


# --- the detector ---------------------------------------------------------------------------

def test_one_face_with_plausible_landmarks_on_each_lfw_photo(detector: mtcnn.MTCNN,
                                                             lfw_photos: list) -> None:
    for faces in detector.detect(lfw_photos):
        assert len(faces.scores) == 1 and faces.scores[0] > 0.95
        (x1, y1, x2, y2), points = faces.boxes[0], faces.landmarks[0]
        left_eye, right_eye, nose, left_mouth, right_mouth = points
        assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
        assert left_eye[0] < nose[0] < right_eye[0]
        assert ((points >= [x1, y1]) & (points <= [x2, y2])).all()
        # LFW photos are 250x250 crops centred on the face, which spans about a third to a half
        assert 60 < x2 - x1 < 160 and abs((x1 + x2) / 2 - 124.5) < 25
        assert 25 < np.linalg.norm(right_eye - left_eye) < 70


def test_batched_detection_equals_one_image_at_a_time(detector: mtcnn.MTCNN,
                                                      lfw_photos: list) -> None:
    small = cv2.resize(lfw_photos[1], (180, 200))          # another size: its own batch
    together = detector.detect([lfw_photos[0], small, lfw_photos[1]])
    alone = [detector.detect([image])[0] for image in (lfw_photos[0], small, lfw_photos[1])]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)


def test_a_large_photo_gives_its_small_selfs_faces_in_its_own_pixels(
        weights_dir: Path, detector: mtcnn.MTCNN, lfw_photos: list) -> None:
    """Each LFW photo blown up 4x (every pixel a 4x4 block) and shrunk back by max_side is
    the photo again, so its faces are the photo's, mapped by x -> 4 (x + 0.5) - 0.5."""
    shrinking = mtcnn.MTCNN(weights_dir, settings=mtcnn.Settings(max_side=250))
    big = [cv2.resize(photo, (1000, 1000), interpolation=cv2.INTER_NEAREST)
           for photo in lfw_photos]
    for photo, image in zip(lfw_photos, big, strict=True):
        assert np.array_equal(mtcnn.shrink(image, 250)[0], photo)
    direct = detector.detect(lfw_photos)
    # a photo within max_side between the two: each image keeps its own factor
    first, middle, last = shrinking.detect([big[0], lfw_photos[1], big[1]])
    np.testing.assert_allclose(middle.landmarks, direct[1].landmarks, atol=1e-3)
    for small, large in zip(direct, (first, last), strict=True):
        assert len(large.scores) == len(small.scores) == 1
        np.testing.assert_allclose(large.landmarks, 4 * (small.landmarks + 0.5) - 0.5, atol=1e-3)
        np.testing.assert_allclose(large.boxes, 4 * (small.boxes + 0.5) - 0.5, atol=1e-3)
        np.testing.assert_allclose(large.scores, small.scores, atol=1e-6)


def test_a_mirrored_photo_gives_mirrored_landmarks(detector: mtcnn.MTCNN,
                                                   lfw_photos: list) -> None:
    image = lfw_photos[0]
    direct, mirrored = detector.detect([image, np.ascontiguousarray(image[:, ::-1])])
    flipped = mirrored.landmarks[0][[1, 0, 2, 4, 3]] * [-1, 1] + [image.shape[1] - 1, 0]
    assert np.abs(flipped - direct.landmarks[0]).max() < 4.0


def test_no_face_in_a_blank_or_tiny_image(detector: mtcnn.MTCNN) -> None:
    blank, tiny = np.full((120, 160, 3), 128, np.uint8), np.zeros((10, 10, 3), np.uint8)
    for faces in detector.detect([blank, tiny]):
        assert faces.boxes.shape == (0, 4) and faces.landmarks.shape == (0, 5, 2)
    with pytest.raises(ValueError, match="RGB uint8"):
        detector.detect([blank[..., 0]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_agrees_with_cpu(weights_dir: Path, detector: mtcnn.MTCNN,
                              lfw_photos: list) -> None:
    on_gpu = mtcnn.MTCNN(weights_dir, "cuda").detect(lfw_photos)
    for a, b in zip(detector.detect(lfw_photos), on_gpu, strict=True):
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.05)


def test_synthfaces_landmarks_are_found_near_the_truth(detector: mtcnn.MTCNN) -> None:
    """A fixed sample of 24 SynthFaces images (bench/bench_mtcnn.py measures 1,000): most faces
    found, and the points within a tenth of the eye distance on the median image."""
    from facerepro.align import quality

    images, truth = quality.synthfaces_sample(24, seed=0)
    found = quality.summary(quality.detected_landmarks(detector, images), truth)
    assert found["detection_rate"] >= 0.75
    assert found["nme_median"] < 0.1


def test_landmark_table_runs_mtcnn_with_the_config_settings(weights_dir: Path) -> None:
    from facerepro.align import landmarks

    manifest = pd.DataFrame({"image_id": ["a", "b", "c"], "status": ["kept"] * 2 + ["quarantined"],
                             "path": [f.name for f in sorted(LFW.glob("*.jpg"))] + ["gone.jpg"],
                             "height": 250, "width": 250})
    settings = {"min_face": 20, "factor": 0.709, "thresholds": [0.6, 0.7, 0.7],
                "nms": [0.5, 0.7, 0.7, 0.7], "centre_weight": 2.0, "batch_size": 2,
                "max_side": 1280, "chunk_pixels": 16_000_000}
    table = landmarks.landmark_table("mtcnn", LFW, "lfw", manifest, settings, weights_dir)
    assert table["image_id"].tolist() == ["a", "b"]
    assert (table["source"] == "mtcnn").all() and table["faces"].tolist() == [1, 1]
    assert not table["fallback"].any() and (table["score"] > 0.95).all()
    too_big = {**settings, "min_face": 300}           # larger than the 250 px photos
    with pytest.raises(ValueError, match="no face in any of the 2 images"):
        landmarks.landmark_table("mtcnn", LFW, "lfw", manifest, too_big, weights_dir)
