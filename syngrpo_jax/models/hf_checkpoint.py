"""HF checkpoint <-> Flax parameter mapping for Qwen2.5-VL.

One table (`weight_maps`) says, for every Flax parameter, which HF tensor(s) it comes from and how the layout
changes (torch Linear weights are [out, in], ours [in, out]; the fused vision qkv gets an explicit q/k/v axis so
tensor parallelism splits heads, not the q|k|v concatenation; per-layer tensors stack on a leading axis). Loading
and saving both read that table, so export is the exact inverse of import.

Names on disk are the hub's (`model.layers.N...`, `visual.blocks.N...`, `lm_head.weight`), which is also what
transformers 5 writes; transformers 5's in-memory names (`model.language_model.*`, `model.visual.*`) are accepted
as aliases when reading.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Iterator

import jax
import numpy as np
from flax import nnx

from syngrpo_jax.models import safetensors_io
from syngrpo_jax.models.config import Qwen25VLConfig
from syngrpo_jax.parallel.host_arrays import to_host

_ALIASES = (("model.language_model.", "model."), ("model.visual.", "visual."))


class CheckpointError(ValueError):
    """Weights on disk that do not fit the config: missing, unexpected or mis-shaped tensors."""


@dataclasses.dataclass(frozen=True)
class WeightMap:
    path: tuple[str, ...]  # Flax state path, e.g. ("text", "layers", "q_kernel")
    hf_name: str  # HF tensor name; "{}" is the layer index for stacked parameters
    hf_shape: tuple[int, ...]  # shape of one HF tensor (one layer's, when stacked)
    to_flax: Callable[[np.ndarray], np.ndarray]  # views only (reshape/transpose), so memory maps stay lazy
    to_hf: Callable[[np.ndarray], np.ndarray]
    num_layers: int = 0  # > 0: stacked over this many layers

    def hf_names(self) -> list[str]:
        return [self.hf_name.format(i) for i in range(self.num_layers)] if self.num_layers else [self.hf_name]


def _same(a):
    return a


def _t(a):
    return a.T


def weight_maps(config: Qwen25VLConfig) -> list[WeightMap]:
    v, t = config.vision, config.text
    d, f, m = v.hidden_size, v.intermediate_size, v.hidden_size * v.merge_unit
    hd = t.head_dim
    qd, kvd = t.num_attention_heads * hd, t.num_key_value_heads * hd
    patch_hf = (d, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size)
    maps = [
        WeightMap(("vision", "patch_embed"), "visual.patch_embed.proj.weight", patch_hf,
                  lambda a: a.reshape(a.shape[0], -1).T, lambda a: a.T.reshape(patch_hf)),
        WeightMap(("vision", "merger_norm"), "visual.merger.ln_q.weight", (d,), _same, _same),
        WeightMap(("vision", "merger_fc1_kernel"), "visual.merger.mlp.0.weight", (m, m), _t, _t),
        WeightMap(("vision", "merger_fc1_bias"), "visual.merger.mlp.0.bias", (m,), _same, _same),
        WeightMap(("vision", "merger_fc2_kernel"), "visual.merger.mlp.2.weight", (v.out_hidden_size, m), _t, _t),
        WeightMap(("vision", "merger_fc2_bias"), "visual.merger.mlp.2.bias", (v.out_hidden_size,), _same, _same),
        WeightMap(("text", "embed"), "model.embed_tokens.weight", (t.vocab_size, t.hidden_size), _same, _same),
        WeightMap(("text", "norm"), "model.norm.weight", (t.hidden_size,), _same, _same),
    ]
    if not config.tie_word_embeddings:
        maps.append(WeightMap(("text", "lm_head"), "lm_head.weight", (t.vocab_size, t.hidden_size), _t, _t))

    vb = "visual.blocks.{}."
    vision_blocks = [
        ("norm1", "norm1.weight", (d,), _same, _same),
        ("norm2", "norm2.weight", (d,), _same, _same),
        # [3d, d] (q|k|v rows) -> [d_in, 3, d_out]
        ("qkv_kernel", "attn.qkv.weight", (3 * d, d),
         lambda a: a.reshape(3, d, d).transpose(2, 0, 1), lambda a: a.transpose(1, 2, 0).reshape(3 * d, d)),
        ("qkv_bias", "attn.qkv.bias", (3 * d,), lambda a: a.reshape(3, d), lambda a: a.reshape(3 * d)),
        ("proj_kernel", "attn.proj.weight", (d, d), _t, _t),
        ("proj_bias", "attn.proj.bias", (d,), _same, _same),
        ("gate_kernel", "mlp.gate_proj.weight", (f, d), _t, _t),
        ("gate_bias", "mlp.gate_proj.bias", (f,), _same, _same),
        ("up_kernel", "mlp.up_proj.weight", (f, d), _t, _t),
        ("up_bias", "mlp.up_proj.bias", (f,), _same, _same),
        ("down_kernel", "mlp.down_proj.weight", (d, f), _t, _t),
        ("down_bias", "mlp.down_proj.bias", (d,), _same, _same),
    ]
    maps += [WeightMap(("vision", "blocks", n), vb + hf, shape, a, b, v.depth)
             for n, hf, shape, a, b in vision_blocks]

    tl = "model.layers.{}."
    text_layers = [
        ("attn_norm", "input_layernorm.weight", (t.hidden_size,), _same, _same),
        ("mlp_norm", "post_attention_layernorm.weight", (t.hidden_size,), _same, _same),
        ("q_kernel", "self_attn.q_proj.weight", (qd, t.hidden_size), _t, _t),
        ("q_bias", "self_attn.q_proj.bias", (qd,), _same, _same),
        ("k_kernel", "self_attn.k_proj.weight", (kvd, t.hidden_size), _t, _t),
        ("k_bias", "self_attn.k_proj.bias", (kvd,), _same, _same),
        ("v_kernel", "self_attn.v_proj.weight", (kvd, t.hidden_size), _t, _t),
        ("v_bias", "self_attn.v_proj.bias", (kvd,), _same, _same),
        ("o_kernel", "self_attn.o_proj.weight", (t.hidden_size, qd), _t, _t),
        ("gate_kernel", "mlp.gate_proj.weight", (t.intermediate_size, t.hidden_size), _t, _t),
        ("up_kernel", "mlp.up_proj.weight", (t.intermediate_size, t.hidden_size), _t, _t),
        ("down_kernel", "mlp.down_proj.weight", (t.hidden_size, t.intermediate_size), _t, _t),
    ]
    maps += [WeightMap(("text", "layers", n), tl + hf, shape, a, b, t.num_hidden_layers)
             for n, hf, shape, a, b in text_layers]
    return maps


def _canonical(name: str) -> str:
    for alias, canonical in _ALIASES:
        if name.startswith(alias):
            return canonical + name[len(alias):]
    return name


def _flat_params(state) -> dict[tuple[str, ...], object]:
    return {tuple(str(k) for k in path): var for path, var in nnx.to_flat_state(state)}


def load_state(path, config: Qwen25VLConfig, abstract_state, shardings):
    """Fill `abstract_state` (nnx.State of ShapeDtypeStructs) from the checkpoint at `path`, each array created
    directly in its sharding from `shardings` (a matching tree of jax Shardings)."""
    reader = safetensors_io.SafetensorsDir(path)
    on_disk = {}
    for name in reader.names():
        on_disk.setdefault(_canonical(name), name)
    maps = weight_maps(config)

    missing, consumed = [], set()
    for wm in maps:
        for name in wm.hf_names():
            if name not in on_disk:
                missing.append(name)
                continue
            consumed.add(name)
            shape = reader.shape(on_disk[name])
            if shape != wm.hf_shape:
                raise CheckpointError(f"{os.fspath(path)}: tensor {name!r} has shape {list(shape)}, the config "
                                      f"expects {list(wm.hf_shape)}")
    if config.tie_word_embeddings and "lm_head.weight" in on_disk:
        consumed.add("lm_head.weight")  # some tied checkpoints store the shared matrix twice
    if missing:
        raise CheckpointError(f"{os.fspath(path)}: {len(missing)} weights missing from the checkpoint, e.g. "
                              f"{missing[:5]}")
    unexpected = sorted(set(on_disk) - consumed)
    if unexpected:
        raise CheckpointError(f"{os.fspath(path)}: {len(unexpected)} unexpected weights in the checkpoint "
                              f"(not part of this config), e.g. {unexpected[:5]}")

    by_path = {wm.path: wm for wm in maps}
    params = _flat_params(abstract_state)
    flat_shardings = _flat_shardings(shardings)
    for key, var in params.items():
        wm = by_path.get(key)
        if wm is None:
            raise CheckpointError(f"Flax parameter {'/'.join(key)} has no HF weight mapping")
        value = var.get_value()
        var.set_value(_make_array(reader, on_disk, wm, value.shape, value.dtype, flat_shardings[key]))
    return abstract_state


def _flat_shardings(shardings) -> dict[tuple[str, ...], object]:
    if hasattr(shardings, "items"):
        return {tuple(str(k) for k in p): (v.get_value() if hasattr(v, "get_value") else v)
                for p, v in nnx.to_flat_state(shardings)}
    raise TypeError("shardings must be an nnx.State of shardings")


def _make_array(reader, on_disk, wm: WeightMap, shape, dtype, sharding):
    """Build one parameter shard by shard: each callback reads only the slice that device holds."""

    def one_layer(name, index):
        view = wm.to_flax(reader.get(on_disk[name]))
        return np.asarray(view[index], dtype=dtype)

    def callback(index):
        if not wm.num_layers:
            return one_layer(wm.hf_name, index)
        layers = range(wm.num_layers)[index[0]]
        return np.stack([one_layer(wm.hf_name.format(i), index[1:]) for i in layers])

    return jax.make_array_from_callback(tuple(shape), sharding, callback)


def _flat_arrays(params) -> dict[tuple[str, ...], object]:
    """Flax path -> array, from an nnx.State of parameters or its pure-dict form (what the trainer holds)."""
    if isinstance(params, nnx.State):
        return {key: var.get_value() for key, var in _flat_params(params).items()}
    flat = {}

    def walk(prefix, node):
        if hasattr(node, "items"):
            for k, v in node.items():
                walk(prefix + (str(k),), v)
        else:
            flat[prefix] = node

    walk((), params)
    return flat


def hf_tensor_specs(config: Qwen25VLConfig) -> list[tuple[str, tuple[int, ...]]]:
    """(HF name, HF shape) of every tensor, in the order `iter_hf_tensors` yields them."""
    return [(name, wm.hf_shape) for wm in weight_maps(config) for name in wm.hf_names()]


def iter_hf_tensors(config: Qwen25VLConfig, params, *, dtype=None) -> Iterator[tuple[str, np.ndarray]]:
    """(HF name, host array in HF layout) for every tensor, one at a time: the single HF name mapping that
    export and weight pushes to an external rollout worker share. Each tensor is gathered from its shards when
    it is reached, so the host holds one tensor at a time; with several processes every process must iterate
    (the gather is collective). params: an nnx.State of parameters or its pure dict. dtype: the output dtype
    (default: the parameters')."""
    flat = _flat_arrays(params)
    out_dtype = np.dtype(dtype) if dtype is not None else None
    for wm in weight_maps(config):
        array = flat[wm.path]
        for i, name in enumerate(wm.hf_names()):
            host = to_host(array[i] if wm.num_layers else array)
            yield name, np.ascontiguousarray(wm.to_hf(host)).astype(out_dtype or host.dtype, copy=False)


def save_state(path, config: Qwen25VLConfig, state, *, dtype=None, max_shard_bytes: int = 5 * 1024**3) -> None:
    """Write params as an HF checkpoint directory, streaming: shards are planned from the config's tensor sizes,
    then each is written as soon as it is full, so the host holds at most one shard plus one tensor. With several
    processes, all take part in gathering each tensor and process 0 writes."""
    params = _flat_arrays(state)
    param_dtype = np.dtype(next(iter(params.values())).dtype)
    out_dtype = np.dtype(dtype) if dtype is not None else param_dtype
    writer = jax.process_index() == 0

    # Plan: how many tensors go in each shard, greedily filled up to max_shard_bytes (file names need the count).
    plan: list[int] = [0]
    size = 0
    for _, shape in hf_tensor_specs(config):
        nbytes = int(np.prod(shape)) * out_dtype.itemsize
        if plan[-1] and size + nbytes > max_shard_bytes:
            plan.append(0)
            size = 0
        plan[-1] += 1
        size += nbytes
    files = (["model.safetensors"] if len(plan) == 1 else
             [f"model-{k + 1:05d}-of-{len(plan):05d}.safetensors" for k in range(len(plan))])

    if writer:
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config.to_hf_dict(dtype=str(out_dtype)), f, indent=2, sort_keys=True)
    weight_map, total = {}, 0
    tensors = iter_hf_tensors(config, state, dtype=out_dtype)
    for file, count in zip(files, plan):
        shard = dict(next(tensors) for _ in range(count))
        if writer:
            safetensors_io.write_file(os.path.join(path, file), shard)
            weight_map.update({name: file for name in shard})
            total += sum(t.nbytes for t in shard.values())
    if writer and len(files) > 1:
        with open(os.path.join(path, safetensors_io.INDEX_FILE), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
