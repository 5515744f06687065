"""Run one configured protocol on a features file and write its metrics with provenance.

Kinds: ``lfw_pairs`` (k-fold verification, any scorer), ``lfw_identification`` (closed- and
open-set identification, Best-Rowden et al., on our seeded splits), ``clustering``
(agglomerative clustering of the test identities, FaceNet Sec. 5.7), ``angular_fisher``
(SphereFace's angular Fisher score of the test features, Table 6), and for DeepID2+
``occlusion`` (verification of every feature layer as the faces are occluded, Figs. 16-17),
``sparsity`` (Fig. 7) and ``selectiveness`` (single-neuron accuracy, Figs. 9-10), and for
Compact int32 ``compact_search`` (recall vs bins visited, Fig. 5) and ``lut_attribute`` (the
look-up-table gender classifier), and for CLMLE ``attributes`` (balanced accuracy of every
attribute, Table 5) and ``imbalanced_classification`` (power-law classes, Table 8). A
protocol's ``template`` and ``degrade`` keys choose the features
:class:`~facerepro.features.View` it reads, its ``layer`` key the features layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from facerepro import features
from facerepro.data.download import sha256_of
from facerepro.data.imbalance import TEST, TRAIN, power_law_split
from facerepro.data.protocols import attributes_of, read_pairs, splits_of
from facerepro.evaluation import metrics
from facerepro.evaluation.analysis import (
    angular_fisher_terms,
    best_neurons,
    binarize,
    fisher_ratio,
    neuron_selectiveness,
    one_vs_rest,
    sparsity_histograms,
    sparsity_summary,
)
from facerepro.evaluation.attributes import balanced_accuracy, imbalance_level
from facerepro.evaluation.clustering import clustering_scores
from facerepro.evaluation.compact_search import (
    LookupTableClassifier,
    recall_at_bins_fraction,
    search_recall_curve,
)
from facerepro.evaluation.identification import (
    closed_set_identification,
    closed_set_split,
    open_set_identification,
    open_set_split,
)
from facerepro.evaluation.joint_bayesian import JointBayesian
from facerepro.evaluation.knc import InstanceKNN, KNearestClusterClassifier, select_n_clusters
from facerepro.evaluation.verification import SCORERS, Scorer, verify_pairs


def protocol_view(protocol: dict) -> features.View:
    """The features view a protocol reads: all images, through its crop and degradation."""
    degrade = protocol.get("degrade", {})
    return features.View("all", protocol.get("template"), degrade.get("jpeg_quality"),
                         degrade.get("resolution"))


def protocol_views(protocol: dict) -> list[features.View]:
    """Every features view a protocol reads, its own first; an occlusion curve adds one view
    per occlusion level."""
    view = protocol_view(protocol)
    if protocol["kind"] == "imbalanced_classification":
        return [replace(view, subset=TRAIN)]
    if protocol["kind"] != "occlusion":
        return [view]
    return [view, *(replace(view, bottom=f) for f in protocol["bottom"]),
            *(replace(view, block=size) for size in protocol["blocks"])]


# Joint Bayesian on the real-valued features, and on the binarised codes (DeepID2+ Table 4).
JB_SCORERS = {"joint_bayesian": lambda x: x, "joint_bayesian_binary": binarize}


def joint_bayesian_scorer(name: str, options: dict, train_path: str | Path,
                          layer: str | None = None) -> Scorer:
    """JB fitted on held-out identities' features (never the protocol's own identities)."""
    code = JB_SCORERS[name]
    x, _, identity = features.load(train_path, layer)
    model = JointBayesian(**options).fit(code(x).astype(np.float64), identity)
    return lambda a, b: model.score_pairs(code(a), code(b))


def _scorer(name: str, protocol: dict, jb_train_path: str | Path | None, layer: str | None,
            provenance: dict) -> Scorer:
    if name not in JB_SCORERS:
        return SCORERS[name]
    provenance["joint_bayesian_train"] = str(jb_train_path)
    provenance["joint_bayesian_train_sha256"] = sha256_of(jb_train_path)
    options = {k: v for k, v in protocol["joint_bayesian"].items() if k != "train"}
    return joint_bayesian_scorer(name, options, jb_train_path, layer)


def _pairs(protocol: dict, dataset_root: str | Path, provenance: dict) -> pd.DataFrame:
    pairs_file = Path(dataset_root) / protocol["pairs_file"]
    provenance.update(pairs_file=str(pairs_file), pairs_sha256=sha256_of(pairs_file))
    return read_pairs(pairs_file)


def verification(protocol: dict, features_path: str | Path, dataset_root: str | Path,
                 jb_train_path: str | Path | None, provenance: dict) -> dict[str, dict]:
    """k-fold verification over the dataset's pairs file, once per scorer."""
    layer = protocol.get("layer")
    feats, image_ids, _ = features.load(features_path, layer)
    pairs = _pairs(protocol, dataset_root, provenance)
    return {scorer: verify_pairs(feats, image_ids, pairs,
                                 _scorer(scorer, protocol, jb_train_path, layer, provenance),
                                 protocol["fars"])
            for scorer in protocol["scorers"]}


