"""The declared no-face and multi-face policy: its counts, the faces it leaves out of the aligned
shard, the pairs a protocol then leaves out, the counts in the metrics, the QA grid and the
report's line or table. Tables, images and features are written by hand; the counts are
worked out in the comments."""

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from report_fixture import write_fixture

from facerepro.align import aligner, face_policy, landmarks, transform
from facerepro.align.shards import read_shard
from facerepro.evaluation import metrics
from facerepro.evaluation.context import ProtocolContext
from facerepro.evaluation.protocol import angular_fisher, run_protocol, verification
from facerepro.report.html import build

# Six images: i0 one face, i1 none, i2 three faces, i3 one, i4 none, i5 two.
FACES = [1, 0, 3, 1, 0, 2]


def _table(faces: list[int] = FACES) -> pd.DataFrame:
    """A landmark table as detect_table writes it: a 60x60 box (fallback: the mean one) and
    the five points of a frontal face in it, per 100x100 image."""
    n = len(faces)
    box = np.array([20.0, 20.0, 80.0, 80.0])
    points = np.array([[38, 42], [62, 42], [50, 55], [40, 66], [60, 66.0]])
    table = pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "source": "mtcnn",
                          "score": [0.99 if f else np.nan for f in faces],
                          "faces": pd.array(faces, "Int64"),
                          "fallback": [f == 0 for f in faces]})
    table[landmarks.POINT_COLUMNS] = np.repeat(points.reshape(1, 10), n, 0)
    table[landmarks.BOX_COLUMNS] = np.repeat(box[None], n, 0)
    return table[landmarks.COLUMNS]


def _colour(k: int) -> tuple[int, int, int]:
    """Image k's flat BGR colour (red 30 + 30k): no grey of a figure's text has it."""
    return 50, 200, 30 + 30 * k


def _part(root: Path, faces: list[int] = FACES) -> pd.DataFrame:
    """The manifest of one 100x100 image per row of :func:`_table`, two people."""
    rows = []
    for k in range(len(faces)):
        path = f"p{k % 2}/{k}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / path), np.full((100, 100, 3), _colour(k), np.uint8))
        rows.append({"image_id": f"i{k}", "identity": f"p{k % 2}", "split": "test",
                     "path": path, "status": "kept", "height": 100, "width": 100})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("no_face", "multi_face", "counts", "dropped"), [
    # today's behaviour: the two faceless images fall back, two images had a face chosen
    ("fallback", "centre_weighted", {"fallback": 2, "multi_face": 2, "dropped": 0}, []),
    ("drop", "largest", {"fallback": 0, "multi_face": 2, "dropped": 2}, ["i1", "i4"]),
    ("fallback", "drop", {"fallback": 2, "multi_face": 0, "dropped": 2}, ["i2", "i5"]),
    ("drop", "drop", {"fallback": 0, "multi_face": 0, "dropped": 4}, ["i1", "i2", "i4", "i5"]),
])
def test_summary_counts_each_group_once(no_face: str, multi_face: str, counts: dict,
                                        dropped: list) -> None:
    summary = face_policy.summarise(_table(), no_face, multi_face)
    assert summary["counts"] == counts and summary["ids"]["dropped"] == dropped
    assert summary["dropped_by_reason"] == {
        "no_face": 2 * (no_face == "drop"), "multi_face": 2 * (multi_face == "drop")}
    assert summary["images"] == 6 and summary["landmarks"] == ["mtcnn"]
    assert face_policy.touched(summary) == sum(counts.values())


def test_dataset_landmarks_touch_nothing_and_bad_policies_are_refused() -> None:
    table = _table([1, 1, 1]).assign(source="dataset", faces=pd.array([pd.NA] * 3, "Int64"))
    summary = face_policy.summarise(table, "drop", "drop")
    assert face_policy.touched(summary) == 0 and summary["landmarks"] == ["dataset"]
    with pytest.raises(ValueError, match="align.no_face 'skip' is not one of"):
        face_policy.summarise(table, "skip", "drop")
    with pytest.raises(ValueError, match="align.multi_face 'first' is not one of"):
        face_policy.summarise(table, "drop", "first")


