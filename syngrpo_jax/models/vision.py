"""The Qwen2.5-VL vision tower: patch embedding, windowed/full-attention blocks, and the 2x2 patch merger.

Patches arrive padded per image ([N images, P patches, C*T*p*p], see `inputs.ModelInputs`) and already permuted
into window order, as the reference permutes them: every attention window is one contiguous run of at most
window_merged^2 * merge^2 patches, and each merge block's patches are contiguous. Windowed blocks attend chunk by
chunk (`layers.window_attention`, linear in P); blocks in `fullatt_block_indexes` attend over the whole image,
its padding at the end (a key length, so cuDNN needs no mask). The Conv3d patch embedding (kernel = stride =
T x p x p) is a matmul over flattened patches. The merger concatenates each 2x2 block of patch features and
projects it to the text width; its outputs go back into processor order, the order the image tokens expect.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from syngrpo_jax.models import layers
from syngrpo_jax.models.config import VisionConfig
from syngrpo_jax.models.params import Stack, normal, ones, param, scan_layers, zeros


class VisionTower(nnx.Module):
    def __init__(self, cfg: VisionConfig, *, rngs: nnx.Rngs, dtype):
        self.cfg = cfg
        d, f, merged = cfg.hidden_size, cfg.intermediate_size, cfg.hidden_size * cfg.merge_unit
        self.patch_embed = param(rngs, (cfg.patch_dim, d), ("patch", "vision_embed"), normal, dtype)
        self.blocks = Stack(cfg.depth, {
            "norm1": ((d,), ("norm",), ones),
            "qkv_kernel": ((d, 3, d), ("vision_embed", None, "vision_heads"), normal),
            "qkv_bias": ((3, d), (None, "vision_heads"), zeros),
            "proj_kernel": ((d, d), ("vision_heads", "vision_embed"), normal),
            "proj_bias": ((d,), ("norm",), zeros),
            "norm2": ((d,), ("norm",), ones),
            "gate_kernel": ((d, f), ("vision_embed", "vision_mlp"), normal),
            "gate_bias": ((f,), ("vision_mlp",), zeros),
            "up_kernel": ((d, f), ("vision_embed", "vision_mlp"), normal),
            "up_bias": ((f,), ("vision_mlp",), zeros),
            "down_kernel": ((f, d), ("vision_mlp", "vision_embed"), normal),
            "down_bias": ((d,), ("norm",), zeros),
        }, rngs=rngs, dtype=dtype)
        self.merger_norm = param(rngs, (d,), ("norm",), ones, dtype)
        self.merger_fc1_kernel = param(rngs, (merged, merged), ("vision_merge", "vision_mlp"), normal, dtype)
        self.merger_fc1_bias = param(rngs, (merged,), ("vision_mlp",), zeros, dtype)
        self.merger_fc2_kernel = param(rngs, (merged, cfg.out_hidden_size), ("vision_mlp", "embed"), normal, dtype)
        self.merger_fc2_bias = param(rngs, (cfg.out_hidden_size,), ("norm",), zeros, dtype)

    def __call__(self, patches, patch_pos, window_id, merged_order, *, dtype, attention_impl="xla", remat="none"):
        """[N, P, patch_dim] window-order patches -> [N, P / merge^2, out_hidden_size] merged features in
        processor order (padding rows junk)."""
        cfg = self.cfg
        n, p, _ = patches.shape
        x = layers.linear(patches.astype(dtype), self.patch_embed[...])
        cos, sin = layers.vision_rope_cos_sin(patch_pos, cfg.head_dim, cfg.rope_theta)
        window_id = jnp.asarray(window_id)
        lengths = jnp.sum(window_id >= 0, axis=1).astype(jnp.int32)  # real patches come first
        window = cfg.window_merged**2 * cfg.merge_unit
        is_full = np.isin(np.arange(cfg.depth), cfg.fullatt_block_indexes)

        def full(q, k, v):
            return layers.attention(q, k, v, None, attention_impl, kv_lengths=lengths)

        def windowed(q, k, v):
            return layers.window_attention(q, k, v, window_id, window, attention_impl)

        def block(h, w, block_is_full):
            a = layers.rms_norm(h, w["norm1"], cfg.rms_norm_eps)
            qkv = layers.linear(a, w["qkv_kernel"], w["qkv_bias"])  # [N, P, 3, D]
            q, k, v = (qkv[:, :, i].reshape(n, p, cfg.num_heads, cfg.head_dim) for i in range(3))
            q, k = layers.apply_rotary(q, cos, sin), layers.apply_rotary(k, cos, sin)
            if is_full.all() or not is_full.any():  # one kind of block: no branch in the compiled body
                o = (full if is_full.all() else windowed)(q, k, v)
            else:
                o = jax.lax.cond(block_is_full, full, windowed, q, k, v)
            h = h + layers.linear(o.reshape(n, p, cfg.hidden_size), w["proj_kernel"], w["proj_bias"])
            a = layers.rms_norm(h, w["norm2"], cfg.rms_norm_eps)
            h = h + layers.gated_mlp(a, w["gate_kernel"], w["up_kernel"], w["down_kernel"], cfg.hidden_act,
                                     w["gate_bias"], w["up_bias"], w["down_bias"])
            return h, None

        x, _ = scan_layers(block, x, self.blocks.arrays(), jnp.asarray(is_full), remat=remat)
        x = layers.rms_norm(x, self.merger_norm[...], cfg.rms_norm_eps)
        x = x.reshape(n, p // cfg.merge_unit, cfg.hidden_size * cfg.merge_unit)
        x = jnp.take_along_axis(x, jnp.asarray(merged_order)[..., None], axis=1)  # window -> processor order
        x = layers.linear(x, self.merger_fc1_kernel[...], self.merger_fc1_bias[...])
        x = jax.nn.gelu(x, approximate=False)
        return layers.linear(x, self.merger_fc2_kernel[...], self.merger_fc2_bias[...])