def _level(view: features.View) -> str:
    """An occlusion level's name: ``none``, ``bottom0.3``, ``block30``."""
    if view.bottom is not None:
        return f"bottom{view.bottom:g}"
    return "none" if view.block is None else f"block{view.block}"


def occlusion(protocol: dict, features_paths: Sequence[str | Path], dataset_root: str | Path,
              jb_train_path: str | Path | None, provenance: dict) -> dict[str, dict]:
    """Verification accuracy of every feature layer at every occlusion level (DeepID2+ Figs.
    16-17); the scorers (Joint Bayesian included) are trained on unoccluded faces.

    Values ``<level>@<layer>`` (level ``none``, ``bottom0.1`` ..., ``block10`` ...), and per
    layer ``mean_drop_bottom@<layer>`` / ``mean_drop_block@<layer>``: the mean fall of the
    accuracy from the unoccluded one over the levels, the number that says which layer
    degrades fastest.
    """
    views = protocol_views(protocol)
    pairs = _pairs(protocol, dataset_root, provenance)
    layers = features.layers(features_paths[0]) or [None]
    out = {}
    for scorer in protocol["scorers"]:
        values, curves = {}, {}
        for layer in layers:
            score = _scorer(scorer, protocol, jb_train_path, layer, provenance)
            accuracy = {}
            for view, path in zip(views, features_paths, strict=True):
                feats, image_ids, _ = features.load(path, layer)
                result = verify_pairs(feats, image_ids, pairs, score, protocol["fars"])
                accuracy[_level(view)] = result["values"]["accuracy_mean"]
            name = layer or features.OUTPUT
            values.update({f"{level}@{name}": acc for level, acc in accuracy.items()})
            for kind, levels in (("bottom", protocol["bottom"]), ("block", protocol["blocks"])):
                ys = [accuracy[f"{kind}{level:g}"] for level in levels]
                values[f"mean_drop_{kind}@{name}"] = accuracy["none"] - float(np.mean(ys))
                curves[f"{kind}@{name}"] = {"x": [0, *levels], "y": [accuracy["none"], *ys]}
        out[scorer] = {"values": values, "curves": curves,
                       "n": {"pairs": len(pairs), "levels": len(views)},
                       "notes": ["nets and scorers trained on unoccluded faces; the blocks are "
                                 "the same for every run (one fixed seed)"]}
    return out


