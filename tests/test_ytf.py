"""YouTube Faces: the SynthFaces video part in YTF's layout, and the ytf_videos protocol kind
against a hand-worked example."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facerepro.align import landmarks, transform
from facerepro.data import synth
from facerepro.data.clean import list_images
from facerepro.data.protocols import read_ytf_splits, video_frames
from facerepro.evaluation.protocol import run_protocol
from facerepro.report.tables import HELD, NOT_HELD, NOT_RUN, paper_tables

YTF = {"identities": 8, "folds": 2, "min_videos": 2, "max_videos": 3, "frames": 5,
       "pairs_per_fold": 2}


@pytest.fixture(scope="module")
def ytf_part(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synth.SynthConfig]:
    root = tmp_path_factory.mktemp("ytf")
    cfg = synth.SynthConfig.from_dict({"seed": 5, "ytf": YTF})
    synth.write_part("ytf", root, cfg)
    return root, cfg


def test_the_part_has_ytfs_layout_and_sizes(ytf_part):
    root, cfg = ytf_part
    rows = list_images(root, "ytf", "test")
    video, frame = video_frames(rows["image_id"].to_numpy())
    per_video = rows.groupby(video).size()
    # every video has `frames` frames numbered 1..frames, YTF-style: <video>/<video>.<frame>.jpg
    assert (per_video == YTF["frames"]).all()
    assert sorted(set(frame)) == list(range(1, YTF["frames"] + 1))
    assert all(Path(p).name.startswith(f"{Path(p).parent.name}.") for p in rows["path"])
    assert rows["identity"].nunique() == YTF["identities"]
    videos_per_person = per_video.groupby([v.split("/")[0] for v in per_video.index]).size()
    assert videos_per_person.between(YTF["min_videos"], YTF["max_videos"]).all()
    # the landmark file covers every frame, read as the align step reads it
    points = landmarks.dataset_landmarks(root, "ytf", rows["path"])
    assert points.shape == (len(rows), 5, 2) and np.isfinite(points).all()


def test_splits_parse_into_identity_disjoint_folds_of_existing_videos(ytf_part):
    root, _ = ytf_part
    splits = read_ytf_splits(root / "splits.txt")
    assert len(splits) == YTF["folds"] * 2 * YTF["pairs_per_fold"]
    counts = splits.groupby(["fold", "same"]).size()
    assert (counts == YTF["pairs_per_fold"]).all() and len(counts) == 2 * YTF["folds"]
    assert (splits["same"] == (splits["name1"] == splits["name2"])).all()
    assert not (splits["video1"] == splits["video2"]).any()
    people = [set(f.name1) | set(f.name2) for _, f in splits.groupby("fold")]
    assert not people[0] & people[1], "YTF's splits are subject-disjoint"
    frames = root / "YouTubeFaces" / "frame_images_DB"
    for v in set(splits.video1) | set(splits.video2):
        assert (frames / v).is_dir(), v


def test_identities_are_not_those_of_the_training_part():
    cfg = synth.SynthConfig.from_dict({"ytf": YTF})
    ytf = synth.make_identity(cfg.seed, "ytf", 0, "a", cfg.identity_spread)
    casia = synth.make_identity(cfg.seed, "casia", 0, "a", cfg.identity_spread)
    assert not np.allclose(ytf.skin, casia.skin)


def _aligned(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised grey aligned crops (SphereFace's template at half size), their videos and
    people."""
    rows = list_images(root, "ytf", "test")
    points = landmarks.dataset_landmarks(root, "ytf", rows["path"])
    template = transform.get_template("sphere_112x96", 0.5)
    crops = []
    for path, p in zip(rows["path"], points, strict=True):
        image = cv2.imread(str(root / path), cv2.IMREAD_GRAYSCALE).astype(np.float64)
        crop = transform.warp(image, transform.umeyama(p, template.points), template).ravel()
        crops.append((crop - crop.mean()) / crop.std())
    video, _ = video_frames(rows["image_id"].to_numpy())
    return np.array(crops), video, rows["identity"].to_numpy()


def test_frames_of_a_video_are_more_alike_than_videos_of_the_person(ytf_part):
    crops, video, person = _aligned(ytf_part[0])
    corr = crops @ crops.T / crops.shape[1]
    off = ~np.eye(len(crops), dtype=bool)
    same_video = (video[:, None] == video[None]) & off
    same_person = (person[:, None] == person[None]) & ~same_video & off
    other = person[:, None] != person[None]
    within, across, between = corr[same_video].mean(), corr[same_person].mean(), corr[other].mean()
    assert within > across > between, (within, across, between)


