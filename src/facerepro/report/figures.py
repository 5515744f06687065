"""Report figures as PNG bytes (matplotlib, headless), one consistent line-plot style."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt


def lines_png(curves: dict[str, tuple[list, list]], title: str, xlabel: str, ylabel: str,
              xscale: str = "linear", xlim: tuple[float, float] | None = None,
              ylim: tuple[float, float] | None = None, markers: bool = False) -> bytes:
    """One line per ``{label: (x, y)}``."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=110)
    for label, (x, y) in curves.items():
        ax.plot(x, y, label=label, lw=1.4, marker="o" if markers else None, ms=3)
    ax.set_xscale(xscale)
    if xlim is not None:
        ax.set_xlim(*xlim)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def roc_png(curves: dict[str, dict], title: str) -> bytes:
    """ROC curves ({label: {"fpr": [...], "tpr": [...]}}) on a log-FAR axis."""
    return lines_png({label: (roc["fpr"], roc["tpr"]) for label, roc in curves.items()}, title,
                     "false accept rate", "true accept rate", xscale="log", xlim=(1e-3, 1),
                     ylim=(0, 1.01))