def identification(protocol: dict, feats: np.ndarray, identity: np.ndarray) -> dict[str, dict]:
    """Closed-set rank-1 / CMC and open-set DIR at FAR on seeded splits (cosine)."""
    closed = closed_set_identification(
        feats, identity, closed_set_split(identity, **protocol["closed_set"],
                                          seed=protocol["seed"]), protocol["max_rank"])
    opened = open_set_identification(
        feats, identity, open_set_split(identity, **protocol["open_set"], seed=protocol["seed"]),
        protocol["fars"])
    values = {"rank1": closed["rank1"],
              "far_resolution": 1 / opened["impostor_probes"]}
    for row in opened["dir_at_far"]:
        values[f"dir@far={row['far']:g}"] = row["dir"]
        values[f"far@far={row['far']:g}"] = row["realised_far"]
    ranks = list(range(1, len(closed["cmc"]) + 1))
    return {"cosine": {
        "values": values,
        "n": {"closed_gallery": closed["gallery"], "closed_probes": closed["probes"],
              "open_gallery": opened["gallery"], "genuine_probes": opened["genuine_probes"],
              "impostor_probes": opened["impostor_probes"]},
        "curves": {"cmc": {"x": ranks, "y": closed["cmc"]}},
        "notes": ["The published Best-Rowden et al. split files are not available: both splits "
                  f"are ours, drawn with seed {protocol['seed']} at the configured sizes."]}}


def _people_with(identity: np.ndarray, min_images: int) -> np.ndarray:
    """Rows of the identities that have at least ``min_images`` images."""
    names, inverse, counts = np.unique(identity, return_inverse=True, return_counts=True)
    rows = np.flatnonzero(counts[inverse] >= min_images)
    if len(np.unique(identity[rows])) < 2:
        raise ValueError(f"fewer than 2 identities have {min_images} images or more "
                         f"({len(names)} identities in all); lower min_images")
    return rows


def clustering(protocol: dict, feats: np.ndarray, identity: np.ndarray) -> dict[str, dict]:
    """Agglomerative clustering (cosine distance) of every image of the identities with at
    least ``min_images`` images, scored by pairwise F-measure and NMI."""
    rows = _people_with(identity, protocol["min_images"])
    threshold = protocol["distance_threshold"]
    scores = clustering_scores(feats[rows], identity[rows], distance_threshold=threshold,
                               linkage=protocol["linkage"])
    notes = [f"{protocol['linkage']} linkage on the cosine distance"]
    notes.append("stopped at the true number of identities (an oracle count)" if threshold is None
                 else f"stopped at cosine distance {threshold:g}")
    n_clusters, n_identities = scores.pop("n_clusters"), scores.pop("n_identities")
    return {"cosine": {"values": scores,
                       "n": {"images": len(rows), "identities": int(n_identities),
                             "clusters": int(n_clusters)},
                       "notes": notes}}


def angular_fisher(protocol: dict, feats: np.ndarray, identity: np.ndarray) -> dict[str, dict]:
    """AFS = S_w / S_b over the identities with at least ``min_images`` images."""
    rows = _people_with(identity, protocol["min_images"])
    s_w, s_b = angular_fisher_terms(feats[rows], identity[rows])
    return {"angular": {"values": {"afs": fisher_ratio(s_w, s_b), "s_w": s_w, "s_b": s_b},
                        "n": {"images": len(rows),
                              "identities": len(np.unique(identity[rows]))}}}


def sparsity(protocol: dict, features_path: str | Path) -> dict[str, dict]:
    """How many neurons each face activates and on how many faces each neuron is active."""
    acts, _, _ = features.load(features_path, protocol.get("layer"), original_only=True)
    summary = sparsity_summary(acts, protocol["threshold"])
    counts = {"images": summary.pop("n_images"), "neurons": summary.pop("n_neurons")}
    curves = {name: {"x": h["edges"][:-1].tolist(), "y": h["counts"].tolist()}
              for name, h in sparsity_histograms(acts, protocol["threshold"],
                                                 protocol["bins"]).items()}
    return {"activations": {"values": summary, "n": counts, "curves": curves,
                            "notes": [f"active = activation > {protocol['threshold']:g}; the "
                                      f"original faces only (not the flipped copies)"]}}


