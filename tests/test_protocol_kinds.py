"""The DeepID2+ and Compact int32 protocol kinds (occlusion, sparsity, selectiveness,
compact_search, lut_attribute), verification of a named layer, and the features views and
layers they read. Features, pairs and attribute files are written by hand in tmp_path and the
expected values are worked out by hand in the comments."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facerepro import degrade, features
from facerepro.data.protocols import read_pairs
from facerepro.evaluation import metrics
from facerepro.evaluation.analysis import angular_fisher_terms, fisher_ratio
from facerepro.evaluation.compact_search import compact_search, lut_attribute
from facerepro.evaluation.context import ProtocolContext
from facerepro.evaluation.identification import megaface_identification
from facerepro.evaluation.neurons import selectiveness, sparsity
from facerepro.evaluation.occlusion import occlusion
from facerepro.evaluation.protocol import run_protocol, verification
from facerepro.evaluation.verification import cosine, pair_rows, verify_pairs
from facerepro.views import BLOCK_SEED, View, protocol_views

# --- helpers ----------------------------------------------------------------------------------


def save_features(path: Path, feats, image_ids, identities, flip_merge: str = "none",
                  role=None, **named_layers) -> Path:
    """A features npz as features.extract writes it (``named_layers``: name -> array; ``role``:
    a powerlaw view's train / test per face)."""
    roles = {} if role is None else {"role": np.asarray(role, dtype=str)}
    np.savez(path, features=np.asarray(feats, np.float32),
             image_id=np.asarray(image_ids, dtype=str), identity=np.asarray(identities, dtype=str),
             flip_merge=flip_merge, **roles,
             **{f"layer.{name}": np.asarray(v, np.float32) for name, v in named_layers.items()})
    return path


def write_attributes(path: Path, names: list[str], rows: dict[str, list[int]]) -> Path:
    """A CelebA-format attribute file: count line, names line, ``<image> +-1 ...``."""
    lines = [str(len(rows)), " ".join(names)]
    lines += [f"{image} " + " ".join(f"{v:d}" for v in values) for image, values in rows.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# 12 people with two images each; 4 folds of 3 same and 3 different pairs. The different pairs
# of fold f pair person 3f+k (image 1) with person 3f+k+5 mod 12 (image 2).
PEOPLE = [f"Person_{i:02d}" for i in range(12)]
FOLDS, PER_FOLD = 4, 3


def write_pairs(path: Path) -> Path:
    lines = [f"{FOLDS}\t{PER_FOLD}"]
    for f in range(FOLDS):
        for k in range(PER_FOLD):
            p = PEOPLE[3 * f + k]
            lines.append(f"{p}\t1\t2")
        for k in range(PER_FOLD):
            p, q = PEOPLE[3 * f + k], PEOPLE[(3 * f + k + 5) % 12]
            lines.append(f"{p}\t1\t{q}\t2")
    path.write_text("\n".join(lines) + "\n")
    return path


def lfw_images() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image ids, identities, person index) of the 24 images of PEOPLE."""
    ids, who, index = [], [], []
    for i, p in enumerate(PEOPLE):
        for num in (1, 2):
            ids.append(f"lfw/{p}/{p}_{num:04d}")
            who.append(p)
            index.append(i)
    return np.array(ids), np.array(who), np.array(index)


def separable(seed: int) -> np.ndarray:
    """Each person's two images near their own axis: cosine ~1 same, ~0 different."""
    _, _, index = lfw_images()
    rng = np.random.default_rng(seed)
    return np.eye(12)[index] + rng.normal(0, 0.01, (len(index), 12))


def constant() -> np.ndarray:
    """Every image the same vector: every pair scores exactly 1, no threshold splits them, so
    every fold calls all pairs "same": accuracy exactly 1/2 (3 same of 6 per fold)."""
    return np.ones((2 * len(PEOPLE), 12))


def random_features(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(2 * len(PEOPLE), 12))


# --- features: views, layers, original_only ---------------------------------------------------


@pytest.mark.parametrize(("view", "name"), [
    (View(bottom=0.3), "all~bottom0.3"),
    (View(block=30), "all~block30"),
    (View("all", "box_112x96", 20, bottom=0.5), "all~box_112x96~jpeg20~bottom0.5")])
def test_occlusion_view_names_round_trip(view, name):
    assert view.name == name
    assert View.parse(name) == view


def test_occlusion_views_show_the_occluders():
    images = np.random.default_rng(3).integers(1, 256, size=(4, 55, 47, 3), dtype=np.uint8)
    bottom = View(bottom=0.3).show(images)
    np.testing.assert_array_equal(bottom, degrade.occlude_bottom(images, 0.3))
    # round(0.3 * 55) = round(16.5) = 17 rows black from the bottom, the rest untouched
    assert (bottom[:, -17:] == 0).all()
    np.testing.assert_array_equal(bottom[:, :-17], images[:, :-17])
    block = View(block=30).show(images)
    np.testing.assert_array_equal(block, degrade.occlude_blocks(images, 30, BLOCK_SEED))
    # one 30x30 black square per image (the face is 55 tall, so the side is not rescaled)
    assert [(im == 0).all(axis=2).sum() for im in block] == [900] * 4
    np.testing.assert_array_equal(View().show(images), images)


def test_load_original_only_keeps_the_unflipped_half_of_concat(tmp_path):
    ids, who = ["d/a/1", "d/a/2"], ["a", "a"]
    out = np.arange(12).reshape(2, 6)
    fc1 = np.arange(8).reshape(2, 4) + 100
    path = save_features(tmp_path / "c.npz", out, ids, who, "concat", fc1=fc1)
    x, image_id, identity = features.load(path, original_only=True)
    np.testing.assert_array_equal(x, [[0, 1, 2], [6, 7, 8]])
    assert list(image_id) == ids and list(identity) == who
    x, _, _ = features.load(path, "fc1", original_only=True)
    np.testing.assert_array_equal(x, [[100, 101], [104, 105]])
    x, _, _ = features.load(path, "fc1")                      # both halves without the flag
    np.testing.assert_array_equal(x, fc1)


def test_load_original_only_keeps_all_of_none_and_refuses_sum(tmp_path):
    ids, who = ["d/a/1", "d/a/2"], ["a", "a"]
    x = np.arange(12).reshape(2, 6)
    plain = save_features(tmp_path / "n.npz", x, ids, who, "none")
    np.testing.assert_array_equal(features.load(plain, original_only=True)[0], x)
    summed = save_features(tmp_path / "s.npz", x, ids, who, "sum")
    with pytest.raises(ValueError, match="flip_merge"):
        features.load(summed, original_only=True)
    np.testing.assert_array_equal(features.load(summed)[0], x)


def test_layers_lists_the_named_layers(tmp_path):
    ids, who, x = ["d/a/1"], ["a"], np.zeros((1, 3))
    path = save_features(tmp_path / "l.npz", x, ids, who, fc1=x, fc2=x[:, :2])
    assert sorted(features.layers(path)) == ["fc1", "fc2"]
    assert features.load(path, "fc2")[0].shape == (1, 2)
    assert features.layers(save_features(tmp_path / "o.npz", x, ids, who)) == []
    with pytest.raises(KeyError, match="fc3"):
        features.load(path, "fc3")


# --- protocol_views -------------------------------------------------------------------------


def test_occlusion_protocol_views_unoccluded_first_then_bottom_then_blocks():
    views = protocol_views({"kind": "occlusion", "bottom": [0.1, 0.3], "blocks": [10, 30]})
    assert [v.name for v in views] == ["all", "all~bottom0.1", "all~bottom0.3",
                                       "all~block10", "all~block30"]
    assert views[1] == View(bottom=0.1) and views[4] == View(block=30)
    templated = protocol_views({"kind": "occlusion", "template": "box_112x96",
                                "bottom": [0.5], "blocks": [20]})
    assert [v.name for v in templated] == ["all~box_112x96", "all~box_112x96~bottom0.5",
                                           "all~box_112x96~block20"]


def test_pairs_protocol_reads_one_view():
    views = protocol_views({"kind": "lfw_pairs", "degrade": {"jpeg_quality": 10}})
    assert [v.name for v in views] == ["all~jpeg10"]


# --- occlusion ------------------------------------------------------------------------------


OCCLUSION = {"kind": "occlusion", "pairs_file": "pairs.txt", "scorers": ["cosine"],
             "fars": [0.01], "bottom": [0.1, 0.3], "blocks": [10]}


def test_occlusion_accuracy_per_layer_and_level(tmp_path):
    pairs_file = write_pairs(tmp_path / "pairs.txt")
    ids, who, _ = lfw_images()
    # fc1 by level: none and bottom0.1 separable (1.0), bottom0.3 constant (exactly 0.5),
    # block10 random (whatever verify_pairs says). fc2 is constant at every level (0.5).
    fc1 = {"none": separable(0), "bottom0.1": separable(1), "bottom0.3": constant(),
           "block10": random_features(2)}
    paths = [save_features(tmp_path / f"{level}.npz", random_features(10 + i), ids, who,
                           fc1=x, fc2=constant())
             for i, (level, x) in enumerate(fc1.items())]
    ctx = ProtocolContext(OCCLUSION, paths, tmp_path, {})
    result = occlusion(ctx)
    assert list(result) == ["cosine"]
    values = result["cosine"]["values"]
    random_acc = verify_pairs(fc1["block10"], ids, read_pairs(pairs_file), cosine,
                              [0.01])["values"]["accuracy_mean"]
    assert 0 < random_acc < 1
    assert values["none@fc1"] == 1.0
    assert values["bottom0.1@fc1"] == 1.0
    assert values["bottom0.3@fc1"] == 0.5
    assert values["block10@fc1"] == pytest.approx(random_acc)
    # the mean fall from 1.0 over the bottom levels (1.0, 0.5) and the one block level
    assert values["mean_drop_bottom@fc1"] == pytest.approx(0.25)
    assert values["mean_drop_block@fc1"] == pytest.approx(1.0 - random_acc)
    for level in ("none", "bottom0.1", "bottom0.3", "block10"):
        assert values[f"{level}@fc2"] == 0.5
    assert values["mean_drop_bottom@fc2"] == 0.0 and values["mean_drop_block@fc2"] == 0.0
    # only the named layers are scored, not the net's output
    assert not any(key.endswith("@output") for key in values)
    assert len(values) == 2 * (4 + 2)
    curves = result["cosine"]["curves"]
    assert curves["bottom@fc1"] == {"x": [0, 0.1, 0.3], "y": [1.0, 1.0, 0.5]}
    assert curves["block@fc1"]["x"] == [0, 10]
    assert curves["block@fc1"]["y"] == pytest.approx([1.0, random_acc])
    assert curves["bottom@fc2"]["y"] == [0.5, 0.5, 0.5]
    assert result["cosine"]["n"] == {"pairs": 24, "levels": 4}
    assert ctx.provenance["pairs_file"] == str(pairs_file)
    assert ctx.provenance["pairs_sha256"] == hashlib.sha256(pairs_file.read_bytes()).hexdigest()
    metrics.validate({"run": "r", "protocol": "p", "kind": "occlusion", "scorers": result,
                      "provenance": {}})


@pytest.mark.parametrize("test_view", [{}, {"template": "box_112x96"},
                                       {"degrade": {"jpeg_quality": 50}}])
def test_occlusion_of_a_file_without_named_layers_scores_the_output(tmp_path, test_view):
    # levels are named by the occlusion alone, whatever crop or degradation the test uses
    write_pairs(tmp_path / "pairs.txt")
    ids, who, _ = lfw_images()
    outputs = [separable(0), constant(), separable(1), constant()]
    paths = [save_features(tmp_path / f"{i}.npz", x, ids, who) for i, x in enumerate(outputs)]
    result = occlusion(ProtocolContext({**OCCLUSION, **test_view}, paths, tmp_path, {}))["cosine"]
    assert result["values"] == {
        "none@output": 1.0, "bottom0.1@output": 0.5, "bottom0.3@output": 1.0,
        "block10@output": 0.5, "mean_drop_bottom@output": 0.25,
        "mean_drop_block@output": 0.5}
    assert set(result["curves"]) == {"bottom@output", "block@output"}


def test_occlusion_needs_one_features_file_per_view(tmp_path):
    write_pairs(tmp_path / "pairs.txt")
    ids, who, _ = lfw_images()
    path = save_features(tmp_path / "a.npz", separable(0), ids, who)
    with pytest.raises(ValueError):
        occlusion(ProtocolContext(OCCLUSION, [path, path], tmp_path, {}))


# --- verification of a named layer ----------------------------------------------------------


def test_verification_reads_the_protocol_layer(tmp_path):
    pairs_file = write_pairs(tmp_path / "pairs.txt")
    ids, who, _ = lfw_images()
    path = save_features(tmp_path / "f.npz", random_features(5), ids, who, fc1=separable(0))
    protocol = {"kind": "lfw_pairs", "pairs_file": "pairs.txt", "scorers": ["cosine"],
                "fars": [0.01], "layer": "fc1"}
    on_layer = verification(ProtocolContext(protocol, [path], tmp_path, {}))
    assert on_layer["cosine"]["values"]["accuracy_mean"] == 1.0
    without = {k: v for k, v in protocol.items() if k != "layer"}
    on_output = verification(ProtocolContext(without, [path], tmp_path, {}))["cosine"]["values"]
    expected = verify_pairs(random_features(5), ids, read_pairs(pairs_file), cosine, [0.01])
    assert on_output["accuracy_mean"] == pytest.approx(expected["values"]["accuracy_mean"])
    assert on_output["accuracy_mean"] < 1.0


# --- Joint Bayesian wiring: held-out features only, the binary variant, the layer ------------

JB_OPTIONS = {"n_components": 8, "tol": 1e-4, "max_iter": 1000}
JB_PROTOCOL = {"kind": "lfw_pairs", "pairs_file": "pairs.txt", "fars": [0.01],
               "joint_bayesian": {"train": "synth/casia", **JB_OPTIONS}}


def held_out(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray], np.ndarray]:
    """Held-out people (never the test's): 30 x 4 images whose output, fc1 and fc2 differ,
    each with identity structure in other directions than the test features'. Returns the
    file, its arrays by layer (None: the output) and the identities."""
    rng = np.random.default_rng(7)
    who = np.repeat([f"Held_{i:02d}" for i in range(30)], 4)
    ids = np.array([f"casia/{p}/{p}_{k % 4 + 1:04d}" for k, p in enumerate(who)])
    person = np.repeat(np.arange(30), 4)
    arrays = {}
    for layer, scale in ((None, 1.0), ("fc1", 3.0), ("fc2", 0.3)):
        centre = rng.normal(0, scale, (30, 12)) * np.linspace(0.2, 2, 12)
        arrays[layer] = centre[person] + rng.normal(0, 1, (len(who), 12)) * np.linspace(2, .2, 12)
    path = save_features(tmp_path / "holdout.npz", arrays[None], ids, who, fc1=arrays["fc1"],
                         fc2=arrays["fc2"])
    return path, arrays, who