def test_dropped_faces_are_left_out_of_the_shard(tmp_path: Path) -> None:
    manifest = _part(tmp_path)
    table = _table()
    summary = face_policy.summarise(table, "drop", "drop")
    template = transform.get_template("sphere_112x96", 0.5)
    aligner.align_dataset(tmp_path, manifest, table, template, tmp_path / "s",
                          drop=summary["ids"]["dropped"])
    images, index = read_shard(tmp_path / "s")
    # count in = count out: 6 kept - 4 dropped = 2 aligned, the two one-face images
    assert len(images) == len(index) == 6 - summary["counts"]["dropped"] == 2
    assert index["image_id"].tolist() == ["i0", "i3"]
    # each crop is its own image's (flat, red 30 + 30k), in manifest order
    assert images[0, 28, 24].tolist() == [30, 200, 50]
    assert images[1, 28, 24].tolist() == [120, 200, 50]
    with pytest.raises(ValueError, match="drop all 6 images"):
        aligner.align_dataset(tmp_path, manifest, table, template, tmp_path / "t",
                              drop=[f"i{k}" for k in range(6)])


def test_qa_grid_shows_the_touched_images_or_says_there_are_none(tmp_path: Path) -> None:
    manifest = _part(tmp_path)
    for name, faces in (("some", FACES), ("none", [1] * 6)):
        table = _table(faces)
        summary = face_policy.write_part(tmp_path, manifest, table, "drop", "largest",
                                         tmp_path / f"{name}.json", tmp_path / f"{name}.png")
        assert face_policy.read(tmp_path / f"{name}.json") == summary
        grid = cv2.imread(str(tmp_path / f"{name}.png"))
        assert grid is not None
    # four touched images fill one row of eight thumbnails; none: one line of text
    some, none = (cv2.imread(str(tmp_path / f"{n}.png")) for n in ("some", "none"))
    assert some.shape[:2] == (160, 960) and none.shape[:2] == (40, 600)

    def shown(grid: np.ndarray, k: int) -> int:
        return int((grid == _colour(k)).all(2).sum())

    # the thumbnails are the images: the four touched ones are there, i0 and i3 are not
    assert all(shown(some, k) > 1000 for k in (1, 2, 4, 5))
    assert shown(some, 0) == shown(some, 3) == 0
    assert all(shown(none, k) == 0 for k in range(6))


# --- protocols -----------------------------------------------------------------------------

PEOPLE = [f"P{k}" for k in range(8)]


def _pairs_and_features(tmp_path: Path) -> tuple[Path, list[str]]:
    """8 people with two images each on their own axis; 2 folds of 2 same + 2 different
    pairs (pairs.txt format). Features of P1's second image are absent (dropped)."""
    lines = ["2\t2"]
    for f in range(2):
        a, b = PEOPLE[4 * f], PEOPLE[4 * f + 1]
        c, d = PEOPLE[4 * f + 2], PEOPLE[4 * f + 3]
        lines += [f"{a}\t1\t2", f"{b}\t1\t2", f"{a}\t1\t{c}\t2", f"{b}\t2\t{d}\t1"]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    ids, who, axis = [], [], []
    for k, p in enumerate(PEOPLE):
        for num in (1, 2):
            ids.append(f"lfw/{p}/{p}_{num:04d}")
            who.append(p)
            axis.append(k)
    dropped = ["lfw/P1/P1_0002"]
    keep = [i for i, image in enumerate(ids) if image not in dropped]
    rng = np.random.default_rng(0)
    feats = np.eye(8)[axis] + rng.normal(0, 0.01, (len(ids), 8))
    path = tmp_path / "features.npz"
    np.savez(path, features=feats[keep].astype(np.float32),
             image_id=np.array(ids)[keep].astype(str), identity=np.array(who)[keep].astype(str),
             flip_merge="none")
    return path, dropped


PAIRS = {"kind": "lfw_pairs", "dataset": "synth/lfw", "pairs_file": "pairs.txt",
         "scorers": ["cosine"], "fars": [0.1]}