def selectiveness(protocol: dict, features_path: str | Path,
                  dataset_root: str | Path) -> dict[str, dict]:
    """Best single-neuron balanced accuracy per identity (the ``identities`` people with the
    most images) and per binary attribute of the dataset's attribute file, one target vs the
    rest; the threshold is chosen on the same faces, so these are upper bounds."""
    acts, image_ids, identity = features.load(features_path, protocol.get("layer"),
                                              original_only=True)
    names, counts = np.unique(identity, return_counts=True)
    top = names[np.argsort(-counts, kind="stable")[:protocol["identities"]]]
    classes, targets = one_vs_rest(np.where(np.isin(identity, top), identity, ""))
    keep = classes != ""
    _, id_best = best_neurons(neuron_selectiveness(acts, targets[:, keep]))
    attrs, labelled = attributes_of(image_ids, Path(dataset_root) / protocol["attributes_file"])
    varied = attrs.columns[(attrs.any() & ~attrs.all()).to_numpy()]
    _, attr_best = best_neurons(neuron_selectiveness(acts[labelled],
                                                     attrs[varied].to_numpy(bool)))
    values = {"identity_best_mean": float(id_best.mean()),
              "identity_best_min": float(id_best.min()),
              "attribute_best_mean": float(attr_best.mean())}
    values.update({f"attribute:{a}": float(v) for a, v in zip(varied, attr_best, strict=True)})
    return {"single_neuron": {
        "values": values,
        "n": {"images": len(acts), "neurons": acts.shape[1], "identities": int(keep.sum()),
              "attributes": len(varied), "attribute_images": int(labelled.sum())},
        "notes": ["balanced accuracy of the best neuron with the best threshold on the same "
                  "faces (in-sample: an upper bound)"]}}


def compact_search(protocol: dict, features_path: str | Path, bits: int) -> dict[str, dict]:
    """Recall of a face's other images against the fraction of code bins visited, bins in
    ascending distance from the query's code (Compact int32 Fig. 5)."""
    codes, _, identity = features.load(features_path)
    curve = search_recall_curve(codes.astype(np.int64), identity, bits, protocol["min_images"])
    values = {f"recall@bins={f:g}": recall_at_bins_fraction(curve, f)
              for f in protocol["bins_fractions"]}
    return {"l1": {"values": values,
                   "n": {"queries": int(curve.attrs["n_queries"]),
                         "database": int(curve.attrs["n_database"]),
                         "bits": codes.shape[1] * bits},
                   "curves": {"recall_vs_bins": {"x": curve["bins_fraction"].tolist(),
                                                 "y": curve["recall"].tolist()}}}}


def lut_attribute(protocol: dict, features_path: str | Path, train_path: str | Path,
                  dataset_root: str | Path, train_root: str | Path,
                  bits: int) -> dict[str, dict]:
    """The look-up-table classifier of one binary attribute (Compact int32: gender): label
    counts per code bin from the training faces, the query's bin (or the nearest non-empty
    bins) decides."""
    attribute = protocol["attribute"]

    def labelled(path: str | Path, root: str | Path, file: str) -> tuple[np.ndarray, np.ndarray]:
        codes, image_ids, _ = features.load(path)
        attrs, rows = attributes_of(image_ids, Path(root) / file)
        return codes[rows].astype(np.int64), attrs[attribute].to_numpy()

    x_train, y_train = labelled(train_path, train_root, protocol["train_attributes_file"])
    x_test, y_test = labelled(features_path, dataset_root, protocol["attributes_file"])
    lut = LookupTableClassifier(bits).fit(x_train, y_train)
    _, radius = lut.lookup(x_test)
    pred = lut.predict(x_test)
    return {"lookup_table": {
        "values": {"accuracy": float(np.mean(pred == y_test)),
                   "balanced_accuracy": float(balanced_accuracy(
                       y_test[:, None], pred[:, None])["balanced_accuracy"].iloc[0]),
                   "empty_bin_fraction": float(np.mean(radius > 0))},
        "n": {"train": len(x_train), "test": len(x_test), "bins": len(lut.bin_ids_)}}}


