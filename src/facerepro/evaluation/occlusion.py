"""DeepID2+'s occlusion curves (Figs. 16-17): verification accuracy of every feature layer as
the bottom of the face, or a random block of it, is occluded.

The protocol reads one features view per occlusion level
(:func:`facerepro.views.occlusion_views`); the nets and the scorers (Joint Bayesian included)
are trained on unoccluded faces.
"""

from __future__ import annotations

import numpy as np

from facerepro import features
from facerepro.evaluation import metrics
from facerepro.evaluation.context import KINDS, ProtocolContext
from facerepro.evaluation.verification import verify_pairs
from facerepro.views import View, occlusion_views


def _level(view: View) -> str:
    """An occlusion level's name: ``none``, ``bottom0.3``, ``block30``."""
    if view.bottom is not None:
        return f"bottom{view.bottom:g}"
    return "none" if view.block is None else f"block{view.block}"


@KINDS.register("occlusion")
def occlusion(ctx: ProtocolContext) -> dict[str, dict]:
    """Verification accuracy of every feature layer at every occlusion level.

    Values ``<level>@<layer>`` (level ``none``, ``bottom0.1`` ..., ``block10`` ...), and per
    layer ``mean_drop_bottom@<layer>`` / ``mean_drop_block@<layer>``: the mean fall of the
    accuracy from the unoccluded one over the levels, the number that says which layer
    degrades fastest.
    """
    protocol = ctx.protocol
    views = occlusion_views(protocol)
    pairs = ctx.pairs()
    layers = features.layers(ctx.features_path) or [None]
    out = {}
    for scorer in protocol["scorers"]:
        values, curves, items = {}, {}, {}
        for layer in layers:
            score = ctx.scorer(scorer, layer)
            accuracy, per_pair = {}, {}
            for view, path in zip(views, ctx.features_paths, strict=True):
                feats, image_ids, _ = features.load(path, layer)
                result = verify_pairs(feats, image_ids, pairs, score, protocol["fars"])
                accuracy[_level(view)] = result["values"]["accuracy_mean"]
                per_pair[_level(view)] = result["items"]["accuracy_mean"]
            name = layer or features.OUTPUT
            values.update({f"{level}@{name}": acc for level, acc in accuracy.items()})
            for kind, levels in (("bottom", protocol["bottom"]), ("block", protocol["blocks"])):
                ys = [accuracy[f"{kind}{level:g}"] for level in levels]
                key = f"mean_drop_{kind}@{name}"
                values[key] = accuracy["none"] - float(np.mean(ys))
                curves[f"{kind}@{name}"] = {"x": [0, *levels], "y": [accuracy["none"], *ys]}
                # A pair's drop: its correctness unoccluded minus its mean over the levels.
                occluded = np.mean([per_pair[f"{kind}{level:g}"]["values"] for level in levels],
                                   axis=0)
                items[key] = metrics.items(per_pair["none"]["ids"],
                                           np.asarray(per_pair["none"]["values"]) - occluded)
        out[scorer] = {"values": values, "curves": curves, "items": items,
                       "n": {"pairs": len(pairs), "levels": len(views)},
                       "notes": ["nets and scorers trained on unoccluded faces; the blocks are "
                                 "the same for every run (one fixed seed)"]}
    return out
