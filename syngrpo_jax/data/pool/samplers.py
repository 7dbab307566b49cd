"""Batch samplers of the data pool, chosen by `data.sampling`: where curricula (adaptive difficulty) plug in.

The RNG is counter-based, `np.random.Generator(PCG64(SeedSequence([seed, stream, counter])))`, so it has no hidden
state: the counters in the pool's state are the whole RNG state. Indices are into the pool's canonical order
(sample ids sorted), so sampling does not depend on the order of the list a pool was built from.

  uniform     (default) epochs without replacement. Epoch e visits the samples in the order of
              `argsort(rng(seed, EPOCH, e).random(N))`. A batch takes the next samples of the current epoch;
              when fewer than B are left it takes all of them, starts epoch e+1 and fills the rest from epoch
              e+1's order, *skipping samples already in this batch*; the skipped ones stay at the front of epoch
              e+1's remaining order and come in a later batch. So every epoch visits each sample exactly once and
              no batch repeats a sample (B <= N is required).
  difficulty  each batch is a weighted draw without replacement, independent of earlier batches, with weights
              w(p) = eps + p * (1 - p), where p is the pass rate and unseen samples count as p = 0.5
              (the maximum weight eps + 1/4): GRPO learns nothing from a group whose responses all succeed or
              all fail (zero advantage), and most from p near 1/2. eps > 0 keeps every sample reachable.
              Draw: Efraimidis-Spirakis, key_i = log(u_i) / w_i with u_i = 1 - rng(seed, DIFFICULTY,
              step).random(N) in (0, 1]; the batch is the B largest keys, largest first (ties by canonical
              order). This equals drawing one sample at a time with probability proportional to w among those
              not yet drawn.

A sampler is `draw(batch_size, step, pass_rates) -> indices` plus `state_dict()` / `load_state_dict()` of what
it remembers (the uniform sampler: the current epoch and its remaining order).
"""
from __future__ import annotations

import collections
import math
import numbers

import numpy as np

from syngrpo_jax.data.pool import schema
from syngrpo_jax.data.pool.errors import PoolError

# Independent counter-based RNG streams (the second SeedSequence word).
STREAM_EPOCH = 1
STREAM_DIFFICULTY = 2
STREAM_TRACKED = 3

STATE = schema.Struct(epoch=schema.Int(-1), remaining=schema.ListOf(schema.Str(), distinct=True))


def counter_rng(seed: int, stream: int, counter: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, counter])))


def difficulty_weights(pass_rates: np.ndarray, eps: float) -> np.ndarray:
    """w = eps + p * (1 - p) per sample; NaN (unseen) counts as p = 0.5, the maximum eps + 0.25. float64 [N]."""
    p = np.asarray(pass_rates, np.float64)
    p = np.where(np.isnan(p), 0.5, p)
    return eps + p * (1.0 - p)


class Sampler:
    """The state every sampler's state dict has (one format for all modes): the uniform sampler's epoch and the
    rest of its order; a stateless sampler leaves them at -1 and []."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self.epoch = -1  # the epoch that `queue` belongs to; -1: no epoch started yet
        self.queue: collections.deque[int] = collections.deque()  # indices left in `epoch`, in order

    def draw(self, batch_size: int, step: int, pass_rates: np.ndarray) -> list[int]:
        raise NotImplementedError

    def state_dict(self, ids: list[str]) -> dict:
        return {"epoch": self.epoch, "remaining": [ids[i] for i in self.queue]}

    def load_state_dict(self, state: dict, index: dict[str, int]) -> None:
        self.epoch, self.queue = int(state["epoch"]), collections.deque(index[r] for r in state["remaining"])


class UniformSampler(Sampler):
    def _epoch_order(self, epoch: int) -> list[int]:
        return np.argsort(counter_rng(self.seed, STREAM_EPOCH, epoch).random(self.n), kind="stable").tolist()

    def draw(self, batch_size: int, step: int, pass_rates: np.ndarray) -> list[int]:
        queue = self.queue
        taken = [queue.popleft() for _ in range(min(batch_size, len(queue)))]
        if len(taken) < batch_size:  # the epoch ran out: start the next one, skipping what this batch holds
            self.epoch += 1
            in_batch = set(taken)
            rest = []
            for i in self._epoch_order(self.epoch):
                if len(taken) < batch_size and i not in in_batch:
                    taken.append(i)
                else:
                    rest.append(i)
            self.queue = collections.deque(rest)
        return taken


class DifficultySampler(Sampler):
    """Stateless: each draw depends on (seed, step) and the pass rates only."""

    def __init__(self, n: int, seed: int, eps: float):
        super().__init__(n, seed)
        self.eps = eps

    def draw(self, batch_size: int, step: int, pass_rates: np.ndarray) -> list[int]:
        w = difficulty_weights(pass_rates, self.eps)
        u = 1.0 - counter_rng(self.seed, STREAM_DIFFICULTY, step).random(self.n)  # (0, 1]
        keys = np.log(u) / w
        return np.argsort(-keys, kind="stable")[:batch_size].tolist()


SAMPLING_MODES = ("uniform", "difficulty")


def make_sampler(mode: str, n: int, seed: int, difficulty_eps: float) -> Sampler:
    if mode not in SAMPLING_MODES:
        raise PoolError("sampling", mode, f"must be one of {SAMPLING_MODES}")
    if not isinstance(difficulty_eps, numbers.Real) or not (0 < difficulty_eps < math.inf):
        raise PoolError("difficulty_eps", difficulty_eps, "must be a finite number > 0")
    difficulty_eps = float(difficulty_eps)
    return UniformSampler(n, seed) if mode == "uniform" else DifficultySampler(n, seed, difficulty_eps)


def tracked_order(seed: int, n: int) -> np.ndarray:
    """A seeded permutation of range(n): the gallery follows its first samples."""
    return np.argsort(counter_rng(seed, STREAM_TRACKED, 0).random(n), kind="stable")
