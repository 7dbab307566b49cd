"""`DataPool`: the training set as the trainer sees it while the data server keeps rewriting backgrounds.

Syn-GRPO (DESIGN.md, step 8) sends (d*, the sample's ORIGINAL image, its boxes) to the data server; the image that
comes back replaces the sample's *current* image here, and the original is always kept. The pool owns:

  versions     per sample, version 0 is the original image (never modified, never deleted); every accepted
               `replace` and every `revert` appends a version. Synthesized images are written atomically (temp
               file + rename) to `<workdir>/synth/<sanitised id>/v<version>.png` and never deleted, so `history`
               can show a sample's images across epochs (galleries).
  provenance   per version: description, submitted_step, applied_step, job_id, path (relative to workdir),
               the pool's epoch when it was applied, free-form meta (JSON).
  staleness    results arrive late, out of order, or never. A result whose job was submitted at an earlier step
               than the job that produced the current image (or than a revert) is stale: dropped and counted,
               nothing else changes. Equal submission steps are accepted (the later arrival wins).
  pass rates   per-sample EMA of the mean accuracy over the G responses: p <- m*p + (1-m)*acc with momentum m
               (`pass_rate_momentum`); the first observation initialises p = acc; unseen samples have None. The
               pass rate follows the sample across image versions (it measures the sample, whatever its image).
  sampling     `next_batch(B)` returns the current versions of B distinct samples (rules below), counting `step`
               (batches drawn) and `epoch`.
  state        `state_dict()` is plain JSON data; a pool built from the same samples (any order) and workdir that
               loads it continues exactly: same batches, same versions, same pass rates.

Sampling rules. Samples are put in a canonical order (sorted by id), so the pool does not depend on the order of
the list it was built from. The RNG is counter-based, `np.random.Generator(PCG64(SeedSequence([seed, stream,
counter])))`, so it has no hidden state: the counters in the state dict are the whole RNG state.

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

  step    the number of batches drawn so far; the batch drawn by `next_batch` is batch number `step` (before the
          increment), which is also the difficulty-mode RNG counter.
  epoch   samples_drawn // N: the epoch the next sample will come from (in difficulty mode the number of
          sample-equivalent epochs). Versions record the epoch at which they were applied.

Not thread-safe, by design: the trainer draws batches and applies data-server results on its main thread (the
synthesis client's background thread only queues results). Keep it that way rather than adding locks.

Files from versions beyond a restored checkpoint stay on disk and are overwritten when the restored run writes
the same version number again; nothing is deleted.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import json
import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from syngrpo_jax import run_dir
from syngrpo_jax.atomic_write import atomic_write
from syngrpo_jax.data.sample import Sample, probe_image_size

SAMPLING_MODES = ("uniform", "difficulty")
STATE_FORMAT = "syngrpo.data_pool"
STATE_VERSION = 1
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Independent counter-based RNG streams (the second SeedSequence word).
_STREAM_EPOCH = 1
_STREAM_DIFFICULTY = 2
_STREAM_TRACKED = 3


class PoolError(ValueError):
    """A bad argument or state for the data pool. Carries `field`, `value` and `reason`."""

    def __init__(self, field: str, value: Any, reason: str):
        self.field, self.value, self.reason = field, value, reason
        text = repr(value)
        if len(text) > 200:
            text = text[:197] + "..."
        super().__init__(f"{field} = {text}: {reason}")


class UnknownSampleError(KeyError):
    """A sample id that is not in the pool."""

    def __init__(self, sample_id: Any, field: str = "sample_id"):
        self.field, self.value = field, sample_id
        super().__init__(sample_id)

    def __str__(self) -> str:
        return f"{self.field} = {self.value!r}: no such sample in the data pool"


@dataclasses.dataclass(frozen=True)
class Version:
    """One image version of one sample (what `history` returns).

    kind          "original" (version 0), "synthesized" (a data-server image) or "revert" (back to the original).
    path          the PNG relative to the workdir for "synthesized"; None for "original" and "revert", whose image
                  is the original file.
    image_path    the absolute path of this version's image, whatever the kind.
    submitted_step, applied_step   trainer steps (None for the original); for a revert both are its step.
    epoch         the pool's epoch when the version was applied (None for the original).
    """

    version: int
    kind: str
    image_path: str
    path: str | None = None
    description: str | None = None
    submitted_step: int | None = None
    applied_step: int | None = None
    job_id: str | None = None
    epoch: int | None = None
    meta: dict | None = None


def sanitize_id(sample_id: str) -> str:
    """A file-name-safe directory name for a sample id: readable prefix + 64-bit hash of the exact id.

    Unsafe characters become "_" and the prefix is cut to 48 characters, so two ids may share a prefix ("a/b",
    "a_b"); the SHA-256 suffix of the full id keeps them apart, also on case-insensitive file systems (the hash
    differs when the case does). `DataPool` checks that its names are distinct anyway.
    """
    prefix = re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)[:48].lstrip(".") or "id"
    return f"{prefix}-{hashlib.sha256(sample_id.encode('utf-8')).hexdigest()[:16]}"


def difficulty_weights(pass_rates: np.ndarray, eps: float) -> np.ndarray:
    """w = eps + p * (1 - p) per sample; NaN (unseen) counts as p = 0.5, the maximum eps + 0.25. float64 [N]."""
    p = np.asarray(pass_rates, np.float64)
    p = np.where(np.isnan(p), 0.5, p)
    return eps + p * (1.0 - p)


def _rng(seed: int, stream: int, counter: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, counter])))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(field: str, value: Any, minimum: int = 0) -> int:
    if not _is_int(value) or value < minimum:
        raise PoolError(field, value, f"must be an integer >= {minimum}")
    return int(value)


def _check_json(field: str, value: Any) -> Any:
    """A JSON round-tripped copy (strict JSON: no NaN/inf), so state dicts stay plain data."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise PoolError(field, value, f"must be JSON-serialisable ({e})") from None


