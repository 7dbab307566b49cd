"""Adaptive difficulty: generate fresh QA samples at the difficulty whose pass rate is nearest a target.

GRPO learns nothing from a group whose responses all pass or all fail (zero advantage) and most from groups
that pass about half the time, so during training the engine keeps each family at the difficulty where the
policy's pass rate is nearest `target` (0.5 by default). Per family and difficulty the controller keeps an
exponential moving average of the observed accuracies (the mean over a step's responses at that level):

    p <- m * p + (1 - m) * acc        (m = momentum; the first observation sets p = acc)

and a level that is not observed in a step relaxes towards the target, p <- p + r * (target - p) (r = relax):
an estimate nobody refreshed grows uncertain, so a level that was too hard (or too easy) is tried again once the
policy may have changed. Unseen levels count as being at the target, so each level is tried once early on.
`choose(family)` is `nearest_difficulty` of the family's estimates: the level minimising |p - target|, ties to
the easier level.

`fresh_example` / `fresh_samples` make new samples of a family at a chosen difficulty from their own random
streams (never the training set's scenes). Wiring both into the trainer's pool is the trainer's business.
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from syngrpo_jax.data.engine import EngineConfig, Example, qa_example, save_example
from syngrpo_jax.data.qa import DIFFICULTIES, QA_CATEGORIES
from syngrpo_jax.data.sample import Sample

_FRESH_STREAM = 7  # keeps fresh samples' random streams apart from the engine's (tasks use 1-3)


def nearest_difficulty(rates: Mapping[int, float | None], target: float = 0.5) -> int:
    """The level whose pass rate is nearest `target` (None: unseen, counts as at the target); ties: the easier."""
    if not rates:
        raise ValueError("rates is empty: need a pass rate (or None) per difficulty")
    return min(sorted(rates), key=lambda d: 0.0 if rates[d] is None else abs(rates[d] - target))


def ema(rate: float | None, accuracy: float, momentum: float) -> float:
    """The pass-rate EMA after observing `accuracy` (the first observation initialises it)."""
    return accuracy if rate is None else momentum * rate + (1.0 - momentum) * accuracy


def relax(rate: float | None, target: float, amount: float) -> float | None:
    """An unrefreshed estimate, moved the fraction `amount` of the way towards the target."""
    return None if rate is None else rate + amount * (target - rate)


@dataclasses.dataclass
class DifficultyController:
    """Per-family, per-difficulty pass-rate EMAs and the difficulty to generate next (see the module docstring)."""

    families: Sequence[str] = QA_CATEGORIES
    levels: Sequence[int] = DIFFICULTIES
    target: float = 0.5
    momentum: float = 0.8
    relax: float = 0.02
    rates: dict = dataclasses.field(default_factory=dict)  # family -> {level: EMA or None}

    def __post_init__(self):
        for name, value, lo, hi in (("target", self.target, 0.0, 1.0), ("momentum", self.momentum, 0.0, 1.0),
                                    ("relax", self.relax, 0.0, 1.0)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
                raise ValueError(f"{name}={value!r}: must be a number in [{lo}, {hi}]")
        unknown = [f for f in self.families if f not in QA_CATEGORIES]
        if unknown or not self.families:
            raise ValueError(f"families={tuple(self.families)!r}: must be a non-empty subset of {QA_CATEGORIES}")
        if not self.levels or any(d not in DIFFICULTIES for d in self.levels):
            raise ValueError(f"levels={tuple(self.levels)!r}: must be a non-empty subset of {DIFFICULTIES}")
        self.families, self.levels = tuple(self.families), tuple(self.levels)
        self.rates = {f: {d: self.rates.get(f, {}).get(d) for d in self.levels} for f in self.families}

    def choose(self, family: str) -> int:
        return nearest_difficulty(self._family(family), self.target)

    def update(self, family: str, accuracies: Mapping[int, Iterable[float]]) -> None:
        """One training step's accuracies of `family`'s responses, per difficulty; other levels relax."""
        rates = self._family(family)
        unknown = sorted(set(accuracies) - set(self.levels))
        if unknown:
            raise ValueError(f"accuracies has difficulties {unknown} outside levels={self.levels}")
        for level in self.levels:
            acc = [float(a) for a in accuracies.get(level, ())]
            if any(not 0.0 <= a <= 1.0 for a in acc):
                raise ValueError(f"accuracies[{level}]={acc!r}: every accuracy must be in [0, 1]")
            rates[level] = ema(rates[level], float(np.mean(acc)), self.momentum) if acc else relax(
                rates[level], self.target, self.relax)

    def state_dict(self) -> dict:
        return {"rates": {f: {str(d): p for d, p in r.items()} for f, r in self.rates.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        rates = state["rates"]
        if set(rates) != set(self.families):
            raise ValueError(f"state has families {sorted(rates)}, this controller {sorted(self.families)}")
        self.rates = {f: {d: rates[f].get(str(d)) for d in self.levels} for f in self.families}

    def _family(self, family: str) -> dict:
        if family not in self.rates:
            raise ValueError(f"family {family!r} is not controlled; controlled: {self.families}")
        return self.rates[family]


def fresh_example(cfg: EngineConfig, seed: int, family: str, difficulty: int, index: int) -> Example:
    """Fresh sample `index` of `family` at `difficulty`: a pure function of its arguments."""
    if family not in QA_CATEGORIES:
        raise ValueError(f"family {family!r} is unknown; known: {QA_CATEGORIES}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty={difficulty!r}: must be one of {DIFFICULTIES}")
    rng = np.random.default_rng([seed, _FRESH_STREAM, QA_CATEGORIES.index(family), difficulty, index])
    return qa_example(rng, dataclasses.replace(cfg, difficulty=difficulty), family=family)


def fresh_samples(out_dir: str | os.PathLike, cfg: EngineConfig, seed: int, family: str, difficulty: int,
                  start: int, count: int) -> list[Sample]:
    """Fresh samples `start .. start + count - 1` written under `out_dir/images` (ids name family and level)."""
    image_dir = os.path.join(os.path.abspath(os.fspath(out_dir)), "images")
    os.makedirs(image_dir, exist_ok=True)
    return [save_example(fresh_example(cfg, seed, family, difficulty, i),
                         f"qa-fresh-{family}-d{difficulty}-{i:06d}", image_dir, cfg.split)[0]
            for i in range(start, start + count)]
