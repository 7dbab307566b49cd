"""What the processes of one multi-process JAX run tell each other outside compiled steps.

    multihost.is_primary()                        # process 0: talks to the data server, writes metrics/plots
    payload = multihost.broadcast_bytes(data)     # process 0's bytes on every process (others pass None)
    stop = multihost.any_process(flag)            # True on every process when any process's flag is set
    multihost.barrier("tiny-model", timeout_s=600)
    with multihost.primary_first("data"):         # process 0 runs the block first (e.g. writes files), then
        samples = load_samples(...)               # the others run it (and find the files written)

Everything here is a no-op (or the identity) in a single-process run, so callers never branch on the process
count. Small host bytes travel through the JAX distributed runtime's key-value store (the coordination service
that `jax.distributed.initialize` starts on process 0): nothing is compiled and every wait has a timeout. Above
64 KiB a broadcast's payload goes through a device collective (`multihost_utils.broadcast_one_to_all`), which
benchmarks/host_broadcast.py measured several times faster for MBs (docs/DESIGN.md, "Multi-process training").
Every call must happen on every process in the same order: keys and barrier ids are numbered by a per-process
counter, which is what makes them agree.
"""
from __future__ import annotations

import contextlib
import itertools

import jax
import numpy as np

_KEY = "syngrpo/broadcast"
# Payloads up to this size travel inside the key-value store; larger ones through a device collective.
INLINE_BYTES = 64 << 10
_calls = itertools.count()  # numbers keys and barriers identically on every process (same call order)
_unacked: list[int] = []  # process 0: broadcasts whose keys are kept until every process has read them


def process_index() -> int:
    return jax.process_index()


def process_count() -> int:
    return jax.process_count()


def is_primary() -> bool:
    """Process 0: the one that talks to the data server and writes metrics, plots, gallery and summary."""
    return jax.process_index() == 0


def _client():
    """The JAX distributed runtime client (jax.distributed.initialize made it); the single place that reaches
    into jax's private module for it (multihost_utils does the same)."""
    from jax._src import distributed

    client = distributed.global_state.client
    if client is None:
        raise RuntimeError("multi-process JAX without jax.distributed.initialize(): no distributed client")
    return client


def _barrier_id(name: str) -> str:
    return f"syngrpo/{name}/{next(_calls)}"


def _wait(barrier_id: str, timeout_s: float) -> None:
    try:
        _client().wait_at_barrier(barrier_id, int(timeout_s * 1000))
    except Exception as e:  # the runtime raises a generic JaxRuntimeError (DEADLINE_EXCEEDED, ...)
        raise TimeoutError(f"process {process_index()}: barrier {barrier_id!r} not reached by every process within "
                           f"{timeout_s:.0f} s ({e})") from e


def barrier(name: str, *, timeout_s: float = 600.0) -> None:
    """Wait until every process has reached this barrier (at most timeout_s, then an error naming it)."""
    if jax.process_count() > 1:
        _wait(_barrier_id(name), timeout_s)


def _device_bytes(payload: bytes | None, size: int) -> bytes:
    """Process 0's `size` bytes on every process through XLA's collectives (a psum over a global mesh, which is
    what `broadcast_one_to_all` does). The buffer is padded to a power of two so that the compiled broadcast is
    reused: one compilation per size bucket."""
    from jax.experimental import multihost_utils

    buf = np.zeros(1 << max(10, (size - 1).bit_length()), np.uint8)
    if payload is not None:
        buf[:size] = np.frombuffer(payload, np.uint8)
    return np.asarray(multihost_utils.broadcast_one_to_all(buf))[:size].tobytes()


def _drop_read_broadcasts(client) -> None:
    """Process 0: delete the keys of earlier broadcasts that every other process has acknowledged."""
    still = []
    for call in _unacked:
        if len(client.key_value_dir_get(f"{_KEY}/{call}/ack/")) >= jax.process_count() - 1:
            client.key_value_delete(f"{_KEY}/{call}/")  # the directory: header, inline bytes, acks
        else:
            still.append(call)
    _unacked[:] = still


def broadcast_bytes(payload: bytes | None, *, timeout_s: float = 1800.0) -> bytes:
    """Process 0's `payload` on every process (the others pass None). The others wait up to timeout_s for process
    0 to get here: a bound on what it does alone in between (e.g. waiting for synthesis in sync mode).

    The length (and a payload up to INLINE_BYTES) goes through the key-value store, which has that timeout and
    compiles nothing; a larger payload then goes through a device collective, several times faster for MBs
    (benchmarks/host_broadcast.py)."""
    if jax.process_count() == 1:
        return bytes(payload or b"")
    client, call = _client(), next(_calls)
    key = f"{_KEY}/{call}"
    if is_primary():
        if payload is None:
            raise ValueError("broadcast_bytes: process 0 must pass the payload")
        payload = bytes(payload)
        _drop_read_broadcasts(client)
        if len(payload) <= INLINE_BYTES:
            client.key_value_set_bytes(f"{key}/inline", payload)
        client.key_value_set(f"{key}/size", str(len(payload)))  # written last: the others wait for it
        _unacked.append(call)
        return payload if len(payload) <= INLINE_BYTES else _device_bytes(payload, len(payload))
    try:
        size = int(client.blocking_key_value_get(f"{key}/size", int(timeout_s * 1000)))
    except Exception as e:  # the runtime raises a generic JaxRuntimeError on a timeout
        raise TimeoutError(f"process {process_index()}: no broadcast #{call} from process 0 within "
                           f"{timeout_s:.0f} s ({e})") from e
    data = client.blocking_key_value_get_bytes(f"{key}/inline", 60_000) if size <= INLINE_BYTES else None
    client.key_value_set(f"{key}/ack/{process_index()}", "1")
    return data if data is not None else _device_bytes(None, size)


def gather_bytes(payload: bytes, *, timeout_s: float = 600.0) -> list[bytes]:
    """Every process's (small) `payload`, in process order, on every process (through the key-value store)."""
    if jax.process_count() == 1:
        return [bytes(payload)]
    client, call = _client(), next(_calls)
    key = f"syngrpo/gather/{call}"
    client.key_value_set_bytes(f"{key}/{process_index()}", bytes(payload))
    try:
        out = [client.blocking_key_value_get_bytes(f"{key}/{i}", int(timeout_s * 1000))
               for i in range(jax.process_count())]
    except Exception as e:  # the runtime raises a generic JaxRuntimeError on a timeout
        raise TimeoutError(f"process {process_index()}: gather #{call}: not every process answered within "
                           f"{timeout_s:.0f} s ({e})") from e
    barrier(f"gather-{call}-read", timeout_s=timeout_s)
    if is_primary():
        client.key_value_delete(f"{key}/")
    return out


def any_process(flag: bool) -> bool:
    """True on every process when `flag` is True on any (e.g. a stop signal that reached one process only)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray(bool(flag)))))


@contextlib.contextmanager
def primary_first(name: str, *, timeout_s: float = 1800.0):
    """Process 0 runs the block while the others wait; then the others run it. For work that writes shared files
    once (generated data, the tiny model): the others' turn finds them written and only reads."""
    if jax.process_count() == 1:
        yield
        return
    barrier_id = _barrier_id(f"{name}/primary-done")  # numbered before the block, which may number more
    if not is_primary():
        _wait(barrier_id, timeout_s)
    yield
    if is_primary():
        _wait(barrier_id, timeout_s)
