"""`DataPool`: the training set as the trainer sees it while the data server keeps rewriting backgrounds.

Syn-GRPO (docs/DESIGN.md, "The method") sends (d*, the sample's ORIGINAL image, its boxes) to the data server;
the image that comes back replaces the sample's *current* image here, and the original is always kept. The pool
composes four parts, each in its own module:

  versions     `versions.VersionStore`: per sample the original and every synthesized or reverted version, with
               provenance (description, submitted/applied step, job id, epoch, meta), files under
               `<run>/synth/`, staleness, and retention (`keep_versions`).
  pass rates   `pass_rates.PassRates`: per-sample EMA of the mean accuracy over the G responses.
  sampling     `samplers`: `next_batch(B)` returns the current versions of B distinct samples drawn by the
               sampler `sampling` names (uniform epochs, or pass-rate-aware), counting `step` (batches drawn) and
               `epoch` (samples drawn // N: the epoch the next sample will come from).
  state        `state_dict()` is plain JSON data, checked on load against a declarative schema (`schema`); a
               pool built from the same samples (any order) and run directory that loads it continues exactly:
               same batches, same versions, same pass rates.

Not thread-safe, by design: the trainer draws batches and applies data-server results on its main thread (the
synthesis client's background thread only queues results). Keep it that way rather than adding locks.
"""
from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Mapping
from typing import Any


from syngrpo_jax.data.pool import samplers, schema
from syngrpo_jax.data.pool.errors import PoolError, UnknownSampleError, check_int, is_int
from syngrpo_jax.data.pool.pass_rates import ENTRY as PASS_RATE_ENTRY
from syngrpo_jax.data.pool.pass_rates import PassRates
from syngrpo_jax.data.pool.versions import COUNTERS, VERSION_ENTRY, Version, VersionStore
from syngrpo_jax.data.sample import Sample

STATE_FORMAT = "syngrpo.data_pool"
STATE_VERSION = 1
STATE_SCHEMA = schema.Struct(
    format=schema.Const(STATE_FORMAT, f"not a data pool state (expected format {STATE_FORMAT!r})"),
    format_version=schema.Const(STATE_VERSION, f"this code reads {STATE_VERSION}"),
    config=schema.Struct(), sample_ids=schema.ListOf(schema.Str()), step=schema.Int(0),
    samples_drawn=schema.Int(0), sampler=samplers.STATE, counters=COUNTERS,
    versions=schema.DictOf(schema.ListOf(VERSION_ENTRY)), pass_rates=schema.DictOf(PASS_RATE_ENTRY))


