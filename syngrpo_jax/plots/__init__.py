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
import logging
import os
from typing import Sequence

from syngrpo_jax import run_dir
from syngrpo_jax.plots.curves import plot_curves, plot_timing, plot_training
from syngrpo_jax.plots.gallery import gallery_columns, plot_gallery, write_gallery
from syngrpo_jax.plots.series import Run, ema, epoch_boundaries, load_runs, metric_series, run_labels

log = logging.getLogger(__name__)

DEFAULT_SMOOTHING = 0.6  # for the CLI and plot_all: light, and the raw values stay visible behind
__all__ = ["plot_all", "plot_curves", "plot_training", "plot_timing", "plot_gallery", "gallery_columns",
           "write_gallery", "Run", "ema", "epoch_boundaries", "load_runs", "metric_series", "main"]


def plot_all(workdirs: str | Sequence[str], out_dir: str | None = None, labels: Sequence[str] | None = None,
             smoothing: float = DEFAULT_SMOOTHING, max_epochs: int | None = None) -> list[str]:
    """Every figure the inputs allow, into `out_dir` (default `<first workdir>/plots`); returns the paths written.

    A figure that fails is logged and skipped, so a plotting problem at the end of a run never fails the run.
    """
    workdirs = [os.fspath(workdirs)] if isinstance(workdirs, str | os.PathLike) else [os.fspath(w) for w in workdirs]
    out_dir = out_dir or run_dir.RunDir(workdirs[0]).plots
    names = run_labels(workdirs, labels)
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
