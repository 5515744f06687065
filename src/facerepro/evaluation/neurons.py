"""DeepID2+'s single-neuron protocols: how sparse the activations are (Fig. 7), and how well
the best single neuron tells one identity or attribute from the rest (Figs. 9-10).

Both count each face once: the original face's activations, not the flipped copy's
(:func:`facerepro.features.load` with ``original_only``). The formulas are in
:mod:`facerepro.evaluation.analysis`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facerepro import features
from facerepro.data.protocols import attributes_of
from facerepro.evaluation import metrics
from facerepro.evaluation.analysis import (
    active_counts,
    best_neurons,
    neuron_selectiveness,
    one_vs_rest,
    sparsity_histograms,
    sparsity_summary,
)
from facerepro.evaluation.context import KINDS, ProtocolContext


@KINDS.register("sparsity")
def sparsity(ctx: ProtocolContext) -> dict[str, dict]:
    """How many neurons each face activates and on how many faces each neuron is active."""
    protocol = ctx.protocol
    acts, image_ids, _ = features.load(ctx.features_path, protocol.get("layer"),
                                       original_only=True)
    summary = sparsity_summary(acts, protocol["threshold"])
    counts = {"images": summary.pop("n_images"), "neurons": summary.pop("n_neurons")}
    per_image, per_neuron = active_counts(acts, protocol["threshold"])
    items = {"per_image_fraction": metrics.items(image_ids, per_image / counts["neurons"]),
             "per_neuron_fraction": metrics.items(range(counts["neurons"]),
                                                  per_neuron / counts["images"])}
    curves = {name: {"x": h["edges"][:-1].tolist(), "y": h["counts"].tolist()}
              for name, h in sparsity_histograms(acts, protocol["threshold"],
                                                 protocol["bins"]).items()}
    return {"activations": {"values": summary, "n": counts, "curves": curves, "items": items,
                            "notes": [f"active = activation > {protocol['threshold']:g}; the "
                                      f"original faces only (not the flipped copies)"]}}


@KINDS.register("selectiveness")
def selectiveness(ctx: ProtocolContext) -> dict[str, dict]:
    """Best single-neuron balanced accuracy per identity (the ``identities`` people with the
    most images) and per binary attribute of the dataset's attribute file, one target vs the
    rest; the threshold is chosen on the same faces, so these are upper bounds."""
    protocol = ctx.protocol
    acts, image_ids, identity = features.load(ctx.features_path, protocol.get("layer"),
                                              original_only=True)
    names, counts = np.unique(identity, return_counts=True)
    top = names[np.argsort(-counts, kind="stable")[:protocol["identities"]]]
    classes, targets = one_vs_rest(np.where(np.isin(identity, top), identity, ""))
    keep = classes != ""
    _, id_best = best_neurons(neuron_selectiveness(acts, targets[:, keep]))
    attrs, labelled = attributes_of(image_ids,
                                    Path(ctx.dataset_root) / protocol["attributes_file"])
    varied = attrs.columns[(attrs.any() & ~attrs.all()).to_numpy()]
    _, attr_best = best_neurons(neuron_selectiveness(acts[labelled],
                                                     attrs[varied].to_numpy(bool)))
    values = {"identity_best_mean": float(id_best.mean()),
              "identity_best_min": float(id_best.min()),
              "attribute_best_mean": float(attr_best.mean())}
    values.update({f"attribute:{a}": float(v) for a, v in zip(varied, attr_best, strict=True)})
    return {"single_neuron": {
        "values": values,
        "n": {"images": len(acts), "neurons": acts.shape[1], "identities": int(keep.sum()),
              "attributes": len(varied), "attribute_images": int(labelled.sum())},
        "notes": ["balanced accuracy of the best neuron with the best threshold on the same "
                  "faces (in-sample: an upper bound)"]}}