class DataPool:
    """The training samples with their current images, provenance, pass rates and the batch sampler.

    keep_versions: synthesized image files kept per sample by `prune_versions` (0: all; see versions.py).
    Single-threaded by design: call every method from one thread (the trainer's main thread).
    """

    def __init__(self, samples: Iterable[Sample], workdir: str | os.PathLike, *, seed: int = 0,
                 sampling: str = "uniform", difficulty_eps: float = 0.05, pass_rate_momentum: float = 0.5,
                 keep_versions: int = 0):
        samples = list(samples)
        if not samples:
            raise PoolError("samples", samples, "the data pool needs at least one sample")
        by_id: dict[str, Sample] = {}
        for i, s in enumerate(samples):
            if not isinstance(s, Sample):
                raise PoolError(f"samples[{i}]", s, "must be a Sample")
            if s.sample_id in by_id:
                raise PoolError("sample_id", s.sample_id, f"duplicate sample id (samples[{i}] repeats an earlier one)")
            by_id[s.sample_id] = s
        self.seed = check_int("seed", seed)
        self.sampling = sampling
        self._ids: list[str] = sorted(by_id)  # canonical order: everything index-based uses it
        self._sampler = samplers.make_sampler(sampling, len(self._ids), self.seed, difficulty_eps)
        self.difficulty_eps = float(difficulty_eps)
        self._pass = PassRates(self._ids, pass_rate_momentum)
        self.pass_rate_momentum = self._pass.momentum
        self.keep_versions = check_int("keep_versions", keep_versions)
        self.workdir = os.path.abspath(os.fspath(workdir))
        self.sample_ids: tuple[str, ...] = tuple(by_id)  # in the order given
        self._index = {sid: i for i, sid in enumerate(self._ids)}
        self._store = VersionStore(by_id, self.workdir)
        self._step = 0
        self._samples_drawn = 0

    # ------------------------------------------------------------------ lookups

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._index

    def _check_id(self, sample_id: Any, field: str = "sample_id") -> str:
        if not isinstance(sample_id, str) or sample_id not in self._index:
            raise UnknownSampleError(sample_id, field)
        return sample_id

    @property
    def step(self) -> int:
        """Batches drawn so far."""
        return self._step

    @property
    def epoch(self) -> int:
        """samples drawn // number of samples: the epoch the next sample comes from."""
        return self._samples_drawn // len(self._ids)

    def original(self, sample_id: str) -> Sample:
        return self._store.original(self._check_id(sample_id))

    def current(self, sample_id: str) -> Sample:
        """The sample with `image_path` at its current image (same image_size, boxes, labels, meta)."""
        return self._store.current(self._check_id(sample_id))

    def version(self, sample_id: str) -> int:
        return self._store.head(self._check_id(sample_id)).version

    def history(self, sample_id: str) -> list[Version]:
        """Every version of the sample, oldest (the original, version 0) first."""
        return self._store.history(self._check_id(sample_id))

    def synth_path(self, sample_id: str, version: int) -> str:
        """Where version `version` of the sample is (or would be) written, relative to the run directory."""
        return self._store.synth_path(self._check_id(sample_id), version)

    def pass_rate(self, sample_id: str) -> float | None:
        return self._pass.get(self._index[self._check_id(sample_id)])

    def pass_rates(self) -> dict[str, float | None]:
        return self._pass.as_dict()

    def tracked_ids(self, n: int) -> list[str]:
        """n sample ids to follow in galleries: the first n of a seeded order, so tracked_ids(k) is a prefix of
        tracked_ids(n) for k <= n. n larger than the pool gives every id."""
        n = check_int("n", n)
        return [self._ids[i] for i in samplers.tracked_order(self.seed, len(self._ids))[:n]]

    # ------------------------------------------------------------------ changes

    def replace(self, sample_id: str, png_bytes: bytes, *, description: str, submitted_step: int,
                applied_step: int, job_id: str | None = None, meta: Mapping | None = None) -> bool:
        """Make a synthesized PNG the sample's current image. False (nothing changes but the stale counter) when
        the result is stale: its job was submitted before the job (or revert) behind the current image.
        The PNG must decode and have the original's size; it is written atomically under `<run>/synth/`."""
        return self._store.replace(self._check_id(sample_id), png_bytes, description=description,
                                   submitted_step=submitted_step, applied_step=applied_step, job_id=job_id,
                                   meta=meta, epoch=self.epoch)

    def revert(self, sample_id: str, *, step: int) -> None:
        """Back to the original image, as a new version (no file). Results of jobs submitted before `step` are
        stale from now on."""
        self._store.revert(self._check_id(sample_id), step=step, epoch=self.epoch)

    def prune_versions(self, *, keep_ids: Iterable[str] = (), checkpoint_steps: Iterable[int] = ()) -> int:
        """Apply the retention setting (`keep_versions`); returns the number of files deleted (see versions.py)."""
        return self._store.prune(self.keep_versions, keep_ids=keep_ids, checkpoint_steps=checkpoint_steps)

    def update_pass_rates(self, accuracies: Mapping[str, float], step: int) -> None:
        """Fold each sample's mean accuracy (over its G responses, in [0, 1]) into its pass-rate EMA.
        Validates everything before changing anything."""
        step = check_int("step", step)
        if not isinstance(accuracies, Mapping):
            raise PoolError("accuracies", accuracies, "must be a mapping sample_id -> mean accuracy")
        updates = []
        for sid, acc in accuracies.items():
            self._check_id(sid, "accuracies key")
            if not isinstance(acc, numbers.Real) or isinstance(acc, bool) or not (0.0 <= float(acc) <= 1.0):
                raise PoolError(f"accuracies[{sid!r}]", acc, "must be a number in [0, 1]")
            updates.append((self._index[sid], float(acc)))
        self._pass.update(updates, step)

    def next_batch(self, batch_size: int) -> list[Sample]:
        """The current versions of `batch_size` distinct samples, drawn by the configured sampler."""
        n = len(self._ids)
        if not is_int(batch_size) or not 1 <= batch_size <= n:
            raise PoolError("batch_size", batch_size, f"must be an integer in [1, {n}] (the pool size)")
        indices = self._sampler.draw(int(batch_size), self._step, self._pass.values)
        self._step += 1
        self._samples_drawn += int(batch_size)
        return [self._store.current(self._ids[i]) for i in indices]

    # ------------------------------------------------------------------ stats and state

    def stats(self) -> dict[str, Any]:
        return {"num_samples": len(self._ids), "num_synthesized": self._store.num_synthesized(),
                "replacements": self._store.replacements, "reverts": self._store.reverts,
                "stale_dropped": self._store.stale, **self._pass.stats(), "epoch": self.epoch, "step": self._step}

    def _config(self) -> dict[str, Any]:
        return {"seed": self.seed, "sampling": self.sampling, "difficulty_eps": self.difficulty_eps,
                "pass_rate_momentum": self.pass_rate_momentum}

    def state_dict(self) -> dict[str, Any]:
        """Everything that changes, as plain JSON data (the schema is STATE_SCHEMA):

            format, format_version   "syngrpo.data_pool", 1
            config       seed, sampling, difficulty_eps, pass_rate_momentum (must match on load)
            sample_ids   the ids, sorted (must match on load)
            step, samples_drawn
            sampler      {"epoch": the epoch the remaining order belongs to (-1 before the first batch),
                          "remaining": sample ids still to visit in that epoch, in order}
            counters     {"replacements", "reverts", "stale_dropped"}
            versions     {sample_id: [version entries after the original, oldest first]}; an entry has version,
                         kind, path, description, submitted_step, applied_step, job_id, epoch, meta
            pass_rates   {sample_id: {"value", "count", "step"}} for samples with at least one observation
        The RNG is counter-based (seed + step/epoch counters), so there is no generator state to save.
        """
        versions, counters = self._store.state_dict()
        return {"format": STATE_FORMAT, "format_version": STATE_VERSION, "config": self._config(),
                "sample_ids": list(self._ids), "step": self._step, "samples_drawn": self._samples_drawn,
                "sampler": self._sampler.state_dict(self._ids), "counters": counters, "versions": versions,
                "pass_rates": self._pass.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict()`, replacing this pool's state. Everything is validated before anything changes;
        the files of the current synthesized versions must exist under this pool's run directory."""
        if not isinstance(state, Mapping):
            raise PoolError("state.format", state, f"not a data pool state (expected format {STATE_FORMAT!r})")
        schema.check(STATE_SCHEMA, state)
        ids = state["sample_ids"]
        if ids != self._ids:
            missing, extra = sorted(set(self._ids) - set(ids)), sorted(set(ids) - set(self._ids))
            raise PoolError("state.sample_ids", f"{len(ids)} ids",
                            f"the state is from another sample set: {len(missing)} pool ids missing from it "
                            f"(e.g. {missing[:3]}), {len(extra)} ids not in this pool (e.g. {extra[:3]})")
        for key, value in self._config().items():
            if state["config"].get(key) != value:
                raise PoolError(f"state.config.{key}", state["config"].get(key),
                                f"differs from this pool's {key}={value!r}; build the pool with the saved config")
        for field, keys in (("state.versions key", state["versions"]), ("state.pass_rates key", state["pass_rates"])):
            for sid in keys:
                self._check_id(sid, field)
        remaining = state["sampler"]["remaining"]
        if not all(r in self._index for r in remaining):
            raise PoolError("state.sampler.remaining", remaining, "must be a list of distinct sample ids of this pool")
        self._store.load_state_dict(state["versions"], state["counters"])  # validates before it changes anything
        self._pass.load_state_dict(state["pass_rates"], self._index)
        self._sampler.load_state_dict(state["sampler"], self._index)
        self._step, self._samples_drawn = int(state["step"]), int(state["samples_drawn"])


