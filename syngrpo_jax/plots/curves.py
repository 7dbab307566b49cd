"""The line figures: collapse curves (entropy, diversity, rewards), optimisation health, and where the time goes."""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from syngrpo_jax.plots.series import Run, ema, epoch_boundaries, load_runs, save_figure

# (title, [(metric, legend suffix, linestyle, smoothed?)]). V_global is already an EMA: never smoothed again.
CURVE_PANELS = [
    ("Token entropy", [("entropy", "", "-", True)]),
    ("Answer diversity", [("diversity/V_batch", "V_batch", "-", True),
                          ("diversity/V_global", "V_global", "--", False)]),
    ("Accuracy reward", [("reward/accuracy", "", "-", True)]),
    ("Format reward", [("reward/format", "", "-", True)]),
    ("Diversity reward", [("reward/diversity", "", "-", True)]),
    ("Total reward", [("reward/total", "", "-", True)]),
    # The paper's Fig. 8: backgrounds of the images trained on grow more complex over epochs of synthesis.
    ("Training-image background complexity", [("data/bytes_per_pixel", "compressed bytes/pixel", "-", True),
                                               ("data/edge_density", "edge density", "--", True)]),
]
TRAINING_PANELS = [
    ("Loss", [("loss", "", "-", True)]),
    ("KL to reference", [("kl_ref", "", "-", True)]),
    ("Gradient norm", [("grad_norm", "", "-", True)]),
    ("Clip fraction", [("clip_frac_low", "low", "-", True), ("clip_frac_high", "high", "--", True)]),
    ("Response length (tokens)", [("response_length_mean", "", "-", True)]),
    ("Learning rate", [("lr", "", "-", False)]),
]
TIME_PARTS = ["time/rollout", "time/rewards", "time/update", "time/weight_sync", "time/waiting"]
SYNTH_COUNTS = ["synthesis/submitted", "synthesis/completed", "synthesis/failed", "synthesis/dropped",
                "pool/synthesized_samples"]


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _draw_panels(fig: Figure, panels, runs: Sequence[Run], smoothing: float, ncols: int = 2) -> list:
    """Draw the panels that at least one run has data for; returns their axes. Lines carry gids
    `label|metric|raw` and `label|metric|smooth` (tests and callers find the plotted arrays by them)."""
    present = [(title, series) for title, series in panels if any(r.has(m) for r in runs for m, *_ in series)]
    if not present:
        return []
    nrows = math.ceil(len(present) / ncols)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colors = _colors(len(runs))
    boundaries = epoch_boundaries(runs[0].records)
    for ax, (title, series) in zip(axes, present):
        missing = []
        for run, color in zip(runs, colors):
            if not any(run.has(m) for m, *_ in series):
                missing.append(run.label)
                continue
            for metric, suffix, style, smoothed in series:
                steps, values = run.series(metric)
                if not len(steps):
                    continue
                name = f"{run.label} {suffix}".strip() if len(runs) > 1 or suffix else run.label
                draw_smooth = smoothed and smoothing > 0 and len(steps) > 1
                # Evaluations are sparse (often just before and after): a marker shows where each one is.
                marked = len(steps) == 1 or metric.startswith("eval/")
                raw, = ax.plot(steps, values, style, color=color, lw=1.0, alpha=0.25 if draw_smooth else 0.95,
                               label=None if draw_smooth else name, marker="o" if marked else None, ms=4)
                raw.set_gid(f"{run.label}|{metric}|raw")
                if draw_smooth:
                    line, = ax.plot(steps, ema(values, smoothing), style, color=color, lw=1.6, label=name)
                    line.set_gid(f"{run.label}|{metric}|smooth")
        for step, epoch in boundaries:
            ax.axvline(step, color="0.6", lw=0.7, ls=":", zorder=0)
        ax.set_title(title, fontsize=11)
        ax.grid(alpha=0.25)
        ax.margins(x=0.01)
        if len(series) > 1 or len(runs) > 1:
            ax.legend(fontsize=7.5, loc="best", framealpha=0.7)
        if missing:
            ax.text(0.99, 0.02, "not logged: " + ", ".join(missing), transform=ax.transAxes, ha="right",
                    va="bottom", fontsize=7.5, color="0.4", style="italic")
    for ax in axes[len(present):]:
        ax.set_visible(False)
    for ax in axes[max(0, len(present) - ncols):len(present)]:
        ax.set_xlabel("step" + (" (dotted: epoch starts)" if boundaries else ""), fontsize=9)
    return list(axes[:len(present)])


