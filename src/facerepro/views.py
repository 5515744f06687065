"""Features views: which images of an evaluation set, shown to the net how; and the views a
protocol reads.

A :class:`View` names a subset (``all``, a split such as ``holdout``, or ``powerlaw``: the faces
of a run's power-law classes, :mod:`facerepro.data.imbalance`), optionally another crop template
than the run's own (FaceNet's center crop vs aligned test faces) and a test-time degradation
(FaceNet Table 4; DeepID2+ occlusion, Figs. 16-17). Its ``name`` (``all``,
``all~center_112x96``, ``all~jpeg10``, ``all~res0.033``, ``all~bottom0.3``, ``all~block30``) is
the features file's name. Blocks are drawn with one fixed seed, so every run is scored on the
same occluded faces.

The workflow plans its features files from these names when it parses the rules, so this module
stays apart from :mod:`facerepro.features` and the protocol kinds, which import torch, faiss
and scikit-learn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from facerepro import degrade
from facerepro.data.imbalance import POWER_LAW

_DEGRADATIONS = {"jpeg_quality": (re.compile(r"jpeg(\d+)"), int),
                 "resolution": (re.compile(r"res(\d*\.?\d+)"), float),
                 "bottom": (re.compile(r"bottom(\d*\.?\d+)"), float),
                 "block": (re.compile(r"block(\d+)"), int)}
_TOKENS = {"jpeg_quality": "jpeg", "resolution": "res", "bottom": "bottom", "block": "block"}
BLOCK_SEED = 0


@dataclass(frozen=True)
class View:
    """Which images of an evaluation set (``subset``: all, a split or powerlaw), through which
    crop ``template`` (None: the run's own), degraded how (None: not at all)."""

    subset: str = "all"
    template: str | None = None
    jpeg_quality: int | None = None
    resolution: float | None = None
    bottom: float | None = None          # fraction of the face occluded from the bottom up
    block: int | None = None             # side of a random black block, in 55x47-face pixels

    @property
    def name(self) -> str:
        parts = [self.subset]
        if self.template is not None:
            parts.append(self.template)
        for field, token in _TOKENS.items():
            value = getattr(self, field)
            if value is not None:
                parts.append(f"{token}{value:g}")
        return "~".join(parts)

    @classmethod
    def parse(cls, name: str) -> View:
        subset, *tokens = name.split("~")
        fields: dict = {}
        for token in tokens:
            for field, (pattern, kind) in _DEGRADATIONS.items():
                if m := pattern.fullmatch(token):
                    fields[field] = kind(m.group(1))
                    break
            else:
                fields["template"] = token
        view = cls(subset, **fields)
        if view.name != name:
            raise ValueError(f"{name!r} is not a features view name (did you mean "
                             f"{view.name!r}?)")
        return view

    def show(self, images: np.ndarray) -> np.ndarray:
        """The images as this view degrades them."""
        if self.jpeg_quality is not None:
            images = degrade.jpeg(images, self.jpeg_quality)
        if self.resolution is not None:
            images = degrade.resolution(images, self.resolution)
        if self.bottom is not None:
            images = degrade.occlude_bottom(images, self.bottom)
        if self.block is not None:
            images = degrade.occlude_blocks(images, self.block, BLOCK_SEED)
        return images


def protocol_view(protocol: dict) -> View:
    """The features view a protocol reads: all images, through its crop and degradation."""
    options = protocol.get("degrade", {})
    return View("all", protocol.get("template"), options.get("jpeg_quality"),
                options.get("resolution"))


def occlusion_views(protocol: dict) -> list[View]:
    """The unoccluded view, then one per ``bottom`` fraction, then one per ``blocks`` size."""
    view = protocol_view(protocol)
    return [view, *(replace(view, bottom=f) for f in protocol["bottom"]),
            *(replace(view, block=size) for size in protocol["blocks"])]


def protocol_views(protocol: dict) -> list[View]:
    """Every features view a protocol reads, its own first; an occlusion curve adds one view
    per occlusion level."""
    if protocol["kind"] == "occlusion":
        return occlusion_views(protocol)
    view = protocol_view(protocol)
    if protocol["kind"] == "imbalanced_classification":
        return [replace(view, subset=POWER_LAW)]
    return [view]
