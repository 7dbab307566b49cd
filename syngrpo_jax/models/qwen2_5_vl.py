"""Qwen2.5-VL in Flax NNX: the public entry points.

    from syngrpo_jax.models import qwen2_5_vl
    model = qwen2_5_vl.from_pretrained(path, dtype=jnp.float32, mesh=None)
    logits = model(input_ids, attention_mask=None, pixel_values=None, image_grid_thw=None)  # [B, L, vocab]
    qwen2_5_vl.save_pretrained(model, path)

`__call__` takes transformers' processor arrays (numpy, torch or jax) and is a convenience for inference and
checks. Training and sampling code prepares `ModelInputs` on the host once (`prepare_inputs`) and calls the pure,
jit-able `hidden_states` / `logits` inside its own compiled step.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from syngrpo_jax.models import hf_checkpoint
from syngrpo_jax.models.config import Qwen25VLConfig
from syngrpo_jax.models.inputs import ModelInputs, prepare_inputs, prepare_vision
from syngrpo_jax.models.layers import ATTENTION_IMPLS
from syngrpo_jax.models.text import KVCache, TextModel
from syngrpo_jax.models.vision import VisionTower
from syngrpo_jax.parallel import sharding as sharding_lib

__all__ = ["Qwen25VL", "Qwen25VLConfig", "ModelInputs", "KVCache", "prepare_inputs", "from_pretrained",
           "save_pretrained", "init_random"]


class Qwen25VL(nnx.Module):
    """Vision tower + text decoder. Parameters are stored in `param_dtype`; compute runs in `dtype`."""

    def __init__(self, config: Qwen25VLConfig, *, rngs: nnx.Rngs, param_dtype=jnp.float32, dtype=None,
                 attention_impl: str = "xla", remat: str = "none", mesh=None, rules=None):
        if attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl={attention_impl!r} is unknown; choose one of {ATTENTION_IMPLS}")
        self.config = config
        self.dtype = jnp.dtype(dtype or param_dtype)
        self.attention_impl = attention_impl
        self.remat = remat
        # With a mesh, activations are constrained by logical axes (batch over data+fsdp); see parallel/sharding.
        self.mesh = mesh
        self.rules = None if rules is None else tuple(rules)
        self.vision = VisionTower(config.vision, rngs=rngs, dtype=param_dtype)
        self.text = TextModel(config.text, tie_word_embeddings=config.tie_word_embeddings, rngs=rngs,
                              dtype=param_dtype)

    # ---- pure, jit-able pieces -------------------------------------------------------------------------------
    def image_features(self, inputs: ModelInputs) -> jax.Array:
        """Merged vision features [N * P / merge^2, D] in the order image tokens consume them."""
        feats = self.vision(inputs.patches, inputs.patch_pos, inputs.window_id, inputs.merged_order,
                            dtype=self.dtype, attention_impl=self.attention_impl, remat=self.remat)
        return feats.reshape(-1, feats.shape[-1])

    def input_embeddings(self, inputs: ModelInputs) -> jax.Array:
        """Token embeddings with every image-pad token replaced by its vision feature: [B, L, D]."""
        h = self.text.embed_tokens(inputs.input_ids, self.dtype)
        if inputs.patches.shape[0] == 0:
            return h
        feats = self.image_features(inputs)
        src = jnp.asarray(inputs.image_src)
        gathered = jnp.take(feats, jnp.maximum(src, 0), axis=0)
        return jnp.where((src >= 0)[..., None], gathered.astype(h.dtype), h)

    def constrain(self, x: jax.Array, axes) -> jax.Array:
        """Pin an activation's sharding by logical axis names (no-op without a mesh)."""
        return sharding_lib.constrain(x, axes, self.mesh, self.rules)

    def hidden_states(self, inputs: ModelInputs) -> jax.Array:
        """Final-norm hidden states [B, L, D] of a full (non-cached) forward with causal + padding masking."""
        mask = jnp.asarray(inputs.attention_mask, bool)
        length = mask.shape[1]
        causal = jnp.tril(jnp.ones((length, length), bool))
        h = self.constrain(self.input_embeddings(inputs), ("batch", None, None))
        h, _ = self.text.decode(h, inputs.position_ids, causal[None] & mask[:, None, :], causal=True,
                                attention_impl=self.attention_impl, remat=self.remat,
                                constrain=lambda x: self.constrain(x, ("batch", None, None)))
        return h

    def logits(self, hidden: jax.Array) -> jax.Array:
        return self.constrain(self.text.logits(hidden), ("batch",) + (None,) * (hidden.ndim - 2) + ("vocab",))

    # ---- incremental decoding (the sampler) -----------------------------------------------------------------
    def prefill(self, inputs: ModelInputs, cache: KVCache) -> tuple[jax.Array, KVCache]:
        """Run left-padded prompts [B, Lp] through the model, writing keys/values at cache positions [0, Lp).
        Returns the last position's logits [B, vocab] (the first sampled token's distribution) and the cache."""
        mask = jnp.asarray(inputs.attention_mask, bool)
        length, cache_len = mask.shape[1], cache.k.shape[2]
        causal = jnp.arange(cache_len)[None, :] <= jnp.arange(length)[:, None]  # [Lp, S]
        key_valid = jnp.pad(mask, ((0, 0), (0, cache_len - length)))
        h = self.constrain(self.input_embeddings(inputs), ("batch", None, None))
        h, cache = self.text.decode(h, inputs.position_ids, causal[None] & key_valid[:, None, :], cache=cache,
                                    cache_pos=0, attention_impl=self.attention_impl)
        return self.logits(h[:, -1]), cache

    def decode_step(self, tokens: jax.Array, positions: jax.Array, key_valid: jax.Array, cache: KVCache,
                    cache_pos) -> tuple[jax.Array, KVCache]:
        """One token per sequence. tokens [B]; positions [B] (text position; all three M-RoPE rows equal after
        the prompt); key_valid [B, S] marks the cache entries this token may attend (prompt + generated so far,
        itself included); cache_pos: where this token's key/value is written. Returns (logits [B, vocab], cache)."""
        h = self.text.embed_tokens(tokens[:, None], self.dtype)
        pos = jnp.broadcast_to(positions[None, :, None], (3, tokens.shape[0], 1))
        h, cache = self.text.decode(h, pos, key_valid[:, None, :], cache=cache, cache_pos=cache_pos,
                                    attention_impl=self.attention_impl)
        return self.logits(h[:, 0]), cache

    # ---- convenience ---------------------------------------------------------------------------------------
    def __call__(self, input_ids, attention_mask=None, pixel_values=None, image_grid_thw=None) -> jax.Array:
        """Logits [B, L, vocab] (float32) for a transformers-processor batch."""
        inputs = prepare_inputs(self.config, _np(input_ids), _np(attention_mask), _np(pixel_values),
                                _np(image_grid_thw))
        return _jit_logits(self, inputs)

    def vision_features(self, pixel_values, image_grid_thw) -> list[np.ndarray]:
        """Per-image merged features [t*h*w / merge^2, D], like transformers' get_image_features."""
        grid = np.asarray(_np(image_grid_thw), np.int64)
        counts = np.prod(grid, axis=1) // self.config.vision.merge_unit
        vision = prepare_vision(self.config, _np(pixel_values), grid)
        per_image = np.asarray(_jit_vision(self, *vision))
        return [per_image[i, :c] for i, c in enumerate(counts)]


