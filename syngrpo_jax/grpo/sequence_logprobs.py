"""Teacher-forced log-probs and entropies of response tokens, computed in sequence chunks.

The full [N, L, vocab] logits of a real model (vocab 152k) do not fit comfortably in float32, so the response
hidden states are cut into chunks along the sequence; each chunk's logits are computed, reduced to log-probs
and entropies, and dropped. Each chunk is rematerialised in the backward pass (its logits are recomputed
instead of stored), so the gradient never holds them all either.

The distribution is the policy's over the tokens a response may contain: the vision placeholders
(`Qwen25VLConfig.vision_token_ids`) are excluded and the rest renormalised, exactly what the rollout engines
sample from and report log-probs of (see grpo/entropy.py).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from syngrpo_jax.grpo.entropy import token_logprobs_and_entropy
from syngrpo_jax.models.inputs import ModelInputs


def response_logprobs(model, inputs: ModelInputs, response_ids: jax.Array, *, temperature: float = 1.0,
                      chunk: int = 128) -> tuple[jax.Array, jax.Array]:
    """(logp [N, T], entropy [N, T]) of response_ids [N, T], the last T positions of `inputs` (prompt + response
    rows built by `extend_with_responses`), under softmax(logits / temperature) without the vision tokens."""
    n, t = response_ids.shape
    prompt_len = inputs.input_ids.shape[1] - t
    hidden = model.hidden_states(inputs)[:, prompt_len - 1:prompt_len - 1 + t]  # position i predicts token i+1
    return hidden_logprobs(model, hidden, response_ids, temperature=temperature, chunk=chunk)


def excluded_tokens(config) -> jax.Array:
    """[V] bool: the tokens outside the policy's response distribution (the vision placeholders)."""
    return jnp.zeros(config.text.vocab_size, bool).at[jnp.asarray(config.vision_token_ids)].set(True)


def hidden_logprobs(model, hidden: jax.Array, targets: jax.Array, *, temperature: float = 1.0,
                    chunk: int = 128) -> tuple[jax.Array, jax.Array]:
    """(logp, entropy) [N, T] of `targets` given the hidden states [N, T, D] that predict them."""
    exclude = excluded_tokens(model.config)
    n, t, d = hidden.shape
    chunk = max(1, min(chunk, t))
    pad = -t % chunk
    hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
    targets = jnp.pad(targets, ((0, 0), (0, pad)))
    k = (t + pad) // chunk
    hidden = hidden.reshape(n, k, chunk, d).swapaxes(0, 1)
    targets = targets.reshape(n, k, chunk).swapaxes(0, 1)

    @jax.checkpoint
    def one(args):
        h, y = args
        return token_logprobs_and_entropy(model.logits(h), y, temperature=temperature, exclude=exclude)

    logp, ent = jax.lax.map(one, (hidden, targets))
    unchunk = lambda x: x.swapaxes(0, 1).reshape(n, k * chunk)[:, :t]  # noqa: E731
    return unchunk(logp), unchunk(ent)
