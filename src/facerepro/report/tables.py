"""Paper tables: each reported number next to the reproduced one, and the papers' claims checked.

``references/<paper>.yaml`` holds, per table, its columns (a metric: protocol, scorer, value key,
scale, whether higher is better) and its rows (a label, the reported values, and the run that
reproduces them). A row or a column may name the run, the protocol or the scorer; the row's
choice wins, so a table can vary the run (one row per model), the protocol (one row per test
condition) or the scorer. A column's value key may contain ``{key}`` fields filled in from the
row's keys: ``{layer}`` (one row per feature layer of a net), ``{attribute}`` (one row per
attribute).

A claim is checked on the reproduced values of one column:

- ``order: [a, b, c]``: a is better than b, b better than c;
- ``best: a`` / ``worst: a``: a is better / worse than every other row of the table, or than
  every row listed in ``among``;
- ``at_least: {row: a, value: v}``: a reaches v (v itself included);
- ``within: {row: a, low: u, high: v}``: u <= a <= v (the papers' "about half").

Each claim ends in one of four verdicts, decided on the test items the values are means of
(:mod:`facerepro.evaluation.uncertainty`): every claimed "a better than b" is a paired test of
the two rows on the same items (exact McNemar on per-pair correctness, else a paired
bootstrap), and a bound is met or missed by the value's 95% interval.

- *held*: every comparison goes the claimed way and is significant (p < 0.05), or the interval
  lies inside the bound;
- *held within noise*: every comparison goes the claimed way, but not all significantly, or the
  value meets the bound and its interval crosses it;
- *not held within noise*: some comparison goes the other way or ties, none significantly, or
  the value misses the bound and its interval reaches it;
- *not held*: some comparison goes the other way significantly, or the interval misses the
  bound.

Rows compared with rows must differ: a tie between them is never "held" (equal numbers put
neither row ahead), for ``order``, ``best`` and ``worst`` alike. A value equal to an
``at_least`` or ``within`` bound meets it, as the claims' words ("at least 60%") say. Values
without per-item data (e.g. the angular Fisher score, a ratio), or rows scored on different
items, cannot be tested: the claim is then decided on the point values alone, *held* or *not
held*, and its row says "point values only". A claim whose rows have no reproduced value (the
run is not in this config) is "not run", never "held".

A run trained with several seeds (the config's ``seeds``) fills its cells with the mean over
its seeds and their standard deviation; its interval and every comparison it takes part in come
from the two-level bootstrap over seeds and test items (``uncertainty.seeded_interval``,
``seeded_difference``), so the verdict weighs the training seed's noise too. Without per-item
data, such a row is tested on its seeds' values alone.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from facerepro.evaluation import uncertainty

REFERENCES = Path(__file__).parent / "references"
# The papers in the order the report presents them (docs/papers.md order).
PAPERS = ("deepid2plus", "compact_int32", "facenet", "sphereface", "clmle")
HELD, NOT_HELD, NOT_RUN = "held", "not held", "not run"
HELD_NOISE, NOT_HELD_NOISE = "held within noise", "not held within noise"
# The verdicts from best to worst: a claim of several comparisons takes its worst one.
VERDICTS = (HELD, HELD_NOISE, NOT_HELD_NOISE, NOT_HELD)


def load_references(directory: Path = REFERENCES) -> list[dict]:
    """Every ``<paper>.yaml`` present, in :data:`PAPERS` order."""
    found = {p.stem: p for p in directory.glob("*.yaml")}
    unknown = sorted(set(found) - set(PAPERS))
    if unknown:
        raise ValueError(f"{directory}: reference files {unknown} are not papers of this "
                         f"project; known: {list(PAPERS)}")
    return [{"key": key, **yaml.safe_load(found[key].read_text())}
            for key in PAPERS if key in found]


def _seed_values(spec: dict, metrics: dict[tuple[str, str], dict], runs: list[str]
                 ) -> tuple[list[float], list[float], list[dict | None]]:
    """Per seed (each of ``runs`` that was evaluated): the value, the column's spread and the
    value's per-item record, in the metric's unit."""
    values, spreads, items = [], [], []
    for run in runs:
        payload = metrics.get((run, spec.get("protocol")))
        if payload is None or spec["scorer"] not in payload["scorers"]:
            continue
        entry = payload["scorers"][spec["scorer"]]
        if entry["values"].get(spec["value"]) is None:
            continue
        values.append(entry["values"][spec["value"]])
        if spec.get("spread") and entry["values"].get(spec["spread"]) is not None:
            spreads.append(entry["values"][spec["spread"]])
        items.append(entry.get("items", {}).get(spec["value"]))
    return values, spreads, items


def _cell(spec: dict, reported: float | None, metrics: dict[tuple[str, str], dict],
          groups: dict[str, list[str]]) -> dict:
    """Reported and reproduced value of one (row, column), in the column's unit: over the
    run's seeds (``groups``: a run's replicates), their mean and standard deviation."""
    scale = spec.get("scale", 1)
    run = spec.get("run")
    values, spreads, items = _seed_values(spec, metrics, groups.get(run, [run]))
    reproduced = spread = seed_sd = interval = None
    stacked = _stack(items) if values else None
    if values:
        reproduced = scale * float(np.mean(values))
        spread = scale * float(np.mean(spreads)) if spreads else None
        seed_sd = scale * float(np.std(values, ddof=1)) if len(values) > 1 else None
        if len(values) == 1 and stacked is not None:
            interval = tuple(scale * v for v in uncertainty.mean_interval(stacked[0]))
        elif len(values) > 1:
            interval = tuple(scale * v for v in uncertainty.seeded_interval(
                stacked if stacked is not None else np.array(values)[:, None]))
    diff = reproduced - reported if reproduced is not None and reported is not None else None
    # Items stay in the metric's unit (0/1 correctness stays 0/1 for McNemar).
    return {"reported": reported, "reproduced": reproduced, "spread": spread, "diff": diff,
            "interval": interval, "items": items if stacked is not None else None,
            "seed_values": values, "seed_sd": seed_sd, "scale": scale,
            "run": run, "protocol": spec.get("protocol")}


def _stack(items: list[dict | None]) -> np.ndarray | None:
    """Every seed's per-item values in the first seed's item order, as (seeds, items); None
    when a seed has no items or the seeds were scored on different items."""
    if any(record is None for record in items):
        return None
    rows = [uncertainty.align(items[0], record) for record in items]
    if any(row is None for row in rows):
        return None
    return np.stack([row[1] for row in rows])


def _sources(cells: list[dict], columns: list[dict]) -> str:
    """The runs a row's values come from, once each in column order; a protocol is named
    where it is not the column's."""
    names = []
    for cell, column in zip(cells, columns, strict=True):
        name = cell["run"]
        if cell["protocol"] and cell["protocol"] != column.get("protocol"):
            name = f"{name} / {cell['protocol']}"
        if name and name not in names:
            names.append(name)
    return ", ".join(names)


