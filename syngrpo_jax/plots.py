"""Figures from a run's outputs: the collapse curves, the evolving training images, and where the time goes.

    python -m syngrpo_jax.plots --workdir=runs/grpo,runs/syn_grpo --labels=GRPO,Syn-GRPO [--out=DIR] [--smoothing=0.6]

writes into `--out` (default `<first workdir>/plots/`):

  curves.png    the paper's collapse figure: token entropy and answer diversity (V_batch solid, the smoothed
                V_global dashed) over steps, one colour per run, then the rewards (accuracy, format, diversity,
                total). With smoothing > 0 the EMA is drawn over the raw values, which stay faint behind it.
  training.png  optimisation health: loss, KL to the reference, grad norm, clip fractions, response length, lr.
  timing.png    per run: the step time split (rollout / rewards / update / weight sync / waiting / other), and
                the data-server jobs (submitted, completed, failed, in flight) with the pool's synthesized count.
  gallery.png   per tracked sample (rows), its original and its image at the end of each epoch (columns), each
                captioned with version, epoch, step and the description that produced it. With several
                workdirs: gallery_<label>.png for each one that has a gallery.json.

Inputs are `<workdir>/metrics.jsonl` (see `syngrpo_jax.metrics`) and `<workdir>/gallery.json`. Any metric may
be absent from a run (GRPO has no diversity reward): panels draw what exists and say which runs lack it.
The trainer calls `plot_all` at the end of a run; matplotlib is used through `Figure` objects (Agg, no pyplot
state), so plotting from a training process opens no window and leaks no figures.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import textwrap
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from syngrpo_jax import run_dir
from syngrpo_jax.atomic_write import atomic_write
from syngrpo_jax.metrics import read_metrics

log = logging.getLogger(__name__)

DEFAULT_SMOOTHING = 0.6  # for the CLI and plot_all: light, and the raw values stay visible behind

# (title, [(metric, legend suffix, linestyle, smoothed?)]). V_global is already an EMA: never smoothed again.
CURVE_PANELS = [
    ("Token entropy", [("entropy", "", "-", True)]),
    ("Answer diversity", [("diversity/V_batch", "V_batch", "-", True),
                          ("diversity/V_global", "V_global", "--", False)]),
    ("Accuracy reward", [("reward/accuracy", "", "-", True)]),
    ("Format reward", [("reward/format", "", "-", True)]),
    ("Diversity reward", [("reward/diversity", "", "-", True)]),
    ("Total reward", [("reward/total", "", "-", True)]),
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
SYNTH_COUNTS = ["synthesis/submitted", "synthesis/completed", "synthesis/failed", "pool/synthesized_samples"]


# ---------------------------------------------------------------------------------------------------- data


@dataclass
class Run:
    label: str
    workdir: str
    records: list[dict]

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        return metric_series(self.records, key)

    def has(self, key: str) -> bool:
        return any(key in r for r in self.records)


def metric_series(records: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps int64[N], values float64[N]) of `key`, sorted by step; None (non-finite) reads as NaN.

    If a step occurs twice (a restart that did not truncate), its last record wins.
    """
    by_step = {}
    for r in records:
        if key in r:
            v = r[key]
            by_step[int(r["step"])] = math.nan if v is None else float(v)
    steps = np.array(sorted(by_step), dtype=np.int64)
    return steps, np.array([by_step[s] for s in steps], dtype=np.float64)


