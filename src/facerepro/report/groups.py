"""Which paper a report figure or a metrics file belongs to, and the name shown for it.

The workflow asks this when it parses its rules (the `snakemake --report` categories), so this
module stays apart from the report's builder and figures, which import matplotlib, seaborn
and jinja2.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping

from facerepro.config import base_run
from facerepro.report.tables import load_references

# Figure groups beside the papers' keys: a figure of runs and protocols that several papers'
# tables read, and one that no paper table reads (a baseline, an extra protocol).
SHARED, OTHER = "shared", "other"
GROUP_TITLES = {SHARED: "Several papers", OTHER: "Not in a paper table"}


def readers(references: Iterable[dict]) -> dict[tuple[str, str], list[str]]:
    """The papers (keys, in :data:`~facerepro.report.tables.PAPERS` order) whose tables read
    each (run, protocol)."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for paper in references:
        for table in paper["tables"]:
            for row in table["rows"]:
                for column in table["columns"]:
                    spec = {**column, **row}
                    key = (spec.get("run"), spec.get("protocol"))
                    if paper["key"] not in out[key]:
                        out[key].append(paper["key"])
    return dict(out)


def group_of(pairs: Iterable[tuple[str, str]],
             read_by: Mapping[tuple[str, str], list[str]]) -> str:
    """The one paper whose tables read any of ``pairs``; SHARED when several papers do, OTHER
    when none does."""
    papers = {key for pair in pairs for key in read_by.get(pair, [])}
    if len(papers) == 1:
        return papers.pop()
    return SHARED if papers else OTHER


@functools.cache
def default_references() -> tuple[dict, ...]:
    """The papers' reference files (:func:`~facerepro.report.tables.load_references`), read
    once."""
    return tuple(load_references())


def category(run: str, protocol: str) -> str:
    """The `snakemake --report` category of one metrics file: the paper whose tables read it
    (a replicate's are its run's)."""
    references = default_references()
    return group_title(group_of([(base_run(run), protocol)], readers(references)), references)


def group_title(group: str, references: Iterable[dict] | None = None) -> str:
    """A figure group's display name: the paper's name, or what SHARED / OTHER mean."""
    names = {p["key"]: p["paper"] for p in (references if references is not None
                                            else default_references())}
    return names.get(group) or GROUP_TITLES.get(group, group)
