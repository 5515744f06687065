"""Landmark policy (dataset file, MTCNN, fallback) and the aligned shard built from it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from facerepro.align import aligner, landmark_policy, landmarks, transform
from facerepro.align.mtcnn import Faces
from facerepro.align.shards import read_shard, write_shard
from facerepro.data import synth
from facerepro.data.clean import build_manifest

TINY = {"seed": 5, "lfw": {"identities": 12, "folds": 2, "pairs_per_fold": 2, "max_images": 3},
        "casia": {"identities": 2, "mean_images": 2.0, "min_images": 2, "max_images": 2},
        "celeba": {"identities": 3, "images": 6}}


@pytest.fixture(scope="module")
def lfw_part(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("synth_lfw")
    synth.write_part("lfw", root, synth.SynthConfig.from_dict(TINY))
    return root, build_manifest(root, "lfw", "test")


# --- policy -------------------------------------------------------------------------------

def test_auto_uses_the_dataset_file_where_the_source_ships_one() -> None:
    assert landmark_policy.landmark_source("auto", "synthfaces", "lfw") == "dataset"
    assert landmark_policy.landmark_source("auto", "synthfaces", "casia") == "dataset"
    assert landmark_policy.landmark_source("auto", "celeba", "celeba") == "dataset"
    assert landmark_policy.landmark_source("auto", "lfw", "lfw") == "mtcnn"
    assert landmark_policy.landmark_source("auto", "casia_webface", "casia") == "mtcnn"
    assert landmark_policy.landmark_source("mtcnn", "synthfaces", "lfw") == "mtcnn"
    with pytest.raises(ValueError, match="ships no landmarks"):
        landmark_policy.landmark_source("dataset", "lfw", "lfw")
    with pytest.raises(ValueError, match="not one of"):
        landmark_policy.landmark_source("best", "lfw", "lfw")


def test_source_for_reads_kind_and_layout_from_the_config() -> None:
    config = {"datasets": {"synth": {"kind": "synthfaces"}, "real": {"kind": "lfw"}},
              "align": {"landmarks": "auto"}}
    assert landmark_policy.source_for(config, "synth/casia") == "dataset"
    assert landmark_policy.source_for(config, "real/funneled") == "mtcnn"


def _faces(boxes: list, scores: list | None = None) -> Faces:
    boxes = np.array(boxes, float).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    points = centre[:, None] + np.array([[-10, -10], [10, -10], [0, 0], [-8, 12], [8, 12.0]])
    return Faces(boxes, np.array(scores or [0.99] * len(boxes)), points)


def test_the_subject_is_the_large_face_near_the_centre() -> None:
    big_central, small_central, big_corner = [75, 75, 175, 175], [110, 110, 140, 140], \
        [0, 0, 110, 110]
    assert landmarks.choose_face(_faces([small_central, big_central]), 250, 250, 2.0) == 1
    # a bigger face far off-centre loses to a slightly smaller central one
    assert landmarks.choose_face(_faces([big_corner, big_central]), 250, 250, 2.0) == 1
    assert landmarks.choose_face(_faces([big_corner, small_central]), 250, 250, 0.0) == 0
    assert landmarks.choose_face(_faces([]), 250, 250, 2.0) is None
    # the other rules: the largest box wherever it is; the box nearest the centre
    assert landmarks.choose_face(_faces([big_central, big_corner]), 250, 250, 2.0,
                                 "largest") == 1
    assert landmarks.choose_face(_faces([big_corner, [100, 100, 160, 160], small_central]),
                                 250, 250, 2.0, "centre") == 2
    with pytest.raises(ValueError, match="not one of"):
        landmarks.choose_face(_faces([big_central]), 250, 250, 2.0, "drop")


def test_pixel_chunks_keep_each_chunk_within_the_budget() -> None:
    # hand-worked: 4 + 5 > 8 starts a new chunk; 9 is over the budget, a chunk of its own
    assert landmarks.pixel_chunks([3, 4, 5, 9, 1, 2], 8) == [slice(0, 2), slice(2, 3),
                                                            slice(3, 4), slice(4, 6)]
    assert landmarks.pixel_chunks([], 8) == []
    rng = np.random.default_rng(0)
    pixels = rng.integers(1, 40, 500) ** 2                 # 1 to 1,521 px per image
    budget = 4_000
    chunks = landmarks.pixel_chunks(pixels, budget)
    # every image once, in order: count in = count out
    assert np.array_equal(np.concatenate([np.arange(len(pixels))[c] for c in chunks]),
                          np.arange(len(pixels)))
    for chunk, following in zip(chunks, chunks[1:] + [None], strict=True):
        total = pixels[chunk].sum()
        assert total <= budget or chunk.stop - chunk.start == 1
        if following is not None:         # as long as the budget allows
            assert total + pixels[following.start] > budget


# --- landmark tables ----------------------------------------------------------------------

def test_dataset_table_holds_the_files_landmarks(lfw_part: tuple) -> None:
    root, manifest = lfw_part
    table = landmarks.landmark_table("dataset", root, "lfw", manifest)
    kept = manifest[manifest["status"] == "kept"]
    assert table.columns.tolist() == landmarks.COLUMNS
    assert table["image_id"].tolist() == kept["image_id"].tolist()
    assert (table["source"] == "dataset").all() and not table["fallback"].any()
    assert table["score"].isna().all() and table["faces"].isna().all()
    file = landmarks.read_landmark_file(root / "lfw_landmarks.txt")
    first = kept["path"].iloc[0]
    np.testing.assert_allclose(table.loc[0, landmarks.POINT_COLUMNS].to_numpy(float),
                               file[first.split("/", 1)[1]].ravel())


class ScriptedDetector:
    """Returns prepared faces in call order; records the batch sizes it was given."""

    def __init__(self, answers: list[Faces]) -> None:
        self.answers, self.batches = list(answers), []

    def detect(self, images: list) -> list[Faces]:
        self.batches.append(len(images))
        return [self.answers.pop(0) for _ in images]


def _write_images(root: Path, sizes: list[tuple[int, int]]) -> pd.DataFrame:
    rows = []
    for i, (h, w) in enumerate(sizes):
        path = f"img/{i}.png"
        (root / "img").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / path), np.full((h, w, 3), 40 + i, np.uint8))
        rows.append({"image_id": f"i{i}", "identity": f"p{i % 2}", "split": "test",
                     "path": path, "status": "kept", "height": h, "width": w})
    return pd.DataFrame(rows)


def test_mtcnn_table_takes_the_subject_and_falls_back_to_the_mean_position(
        tmp_path: Path) -> None:
    kept = _write_images(tmp_path, [(100, 100), (100, 100), (200, 300), (100, 100), (50, 80)])
    answers = [_faces([[20, 30, 60, 70]], [0.9]),
               _faces([[0, 0, 10, 10], [40, 40, 80, 80]], [0.99, 0.8]),    # two: take the big
               _faces([], []),                                             # none: fallback
               _faces([[30, 40, 70, 80]], [0.95]),
               _faces([], [])]
    detector = ScriptedDetector(answers)
    # 10,000 + 10,000 px fit the budget; the 60,000 px image is a chunk of its own
    table = landmarks.detect_table(tmp_path, kept, detector, chunk_pixels=20_000)
    assert detector.batches == [2, 1, 2]
    assert table["faces"].tolist() == [1, 2, 0, 1, 0]
    assert table["fallback"].tolist() == [False, False, True, False, True]
    np.testing.assert_allclose(table["score"], [0.9, 0.8, np.nan, 0.95, np.nan])
    np.testing.assert_allclose(table.loc[1, ["bx1", "by1", "bx2", "by2"]], [40, 40, 80, 80])
    # fallback: mean of the found faces relative to their (100x100) images, at each size
    found = table.loc[[0, 1, 3], landmarks.POINT_COLUMNS].to_numpy(float).reshape(3, 5, 2)
    relative = ((found + 0.5) / 100).mean(0)
    for row, (h, w) in ((2, (200, 300)), (4, (50, 80))):
        np.testing.assert_allclose(
            table.loc[row, landmarks.POINT_COLUMNS].to_numpy(float).reshape(5, 2),
            relative * [w, h] - 0.5)
        box = ((np.array([[20, 30, 60, 70], [40, 40, 80, 80], [30, 40, 70, 80]]) + 0.5) / 100
               ).mean(0)
        np.testing.assert_allclose(table.loc[row, ["bx1", "by1", "bx2", "by2"]],
                                   box * [w, h, w, h] - 0.5)


def test_no_face_anywhere_is_an_error(tmp_path: Path) -> None:
    kept = _write_images(tmp_path, [(60, 60), (60, 60)])
    with pytest.raises(ValueError, match="no face in any of the 2 images"):
        landmarks.detect_table(tmp_path, kept, ScriptedDetector([_faces([]), _faces([])]))


# --- aligned shards -------------------------------------------------------------------------

def test_aligned_shard_maps_landmarks_onto_the_template(lfw_part: tuple, tmp_path: Path) -> None:
    root, manifest = lfw_part
    table = landmarks.landmark_table("dataset", root, "lfw", manifest)
    template = transform.get_template("sphere_112x96", 0.5)
    index = aligner.align_dataset(root, manifest, table, template, tmp_path / "a")
    images, stored = read_shard(tmp_path / "a")
    assert images.shape == (len(table), 56, 48, 3) and images.dtype == np.uint8
    assert stored.columns.tolist() == aligner.INDEX_COLUMNS
    pd.testing.assert_frame_equal(stored, index.reset_index(drop=True))
    assert (stored["source"] == "dataset").all() and stored["faces"].isna().all()
    assert stored["faces"].dtype == "Int64"
    mapped = stored[landmarks.POINT_COLUMNS].to_numpy(float).reshape(-1, 5, 2)
    # the similarity fit leaves only the face's own shape variation around the template
    assert np.abs(mapped - template.points).mean() < 1.5
    # threads do not change a byte
    aligner.align_dataset(root, manifest, table, template, tmp_path / "b", workers=2)
    assert np.array_equal(read_shard(tmp_path / "b")[0], images)


def test_align_keeps_manifest_order_and_needs_every_image(lfw_part: tuple,
                                                          tmp_path: Path) -> None:
    root, manifest = lfw_part
    table = landmarks.landmark_table("dataset", root, "lfw", manifest)
    template = transform.get_template("deepid_55x47", 0.5)
    index = aligner.align_dataset(root, manifest, table.iloc[::-1], template, tmp_path / "r")
    assert index["image_id"].tolist() == table["image_id"].tolist()
    with pytest.raises(KeyError, match="re-run the landmarks rule"):
        aligner.align_dataset(root, manifest, table.iloc[1:], template, tmp_path / "m")


def test_detection_crop_and_qa_figure_from_mtcnn_landmarks(tmp_path: Path) -> None:
    kept = _write_images(tmp_path, [(100, 100), (100, 100), (100, 100)])
    detector = ScriptedDetector([_faces([[20, 30, 60, 70]]), _faces([]),
                                 _faces([[30, 30, 70, 70]])])
    table = landmarks.detect_table(tmp_path, kept, detector)
    template = transform.get_template("facenet_160", 0.5)
    aligner.align_dataset(tmp_path, kept, table, template, tmp_path / "s")
    images, index = read_shard(tmp_path / "s")
    assert images.shape == (3, 80, 80, 3)
    assert index["fallback"].tolist() == [False, True, False]
    assert (images[0] == 40).mean() > 0.95     # the grown box stays inside the flat image
    aligner.qa_figure(images, index, template, tmp_path / "qa.png")
    assert cv2.imread(str(tmp_path / "qa.png")) is not None


def test_failed_shard_write_leaves_nothing(tmp_path: Path) -> None:
    index = pd.DataFrame({"image_id": ["a", "b", "c"]})

    def broken():
        yield np.zeros((4, 4, 3), np.uint8)
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        write_shard(tmp_path, broken(), index, 4, 4)
    with pytest.raises(ValueError, match="2 images for 3 index rows"):
        write_shard(tmp_path, iter([np.zeros((4, 4, 3), np.uint8)] * 2), index, 4, 4)
    assert list(tmp_path.iterdir()) == []
