"""The GRPO update: one jitted, sharded step over a batch of prompt x response rows.

    params, opt_state, metrics = step(params, opt_state, ref_params, batch, rng)

params / ref_params are pure-dict parameter trees (`nnx.merge(graphdef, params)` rebuilds the model); batch is a
`TrainBatch` of M stacked micro-batches. The step scans over micro-batches, summing each one's loss_sum
gradient and denominator, and divides once: the result equals one full-batch step exactly (see
`grpo/losses.py`). Token log-probs and entropies come from the logits in sequence chunks
(`sequence_logprobs`), so a 152k vocabulary never materialises [N, L, V] float32 logits. The frozen reference
model (for the KL term) only runs when kl_coef > 0. Params and optimizer state are donated: the step updates them
in place.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from syngrpo_jax.grpo import losses
from syngrpo_jax.grpo.advantages import entropy_shaped_advantages
from syngrpo_jax.grpo.batch import TrainBatch
from syngrpo_jax.grpo.loss_types import MetricSum
from syngrpo_jax.grpo.losses import LossConfig
from syngrpo_jax.grpo.rollout_mismatch import rollout_mismatch
from syngrpo_jax.grpo.sequence_logprobs import response_logprobs
from syngrpo_jax.parallel import sharding as sharding_lib


def _micro_loss(graphdef, cfg: LossConfig, params, ref_params, mb: TrainBatch, rng):
    model = nnx.merge(graphdef, params)
    logp, ent = response_logprobs(model, mb.inputs, mb.response_ids, temperature=cfg.temperature,
                                  chunk=cfg.logprob_chunk)
    # The trainer's log-probs at the parameters this update starts from (every micro-batch sees the same ones:
    # gradients are applied once, after all of them). They are the "recomputed" old_logp at no extra forward,
    # and what the rollout's log-probs (mb.old_logp) are compared with.
    train_logp = jax.lax.stop_gradient(logp)
    old_logp = train_logp if cfg.old_logp_source == "recompute" else mb.old_logp
    ref_logp = None
    if cfg.kl_coef > 0:
        ref_model = nnx.merge(graphdef, ref_params)
        ref_logp, _ = jax.lax.stop_gradient(response_logprobs(
            ref_model, mb.inputs, mb.response_ids, temperature=cfg.temperature, chunk=cfg.logprob_chunk))
    adv = mb.advantages
    if cfg.entropy_adv_alpha is not None:
        adv = entropy_shaped_advantages(adv, jax.lax.stop_gradient(ent), alpha=cfg.entropy_adv_alpha,
                                        kappa=cfg.entropy_adv_kappa)
    result = losses.policy_loss(logp, old_logp, adv, mb.response_mask, cfg, ref_logp=ref_logp,
                                entropy=ent if cfg.entropy_coef else None, rng=rng,
                                rollout_logp=mb.old_logp if cfg.tis_cap is not None else None)
    w = mb.response_mask
    # The true token entropy is reported whatever the loss uses (it is the collapse signal Syn-GRPO tracks).
    metrics = dict(result.metrics)
    metrics["token_entropy"] = MetricSum(jnp.sum(jax.lax.stop_gradient(ent) * w), jnp.sum(w))
    return result.loss_sum, (result.denominator, metrics, train_logp)


def grad_and_metrics(graphdef, cfg: LossConfig, params, ref_params, batch: TrainBatch, rng):
    """Exactly accumulated gradient of the full-batch loss over M micro-batches, summed metrics, and the
    trainer's log-probs of the response tokens [M, Nm, T] (detached, at `params`)."""
    grad_fn = jax.grad(_micro_loss, argnums=2, has_aux=True)

    def body(carry, xs):
        grads, denom, metrics = carry
        mb, m = xs
        g, (d, mt, logp) = grad_fn(graphdef, cfg, params, ref_params, mb, jax.random.fold_in(rng, m))
        return (jax.tree.map(jnp.add, grads, g), denom + d, jax.tree.map(jnp.add, metrics, mt)), logp

    zeros = jax.tree.map(jnp.zeros_like, params)
    first = jax.tree.map(lambda x: x[0], batch)
    metric_shapes = jax.eval_shape(lambda: _micro_loss(graphdef, cfg, params, ref_params, first, rng)[1][1])
    zero_metrics = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metric_shapes)
    m = batch.response_ids.shape[0]
    (grads, denom, metrics), logp = jax.lax.scan(body, (zeros, jnp.float32(0), zero_metrics),
                                                 (batch, jnp.arange(m)))
    # Back in each gradient's own (the parameter's) dtype: dividing a bfloat16 gradient by the float32
    # denominator promotes it, and the Adam moments built from it would come back float32.
    grads = jax.tree.map(lambda g: (g / jnp.maximum(denom, 1e-12)).astype(g.dtype), grads)
    return grads, denom, metrics, logp


