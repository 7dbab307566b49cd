"""The layers both towers share, as pure functions of (params, activations).

One implementation each of RMSNorm, linear, the gated MLP, rotary embedding and attention; the vision tower and
the text decoder call these with their own parameters. Normalisation, rotary and softmax run in float32 whatever
the compute dtype, as the reference does.
"""
from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp

AttentionImpl = Literal["xla", "jax_nn", "cudnn"]
ATTENTION_IMPLS = ("xla", "jax_nn", "cudnn")

# Masked logits get the most negative float rather than -inf so a row with no visible key (a padding query)
# softmaxes to a uniform row instead of NaN; such rows are never read.
_MASK_VALUE = float(jnp.finfo(jnp.float32).min)
# The "xla" path splits queries into chunks (of at least _MIN_QUERY_CHUNK) where one head's score matrix would
# exceed this many entries (16 MiB in float32: past 2048 x 2048; text training shapes stay whole).
_MAX_SCORES = 1 << 22
_MIN_QUERY_CHUNK = 512


def rms_norm(x: jax.Array, weight: jax.Array, eps: float) -> jax.Array:
    """weight * x / sqrt(mean(x^2) + eps), computed in float32 and returned in x's dtype."""
    xf = x.astype(jnp.float32)
    xf = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + eps)
    return (weight.astype(jnp.float32) * xf).astype(x.dtype)


def linear(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None) -> jax.Array:
    """x @ kernel (+ bias) in x's dtype; kernel is [in, ...out] (a torch Linear.weight transposed, its output
    possibly split into several axes).

    The leading axes of x are flattened first so every matmul, forward and backward, is a plain 2-D GEMM: the
    weight gradient of a "...i,io->...o" einsum contracts two batch-like axes, which XLA's CPU backend runs about
    1.3x slower (measured: the gated MLP's gradient on 16 x 258 tokens, 586 ms -> 437 ms).
    """
    lead, out = x.shape[:-1], kernel.shape[1:]
    y = (x.reshape(-1, x.shape[-1]) @ kernel.reshape(kernel.shape[0], -1).astype(x.dtype)).reshape(*lead, *out)
    if bias is not None:
        y = y + bias.astype(x.dtype)
    return y


def activation(name: str):
    """The activation named by an HF config's hidden_act."""
    if name == "silu":
        return jax.nn.silu
    if name == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=False)
    if name == "gelu_pytorch_tanh":
        return lambda x: jax.nn.gelu(x, approximate=True)
    if name == "quick_gelu":
        return lambda x: x * jax.nn.sigmoid(1.702 * x)
    raise ValueError(f"hidden_act={name!r} is not supported")


def gated_mlp(x, gate_kernel, up_kernel, down_kernel, act: str, gate_bias=None, up_bias=None, down_bias=None):
    """down(act(gate(x)) * up(x)): the SwiGLU MLP of both towers (the vision one has biases)."""
    h = activation(act)(linear(x, gate_kernel, gate_bias)) * linear(x, up_kernel, up_bias)
    return linear(h, down_kernel, down_bias)


