"""How far the rollout engine's log-probs are from the trainer's: the mismatch metrics logged every step.

The engine reports log p_rollout(y_t) of each sampled token; the update's forward gives the trainer's
log p_train(y_t) at the parameters the update starts from (the weights the engine sampled with, unless rollouts
overlap updates: then one step newer, and the numbers include that lag). With d_t = log p_train - log p_rollout
over the valid tokens of the batch:

    rollout/logp_diff_mean = mean |d_t|        rollout/logp_diff_max = max |d_t|
    rollout/kl_k3          = mean (e^d_t - 1 - d_t)

kl_k3 is Schulman's k3 estimate of KL(pi_rollout || pi_train) from pi_rollout's own samples (>= 0 per token,
unbiased). For the JAX sampler, which runs the trainer's model, all three are float noise (~1e-6); for vLLM in
float32 ~1e-5; bf16 engines and MoE models show 1e-3 and more, which is what a TIS correction is for.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from syngrpo_jax.grpo.losses import LOG_RATIO_CLAMP, kl_k3


def rollout_mismatch(train_logp: jax.Array, rollout_logp: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    """The three metrics over the tokens where mask != 0 (any leading shape); 0 when no token is valid."""
    valid = mask != 0
    d = jnp.where(valid, jnp.clip(train_logp - rollout_logp, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP), 0.0)
    n = jnp.maximum(jnp.sum(valid), 1)
    return {
        "rollout/logp_diff_mean": jnp.sum(jnp.abs(d)) / n,
        "rollout/logp_diff_max": jnp.max(jnp.abs(d)),
        # k3 with log r = d (pi_train / pi_rollout), the same estimator as the loss's KL to the reference; >= 0,
        # but float32 rounding of e^d - 1 - d at |d| ~ 1e-7 gives -1e-11: clamped at 0
        "rollout/kl_k3": jnp.sum(jnp.where(valid, jnp.maximum(kl_k3(jnp.zeros_like(d), d), 0.0), 0.0)) / n,
    }
