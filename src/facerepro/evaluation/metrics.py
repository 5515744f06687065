"""The one metrics file format every evaluate rule writes, validated on write and on read.

    {"run": ..., "protocol": ..., "kind": ...,
     "scorers": {scorer: {"values": {metric: number}, "per_fold": {metric: [numbers]},
                          "n": {count: int}, "curves": {name: {"x": [...], "y": [...]}},
                          (or {"names", "balanced_accuracy", "imbalance"} per attribute),
                          "items": {metric: {"ids": [str], "values": [numbers]}},
                          "notes": [str]}},
     "provenance": {...}}

``values`` are the summaries a report table reads (accuracy_mean, val@far=0.001, rank1, ...);
``per_fold`` keeps the values behind each summary; ``n`` says how many pairs, probes or folds
it rests on. A null value means "not measurable here" and comes with a note saying why.
``items`` keeps, for a summary that is a mean over test items (pairs, faces, attributes,
classes), each item's id and value, so that two runs scored on the same items can be compared
item by item (:mod:`facerepro.evaluation.uncertainty`); the values' mean is the summary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

from facerepro.atomic import write_json

_NUMBERS = {"type": "array", "items": {"type": ["number", "null"]}}
_ITEMS = {"type": "object", "required": ["ids", "values"], "additionalProperties": False,
          "properties": {"ids": {"type": "array", "items": {"type": "string"}},
                         "values": {"type": "array", "items": {"type": "number"}}}}
# A curve is x against y, or per-attribute accuracies with their imbalance levels (the report
# sorts attributes by imbalance: |positive rate - 50|, in %).
_CURVE = {"anyOf": [
    {"type": "object", "required": ["x", "y"], "additionalProperties": False,
     "properties": {"x": _NUMBERS, "y": _NUMBERS}},
    {"type": "object", "required": ["names", "balanced_accuracy", "imbalance"],
     "additionalProperties": False,
     "properties": {"names": {"type": "array", "items": {"type": "string"}},
                    "balanced_accuracy": _NUMBERS, "imbalance": _NUMBERS}}]}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["run", "protocol", "kind", "scorers", "provenance"],
    "properties": {
        "run": {"type": "string"},
        "protocol": {"type": "string"},
        "kind": {"type": "string"},
        "scorers": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["values", "n"],
                "properties": {
                    "values": {"type": "object",
                               "additionalProperties": {"type": ["number", "null"]}},
                    "per_fold": {"type": "object", "additionalProperties": _NUMBERS},
                    "n": {"type": "object",
                          "additionalProperties": {"type": "integer", "minimum": 0}},
                    "curves": {"type": "object", "additionalProperties": _CURVE},
                    "items": {"type": "object", "additionalProperties": _ITEMS},
                    "notes": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "provenance": {"type": "object"},
    },
}


def items(ids: Sequence, values: Sequence[float]) -> dict:
    """One ``items`` record: each test item's id (as text) and its value."""
    ids, values = [str(i) for i in ids], [float(v) for v in values]
    if len(ids) != len(values):
        raise ValueError(f"{len(ids)} item ids for {len(values)} values")
    return {"ids": ids, "values": values}


class MetricsError(ValueError):
    """A metrics payload that does not follow :data:`SCHEMA`."""


@cache
def _compiled():
    return fastjsonschema.compile(SCHEMA)


def validate(payload: dict, where: str = "metrics") -> dict:
    """``payload`` itself when it follows :data:`SCHEMA`, else MetricsError naming the keys.

    The schema is checked compiled (fastjsonschema): jsonschema walks each of the ~10^5 per-item
    values one call at a time (3.7 s against 0.07 s for the default run's 62 files, which the
    report reads while the rest of the machine waits). A payload that fails is checked again by
    jsonschema, which lists every error, not only the first.
    """
    try:
        _compiled()(payload)
        return payload
    except fastjsonschema.JsonSchemaException as first:
        import jsonschema

        errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(payload),
                        key=lambda e: list(e.absolute_path))
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '<top level>'}: {e.message}"
                 for e in errors[:10]] or [f"  {first.message}"]
        raise MetricsError(f"{where}: not a valid metrics file\n" + "\n".join(lines)) from None


def write(dest: str | Path, run: str, protocol: str, kind: str, scorers: dict[str, dict],
          provenance: dict) -> dict:
    """Validate, then write atomically; a bad payload never reaches the disk."""
    payload = {"run": run, "protocol": protocol, "kind": kind, "scorers": scorers,
               "provenance": provenance}
    validate(payload, str(dest))
    write_json(dest, payload)
    return payload


def read(path: str | Path) -> dict:
    """A metrics file, checked against :data:`SCHEMA`."""
    return validate(json.loads(Path(path).read_text()), str(path))
