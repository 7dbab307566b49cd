"""Per-token log-probabilities and entropies from logits.

Both work on any leading shape ``[..., V]`` and accumulate in (at least) float32 whatever the logits' dtype
(bf16 logits lose too much in a sum over a 150k vocabulary). Their float32 temporaries have the shape of the
logits they are given, so the train step calls them on sequence chunks (``[B, chunk, V]``) and the full
``[B, L, V]`` never exists in float32.

``exclude`` ([V] bool) removes tokens from the distribution (renormalised over the rest): the policy never emits
image placeholders, every rollout engine bans them, and the log-probs the engines report are of that
renormalised distribution, so the trainer's must be too or the GRPO ratio is off by 1 - p(banned).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


# Excluded tokens' logit: exp() of it is exactly 0 and 0 * it is 0, so neither the sum nor the entropy sees them
# (-inf would make p * z NaN).
_EXCLUDED = -1e30


def _shifted_logits(logits: jax.Array, temperature: float, exclude=None) -> tuple[jax.Array, jax.Array]:
    """(z, lse): float32 logits / temperature shifted by their max, and logsumexp(z) over the last axis."""
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    x = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))  # float64 stays float64 (tests under x64)
    if temperature != 1.0:
        x = x / temperature
    if exclude is not None:
        x = jnp.where(exclude, _EXCLUDED, x)
    # The max shift is a constant per row: stop_gradient keeps it out of the backward pass (the result does
    # not depend on it) and avoids a gradient through argmax ties.
    z = x - jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
    lse = jnp.log(jnp.sum(jnp.exp(z), axis=-1))
    return z, lse


def token_entropy(logits: jax.Array, *, temperature: float = 1.0, exclude=None) -> jax.Array:
    """H = -sum_v p_v log p_v with p = softmax(logits / temperature), over the last axis.

    Computed as H = lse(z) - sum_v p_v z_v with z the max-shifted logits, which is finite for any finite
    logits (no log of an underflowed probability). ``[..., V]`` -> ``[...]`` float32 (float64 for float64 logits).
    """
    z, lse = _shifted_logits(logits, temperature, exclude)
    p = jnp.exp(z - lse[..., None])
    return lse - jnp.sum(p * z, axis=-1)


def token_logprobs(logits: jax.Array, targets: jax.Array, *, temperature: float = 1.0, exclude=None) -> jax.Array:
    """log softmax(logits / temperature)[..., targets]: ``[..., V]``, int ``[...]`` -> ``[...]`` float32."""
    if jnp.shape(targets) != jnp.shape(logits)[:-1]:
        raise ValueError(f"targets shape {jnp.shape(targets)} must be logits shape {jnp.shape(logits)} minus V")
    z, lse = _shifted_logits(logits, temperature, exclude)
    picked = jnp.take_along_axis(z, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return picked - lse


def token_logprobs_and_entropy(
    logits: jax.Array, targets: jax.Array, *, temperature: float = 1.0, exclude=None
) -> tuple[jax.Array, jax.Array]:
    """``(token_logprobs, token_entropy)`` sharing one softmax pass; same formulas as the two functions."""
    if jnp.shape(targets) != jnp.shape(logits)[:-1]:
        raise ValueError(f"targets shape {jnp.shape(targets)} must be logits shape {jnp.shape(logits)} minus V")
    z, lse = _shifted_logits(logits, temperature, exclude)
    picked = jnp.take_along_axis(z, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    p = jnp.exp(z - lse[..., None])
    return picked - lse, lse - jnp.sum(p * z, axis=-1)
