"""Report figures as PNG bytes, in one seaborn style, a run drawn in the same colour everywhere.

Figures are bare :class:`matplotlib.figure.Figure` objects saved through the Agg canvas: no
pyplot state and no display backend, so rendering works headless and leaks no open figures.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import matplotlib as mpl
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

Curves = Mapping[str, tuple[Sequence[float], Sequence[float]]]
Color = tuple[float, float, float]

# The one look of every figure: seaborn's white grid, sized to be legible inlined at 100%.
STYLE = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.15),
         "figure.dpi": 110, "savefig.dpi": 110, "legend.fontsize": 8}
PANEL = (5.5, 4.0)   # inches per panel


def run_colors(runs: Sequence[str]) -> dict[str, Color]:
    """One colour per run, in the given (config) order, shared by every figure that draws runs:
    the ten strong tab20 hues, then their light tones, then evenly spaced hues."""
    tab20 = sns.color_palette("tab20", 20)
    palette = (tab20[0::2] + tab20[1::2] if len(runs) <= 20
               else sns.color_palette("husl", len(runs)))
    return dict(zip(runs, palette[:len(runs)], strict=True))


def _figure(panels: int = 1, ncols: int = 3) -> tuple[Figure, list[Axes]]:
    """A figure of ``panels`` axes, at most ``ncols`` a row; axes left over are hidden."""
    cols = min(panels, ncols)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(PANEL[0] * cols, PANEL[1] * rows), layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _draw_lines(ax: Axes, curves: Curves, colors: Mapping[str, Color] | None, markers: bool,
                steps: bool) -> None:
    for label, (x, y) in curves.items():
        ax.plot(x, y, label=label, lw=1.4, marker="o" if markers else None, ms=3,
                color=(colors or {}).get(label), drawstyle="steps-post" if steps else "default")
    ax.legend(loc="best")


def lines_png(curves: Curves, title: str, xlabel: str, ylabel: str, xscale: str = "linear",
              xlim: tuple[float, float] | None = None, ylim: tuple[float, float] | None = None,
              markers: bool = False, steps: bool = False,
              colors: Mapping[str, Color] | None = None) -> bytes:
    """One line per ``{label: (x, y)}`` (a step line for histograms); ``colors`` by label, the
    style's palette for labels it lacks."""
    with mpl.rc_context(STYLE):
        fig, [ax] = _figure()
        _draw_lines(ax, curves, colors, markers, steps)
        ax.set(xscale=xscale, xlabel=xlabel, ylabel=ylabel, title=title)
        if xlim is not None:
            ax.set_xlim(*xlim)
        if ylim is not None:
            ax.set_ylim(*ylim)
        return _png(fig)


def roc_png(panels: Mapping[str, Curves], title: str,
            colors: Mapping[str, Color] | None = None) -> bytes:
    """ROC curves, one panel per scorer (``{scorer: {label: (fpr, tpr)}}``), log-FAR axes."""
    with mpl.rc_context(STYLE):
        fig, axes = _figure(len(panels))
        for ax, (scorer, curves) in zip(axes, panels.items(), strict=True):
            _draw_lines(ax, curves, colors, markers=False, steps=False)
            ax.set(xscale="log", xlim=(1e-3, 1), ylim=(0, 1.01), title=scorer,
                   xlabel="false accept rate", ylabel="true accept rate")
        fig.suptitle(title)
        return _png(fig)


def cmc_png(curves: Curves, title: str, colors: Mapping[str, Color] | None = None) -> bytes:
    """Cumulative match characteristic: identification rate within the top k, a line per run."""
    return lines_png(curves, title, "rank k", "probes identified within rank k",
                     ylim=(0, 1.01), markers=True, colors=colors)


def distractors_png(curves: Curves, title: str,
                    colors: Mapping[str, Color] | None = None) -> bytes:
    """MegaFace challenge 1: rank-1 identification against the number of distractors (log
    axis), a line per run."""
    return lines_png(curves, title, "distractors", "rank-1 identification rate", xscale="log",
                     ylim=(0, 1.01), markers=True, colors=colors)


def imbalance_order(table: pd.DataFrame) -> pd.DataFrame:
    """One row per attribute (columns attribute, imbalance), most balanced first, ties by
    name."""
    levels = table.groupby("attribute")["imbalance"].first().reset_index()
    return levels.sort_values(["imbalance", "attribute"], kind="stable", ignore_index=True)


def attributes_png(table: pd.DataFrame, title: str,
                   colors: Mapping[str, Color] | None = None) -> bytes:
    """Balanced accuracy per attribute, attributes sorted by imbalance level, most balanced first
    (CLMLE's per-attribute comparison); ``table`` has columns series, attribute, imbalance (%)
    and balanced_accuracy (0-1): a bar per series and attribute, coloured by ``colors`` when
    it names every series."""
    levels = imbalance_order(table)
    data = table.assign(percent=100 * table["balanced_accuracy"])
    series = list(dict.fromkeys(table["series"]))
    palette = {s: colors[s] for s in series} if colors and set(series) <= set(colors) else None
    with mpl.rc_context(STYLE):
        width = 0.22 * len(levels) * max(1.0, len(series) / 2) + 1.5
        fig = Figure(figsize=(max(PANEL[0], width), PANEL[1] + 1), layout="constrained")
        ax = fig.subplots()
        sns.barplot(data=data, x="attribute", y="percent", hue="series",
                    order=levels["attribute"], hue_order=series, palette=palette, ax=ax)
        ax.axhline(50, color="0.3", ls="--", lw=1)   # chance for a balanced accuracy
        ax.set_xticks(range(len(levels)),
                      [f"{a} ({i:g})" for a, i in zip(levels["attribute"], levels["imbalance"],
                                                      strict=True)], rotation=90)
        ax.set(ylim=(0, 100), title=title, ylabel="balanced accuracy (%)",
               xlabel="attribute (imbalance level, %), most balanced first")
        ax.legend(loc="lower left")
        return _png(fig)
