"""The Qwen2 text decoder of Qwen2.5-VL: GQA attention with qkv bias and M-RoPE, SwiGLU MLP, RMSNorm.

`decode` runs the layer stack over embeddings; with a `KVCache` it also writes this call's keys and values at
`cache_pos` and attends over the whole cache (prefill writes the prompt, each decode step one token), so the
sampler and the training forward share one layer implementation.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from syngrpo_jax.models import layers
from syngrpo_jax.models.config import TextConfig
from syngrpo_jax.models.params import Stack, normal, ones, param, scan_layers, zeros


class KVCache(NamedTuple):
    """Keys and values of every layer: [layers, B, S_max, kv_heads, head_dim] each."""

    k: jax.Array
    v: jax.Array

    @classmethod
    def zeros(cls, cfg: TextConfig, batch: int, max_len: int, dtype) -> "KVCache":
        shape = (cfg.num_hidden_layers, batch, max_len, cfg.num_key_value_heads, cfg.head_dim)
        return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


class TextModel(nnx.Module):
    def __init__(self, cfg: TextConfig, *, tie_word_embeddings: bool, rngs: nnx.Rngs, dtype):
        self.cfg = cfg
        d, f, hd = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
        qd, kvd = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd
        self.embed = param(rngs, (cfg.vocab_size, d), ("vocab", "embed"), normal, dtype)
        self.layers = Stack(cfg.num_hidden_layers, {
            "attn_norm": ((d,), ("norm",), ones),
            "q_kernel": ((d, qd), ("embed", "q_heads"), normal),
            "q_bias": ((qd,), ("q_heads",), zeros),
            "k_kernel": ((d, kvd), ("embed", "kv_heads"), normal),
            "k_bias": ((kvd,), ("kv_heads",), zeros),
            "v_kernel": ((d, kvd), ("embed", "kv_heads"), normal),
            "v_bias": ((kvd,), ("kv_heads",), zeros),
            "o_kernel": ((qd, d), ("q_heads", "embed"), normal),
            "mlp_norm": ((d,), ("norm",), ones),
            "gate_kernel": ((d, f), ("embed", "mlp"), normal),
            "up_kernel": ((d, f), ("embed", "mlp"), normal),
            "down_kernel": ((f, d), ("mlp", "embed"), normal),
        }, rngs=rngs, dtype=dtype)
        self.norm = param(rngs, (d,), ("norm",), ones, dtype)
        self.lm_head = None if tie_word_embeddings else param(rngs, (d, cfg.vocab_size), ("embed", "vocab"), normal,
                                                              dtype)

    def embed_tokens(self, input_ids, dtype):
        return jnp.take(self.embed[...], input_ids, axis=0).astype(dtype)

    def decode(self, h, position_ids, mask, *, cache: KVCache | None = None, cache_pos=None,
               attention_impl="xla", remat="none", constrain=None, causal: bool = False):
        """Layer stack + final norm. h: [B, T, D]; position_ids: [3, B, T]; mask: [B, T, S] (S = T, or the
        cache length); causal: without a cache, the mask is causal (cuDNN then skips the blocks above the
        diagonal); constrain: applied to each layer's output (activation sharding). Returns (hidden [B, T, D],
        updated cache or None)."""
        cfg = self.cfg
        b, t, _ = h.shape
        cos, sin = layers.mrope_cos_sin(position_ids, cfg.head_dim, cfg.rope_theta, cfg.mrope_section)

        def attend(x, w, kv_at):
            """One layer; kv_at(k, v) stores this call's keys/values and returns those to attend over."""
            a = layers.rms_norm(x, w["attn_norm"], cfg.rms_norm_eps)
            q = layers.linear(a, w["q_kernel"], w["q_bias"]).reshape(b, t, cfg.num_attention_heads, cfg.head_dim)
            k = layers.linear(a, w["k_kernel"], w["k_bias"]).reshape(b, t, cfg.num_key_value_heads, cfg.head_dim)
            v = layers.linear(a, w["v_kernel"], w["v_bias"]).reshape(b, t, cfg.num_key_value_heads, cfg.head_dim)
            q, k = layers.apply_rotary(q, cos, sin), layers.apply_rotary(k, cos, sin)
            k, v = kv_at(k, v)
            o = layers.attention(q, k.astype(x.dtype), v.astype(x.dtype), mask, attention_impl,
                                 causal=causal and cache is None).reshape(b, t, -1)
            x = x + layers.linear(o, w["o_kernel"])
            a = layers.rms_norm(x, w["mlp_norm"], cfg.rms_norm_eps)
            x = x + layers.gated_mlp(a, w["gate_kernel"], w["up_kernel"], w["down_kernel"], cfg.hidden_act)
            return x if constrain is None else constrain(x)

        if cache is None:
            h, _ = scan_layers(lambda x, w, _: (attend(x, w, lambda k, v: (k, v)), None), h, self.layers.arrays(),
                               remat=remat)
            return layers.rms_norm(h, self.norm[...], cfg.rms_norm_eps), None

        # The whole stacked cache rides in the scan carry and each layer writes its slot in place. Passing the
        # cache as scanned inputs/outputs instead makes XLA copy every layer's slice in and out at every step:
        # that doubled a decode step on CPU (220 ms -> 113 ms for the small benchmark config, batch 48).
        def cached_layer(carry, w, index):
            x, ck, cv = carry

            def kv_at(k, v):
                nonlocal ck, cv
                ck = jax.lax.dynamic_update_slice(ck, k[None].astype(ck.dtype), (index, 0, cache_pos, 0, 0))
                cv = jax.lax.dynamic_update_slice(cv, v[None].astype(cv.dtype), (index, 0, cache_pos, 0, 0))
                return (jax.lax.dynamic_index_in_dim(ck, index, keepdims=False),
                        jax.lax.dynamic_index_in_dim(cv, index, keepdims=False))

            x = attend(x, w, kv_at)
            return (x, ck, cv), None

        (h, ck, cv), _ = scan_layers(cached_layer, (h, cache.k, cache.v), self.layers.arrays(),
                                     jnp.arange(cfg.num_hidden_layers))
        return layers.rms_norm(h, self.norm[...], cfg.rms_norm_eps), KVCache(ck, cv)

    def logits(self, h):
        """[..., D] hidden -> [..., vocab] logits in h's dtype (tied models use the embedding matrix)."""
        if self.lm_head is None:
            return layers.linear(h, self.embed[...].T)
        return layers.linear(h, self.lm_head[...])
