"""The HTML report: one self-contained file (figures inlined, no script, no external resource),
readable offline, with the same figures also written as PNG files for `snakemake --report`."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd

from facerepro.align import face_policy
from facerepro.align.transform import get_template
from facerepro.atomic import atomic_path
from facerepro.config import (
    FITTED_METHODS,
    applicable_properties,
    base_run,
    digest,
    evaluations,
    load_schema,
    seed_groups,
)
from facerepro.evaluation.metrics import read as read_metrics
from facerepro.report import provenance
from facerepro.report.figures import (
    Color,
    attributes_png,
    cmc_png,
    distractors_png,
    lines_png,
    roc_png,
    run_colors,
)
from facerepro.report.groups import default_references, group_of, readers
from facerepro.report.tables import PAPERS, claim_summary, paper_tables

TEMPLATES = Path(__file__).parent / "templates"
# Settings that change what is measured or logged, or only the speed: never a deviation.
REPORTING_ONLY = {"eval_every", "log_every", "checkpoint_every", "scorers", "fars", "gpus",
                  "precision", "compile", "channels_last", "feature_layers", "seed", "seeds"}


@dataclass(frozen=True)
class Plot:
    """One report figure: its group (a paper key, ``groups.SHARED`` or ``groups.OTHER``), the
    section that shows it when no paper section does, a file name, title, caption and PNG
    bytes."""

    group: str
    section: str
    name: str
    title: str
    caption: str
    png: bytes

    @property
    def uri(self) -> str:
        return _data_uri(self.png)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def dataset_summary(manifests: Mapping[str, str]) -> list[dict]:
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


def landmark_sources(indexes: Mapping[str, str]) -> tuple[list[str], list[dict]]:
    """(every landmark source seen, one row per aligned shard): how many faces took their five
    points from each source (the dataset's annotation, MTCNN), how many were aligned from the
    part's mean face position (no face found), and the lowest detector score."""
    sources: set[str] = set()
    rows = []
    for shard, path in indexes.items():
        index = pd.read_parquet(path, columns=["source", "score", "fallback"])
        counts = {str(k): int(v) for k, v in index["source"].value_counts().items()}
        sources |= set(counts)
        fallback = int(index["fallback"].sum())
        rows.append({"shard": shard, "images": len(index), "sources": counts,
                     "fallback": fallback,
                     "fallback_pct": 100 * fallback / len(index) if len(index) else 0.0,
                     "min_score": None if index["score"].isna().all()
                     else float(index["score"].min())})
    return sorted(sources), rows


def face_policy_rows(faces: Mapping[str, str], faces_qa: Mapping[str, str]) -> list[dict]:
    """One row per part from its face policy summary (:mod:`facerepro.align.face_policy`):
    landmark sources, images, fallbacks, multi-face choices, drops by reason, and its QA grid
    (a data URI) where the policy touched any image."""
    rows = []
    for dataset, path in faces.items():
        summary = face_policy.read(path)
        rows.append({"dataset": dataset, "landmarks": ", ".join(summary["landmarks"]),
                     "images": summary["images"], **summary["counts"],
                     "dropped_by_reason": summary["dropped_by_reason"],
                     "qa": _data_uri(Path(faces_qa[dataset]).read_bytes())
                     if face_policy.touched(summary) else None})
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


# The input sizes FaceNet trains each net on (Tables 1-2; NN3 and NN4 are NN2 on smaller input).
_FACENET_INPUTS = {"facenet_nn1": {(220, 220): "NN1"},
                   "facenet_nn2": {(224, 224): "NN2", (160, 160): "NN3", (96, 96): "NN4"}}
_DEEPID_NETS = ("deepid2", "deepid2plus", "deepid2_attributes")


def _listed(names: Iterable[str], text: str) -> list[str]:
    names = list(names)
    return [f"{', '.join(names)}: {text}"] if names else []


def code_deviations(config: dict) -> list[str]:
    """Where the code itself differs from a paper, one line each with the paper's word, for
    the runs and protocols of ``config`` it concerns (none: no line). A difference a config
    key controls is a setting instead, reported by :func:`deviations` from its schema
    default; these have no key, or follow from several."""
    runs = {run: spec for run, spec in config["runs"].items() if base_run(run) == run}
    lines: list[str] = []
    lines += _listed((r for r, s in runs.items() if s["net"] in _DEEPID_NETS),
                     "conv3 and conv4 are ordinary convolutions (DeepID2, the base of DeepID2+ "
                     "and of CLMLE's attribute net: locally connected)")
    # precision's default (auto) is per device, not the papers' value: bf16 is listed here
    # (auto is bf16 on CUDA; under `device: auto` the device is the training machine's)
    lines += _listed((r for r, s in runs.items() if s["method"] not in FITTED_METHODS
                      and (s["precision"] == "bf16"
                           or (s["precision"] == "auto" and config["device"] == "cuda"))),
                     "trained in bf16 autocast where the device has native bf16 (the papers: "
                     "fp32)")
    for run, spec in runs.items():
        inputs = _FACENET_INPUTS.get(spec["net"])
        if inputs is None:
            continue
        crop = get_template(spec["template"], config["align"]["scale"])
        if (crop.height, crop.width) not in inputs:
            paper = ", ".join(f"{name} {h}x{w}" for (h, w), name in inputs.items())
            lines.append(f"{run}: {spec['net']} on {crop.height}x{crop.width} crops "
                         f"(FaceNet Tables 1-2: {paper})")
    for run, spec in runs.items():
        if (spec["method"] == "triplet" and spec["optimizer"] == "adagrad"
                and spec["schedule"] == "step" and not spec["lr_steps"]):
            lines.append(f"{run}: AdaGrad at a constant lr {spec['lr']} (FaceNet Sec. 3.3: "
                         f"starts at 0.05 and lowers it to finalise the model)")
    triplets = [r for r, s in runs.items() if s["method"] == "triplet"]
    lines += _listed(triplets, "no randomly sampled negative faces added to each batch "
                               "(FaceNet Sec. 3.2 adds them)")
    by_k: dict[int, list[str]] = defaultdict(list)
    for run, spec in runs.items():
        if spec["sampler"] == "identity":
            by_k[spec["sampler_options"]["images_per_identity"]].append(run)
    for k, names in by_k.items():
        lines += _listed(names, f"a person with fewer than {k} training images fills their "
                                f"{k} places in a batch with repeated images (FaceNet Sec. "
                                f"3.2: about 40 faces per identity in each mini-batch)")
    for dataset, held in config.get("holdout", {}).items():
        lines += _listed((r for r, s in runs.items()
                          if s.get("train") == dataset and s["method"] != "ident_verif"),
                         f"trained without the {held['identities']} people held out of "
                         f"{dataset} (DeepID2+ holds them out for its Joint Bayesian; the other "
                         f"papers train on every person)")
    lines += _listed((name for name, p in config["protocols"].items()
                      if p["kind"] == "attributes" and p["classifier"] in ("knc", "knn")),
                     "the retrieval depth is chosen on partition 1 of the partition file "
                     "(CelebA's 19,867 images that the baselines' SVMs train on; CLMLE: "
                     "10,000 validation images)")
    for name, protocol in config["protocols"].items():
        if protocol["kind"] != "megaface":
            continue
        source = config["datasets"][protocol["distractors"].split("/")[0]]
        if source["kind"] == "synthfaces":
            part = source["distractors"]
            lines.append(f"{name}: {part['images']:,} SynthFaces distractor photos of "
                         f"{part['identities']:,} people (MegaFace challenge 1: 1,000,000 "
                         f"photos of 690,572 people)")
    for name, protocol in config["protocols"].items():
        if protocol["kind"] != "ytf_videos":
            continue
        source = config["datasets"][protocol["dataset"].split("/")[0]]
        if source["kind"] == "synthfaces":
            part = source["ytf"]
            lines.append(f"{name}: SynthFaces' videos, {part['identities']:,} people with "
                         f"{part['min_videos']}-{part['max_videos']} videos of {part['frames']} "
                         f"frames, {part['folds']} folds of {part['pairs_per_fold']} same and "
                         f"{part['pairs_per_fold']} different pairs (YouTube Faces: 3,425 "
                         f"videos of 1,595 people, 181 frames on average, 10 splits of 250 + "
                         f"250 pairs)")
        # FaceNet's own rule (Sec. 5.7) is the protocol's; the other papers' are not recorded
        others = [run for run, protocol_name in evaluations(config)
                  if protocol_name == name and run in runs and runs[run]["method"] != "triplet"]
        lines += _listed(others, f"the video pairs of {name} scored by the mean similarity "
                                 f"of the first {protocol['frames']} frames of the two videos "
                                 f"(Schroff et al.'s rule, Sec. 5.7; these papers' own rules "
                                 f"are not recorded in docs/papers.md)")
    return lines


def deviations(config: dict) -> list[str]:
    """Every setting that differs from the paper's value (the schema default for the run's
    method and net, or the protocol's kind), one line each, then the code's own differences
    that concern this config (:func:`code_deviations`)."""
    schema = load_schema()
    lines = [f"align.{line}" for line in _changed(config["align"],
                                                   schema["properties"]["align"]["properties"])]
    for run, spec in config["runs"].items():
        # baselines of ours have no paper settings to keep; a replicate has its run's
        if spec["method"] in FITTED_METHODS or base_run(run) != run:
            continue
        changed = _changed(spec, applicable_properties(schema["$defs"]["run"], spec))
        if changed:
            lines.append(f"{run}: " + "; ".join(changed))
    for name, protocol in config["protocols"].items():
        changed = _changed(protocol, applicable_properties(schema["$defs"]["protocol"], protocol))
        if changed:
            lines.append(f"{name}: " + "; ".join(changed))
    return lines + code_deviations(config)


# --- figures ----------------------------------------------------------------------------------

# Curves of the analysis protocols: (curve name prefix, x label, y label, x scale, histogram).
_FIGURES = {
    "occlusion": [("bottom@", "share of the face occluded from the bottom", "LFW accuracy",
                   "linear", False),
                  ("block@", "block side (pixels of a 55x47 face)", "LFW accuracy", "linear",
                   False)],
    "compact_search": [("recall_vs_bins", "fraction of the bins visited", "recall", "log",
                        False)],
    "sparsity": [("per_image", "neurons active on a face", "faces", "linear", True),
                 ("per_neuron", "faces a neuron is active on", "neurons", "linear", True)],
}
_CAPTIONS = {
    "occlusion": "Verification accuracy as the faces are occluded (DeepID2+ Figs. 16-17), a "
                 "line per run and feature layer; nets and scorers never saw occluded faces.",
    "compact_search": "Recall of a face's other images against the fraction of code bins "
                      "visited, nearest bins first (Compact int32 Fig. 5).",
    "sparsity": "Histogram of active neurons (activation above the threshold) on the original "
                "test faces (DeepID2+ Fig. 7).",
}


def analysis_figures(payloads: Mapping[tuple[str, str], dict],
                     read_by: Mapping[tuple[str, str], list[str]]) -> list[Plot]:
    """Line plots of the analysis curves, one figure per protocol and curve kind, a line per
    run and layer: accuracy under occlusion (DeepID2+ Figs. 16-17), recall vs bins visited
    (Compact int32 Fig. 5), the active-neuron histograms (DeepID2+ Fig. 7)."""
    grouped: dict[tuple[str, str], dict] = defaultdict(dict)
    pairs: dict[tuple[str, str], set] = defaultdict(set)
    for (run, protocol), payload in payloads.items():
        for prefix, *_ in _FIGURES.get(payload["kind"], []):
            for scorer in payload["scorers"].values():
                for name, curve in scorer.get("curves", {}).items():
                    if name.startswith(prefix):
                        label = f"{run} {name.removeprefix(prefix)}".strip()
                        grouped[(protocol, prefix)][label] = (curve["x"], curve["y"])
                        pairs[(protocol, prefix)].add((run, protocol))
    kinds = {protocol: payload["kind"] for (_, protocol), payload in payloads.items()}
    plots = []
    for (protocol, prefix), curves in grouped.items():
        kind = kinds[protocol]
        _, xlabel, ylabel, xscale, histogram = next(f for f in _FIGURES[kind] if f[0] == prefix)
        title = f"{protocol}: {prefix.rstrip('@_')}"
        png = lines_png(curves, title, xlabel, ylabel, xscale=xscale, markers=not histogram,
                        steps=histogram)
        plots.append(Plot(group_of(pairs[(protocol, prefix)], read_by), "analyses",
                          _slug(title), title, _CAPTIONS[kind], png))
    return plots


def attribute_table(payloads: Mapping[tuple[str, str], dict]) -> dict[str, pd.DataFrame]:
    """Per protocol of kind ``attributes``: one row per series (the run, and its scorer when
    it has several) and attribute, with its balanced accuracy (0-1) and imbalance level (%).

    Such a payload's scorer carries ``curves["attributes"]``: ``{"names": [...],
    "balanced_accuracy": [...], "imbalance": [...]}``, one entry per attribute, imbalance =
    |positive rate - 50| in %.
    """
    rows: dict[str, list] = defaultdict(list)
    for (run, protocol), payload in payloads.items():
        if payload["kind"] != "attributes":
            continue
        scorers = payload["scorers"]
        for scorer, m in scorers.items():
            curve = m.get("curves", {}).get("attributes")
            if curve is None:
                continue
            series = run if len(scorers) == 1 else f"{run} {scorer}"
            rows[protocol] += [{"run": run, "series": series, "attribute": name,
                                "imbalance": level,
                                "balanced_accuracy": accuracy}
                               for name, accuracy, level in zip(
                                   curve["names"], curve["balanced_accuracy"],
                                   curve["imbalance"], strict=True)]
    return {protocol: pd.DataFrame(r) for protocol, r in rows.items()}


def _figures(payloads: Mapping[tuple[str, str], dict], config: dict,
             read_by: Mapping[tuple[str, str], list[str]], colors: Mapping[str, Color]
             ) -> list[Plot]:
    """Every figure of the report: ROC per verification protocol (a panel per scorer), CMC per
    identification protocol, rank-1 against distractors per MegaFace protocol, attributes by
    imbalance, the analysis curves."""
    rocs: dict[str, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
    roc_colors: dict[str, Color] = {}
    cmcs: dict[str, dict] = defaultdict(dict)
    distractor_curves: dict[str, dict] = defaultdict(dict)
    for (run, protocol), payload in payloads.items():
        for scorer, m in payload["scorers"].items():
            curves = m.get("curves", {})
            # a degraded view's ROC belongs to its paper table's number, not the shared figure
            if "roc" in curves and "degrade" not in config["protocols"][protocol]:
                label = f"{run} ({100 * m['values']['accuracy_mean']:.1f}%)"
                rocs[protocol][scorer][label] = (curves["roc"]["x"], curves["roc"]["y"])
                roc_colors[label] = colors[run]
            if "cmc" in curves:
                cmcs[protocol][run] = (curves["cmc"]["x"], curves["cmc"]["y"])
            if "rank1_vs_distractors" in curves:
                curve = curves["rank1_vs_distractors"]
                distractor_curves[protocol][run] = (curve["x"], curve["y"])
    plots = []
    for protocol, panels in rocs.items():
        group = group_of([(r, p) for r, p in payloads if p == protocol], read_by)
        plots.append(Plot(
            group, "verification", f"roc_{protocol}", f"ROC, {protocol}",
            f"ROC over all pairs of {protocol}, a panel per scorer, a line per run (log false "
            "accept rate; the legend gives the mean accuracy over the folds).",
            roc_png(panels, f"ROC, {protocol}", roc_colors)))
    for protocol, curves in cmcs.items():
        group = group_of([(r, protocol) for r in curves], read_by)
        plots.append(Plot(
            group, "identification", f"cmc_{protocol}", f"CMC, {protocol}",
            f"Closed-set CMC of {protocol}: the fraction of probes whose identity is among "
            "the k best gallery matches.", cmc_png(curves, f"CMC, {protocol}", colors)))
    for protocol, curves in distractor_curves.items():
        group = group_of([(r, protocol) for r in curves], read_by)
        plots.append(Plot(
            group, "analyses", f"distractors_{protocol}",
            f"Rank-1 against distractors, {protocol}",
            f"MegaFace challenge 1 curve of {protocol}: rank-1 identification of the probe "
            "pairs as distractors are added (nested random subsets, log axis), a line per run.",
            distractors_png(curves, f"Rank-1 against distractors, {protocol}", colors)))
    for protocol, table in attribute_table(payloads).items():
        group = group_of([(r, protocol) for r in table["run"].unique()], read_by)
        plots.append(Plot(
            group, "analyses", f"attributes_{protocol}", f"Attributes by imbalance, {protocol}",
            f"Balanced accuracy of each attribute of {protocol}, attributes sorted by imbalance "
            "level (|positive rate - 50|, %), most balanced first; dashed: chance (50%).",
            attributes_png(table, f"Attributes by imbalance, {protocol}", colors)))
    return plots + analysis_figures(payloads, read_by)


def write_figures(plots: Iterable[Plot], dest: str | Path) -> None:
    """Each figure as ``dest/{group}/{name}.png``: written into a folder beside ``dest`` and
    swapped in whole, so figures of an earlier config never linger and a crash while writing
    leaves the previous set."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for plot in plots:
        (tmp / plot.group).mkdir(exist_ok=True)
        (tmp / plot.group / f"{plot.name}.png").write_bytes(plot.png)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


# --- the report -------------------------------------------------------------------------------

def _expected(cells: list[dict]) -> list[dict]:
    """The cells of a row that should hold a reproduced number: those the paper reports, or
    all of them where the row reports nothing (a figure the paper gives no values for)."""
    reported = [c for c in cells if c["reported"] is not None]
    return [c for c in reported or cells if c["run"]]


def _papers(payloads: Mapping[tuple[str, str], dict], config: dict,
            references: list[dict]) -> list[dict]:
    """Every paper of :data:`PAPERS`, its tables filled in and annotated with what this config
    lacks for their expected cells: runs it does not define, and (run, protocol) pairs it does
    not evaluate. A paper with no references file is listed as such, not left out."""
    filled = {p["key"]: p for p in paper_tables(payloads, references, seed_groups(config))}
    papers = []
    for key in PAPERS:
        if key not in filled:
            papers.append({"key": key, "paper": key, "title": "", "tables": [],
                           "missing": f"references/{key}.yaml"})
            continue
        for table in filled[key]["tables"]:
            cells = [c for r in table["rows"] for c in _expected(r["cells"])]
            table["missing_runs"] = sorted({c["run"] for c in cells
                                            if c["run"] not in config["runs"]})
            table["unevaluated"] = sorted({f"{c['run']} on {c['protocol']}" for c in cells
                                           if c["run"] in config["runs"]
                                           and (c["run"], c["protocol"]) not in payloads})
            table["reproduced"] = sum(c["reproduced"] is not None for c in cells)
        papers.append(filled[key])
    return papers


def _rows(payloads: Mapping[tuple[str, str], dict], config: dict
          ) -> tuple[list[dict], list[dict], list[dict]]:
    """(verification, identification, analysis) table rows, one per run, protocol, scorer."""
    results, identification, analyses = [], [], []
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
            else:
                # per-level and per-attribute values live in the paper tables and the figures
                summary = {k: x for k, x in v.items() if "@" not in k and ":" not in k
                           or k.startswith("recall@")}
                if summary:
                    analyses.append({**row, "kind": payload["kind"], "scorer": scorer,
                                     "values": summary, "n": m["n"],
                                     "notes": m.get("notes", [])})
    return results, identification, analyses


def build(config: dict, *, metrics: Mapping[tuple[str, str], str], models: Mapping[str, str],
          manifests: Mapping[str, str], qa: Mapping[str, str], indexes: Mapping[str, str],
          dest: str | Path, figures_dir: str | Path | None = None,
          benchmarks: str | Path | None = None, references: list[dict] | None = None,
          faces: Mapping[str, str] | None = None, faces_qa: Mapping[str, str] | None = None
          ) -> None:
    """Render the report from the workflow's artifacts: metrics files keyed by (run, protocol),
    model infos by run, manifests by dataset, QA grids and aligned-shard indexes by shard,
    face policy summaries and their QA grids by dataset.

    ``figures_dir`` also receives every figure as a PNG file; ``benchmarks`` is the folder of
    the rules' benchmark TSVs (wall times; none shown without it); ``references`` replaces
    the packaged reported numbers (tests).
    """
    payloads = {key: read_metrics(path) for key, path in sorted(metrics.items())}
    references = list(default_references()) if references is None else references
    read_by = readers(references)
    colors = run_colors(list(config["runs"]))
    plots = _figures(payloads, config, read_by, colors)
    if figures_dir is not None:
        write_figures(plots, figures_dir)
    results, identification, analyses = _rows(payloads, config)
    papers = _papers(payloads, config, references)
    runs = [json.loads(Path(p).read_text()) for _, p in sorted(models.items())]
    sources, shards = landmark_sources(indexes)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        config=config,
        synthetic=sorted(name for name, s in config["datasets"].items()
                         if s["kind"] == "synthfaces"),
        datasets=dataset_summary(manifests),
        sources=sources,
        shards=shards,
        qa={name: _data_uri(Path(p).read_bytes()) for name, p in qa.items()},
        face_policy=face_policy_rows(faces or {}, faces_qa or {}),
        papers=papers,
        claims=claim_summary(papers),
        seeded={run: len(group) for run, group in seed_groups(config).items()
                if len(group) > 1},
        results=results,
        identification=identification,
        analyses=analyses,
        plots=plots,
        paper_keys={p["key"] for p in papers},
        runs=runs,
        deviations=deviations(config),
        provenance={
            "git": provenance.git_state(),
            "config_digest": digest(config),
            "packages": provenance.package_versions(),
            "machine": provenance.machine(),
            "devices": sorted({str(r.get("device")) for r in runs}),
            "wall_times": provenance.wall_times(benchmarks) if benchmarks is not None else None,
        },
        config_text=json.dumps(config, indent=1, sort_keys=True),
    )
    with atomic_path(dest) as tmp:
        tmp.write_text(html)