def test_pairs_naming_a_dropped_face_are_counted_and_left_out(tmp_path: Path) -> None:
    path, dropped = _pairs_and_features(tmp_path)
    ctx = ProtocolContext(PAIRS, [path], tmp_path, {}, dropped=frozenset(dropped))
    result = verification(ctx)["cosine"]
    # P1_0002 is in fold 0's "P1 1 2" and "P1 2 P3 1": 2 of the 8 pairs
    assert result["n"]["pairs"] == 6 and result["n"]["pairs_dropped"] == 2
    assert ctx.provenance["pairs_dropped"] == 2
    assert any("2 pairs name an image the face policy dropped" in n for n in result["notes"])
    assert result["values"]["accuracy_mean"] == 1.0


def test_missing_faces_without_the_policy_are_still_an_error(tmp_path: Path) -> None:
    """A face with no features that the policy did not drop (quarantined, say) is not
    silently left out."""
    path, _ = _pairs_and_features(tmp_path)
    with pytest.raises(KeyError):
        verification(ProtocolContext(PAIRS, [path], tmp_path, {}))


def test_metrics_carry_the_parts_counts_and_the_scored_faces(tmp_path: Path) -> None:
    path, dropped = _pairs_and_features(tmp_path)
    summary = face_policy.summarise(_table(), "drop", "centre_weighted")
    summary["ids"]["dropped"] = dropped          # the features' own dropped image
    (tmp_path / "faces.json").write_text(json.dumps(summary))
    written = run_protocol("r", "lfw", PAIRS, [path], tmp_path, tmp_path / "m.json", {},
                           faces_path=tmp_path / "faces.json")
    faces = metrics.read(tmp_path / "m.json")["provenance"]["faces"]
    assert faces == written["provenance"]["faces"]
    assert faces["counts"] == {"fallback": 0, "multi_face": 2, "dropped": 2}
    assert faces["dataset"] == "synth/lfw" and faces["no_face"] == "drop" and "ids" not in faces
    assert written["scorers"]["cosine"]["n"]["pairs_dropped"] == 2
    # a protocol on the identities scores the 15 faces that have features: count in = out
    fisher = angular_fisher(ProtocolContext({"min_images": 1}, [path], tmp_path, {}))
    assert fisher["angular"]["n"] == {"images": 15, "identities": 8}


# --- the report ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report_fixture(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return write_fixture(tmp_path_factory.mktemp("artifacts"))


def _report(report_fixture: dict, tmp_path: Path, faces: list[int]) -> str:
    root = tmp_path / "part"
    manifest = _part(root, faces)
    face_policy.write_part(root, manifest, _table(faces), "drop", "centre_weighted",
                           tmp_path / "faces.json", tmp_path / "faces.png")
    kwargs = dict(report_fixture["kwargs"])
    kwargs["metrics"] = {k: v for k, v in kwargs["metrics"].items()
                         if k == ("softmax", "lfw_verification")}
    dest = tmp_path / "index.html"
    build(report_fixture["config"], **kwargs, faces={"synth/lfw": str(tmp_path / "faces.json")},
          faces_qa={"synth/lfw": str(tmp_path / "faces.png")}, dest=dest, references=[])
    return dest.read_text()


def test_report_says_in_one_line_that_nothing_was_touched(report_fixture: dict,
                                                          tmp_path: Path) -> None:
    html = _report(report_fixture, tmp_path, [1] * 6)
    assert 'id="face-policy-none"' in html and "face-policy-table" not in html
    assert "in any part (6 images; landmarks: mtcnn)" in html
    assert 'alt="face policy' not in html


def test_report_counts_each_group_and_shows_the_grid(report_fixture: dict,
                                                     tmp_path: Path) -> None:
    html = _report(report_fixture, tmp_path, FACES)
    table = html[html.index('id="face-policy-table"'):]
    table = table[:table.index("</table>")]
    cells = [c.split("<")[0] for c in table.split("<td>")[1:]]
    # synth/lfw, mtcnn, 6 images, 0 fallbacks (no_face: drop), 2 chosen, 2 dropped (2 / 0)
    assert cells == ["synth/lfw", "mtcnn", "6", "0", "2", "2 (2 / 0)"]
    assert 'alt="face policy synth/lfw"' in html and "face-policy-none" not in html
