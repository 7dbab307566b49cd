"""Metric series of runs for the figures: a run's records, one metric over steps, TensorBoard's EMA, epochs."""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from syngrpo_jax import run_dir
from syngrpo_jax.atomic_write import atomic_write
from syngrpo_jax.metrics import read_metrics


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


def run_labels(workdirs: Sequence[str], labels: Sequence[str] | None) -> list[str]:
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
    for workdir, label in zip(workdirs, run_labels(workdirs, labels)):
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


def save_figure(fig: Figure, out_path: str) -> None:
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=fig.dpi)
    atomic_write(out_path, png.getvalue())  # a viewer polling the file never sees half a PNG
