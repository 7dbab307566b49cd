"""The loss's result types: means kept as (total, count) so micro-batches accumulate exactly.

`PolicyLoss(loss_sum, denominator, metrics)` is what `losses.policy_loss` returns; `combine` sums micro-batch
results. `upcast` and `safe_div` are the two numeric helpers the loss code shares.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp


def upcast(x) -> jax.Array:
    """At least float32 (bf16 inputs are computed in float32; float64 stays float64 when x64 is on)."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def safe_div(total: jax.Array, count: jax.Array) -> jax.Array:
    # A zero count only happens with a zero total (everything masked): return 0 there, and keep the unused
    # branch finite so no NaN leaks into gradients.
    return total / jnp.where(count > 0, count, 1)


class MetricSum(NamedTuple):
    """A mean kept as (total, count) so that micro-batches accumulate exactly: sum both, then ``value``."""

    total: jax.Array
    count: jax.Array

    @property
    def value(self) -> jax.Array:
        return safe_div(self.total, self.count)


class PolicyLoss(NamedTuple):
    """The loss of one (micro-)batch as ``loss_sum / denominator``.

    ``loss`` is what a single-batch step minimises. A step with micro-batches differentiates ``loss_sum`` of
    each, sums those gradients and the denominators, and divides once (``denominator`` does not depend on the
    parameters, so grad(sum_k loss_sum_k) / sum_k denominator_k is the gradient of the full-batch loss).

    metrics (all ``MetricSum``; token metrics count valid tokens):
      pg_loss           the policy-gradient part of the loss (clipped surrogate, plus the KL-Cov penalty), same
                        aggregation and denominator as the loss
      ratio_mean        mean of r = exp(logp - old_logp)
      approx_kl_old     mean of (r - 1) - log r, Schulman's k3 estimate of KL(pi_old || pi)
      clip_frac_low     fraction of tokens with A < 0 and r < 1 - clip_low (lower clip binds, gradient 0)
      clip_frac_high    fraction of tokens with A > 0 and r > 1 + clip_high (upper clip binds, gradient 0)
      dual_clip_frac    fraction with A < 0 and r > dual_clip (only with dual_clip)
      kl_ref            mean of the chosen KL estimator to the reference (only when the KL term is on)
      entropy           mean token entropy (only when ``entropy`` is given)
      cov_selected_frac fraction of tokens selected by Clip-Cov / KL-Cov (only with cov_mode)
    """

    loss_sum: jax.Array
    denominator: jax.Array
    metrics: dict[str, MetricSum]

    @property
    def loss(self) -> jax.Array:
        return safe_div(self.loss_sum, self.denominator)


def combine(parts: Sequence[PolicyLoss]) -> PolicyLoss:
    """Accumulate micro-batch results: every field (loss_sum, denominator, metric totals and counts) is summed."""
    if not parts:
        raise ValueError("combine needs at least one PolicyLoss")
    return jax.tree.map(lambda *xs: sum(xs[1:], xs[0]), *parts)
