"""difficulty.png: per QA family, the batch accuracy at each difficulty and the level adaptive difficulty chose.

One panel per family that logged `qa/<family>/d<k>/accuracy` (every QA run) or `qa/<family>/level` (adaptive
difficulty, data/adaptive.py): the accuracy of the step's responses at each difficulty present in the batch
(raw points faint, EMA lines, one colour per level), the target pass rate dashed, and, as the background colour,
the level the controller chose for the family's fresh samples after each step. Reading it: the background should
take the colour of the accuracy curve that runs nearest the dashed target.
"""
from __future__ import annotations

import math
import re

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from syngrpo_jax.plots.series import ema, load_runs, save_figure

LEVEL_COLORS = {1: "#2ca02c", 2: "#ff7f0e", 3: "#d62728"}
_KEY = re.compile(r"^qa/(?P<family>[^/]+)/(?:d(?P<level>\d+)/accuracy|level)$")


def qa_families(records) -> dict[str, set[int]]:
    """{family: difficulties with an accuracy metric} of every family with a qa/<family>/... metric."""
    out: dict[str, set[int]] = {}
    for r in records:
        for key in r:
            m = _KEY.match(key)
            if m:
                levels = out.setdefault(m["family"], set())
                if m["level"]:
                    levels.add(int(m["level"]))
    return out


def _spans(steps, levels) -> list[tuple[float, float, int]]:
    """(start, end, level) runs of equal consecutive levels; the level logged after step s holds for (s, s + 1]."""
    out: list[tuple[float, float, int]] = []
    for s, level in zip(steps, levels):
        if not math.isfinite(level):
            continue
        if out and out[-1][2] == int(level) and out[-1][1] == s:
            out[-1] = (out[-1][0], s + 1.0, int(level))
        else:
            out.append((float(s), s + 1.0, int(level)))
    return out


def plot_difficulty(workdir: str, out_path: str, smoothing: float = 0.6, target: float | None = 0.5,
                    label: str | None = None) -> Figure | None:
    """The figure described in the module docstring; None (no file) when the run logged no qa/ metrics."""
    run = load_runs([workdir], None if label is None else [label])[0]
    families = qa_families(run.records)
    if not families:
        return None
    ncols = min(4, len(families))
    nrows = math.ceil(len(families) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.0 * nrows + 0.6), dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (family, levels) in zip(axes, sorted(families.items())):
        for level in sorted(levels):
            steps, acc = run.series(f"qa/{family}/d{level}/accuracy")
            color = LEVEL_COLORS.get(level, "0.3")
            ax.plot(steps, acc, "o", ms=2.5, color=color, alpha=0.35)
            ax.plot(steps, ema(acc, smoothing) if smoothing > 0 else acc, "-", color=color, lw=1.5,
                    gid=f"{family}|d{level}")
        if target is not None:
            ax.axhline(target, color="0.3", lw=0.9, ls="--")
        steps, chosen = run.series(f"qa/{family}/level")
        for start, end, level in _spans(steps, chosen):
            ax.axvspan(start, end, color=LEVEL_COLORS.get(level, "0.5"), alpha=0.13, lw=0, zorder=0)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(family, fontsize=11)
        ax.grid(alpha=0.25)
        ax.set_xlabel("step", fontsize=9)
        ax.set_ylabel("accuracy", fontsize=9)
    for ax in axes[len(families):]:
        ax.set_visible(False)
    all_levels = sorted(set().union(*families.values()) | {1, 2, 3})
    handles = [Line2D([], [], color=LEVEL_COLORS.get(d, "0.3"), lw=1.5, label=f"d{d} accuracy") for d in all_levels]
    handles += [Patch(color=LEVEL_COLORS.get(d, "0.5"), alpha=0.25, label=f"chose d{d}") for d in all_levels]
    if target is not None:
        handles.append(Line2D([], [], color="0.3", lw=0.9, ls="--", label=f"target {target:g}"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"Accuracy per QA family and difficulty, background: the level chosen for fresh samples "
                 f"({run.label})" + (f"   EMA {smoothing:g}, raw points faint" if smoothing > 0 else ""),
                 fontsize=11)
    save_figure(fig, out_path)
    return fig

