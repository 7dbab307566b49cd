"""The native JAX rollout engine: batched multimodal prefill, then KV-cached decoding in `lax.while_loop`.

Prefill runs each prompt once (its images through the vision tower once), left-padded to a bucketed length so
all prompts end at the same position; the cache is then repeated for the n samples of each prompt and handed
to the decode loop, which samples one token per sequence per step until every sequence has hit a stop token
or max_tokens. Prefill and decode are two compiled functions; the decode one donates the cache, so the loop
updates it in place instead of keeping a second copy of the largest buffer in the run.

Shapes (prompt bucket, images, patches, n, max_tokens) are the compile key: prompt lengths and patch counts are
rounded up to multiples so a training run compiles a bounded number of times; each new key is logged.
"""
from __future__ import annotations

import functools
import logging
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from syngrpo_jax.models.inputs import prepare_prompts
from syngrpo_jax.models.qwen2_5_vl import Qwen25VL
from syngrpo_jax.models.text import KVCache
from syngrpo_jax.parallel.host_arrays import to_host
from syngrpo_jax.rollout import sampling
from syngrpo_jax.rollout.base import Response, RolloutEngine, RolloutRequest, SamplingParams

log = logging.getLogger(__name__)


class JaxSampler(RolloutEngine):
    """Samples from a `Qwen25VL` (sharded or not). `tokenizer` (optional) decodes response text.

    suppress_token_ids: never sampled (default: the vision placeholders, which a response must not contain).
    prompt_multiple / patch_multiple: the bucket sizes for prompt length and per-image patch count.
    copy_weights: keep a copy of the pushed parameters rather than sampling from the trainer's own buffers, which
      the update donates; needed when sampling overlaps the update (rollout.overlap), at one model's memory.
    """

    def __init__(self, model: Qwen25VL, tokenizer=None, *, pad_token_id: int | None = None,
                 suppress_token_ids: Sequence[int] | None = None, prompt_multiple: int = 64,
                 patch_multiple: int = 64, copy_weights: bool = False):
        self.config = model.config
        self.graphdef, self.state = nnx.split(model)
        self.tokenizer = tokenizer
        cfg = model.config
        self.pad_token_id = pad_token_id if pad_token_id is not None else (cfg.pad_token_id or 0)
        if suppress_token_ids is None:
            suppress_token_ids = cfg.vision_token_ids
        suppress = np.zeros(cfg.text.vocab_size, bool)
        suppress[list(suppress_token_ids)] = True
        self.suppress = jnp.asarray(suppress)
        self.prompt_multiple, self.patch_multiple = prompt_multiple, patch_multiple
        self.copy_weights = copy_weights
        self._version = 0
        self._compiled: set[tuple] = set()

    @property
    def weight_version(self) -> int:
        return self._version

    @property
    def compile_count(self) -> int:
        return len(self._compiled)

    def update_weights(self, params, version: int) -> None:
        """params: the model's parameters, an nnx.State or its pure dict (the trainer's current ones; no copy)."""
        self.state = jax.tree.map(jnp.copy, params) if self.copy_weights else params
        self._version = int(version)

    def generate(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Response]]:
        if not requests:
            return []
        prompts = prepare_prompts(
            self.config, [r.prompt_ids for r in requests], [r.pixel_values for r in requests],
            [r.image_grid_thw for r in requests], pad_id=self.pad_token_id, length_multiple=self.prompt_multiple,
            patch_multiple=self.patch_multiple)
        b, prompt_len = prompts.input_ids.shape
        greedy = params.temperature == 0
        key = (b, prompt_len, prompts.patches.shape[:2], params.n, params.max_tokens, greedy, params.top_k,
               params.top_p < 1, len(params.stop_token_ids))
        if key not in self._compiled:
            self._compiled.add(key)
            log.info("sampler: compiling for batch=%d prompt_len=%d images/patches=%s n=%d max_tokens=%d "
                     "(compile #%d)", b, prompt_len, prompts.patches.shape[:2], params.n, params.max_tokens,
                     len(self._compiled))
        cache_len = prompt_len + params.max_tokens
        logits, cache = _prefill(self.graphdef, self.state, prompts, cache_len, params.n)
        rep = np.repeat(np.arange(b), params.n)
        tokens, logprobs, lengths, stopped, _ = _decode(
            self.graphdef, self.state, logits, cache,
            jnp.asarray(np.pad(prompts.attention_mask[rep], ((0, 0), (0, params.max_tokens)))),
            jnp.asarray(prompts.attention_mask.sum(1)[rep] + prompts.rope_deltas[rep], jnp.int32),
            jax.random.key(params.seed), jnp.float32(params.temperature if not greedy else 1.0),
            jnp.float32(params.top_p), jnp.asarray(params.stop_token_ids, jnp.int32), self.suppress,
            jnp.int32(self.pad_token_id), prompt_len=prompt_len, max_tokens=params.max_tokens, greedy=greedy,
            top_k=params.top_k, use_top_p=params.top_p < 1)
        # Gathered when the rows live on several processes' devices: every process gets every response.
        tokens, logprobs, lengths, stopped = map(to_host, (tokens, logprobs, lengths, stopped))
        out: list[list[Response]] = []
        for i in range(b):
            group = []
            for j in range(i * params.n, (i + 1) * params.n):
                ids = tokens[j, :lengths[j]].astype(np.int32)
                text_ids = ids[:-1] if stopped[j] else ids
                text = self.tokenizer.decode(text_ids.tolist()) if self.tokenizer is not None else ""
                group.append(Response(ids, text, logprobs[j, :lengths[j]].astype(np.float32),
                                      "stop" if stopped[j] else "length", self._version))
            out.append(group)
        return out


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _prefill(graphdef, state, prompts, cache_len: int, n: int):
    """Prompt pass; returns the first-token logits and the cache, each repeated n times per prompt."""
    model = nnx.merge(graphdef, state)
    b = prompts.input_ids.shape[0]
    cache = KVCache.zeros(model.config.text, b, cache_len, model.dtype)
    logits, cache = model.prefill(prompts, cache)
    cache = KVCache(*(model.constrain(jnp.repeat(c, n, axis=1), (None, "batch", None, "kv_heads", None))
                      for c in cache))
    return jnp.repeat(logits, n, axis=0), cache