def _train_step(graphdef, cfg: LossConfig, tx: optax.GradientTransformation, params, opt_state, ref_params,
                batch: TrainBatch, rng):
    grads, _, metrics, train_logp = grad_and_metrics(graphdef, cfg, params, ref_params, batch, rng)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    out = {k: v.value for k, v in metrics.items()}
    out.update(rollout_mismatch(train_logp, batch.old_logp, batch.response_mask))
    w = batch.response_mask
    lengths = jnp.sum(w, axis=-1)
    out.update(
        loss=_total_loss(metrics, cfg),
        grad_norm=optax.tree.norm(grads),
        response_length_mean=jnp.mean(lengths),
        response_length_max=jnp.max(lengths),
        num_response_tokens=jnp.sum(w),
    )
    return params, opt_state, out


def _total_loss(metrics, cfg: LossConfig):
    """The optimised loss value (policy-gradient term plus the KL and entropy terms), for logging."""
    loss = metrics["pg_loss"].value
    if "kl_ref" in metrics and cfg.kl_coef > 0:
        loss = loss + cfg.kl_coef * metrics["kl_ref"].value
    if "entropy" in metrics and cfg.entropy_coef:
        loss = loss - cfg.entropy_coef * metrics["entropy"].value
    return loss


def make_train_step(graphdef, tx: optax.GradientTransformation, cfg: LossConfig, *, mesh=None,
                    param_shardings=None, opt_shardings=None) -> Callable:
    """Compile `step(params, opt_state, ref_params, batch, rng) -> (params, opt_state, metrics)`.

    With a mesh, in/out shardings are explicit: params and optimizer state as given (from the logical axis
    rules), the reference like the params, batch rows split over (data, fsdp), metrics replicated.
    """
    cfg.validate()
    fn = lambda p, o, r, b, k: _train_step(graphdef, cfg, tx, p, o, r, b, k)  # noqa: E731
    if mesh is None:
        return jax.jit(fn, donate_argnums=(0, 1))
    replicated = NamedSharding(mesh, PartitionSpec())
    ref_shardings = param_shardings if cfg.kl_coef > 0 else None
    return jax.jit(fn, donate_argnums=(0, 1),
                   in_shardings=(param_shardings, opt_shardings, ref_shardings, None, replicated),
                   out_shardings=(param_shardings, opt_shardings, replicated))


def make_logprob_fn(graphdef, cfg: LossConfig) -> Callable:
    """Jitted `f(params, batch) -> logp [M, Nm, T]`: teacher-forced log-probs (checks, evaluation; the train step
    gets the same from its own forward)."""

    def fn(params, batch: TrainBatch):
        model = nnx.merge(graphdef, params)
        return jax.lax.map(lambda mb: response_logprobs(model, mb.inputs, mb.response_ids,
                                                        temperature=cfg.temperature, chunk=cfg.logprob_chunk)[0],
                           batch)

    return jax.jit(fn)


def optimizer_shardings(tx: optax.GradientTransformation, params, param_shardings, mesh):
    """Shardings for tx.init(params): parameter-shaped state (Adam moments) like its parameter, the rest
    (step counts) replicated."""
    abstract = jax.eval_shape(tx.init, params)
    replicated = NamedSharding(mesh, PartitionSpec())
    return optax.tree_map_params(tx, lambda _, s: s, abstract, param_shardings,
                                 transform_non_params=lambda _: replicated)


def batch_shardings(batch: TrainBatch, mesh, rules=None) -> TrainBatch:
    """Row-major arrays of a TrainBatch split over (data, fsdp) on their row axis where it divides; images too."""
    def rows(x, axis):
        axes = [None] * x.ndim
        axes[axis] = "batch"
        return NamedSharding(mesh, sharding_lib.logical_to_spec(axes, x.shape, mesh, rules or
                                                                sharding_lib.DEFAULT_RULES))

    i = batch.inputs
    inputs = type(i)(
        input_ids=rows(i.input_ids, 1), attention_mask=rows(i.attention_mask, 1),
        position_ids=rows(i.position_ids, 2), rope_deltas=rows(i.rope_deltas, 1), image_src=rows(i.image_src, 1),
        patches=rows(i.patches, 1), patch_pos=rows(i.patch_pos, 1), window_id=rows(i.window_id, 1),
        merged_order=rows(i.merged_order, 1))
    return TrainBatch(inputs, rows(batch.response_ids, 1), rows(batch.response_mask, 1), rows(batch.advantages, 1),
                      rows(batch.old_logp, 1))
