"""Per-sample pass rates: an EMA of the mean accuracy over a sample's G responses, whatever its current image.

p <- m * p + (1 - m) * acc with momentum m; the first observation initialises p = acc; unseen samples have none
(NaN inside, None outside). The pass rate follows the sample across image versions: it measures the sample.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from syngrpo_jax.data.pool import schema
from syngrpo_jax.data.pool.errors import PoolError

ENTRY = schema.Struct(value=schema.Real(0.0, 1.0), count=schema.Int(1), step=schema.Int(0))


class PassRates:
    """Arrays in the pool's canonical sample order (index i is the i-th sorted sample id)."""

    def __init__(self, ids: Sequence[str], momentum: float):
        if not isinstance(momentum, numbers.Real) or not (0 <= momentum < 1):
            raise PoolError("pass_rate_momentum", momentum, "must be a number in [0, 1)")
        self.ids = list(ids)
        self.momentum = float(momentum)
        self.reset()

    def reset(self) -> None:
        n = len(self.ids)
        self.values = np.full(n, np.nan)  # NaN = unseen
        self.counts = np.zeros(n, np.int64)
        self.steps = np.full(n, -1, np.int64)

    def get(self, i: int) -> float | None:
        return None if np.isnan(self.values[i]) else float(self.values[i])

    def as_dict(self) -> dict[str, float | None]:
        return {sid: self.get(i) for i, sid in enumerate(self.ids)}

    def update(self, updates: Sequence[tuple[int, float]], step: int) -> None:
        """Fold (index, accuracy in [0, 1]) pairs in; the caller validated them."""
        m = self.momentum
        for i, acc in updates:
            old = self.values[i]
            self.values[i] = acc if np.isnan(old) else m * float(old) + (1.0 - m) * acc
            self.counts[i] += 1
            self.steps[i] = step

    def stats(self) -> dict[str, float | int | None]:
        seen = ~np.isnan(self.values)
        return {"num_with_pass_rate": int(seen.sum()),
                "mean_pass_rate": float(self.values[seen].mean()) if seen.any() else None}

    def state_dict(self) -> dict[str, dict]:
        """{sample_id: {"value", "count", "step"}} for samples with at least one observation."""
        return {sid: {"value": float(self.values[i]), "count": int(self.counts[i]), "step": int(self.steps[i])}
                for i, sid in enumerate(self.ids) if not np.isnan(self.values[i])}

    def load_state_dict(self, state: Mapping[str, Mapping], index: Mapping[str, int]) -> None:
        """Restore a (schema-checked) state_dict; `index` maps its ids to positions."""
        values, counts, steps = np.full(len(self.ids), np.nan), np.zeros(len(self.ids), np.int64), \
            np.full(len(self.ids), -1, np.int64)
        for sid, r in state.items():
            i = index[sid]
            values[i], counts[i], steps[i] = float(r["value"]), int(r["count"]), int(r["step"])
        self.values, self.counts, self.steps = values, counts, steps
