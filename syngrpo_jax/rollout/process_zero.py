"""An external rollout engine (a vLLM worker) in a multi-process run: process 0 holds it, every process gets its
responses.

    engine = ProcessZeroEngine(lambda: make_the_engine(), host_dtype="bfloat16")   # on every process

The JAX sampler runs on the global mesh like the update; an engine outside JAX (a worker process, its own GPUs)
must be driven by one process. Process 0 builds it and samples; the responses travel to the others
(`encode_responses`, through `multihost.broadcast_bytes`), so every process scores and trains on the same ones.
Weights: the parameters are sharded over every process's devices, so each tensor is gathered with every process
taking part (a collective, in the same order everywhere); process 0 keeps the host copies (in `host_dtype`,
the worker's dtype) and pushes them, the others drop theirs. Process 0 holds one host copy of the policy while a
push lasts, and keeps it so that a restarted worker gets the weights again.
"""
from __future__ import annotations

import json
import struct
from typing import Callable, Sequence

import jax
import numpy as np
from flax import nnx

from syngrpo_jax.parallel import multihost
from syngrpo_jax.parallel.host_arrays import to_host
from syngrpo_jax.rollout.base import Response, RolloutEngine, RolloutRequest, SamplingParams

_HEADER = struct.Struct("<Q")


def encode_responses(groups: list[list[Response]]) -> bytes:
    """[B][n] responses -> bytes: a JSON header (texts, finish reasons, versions, lengths), then every response's
    int32 token ids and float32 log-probs back to back."""
    header, blobs = [], []
    for group in groups:
        header.append([[r.text, r.finish_reason, int(r.weight_version), int(len(r.token_ids))] for r in group])
        for r in group:
            blobs += [np.asarray(r.token_ids, np.int32).tobytes(), np.asarray(r.logprobs, np.float32).tobytes()]
    text = json.dumps(header).encode()
    return _HEADER.pack(len(text)) + text + b"".join(blobs)


def decode_responses(data: bytes) -> list[list[Response]]:
    (length,) = _HEADER.unpack_from(data)
    offset = _HEADER.size + length
    groups = []
    for group in json.loads(data[_HEADER.size:offset]):
        out = []
        for text, finish, version, n in group:
            ids = np.frombuffer(data, np.int32, n, offset).copy()
            logprobs = np.frombuffer(data, np.float32, n, offset + 4 * n).copy()
            offset += 8 * n
            out.append(Response(ids, text, logprobs, finish, version))
        groups.append(out)
    return groups


class ProcessZeroEngine(RolloutEngine):
    """`make()` builds the real engine, on process 0 only; every process calls every method, in the same order."""

    def __init__(self, make: Callable[[], RolloutEngine], *, host_dtype=None, timeout_s: float = 1800.0):
        self.inner = make() if multihost.is_primary() else None
        self.host_dtype = np.dtype(host_dtype) if host_dtype is not None else None
        self.timeout_s = timeout_s
        self._version = 0

    @property
    def weight_version(self) -> int:
        return self._version

    def generate(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Response]]:
        payload = encode_responses(self.inner.generate(requests, params)) if self.inner is not None else None
        return decode_responses(multihost.broadcast_bytes(payload, timeout_s=self.timeout_s))

    def update_weights(self, params, version: int) -> None:
        if isinstance(params, nnx.State):
            params = nnx.to_pure_dict(params)
        leaves, tree = jax.tree.flatten(params)
        host = []
        for leaf in leaves:  # one tensor at a time, gathered by every process together
            array = to_host(leaf)
            host.append(array.astype(self.host_dtype or array.dtype, copy=False) if self.inner is not None else None)
        if self.inner is not None:
            self.inner.update_weights(jax.tree.unflatten(tree, host), version)
        self._version = int(version)

    def step_metrics(self) -> dict[str, float]:
        """Process 0's (the one that writes metrics)."""
        return self.inner.step_metrics() if self.inner is not None else {}

    def close(self) -> None:
        if self.inner is not None and hasattr(self.inner, "close"):
            self.inner.close()