# The classifiers of CLMLE's tables: Eq. 10's k nearest clusters, the instance-kNN ablation,
# and a linear SVM, "SVM training for other methods" on CelebA's second partition.
_DEPTH = {"knc": "n_clusters", "knn": "n_neighbors"}


def _retrieval(protocol: dict) -> KNearestClusterClassifier | InstanceKNN:
    if protocol["classifier"] == "knc":
        return KNearestClusterClassifier(protocol["cluster_size"], seed=protocol["seed"])
    return InstanceKNN()


def _classify(protocol: dict, fit: tuple[np.ndarray, np.ndarray],
              tune: tuple[np.ndarray, np.ndarray], test: np.ndarray) -> tuple[np.ndarray, int]:
    """Predictions for ``test`` and the retrieval depth chosen on ``tune`` (0 for the SVM, which
    is fitted on ``tune``)."""
    from sklearn.svm import LinearSVC

    x, y = fit if protocol["classifier"] != "svm" else tune
    if len(np.unique(y)) < 2:          # nothing to separate: every face gets the one class
        return np.full(len(test), y[0]), 0
    if protocol["classifier"] == "svm":
        return LinearSVC().fit(x, y).predict(test), 0
    clf = _retrieval(protocol).fit(x, y)
    depth, _ = select_n_clusters(clf, *tune, protocol["depths"])
    return clf.set_params(**{_DEPTH[protocol["classifier"]]: depth}).predict(test), depth


def attribute_prediction(protocol: dict, features_path: str | Path, dataset_root: str | Path,
                         run_config: dict) -> dict[str, dict]:
    """Balanced accuracy of every binary attribute on CelebA's test partition (CLMLE Table 5).

    A net trained on attributes has one head per attribute and each attribute reads its own
    head; any other net's one embedding serves every attribute (Triplet-kNN). kNC and kNN are
    fitted on the training partition with the depth chosen on the validation partition; the
    SVM is fitted on the validation partition (the paper's "SVM training" split).
    """
    feats, image_ids, _ = features.load(features_path, protocol.get("layer"))
    root = Path(dataset_root)
    attrs, listed = attributes_of(image_ids, root / protocol["attributes_file"])
    feats, split = feats[listed], splits_of(image_ids[listed], root / protocol["partition_file"])
    truth, names = attrs.to_numpy(bool), list(attrs.columns)
    heads = run_config["labels"] == "attributes"
    width = feats.shape[1] // len(names) if heads else feats.shape[1]
    if heads and width * len(names) != feats.shape[1]:
        raise ValueError(f"{features_path}: {feats.shape[1]} features do not split into "
                         f"{len(names)} attribute heads")
    rows = {name: split == name for name in ("train", "val", "test")}
    pred, depths = np.zeros((rows["test"].sum(), len(names)), bool), []
    for a in range(len(names)):
        x = feats[:, a * width:(a + 1) * width] if heads else feats
        fit, tune = ((x[rows[s]], truth[rows[s], a]) for s in ("train", "val"))
        pred[:, a], depth = _classify(protocol, fit, tune, x[rows["test"]])
        depths.append(depth)
    table = balanced_accuracy(truth[rows["test"]], pred, names)
    imbalance = imbalance_level(truth[rows["train"]], names)
    scored = table["reason"] == ""
    values = {"mean_balanced_accuracy": float(table.loc[scored, "balanced_accuracy"].mean())}
    values.update({f"balanced_accuracy:{n}": float(v)
                   for n, v in table.loc[scored, "balanced_accuracy"].items()})
    notes = [f"{protocol['classifier']} per attribute"]
    if protocol["classifier"] != "svm":
        notes.append(f"depth chosen on the validation partition; median {np.median(depths):g}")
    if (~scored).any():
        notes.append(f"{int((~scored).sum())} attributes have one class only in the test "
                     f"partition and are left out of the mean")
    return {protocol["classifier"]: {
        "values": values,
        "n": {s: int(r.sum()) for s, r in rows.items()} | {"attributes": int(scored.sum())},
        "curves": {"attributes": {"names": list(table.index[scored]),
                                  "balanced_accuracy": table.loc[scored,
                                                                 "balanced_accuracy"].tolist(),
                                  "imbalance": imbalance[scored].tolist()}},
        "notes": notes}}