@functools.partial(jax.jit, static_argnums=(0,),
                   static_argnames=("prompt_len", "max_tokens", "greedy", "top_k", "use_top_p"),
                   donate_argnums=(3,))
def _decode(graphdef, state, logits, cache, key_valid, next_pos, rng, temperature, top_p, stop_ids, suppress,
            pad_id, *, prompt_len: int, max_tokens: int, greedy: bool, top_k: int, use_top_p: bool):
    """Sample max_tokens tokens (or until every row stopped).

    The cache argument is donated and the final cache returned (the caller drops it): XLA can only reuse a
    donated buffer for an output of the same shape, and this way the loop updates the prefill's cache in place
    instead of first copying it into a fresh buffer."""
    model = nnx.merge(graphdef, state)
    n = logits.shape[0]

    def cond(carry):
        step, done = carry[0], carry[4]
        return (step < max_tokens) & ~jnp.all(done)

    def body(carry):
        step, logits, cache, key_valid, done, tokens, logps, lengths, rng = carry
        rng, key = jax.random.split(rng)
        tok = sampling.sample_tokens(key, logits, greedy=greedy, temperature=temperature, top_k=top_k,
                                     top_p=top_p if use_top_p else None, suppress=suppress)
        lp = sampling.token_logprob(logits, tok, temperature, suppress)
        tok = jnp.where(done, pad_id, tok)
        tokens = tokens.at[:, step].set(tok)
        logps = logps.at[:, step].set(jnp.where(done, 0.0, lp))
        lengths = jnp.where(done, lengths, step + 1)
        done = done | jnp.isin(tok, stop_ids)
        key_valid = key_valid.at[:, prompt_len + step].set(True)
        logits, cache = model.decode_step(tok, next_pos + step, key_valid, cache, prompt_len + step)
        return step + 1, logits, cache, key_valid, done, tokens, logps, lengths, rng

    carry = (jnp.int32(0), logits, cache, key_valid, jnp.zeros(n, bool), jnp.full((n, max_tokens), pad_id, jnp.int32),
             jnp.zeros((n, max_tokens), jnp.float32), jnp.zeros(n, jnp.int32), rng)
    _, _, cache, _, done, tokens, logps, lengths, _ = jax.lax.while_loop(cond, body, carry)
    stopped = jnp.isin(jnp.take_along_axis(tokens, jnp.maximum(lengths - 1, 0)[:, None], axis=1)[:, 0], stop_ids)
    return tokens, logps, lengths, stopped & (lengths > 0), cache


def from_context(context) -> JaxSampler:
    """The registry's factory (rollout.engine="jax"): a sampler on the policy model itself."""
    r = context.config.rollout
    return JaxSampler(context.model, context.tokenizer, prompt_multiple=r.prompt_multiple,
                      copy_weights=bool(r.get("overlap", False)))