@nnx.jit
def _jit_logits(model: Qwen25VL, inputs: ModelInputs):
    return model.logits(model.hidden_states(inputs)).astype(jnp.float32)


@nnx.jit
def _jit_vision(model: Qwen25VL, patches, patch_pos, window_id, merged_order):
    return model.vision(patches, patch_pos, window_id, merged_order, dtype=model.dtype,
                        attention_impl=model.attention_impl, remat=model.remat).astype(jnp.float32)


def _np(x):
    if x is None:
        return None
    if hasattr(x, "detach"):  # a torch tensor; torch itself is never imported here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def init_random(config: Qwen25VLConfig, *, seed: int = 0, param_dtype=jnp.float32, mesh=None, rules=None,
                **options) -> Qwen25VL:
    """A randomly initialised model (tests, benchmarks, the demo's tiny policy), sharded over `mesh` if given.

    Parameters are created inside jit (with output shardings under a mesh, so each device materialises only its
    own shards); sharded or not, the same seed gives bit-identical values.
    """
    make = lambda: Qwen25VL(config, rngs=nnx.Rngs(seed), param_dtype=param_dtype, mesh=mesh, rules=rules,  # noqa: E731
                            **options)
    graphdef, abstract_state = nnx.split(nnx.eval_shape(make))
    if mesh is None:
        state = jax.jit(lambda: nnx.state(make()))()
    else:
        shardings = sharding_lib.state_shardings(abstract_state, mesh, rules)
        state = jax.jit(lambda: nnx.state(make()), out_shardings=shardings)()
    return nnx.merge(graphdef, state)


def from_pretrained(path: str | os.PathLike, dtype=jnp.float32, mesh=None, *, rules=None,
                    compute_dtype=None, attention_impl: str = "xla", remat: str = "none") -> Qwen25VL:
    """Load an HF Qwen2.5-VL checkpoint directory (config.json + safetensors, sharded or not).

    Each tensor is read from a memory map and placed straight into its target sharding, one device shard at a
    time, so the host never holds a second full copy of the weights. `dtype` is the parameter dtype;
    `compute_dtype` defaults to it.
    """
    config = Qwen25VLConfig.from_pretrained(path)
    make = lambda: Qwen25VL(config, rngs=nnx.Rngs(0), param_dtype=dtype, dtype=compute_dtype,  # noqa: E731
                            attention_impl=attention_impl, remat=remat, mesh=mesh, rules=rules)
    abstract = nnx.eval_shape(make)
    graphdef, abstract_state = nnx.split(abstract)
    if mesh is None:
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        shardings = jax.tree.map(lambda _: device, abstract_state)
    else:
        shardings = sharding_lib.state_shardings(abstract_state, mesh, rules)
    state = hf_checkpoint.load_state(path, config, abstract_state, shardings)
    return nnx.merge(graphdef, state)


def save_pretrained(model: Qwen25VL, path: str | os.PathLike, *, dtype=None,
                    max_shard_bytes: int = 5 * 1024**3) -> None:
    """Write an HF-layout directory (config.json + safetensors, sharded with an index past max_shard_bytes)
    that transformers' Qwen2_5_VLForConditionalGeneration.from_pretrained loads with identical logits."""
    hf_checkpoint.save_state(path, model.config, nnx.state(model, nnx.Param), dtype=dtype,
                             max_shard_bytes=max_shard_bytes)