def _better(a: float, b: float, column: dict) -> bool:
    return a < b if column.get("better", "higher") == "lower" else a > b


def _worst(verdicts: list[str]) -> str:
    return max(verdicts, key=VERDICTS.index)


def _compare(better: str, worse: str, cells: dict[str, dict], column: dict) -> tuple[str, str]:
    """The verdict on "``better`` beats ``worse``" and a line with the difference, its interval
    and the paired test."""
    a, b = cells[better], cells[worse]
    ahead = _better(a["reproduced"], b["reproduced"], column)
    digits = column.get("digits", 2)
    paired = _paired(a, b)
    if paired is None:
        return (HELD if ahead else NOT_HELD,
                f"{better} - {worse}: {a['reproduced'] - b['reproduced']:+.{digits}f} "
                f"(point values only)")
    if len(paired[0]) == len(paired[1]) == 1:
        test = uncertainty.paired_difference(paired[0][0], paired[1][0])
    else:
        test = uncertainty.seeded_difference(*paired)
    if test.significant():
        verdict = HELD if ahead else NOT_HELD
    else:
        verdict = HELD_NOISE if ahead else NOT_HELD_NOISE
    diff, low, high = (a["scale"] * v for v in (test.diff, test.low, test.high))
    p = f"p {test.p:.3f}" if test.p >= 0.001 else "p < 0.001"
    return verdict, (f"{better} - {worse}: {diff:+.{digits}f} "
                     f"[{low:+.{digits}f}, {high:+.{digits}f}], {test.test} {p}")