def test_the_same_seed_writes_the_same_frames(ytf_part, tmp_path):
    root, cfg = ytf_part
    synth.write_part("ytf", tmp_path, cfg, workers=1)
    for rel in ("splits.txt", "YouTubeFaces/ytf_landmarks.txt",
                "YouTubeFaces/frame_images_DB/Synth_Ytf_0001/1/1.5.jpg"):
        assert (tmp_path / rel).read_bytes() == (root / rel).read_bytes()


def test_a_video_walks_from_its_first_shot_within_the_photo_ranges():
    nuisance = synth.Nuisance()
    person = synth.make_identity(0, "ytf", 0, "a", 0.7)
    still = synth.video_shots(person, np.random.default_rng(2), nuisance, 6, 0.0, 0.8)
    first = synth.sample_shot(person, np.random.default_rng(2), nuisance)
    # motion 0: every frame is the first shot but for its own sensor noise
    assert all(dataclasses.replace(s, noise_seed=None) == first for s in still)
    assert len({s.noise_seed for s in still}) == 6
    moving = synth.video_shots(person, np.random.default_rng(2), nuisance, 200, 1.0, 0.8)
    yaw = np.array([s.yaw for s in moving])
    assert yaw[0] == first.yaw and np.abs(yaw).max() <= 40 and yaw.std() > 1
    # smooth: consecutive frames are far closer than frames 20 apart
    assert np.abs(np.diff(yaw)).mean() < 0.5 * np.abs(yaw[20:] - yaw[:-20]).mean()
    quality = [s.jpeg_quality for s in moving]
    assert nuisance.jpeg_quality_min <= min(quality) <= max(quality) <= nuisance.jpeg_quality_max
    assert {s.attributes["Smiling"] for s in moving} == {first.attributes["Smiling"]}


def test_too_few_videos_for_the_same_pairs_is_a_clear_error():
    cfg = synth.SynthConfig.from_dict({"ytf": {**YTF, "pairs_per_fold": 50}})
    with pytest.raises(ValueError, match="ytf.pairs_per_fold"):
        synth.ytf_layout(cfg)


# --- the protocol, by hand --------------------------------------------------------------------
#
# Two folds. Fold 1: P/0-P/1 (same), P/0-Q/0 (different); fold 2: R/0-R/1 (same), R/0-S/0
# (different). Each video has frames 1, 2 and 10 (10 sorts before 2 as text: the first two
# frames are 1 and 2 by number). e1, e2, e3 are unit vectors; frame 10 is the "trap" that the
# score must leave out when frames = 2.
E1, E2, E3 = np.eye(3)
VIDEOS = {"P/0": (E1, E2, -E1), "P/1": (E1, E1, -E2), "Q/0": (E3, E2, E1),
          "R/0": (E1, E1, -E1), "R/1": (E1, E3, E2), "S/0": (E2, E3, E1)}
SPLITS = """split number, first name, second name, is same
1, P/0, P/1, 1
1, P/0, Q/0, 0
2, R/0, R/1, 1
2, R/0, S/0, 0
"""


def _video_features(tmp_path: Path) -> Path:
    ids, feats, who = [], [], []
    for v, frames in VIDEOS.items():
        for number, x in zip((1, 2, 10), frames, strict=True):
            ids.append(f"YouTubeFaces/frame_images_DB/{v}/{v[-1]}.{number}")
            feats.append(x * 3.0)     # not unit length: cosine must normalise each frame
            who.append(v[0])
    order = np.random.default_rng(0).permutation(len(ids))   # file order is no frame order
    path = tmp_path / "all.npz"
    np.savez(path, features=np.array(feats, np.float32)[order],
             image_id=np.array(ids)[order], identity=np.array(who)[order], flip_merge="none")
    (tmp_path / "splits.txt").write_text(SPLITS)
    return path


def _run(tmp_path: Path, frames: int, scorer: str) -> dict:
    protocol = {"kind": "ytf_videos", "dataset": "x/ytf", "pairs_file": "splits.txt",
                "frames": frames, "scorers": [scorer], "fars": [0.5]}
    dest = tmp_path / f"{scorer}{frames}.json"
    run_protocol("run", "ytf", protocol, [_video_features(tmp_path)], tmp_path, dest, {})
    return json.loads(dest.read_text())["scorers"][scorer]


