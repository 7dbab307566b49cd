"""Clip-Cov / KL-Cov token selection (Cui et al. 2025, "The Entropy Mechanism of RL for Reasoning LMs",
arXiv 2505.22617): which tokens' surrogate is detached (Clip-Cov) or penalised (KL-Cov); `losses.policy_loss`
applies the selection.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from syngrpo_jax.grpo.loss_types import safe_div, upcast


COV_MODES = ("clip_cov", "kl_cov")


def token_covariance(logp: jax.Array, advantages: jax.Array, mask: jax.Array) -> jax.Array:
    """cov_t = (logp_t - mean logp) (A_t - mean A), means over the valid tokens of the batch; 0 at padding.

    ``logp`` is detached: the covariance only selects tokens. ``advantages`` is [N, T] (broadcast beforehand).
    """
    w = (mask != 0).astype(jnp.float32)
    n = jnp.sum(w)
    lp = jax.lax.stop_gradient(upcast(logp))
    adv = jax.lax.stop_gradient(upcast(advantages))
    lp_c = lp - safe_div(jnp.sum(lp * w), n)
    adv_c = adv - safe_div(jnp.sum(adv * w), n)
    return lp_c * adv_c * w


def selection_count(n_valid: jax.Array, fraction: float) -> jax.Array:
    """How many tokens a cov mode selects: max(1, floor(n_valid * fraction)), computed in float32."""
    return jnp.maximum(1, jnp.floor(n_valid.astype(jnp.float32) * jnp.float32(fraction)).astype(jnp.int32))


def ranks(keys: jax.Array) -> jax.Array:
    """rank of each entry of ``keys`` (any shape) in ascending order, ties broken by flat index."""
    flat = keys.reshape(-1)
    order = jnp.argsort(flat, stable=True)
    return jnp.zeros(flat.shape, jnp.int32).at[order].set(jnp.arange(flat.size, dtype=jnp.int32)).reshape(keys.shape)


def clip_cov_select(
    cov: jax.Array,
    mask: jax.Array,
    eligible: jax.Array,
    *,
    ratio: float,
    cov_low: float,
    cov_high: float,
    rng: jax.Array,
) -> jax.Array:
    """Clip-Cov selection, bool [N, T].

    Candidates are valid, eligible tokens with cov_low < cov < cov_high. Keep a uniformly random subset of
    min(n_candidates, max(1, floor(ratio * n_valid))) of them, drawn with ``rng`` (deterministic per key).
    """
    valid = mask != 0
    candidate = valid & eligible & (cov > cov_low) & (cov < cov_high)
    n_keep = selection_count(jnp.sum(valid), ratio)
    # Random priorities: candidates take the lowest ranks in a random order, the rest rank after them.
    priority = jnp.where(candidate, jax.random.uniform(rng, cov.shape), 2.0)
    return candidate & (ranks(priority) < n_keep)


def kl_cov_select(cov: jax.Array, mask: jax.Array, *, ratio: float) -> jax.Array:
    """KL-Cov selection, bool [N, T]: the max(1, floor(ratio * n_valid)) valid tokens of largest cov.

    Ties are broken by position (row-major, earlier first).
    """
    valid = mask != 0
    n_keep = selection_count(jnp.sum(valid), ratio)
    return valid & (ranks(jnp.where(valid, -cov, jnp.inf)) < n_keep)
