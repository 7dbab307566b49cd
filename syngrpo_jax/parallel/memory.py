"""Per-device memory of the GRPO update, from shapes alone: nothing is allocated.

Two kinds of numbers, kept apart because they differ in certainty:

* State the trainer places (parameters, AdamW moments, the reference model, the batch): exact. `tree_bytes`
  sums each array's shard as its sharding lays it out, so these follow `parallel/sharding.py`'s rules (a
  dimension split only where the mesh axes divide it, otherwise replicated).
* Activations: an estimate from a formula over the step's shapes (`update_activations`). It models what the
  jitted step keeps alive while it differentiates one micro-batch (`grpo/train_step.py` scans over them):
    - residuals saved across the scanned layers for the backward pass, per remat policy
      (full: each layer's input; dots: also its projection outputs; none: every intermediate, attention
      probabilities included);
    - the working set of the backward of one layer (recomputed under remat) or of one logits chunk
      (`grpo/sequence_logprobs.py`: [rows, chunk, vocab] in float32), whichever is larger;
    - with FSDP, one layer's weights gathered to full size (forward, backward, unreduced gradient) and the
      gathered embedding for the logits.
  Element counts are exact; which buffers XLA keeps, fuses or reuses is not, and depends on the backend.
  Measured against the temporaries of XLA's compiled step (`plan.py --xla`: the trainer's step compiled for
  virtual CPU devices), gradients + this estimate for Qwen2.5-VL-3B in float32 on a 4-way FSDP mesh come to
  1.22x (remat full), 1.03x (dots) and 0.85x (none); `tests/parallel/test_plan.py` holds them to bands. The
  CPU backend widens bfloat16 to float32, so bfloat16 is measured on a GPU by `benchmarks/memory_plan.py`.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from syngrpo_jax.models.config import Qwen25VLConfig


def tree_bytes(tree, shardings=None) -> int:
    """Bytes one device holds of a tree of (abstract) arrays placed with `shardings` (a matching tree of
    NamedShardings; None: every array whole on one device)."""
    leaves = jax.tree.leaves(tree)
    if shardings is None:
        return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in leaves)
    shard_leaves = jax.tree.leaves(shardings)
    if len(shard_leaves) != len(leaves):
        raise ValueError(f"{len(leaves)} arrays but {len(shard_leaves)} shardings")
    return sum(math.prod(s.shard_shape(x.shape)) * np.dtype(x.dtype).itemsize for x, s in zip(leaves, shard_leaves))


@dataclasses.dataclass(frozen=True)
class StepShapes:
    """What one device computes in the update (one micro-batch) and in the rollout."""

    rows: int  # prompt x response rows of one micro-batch on this device
    prompt_len: int  # padded prompt length
    response_len: int  # padded response length
    images: int  # images of one micro-batch on this device (the tower runs once per prompt, not per response)
    patches: int  # padded patches per image
    rollout_rows: int  # rows (prompts x G) the sampler decodes on this device
    rollout_prompts: int  # prompts the sampler prefills on this device
    max_tokens: int  # new tokens per response in the rollout

    @property
    def length(self) -> int:
        return self.prompt_len + self.response_len


@dataclasses.dataclass(frozen=True)
class Numerics:
    """How the step computes: compute dtype width, remat policy, attention kernel, logits chunk."""

    compute_bytes: int  # 2 for bfloat16, 4 for float32
    remat: str  # none | full | dots
    attention_impl: str  # xla | jax_nn | cudnn
    logprob_chunk: int
    fsdp: int  # mesh fsdp size (gathered weights)
    tensor: int  # mesh tensor size (heads / MLP / vocab splits)


def _scores(n: int, heads: int, q_len: int, k_len: int, numerics: Numerics) -> int:
    """Attention scores + probabilities in float32 ([n, heads, q, k] twice); flash kernels (cudnn) keep none.
    jax_nn counts as materialised: it falls back to XLA where cuDNN is not eligible (and on CPU)."""
    return 0 if numerics.attention_impl == "cudnn" else 2 * 4 * n * heads * q_len * k_len


def _layer(tokens: int, d: int, qkv: int, attn_out: int, f: int, numerics: Numerics) -> dict[str, int]:
    """Bytes of one transformer layer's intermediates over `tokens` rows x positions (attention scores apart).

    carry: the layer input; dots: projection outputs (q, k, v, o, gate, up, down); other: the two norms and the
    rotary embedding (computed in float32, then cast back), the attention output, the activation and gated
    product, the two residual sums."""
    c = numerics.compute_bytes
    return dict(carry=tokens * d * c,
                dots=tokens * (qkv + d + 2 * f + d) * c,
                other=tokens * ((2 * d + qkv) * (4 + c) + (attn_out + 2 * f + 2 * d) * c))


def _stack(layers: int, one: dict[str, int], scores: int, remat: str) -> tuple[int, int]:
    """(saved across the scan, transient of one layer's backward) for a scanned stack of `layers` layers."""
    everything = one["carry"] + one["dots"] + one["other"] + scores
    saved_per_layer = {"full": one["carry"], "dots": one["carry"] + one["dots"], "none": everything}[remat]
    # A remat'ed layer is recomputed in the backward (its intermediates) and differentiated (their cotangents);
    # without remat only the cotangents are new.
    transient = everything * (1 if remat == "none" else 2)
    return layers * saved_per_layer, transient


def update_activations(cfg: Qwen25VLConfig, s: StepShapes, numerics: Numerics) -> dict[str, int]:
    """Activation bytes of one device while it differentiates one micro-batch (see the module docstring)."""
    t, v, n = cfg.text, cfg.vision, numerics
    c = n.compute_bytes
    tp = n.tensor
    tokens = s.rows * s.length
    text_one = _layer(tokens, t.hidden_size, (t.num_attention_heads + 2 * t.num_key_value_heads) * t.head_dim // tp,
                      t.num_attention_heads * t.head_dim // tp, t.intermediate_size // tp, n)
    text_scores = _scores(s.rows, t.num_attention_heads // tp, s.length, s.length, n)
    text_saved, text_transient = _stack(t.num_hidden_layers, text_one, text_scores, n.remat)

    patches = s.images * s.patches
    vision_one = _layer(patches, v.hidden_size, 3 * v.hidden_size // tp, v.hidden_size // tp,
                        v.intermediate_size // tp, n)
    vision_scores = _scores(s.images, v.num_heads // tp, s.patches, s.patches, n)
    vision_saved, vision_transient = _stack(v.depth, vision_one, vision_scores, n.remat)
    merged = patches // v.merge_unit * (3 * v.hidden_size * v.merge_unit + t.hidden_size) * c

    chunk = min(n.logprob_chunk, s.response_len)
    vocab = t.vocab_size // tp if t.vocab_size % tp == 0 else t.vocab_size
    # One chunk's logits in the compute dtype, then float32 logits, softmax and their cotangent.
    logits = s.rows * chunk * vocab * (c + 3 * 4)
    embeddings = tokens * t.hidden_size * c * 2  # input embeddings and final hidden states (saved)

    gathered = 0
    if n.fsdp > 1:
        layer_params = (2 * t.hidden_size + t.hidden_size * (t.num_attention_heads + 2 * t.num_key_value_heads)
                        * t.head_dim * 2 + 3 * t.hidden_size * t.intermediate_size) // tp
        gathered = 3 * layer_params * c + 2 * t.vocab_size * t.hidden_size * c // tp
    return {
        "saved residuals, text layers": text_saved,
        "saved residuals, vision blocks": vision_saved + merged,
        "embeddings, final hidden states": embeddings,
        "backward working set (one layer or logits chunk)": max(text_transient, vision_transient, logits),
        "FSDP-gathered weights (one layer, embedding)": gathered,
    }


def rollout_bytes(cfg: Qwen25VLConfig, s: StepShapes, numerics: Numerics) -> int:
    """The JAX sampler's KV cache on one device (the prefill's per-prompt cache is alive while it is repeated G
    times, `rollout/jax_sampler.py`), plus one step's logits in float32."""
    t = cfg.text
    kv_heads = t.num_key_value_heads // numerics.tensor if t.num_key_value_heads % numerics.tensor == 0 else \
        t.num_key_value_heads
    per_row = t.num_hidden_layers * (s.prompt_len + s.max_tokens) * kv_heads * t.head_dim * 2 * numerics.compute_bytes
    return per_row * (s.rollout_rows + s.rollout_prompts) + s.rollout_rows * t.vocab_size * 4
