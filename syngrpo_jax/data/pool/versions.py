"""The image versions of every sample: the original, then synthesized PNGs and reverts, with provenance and files.

Version 0 of a sample is its original image (never modified, never deleted). Every accepted `replace` and every
`revert` appends a version. A synthesized image is written atomically to `<root>/synth/<sanitised id>/v<k>.png`
(`root` is the run directory; paths in the state are relative to it).

Staleness: results arrive late, out of order, or never. A result whose job was submitted at an earlier step than
the job that produced the current image (or than a revert) is stale: dropped and counted, nothing else changes.
Equal submission steps are accepted (the later arrival wins).

Retention (`prune`): by default every file stays (galleries show a sample's images across epochs). With
keep_last = K > 0, a synthesized file is deleted once it is none of: the sample's last K versions, a version of a
tracked sample (the gallery's), or the current image of the sample at a checkpoint that is still kept (so every
kept checkpoint resumes). Its provenance stays in the history. Files of versions beyond a restored checkpoint
stay on disk and are overwritten when the restored run writes the same version number again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from PIL import Image, UnidentifiedImageError

from syngrpo_jax import run_dir
from syngrpo_jax.atomic_write import atomic_write
from syngrpo_jax.data.pool import schema
from syngrpo_jax.data.pool.errors import PoolError, check_int, check_json
from syngrpo_jax.data.sample import Sample, probe_image_size

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KINDS = ("synthesized", "revert")
VERSION_ENTRY = schema.Struct(
    version=schema.Int(1), kind=schema.OneOf(KINDS), path=schema.Optional(schema.Str()),
    description=schema.Optional(schema.Str()), submitted_step=schema.Int(0), applied_step=schema.Int(0),
    job_id=schema.Optional(schema.Str()), epoch=schema.Int(0), meta=schema.Optional(schema.AnyDict()))
COUNTERS = schema.Struct(replacements=schema.Int(0), reverts=schema.Int(0), stale_dropped=schema.Int(0))


@dataclasses.dataclass(frozen=True)
class Version:
    """One image version of one sample (what `history` returns).

    kind          "original" (version 0), "synthesized" (a data-server image) or "revert" (back to the original).
    path          the PNG relative to the run directory for "synthesized"; None for "original" and "revert",
                  whose image is the original file.
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
    differs when the case does). `VersionStore` checks that its names are distinct anyway.
    """
    prefix = re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)[:48].lstrip(".") or "id"
    return f"{prefix}-{hashlib.sha256(sample_id.encode('utf-8')).hexdigest()[:16]}"


class VersionStore:
    """Every sample's versions, current image and files. Sample ids passed in are already known to be valid."""

    def __init__(self, originals: Mapping[str, Sample], root: str):
        self.root = root
        self._originals = dict(originals)
        self._dirs = {sid: sanitize_id(sid) for sid in sorted(self._originals)}
        folded: dict[str, str] = {}
        for sid, name in self._dirs.items():
            other = folded.setdefault(name.casefold(), sid)
            if other != sid:  # would need a SHA-256 prefix collision; checked rather than assumed
                raise PoolError("sample_id", sid, f"its directory name {name!r} collides with that of {other!r}")
        self._sizes: dict[str, tuple[int, int]] = {}  # original sizes probed from file headers (not state)
        self.reset()

    def reset(self) -> None:
        self._history: dict[str, list[Version]] = {sid: [self._original_version(sid)] for sid in self._dirs}
        self._current: dict[str, Sample] = dict(self._originals)
        self.replacements = self.reverts = self.stale = 0

    def _original_version(self, sid: str) -> Version:
        return Version(version=0, kind="original", image_path=self._originals[sid].image_path)

    # ------------------------------------------------------------------ lookups

    def original(self, sid: str) -> Sample:
        return self._originals[sid]

    def current(self, sid: str) -> Sample:
        return self._current[sid]

    def history(self, sid: str) -> list[Version]:
        return list(self._history[sid])

    def head(self, sid: str) -> Version:
        return self._history[sid][-1]

    def num_synthesized(self) -> int:
        return sum(h[-1].kind == "synthesized" for h in self._history.values())

    def synth_path(self, sid: str, version: int) -> str:
        """Where version `version` of the sample is (or would be) written, relative to the run directory."""
        return os.path.join(run_dir.SYNTH, self._dirs[sid], f"v{int(version)}.png")

    # ------------------------------------------------------------------ changes

    def replace(self, sid: str, png_bytes: bytes, *, description: str, submitted_step: int, applied_step: int,
                job_id: str | None, meta: Mapping | None, epoch: int) -> bool:
        """Make a synthesized PNG the current image; False (only the stale counter changes) when stale."""
        if not isinstance(description, str):
            raise PoolError("description", description, "must be a string")
        submitted_step = check_int("submitted_step", submitted_step)
        applied_step = check_int("applied_step", applied_step)
        if applied_step < submitted_step:
            raise PoolError("applied_step", applied_step, f"cannot precede the job's submitted_step={submitted_step}")
        if job_id is not None and not isinstance(job_id, str):
            raise PoolError("job_id", job_id, "must be a string or None")
        if meta is not None and not isinstance(meta, Mapping):
            raise PoolError("meta", meta, "must be a mapping or None")
        meta = check_json("meta", dict(meta)) if meta is not None else None
        if not isinstance(png_bytes, (bytes, bytearray, memoryview)):
            raise PoolError("png_bytes", type(png_bytes).__name__, "must be the bytes of a PNG file")
        png_bytes = bytes(png_bytes)

        head = self.head(sid)
        if head.submitted_step is not None and submitted_step < head.submitted_step:
            self.stale += 1
            return False
        self._check_png(sid, png_bytes)
        version = head.version + 1
        rel = self.synth_path(sid, version)
        path = os.path.join(self.root, rel)
        atomic_write(path, png_bytes)
        self._push(sid, Version(version=version, kind="synthesized", image_path=path, path=rel,
                                description=description, submitted_step=submitted_step, applied_step=applied_step,
                                job_id=job_id, epoch=epoch, meta=meta))
        self.replacements += 1
        return True

    def revert(self, sid: str, *, step: int, epoch: int) -> None:
        """Back to the original image, as a new version (no file); older jobs are stale from now on."""
        step = check_int("step", step)
        version = self.head(sid).version + 1
        self._push(sid, Version(version=version, kind="revert", image_path=self._originals[sid].image_path,
                                submitted_step=step, applied_step=step, epoch=epoch))
        self.reverts += 1

    def _push(self, sid: str, entry: Version) -> None:
        self._history[sid].append(entry)
        self._current[sid] = self._sample_at(sid, entry)

    def _sample_at(self, sid: str, entry: Version) -> Sample:
        original = self._originals[sid]
        if entry.image_path == original.image_path:
            return original
        return dataclasses.replace(original, image_path=entry.image_path)

    def _expected_size(self, sid: str) -> tuple[int, int]:
        size = self._originals[sid].image_size
        if size is None:
            if sid not in self._sizes:
                self._sizes[sid] = probe_image_size(self._originals[sid].image_path)
            size = self._sizes[sid]
        return size

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

    # ------------------------------------------------------------------ retention

    def prune(self, keep_last: int, *, keep_ids: Iterable[str] = (), checkpoint_steps: Iterable[int] = ()) -> int:
        """Delete synthesized files no longer needed (rules in the module docstring); returns how many were
        deleted. keep_last = 0 keeps everything. checkpoint_steps: the steps of the checkpoints still kept (a
        checkpoint saved after step index s - 1 holds, per sample, the version applied last at a step < s)."""
        keep_last = check_int("keep_last", keep_last)
        if keep_last == 0:
            return 0
        keep_ids, checkpoints = set(keep_ids), sorted(set(checkpoint_steps))
        deleted = 0
        for sid, history in self._history.items():
            if sid in keep_ids:
                continue
            for k, v in enumerate(history[:-keep_last]):
                if v.kind != "synthesized":
                    continue
                until = history[k + 1].applied_step  # the step the next version was applied at
                if any(v.applied_step < s <= until for s in checkpoints):
                    continue  # the current image of a kept checkpoint
                try:
                    os.unlink(v.image_path)
                    deleted += 1
                except FileNotFoundError:
                    pass
        return deleted

    # ------------------------------------------------------------------ state

    def state_dict(self) -> tuple[dict, dict]:
        """(versions {sample_id: [entries after the original]}, counters) as plain JSON data."""
        versions = {}
        for sid, history in self._history.items():
            if len(history) > 1:
                versions[sid] = [{"version": v.version, "kind": v.kind, "path": v.path, "description": v.description,
                                  "submitted_step": v.submitted_step, "applied_step": v.applied_step,
                                  "job_id": v.job_id, "epoch": v.epoch, "meta": v.meta} for v in history[1:]]
        counters = {"replacements": self.replacements, "reverts": self.reverts, "stale_dropped": self.stale}
        return versions, counters

    def load_state_dict(self, versions: Mapping[str, list], counters: Mapping[str, int]) -> None:
        """Restore (schema-checked) versions and counters; every entry is validated and the current images must
        exist under the root before anything changes."""
        history = {sid: [self._original_version(sid)] for sid in self._dirs}
        for sid, entries in versions.items():
            for k, e in enumerate(entries, start=1):
                history[sid].append(self._version_from_state(sid, k, e))
        missing = [h[-1].image_path for h in history.values()
                   if h[-1].kind == "synthesized" and not os.path.isfile(h[-1].image_path)]
        if missing:
            raise PoolError("state.versions", f"{len(missing)} missing files",
                            f"current images not found under workdir {self.root!r}, e.g. {missing[:3]}")
        self._history = history
        self._current = {sid: self._sample_at(sid, h[-1]) for sid, h in history.items()}
        self.replacements, self.reverts = counters["replacements"], counters["reverts"]
        self.stale = counters["stale_dropped"]

    def _version_from_state(self, sid: str, expected_version: int, e: Mapping[str, Any]) -> Version:
        where = f"state.versions[{sid!r}][{expected_version - 1}]"
        if e["version"] != expected_version:
            raise PoolError(f"{where}.version", e["version"], f"must be {expected_version} (versions count up)")
        if e["kind"] == "synthesized":
            rel = self.synth_path(sid, expected_version)
            if e["path"] != rel:
                raise PoolError(f"{where}.path", e["path"], f"expected {rel!r}")
            if not isinstance(e["description"], str):
                raise PoolError(f"{where}.description", e["description"], "must be a string")
            image_path = os.path.join(self.root, rel)
        else:
            if e["path"] is not None:
                raise PoolError(f"{where}.path", e["path"], "a revert has no file (None)")
            rel, image_path = None, self._originals[sid].image_path
        return Version(version=expected_version, kind=e["kind"], image_path=image_path, path=rel,
                       description=e["description"], submitted_step=int(e["submitted_step"]),
                       applied_step=int(e["applied_step"]), job_id=e["job_id"], epoch=int(e["epoch"]),
                       meta=e["meta"])