def test_video_pairs_by_hand_first_two_frames(tmp_path):
    # Mean unit frame of the first two frames: P/0 (.5, .5, 0), P/1 (1, 0, 0), Q/0 (0, .5, .5),
    # R/0 (1, 0, 0), R/1 (.5, 0, .5), S/0 (0, .5, .5). The mean cosine over the 4 frame pairs
    # is the dot product of the means: fold 1 same .5, different .25; fold 2 same .5,
    # different 0. Fold 1's threshold comes from fold 2: midway between 0 and .5 = .25, and
    # the different pair at .25 is called "same" (score >= threshold): accuracy 1/2. Fold 2's
    # threshold from fold 1: (.25 + .5) / 2 = .375, both right: accuracy 1.
    entry = _run(tmp_path, 2, "cosine")
    assert entry["per_fold"]["accuracy"] == [0.5, 1.0]
    assert entry["per_fold"]["threshold"] == pytest.approx([0.25, 0.375])
    assert entry["values"]["accuracy_mean"] == 0.75
    assert entry["values"]["accuracy_std"] == pytest.approx(np.std([0.5, 1.0], ddof=1))
    assert entry["items"]["accuracy_mean"] == {"ids": ["0", "1", "2", "3"],
                                              "values": [1.0, 0.0, 1.0, 1.0]}
    assert entry["n"]["pairs"] == 4 and entry["n"]["videos"] == 6
    assert entry["n"]["fewest_frames"] == entry["n"]["most_frames"] == 2


def test_video_pairs_by_hand_squared_distance(tmp_path):
    # Minus the mean squared L2 distance of the raw frames (length 3): |a|^2 + |b|^2 - 2 <a, b>
    # averaged = 9 + 9 - 18 x (mean cosine above): fold 1 same -9, different -13.5; fold 2
    # same -9, different -18. Thresholds: fold 1 from fold 2 (-18 + -9) / 2 = -13.5 (its
    # different pair ties it: wrong), fold 2 from fold 1 (-13.5 + -9) / 2 = -11.25.
    entry = _run(tmp_path, 2, "euclidean")
    assert entry["per_fold"]["threshold"] == pytest.approx([-13.5, -11.25])
    assert entry["per_fold"]["accuracy"] == [0.5, 1.0]


def test_video_pairs_by_hand_first_frame_only(tmp_path):
    # frames = 1: P/0 e1, P/1 e1, Q/0 e3, R/0 e1, R/1 e1, S/0 e2: same pairs 1, different 0 in
    # both folds; thresholds .5 and every pair right.
    entry = _run(tmp_path, 1, "cosine")
    assert entry["per_fold"]["threshold"] == [0.5, 0.5]
    assert entry["values"]["accuracy_mean"] == 1.0


def test_all_frames_include_the_trap(tmp_path):
    # frames = 3 takes frame 10 too. Mean unit frames: P/0 (0, 1/3, 0), P/1 (2/3, -1/3, 0),
    # Q/0 = R/1 = S/0 (1/3, 1/3, 1/3), R/0 (1/3, 0, 0). Fold 1: same -1/9, different 1/9;
    # fold 2: same 1/9, different 1/9. Fold 2's tie cannot be cut, and on fold 1 the best cut
    # is "all same" or "all different" (1 of 2 each); the lowest threshold, -inf, wins ties:
    # each test fold calls both its pairs "same", accuracy 1/2, thresholds written as null.
    entry = _run(tmp_path, 3, "cosine")
    assert entry["n"]["most_frames"] == 3
    assert entry["per_fold"]["threshold"] == [None, None]
    assert entry["per_fold"]["accuracy"] == [0.5, 0.5]
    # AUC = P(same > different) + P(tie) / 2 over the 2 x 2 score pairs: -1/9 loses to both
    # different scores, 1/9 ties both: (0 + 0 + 1/2 + 1/2) / 4
    assert entry["values"]["auc"] == 0.25


def test_frame_ids_name_their_video_and_number():
    video, frame = video_frames(np.array(["YouTubeFaces/frame_images_DB/A_B/3/3.555",
                                          "YouTubeFaces/frame_images_DB/A_B/3/3.12"]))
    assert video.tolist() == ["A_B/3", "A_B/3"] and frame.tolist() == [555, 12]
    for bad in ("YouTubeFaces/frame_images_DB/A_B/3/frame", "A_B/3.12"):
        with pytest.raises(ValueError, match=f"frame '{bad}' is not"):
            video_frames(np.array(["YouTubeFaces/frame_images_DB/A_B/3/3.1", bad]))


