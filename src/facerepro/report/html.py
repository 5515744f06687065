"""The HTML report: one self-contained file (figures inlined), readable offline."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

import jinja2
import pandas as pd

from facerepro.atomic import atomic_path
from facerepro.config import FITTED_METHODS, applicable_properties, load_schema
from facerepro.evaluation.metrics import read as read_metrics
from facerepro.report.figures import lines_png, roc_png
from facerepro.report.tables import claim_summary, paper_tables

TEMPLATES = Path(__file__).parent / "templates"
# Settings that change what is measured or logged, or only the speed: never a deviation.
REPORTING_ONLY = {"eval_every", "log_every", "checkpoint_every", "scorers", "fars", "gpus",
                  "amp", "compile", "channels_last", "feature_layers"}


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def dataset_summary(manifests: dict[str, str]) -> list[dict]:
    rows = []
    for name, path in manifests.items():
        m = pd.read_parquet(path)
        kept = m[m["status"] == "kept"]
        reasons = m.loc[m["status"] != "kept", "reason"].str.split(":").str[0].value_counts()
        rows.append({"dataset": name, "found": len(m), "kept": len(kept),
                     "quarantined": len(m) - len(kept),
                     "reasons": ", ".join(f"{r}: {n}" for r, n in reasons.items()) or "-",
                     "identities": kept["identity"].nunique(),
                     "splits": ", ".join(f"{s}: {n}" for s, n in
                                         kept["split"].value_counts().sort_index().items())})
    return rows


def _changed(values: dict, props: dict, prefix: str = "") -> list[str]:
    """``key = value (paper: default)`` for each value that differs from its schema default;
    nested settings key by key where the schema gives their defaults one by one. Settings the
    paper gives no value for (``x-no-paper-value`` in the schema) cannot deviate from it."""
    lines = []
    for key, value in values.items():
        sub = props.get(key, {})
        nested = sub.get("properties", {})
        if isinstance(value, dict) and any("default" in p for p in nested.values()):
            lines += _changed(value, nested, f"{prefix}{key}.")
        elif ("default" in sub and value != sub["default"] and key not in REPORTING_ONLY
              and not sub.get("x-no-paper-value")):
            lines.append(f"{prefix}{key} = {value} (paper: {sub['default']})")
    return lines


def deviations(config: dict) -> list[str]:
    """Every setting that differs from the paper's value (the schema default for the run's
    method and net, or the protocol's kind), one line each."""
    schema = load_schema()
    lines = [f"align.{line}" for line in _changed(config["align"],
                                                   schema["properties"]["align"]["properties"])]
    for run, spec in config["runs"].items():
        if spec["method"] in FITTED_METHODS:   # baselines of ours: no paper settings to keep
            continue
        changed = _changed(spec, applicable_properties(schema["$defs"]["run"], spec))
        if changed:
            lines.append(f"{run}: " + "; ".join(changed))
    for name, protocol in config["protocols"].items():
        changed = _changed(protocol, applicable_properties(schema["$defs"]["protocol"], protocol))
        if changed:
            lines.append(f"{name}: " + "; ".join(changed))
    return lines


# Curves of the analysis protocols: (curve name prefix, x label, y label, x scale).
_FIGURES = {
    "occlusion": [("bottom@", "share of the face occluded from the bottom", "LFW accuracy",
                   "linear"),
                  ("block@", "block side (pixels of a 55x47 face)", "LFW accuracy", "linear")],
    "compact_search": [("recall_vs_bins", "fraction of the bins visited", "recall", "log")],
    "sparsity": [("per_image", "neurons active on a face", "faces", "linear")],
}