def _panel_figure(panels, runs: Sequence[Run], smoothing: float, suptitle: str) -> Figure | None:
    n = sum(any(r.has(m) for r in runs for m, *_ in s) for _, s in panels)
    if not n:
        return None
    fig = Figure(figsize=(12, 3.3 * math.ceil(n / 2) + 0.6), dpi=100, layout="constrained")
    _draw_panels(fig, panels, runs, smoothing)
    note = f"EMA smoothing {smoothing:g}, raw values faint" if smoothing > 0 else "raw values"
    fig.suptitle(f"{suptitle}: " + " vs ".join(r.label for r in runs) + f"   ({note})", fontsize=12)
    return fig


def eval_panels(runs: Sequence[Run]) -> list:
    """A panel per evaluation split whose Acc@0.5 the runs logged (eval/<split>/acc@0.5, at each evaluation)."""
    keys = sorted({k for r in runs for rec in r.records for k in rec
                   if k.startswith("eval/") and k.endswith("/acc@0.5")})
    return [(f"Evaluation Acc@0.5 ({k.split('/')[1]})", [(k, "", "-", False)]) for k in keys]


def plot_curves(workdirs: str | Sequence[str], out_path: str, labels: Sequence[str] | None = None,
                smoothing: float = 0.0) -> Figure:
    """curves.png: token entropy, answer diversity (V_batch, V_global), rewards, the training images' background
    complexity (data.complexity) and evaluation Acc@0.5 over steps, one colour per run.

    Returns the Figure (its lines' gids name run, metric and raw/smooth). Raises ValueError if no run logged
    any of these metrics.
    """
    workdirs = [workdirs] if isinstance(workdirs, str | os.PathLike) else list(workdirs)
    ema(np.zeros(0), smoothing)  # validates smoothing before any work
    runs = load_runs(workdirs, labels)
    fig = _panel_figure(CURVE_PANELS + eval_panels(runs), runs, smoothing, "Entropy, diversity and rewards")
    if fig is None:
        raise ValueError(f"no curve metrics (entropy, diversity/*, reward/*) in {workdirs!r}")
    save_figure(fig, out_path)
    return fig


def plot_training(workdirs: str | Sequence[str], out_path: str, labels: Sequence[str] | None = None,
                  smoothing: float = 0.0) -> Figure | None:
    """training.png: loss, KL, grad norm, clip fractions, response length, lr. None (no file) if none logged."""
    workdirs = [workdirs] if isinstance(workdirs, str | os.PathLike) else list(workdirs)
    fig = _panel_figure(TRAINING_PANELS, load_runs(workdirs, labels), smoothing, "Optimisation")
    if fig is not None:
        save_figure(fig, out_path)
    return fig


def plot_timing(workdirs: str | Sequence[str], out_path: str, labels: Sequence[str] | None = None) -> Figure | None:
    """timing.png: per run (columns), the stacked time split of each step and the data-server job counters.
    None (no file) if no run logged time/* or synthesis/* metrics."""
    workdirs = [workdirs] if isinstance(workdirs, str | os.PathLike) else list(workdirs)
    runs = load_runs(workdirs, labels)
    has_time = [any(r.has(k) for k in TIME_PARTS + ["time/step"]) for r in runs]
    has_synth = [any(r.has(k) for k in SYNTH_COUNTS + ["synthesis/in_flight"]) for r in runs]
    if not any(has_time) and not any(has_synth):
        return None
    nrows = int(any(has_time)) + int(any(has_synth))
    fig = Figure(figsize=(6.5 * len(runs), 3.6 * nrows + 0.5), dpi=100, layout="constrained")
    axes = fig.subplots(nrows, len(runs), squeeze=False, sharex="col")
    for col, run in enumerate(runs):
        row = 0
        if any(has_time):
            _draw_time_split(axes[row, col], run)
            row += 1
        if any(has_synth):
            _draw_synthesis(axes[row, col], run)
        axes[-1, col].set_xlabel("step", fontsize=9)
    fig.suptitle("Where the time goes, and the data server", fontsize=12)
    save_figure(fig, out_path)
    return fig


