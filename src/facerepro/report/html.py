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
from facerepro.config import load_schema
from facerepro.evaluation.metrics import read as read_metrics
from facerepro.report.figures import roc_png

TEMPLATES = Path(__file__).parent / "templates"


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


def deviations(config: dict) -> list[str]:
    """Every setting that differs from the paper's value (the schema default), one line each."""
    schema = load_schema()
    lines = []
    align_defaults = schema["properties"]["align"]["properties"]
    for key, value in config["align"].items():
        if value != align_defaults[key]["default"]:
            lines.append(f"align.{key} = {value} (paper: {align_defaults[key]['default']})")
    run_defaults = schema["$defs"]["run"]["properties"]
    for run, spec in config["runs"].items():
        if spec["method"] == "pixels_pca":     # a baseline of ours: no paper settings to keep
            continue
        changed = [f"{k} = {v} (paper: {run_defaults[k]['default']})" for k, v in spec.items()
                   if "default" in run_defaults[k] and v != run_defaults[k]["default"]]
        if changed:
            lines.append(f"{run}: " + "; ".join(changed))
    return lines


def build(config: dict, metrics: dict[tuple[str, str], str], model_infos: dict[str, str],
          manifests: dict[str, str], qa_images: dict[str, str], dest: str | Path,
          roc_dest: str | Path | None = None) -> None:
    """Render the report from the workflow's artifacts (paths keyed by run/protocol/dataset)."""
    results, curves = [], defaultdict(dict)
    for (run, protocol), path in sorted(metrics.items()):
        spec = config["runs"][run]
        fars = config["protocols"][protocol]["fars"]
        for scorer, m in read_metrics(path)["scorers"].items():
            v = m["values"]
            results.append({"run": run, "method": spec["method"], "net": spec["net"],
                            "template": spec["template"], "protocol": protocol,
                            "scorer": scorer, "mean": 100 * v["accuracy_mean"],
                            "std": 100 * v["accuracy_std"], "auc": v["auc"], "eer": v["eer"],
                            "val": [(f, 100 * v[f"val@far={f:g}"]) for f in fars],
                            "far_resolution": v["far_resolution"],
                            "pairs": m["n"]["pairs"], "folds": m["n"]["folds"]})
            label = f"{run}, {scorer} ({100 * v['accuracy_mean']:.1f}%)"
            curves[protocol][label] = {"fpr": m["curves"]["roc"]["x"],
                                       "tpr": m["curves"]["roc"]["y"]}
    rocs = {p: roc_png(c, f"ROC, {p}") for p, c in curves.items()}
    if roc_dest is not None and rocs:
        with atomic_path(roc_dest) as tmp:
            tmp.write_bytes(next(iter(rocs.values())))
    runs = [json.loads(Path(p).read_text()) for _, p in sorted(model_infos.items())]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        config=config,
        synthetic=any(s["kind"] == "synthfaces" for s in config["datasets"].values()),
        datasets=dataset_summary(manifests),
        qa={name: _data_uri(Path(p).read_bytes()) for name, p in qa_images.items()},
        results=results,
        rocs={p: _data_uri(png) for p, png in rocs.items()},
        runs=runs,
        deviations=deviations(config),
        config_text=json.dumps(config, indent=1, sort_keys=True),
    )
    with atomic_path(dest) as tmp:
        tmp.write_text(html)
