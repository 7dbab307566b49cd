"""Packing HF-named tensors for a rollout worker: into a file on its host, or into bounded socket buckets.

Input is any iterable of (HF name, host array) -- `models.hf_checkpoint.iter_hf_tensors`, which gathers one
tensor at a time from its shards -- so the trainer's host holds at most one tensor (file) or one bucket plus one
tensor (socket), never the model. Output follows `protocol.rollout`'s weight table: raw little-endian C-order
bytes, [name, dtype, shape, offset] per tensor.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from syngrpo_jax.protocol.rollout import DTYPES, TensorEntry

Tensors = Iterable[tuple[str, np.ndarray]]


def _raw(array: np.ndarray) -> memoryview:
    if array.dtype.name not in DTYPES:
        raise ValueError(f"weights must be one of {list(DTYPES)} to push, got {array.dtype.name}")
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8).data


def write_file(path: str, tensors: Tensors) -> tuple[list[TensorEntry], int]:
    """Writes the tensors back to back into `path`; returns (table, bytes written)."""
    table, offset = [], 0
    with open(path, "wb") as f:
        for name, array in tensors:
            raw = _raw(array)
            f.write(raw)
            table.append(TensorEntry(name, array.dtype.name, tuple(array.shape), offset))
            offset += len(raw)
    return table, offset


def buckets(tensors: Tensors, bucket_bytes: int) -> Iterator[tuple[list[TensorEntry], bytearray]]:
    """(table, data) buckets of at most `bucket_bytes` each (a larger tensor travels alone in its own)."""
    table, data = [], bytearray()
    for name, array in tensors:
        raw = _raw(array)
        if data and len(data) + len(raw) > bucket_bytes:
            yield table, data
            table, data = [], bytearray()
        table.append(TensorEntry(name, array.dtype.name, tuple(array.shape), len(data)))
        data += raw
    if data:
        yield table, data
