"""Report figures as PNG bytes (matplotlib, headless)."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt


def roc_png(curves: dict[str, dict], title: str) -> bytes:
    """ROC curves ({label: {"fpr": [...], "tpr": [...]}}) on a log-FAR axis."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=110)
    for label, roc in curves.items():
        ax.plot(roc["fpr"], roc["tpr"], label=label, lw=1.4)
    ax.set_xscale("log")
    ax.set_xlim(1e-3, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
