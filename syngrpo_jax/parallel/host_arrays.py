"""Host arrays in and out of global (possibly multi-process) device arrays.

    batch = to_global(host_batch, shardings)   # each process places only its own devices' slices
    tokens = to_host(global_tokens)            # the whole value on every process

Every process of a run builds the same host batch (same responses, same padding: the shapes of a global array
must agree across processes by construction), then `to_global` lets each process transfer only the slices its
devices hold (`jax.make_array_from_callback`), so a global batch split over (data, fsdp) is fed by every process
for its own rows. One process, one device, or several: the same code.
"""
from __future__ import annotations

import jax
import numpy as np


def to_global(tree, shardings):
    """Host arrays (numpy, same values on every process) -> jax Arrays laid out as `shardings` (a matching tree
    of Shardings). Only the addressable shards are materialised on this process."""
    def one(x, sharding):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(one, tree, shardings)


def to_host(x) -> np.ndarray:
    """A jax Array's whole value as numpy on this process; with shards on other processes, gathered from them
    (a collective: every process must call it for the same array)."""
    if getattr(x, "is_fully_addressable", True) or x.sharding.is_fully_replicated:
        return np.asarray(jax.device_get(x))
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
