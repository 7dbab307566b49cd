"""The data pool identical on every process of a multi-process run: process 0 records what it changed, the others
replay it.

Only process 0 talks to the data server, so only it knows the inputs of two pool changes: `replace` (a synthesized
PNG arrived) and `revert` (back to the original). Its pool is a `RecordingPool`, which applies each such change
and records it (an accepted image with its bytes; a stale one without: it changes only a counter, and the replay
reaches the same verdict). `HostState.sync` broadcasts the records (`encode`: a JSON header + the PNG bytes
back to back) and every other process applies them in the same order (`replay`). Every other pool change (batches
drawn, pass rates, retention) is computed on every process from the same inputs, so after a sync `state_dict()`
is equal everywhere; `state_hash` is what each process logs to show it.
"""
from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

from syngrpo_jax.data.pool import DataPool

_HEADER = struct.Struct("<Q")  # the JSON header's length in bytes


class RecordingPool(DataPool):
    """A DataPool that records its `replace` and `revert` calls (process 0 of a multi-process run)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._changes: list[dict[str, Any]] = []

    def replace(self, sample_id: str, png_bytes: bytes, **kwargs) -> bool:
        accepted = super().replace(sample_id, png_bytes, **kwargs)  # a refused change raises: nothing recorded
        self._changes.append({"op": "replace", "sample_id": sample_id, "png": bytes(png_bytes) if accepted else b"",
                              **kwargs})
        return accepted

    def revert(self, sample_id: str, *, step: int) -> None:
        super().revert(sample_id, step=step)
        self._changes.append({"op": "revert", "sample_id": sample_id, "step": step})

    def take_changes(self) -> list[dict[str, Any]]:
        """The changes recorded since the last call, oldest first."""
        changes, self._changes = self._changes, []
        return changes


def encode(changes: list[dict[str, Any]]) -> bytes:
    """Changes -> bytes: header length, a JSON list (each PNG replaced by its [offset, length] in the blob), blob."""
    header, blobs, offset = [], [], 0
    for change in changes:
        entry = dict(change)
        if "png" in entry:
            png = entry.pop("png")
            entry["png"] = [offset, len(png)]
            blobs.append(png)
            offset += len(png)
        header.append(entry)
    text = json.dumps(header).encode()
    return _HEADER.pack(len(text)) + text + b"".join(blobs)


def decode(data: bytes) -> list[dict[str, Any]]:
    """The inverse of `encode`."""
    (length,) = _HEADER.unpack_from(data)
    start = _HEADER.size + length
    changes = json.loads(data[_HEADER.size:start])
    for change in changes:
        if "png" in change:
            offset, size = change["png"]
            change["png"] = data[start + offset:start + offset + size]
    return changes


def replay(pool: DataPool, changes: list[dict[str, Any]]) -> None:
    """Apply process 0's recorded changes to this process's pool, in order."""
    for change in changes:
        change = dict(change)
        op, sample_id = change.pop("op"), change.pop("sample_id")
        if op == "replace":
            pool.replace(sample_id, change.pop("png"), **change)
        elif op == "revert":
            pool.revert(sample_id, step=change["step"])
        else:
            raise ValueError(f"host sync: unknown pool change {op!r} (from a newer process 0?)")


def state_hash(state: dict[str, Any]) -> str:
    """A short digest of a host state (`HostState.state_dict()`), equal across processes when the states are."""
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]