# --- the report's YTF claims, fed by the kind's per-pair items ---------------------------------


def _ytf_metrics(tmp_path: Path, run: str, good: bool, rng: np.random.Generator) -> dict:
    """ytf_verification metrics of one run on 40 people x 2 videos x 3 frames, 10 folds of 2
    same and 2 different pairs: ``good`` features sit on their person's axis (every pair
    right), the others are noise (about half the pairs right)."""
    people = [f"Person_{i:02d}" for i in range(40)]
    ids, feats = [], []
    for i, p in enumerate(people):
        for v in range(2):
            for number in range(1, 4):
                ids.append(f"YouTubeFaces/frame_images_DB/{p}/{v}/{v}.{number}")
                feats.append(np.eye(40)[i] + rng.normal(0, 0.05 if good else 5.0, 40))
    lines = ["split number, first name, second name, is same"]
    for fold in range(10):
        a, b, c, d = people[4 * fold:4 * fold + 4]
        lines += [f"{fold + 1}, {a}/0, {a}/1, 1", f"{fold + 1}, {b}/0, {b}/1, 1",
                  f"{fold + 1}, {c}/0, {d}/1, 0", f"{fold + 1}, {d}/0, {a}/1, 0"]
    (tmp_path / "splits.txt").write_text("\n".join(lines) + "\n")
    path = tmp_path / f"{run}.npz"
    np.savez(path, features=np.array(feats, np.float32), image_id=np.array(ids),
             identity=np.array([i.split("/")[2] for i in ids]), flip_merge="none")
    protocol = {"kind": "ytf_videos", "dataset": "synth/ytf", "pairs_file": "splits.txt",
                "frames": 100, "scorers": ["cosine", "euclidean"], "fars": [0.1]}
    return run_protocol(run, "ytf_verification", protocol, [path], tmp_path,
                        tmp_path / f"{run}.json", {})


@pytest.mark.parametrize(("m4_good", "status"), [(True, HELD), (False, NOT_HELD)])
def test_sphereface_ytf_claims_are_tested_on_the_video_pairs(tmp_path, m4_good, status):
    rng = np.random.default_rng(1)
    metrics = {(run, "ytf_verification"): _ytf_metrics(tmp_path, run, good, rng)
               for run, good in (("sphereface_m4", m4_good), ("softmax", not m4_good))}
    papers = {p["key"]: p for p in paper_tables(metrics)}
    table = next(t for t in papers["sphereface"]["tables"] if t["id"] == "sphereface_table3")
    claims = {c["text"]: c for c in table["claims"]}
    m4_vs_softmax = claims["A-Softmax m=4 beats original softmax on YTF"]
    assert m4_vs_softmax["status"] == status
    assert "McNemar" in m4_vs_softmax["tests"][0]
    # m = 1..3 are not in these metrics: the claim over every m is not run, never held
    assert claims["YTF accuracy grows with m"]["status"] == NOT_RUN
    row = next(r for r in table["rows"] if r["label"] == "A-Softmax m=4")
    assert row["cells"][1]["reported"] == 95.0
    assert row["cells"][1]["reproduced"] == (100.0 if m4_good else pytest.approx(50, abs=25))
    clmle = next(t for t in papers["clmle"]["tables"] if t["id"] == "clmle_table2")
    assert {c["text"]: c["status"] for c in clmle["claims"]}["CLMLE beats CosFace on YTF"] \
        == NOT_RUN


def test_the_report_lists_how_the_video_protocol_differs_from_youtube_faces():
    from facerepro.config import load
    from facerepro.report.html import code_deviations

    root = Path(__file__).resolve().parents[1]
    default = [line for line in code_deviations(load(root / "config/config.yaml"))
               if line.startswith("ytf_verification:")]
    assert any("100 people with 2-3 videos of 10 frames" in line for line in default)
    # the real files: only the scoring rule differs, for the runs of the papers without one
    paper = [line for line in code_deviations(load(root / "config/paper.yaml"))
             if "ytf_verification" in line]
    assert len(paper) == 1 and "first 100 frames" in paper[0]
    runs = paper[0].split(": ")[0].split(", ")
    assert runs == ["sphere64_softmax", "sphereface_m1", "sphereface_m2", "sphereface_m3",
                    "sphereface_m4", "cosface", "clmle", "deepid2plus"], runs