def jb_test_features(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """The test people's features: output, fc1 and fc2 all different, signs mixed."""
    ids, who, _ = lfw_images()
    arrays = {None: random_features(20), "fc1": separable(21) - 0.5,
              "fc2": random_features(22) + separable(23)}
    path = save_features(tmp_path / "test.npz", arrays[None], ids, who, fc1=arrays["fc1"],
                         fc2=arrays["fc2"])
    return path, arrays


@pytest.fixture
def jb_calls(monkeypatch):
    """Every JointBayesian.fit (X, y) and score_pairs (a, b) call, passed on unchanged."""
    from facerepro.evaluation.joint_bayesian import JointBayesian

    calls: dict[str, list] = {"fit": [], "score": []}
    fit, score = JointBayesian.fit, JointBayesian.score_pairs

    def spy_fit(self, X, y):
        calls["fit"].append((np.array(X), np.array(y)))
        return fit(self, X, y)

    def spy_score(self, a, b):
        calls["score"].append((np.array(a), np.array(b)))
        return score(self, a, b)

    monkeypatch.setattr(JointBayesian, "fit", spy_fit)
    monkeypatch.setattr(JointBayesian, "score_pairs", spy_score)
    return calls


def jb_scores(train: np.ndarray, labels: np.ndarray, a: np.ndarray, b: np.ndarray,
              ) -> np.ndarray:
    from facerepro.evaluation.joint_bayesian import JointBayesian

    return JointBayesian(**JB_OPTIONS).fit(train.astype(np.float64), labels).score_pairs(a, b)


@pytest.mark.parametrize("layer", [None, "fc1", "fc2"])
def test_joint_bayesian_is_fitted_on_the_held_out_rows_of_the_protocol_layer(tmp_path, layer,
                                                                             jb_calls):
    pairs = read_pairs(write_pairs(tmp_path / "pairs.txt"))
    jb_path, held, held_who = held_out(tmp_path)
    path, test = jb_test_features(tmp_path)
    protocol = {**JB_PROTOCOL, "scorers": ["joint_bayesian"], "layer": layer}
    ctx = ProtocolContext(protocol, [path], tmp_path, {}, jb_train_path=jb_path)
    result = verification(ctx)["joint_bayesian"]
    # one fit, on exactly the held-out file's rows of the protocol's layer and its people
    [(X, y)] = jb_calls["fit"]
    np.testing.assert_array_equal(X, held[layer].astype(np.float32).astype(np.float64))
    np.testing.assert_array_equal(y, held_who)
    assert not set(y) & set(PEOPLE)
    # scored on the test features of the same layer, the pairs' two rows
    ids, _, _ = lfw_images()
    i, j = pair_rows(ids, pairs)
    [(a, b)] = jb_calls["score"]
    x = test[layer].astype(np.float32)
    np.testing.assert_array_equal(a, x[i])
    np.testing.assert_array_equal(b, x[j])
    assert ctx.provenance["joint_bayesian_train"] == str(jb_path)
    # the same numbers as verify_pairs with a JB fitted by hand on the held-out layer
    by_hand = verify_pairs(x, ids, pairs, lambda p, q: jb_scores(
        held[layer].astype(np.float32), held_who, p, q), [0.01])
    assert result["values"] == pytest.approx(by_hand["values"])


def test_the_held_out_fit_is_detectably_not_a_fit_on_the_test_features(tmp_path):
    jb_path, held, held_who = held_out(tmp_path)
    path, test = jb_test_features(tmp_path)
    ids, who, _ = lfw_images()
    i, j = pair_rows(ids, read_pairs(write_pairs(tmp_path / "pairs.txt")))
    protocol = {**JB_PROTOCOL, "scorers": ["joint_bayesian"]}
    score = ProtocolContext(protocol, [path], tmp_path, {}, jb_train_path=jb_path).scorer(
        "joint_bayesian", "fc2")
    x = test["fc2"].astype(np.float32)
    got = score(x[i], x[j])
    np.testing.assert_allclose(got, jb_scores(held["fc2"].astype(np.float32), held_who,
                                              x[i], x[j]), rtol=1e-10)
    on_test = jb_scores(x, who, x[i], x[j])     # what fitting on the test people would give
    assert np.abs(got - on_test).max() > 0.1 * np.abs(on_test).max()


@pytest.mark.parametrize("layer", [None, "fc1"])
def test_the_binary_variant_binarises_before_fitting_and_scoring(tmp_path, layer, jb_calls):
    from facerepro.evaluation.analysis import binarize

    jb_path, held, held_who = held_out(tmp_path)
    path, test = jb_test_features(tmp_path)
    ids, _, _ = lfw_images()
    i, j = pair_rows(ids, read_pairs(write_pairs(tmp_path / "pairs.txt")))
    protocol = {**JB_PROTOCOL, "scorers": ["joint_bayesian", "joint_bayesian_binary"]}
    ctx = ProtocolContext(protocol, [path], tmp_path, {}, jb_train_path=jb_path)
    x = test[layer].astype(np.float32)
    binary = ctx.scorer("joint_bayesian_binary", layer)(x[i], x[j])
    real = ctx.scorer("joint_bayesian", layer)(x[i], x[j])
    # fitted on the held-out codes x > 0, and the pairs' codes scored
    (codes, y), (values, _) = jb_calls["fit"]
    h = held[layer].astype(np.float32)
    np.testing.assert_array_equal(codes, binarize(h))
    np.testing.assert_array_equal(y, held_who)
    np.testing.assert_array_equal(values, h)
    a, b = jb_calls["score"][0]
    np.testing.assert_array_equal(a, binarize(x[i]))
    np.testing.assert_array_equal(b, binarize(x[j]))
    np.testing.assert_allclose(binary, jb_scores(binarize(h), held_who, binarize(x[i]),
                                                 binarize(x[j])), rtol=1e-10)
    assert not np.allclose(binary, real)
    # through the protocol: both scorers, each its own fit, the binary one on codes
    jb_calls["fit"].clear()
    result = verification(ProtocolContext({**protocol, "layer": layer}, [path], tmp_path, {},
                                          jb_train_path=jb_path))
    assert list(result) == ["joint_bayesian", "joint_bayesian_binary"]
    (first, _), (second, _) = jb_calls["fit"]
    np.testing.assert_array_equal(first, h)
    np.testing.assert_array_equal(second, binarize(h))


def test_occlusion_fits_joint_bayesian_per_layer_on_unoccluded_held_out_faces(tmp_path,
                                                                              jb_calls):
    write_pairs(tmp_path / "pairs.txt")
    jb_path, held, held_who = held_out(tmp_path)
    ids, who, _ = lfw_images()
    # four views (none, bottom0.1, bottom0.3, block10), each with its own fc1 and fc2
    paths = [save_features(tmp_path / f"view{v}.npz", random_features(30 + v), ids, who,
                           fc1=random_features(40 + v), fc2=random_features(50 + v))
             for v in range(4)]
    protocol = {**OCCLUSION, "scorers": ["joint_bayesian"],
                "joint_bayesian": JB_PROTOCOL["joint_bayesian"]}
    occlusion(ProtocolContext(protocol, paths, tmp_path, {}, jb_train_path=jb_path))
    # one fit per layer, on the held-out layer: never the test views, occluded or not
    assert len(jb_calls["fit"]) == 2
    for (X, y), layer in zip(jb_calls["fit"], ("fc1", "fc2"), strict=True):
        np.testing.assert_array_equal(X, held[layer].astype(np.float32))
        np.testing.assert_array_equal(y, held_who)


# --- sparsity -------------------------------------------------------------------------------

# Original faces' activations (3 images x 4 neurons); active = > 0.
#   per image:  2, 1, 4      mean 7/3, population var 14/9, fraction 7/3 / 4 = 7/12
#   per neuron: 2, 1, 3, 1   mean 7/4, population var 11/16, fraction 7/4 / 3 = 7/12
ACTS = np.array([[1.0, 0.0, 2.0, 0.0],
                 [0.0, 0.0, 3.0, 0.0],
                 [5.0, 1.0, 1.0, 1.0]])


def sparsity_file(tmp_path: Path) -> Path:
    # concat: the mirrored half is all active, so counting it would change every number
    merged = np.hstack([ACTS, np.ones_like(ACTS)])
    return save_features(tmp_path / "s.npz", np.zeros((3, 2)), ["d/a/1", "d/a/2", "d/b/1"],
                         ["a", "a", "b"], "concat", fc1=merged)


def test_sparsity_counts_the_original_half_of_the_layer(tmp_path):
    protocol = {"kind": "sparsity", "layer": "fc1", "threshold": 0.0, "bins": 4}
    ctx = ProtocolContext(protocol, [sparsity_file(tmp_path)], tmp_path, {})
    result = sparsity(ctx)["activations"]
    assert result["values"] == pytest.approx({
        "per_image_mean": 7 / 3, "per_image_std": np.sqrt(14) / 3, "per_image_fraction": 7 / 12,
        "per_neuron_mean": 7 / 4, "per_neuron_std": np.sqrt(11) / 4,
        "per_neuron_fraction": 7 / 12})
    assert result["n"] == {"images": 3, "neurons": 4}
    # per image counts 2, 1, 4 in bins [0,1) [1,2) [2,3) [3,4]
    assert result["curves"]["per_image"] == {"x": [0, 1, 2, 3], "y": [0, 1, 1, 1]}
    # per neuron counts 2, 1, 3, 1 in bins [0,.75) [.75,1.5) [1.5,2.25) [2.25,3]
    assert result["curves"]["per_neuron"] == {"x": [0, 0.75, 1.5, 2.25], "y": [0, 2, 1, 1]}


def test_sparsity_threshold(tmp_path):
    # active = > 1.5: per image 1 (2.0), 1 (3.0), 1 (5.0); per neuron 1, 0, 2, 0
    protocol = {"kind": "sparsity", "layer": "fc1", "threshold": 1.5, "bins": 2}
    ctx = ProtocolContext(protocol, [sparsity_file(tmp_path)], tmp_path, {})
    values = sparsity(ctx)["activations"]["values"]
    assert values["per_image_mean"] == 1.0 and values["per_image_std"] == 0.0
    assert values["per_neuron_mean"] == pytest.approx(3 / 4)
    assert values["per_neuron_std"] == pytest.approx(np.sqrt(11 / 16))


def test_sparsity_refuses_summed_flips(tmp_path):
    path = save_features(tmp_path / "s.npz", ACTS, ["d/a/1", "d/a/2", "d/b/1"],
                         ["a", "a", "b"], "sum")
    with pytest.raises(ValueError, match="flip_merge"):
        sparsity(ProtocolContext({"threshold": 0.0, "bins": 4}, [path], tmp_path, {}))


# --- selectiveness --------------------------------------------------------------------------


def test_selectiveness_best_single_neurons(tmp_path):
    # Images: Alice x3 (i0-i2), Bob x2 (i3, i4), Carl x1 (i5). identities: 2 -> Alice and Bob.
    who = ["Alice"] * 3 + ["Bob"] * 2 + ["Carl"]
    nums = [1, 2, 3, 1, 2, 1]
    ids = [f"lfw/{p}/{p}_{n:04d}" for p, n in zip(who, nums, strict=True)]
    # neuron 0 is exactly "Alice"; neuron 1 is 2 on i3, 1 on i5, else 0.
    original = np.array([[1, 0], [1, 0], [1, 0], [0, 2], [0, 0], [0, 1]], float)
    # The mirrored half has a perfect Bob neuron: reading it would make Bob's best 1.0.
    mirrored = np.array([[0, 0], [0, 0], [0, 0], [1, 1], [1, 1], [0, 0]], float)
    path = save_features(tmp_path / "f.npz", np.hstack([original, mirrored]), ids, who,
                         "concat")
    # Alice: neuron 0 separates her perfectly: 1.0.
    # Bob (positives i3, i4; negatives i0, i1, i2, i5):
    #   neuron 0, "Bob iff low": TPR 2/2, TNR 3/4 -> 7/8
    #   neuron 1, "Bob iff > 1.5" (i3 only): TPR 1/2, TNR 4/4 -> 3/4; "> 0.5": 1/2, 3/4 -> 5/8
    #   best 7/8.
    # Attributes of i0..i4 only (Carl is not listed; Zed is listed but has no features):
    #   Male    = Alice:     neuron 0 -> 1.0
    #   Smiling = i0 and i3: neuron 1 "> 1" (i3): TPR 1/2, TNR 3/3 -> 3/4;
    #                        neuron 0 "low" (i3, i4): TPR 1/2, TNR 2/3 -> 7/12; best 3/4
    #   Young   = all of i0..i4 (Zed, who would vary it, has no features): dropped
    #   Bald    = none: dropped
    write_attributes(tmp_path / "attrs.txt", ["Male", "Smiling", "Young", "Bald"], {
        "Alice/Alice_0001.jpg": [1, 1, 1, -1],
        "Alice/Alice_0002.jpg": [1, -1, 1, -1],
        "Alice/Alice_0003.jpg": [1, -1, 1, -1],
        "Bob/Bob_0001.jpg": [-1, 1, 1, -1],
        "Bob/Bob_0002.jpg": [-1, -1, 1, -1],
        "Zed/Zed_0001.jpg": [-1, 1, -1, 1]})
    protocol = {"kind": "selectiveness", "identities": 2, "attributes_file": "attrs.txt"}
    result = selectiveness(ProtocolContext(protocol, [path], tmp_path, {}))["single_neuron"]
    assert result["values"] == pytest.approx({
        "identity_best_mean": (1.0 + 7 / 8) / 2, "identity_best_min": 7 / 8,
        "attribute_best_mean": (1.0 + 3 / 4) / 2,
        "attribute:Male": 1.0, "attribute:Smiling": 3 / 4})
    assert result["n"] == {"images": 6, "neurons": 2, "identities": 2, "attributes": 2,
                           "attribute_images": 5}


def test_selectiveness_refuses_an_attribute_file_of_other_images(tmp_path):
    ids, who = ["lfw/A/A_0001", "lfw/A/A_0002", "lfw/B/B_0001"], ["A", "A", "B"]
    path = save_features(tmp_path / "f.npz", np.eye(3), ids, who)
    write_attributes(tmp_path / "attrs.txt", ["Male"], {"Z/Z_0001.jpg": [1]})
    with pytest.raises(ValueError, match="lists none"):
        selectiveness(ProtocolContext({"identities": 2, "attributes_file": "attrs.txt"}, [path],
                                      tmp_path, {}))


# --- compact_search -------------------------------------------------------------------------

# The run configs of Compact int32 nets with 1- and 2-bit code dimensions.
BITS = {bits: {"net_options": {"bits": bits}} for bits in (1, 2)}


def test_compact_search_binary_codes(tmp_path):
    # bits=1, 2 dims: 4 bins; at radius 0, 1, 2 a query has visited 1, 3, 4 bins (1/4, 3/4, 1).
    # A: 00, 00, 11; B: 10, 00; C: 11 (one image: no query). Recall by radius 0/1/2:
    #   A 00 (x2): other As at 0 and 2 -> 1/2, 1/2, 1;  A 11: both at 2 -> 0, 0, 1
    #   B 10 and B 00: the other at 1 -> 0, 1, 1
    #   mean over the 5 queries: 1/5, 3/5, 1
    codes = [[0, 0], [0, 0], [1, 1], [1, 0], [0, 0], [1, 1]]
    who = ["A", "A", "A", "B", "B", "C"]
    ids = [f"d/{p}/{i}" for i, p in enumerate(who)]
    path = save_features(tmp_path / "c.npz", codes, ids, who)
    protocol = {"kind": "compact_search", "min_images": 2,
                "bins_fractions": [0.1, 0.25, 0.5, 0.75, 1.0]}
    result = compact_search(ProtocolContext(protocol, [path], tmp_path, BITS[1]))["l1"]
    assert result["values"] == pytest.approx({
        "recall@bins=0.1": 0.0, "recall@bins=0.25": 0.2, "recall@bins=0.5": 0.2,
        "recall@bins=0.75": 0.6, "recall@bins=1": 1.0})
    assert result["n"] == {"queries": 5, "database": 6, "bits": 2}
    curve = result["curves"]["recall_vs_bins"]
    assert curve["x"] == pytest.approx([0.25, 0.75, 1.0])
    assert curve["y"] == pytest.approx([0.2, 0.6, 1.0])
    # with min_images 3 only A's three faces query: 1/3, 1/3, 1
    three = compact_search(ProtocolContext({**protocol, "min_images": 3}, [path], tmp_path,
                                           BITS[1]))["l1"]
    assert three["values"]["recall@bins=0.75"] == pytest.approx(1 / 3)
    assert three["n"]["queries"] == 3


def test_compact_search_two_bit_codes(tmp_path):
    # bits=2, 1 dim, values 0..3. A: 0, 1; B: 3, 1. Bins within radius 0..3:
    #   from 0 or 3: 1, 2, 3, 4 (fractions 1/4, 1/2, 3/4, 1); from 1: 1, 3, 4, 4.
    #   mean fraction: 1/4, 5/8, 7/8, 1.  Recall: A's pair at 1, B's at 2 -> 0, 1/2, 1, 1.
    path = save_features(tmp_path / "c.npz", [[0], [1], [3], [1]],
                         ["d/A/1", "d/A/2", "d/B/1", "d/B/2"], ["A", "A", "B", "B"])
    protocol = {"min_images": 2, "bins_fractions": [0.25, 0.7, 0.9]}
    result = compact_search(ProtocolContext(protocol, [path], tmp_path, BITS[2]))["l1"]
    assert result["values"] == pytest.approx({
        "recall@bins=0.25": 0.0, "recall@bins=0.7": 0.5, "recall@bins=0.9": 1.0})
    assert result["curves"]["recall_vs_bins"]["x"] == pytest.approx([0.25, 0.625, 0.875, 1.0])
    assert result["n"]["bits"] == 2


# --- lut_attribute --------------------------------------------------------------------------


def test_lut_attribute_own_bin_and_nearest_bin(tmp_path):
    # bits=1, 3-dim codes. Training faces (CelebA-style ids), Male:
    #   bin 000: M, M, M, F -> male;   bin 111: F, F -> female
    #   a face in bin 001 (female) that the attribute file does not list: not counted
    train_codes = [[0, 0, 0]] * 4 + [[1, 1, 1]] * 2 + [[0, 0, 1]]
    train_ids = [f"celeba/{i:06d}" for i in range(1, 8)]
    train = save_features(tmp_path / "train.npz", train_codes, train_ids, list("abcdefg"))
    write_attributes(tmp_path / "train_attrs.txt", ["Male", "Smiling"], {
        f"{i:06d}.jpg": [m, 1] for i, m in zip(range(1, 7), [1, 1, 1, -1, -1, -1],
                                                strict=True)})
    # Test faces: 000 (M) -> M right; 111 (F) -> F right;
    #   001 (F): empty bin, nearest 000 at 1 (111 at 2) -> M wrong;
    #   110 (F): empty bin, nearest 111 at 1 -> F right.
    #   A fifth face, not in the attribute file, is left out.
    test_codes = [[0, 0, 0], [1, 1, 1], [0, 0, 1], [1, 1, 0], [1, 1, 1]]
    test_ids = [f"lfw/P{i}/P{i}_0001" for i in range(5)]
    test = save_features(tmp_path / "test.npz", test_codes, test_ids, [f"P{i}" for i in range(5)])
    write_attributes(tmp_path / "lfw_attrs.txt", ["Smiling", "Male"], {
        f"P{i}/P{i}_0001.jpg": [1, m] for i, m in enumerate([1, -1, -1, -1])})
    protocol = {"kind": "lut_attribute", "attribute": "Male", "attributes_file": "lfw_attrs.txt",
                "train_attributes_file": "train_attrs.txt"}
    ctx = ProtocolContext(protocol, [test], tmp_path, BITS[1], train_path=train,
                          train_root=tmp_path)
    result = lut_attribute(ctx)["lookup_table"]
    # accuracy 3/4; balanced: male 1/1, female 2/3 -> 5/6; empty bins: 2 of 4 test faces
    assert result["values"] == pytest.approx({"accuracy": 0.75, "balanced_accuracy": 5 / 6,
                                              "empty_bin_fraction": 0.5})
    assert result["n"] == {"train": 6, "test": 4, "bins": 2}


# --- run_protocol ---------------------------------------------------------------------------


def test_run_protocol_writes_a_valid_metrics_file(tmp_path):
    path = sparsity_file(tmp_path)
    dest = tmp_path / "out" / "metrics.json"
    protocol = {"kind": "sparsity", "layer": "fc1", "threshold": 0.0, "bins": 4}
    payload = run_protocol("deepid2plus", "lfw_sparsity", protocol, [path], tmp_path, dest,
                           {"net_options": {}})
    written = metrics.read(dest)
    assert written == payload
    assert (written["run"], written["protocol"], written["kind"]) == (
        "deepid2plus", "lfw_sparsity", "sparsity")
    assert written["scorers"]["activations"]["values"]["per_image_mean"] == pytest.approx(7 / 3)
    assert written["provenance"] == {
        "features": str(path), "features_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def test_run_protocol_passes_the_run_code_bits(tmp_path):
    # the two-bit codes of test_compact_search_two_bit_codes: bits come from the run's config
    path = save_features(tmp_path / "c.npz", [[0], [1], [3], [1]],
                         ["d/A/1", "d/A/2", "d/B/1", "d/B/2"], ["A", "A", "B", "B"])
    protocol = {"kind": "compact_search", "min_images": 2, "bins_fractions": [0.7]}
    payload = run_protocol("compact", "search", protocol, [path], tmp_path,
                           tmp_path / "m.json", {"net_options": {"bits": 2}})
    assert payload["scorers"]["l1"]["values"]["recall@bins=0.7"] == pytest.approx(0.5)
    assert metrics.read(tmp_path / "m.json")["scorers"]["l1"]["n"]["bits"] == 2


# --- megaface ---------------------------------------------------------------------------------


def megaface_files(tmp_path: Path) -> list[Path]:
    """test_identification's hand-worked case as features files: probes A1, A2, B1, B2 and the
    distractors D2 = (-1, 0), D1 = (0.6, 0.8) (any order: the kind shuffles them)."""
    probes = save_features(tmp_path / "probes.npz",
                           [[1, 0], [0.8, 0.6], [0, 1], [-0.6, 0.8]],
                           ["f/A/1", "f/A/2", "f/B/1", "f/B/2"], ["A", "A", "B", "B"])
    distractors = save_features(tmp_path / "distractors.npz", [[-1, 0], [0.6, 0.8]],
                                ["m/0/1", "m/1/1"], ["0", "1"])
    return [probes, distractors]


def test_megaface_kind_items_notes_and_provenance(tmp_path):
    paths = megaface_files(tmp_path)
    protocol = {"kind": "megaface", "fars": [1e-6, 0.25], "seed": 0, "scorers": ["cosine"]}
    payload = run_protocol("r", "megaface", protocol, paths, tmp_path, tmp_path / "m.json",
                           {"net_options": {}})
    assert metrics.read(tmp_path / "m.json") == payload
    m = payload["scorers"]["cosine"]
    # By hand (test_identification): A1->A2 and B2->B1 hit, A2->A1 and B1->B2 (a tie) miss.
    assert m["values"]["rank1"] == 0.5
    assert dict(zip(m["items"]["rank1"]["ids"], m["items"]["rank1"]["values"], strict=True)) == {
        "f/A/1|f/A/2": 1.0, "f/B/1|f/B/2": 0.0, "f/A/2|f/A/1": 0.0, "f/B/2|f/B/1": 1.0}
    # 8 impostor pairs: 1e-6 is not resolved (null, a note); 0.25 and 1/8 are, with items
    assert m["values"]["tar@far=1e-06"] is None and "tar@far=1e-06" not in m["items"]
    assert any("1,000,000 impostor pairs, there are 8" in note for note in m["notes"])
    assert m["values"]["tar@far=0.25"] == 1.0 and m["values"]["far@far=0.25"] == 0.25
    assert m["values"]["tar@min_far"] == 0.0 and m["values"]["min_far"] == 1 / 8
    assert m["items"]["tar@far=0.25"] == {"ids": ["f/A/1|f/A/2", "f/B/1|f/B/2"],
                                          "values": [1.0, 1.0]}
    for key, record in m["items"].items():
        assert np.mean(record["values"]) == m["values"][key]
    # the curve's first point is one of the two distractors, by the seeded order
    assert m["curves"]["rank1_vs_distractors"]["x"] == [2]
    assert m["n"] == {"probes": 4, "probe_identities": 2, "distractors": 2, "rank1_pairs": 4,
                      "genuine_pairs": 2, "impostor_pairs": 8}
    digest = hashlib.sha256(paths[1].read_bytes()).hexdigest()
    assert payload["provenance"]["distractors"] == str(paths[1])
    assert payload["provenance"]["distractors_sha256"] == digest


def test_megaface_curve_uses_nested_subsets_of_the_seeded_order(tmp_path):
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(6), 3)
    probes = rng.normal(size=(6, 8))[ids] + 0.5 * rng.normal(size=(18, 8))
    distractors = rng.normal(size=(150, 8))
    paths = [save_features(tmp_path / "p.npz", probes, [f"p{i}" for i in range(18)], ids),
             save_features(tmp_path / "d.npz", distractors, [f"d{i}" for i in range(150)],
                           np.arange(150))]
    protocol = {"kind": "megaface", "fars": [1e-6], "seed": 3, "scorers": ["cosine"]}
    curve = run_protocol("r", "megaface", protocol, paths, tmp_path, tmp_path / "m.json",
                         {"net_options": {}})["scorers"]["cosine"]["curves"]
    order = np.random.default_rng(3).permutation(150)
    expected = [megaface_identification(probes, ids, distractors[order[:d]])["rank1"]
                for d in (10, 100, 150)]
    assert curve["rank1_vs_distractors"] == {"x": [10, 100, 150], "y": expected}


def test_run_protocol_refuses_an_unknown_kind(tmp_path):
    path = sparsity_file(tmp_path)
    with pytest.raises(ValueError, match="unknown protocol kind"):
        run_protocol("r", "p", {"kind": "nonsense"}, [path], tmp_path, tmp_path / "m.json",
                     {"net_options": {}})
    assert not (tmp_path / "m.json").exists()


def test_set_kinds_leave_out_the_second_copy_of_a_duplicate_photo(tmp_path):
    """An evaluation part keeps a byte-duplicate addressable for its pairs; a kind that scores
    a set of faces counts it once. Here A's first photo is stored twice (A_0003)."""
    ids = ["lfw/A/A_0001", "lfw/A/A_0002", "lfw/A/A_0003", "lfw/B/B_0001", "lfw/B/B_0002",
           "lfw/C/C_0001", "lfw/C/C_0002"]
    who = np.array([i.split("/")[1] for i in ids])
    feats = np.random.default_rng(3).normal(size=(len(ids), 5)).astype(np.float32)
    feats[2] = feats[0]
    path = tmp_path / "f.npz"
    np.savez(path, features=feats, image_id=np.array(ids), identity=who, flip_merge="none")
    manifest = pd.DataFrame({"image_id": ids, "status": "kept",
                             "duplicate_of": ["", "", "lfw/A/A_0001", "", "", "", ""]})
    manifest.to_parquet(tmp_path / "manifest.parquet")
    protocol = {"kind": "angular_fisher", "min_images": 1}

    marked = run_protocol("r", "afs", protocol, [path], tmp_path, tmp_path / "m.json", {},
                          manifest_path=tmp_path / "manifest.parquet")
    unmarked = run_protocol("r", "afs", protocol, [path], tmp_path, tmp_path / "u.json", {})
    assert marked["provenance"]["duplicates_left_out"] == 1
    assert unmarked["provenance"]["duplicates_left_out"] == 0
    assert marked["scorers"]["angular"]["n"]["images"] == 6
    assert unmarked["scorers"]["angular"]["n"]["images"] == 7
    # the same as the six distinct photos scored directly
    s_w, s_b = angular_fisher_terms(np.delete(feats, 2, 0), np.delete(who, 2))
    assert marked["scorers"]["angular"]["values"]["afs"] == pytest.approx(fisher_ratio(s_w, s_b))
    assert unmarked["scorers"]["angular"]["values"]["afs"] != pytest.approx(
        fisher_ratio(s_w, s_b))