def _paired(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Two cells' (seeds, items) values on the same items in one order; with no common items,
    their seeds' values as one item each when either has several seeds; else None."""
    if a["items"] is not None and b["items"] is not None:
        common = uncertainty.align(a["items"][0], b["items"][0])
        if common is not None:
            order = [uncertainty.align(a["items"][0], record)[1] for record in b["items"]]
            return _stack(a["items"]), np.stack(order)
    if max(len(a["seed_values"]), len(b["seed_values"])) > 1:
        return np.array(a["seed_values"])[:, None], np.array(b["seed_values"])[:, None]
    return None


def _bounded(cell: dict, low: float, high: float, digits: int) -> tuple[str, str]:
    """The verdict on ``low <= value <= high`` from the value's 95% interval."""
    value, interval = cell["reproduced"], cell["interval"]
    inside = low <= value <= high
    if interval is None:
        return HELD if inside else NOT_HELD, "point value only"
    lo, hi = interval
    if low <= lo and hi <= high:
        verdict = HELD
    elif inside:
        verdict = HELD_NOISE
    elif hi < low or lo > high:
        verdict = NOT_HELD
    else:
        verdict = NOT_HELD_NOISE
    return verdict, f"95% interval [{lo:.{digits}f}, {hi:.{digits}f}]"


def check_claim(claim: dict, columns: list[dict], rows: list[dict]) -> dict:
    """``{"text", "status", "detail"}`` for one claim on the reproduced values."""
    index = claim.get("column", 0)
    column = columns[index]
    cells = {row["label"]: row["cells"][index] for row in rows}
    value = {label: cell["reproduced"] for label, cell in cells.items()}
    digits = column.get("digits", 2)

    def show(label: str) -> str:
        seeds = len(cells[label]["seed_values"])
        if seeds < 2:
            return f"{label} {value[label]:.{digits}f}"
        sd = cells[label]["seed_sd"]
        return f"{label} {value[label]:.{digits}f} ± {sd:.{digits}f} ({seeds} seeds)"

    bounded = claim.get("at_least") or claim.get("within")
    if "order" in claim:
        named = claim["order"]
    elif bounded:
        named = [bounded["row"]]
    else:
        named = [claim.get("best") or claim.get("worst")]
    among = claim.get("among", list(value))
    unknown = [label for label in [*named, *among] if label not in value]
    if unknown:
        raise ValueError(f"claim {claim['text']!r} names rows {unknown} that the table lacks")
    # best / worst compare with every row they are ranked among, so each needs its value
    needed = named if "order" in claim or bounded else [*named, *among]
    missing = [label for label in dict.fromkeys(needed) if value[label] is None]
    if missing:
        return {"text": claim["text"], "status": NOT_RUN,
                "detail": "no reproduced value for " + ", ".join(missing), "tests": []}
    if "at_least" in claim or "within" in claim:
        label = named[0]
        if "at_least" in claim:
            low, high = claim["at_least"]["value"], float("inf")
            detail = f"{show(label)} (bound {low:g})"
        else:
            low, high = claim["within"]["low"], claim["within"]["high"]
            detail = f"{show(label)} (range {low:g} to {high:g})"
        status, test = _bounded(cells[label], low, high, digits)
        return {"text": claim["text"], "status": status, "detail": detail, "tests": [test]}
    if "order" in claim:
        ranked = list(itertools.pairwise(named))
        detail = "claimed best first: " + ", ".join(show(label) for label in named)
    else:
        label = named[0]
        others = [k for k in among if k != label]
        # (better, worse) pairs: for worst, every other row must be strictly better
        ranked = [(label, k) if "best" in claim else (k, label) for k in others]
        detail = f"{show(label)}; others: " + ", ".join(show(k) for k in others)
    verdicts, tests = zip(*(_compare(a, b, cells, column) for a, b in ranked), strict=True)
    return {"text": claim["text"], "status": _worst(list(verdicts)), "detail": detail,
            "tests": list(tests)}


def paper_tables(metrics: dict[tuple[str, str], dict], references: list[dict] | None = None,
                 groups: dict[str, list[str]] | None = None) -> list[dict]:
    """Every reference table filled with the reproduced values found in ``metrics`` (payloads
    keyed by (run, protocol)), with its claims checked. ``groups`` lists each run's seeds'
    runs (:func:`facerepro.config.seed_groups`); a run absent from it has one seed."""
    papers = []
    for paper in references if references is not None else load_references():
        tables = []
        for table in paper["tables"]:
            columns = table["columns"]
            rows = []
            for row in table["rows"]:
                reported = row.get("reported") or [None] * len(columns)
                if len(reported) != len(columns):
                    raise ValueError(f"{paper['key']}.yaml, table {table['id']}, row "
                                     f"{row['label']!r}: {len(reported)} reported values for "
                                     f"{len(columns)} columns")
                overrides = {k: row[k] for k in ("run", "protocol", "scorer") if k in row}
                cells = [_cell({**column, **overrides,
                                "value": column["value"].format_map(row)},
                               value, metrics, groups or {})
                         for column, value in zip(columns, reported, strict=True)]
                rows.append({"label": row["label"], "cells": cells,
                             "sources": _sources(cells, columns)})
            claims = [check_claim(c, columns, rows) for c in table.get("claims", [])]
            tables.append({**table, "rows": rows, "claims": claims})
        papers.append({"key": paper["key"], "paper": paper["paper"], "title": paper["title"],
                       "tables": tables})
    return papers


def claim_summary(papers: list[dict]) -> dict[str, Any]:
    """How many claims ended in each verdict, or were not run, over every paper."""
    counts = dict.fromkeys((*VERDICTS, NOT_RUN), 0)
    for paper in papers:
        for table in paper["tables"]:
            for claim in table["claims"]:
                counts[claim["status"]] += 1
    return counts
