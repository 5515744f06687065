"""CLMLE's classification protocols: balanced accuracy of every face attribute on CelebA
(Table 5, kind ``attributes``) and class-balanced accuracy on power-law imbalanced identities
(Table 8, kind ``imbalanced_classification``).

The classifiers are the paper's: Eq. 10's k nearest clusters (``knc``), the instance-kNN
ablation (``knn``), and a linear SVM, "SVM training for other methods" on CelebA's second
partition (:mod:`facerepro.evaluation.knc`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facerepro import features
from facerepro.data.imbalance import TEST, TRAIN
from facerepro.data.protocols import attributes_of, splits_of
from facerepro.evaluation import metrics
from facerepro.evaluation.attributes import balanced_accuracy, imbalance_level
from facerepro.evaluation.context import KINDS, ProtocolContext
from facerepro.evaluation.knc import InstanceKNN, KNearestClusterClassifier, select_n_clusters

# The parameter that sets how many clusters or neighbours a retrieval classifier consults.
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


@KINDS.register("attributes")
def attribute_prediction(ctx: ProtocolContext) -> dict[str, dict]:
    """Balanced accuracy of every binary attribute on CelebA's test partition (CLMLE Table 5).

    A net trained on attributes has one head per attribute and each attribute reads its own
    head; any other net's one embedding serves every attribute (Triplet-kNN). kNC and kNN are
    fitted on the training partition with the depth chosen on the validation partition; the
    SVM is fitted on the validation partition (the paper's "SVM training" split).
    """
    protocol = ctx.protocol
    feats, image_ids, _ = features.load(ctx.features_path, protocol.get("layer"))
    root = Path(ctx.dataset_root)
    attrs, listed = attributes_of(image_ids, root / protocol["attributes_file"])
    feats, split = feats[listed], splits_of(image_ids[listed], root / protocol["partition_file"])
    truth, names = attrs.to_numpy(bool), list(attrs.columns)
    heads = ctx.run_config["labels"] == "attributes"
    width = feats.shape[1] // len(names) if heads else feats.shape[1]
    if heads and width * len(names) != feats.shape[1]:
        raise ValueError(f"{ctx.features_path}: {feats.shape[1]} features do not split into "
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
        "items": {"mean_balanced_accuracy": metrics.items(
            table.index[scored], table.loc[scored, "balanced_accuracy"])},
        "curves": {"attributes": {"names": list(table.index[scored]),
                                  "balanced_accuracy": table.loc[scored,
                                                                 "balanced_accuracy"].tolist(),
                                  "imbalance": imbalance[scored].tolist()}},
        "notes": notes}}


@KINDS.register("imbalanced_classification")
def imbalanced_classification(ctx: ProtocolContext) -> dict[str, dict]:
    """Mean class-balanced accuracy on the power-law classes the run trained on (CLMLE Table 8):
    the classifier is fitted on the run's training faces and tested on the held-apart faces of
    the same classes, ``test_per_class`` each (the ``powerlaw`` features view holds both, each
    with its role)."""
    protocol, run_config = ctx.protocol, ctx.run_config
    if "imbalance" not in run_config:
        raise ValueError("imbalanced_classification scores runs trained on a power-law subsample:"
                         " give the run an `imbalance` setting, or leave it out of the protocol's"
                         " runs")
    from sklearn.metrics import balanced_accuracy_score

    feats, image_ids, identity = features.load(ctx.features_path, protocol.get("layer"))
    # In image-id order, as power_law_split lists the faces: the clustering sees one order
    # whatever the shard's.
    order = np.argsort(image_ids, kind="stable")
    feats, identity = feats[order], identity[order]
    role = features.roles(ctx.features_path)[order]
    train, test = role == TRAIN, role == TEST
    clf = _retrieval(protocol).fit(feats[train], identity[train])
    clf.set_params(**{_DEPTH[protocol["classifier"]]: protocol["depth"]})
    pred = clf.predict(feats[test])
    sizes = pd.Series(identity[train]).value_counts()
    # Class-balanced accuracy is the mean of the per-class recalls: those are its items.
    recall = pd.Series(pred == identity[test]).groupby(identity[test]).mean()
    return {protocol["classifier"]: {
        "values": {"mean_class_balanced_accuracy": float(balanced_accuracy_score(
                       identity[test], pred)),
                   "imbalance_ratio": float(sizes.max() / sizes.min())},
        "items": {"mean_class_balanced_accuracy": metrics.items(recall.index, recall)},
        "n": {"classes": len(sizes), "train": int(train.sum()), "test": int(test.sum()),
              "largest_class": int(sizes.max()), "smallest_class": int(sizes.min())},
        "notes": [f"power law gamma {run_config['imbalance']['gamma']:g}: "
                  f"{int(sizes.max())} to {int(sizes.min())} training faces per class"]}}