def imbalanced_classification(protocol: dict, features_path: str | Path,
                              run_config: dict) -> dict[str, dict]:
    """Mean class-balanced accuracy on the power-law classes the run trained on (CLMLE Table 8):
    the classifier is fitted on the run's training faces and tested on the held-apart faces of
    the same classes, ``test_per_class`` each."""
    if "imbalance" not in run_config:
        raise ValueError("imbalanced_classification scores runs trained on a power-law subsample:"
                         " give the run an `imbalance` setting, or leave it out of the protocol's"
                         " runs")
    from sklearn.metrics import balanced_accuracy_score

    feats, image_ids, identity = features.load(features_path, protocol.get("layer"))
    split = power_law_split(image_ids, identity, **run_config["imbalance"])
    row = pd.Series(np.arange(len(image_ids)), index=image_ids.astype(str))
    train, test = (split[split["role"] == role] for role in (TRAIN, TEST))
    clf = _retrieval(protocol).fit(feats[row[train["image_id"]]], train["identity"].to_numpy())
    clf.set_params(**{_DEPTH[protocol["classifier"]]: protocol["depth"]})
    pred = clf.predict(feats[row[test["image_id"]]])
    sizes = train["identity"].value_counts()
    return {protocol["classifier"]: {
        "values": {"mean_class_balanced_accuracy": float(balanced_accuracy_score(
                       test["identity"], pred)),
                   "imbalance_ratio": float(sizes.max() / sizes.min())},
        "n": {"classes": len(sizes), "train": len(train), "test": len(test),
              "largest_class": int(sizes.max()), "smallest_class": int(sizes.min())},
        "notes": [f"power law gamma {run_config['imbalance']['gamma']:g}: "
                  f"{int(sizes.max())} to {int(sizes.min())} training faces per class"]}}


def run_protocol(run: str, name: str, protocol: dict, features_paths: Sequence[str | Path],
                 dataset_root: str | Path, dest: str | Path, run_config: dict,
                 jb_train_path: str | Path | None = None,
                 train_path: str | Path | None = None,
                 train_root: str | Path | None = None) -> dict:
    """Evaluate one run on one configured protocol and write the metrics file.

    ``features_paths`` are the views of :func:`protocol_views`, in order; ``jb_train_path``
    the held-out features Joint Bayesian learns from; ``train_path`` and ``train_root`` the
    training faces' features and dataset of a look-up table.
    """
    kind, main = protocol["kind"], features_paths[0]
    provenance = {"features": str(main), "features_sha256": sha256_of(main)}
    bits = run_config["net_options"].get("bits", 1)
    if kind == "lfw_pairs":
        scorers = verification(protocol, main, dataset_root, jb_train_path, provenance)
    elif kind == "occlusion":
        scorers = occlusion(protocol, features_paths, dataset_root, jb_train_path, provenance)
    elif kind == "sparsity":
        scorers = sparsity(protocol, main)
    elif kind == "selectiveness":
        scorers = selectiveness(protocol, main, dataset_root)
    elif kind == "compact_search":
        scorers = compact_search(protocol, main, bits)
    elif kind == "lut_attribute":
        scorers = lut_attribute(protocol, main, train_path, dataset_root, train_root, bits)
    elif kind == "attributes":
        scorers = attribute_prediction(protocol, main, dataset_root, run_config)
    elif kind == "imbalanced_classification":
        scorers = imbalanced_classification(protocol, main, run_config)
    else:
        feats, _, identity = features.load(main, protocol.get("layer"))
        by_identity = {"lfw_identification": identification, "clustering": clustering,
                       "angular_fisher": angular_fisher}
        if kind not in by_identity:
            raise ValueError(f"unknown protocol kind {kind!r}")
        scorers = by_identity[kind](protocol, feats, identity)
    return metrics.write(dest, run, name, kind, scorers, provenance)
