"""The data server's counters and recent per-stage timings, written by the router and worker threads."""
from __future__ import annotations

import collections
import threading

import numpy as np

from syngrpo_jax.protocol import synthesis as proto
from synth_torch.pipeline import Outcome


class ServerStats:
    """Counts by name and the last `window` timings per stage; thread-safe (one lock)."""

    def __init__(self, window: int = 1024):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.timings = {s: collections.deque(maxlen=window) for s in (*proto.STAGES, "total")}
        self.batch_sizes = collections.deque(maxlen=window)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] += n

    def record(self, outcome: Outcome) -> None:
        with self.lock:
            self.counts["done" if outcome.error is None else "failed"] += 1
            if outcome.error is not None:
                self.counts[f"failed_{outcome.error.code}"] += 1
            for stage, seconds in outcome.timings.items():
                if stage in self.timings:
                    self.timings[stage].append(seconds)
            self.batch_sizes.append(outcome.batch_size)

    def snapshot(self) -> dict:
        with self.lock:
            timings = {}
            for stage, values in self.timings.items():
                if values:
                    arr = np.asarray(values)
                    timings[stage] = {"count": len(arr), "mean_s": float(arr.mean()),
                                      "p50_s": float(np.percentile(arr, 50)), "p95_s": float(np.percentile(arr, 95)),
                                      "max_s": float(arr.max())}
            return {"counts": dict(self.counts), "timings": timings,
                    "mean_batch_size": float(np.mean(self.batch_sizes)) if self.batch_sizes else 0.0}