def _draw_time_split(ax, run: Run) -> None:
    ax.set_title(f"{run.label}: time per step (s)", fontsize=11)
    keys = [k for k in TIME_PARTS if run.has(k)]
    if not keys and not run.has("time/step"):
        ax.text(0.5, 0.5, "no time/* metrics", transform=ax.transAxes, ha="center", color="0.4")
        return
    steps = np.unique(np.concatenate([run.series(k)[0] for k in keys + ["time/step"] if run.has(k)]))
    parts = []
    for k in keys:
        s, v = run.series(k)
        full = np.zeros(len(steps))
        full[np.searchsorted(steps, s)] = np.nan_to_num(v)
        parts.append(full)
    names = [k.split("/", 1)[1] for k in keys]
    if run.has("time/step"):
        s, v = run.series("time/step")
        total = np.full(len(steps), np.nan)
        total[np.searchsorted(steps, s)] = v
        other = np.clip(np.nan_to_num(total) - np.sum(parts, axis=0), 0.0, None) if parts else np.nan_to_num(total)
        parts.append(other)
        names.append("other")
    ax.stackplot(steps, *parts, labels=names, colors=_colors(len(parts)), alpha=0.8, step="mid")
    top = np.sum(parts, axis=0).max(initial=0.0)
    if run.has("time/step"):
        ax.plot(steps, total, color="black", lw=0.8, label="step total")
        top = max(top, np.nanmax(total, initial=0.0))
    ax.set_ylim(0, 1.3 * top if top > 0 else 1.0)  # headroom for the legend
    ax.grid(alpha=0.25)
    ax.margins(x=0.01)
    ax.legend(fontsize=7.5, loc="upper left", ncols=min(4, len(names) + 1), framealpha=0.7)


def _draw_synthesis(ax, run: Run) -> None:
    ax.set_title(f"{run.label}: synthesis jobs", fontsize=11)
    keys = [k for k in SYNTH_COUNTS if run.has(k)]
    if not keys and not run.has("synthesis/in_flight"):
        ax.text(0.5, 0.5, "no synthesis (this run has no data server)", transform=ax.transAxes, ha="center",
                color="0.4")
        ax.set_yticks([])
        return
    colors = {"synthesis/submitted": "tab:blue", "synthesis/completed": "tab:green", "synthesis/failed": "tab:red",
              "synthesis/dropped": "tab:brown", "pool/synthesized_samples": "tab:purple"}
    for k in keys:
        steps, values = run.series(k)
        ax.plot(steps, values, color=colors[k], lw=1.4, label=k.replace("synthesis/", "").replace("pool/", "pool: "))
    ax.set_ylabel("count", fontsize=9)
    ax.grid(alpha=0.25)
    ax.margins(x=0.01)
    handles, names = ax.get_legend_handles_labels()
    if run.has("synthesis/in_flight"):
        twin = ax.twinx()
        steps, values = run.series("synthesis/in_flight")
        twin.fill_between(steps, values, step="mid", color="tab:orange", alpha=0.12)
        h, = twin.plot(steps, values, color="tab:orange", lw=0.8, drawstyle="steps-mid")
        twin.set_ylabel("in flight", fontsize=9, color="tab:orange")
        peak = np.nanmax(values, initial=0.0)
        twin.set_ylim(0, 1.8 * peak if peak > 0 else 1.0)  # keep the area in the lower part, under the counters
        handles.append(h)
        names.append("in flight (right)")
    ax.legend(handles, names, fontsize=7.5, loc="upper left", framealpha=0.7)
