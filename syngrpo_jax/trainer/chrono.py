"""Wall time of each phase of a training step, as `time/<name>` metrics (one helper instead of timestamp arithmetic).

    chrono = Chrono(("rollout", "rewards", "synthesis", "waiting", "update", "weight_sync"))
    chrono.start_step()
    with chrono("rollout"):
        ...
    metrics = chrono.metrics()   # {"time/rollout": s, ..., "time/step": seconds since start_step}

Every name given at construction is reported each step (0.0 when its phase did not run, e.g. `waiting` in
asynchronous synthesis), so metric columns never come and go. A name may be timed several times in one step; the
times add up (synthesis: applying results at the start of the step, then submitting jobs).
"""
from __future__ import annotations

import contextlib
import time
from typing import Iterator, Sequence


class Chrono:
    def __init__(self, names: Sequence[str], *, clock=time.perf_counter):
        if len(set(names)) != len(names) or "step" in names:
            raise ValueError(f"phase names must be distinct and not 'step', got {list(names)}")
        self.names = tuple(names)
        self._clock = clock
        self._start: float | None = None
        self._spent = dict.fromkeys(self.names, 0.0)

    def start_step(self) -> None:
        """Zero every phase and start the step's clock."""
        self._spent = dict.fromkeys(self.names, 0.0)
        self._start = self._clock()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Add the time spent inside the block to phase `name`."""
        if name not in self._spent:
            raise KeyError(f"unknown phase {name!r}; phases: {self.names}")
        start = self._clock()
        try:
            yield
        finally:
            self._spent[name] += self._clock() - start

    def metrics(self) -> dict[str, float]:
        """{"time/<name>": seconds} of every phase, and "time/step": the step's wall time so far."""
        if self._start is None:
            raise RuntimeError("Chrono.metrics() before start_step()")
        out = {f"time/{name}": spent for name, spent in self._spent.items()}
        out["time/step"] = self._clock() - self._start
        return out
