"""Supervised fine-tuning on ground-truth answers: the SFT baseline and the warm start before RL.

    python -m syngrpo_jax.sft --config=configs/rec.py:method=sft --workdir=DIR

The target of a sample is a well-formed response in the run's response format whose answer is the ground truth
in the resized image's pixels (`data.prompts.build_target`), followed by <|im_end|>. The loss is the token-mean
negative log-likelihood of the target tokens given the prompt and image; the batch layout (prompt + one response)
and the chunked log-probs are the GRPO step's.
"""
from __future__ import annotations

import functools
import logging
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from syngrpo_jax.data.prompts import build_target
from syngrpo_jax.grpo.batch import TrainBatch, build_train_batch
from syngrpo_jax.grpo.optimizer import make_optimizer
from syngrpo_jax.grpo.sequence_logprobs import response_logprobs
from syngrpo_jax.rollout.requests import PreparedRequest, prepare_request

log = logging.getLogger(__name__)


def sft_batch(config, prepared: Sequence[PreparedRequest], tokenizer, fmt: str, *, prompt_multiple: int = 64,
              response_multiple: int = 32) -> TrainBatch:
    """Prompt + ground-truth target rows (one per sample); targets are padded to a multiple of response_multiple
    (the run passes its max_tokens, so every SFT batch has one response shape)."""
    targets = [[np.asarray(tokenizer.encode(build_target(p.sample, fmt, p.model_hw)) + [tokenizer.im_end_id])]
               for p in prepared]
    return build_train_batch(config, [p.request for p in prepared], targets, np.zeros(len(prepared), np.float32),
                             pad_id=tokenizer.pad_id, prompt_multiple=prompt_multiple,
                             response_multiple=response_multiple)


def nll(graphdef, params, batch: TrainBatch, chunk: int = 128):
    """Token-mean negative log-likelihood of the target tokens over all micro-batches."""
    model = nnx.merge(graphdef, params)

    def one(mb):
        logp, _ = response_logprobs(model, mb.inputs, mb.response_ids, chunk=chunk)
        return jnp.sum(-logp * mb.response_mask), jnp.sum(mb.response_mask)

    sums, counts = jax.lax.map(one, batch)
    return jnp.sum(sums) / jnp.maximum(jnp.sum(counts), 1.0)


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=(2, 3))
def sft_step(graphdef, tx, params, opt_state, batch: TrainBatch):
    loss, grads = jax.value_and_grad(lambda p: nll(graphdef, p, batch))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, {"sft/loss": loss, "sft/grad_norm": optax.tree.norm(grads)}


def warm_start(config, model_config, graphdef, params, pool_samples, tokenizer, *, steps: int, batch_size: int,
               learning_rate: float, warmup_steps: int = 0, seed: int = 0, writer=None):
    """`steps` SFT updates on batches drawn (seeded, without replacement per pass) from pool_samples."""
    fmt = config.reward.response_format
    tx = make_optimizer(learning_rate=learning_rate, total_steps=steps, warmup_steps=min(warmup_steps, steps),
                        max_grad_norm=config.optim.max_grad_norm, frozen=tuple(config.optim.frozen))
    opt_state = tx.init(params)
    rng = np.random.default_rng([seed, 5_773])
    prepared = [prepare_request(s, tokenizer, fmt, min_pixels=config.data.min_pixels,
                                max_pixels=config.data.max_pixels) for s in pool_samples]
    order: list[int] = []
    losses = []
    for step in tqdm(range(steps), desc="sft", unit="step", disable=jax.process_index() != 0):  # one bar per run
        if len(order) < batch_size:
            order += rng.permutation(len(prepared)).tolist()
        idx, order = order[:batch_size], order[batch_size:]
        batch = sft_batch(model_config, [prepared[i] for i in idx], tokenizer, fmt,
                          prompt_multiple=config.rollout.prompt_multiple,
                          response_multiple=config.rollout.response_multiple or config.rollout.max_tokens)
        params, opt_state, metrics = sft_step(graphdef, tx, params, opt_state, batch)
        losses.append(float(metrics["sft/loss"]))
        if writer is not None:
            writer.write(step + 1, {k: float(v) for k, v in metrics.items()} | {"sft/step": step + 1})
    if losses:
        log.info("SFT: loss %.4f -> %.4f over %d steps", losses[0], losses[-1], steps)
    return params, losses
