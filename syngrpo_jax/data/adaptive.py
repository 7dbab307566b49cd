"""Adaptive difficulty in training: fresh QA samples at the difficulty the policy passes about `target` of the time.

GRPO learns nothing from a group whose responses all pass or all fail, so with `data.adaptive.enabled` the engine
keeps feeding the data pool fresh samples at the level that keeps the batch informative:

  refresh   (each step, before the batch is drawn) `per_step` fresh samples are generated. Fresh sample k of the
            run is of family families[k % F] (the families take turns) at the level its controller chooses now
            (`difficulty.DifficultyController.choose`: the level whose pass-rate EMA is nearest the target), and
            is `difficulty.fresh_example(cfg, seed, family, level, k)`: a pure function of its arguments. They
            enter the pool (`DataPool.add`; the uniform sampler draws them first, the pass-rate-aware sampler
            gives them the largest weight as unseen), images under `<run>/fresh/images/`. Beyond `max_fresh`
            fresh samples in the pool the oldest retire (`DataPool.retire`); the training set always stays.
  observe   (after scoring) every response's accuracy goes to the controller under its sample's family and
            difficulty (meta "qa_category" and "difficulty"), training-set samples as well as fresh ones; levels
            without a response this step relax towards the target (difficulty.py).

Everything is a function of (seed, the observed accuracies), so the state is small: the controller's EMAs, the
number of fresh samples generated, and (family, level, index) of those still in the pool. `load_state_dict`
regenerates them (byte-identical images) and returns them for `DataPool.load_state_dict(..., added=...)`; the
pair lives in `trainer.host_state.HostState`, saved and restored together. In a multi-process run every process
makes the same fresh samples (a pure function of the state); they write identical bytes to the same file names.
"""
from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Mapping, Sequence

import numpy as np

from syngrpo_jax.data.difficulty import DifficultyController, accuracy_by_level, fresh_id, fresh_samples
from syngrpo_jax.data.engine import EngineConfig
from syngrpo_jax.data.pool import DataPool
from syngrpo_jax.data.sample import Sample


@dataclasses.dataclass(frozen=True)
class AdaptiveSettings:
    """data.adaptive: target pass rate, EMA momentum, relax rate, fresh samples per step, fresh samples kept."""

    target: float = 0.5
    momentum: float = 0.8
    relax: float = 0.02
    per_step: int = 4
    max_fresh: int = 64

    def __post_init__(self):
        for name in ("per_step", "max_fresh"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"data.adaptive.{name}={value!r}: must be an integer >= 1")
        if self.max_fresh < self.per_step:
            raise ValueError(f"data.adaptive.max_fresh={self.max_fresh}: must be >= data.adaptive.per_step="
                             f"{self.per_step} (a step's fresh samples must fit in the pool)")

    @classmethod
    def from_config(cls, adaptive) -> "AdaptiveSettings":
        return cls(target=adaptive.target, momentum=adaptive.momentum, relax=adaptive.relax,
                   per_step=adaptive.per_step, max_fresh=adaptive.max_fresh)


class AdaptiveDifficulty:
    """The difficulty controller and the fresh samples it asked for (see the module docstring)."""

    def __init__(self, settings: AdaptiveSettings, engine_cfg: EngineConfig, seed: int, out_dir: str):
        self.settings, self.engine_cfg, self.seed = settings, engine_cfg, int(seed)
        self.out_dir = os.path.abspath(out_dir)
        self.controller = DifficultyController(families=engine_cfg.families, target=settings.target,
                                               momentum=settings.momentum, relax=settings.relax)
        self.generated = 0  # fresh samples made so far (the next one's index)
        self.window: collections.deque[tuple[str, int, int]] = collections.deque()  # in the pool, oldest first

    def _make(self, family: str, level: int, index: int) -> Sample:
        return fresh_samples(self.out_dir, self.engine_cfg, self.seed, family, level, index, 1)[0]

    def refresh(self, pool: DataPool) -> list[Sample]:
        """This step's fresh samples into the pool, the oldest beyond max_fresh out; returns the new samples."""
        families = self.controller.families
        made = []
        for _ in range(self.settings.per_step):
            family = families[self.generated % len(families)]
            spec = (family, self.controller.choose(family), self.generated)
            made.append(self._make(*spec))
            self.window.append(spec)
            self.generated += 1
        pool.add(made)
        retired = []
        while len(self.window) > self.settings.max_fresh:
            retired.append(fresh_id(*self.window.popleft()))
        pool.retire(retired)
        return made

    def observe(self, samples: Sequence[Sample], accuracy: np.ndarray) -> None:
        """One step's accuracies ([B, G], row b for samples[b]) into the controller, per family and level."""
        by_level = accuracy_by_level(samples, accuracy)
        for family in self.controller.families:
            self.controller.update(family, {level: accs for (f, level), accs in by_level.items() if f == family})

    def metrics(self) -> dict[str, float]:
        """qa/<family>/level (the level fresh samples of the family get now), qa/<family>/d<k>/pass_rate (the
        EMAs behind it), pool/fresh_samples."""
        out: dict[str, float] = {"pool/fresh_samples": len(self.window)}
        for family, rates in self.controller.rates.items():
            out[f"qa/{family}/level"] = self.controller.choose(family)
            out.update({f"qa/{family}/d{d}/pass_rate": p for d, p in rates.items() if p is not None})
        return out

    def state_dict(self) -> dict:
        return {"controller": self.controller.state_dict(), "generated": self.generated,
                "window": [list(spec) for spec in self.window]}

    def load_state_dict(self, state: Mapping) -> list[Sample]:
        """Restore a state_dict(); returns the fresh samples still in the pool (regenerated), oldest first."""
        try:
            generated, window = int(state["generated"]), [(str(f), int(d), int(i)) for f, d, i in state["window"]]
            controller = DifficultyController(families=self.controller.families, target=self.settings.target,
                                              momentum=self.settings.momentum, relax=self.settings.relax)
            controller.load_state_dict(state["controller"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"state.adaptive: not an adaptive-difficulty state of this run ({e!r})") from None
        bad = [spec for spec in window if not 0 <= spec[2] < generated or spec[0] not in controller.families]
        if bad:
            raise ValueError(f"state.adaptive.window: {bad[:3]} are not fresh samples of this run "
                             f"(families {controller.families}, {generated} generated)")
        samples = [self._make(*spec) for spec in window]
        self.controller, self.generated, self.window = controller, generated, collections.deque(window)
        return samples
