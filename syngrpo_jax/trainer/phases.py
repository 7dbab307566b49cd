"""The phases of one RL step, each a function of explicit inputs, unit-tested one by one (tests/trainer/).

    rollout      draw B samples through the pool's sampler; the engine samples G responses each -> RolloutResult
    score        rewards (accuracy, format, diversity), GRPO advantages, the pool's pass rates -> Scored
    synthesize   the chosen descriptions go to the data server; sync mode waits for this step's images
    update       the jitted GRPO step (learner.Learner.update)
    push_weights the new parameters go to the rollout engine, with the next version number

Seams (docs/DESIGN.md, "The trainer"): the rollout phase talks only to a `RolloutEngine`; an engine's per-step
scalars (`RolloutEngine.step_metrics`, e.g. a vLLM engine's rollout/logp_diff_mean) travel in the RolloutResult,
which is also what a one-step-ahead overlap would hand over early. The synthesize phase is where a data-server
restart or dropped results are handled (the session's `submit` returns the accepted jobs; `wait` is bounded by
synthesis.sync_timeout_s). Every random choice is a function of (seed, step, salt): resuming needs no RNG state.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from syngrpo_jax.data.sample import Sample
from syngrpo_jax.grpo.advantages import group_advantages
from syngrpo_jax.rewards.group_rewards import GroupRewards, choose_descriptions, score_groups
from syngrpo_jax.rollout.base import Response, RolloutEngine, SamplingParams
from syngrpo_jax.rollout.requests import PreparedRequest, prepare_request

# Salts of the per-step random streams (the third SeedSequence word).
SALT_ROLLOUT, SALT_DESCRIPTIONS, SALT_UPDATE, SALT_SYNTHESIS_JOBS = 1, 2, 3, 100


def step_seed(seed: int, step: int, salt: int) -> int:
    """A 32-bit seed that is a pure function of (seed, step, salt)."""
    return int(np.random.SeedSequence([seed, step, salt]).generate_state(1)[0])


@dataclasses.dataclass
class RolloutResult:
    prepared: list[PreparedRequest]  # [B] the requests, with the samples and image sizes behind them
    responses: list[list[Response]]  # [B][G]
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # the engine's per-step scalars

    @property
    def texts(self) -> list[list[str]]:
        return [[r.text for r in group] for group in self.responses]


@dataclasses.dataclass
class Scored:
    rewards: GroupRewards
    advantages: np.ndarray  # [B * G] float32, group-contiguous


def rollout(engine: RolloutEngine, samples: Sequence[Sample], sampling: SamplingParams, *, tokenizer, config,
            step: int) -> RolloutResult:
    """G = sampling.n responses per sample, prompted in reward.response_format, sampled with seed (seed, step)."""
    prepared = [prepare_request(s, tokenizer, config.reward.response_format, min_pixels=config.data.min_pixels,
                                max_pixels=config.data.max_pixels) for s in samples]
    params = dataclasses.replace(sampling, seed=step_seed(config.seed, step, SALT_ROLLOUT))
    responses = engine.generate([p.request for p in prepared], params)
    return RolloutResult(prepared, responses, dict(engine.step_metrics()))


def score(result: RolloutResult, config, host, step: int) -> Scored:
    """Rewards of the batch (the smoother advances once when the method uses R_div), group advantages, and each
    sample's mean accuracy folded into the pool's pass rates."""
    rewards = score_groups(result.prepared, result.texts, response_format=config.reward.response_format,
                           accuracy_mode=config.reward.accuracy, use_diversity=config.reward.diversity,
                           smoother=host.smoother, strict_qa=config.reward.strict_qa)
    advantages = np.asarray(group_advantages(jnp.asarray(rewards.total.reshape(-1), jnp.float32),
                                             config.rollout.group_size))
    host.pool.update_pass_rates({p.sample.sample_id: float(a.mean()) for p, a in zip(result.prepared,
                                                                                     rewards.accuracy)}, step)
    return Scored(rewards, advantages)


def synthesis_jobs(prepared: Sequence[PreparedRequest], rewards: GroupRewards, *, descriptions: str, fixed,
                   seed: int, step: int) -> list[tuple[str, str, int]]:
    """(sample_id, description, job seed) per sample that gets one: the response with the highest R_div
    ("policy"), a random response's ("random"), or a random entry of the fixed descriptions ("file": a list for
    every sample, or {sample_id: [...]})."""
    rng = np.random.default_rng(step_seed(seed, step, SALT_DESCRIPTIONS))
    chosen: list[tuple[str, str, int]] = []
    if descriptions == "file":
        for b, p in enumerate(prepared):
            choices = fixed if isinstance(fixed, list) else fixed.get(p.sample.sample_id) or []
            if choices:
                chosen.append((p.sample.sample_id, str(choices[int(rng.integers(len(choices)))]), b))
    else:
        for b, (p, i) in enumerate(zip(prepared, choose_descriptions(rewards, descriptions, rng))):
            if i >= 0:
                chosen.append((p.sample.sample_id, rewards.descriptions[b][i], b))
    return [(sid, d, step_seed(seed, step, SALT_SYNTHESIS_JOBS + b) % 2**31) for sid, d, b in chosen]


def synthesize(host, result: RolloutResult, scored: Scored, config, step: int, chrono) -> list[str]:
    """Submit this step's jobs (timed as synthesis); in sync mode wait for them (timed as waiting). Returns the
    ids of the jobs the session accepted."""
    if host.session is None:
        return []
    with chrono("synthesis"):
        jobs = synthesis_jobs(result.prepared, scored.rewards, descriptions=config.synthesis.descriptions,
                              fixed=host.fixed_descriptions, seed=config.seed, step=step)
        ids = host.session.submit(jobs, step)
    if config.synthesis.mode == "sync":
        with chrono("waiting"):
            host.session.wait(ids, step)
    return ids


def push_weights(engine: RolloutEngine, params, version: int) -> None:
    """The engine samples with `params` from now on; its responses report `version`."""
    engine.update_weights(params, version)


def step_metrics(result: RolloutResult, scored: Scored, update: dict, host, *, lr: float, use_diversity: bool,
                 times: dict[str, float]) -> dict[str, float]:
    """The step's line of metrics.jsonl (None values dropped). Plots and tests read these keys."""
    r, update = scored.rewards, dict(update)
    metrics = {
        "epoch": host.pool.epoch, "lr": lr,
        "reward/accuracy": r.accuracy.mean(), "reward/format": r.format.mean(),
        "reward/diversity": r.diversity.mean(), "reward/total": r.total.mean(),
        "diversity/V_batch": r.v.mean(),
        "diversity/V_global": host.smoother.v_g if use_diversity else None,
        "diversity/pred_score": float(np.nanmean(r.pred_score)) if np.isfinite(r.pred_score).any() else None,
        "entropy": update.pop("token_entropy"), **update, **result.metrics, **host.metrics(), **times,
    }
    return {k: v for k, v in metrics.items() if v is not None}
