"""Fixture artifacts for the report tests: metrics files of every evaluation of
config/test.yaml (valid under the metrics schema), model infos, manifests, aligned-shard
indexes, QA images and benchmark TSVs, written without running the workflow.

:func:`write_fixture` also says what the report must show: how many figures each metrics file
yields and how many QA grids, so that the tests count against the fixture, not the template.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from facerepro.config import evaluations, load
from facerepro.evaluation import metrics

ROOT = Path(__file__).resolve().parents[1]


def _pairs_scorer(accuracy: float, fars: list[float]) -> dict:
    fpr = np.logspace(-3, 0, 25)
    values = {"accuracy_mean": accuracy, "accuracy_std": 0.01, "auc": accuracy,
              "eer": 1 - accuracy, "far_resolution": 1 / 30}
    values.update({f"val@far={f:g}": accuracy * 0.8 for f in fars})
    return {"values": values, "n": {"pairs": 60, "folds": 10},
            "per_fold": {"accuracy": [accuracy] * 10},
            "curves": {"roc": {"x": fpr.tolist(), "y": (fpr ** (1 - accuracy)).tolist()}}}


def _payload(kind: str, run: str, protocol: dict, score: float) -> dict:
    """The scorers of a plausible payload of ``kind``."""
    if kind == "lfw_pairs":
        return {s: _pairs_scorer(score - 0.01 * i, protocol["fars"])
                for i, s in enumerate(protocol["scorers"])}
    if kind == "lfw_identification":
        ranks = np.arange(1, 11)
        cmc = 1 - (1 - score) * np.exp(-0.3 * (ranks - 1))
        values = {"rank1": float(cmc[0]), "far_resolution": 1 / 150}
        for f in protocol["fars"]:
            values.update({f"dir@far={f:g}": score / 2, f"far@far={f:g}": f})
        n = {"closed_gallery": 120, "closed_probes": 100, "open_gallery": 30,
             "genuine_probes": 30, "impostor_probes": 150}
        return {"cosine": {"values": values, "n": n, "notes": ["seeded splits"],
                           "curves": {"cmc": {"x": ranks.tolist(), "y": cmc.tolist()}}}}
    if kind == "occlusion":
        layers = ["fc1", "fc2", "fc3", "fc4"] if run == "deepid2plus" else ["output"]
        values, curves = {}, {}
        for depth, layer in enumerate(layers):
            clean = score + 0.01 * depth
            for level in ("bottom", "block"):
                x = [0, *protocol[{"bottom": "bottom", "block": "blocks"}[level]]]
                y = [clean - 0.1 * i for i in range(len(x))]
                curves[f"{level}@{layer}"] = {"x": x, "y": y}
                values.update({f"{level}{v:g}@{layer}": a
                               for v, a in zip(x[1:], y[1:], strict=True)})
                values[f"mean_drop_{level}@{layer}"] = clean - float(np.mean(y[1:]))
            values[f"none@{layer}"] = clean
        return {"joint_bayesian": {"values": values, "curves": curves,
                                   "n": {"pairs": 60, "levels": 3}}}
    if kind == "sparsity":
        edges = np.linspace(0, 64, 9)
        curves = {name: {"x": edges[:-1].tolist(), "y": [1, 3, 8, 12, 8, 3, 1, 0]}
                  for name in ("per_image", "per_neuron")}
        return {"activations": {"values": {"per_image_fraction": 0.5, "per_neuron_fraction": 0.5},
                                "n": {"images": 36, "neurons": 64}, "curves": curves}}
    if kind == "compact_search":
        x = np.logspace(-3, 0, 12)
        return {"l1": {"values": {"recall@bins=0.01": score},
                       "n": {"queries": 20, "database": 200, "bits": 32},
                       "curves": {"recall_vs_bins": {"x": x.tolist(),
                                                     "y": np.sqrt(x).tolist()}}}}
    if kind == "attributes":
        # deliberately not in imbalance order: the figure sorts them
        names, levels = ["Male", "Bald", "Attractive", "Eyeglasses", "Smiling"], [11, 48, 1, 44, 3]
        accuracy = [score - 0.004 * level for level in levels]
        values = {"mean_balanced_accuracy": float(np.mean(accuracy))}
        values.update({f"balanced_accuracy:{n}": a for n, a in zip(names, accuracy, strict=True)})
        return {protocol.get("classifier", "knc"): {
            "values": values, "n": {"train": 20, "val": 5, "test": 5, "attributes": 5},
            "curves": {"attributes": {"names": names, "balanced_accuracy": accuracy,
                                      "imbalance": levels}}}}
    if kind == "megaface":
        counts = [10, 100]
        values = {"rank1": score / 2, "far_resolution": 1 / 4000, "min_far": 1 / 4000,
                  "tar@min_far": score / 3, "far@min_far": 1 / 4000}
        values.update({f"tar@far={f:g}": None for f in protocol["fars"]})
        return {"cosine": {"values": values, "notes": ["FAR 1e-06 is not resolved"],
                           "n": {"probes": 40, "distractors": 100, "impostor_pairs": 4000},
                           "curves": {"rank1_vs_distractors": {
                               "x": counts, "y": [score, score / 2]}}}}
    if kind == "angular_fisher":
        return {"angular": {"values": {"afs": 1 - score, "s_w": 1 - score, "s_b": 1.0},
                            "n": {"images": 40, "identities": 10}}}
    # clustering, selectiveness, lut_attribute and any kind added later: summary values only
    return {"cosine": {"values": {"score": score}, "n": {"images": 40}}}


# Figures the report draws per protocol: one ROC per undegraded verification protocol (counted
# apart), one CMC per identification protocol, occlusion by bottom and by block, both sparsity
# histograms, recall vs bins, attributes by imbalance, rank-1 against distractors.
FIGURES_PER_KIND = {"lfw_identification": 1, "occlusion": 2, "sparsity": 2,
                    "compact_search": 1, "attributes": 1, "megaface": 1}


def write_fixture(root: Path) -> dict:
    """Write the artifacts under ``root``; returns ``build``'s keyword arguments (less
    ``dest``), the config, and the counts the report must show: ``figures``, ``qa``."""
    config = load(ROOT / "config" / "test.yaml")
    runs = list(config["runs"])
    out: dict = {"metrics": {}, "models": {}, "manifests": {}, "qa": {}, "indexes": {}}
    figures = 0
    kinds_seen: set[str] = set()
    for run, protocol in evaluations(config):
        spec = config["protocols"][protocol]
        score = 0.6 + 0.3 * runs.index(run) / len(runs)
        scorers = _payload(spec["kind"], run, spec, score)
        path = root / "metrics" / run / f"{protocol}.json"
        metrics.write(path, run, protocol, spec["kind"], scorers, {"fixture": True})
        out["metrics"][(run, protocol)] = str(path)
        kinds_seen.add((protocol, spec["kind"], "degrade" in spec))
    for _protocol, kind, degraded in kinds_seen:
        figures += 1 if kind == "lfw_pairs" and not degraded else FIGURES_PER_KIND.get(kind, 0)
    for i, run in enumerate(runs):
        info = {"run": run, "config": config["runs"][run], "train_images": 300, "classes": 22,
                "steps": 60, "final_loss": 1.5 - 0.1 * i, "device": "cpu", "wall_time_s": 2.0,
                "commit": "0" * 40, "config_digest": f"{i:016x}"}
        path = root / "models" / f"{run}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(info))
        out["models"][run] = str(path)
    rng = np.random.default_rng(0)
    for d, dataset in enumerate(("synth/lfw", "synth/casia")):
        n = 40
        manifest = pd.DataFrame({
            "image_id": [f"{dataset}/{i}" for i in range(n)],
            "identity": [f"p{i % 8}" for i in range(n)],
            "split": ["test" if d == 0 else "train"] * n,
            "path": [f"{i}.jpg" for i in range(n)], "sha256": ["0" * 64] * n,
            "height": 250, "width": 250,
            "status": ["kept"] * (n - 2) + ["quarantined"] * 2,
            "reason": [""] * (n - 2) + ["undecodable: truncated", "duplicate: of 1.jpg"]})
        path = root / "data" / dataset / "manifest.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        manifest.to_parquet(path)
        out["manifests"][dataset] = str(path)
        shard = f"{dataset} / sphere_112x96"
        kept = n - 2
        # the second shard is MTCNN-aligned with three fallback crops
        index = pd.DataFrame({"source": ["dataset" if d == 0 else "mtcnn"] * kept,
                              "score": 1.0 if d == 0 else [0.99] * (kept - 3) + [np.nan] * 3,
                              "fallback": [False] * kept if d == 0 else
                              [False] * (kept - 3) + [True] * 3})
        shard_dir = root / "aligned" / dataset / "sphere_112x96"
        shard_dir.mkdir(parents=True, exist_ok=True)
        index.to_parquet(shard_dir / "index.parquet")
        out["indexes"][shard] = str(shard_dir / "index.parquet")
        grid = rng.integers(0, 255, (56, 96, 3), dtype=np.uint8)
        cv2.imwrite(str(shard_dir / "qa.png"), grid)
        out["qa"][shard] = str(shard_dir / "qa.png")
    bench = root / "benchmarks"
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rule, name, seconds in (("train", "softmax", 12.5), ("train", "facenet", 7.5),
                                ("evaluate", "softmax/lfw_verification", 3.0),
                                ("report", "report", 99.0)):
        path = bench / rule / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{seconds}\t0:00:01\t300.5\t1\t1\t1\t0\t0\t50\t1\n")
    out["benchmarks"] = str(bench)
    return {"kwargs": out, "config": config, "figures": figures, "qa": len(out["qa"])}
