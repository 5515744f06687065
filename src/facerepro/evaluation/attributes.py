"""Binary face-attribute prediction scores: balanced accuracy and imbalance level.

After Huang, Li, Loy, Tang, "Deep Imbalanced Learning for Face Recognition and Attribute
Prediction" (TPAMI 2019; CLMLE in docs/papers.md), on CelebA's 40 attributes. Per attribute, with
``Np`` / ``Nn`` the positive / negative test faces and ``tp`` / ``tn`` those predicted right,

    balanced accuracy = 0.5 (tp / Np + tn / Nn),

and the reported figure is its mean over attributes. An attribute with no positive (or no
negative) test face has an undefined rate: its balanced accuracy is NaN with the reason stated,
it is left out of the mean, and the number left out is reported next to the mean (never
silently replaced by the accuracy on the one class present).

Imbalance level of an attribute (the paper's table): ``|100 * positive rate - 50|`` in percent,
on whatever faces the caller passes (the paper quotes it for the CelebA training data).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _check(truth: np.ndarray, names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    truth = np.asarray(truth)
    if truth.ndim != 2:
        raise ValueError(f"attributes must be an (N, A) array, got shape {truth.shape}")
    if not np.isin(truth, (0, 1)).all():
        raise ValueError("attribute values must be boolean (or 0/1)")
    names = [f"attr{i}" for i in range(truth.shape[1])] if names is None else list(names)
    if len(names) != truth.shape[1]:
        raise ValueError(f"{len(names)} names for {truth.shape[1]} attributes")
    return truth.astype(bool), names


def balanced_accuracy(truth: np.ndarray, pred: np.ndarray,
                      names: Sequence[str] | None = None) -> pd.DataFrame:
    """Per attribute (index): positives, negatives, tpr, tnr, balanced_accuracy, reason.

    ``reason`` is empty when the score is defined, else says which class is missing.
    """
    truth, names = _check(truth, names)
    pred, _ = _check(pred, names)
    if pred.shape != truth.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in shape")
    positives = truth.sum(axis=0)
    negatives = len(truth) - positives
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = (truth & pred).sum(axis=0) / positives
        tnr = (~truth & ~pred).sum(axis=0) / negatives
    reason = np.select([positives == 0, negatives == 0],
                       ["no positive test faces", "no negative test faces"], "")
    return pd.DataFrame({"positives": positives, "negatives": negatives, "tpr": tpr,
                         "tnr": tnr, "balanced_accuracy": 0.5 * (tpr + tnr),
                         "reason": reason}, index=pd.Index(names, name="attribute"))


def mean_balanced_accuracy(truth: np.ndarray, pred: np.ndarray,
                           names: Sequence[str] | None = None) -> dict:
    """Mean balanced accuracy over the attributes where it is defined, and what was left out.

    Returns ``mean``, ``n_scored``, ``n_excluded`` and ``excluded`` (name -> reason).
    """
    table = balanced_accuracy(truth, pred, names)
    defined = table["reason"] == ""
    return {
        "mean": float(table.loc[defined, "balanced_accuracy"].mean()) if defined.any()
        else float("nan"),
        "n_scored": int(defined.sum()),
        "n_excluded": int((~defined).sum()),
        "excluded": table.loc[~defined, "reason"].to_dict(),
    }


def imbalance_level(truth: np.ndarray, names: Sequence[str] | None = None) -> pd.Series:
    """``|100 * positive rate - 50|`` per attribute, in percent."""
    truth, names = _check(truth, names)
    if len(truth) == 0:
        raise ValueError("imbalance level needs at least one face")
    return pd.Series(np.abs(100 * truth.mean(axis=0) - 50), index=pd.Index(names, name="attribute"),
                     name="imbalance_level")