def analysis_figures(payloads: dict[tuple[str, str], dict]) -> dict[str, bytes]:
    """Line plots of the analysis curves, one figure per protocol and curve kind, a line per
    run and layer: accuracy under occlusion (DeepID2+ Figs. 16-17), recall vs bins visited
    (Compact int32 Fig. 5), the active-neuron histogram (DeepID2+ Fig. 7)."""
    grouped: dict[str, dict] = defaultdict(dict)
    labels: dict[str, tuple[str, str, str]] = {}
    for (run, protocol), payload in payloads.items():
        for prefix, xlabel, ylabel, xscale in _FIGURES.get(payload["kind"], []):
            title = f"{protocol}: {prefix.rstrip('@_')}"
            for scorer in payload["scorers"].values():
                for name, curve in scorer.get("curves", {}).items():
                    if name.startswith(prefix):
                        layer = name.removeprefix(prefix)
                        label = f"{run} {layer}".strip()
                        grouped[title][label] = (curve["x"], curve["y"])
            labels[title] = (xlabel, ylabel, xscale)
    return {title: lines_png(curves, title, *labels[title], markers=True)
            for title, curves in grouped.items() if curves}


def build(config: dict, metrics: dict[tuple[str, str], str], model_infos: dict[str, str],
          manifests: dict[str, str], qa_images: dict[str, str], dest: str | Path,
          roc_dest: str | Path | None = None) -> None:
    """Render the report from the workflow's artifacts (paths keyed by run/protocol/dataset)."""
    payloads = {key: read_metrics(path) for key, path in sorted(metrics.items())}
    results, identification, analyses = [], [], []
    curves: dict[str, dict] = defaultdict(dict)
    for (run, protocol), payload in payloads.items():
        spec, settings = config["runs"][run], config["protocols"][protocol]
        row = {"run": run, "template": settings.get("template", spec["template"]),
               "protocol": protocol}
        for scorer, m in payload["scorers"].items():
            v = m["values"]
            if payload["kind"] == "lfw_identification":
                identification.append({
                    **row, "rank1": 100 * v["rank1"], "n": m["n"], "notes": m.get("notes", []),
                    "dir": [(f, 100 * v[f"dir@far={f:g}"]) for f in settings["fars"]],
                    "far_resolution": v["far_resolution"]})
            elif payload["kind"] == "lfw_pairs":
                results.append({**row, "scorer": scorer, "mean": 100 * v["accuracy_mean"],
                                "std": 100 * v["accuracy_std"], "auc": v["auc"],
                                "eer": v["eer"],
                                "val": [(f, 100 * v[f"val@far={f:g}"]) for f in settings["fars"]],
                                "far_resolution": v["far_resolution"],
                                "pairs": m["n"]["pairs"], "folds": m["n"]["folds"]})
                if "degrade" not in settings:
                    label = f"{run}, {scorer} ({100 * v['accuracy_mean']:.1f}%)"
                    curves[protocol][label] = {"fpr": m["curves"]["roc"]["x"],
                                               "tpr": m["curves"]["roc"]["y"]}
            else:
                # per-level and per-attribute values live in the paper tables and the figures
                summary = {k: x for k, x in v.items() if "@" not in k and ":" not in k
                           or k.startswith("recall@")}
                if summary:
                    analyses.append({**row, "kind": payload["kind"], "scorer": scorer,
                                     "values": summary, "n": m["n"],
                                     "notes": m.get("notes", [])})
    rocs = {p: roc_png(c, f"ROC, {p}") for p, c in curves.items()}
    figures = analysis_figures(payloads)
    if roc_dest is not None and rocs:
        with atomic_path(roc_dest) as tmp:
            tmp.write_bytes(next(iter(rocs.values())))
    runs = [json.loads(Path(p).read_text()) for _, p in sorted(model_infos.items())]
    papers = paper_tables(payloads)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        config=config,
        synthetic=any(s["kind"] == "synthfaces" for s in config["datasets"].values()),
        datasets=dataset_summary(manifests),
        qa={name: _data_uri(Path(p).read_bytes()) for name, p in qa_images.items()},
        papers=papers,
        claims=claim_summary(papers),
        results=results,
        identification=identification,
        analyses=analyses,
        rocs={p: _data_uri(png) for p, png in rocs.items()},
        figures={title: _data_uri(png) for title, png in figures.items()},
        runs=runs,
        deviations=deviations(config),
        config_text=json.dumps(config, indent=1, sort_keys=True),
    )
    with atomic_path(dest) as tmp:
        tmp.write_text(html)