class DataPool:
    """The training samples with their current images, provenance, pass rates and the batch sampler.

    See the module docstring for the rules. Single-threaded by design: call every method from one thread (the
    trainer's main thread).
    """

    def __init__(self, samples: Iterable[Sample], workdir: str | os.PathLike, *, seed: int = 0,
                 sampling: str = "uniform", difficulty_eps: float = 0.05, pass_rate_momentum: float = 0.5):
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
        self.seed = _check_int("seed", seed)
        if sampling not in SAMPLING_MODES:
            raise PoolError("sampling", sampling, f"must be one of {SAMPLING_MODES}")
        self.sampling = sampling
        if not isinstance(difficulty_eps, numbers.Real) or not (0 < difficulty_eps < math.inf):
            raise PoolError("difficulty_eps", difficulty_eps, "must be a finite number > 0")
        self.difficulty_eps = float(difficulty_eps)
        if not isinstance(pass_rate_momentum, numbers.Real) or not (0 <= pass_rate_momentum < 1):
            raise PoolError("pass_rate_momentum", pass_rate_momentum, "must be a number in [0, 1)")
        self.pass_rate_momentum = float(pass_rate_momentum)

        self.workdir = os.path.abspath(os.fspath(workdir))
        self.sample_ids: tuple[str, ...] = tuple(by_id)  # in the order given
        self._ids: list[str] = sorted(by_id)  # canonical order: everything index-based uses it
        self._index = {sid: i for i, sid in enumerate(self._ids)}
        self._originals = by_id
        self._dirs = {sid: sanitize_id(sid) for sid in self._ids}
        folded: dict[str, str] = {}
        for sid, name in self._dirs.items():
            other = folded.setdefault(name.casefold(), sid)
            if other != sid:  # would need a SHA-256 prefix collision; checked rather than assumed
                raise PoolError("sample_id", sid, f"its directory name {name!r} collides with that of {other!r}")
        self._sizes: dict[str, tuple[int, int]] = {}  # original sizes probed from file headers (not state)
        self._reset()

    # ------------------------------------------------------------------ state that changes

    def _reset(self) -> None:
        n = len(self._ids)
        self._history: dict[str, list[Version]] = {sid: [self._original_version(sid)] for sid in self._ids}
        self._current: dict[str, Sample] = dict(self._originals)
        self._pass = np.full(n, np.nan)  # canonical order; NaN = unseen
        self._pass_count = np.zeros(n, np.int64)
        self._pass_step = np.full(n, -1, np.int64)
        self._step = 0
        self._samples_drawn = 0
        self._queue_epoch = -1  # the epoch that `_queue` belongs to; -1: no epoch started yet
        self._queue: collections.deque[int] = collections.deque()  # canonical indices left in `_queue_epoch`, in order
        self._replacements = 0
        self._reverts = 0
        self._stale = 0

    def _original_version(self, sid: str) -> Version:
        return Version(version=0, kind="original", image_path=self._originals[sid].image_path)

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
        return self._originals[self._check_id(sample_id)]

    def current(self, sample_id: str) -> Sample:
        """The sample with `image_path` at its current image (same image_size, boxes, labels, meta)."""
        return self._current[self._check_id(sample_id)]

    def version(self, sample_id: str) -> int:
        return self._history[self._check_id(sample_id)][-1].version

    def history(self, sample_id: str) -> list[Version]:
        """Every version of the sample, oldest (the original, version 0) first."""
        return list(self._history[self._check_id(sample_id)])

    def pass_rate(self, sample_id: str) -> float | None:
        p = self._pass[self._index[self._check_id(sample_id)]]
        return None if np.isnan(p) else float(p)

    def pass_rates(self) -> dict[str, float | None]:
        return {sid: (None if np.isnan(p) else float(p)) for sid, p in zip(self._ids, self._pass)}

    def tracked_ids(self, n: int) -> list[str]:
        """n sample ids to follow in galleries: the first n of a seeded order, so tracked_ids(k) is a prefix of
        tracked_ids(n) for k <= n. n larger than the pool gives every id."""
        n = _check_int("n", n)
        order = np.argsort(_rng(self.seed, _STREAM_TRACKED, 0).random(len(self._ids)), kind="stable")
        return [self._ids[i] for i in order[:n]]

    # ------------------------------------------------------------------ image versions

    def _expected_size(self, sid: str) -> tuple[int, int]:
        size = self._originals[sid].image_size
        if size is None:
            if sid not in self._sizes:
                self._sizes[sid] = probe_image_size(self._originals[sid].image_path)
            size = self._sizes[sid]
        return size

    def synth_path(self, sample_id: str, version: int) -> str:
        """Where version `version` of the sample is (or would be) written, relative to the workdir."""
        return os.path.join(run_dir.SYNTH, self._dirs[self._check_id(sample_id)], f"v{int(version)}.png")

    def replace(self, sample_id: str, png_bytes: bytes, *, description: str, submitted_step: int,
                applied_step: int, job_id: str | None = None, meta: Mapping | None = None) -> bool:
        """Make a synthesized PNG the sample's current image. False (nothing changes but the stale counter) when
        the result is stale: its job was submitted before the job (or revert) behind the current image.

        The PNG must decode and have the original's size; it is written atomically to
        `<workdir>/synth/<sanitised id>/v<version>.png`.
        """
        sid = self._check_id(sample_id)
        if not isinstance(description, str):
            raise PoolError("description", description, "must be a string")
        submitted_step = _check_int("submitted_step", submitted_step)
        applied_step = _check_int("applied_step", applied_step)
        if applied_step < submitted_step:
            raise PoolError("applied_step", applied_step,
                            f"cannot precede the job's submitted_step={submitted_step}")
        if job_id is not None and not isinstance(job_id, str):
            raise PoolError("job_id", job_id, "must be a string or None")
        if meta is not None and not isinstance(meta, Mapping):
            raise PoolError("meta", meta, "must be a mapping or None")
        meta = _check_json("meta", dict(meta)) if meta is not None else None
        if not isinstance(png_bytes, (bytes, bytearray, memoryview)):
            raise PoolError("png_bytes", type(png_bytes).__name__, "must be the bytes of a PNG file")
        png_bytes = bytes(png_bytes)

        head = self._history[sid][-1]
        if head.submitted_step is not None and submitted_step < head.submitted_step:
            self._stale += 1
            return False

        self._check_png(sid, png_bytes)
        version = head.version + 1
        rel = self.synth_path(sid, version)
        path = os.path.join(self.workdir, rel)
        atomic_write(path, png_bytes)
        self._push(sid, Version(version=version, kind="synthesized", image_path=path, path=rel,
                                description=description, submitted_step=submitted_step, applied_step=applied_step,
                                job_id=job_id, epoch=self.epoch, meta=meta))
        self._replacements += 1
        return True

    def revert(self, sample_id: str, *, step: int) -> None:
        """Back to the original image, as a new version (no file). Results of jobs submitted before `step` are
        stale from now on."""
        sid = self._check_id(sample_id)
        step = _check_int("step", step)
        version = self._history[sid][-1].version + 1
        self._push(sid, Version(version=version, kind="revert", image_path=self._originals[sid].image_path,
                                submitted_step=step, applied_step=step, epoch=self.epoch))
        self._reverts += 1

    def _push(self, sid: str, entry: Version) -> None:
        self._history[sid].append(entry)
        self._current[sid] = self._sample_at(sid, entry)

    def _sample_at(self, sid: str, entry: Version) -> Sample:
        original = self._originals[sid]
        if entry.image_path == original.image_path:
            return original
        return dataclasses.replace(original, image_path=entry.image_path)

    def _check_png(self, sid: str, data: bytes) -> None:
        if not data.startswith(PNG_SIGNATURE):
            raise PoolError("png_bytes", data[:16], f"sample {sid!r}: not a PNG file (no PNG signature)")
        try:
            with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
                expected = self._expected_size(sid)
                if im.size != expected:
                    raise PoolError("png_bytes", f"image of size {im.size}",
                                    f"sample {sid!r}: a synthesized image must have the original's size {expected} "
                                    "(width, height)")
                im.load()  # a truncated or corrupt file fails here, not later in the trainer
        except PoolError:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
            raise PoolError("png_bytes", data[:16], f"sample {sid!r}: PNG does not decode ({e})") from None

    # ------------------------------------------------------------------ pass rates

    def update_pass_rates(self, accuracies: Mapping[str, float], step: int) -> None:
        """Fold each sample's mean accuracy (over its G responses, in [0, 1]) into its pass-rate EMA.
        Validates everything before changing anything."""
        step = _check_int("step", step)
        if not isinstance(accuracies, Mapping):
            raise PoolError("accuracies", accuracies, "must be a mapping sample_id -> mean accuracy")
        updates = []
        for sid, acc in accuracies.items():
            self._check_id(sid, "accuracies key")
            if not isinstance(acc, numbers.Real) or isinstance(acc, bool) or not (0.0 <= float(acc) <= 1.0):
                raise PoolError(f"accuracies[{sid!r}]", acc, "must be a number in [0, 1]")
            updates.append((self._index[sid], float(acc)))
        m = self.pass_rate_momentum
        for i, acc in updates:
            old = self._pass[i]
            self._pass[i] = acc if np.isnan(old) else m * float(old) + (1.0 - m) * acc
            self._pass_count[i] += 1
            self._pass_step[i] = step

    # ------------------------------------------------------------------ sampling

    def next_batch(self, batch_size: int) -> list[Sample]:
        """The current versions of `batch_size` distinct samples (rules in the module docstring)."""
        n = len(self._ids)
        if not _is_int(batch_size) or not 1 <= batch_size <= n:
            raise PoolError("batch_size", batch_size, f"must be an integer in [1, {n}] (the pool size)")
        batch_size = int(batch_size)
        if self.sampling == "uniform":
            indices = self._uniform_batch(batch_size)
        else:
            indices = self._difficulty_batch(batch_size)
        self._step += 1
        self._samples_drawn += batch_size
        return [self._current[self._ids[i]] for i in indices]

    def _epoch_order(self, epoch: int) -> list[int]:
        keys = _rng(self.seed, _STREAM_EPOCH, epoch).random(len(self._ids))
        return np.argsort(keys, kind="stable").tolist()

    def _uniform_batch(self, batch_size: int) -> list[int]:
        queue = self._queue
        taken = [queue.popleft() for _ in range(min(batch_size, len(queue)))]
        if len(taken) < batch_size:  # the epoch ran out: start the next one, skipping what this batch holds
            self._queue_epoch += 1
            in_batch = set(taken)
            rest = []
            for i in self._epoch_order(self._queue_epoch):
                if len(taken) < batch_size and i not in in_batch:
                    taken.append(i)
                else:
                    rest.append(i)
            self._queue = collections.deque(rest)
        return taken

    def _difficulty_batch(self, batch_size: int) -> list[int]:
        w = difficulty_weights(self._pass, self.difficulty_eps)
        u = 1.0 - _rng(self.seed, _STREAM_DIFFICULTY, self._step).random(len(self._ids))  # (0, 1]
        keys = np.log(u) / w
        return np.argsort(-keys, kind="stable")[:batch_size].tolist()

    # ------------------------------------------------------------------ stats and state

    def stats(self) -> dict[str, Any]:
        seen = ~np.isnan(self._pass)
        return {
            "num_samples": len(self._ids),
            "num_synthesized": sum(h[-1].kind == "synthesized" for h in self._history.values()),
            "replacements": self._replacements,
            "reverts": self._reverts,
            "stale_dropped": self._stale,
            "num_with_pass_rate": int(seen.sum()),
            "mean_pass_rate": float(self._pass[seen].mean()) if seen.any() else None,
            "epoch": self.epoch,
            "step": self._step,
        }

    def _config(self) -> dict[str, Any]:
        return {"seed": self.seed, "sampling": self.sampling, "difficulty_eps": self.difficulty_eps,
                "pass_rate_momentum": self.pass_rate_momentum}

    def state_dict(self) -> dict[str, Any]:
        """Everything that changes, as plain JSON data:

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
        versions = {}
        for sid in self._ids:
            later = self._history[sid][1:]
            if later:
                versions[sid] = [{"version": v.version, "kind": v.kind, "path": v.path, "description": v.description,
                                  "submitted_step": v.submitted_step, "applied_step": v.applied_step,
                                  "job_id": v.job_id, "epoch": v.epoch, "meta": v.meta} for v in later]
        pass_rates = {sid: {"value": float(self._pass[i]), "count": int(self._pass_count[i]),
                            "step": int(self._pass_step[i])}
                      for i, sid in enumerate(self._ids) if not np.isnan(self._pass[i])}
        return {
            "format": STATE_FORMAT,
            "format_version": STATE_VERSION,
            "config": self._config(),
            "sample_ids": list(self._ids),
            "step": self._step,
            "samples_drawn": self._samples_drawn,
            "sampler": {"epoch": self._queue_epoch, "remaining": [self._ids[i] for i in self._queue]},
            "counters": {"replacements": self._replacements, "reverts": self._reverts, "stale_dropped": self._stale},
            "versions": versions,
            "pass_rates": pass_rates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict()`, replacing this pool's state. Everything is validated before anything changes;
        the files of the current synthesized versions must exist under this pool's workdir."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise PoolError("state.format", state.get("format") if isinstance(state, Mapping) else state,
                            f"not a data pool state (expected format {STATE_FORMAT!r})")
        if state.get("format_version") != STATE_VERSION:
            raise PoolError("state.format_version", state.get("format_version"), f"this code reads {STATE_VERSION}")
        ids = state.get("sample_ids")
        if ids != self._ids:
            ids = ids if isinstance(ids, list) else []
            missing, extra = sorted(set(self._ids) - set(ids)), sorted(set(ids) - set(self._ids))
            raise PoolError("state.sample_ids", f"{len(ids)} ids",
                            f"the state is from another sample set: {len(missing)} pool ids missing from it "
                            f"(e.g. {missing[:3]}), {len(extra)} ids not in this pool (e.g. {extra[:3]})")
        config = state.get("config")
        if not isinstance(config, Mapping):
            raise PoolError("state.config", config, "missing")
        for key, value in self._config().items():
            if config.get(key) != value:
                raise PoolError(f"state.config.{key}", config.get(key),
                                f"differs from this pool's {key}={value!r}; build the pool with the saved config")

        def integer(field, value, minimum=0):
            if not _is_int(value) or value < minimum:
                raise PoolError(f"state.{field}", value, f"must be an integer >= {minimum}")
            return int(value)

        step = integer("step", state.get("step"))
        drawn = integer("samples_drawn", state.get("samples_drawn"))
        sampler = state.get("sampler")
        if not isinstance(sampler, Mapping):
            raise PoolError("state.sampler", sampler, "must be a mapping {epoch, remaining}")
        queue_epoch = integer("sampler.epoch", sampler.get("epoch"), -1)
        remaining = sampler.get("remaining")
        if (not isinstance(remaining, list) or len(set(remaining)) != len(remaining)
                or not all(isinstance(r, str) and r in self._index for r in remaining)):
            raise PoolError("state.sampler.remaining", remaining, "must be a list of distinct sample ids of this pool")
        counters = state.get("counters")
        if not isinstance(counters, Mapping):
            raise PoolError("state.counters", counters, "must be a mapping {replacements, reverts, stale_dropped}")
        replacements = integer("counters.replacements", counters.get("replacements"))
        reverts = integer("counters.reverts", counters.get("reverts"))
        stale = integer("counters.stale_dropped", counters.get("stale_dropped"))

        history = {sid: [self._original_version(sid)] for sid in self._ids}
        versions = state.get("versions")
        if not isinstance(versions, Mapping):
            raise PoolError("state.versions", versions, "must be a mapping sample_id -> list of versions")
        for sid, entries in versions.items():
            self._check_id(sid, "state.versions key")
            if not isinstance(entries, list):
                raise PoolError(f"state.versions[{sid!r}]", entries, "must be a list")
            for k, e in enumerate(entries, start=1):
                history[sid].append(self._version_from_state(sid, k, e))
        missing_files = [v.image_path for h in history.values() for v in h[-1:]
                         if v.kind == "synthesized" and not os.path.isfile(v.image_path)]
        if missing_files:
            raise PoolError("state.versions", f"{len(missing_files)} missing files",
                            f"current images not found under workdir {self.workdir!r}, e.g. {missing_files[:3]}")

        pass_value = np.full(len(self._ids), np.nan)
        pass_count = np.zeros(len(self._ids), np.int64)
        pass_step = np.full(len(self._ids), -1, np.int64)
        rates = state.get("pass_rates")
        if not isinstance(rates, Mapping):
            raise PoolError("state.pass_rates", rates, "must be a mapping sample_id -> {value, count, step}")
        for sid, r in rates.items():
            i = self._index[self._check_id(sid, "state.pass_rates key")]
            value = r.get("value") if isinstance(r, Mapping) else None
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise PoolError(f"state.pass_rates[{sid!r}].value", value, "must be a number in [0, 1]")
            pass_value[i] = float(value)
            pass_count[i] = integer(f"pass_rates[{sid!r}].count", r.get("count"), 1)
            pass_step[i] = integer(f"pass_rates[{sid!r}].step", r.get("step"))

        self._history = history
        self._current = {sid: self._sample_at(sid, h[-1]) for sid, h in history.items()}
        self._pass, self._pass_count, self._pass_step = pass_value, pass_count, pass_step
        self._step, self._samples_drawn = step, drawn
        self._queue_epoch, self._queue = queue_epoch, collections.deque(self._index[r] for r in remaining)
        self._replacements, self._reverts, self._stale = replacements, reverts, stale

    def _version_from_state(self, sid: str, expected_version: int, e: Any) -> Version:
        where = f"state.versions[{sid!r}][{expected_version - 1}]"
        if not isinstance(e, Mapping) or e.get("version") != expected_version:
            raise PoolError(where, e, f"must be a version entry with version={expected_version}")
        kind = e.get("kind")
        if kind == "synthesized":
            rel = self.synth_path(sid, expected_version)
            if e.get("path") != rel:
                raise PoolError(f"{where}.path", e.get("path"), f"expected {rel!r}")
            image_path = os.path.join(self.workdir, rel)
        elif kind == "revert":
            if e.get("path") is not None:
                raise PoolError(f"{where}.path", e.get("path"), "a revert has no file (None)")
            rel, image_path = None, self._originals[sid].image_path
        else:
            raise PoolError(f"{where}.kind", kind, "must be 'synthesized' or 'revert'")
        steps = {}
        for key in ("submitted_step", "applied_step", "epoch"):
            if not _is_int(e.get(key)) or e.get(key) < 0:
                raise PoolError(f"{where}.{key}", e.get(key), "must be an integer >= 0")
            steps[key] = int(e[key])
        description, job_id, meta = e.get("description"), e.get("job_id"), e.get("meta")
        if kind == "synthesized" and not isinstance(description, str):
            raise PoolError(f"{where}.description", description, "must be a string")
        if job_id is not None and not isinstance(job_id, str):
            raise PoolError(f"{where}.job_id", job_id, "must be a string or None")
        if meta is not None and not isinstance(meta, dict):
            raise PoolError(f"{where}.meta", meta, "must be a dict or None")
        return Version(version=expected_version, kind=kind, image_path=image_path, path=rel,
                       description=description, job_id=job_id, meta=meta, **steps)
