"""Supervised fine-tuning on ground-truth answers: the SFT baseline and the warm start before RL.

    python -m syngrpo_jax.train --config=configs/rec.py:method=sft --workdir=DIR     # the SFT baseline (a run)
    python -m syngrpo_jax.sft --config=configs/tiny_cpu.py --out=DIR                  # a warm start, exported

The second form runs config.sft.steps warm-start updates (in the run's response format, from config.model) and
writes the result as an HF model directory (config.json, safetensors, tokenizer files, warm_start.json with the
recipe and the loss curve): a run starts RL from it with --config.model.path=DIR --config.sft.steps=0, and
`python -m syngrpo_jax.evaluate --checkpoint=DIR` scores it.

The target of a sample is a well-formed response in the run's response format whose answer is the ground truth
in the resized image's pixels (`data.prompts.build_target`), followed by <|im_end|>. The loss is the weighted
token-mean negative log-likelihood of the target tokens given the prompt and image: tokens from <answer> on weigh
config.sft.answer_weight, the others 1 (with 1, the plain token mean). The fixed think text and the tags are learned
in a few steps; the description is free text with much irreducible entropy, and at weight 1 its gradient drowns
the few coordinate tokens, so a tiny model learns the format long before it learns where objects are. The batch
layout (prompt + one response) and the chunked log-probs are the GRPO step's.

A curriculum (config.sft.query_only_steps > 0): the first steps' prompts are the sample's query alone (for REC,
the referring expression) instead of the full prompt (question, format instruction, answer specification: 185
tokens with the tiny tokenizer), with the same targets; the remaining steps use the full prompt. Optimizer
restarts (config.sft.restart_every > 0): AdamW starts again from zero moments every so many steps (its first update
moves every weight by about the learning rate), part of the recipe that localised on the demo. Measured on the
tiny CPU demo (README): the tiny model learns to localise from the short prompt and then carries that over to the
full prompt within a few hundred steps, while the full prompt from the start has not localised after as many.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from syngrpo_jax.data.prompts import build_target
from syngrpo_jax.grpo.batch import TrainBatch, build_train_batch
from syngrpo_jax.grpo.optimizer import make_optimizer
from syngrpo_jax.grpo.sequence_logprobs import response_logprobs
from syngrpo_jax.rollout.requests import PreparedRequest, prepare_request, with_prompt

log = logging.getLogger(__name__)


ANSWER_TAG = "<answer>"


def target_tokens(tokenizer, target: str, answer_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(ids, weights) of one SFT target followed by <|im_end|>: weight answer_weight from the token holding the
    first character of <answer> on (BPE may merge it with the tag before: the tiny tokenizer has "><"), 1 before."""
    encoding = tokenizer.backend.encode(target, add_special_tokens=False)
    ids = list(encoding.ids) + [tokenizer.im_end_id]
    weights = np.ones(len(ids), np.float32)
    at = target.find(ANSWER_TAG)
    if at >= 0 and answer_weight != 1.0:
        first = next(i for i, (_, end) in enumerate(encoding.offsets) if end > at)
        weights[first:] = answer_weight
    return np.asarray(ids), weights


def sft_batch(config, prepared: Sequence[PreparedRequest], tokenizer, fmt: str, *, prompt_multiple: int = 64,
              response_multiple: int = 32, answer_weight: float = 1.0) -> tuple[TrainBatch, np.ndarray]:
    """Prompt + ground-truth target rows (one per sample) and the loss weight of every target token ([M, N, T],
    0 at padding); targets are padded to a multiple of response_multiple (the run passes its max_tokens, so every
    SFT batch has one response shape)."""
    rows = [target_tokens(tokenizer, build_target(p.sample, fmt, p.model_hw), answer_weight) for p in prepared]
    batch = build_train_batch(config, [p.request for p in prepared], [[ids] for ids, _ in rows],
                              np.zeros(len(prepared), np.float32), pad_id=tokenizer.pad_id,
                              prompt_multiple=prompt_multiple, response_multiple=response_multiple)
    weights = np.zeros(batch.response_mask.shape, np.float32)
    for i, (_, w) in enumerate(rows):
        weights[0, i, :len(w)] = w
    return batch, weights


def nll(graphdef, params, batch: TrainBatch, weights=None, chunk: int = 128):
    """Weighted token-mean negative log-likelihood of the target tokens over all micro-batches (weights: [M, N, T],
    default the response mask)."""
    model = nnx.merge(graphdef, params)
    weights = batch.response_mask if weights is None else weights

    def one(args):
        mb, w = args
        logp, _ = response_logprobs(model, mb.inputs, mb.response_ids, chunk=chunk)
        return jnp.sum(-logp * w), jnp.sum(w)

    sums, counts = jax.lax.map(one, (batch, weights))
    return jnp.sum(sums) / jnp.maximum(jnp.sum(counts), 1e-6)


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=(2, 3))
def sft_step(graphdef, tx, params, opt_state, batch: TrainBatch, weights):
    loss, grads = jax.value_and_grad(lambda p: nll(graphdef, p, batch, weights))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, {"sft/loss": loss, "sft/grad_norm": optax.tree.norm(grads)}


def warm_start_pool(config, samples, cache_root: str):
    """The warm start's samples: the run's own, or (config.sft.num_samples > 0) the first sft.num_samples of its
    data source, ignoring data.num_samples. A tiny model needs about a thousand distinct scenes to localise, while
    RL on the CPU demo cycles through a few dozen for several epochs (so that synthesized images come back)."""
    num = int(config.sft.get("num_samples", 0))
    if num <= 0:
        return samples
    from syngrpo_jax.data.sources import load_samples

    data = ml_collections.ConfigDict(config.data.to_dict())
    data.num_samples = num
    return load_samples(data, cache_root)


