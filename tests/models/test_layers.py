"""Attention paths in layers.py against a numpy softmax written out here: windowed (per chunk), chunked queries,
key lengths."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from syngrpo_jax.models import layers


def reference_attention(q, k, v, allowed):
    """softmax(q k^T / sqrt(d)) v per head, over the keys `allowed[b, t, s]`; rows with no key give 0."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    rep = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, rep, axis=2), np.repeat(v, rep, axis=2)
    scores = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(q.shape[-1])
    scores = np.where(allowed[:, None], scores, -np.inf)
    peak = np.max(scores, axis=-1, keepdims=True)
    w = np.exp(scores - np.where(np.isfinite(peak), peak, 0))
    w = w / np.maximum(w.sum(-1, keepdims=True), 1e-300)
    return np.einsum("bhts,bshd->bthd", w, v)


def random_qkv(rng, b, t, heads, kv_heads, d=8):
    return (rng.standard_normal((b, t, heads, d), np.float32), rng.standard_normal((b, t, kv_heads, d), np.float32),
            rng.standard_normal((b, t, kv_heads, d), np.float32))


def contiguous_windows(rng, t, window, valid):
    """Window ids: consecutive runs of 1..window tokens over the first `valid` positions, -1 after."""
    ids, w, pos = np.full(t, -1, np.int32), 0, 0
    while pos < valid:
        n = int(rng.integers(1, window + 1))
        ids[pos:min(pos + n, valid)] = w
        pos, w = pos + n, w + 1
    return ids


@pytest.mark.parametrize("t,window", [(64, 16), (70, 16), (40, 64)])
def test_window_attention_equals_masked_softmax(t, window):
    rng = np.random.default_rng(t)
    q, k, v = random_qkv(rng, 2, t, 4, 2)
    ids = np.stack([contiguous_windows(rng, t, window, t), contiguous_windows(rng, t, window, t - 9)])
    allowed = (ids[:, :, None] == ids[:, None, :]) & (ids[:, None, :] >= 0)
    out = np.asarray(jax.jit(layers.window_attention, static_argnums=(4,))(q, k, v, ids, window))
    valid = ids >= 0
    np.testing.assert_allclose(out[valid], reference_attention(q, k, v, allowed)[valid], atol=2e-5, rtol=0)


def test_window_attention_runs_straddling_chunks():
    """Runs straddle chunk boundaries (a 16-token window starting at 10): still exact."""
    q, k, v = random_qkv(np.random.default_rng(0), 1, 48, 2, 2)
    ids = np.array([[0] * 10 + [1] * 16 + [2] * 16 + [3] * 6], np.int32)
    allowed = ids[:, :, None] == ids[:, None, :]
    out = layers.window_attention(q, k, v, ids, 16)
    np.testing.assert_allclose(out, reference_attention(q, k, v, allowed), atol=2e-5, rtol=0)


@pytest.mark.parametrize("per_query_mask", [False, True])
def test_chunked_queries_equal_whole(monkeypatch, per_query_mask):
    """Past _MAX_SCORES entries per head the xla path runs the queries in chunks (here forced small)."""
    monkeypatch.setattr(layers, "_MAX_SCORES", 64)
    monkeypatch.setattr(layers, "_MIN_QUERY_CHUNK", 7)
    rng = np.random.default_rng(1)
    q, k, v = random_qkv(rng, 2, 40, 4, 1)
    lengths = np.array([40, 23], np.int32)
    allowed = np.broadcast_to(np.arange(40)[None, None, :] < lengths[:, None, None], (2, 40, 40))
    mask = None
    if per_query_mask:
        mask = np.tril(np.ones((40, 40), bool))[None].repeat(2, 0)
        allowed = allowed & mask
    out = layers.attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), mask, kv_lengths=jnp.asarray(lengths))
    np.testing.assert_allclose(out, reference_attention(q, k, v, allowed), atol=2e-5, rtol=0)


@pytest.mark.parametrize("impl", ["xla", "jax_nn"])
def test_causal_flag_with_padding_lengths(impl):
    """causal=True hides later keys (on its own, or with key lengths), on both the einsum and jax.nn paths."""
    rng = np.random.default_rng(2)
    q, k, v = random_qkv(rng, 2, 24, 4, 2)
    lengths = np.array([24, 17], np.int32)
    allowed = np.tril(np.ones((24, 24), bool))[None] & (np.arange(24)[None, None, :] < lengths[:, None, None])
    out = layers.attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), None, impl,
                           kv_lengths=jnp.asarray(lengths), causal=True)
    np.testing.assert_allclose(out, reference_attention(q, k, v, allowed), atol=2e-5, rtol=0)