def ema(values: np.ndarray, smoothing: float) -> np.ndarray:
    """TensorBoard's debiased EMA: s_t = w s_{t-1} + (1 - w) x_t, divided by 1 - w^n (n finite points so far).

    NaN points stay NaN and do not move the average.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    out = np.full(len(values), np.nan)
    acc, n = 0.0, 0
    for i, x in enumerate(values):
        if math.isfinite(x):
            acc = smoothing * acc + (1.0 - smoothing) * x
            n += 1
            out[i] = acc / (1.0 - smoothing ** n)
    return out


def _labels(workdirs: Sequence[str], labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        if len(labels) != len(workdirs):
            raise ValueError(f"labels: {len(labels)} given for {len(workdirs)} workdirs ({list(labels)!r})")
        return list(labels)
    parts = [os.path.normpath(os.path.abspath(w)).split(os.sep) for w in workdirs]
    out = [p[-1] for p in parts]
    if len(set(out)) < len(out):  # same basename (runs/a/seed0, runs/b/seed0): add the parent
        out = [os.path.join(*p[-2:]) for p in parts]
    return out


def load_runs(workdirs: Sequence[str], labels: Sequence[str] | None = None) -> list[Run]:
    runs = []
    for workdir, label in zip(workdirs, _labels(workdirs, labels)):
        path = os.path.join(workdir, run_dir.METRICS_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(f"workdir {workdir!r} has no metrics.jsonl")
        runs.append(Run(label, workdir, read_metrics(path)))
    return runs


def epoch_boundaries(records: Sequence[dict]) -> list[tuple[int, int]]:
    """[(first step of epoch e, e)] for every epoch after the first, from the `epoch` metric."""
    steps, epochs = metric_series(records, "epoch")
    out, previous = [], None
    for s, e in zip(steps, epochs):
        if not math.isfinite(e):
            continue
        e = int(math.floor(e))
        if previous is not None and e > previous:
            out.append((int(s), e))
        previous = e
    return out


# ---------------------------------------------------------------------------------------------------- curves


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
                raw, = ax.plot(steps, values, style, color=color, lw=1.0, alpha=0.25 if draw_smooth else 0.95,
                               label=None if draw_smooth else name, marker="o" if len(steps) == 1 else None)
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


def plot_curves(workdirs: str | Sequence[str], out_path: str, labels: Sequence[str] | None = None,
                smoothing: float = 0.0) -> Figure:
    """curves.png: token entropy, answer diversity (V_batch, V_global) and rewards over steps, one colour per run.

    Returns the Figure (its lines' gids name run, metric and raw/smooth). Raises ValueError if no run logged
    any of these metrics.
    """
    workdirs = [workdirs] if isinstance(workdirs, str | os.PathLike) else list(workdirs)
    ema(np.zeros(0), smoothing)  # validates smoothing before any work
    runs = load_runs(workdirs, labels)
    fig = _panel_figure(CURVE_PANELS, runs, smoothing, "Entropy, diversity and rewards")
    if fig is None:
        raise ValueError(f"no curve metrics (entropy, diversity/*, reward/*) in {workdirs!r}")
    _save(fig, out_path)
    return fig


def plot_training(workdirs: str | Sequence[str], out_path: str, labels: Sequence[str] | None = None,
                  smoothing: float = 0.0) -> Figure | None:
    """training.png: loss, KL, grad norm, clip fractions, response length, lr. None (no file) if none logged."""
    workdirs = [workdirs] if isinstance(workdirs, str | os.PathLike) else list(workdirs)
    fig = _panel_figure(TRAINING_PANELS, load_runs(workdirs, labels), smoothing, "Optimisation")
    if fig is not None:
        _save(fig, out_path)
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
    _save(fig, out_path)
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
              "pool/synthesized_samples": "tab:purple"}
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


# ---------------------------------------------------------------------------------------------------- gallery


def _check_gallery(gallery, path: str) -> list[dict]:
    if not isinstance(gallery, dict) or not isinstance(gallery.get("tracked"), list):
        raise ValueError(f"{path}: expected an object with a 'tracked' list")
    for i, t in enumerate(gallery["tracked"]):
        if not isinstance(t, dict) or not isinstance(t.get("sample_id"), str | int) or "original" not in t:
            raise ValueError(f"{path}: tracked[{i}] needs 'sample_id' and 'original', got {t!r:.200}")
        history = t.get("history", [])
        if not isinstance(history, list):
            raise ValueError(f"{path}: tracked[{i}].history must be a list, got {type(history).__name__}")
        for j, h in enumerate(history):
            if not isinstance(h, dict) or not isinstance(h.get("version"), int) or "path" not in h:
                raise ValueError(f"{path}: tracked[{i}].history[{j}] needs an int 'version' and a 'path', "
                                 f"got {h!r:.200}")
            if h.get("epoch") is not None and not isinstance(h["epoch"], int | float):
                raise ValueError(f"{path}: tracked[{i}].history[{j}].epoch must be a number, got {h['epoch']!r}")
    return gallery["tracked"]


def _entry_epoch(entry: dict) -> int:
    return -1 if entry.get("epoch") is None else int(math.floor(entry["epoch"]))


def gallery_columns(tracked: dict, epochs: Sequence[int]) -> list[dict | None]:
    """For each epoch e, the last history entry applied at or before the end of epoch e (None: the original)."""
    out = []
    for e in epochs:
        chosen = None
        for entry in tracked.get("history", []):  # application order: the last match is the latest
            if _entry_epoch(entry) <= e:
                chosen = entry
        out.append(None if chosen is None or chosen["version"] == 0 else chosen)
    return out


def _load_image(path: str, max_side: int = 384) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side))
            return np.asarray(im)
    except (OSError, ValueError) as e:
        log.warning("gallery: cannot read %s (%s)", path, e)
        return None


def _caption(head: str, description: str | None, width: int = 30, lines: int = 3) -> str:
    if not description:
        return head
    wrapped = textwrap.wrap(" ".join(str(description).split()), width=width, max_lines=lines, placeholder=" …")
    return head + "\n" + "\n".join(wrapped)


def plot_gallery(workdir: str, out_path: str, max_epochs: int | None = None, max_samples: int | None = None,
                 metrics_epochs: bool = True) -> Figure:
    """gallery.png from `<workdir>/gallery.json`: rows are tracked samples, columns the original and the image
    at the end of each epoch 0..E. E is the largest epoch in the gallery or (metrics_epochs) in metrics.jsonl.

    max_epochs    at most this many epoch columns, evenly spaced, always including the first and the last.
    max_samples   at most this many rows (the first ones).
    Missing or unreadable image files are drawn as grey placeholders.
    """
    path = os.path.join(workdir, run_dir.GALLERY_FILE)
    with open(path, encoding="utf-8") as f:
        tracked = _check_gallery(json.load(f), path)
    if max_samples is not None:
        tracked = tracked[:max_samples]
    if not tracked:
        raise ValueError(f"{path}: no tracked samples")
    last_epoch = max([_entry_epoch(h) for t in tracked for h in t.get("history", [])] + [0])
    if metrics_epochs and os.path.exists(os.path.join(workdir, run_dir.METRICS_FILE)):
        _, epochs_logged = metric_series(read_metrics(workdir), "epoch")
        finite = epochs_logged[np.isfinite(epochs_logged)]
        if len(finite):
            last_epoch = max(last_epoch, int(math.floor(finite.max())))
    epochs = list(range(last_epoch + 1))
    if max_epochs is not None and len(epochs) > max_epochs:
        if max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {max_epochs!r}")
        epochs = sorted({int(round(x)) for x in np.linspace(0, last_epoch, max_epochs)})

    def resolve(p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(workdir, p)

    ncols, nrows = 1 + len(epochs), len(tracked)
    fig = Figure(figsize=(2.35 * ncols + 0.4, 3.05 * nrows + 0.5), dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for row, t in enumerate(tracked):
        cells = [(resolve(t["original"]), "original (v0)", None, None)]
        previous = None
        for e, entry in zip(epochs, gallery_columns(t, epochs)):
            if entry is None:
                cells.append((resolve(t["original"]), "v0 (original)", None, e))
                continue
            if entry is previous:  # nothing new this epoch: say so instead of repeating the caption
                cells.append((resolve(entry["path"]), f"v{entry['version']} (unchanged)", None, e))
                continue
            head = f"v{entry['version']} · epoch {_entry_epoch(entry)}"
            if entry.get("step") is not None:
                head += f" · step {entry['step']}"
            cells.append((resolve(entry["path"]), head, entry.get("description"), e))
            previous = entry
        for col, (image_path, head, description, e) in enumerate(cells):
            ax = axes[row, col]
            image = _load_image(image_path) if os.path.exists(image_path) else None
            if image is None:
                ax.imshow(np.full((96, 96, 3), 0.82))
                reason = "missing" if not os.path.exists(image_path) else "unreadable"
                ax.text(0.5, 0.5, f"{reason}\n{os.path.basename(image_path)[:28]}", transform=ax.transAxes,
                        ha="center", va="center", fontsize=8, color="0.25")
            else:
                ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("0.8")
            ax.set_xlabel(_caption(head, description), fontsize=7, loc="left", linespacing=1.2)
            if row == 0:
                ax.set_title("original" if e is None else f"end of epoch {e}", fontsize=10, fontweight="bold")
        axes[row, 0].set_ylabel(str(t["sample_id"])[:40], fontsize=9)
    fig.suptitle(f"Training images over epochs: {os.path.basename(os.path.normpath(workdir))}", fontsize=12)
    _save(fig, out_path)
    return fig


# ---------------------------------------------------------------------------------------------------- all


def _save(fig: Figure, out_path: str) -> None:
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=fig.dpi)
    atomic_write(out_path, png.getvalue())  # a viewer polling the file never sees half a PNG


def plot_all(workdirs: str | Sequence[str], out_dir: str | None = None, labels: Sequence[str] | None = None,
             smoothing: float = DEFAULT_SMOOTHING, max_epochs: int | None = None) -> list[str]:
    """Every figure the inputs allow, into `out_dir` (default `<first workdir>/plots`); returns the paths written.

    A figure that fails is logged and skipped, so a plotting problem at the end of a run never fails the run.
    """
    workdirs = [os.fspath(workdirs)] if isinstance(workdirs, str | os.PathLike) else [os.fspath(w) for w in workdirs]
    out_dir = out_dir or run_dir.RunDir(workdirs[0]).plots
    names = _labels(workdirs, labels)
    written = []

    def attempt(name, fn, *args, **kwargs):
        path = os.path.join(out_dir, name)
        try:
            if fn(*args, path, **kwargs) is not None:
                written.append(path)
        except Exception:  # noqa: BLE001 - see docstring
            log.exception("plots: %s failed", name)

    with_metrics = [w for w in workdirs if os.path.exists(os.path.join(w, run_dir.METRICS_FILE))]
    metric_labels = [n for w, n in zip(workdirs, names) if w in with_metrics]
    if with_metrics:
        attempt("curves.png", plot_curves, with_metrics, labels=metric_labels, smoothing=smoothing)
        attempt("training.png", plot_training, with_metrics, labels=metric_labels, smoothing=smoothing)
        attempt("timing.png", plot_timing, with_metrics, labels=metric_labels)
    for workdir, name in zip(workdirs, names):
        if os.path.exists(os.path.join(workdir, run_dir.GALLERY_FILE)):
            filename = "gallery.png" if len(workdirs) == 1 else f"gallery_{name.replace(os.sep, '_')}.png"
            attempt(filename, plot_gallery, workdir, max_epochs=max_epochs)
    return written


def main(argv: Sequence[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(prog="python -m syngrpo_jax.plots", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="run directory, or several separated by commas")
    parser.add_argument("--out", default=None, help="output directory (default: <first workdir>/plots)")
    parser.add_argument("--labels", default=None, help="one label per workdir, separated by commas")
    parser.add_argument("--smoothing", type=float, default=DEFAULT_SMOOTHING, help="EMA weight in [0, 1); 0: off")
    parser.add_argument("--max_epochs", type=int, default=None, help="at most this many epoch columns in galleries")
    args = parser.parse_args(argv)
    workdirs = [w for w in args.workdir.split(",") if w]
    labels = None if args.labels is None else args.labels.split(",")
    for w in workdirs:
        if not os.path.isdir(w):
            parser.error(f"--workdir: {w!r} is not a directory")
    if labels is not None and len(labels) != len(workdirs):
        parser.error(f"--labels: {len(labels)} labels for {len(workdirs)} workdirs")
    if not 0.0 <= args.smoothing < 1.0:
        parser.error(f"--smoothing must be in [0, 1), got {args.smoothing}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    written = plot_all(workdirs, args.out, labels=labels, smoothing=args.smoothing, max_epochs=args.max_epochs)
    for path in written:
        print(path)
    if not written:
        parser.exit(1, "no figure written (no metrics.jsonl or gallery.json with data?)\n")
    return written


if __name__ == "__main__":
    main()