def warm_start(config, model_config, graphdef, params, pool_samples, tokenizer, *, steps: int, batch_size: int,
               learning_rate: float, warmup_steps: int = 0, seed: int = 0, writer=None):
    """`steps` SFT updates on batches drawn (seeded, without replacement per pass) from pool_samples; the first
    config.sft.query_only_steps of them show the sample's query alone as the prompt, and every
    config.sft.restart_every steps (if > 0) the optimizer restarts from fresh moments, without warmup (see the
    module docstring)."""
    fmt = config.reward.response_format
    answer_weight = float(config.sft.get("answer_weight", 1.0))

    def optimizer(warmup: int):
        return make_optimizer(learning_rate=learning_rate, total_steps=steps, warmup_steps=min(warmup, steps),
                              max_grad_norm=config.optim.max_grad_norm, frozen=tuple(config.optim.frozen))

    tx = optimizer(warmup_steps)
    opt_state = tx.init(params)
    restart_every = int(config.sft.get("restart_every", 0))
    restarted = optimizer(0) if restart_every > 0 else None  # one object: one compiled step for every restart
    rng = np.random.default_rng([seed, 5_773])
    query_only_steps = int(config.sft.get("query_only_steps", 0))

    prepared = [prepare_request(s, tokenizer, fmt, min_pixels=config.data.min_pixels,
                                max_pixels=config.data.max_pixels) for s in pool_samples]
    query_only = ([with_prompt(p, tokenizer, p.sample.query) for p in prepared] if query_only_steps > 0
                  else prepared)
    order: list[int] = []
    losses = []
    for step in tqdm(range(steps), desc="sft", unit="step", disable=jax.process_index() != 0):  # one bar per run
        if len(order) < batch_size:
            order += rng.permutation(len(prepared)).tolist()
        idx, order = order[:batch_size], order[batch_size:]
        pool = query_only if step < query_only_steps else prepared
        if restarted is not None and step > 0 and step % restart_every == 0:
            tx, opt_state = restarted, restarted.init(params)
        batch, weights = sft_batch(model_config, [pool[i] for i in idx], tokenizer, fmt,
                                   prompt_multiple=config.rollout.prompt_multiple,
                                   response_multiple=config.rollout.response_multiple or config.rollout.max_tokens,
                                   answer_weight=answer_weight)
        params, opt_state, metrics = sft_step(graphdef, tx, params, opt_state, batch, weights)
        losses.append(float(metrics["sft/loss"]))
        if writer is not None:
            writer.write(step + 1, {k: float(v) for k, v in metrics.items()} | {"sft/step": step + 1})
    if losses:
        log.info("SFT: loss %.4f -> %.4f over %d steps", losses[0], losses[-1], steps)
    return params, losses


def export_warm_start(config, out_dir: str) -> str:
    """Warm-start the policy config.model describes for config.sft.steps and write it to out_dir (an HF model
    directory; see the module docstring). Returns out_dir. Scratch files (data, the untrained tiny model) go to
    out_dir + ".work"."""
    from syngrpo_jax import policy as policy_lib
    from syngrpo_jax.data.sources import load_samples
    from syngrpo_jax.metrics import MetricsWriter
    from syngrpo_jax.models.qwen2_5_vl import save_pretrained

    out_dir = os.path.abspath(out_dir)
    work = out_dir + ".work"
    fmt = config.reward.response_format
    samples = load_samples(config.data, os.path.join(work, "data"))
    pol = policy_lib.load_policy(config.model, work, seed=config.seed, corpus=policy_lib.task_corpus(samples, fmt))
    graphdef, state = nnx.split(pol.model)
    params = nnx.to_pure_dict(state)
    samples = warm_start_pool(config, samples, os.path.join(work, "data"))  # as the trainer's warm start
    with MetricsWriter(os.path.join(work, "sft"), tensorboard=False) as writer:
        params, losses = warm_start(config, pol.model.config, graphdef, params, samples, pol.tokenizer,
                                    steps=config.sft.steps, batch_size=config.sft.batch_size,
                                    learning_rate=config.sft.learning_rate, warmup_steps=config.sft.warmup_steps,
                                    seed=config.seed, writer=writer)
    tmp = out_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_pretrained(nnx.merge(graphdef, params), tmp)
    policy_lib.save_architecture(pol, tmp)
    with open(os.path.join(tmp, "warm_start.json"), "w") as f:
        json.dump({"response_format": fmt, "steps": config.sft.steps, "num_samples": len(samples),
                   "sft": config.sft.to_dict(), "data": config.data.to_dict(), "model": config.model.to_dict(),
                   "seed": config.seed, "loss": [round(v, 6) for v in losses]}, f, indent=1)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def _cli() -> None:
    from absl import app, flags
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file("config", None, "Run config file (configs/*.py[:arg]).",
                                             lock_config=True)
    out = flags.DEFINE_string("out", None, "The HF model directory to write.", required=True)

    def main(argv) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if config.value is None:
            raise app.UsageError("--config is required (configs/<file>.py[:arg])")
        if config.value.sft.steps < 1:
            raise app.UsageError(f"sft.steps={config.value.sft.steps}: the warm start needs at least one step")
        print(export_warm_start(config.value, out.value))

    app.run(main)


if __name__ == "__main__":
    _cli()
