"""Choosing the next token from logits: greedy, or temperature sampling with top-k / top-p truncation.

Pure functions of (logits, key). Which filters run is static (a compiled sampler does no sorting work it does
not need); temperature and top_p are traced values so changing them does not recompile.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

_NEG = -1e30  # excluded tokens; finite so an all-excluded row cannot produce NaN


def filter_logits(logits, *, temperature, top_k: int = 0, top_p=None, suppress=None):
    """Temperature-scaled logits [B, V] (float32) with suppressed, beyond-top-k and beyond-top-p tokens excluded.

    top_k: keep the k highest (ties at the k-th value all kept). top_p: keep the smallest set of most likely
    tokens whose probability reaches top_p (the token that crosses it included; at least one token).
    suppress: [V] bool, tokens never to emit (e.g. image placeholders).
    """
    x = logits.astype(jnp.float32) / temperature
    if suppress is not None:
        x = jnp.where(suppress, _NEG, x)
    if top_k > 0:
        kth = jax.lax.top_k(x, top_k)[0][:, -1:]
        x = jnp.where(x < kth, _NEG, x)
    if top_p is not None:
        order = jnp.argsort(-x, axis=-1)
        sorted_x = jnp.take_along_axis(x, order, axis=-1)
        probs = jax.nn.softmax(sorted_x, axis=-1)
        before = jnp.cumsum(probs, axis=-1) - probs  # mass of strictly more likely tokens
        keep_sorted = before < top_p
        keep = jnp.zeros_like(keep_sorted).at[jnp.arange(x.shape[0])[:, None], order].set(keep_sorted)
        x = jnp.where(keep, x, _NEG)
    return x


def sample_tokens(key, logits, *, greedy: bool, temperature=1.0, top_k: int = 0, top_p=None, suppress=None):
    """Next tokens [B] int32 from logits [B, V]."""
    if greedy:
        x = logits.astype(jnp.float32)
        if suppress is not None:
            x = jnp.where(suppress, _NEG, x)
        return jnp.argmax(x, axis=-1).astype(jnp.int32)
    x = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p, suppress=suppress)
    return jax.random.categorical(key, x, axis=-1).astype(jnp.int32)


def token_logprob(logits, tokens, temperature, suppress=None):
    """log softmax(logits / temperature)[token] in float32 over the tokens not suppressed (renormalised): the
    policy log-prob GRPO's ratio uses. No top-k/top-p truncation: the train step's teacher-forced log-probs
    (grpo/sequence_logprobs.py) are of this same distribution."""
    x = logits.astype(jnp.float32) / temperature  # temperature may be traced (no recompile when it changes)
    if suppress is not None:
        x = jnp.where(suppress, _NEG, x)
    logp = jax.nn.log_softmax(x, axis=-1)
    return jnp.take_along_axis(logp, tokens[:, None], axis=-1)[:, 0]