def rotate_half(x: jax.Array) -> jax.Array:
    half = x.shape[-1] // 2
    return jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def apply_rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x * cos + rotate_half(x) * sin over the last (head) dim; x is [..., T, heads, D], cos/sin [..., T, D]."""
    xf = x.astype(jnp.float32)
    cos, sin = cos[..., None, :], sin[..., None, :]
    return (xf * cos + rotate_half(xf) * sin).astype(x.dtype)


def inverse_frequencies(dim: int, theta: float) -> jax.Array:
    """1 / theta^(2i/dim) for i < dim/2: the rotary frequencies of a `dim`-wide rotation."""
    return 1.0 / (theta ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))


def mrope_cos_sin(position_ids: jax.Array, head_dim: int, theta: float, sections: tuple[int, ...]):
    """Multimodal rotary (M-RoPE) tables from position ids [3, B, L] -> cos, sin [B, L, head_dim].

    The head_dim/2 frequencies are split into contiguous sections (temporal, height, width); section i takes its
    angles from position row i. The halves are then duplicated, as rotate_half expects.
    """
    inv = inverse_frequencies(head_dim, theta)
    freqs = position_ids.astype(jnp.float32)[..., None] * inv  # [3, B, L, D/2]
    bounds = [0]
    for s in sections:
        bounds.append(bounds[-1] + s)
    parts = [freqs[i % 3, ..., bounds[i]:bounds[i + 1]] for i in range(len(sections))]
    freqs = jnp.concatenate(parts, axis=-1)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def vision_rope_cos_sin(pos_hw: jax.Array, head_dim: int, theta: float):
    """2D rotary tables for vision patches at (h, w) positions [..., 2] -> cos, sin [..., head_dim].

    head_dim/4 frequencies are shared by the two axes; angles are [h-angles, w-angles], then duplicated.
    """
    inv = inverse_frequencies(head_dim // 2, theta)
    pos = pos_hw.astype(jnp.float32)
    freqs = jnp.concatenate([pos[..., 0:1] * inv, pos[..., 1:2] * inv], axis=-1)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None = None,
              impl: AttentionImpl = "xla", *, kv_lengths: jax.Array | None = None, causal: bool = False) -> jax.Array:
    """Softmax attention with grouped KV heads.

    q: [B, T, H, D]; k, v: [B, S, K, D] with K dividing H (query head h reads KV head h // (H/K), as
    transformers' repeat_kv does); mask: [B, T or 1, S] bool (True = may attend) or None; kv_lengths: [B] int32,
    keys at or past the length are padding (a mask cuDNN applies without materialising it); causal: query t may
    not see keys after t (T == S; implied by a causal `mask`, and cuDNN then skips the blocks above the diagonal).
    Returns [B, T, H, D].
    "xla" is a plain einsum/softmax (float32 softmax); "jax_nn" calls jax.nn.dot_product_attention and lets it
    pick (cuDNN flash attention on GPU where eligible); "cudnn" forces the cuDNN kernel.
    """
    if impl == "xla":
        if kv_lengths is not None:
            valid = jnp.arange(k.shape[1])[None, None, :] < kv_lengths[:, None, None]
            mask = valid if mask is None else mask & valid
        if causal:
            lower = jnp.tril(jnp.ones((q.shape[1], k.shape[1]), bool))[None]
            mask = lower if mask is None else mask & lower
        b, t, s = q.shape[0], q.shape[1], k.shape[1]
        size = max(_MIN_QUERY_CHUNK, _MAX_SCORES // s)
        if t * s <= _MAX_SCORES or t < 2 * size:
            return _xla_attention(q, k, v, mask)
        # A long sequence (a full-attention vision block on a large image): queries in chunks, so the forward
        # holds one chunk's scores at a time.
        pad = -t % size
        qc = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0))).reshape(b, -1, size, *q.shape[2:]).swapaxes(0, 1)
        if mask is None or mask.shape[1] == 1:  # the same keys for every query
            out = jax.lax.map(lambda qi: _xla_attention(qi, k, v, mask), qc)
        else:
            mc = jnp.pad(mask, ((0, 0), (0, pad), (0, 0))).reshape(b, -1, size, s).swapaxes(0, 1)
            out = jax.lax.map(lambda a: _xla_attention(a[0], k, v, a[1]), (qc, mc))
        return out.swapaxes(0, 1).reshape(b, t + pad, *q.shape[2:])[:, :t]
    if impl in ("jax_nn", "cudnn"):
        return jax.nn.dot_product_attention(
            q, k, v, mask=None if mask is None else mask[:, None],
            key_value_seq_lengths=None if kv_lengths is None else kv_lengths.astype(jnp.int32), is_causal=causal,
            implementation=None if impl == "jax_nn" else "cudnn")
    raise ValueError(f"attention_impl={impl!r} is unknown; choose one of {ATTENTION_IMPLS}")


def _xla_attention(q, k, v, mask):
    """The einsum/softmax attention of `attention` (mask [B, T or 1, S] or None)."""
    b, t, h, d = q.shape
    kv = k.shape[2]
    qg = q.reshape(b, t, kv, h // kv, d)
    scores = jnp.einsum("btkgd,bskd->bkgts", qg, k).astype(jnp.float32) / math.sqrt(d)
    if mask is not None:
        scores = jnp.where(mask[:, None, None], scores, _MASK_VALUE)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", probs, v)
    return out.reshape(b, t, h, d)


def window_attention(q: jax.Array, k: jax.Array, v: jax.Array, window_id: jax.Array, window: int,
                     impl: AttentionImpl = "xla") -> jax.Array:
    """Attention within windows that are contiguous runs of at most `window` tokens, in time linear in T.

    q, k, v: [B, T, H, D]; window_id: [B, T] int (equal within a run, -1 at padding). Every run fits in `window`
    tokens, so the keys of a query in chunk c (chunks of `window` tokens) lie in chunks c-1, c and c+1: each chunk
    attends to those 3 * window keys, masked to its own window. Cost 3 * window scores per token, whatever T.
    """
    b, t, h, d = q.shape
    pad = -t % window
    if pad:
        q, k, v = (jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0))) for x in (q, k, v))
        window_id = jnp.pad(window_id, ((0, 0), (0, pad)), constant_values=-1)
    n = (t + pad) // window

    def neighbours(x, fill):
        """[B, n*window, ...] -> [B, n, 3*window, ...]: chunks c-1, c, c+1 side by side (`fill` off the ends)."""
        x = x.reshape(b, n, window, *x.shape[2:])
        x = jnp.pad(x, ((0, 0), (1, 1)) + ((0, 0),) * (x.ndim - 2), constant_values=fill)
        return jnp.concatenate([x[:, :-2], x[:, 1:-1], x[:, 2:]], axis=2)

    wq = window_id.reshape(b, n, window)
    wk = neighbours(window_id, -1)
    mask = (wq[..., :, None] == wk[..., None, :]) & (wk >= 0)[..., None, :]
    out = attention(q.reshape(b * n, window, h, d), neighbours(k, 0).reshape(b * n, 3 * window, *k.shape[2:]),
                    neighbours(v, 0).reshape(b * n, 3 * window, *v.shape[2:]), mask.reshape(b * n, window, -1),
                    impl)
    return out.reshape(b, n * window, h, d)[:, :t]
