"""The rollout/trainer mismatch metrics against formulas written here, and the train step's use of them."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from hf_reference import CONFIGS, random_images, token_batch, vision_batch
from syngrpo_jax.grpo import train_step as ts
from syngrpo_jax.grpo.batch import build_train_batch
from syngrpo_jax.grpo.rollout_mismatch import rollout_mismatch
from syngrpo_jax.models import qwen2_5_vl
from syngrpo_jax.rollout.base import RolloutRequest


def test_metrics_match_formula():
    rng = np.random.default_rng(0)
    train, rollout = rng.normal(size=(3, 7)) - 2, rng.normal(size=(3, 7)) - 2
    mask = (np.arange(7)[None] < np.array([[7], [2], [0]])).astype(np.float32)
    rollout[2] = 1e3  # garbage under the mask must not count
    got = {k: float(v) for k, v in rollout_mismatch(jnp.asarray(train), jnp.asarray(rollout), mask).items()}
    valid = mask > 0
    d = (train - rollout)[valid]
    assert got["rollout/logp_diff_mean"] == pytest.approx(np.abs(d).mean(), rel=1e-6)
    assert got["rollout/logp_diff_max"] == pytest.approx(np.abs(d).max(), rel=1e-6)
    # k3 = r - 1 - log r with r = p_train / p_rollout: KL(rollout || train) from the rollout's samples
    assert got["rollout/kl_k3"] == pytest.approx(np.mean(np.exp(d) - 1 - d), rel=1e-5)
    same = rollout_mismatch(jnp.asarray(train), jnp.asarray(train), mask)
    assert all(float(v) == 0.0 for v in same.values())
    empty = rollout_mismatch(jnp.asarray(train), jnp.asarray(rollout), np.zeros_like(mask))
    assert all(float(v) == 0.0 for v in empty.values())
    # |d| ~ 1e-6 (vLLM vs the trainer in float32): k3 ~ d^2 / 2 is below float32's rounding of e^d - 1 - d, which
    # makes some tokens' k3 negative (down to -6e-8 here); the metric stays >= 0
    d = jnp.asarray(rng.normal(scale=3e-6, size=(10, 100)), jnp.float32)
    tiny = rollout_mismatch(d, jnp.zeros_like(d), np.ones(d.shape, np.float32))
    assert 0.0 <= float(tiny["rollout/kl_k3"]) < 1e-8


CONFIG = CONFIGS["tied_gqa2"]


@pytest.fixture(scope="module")
def setup():
    model = qwen2_5_vl.init_random(CONFIG, seed=3)
    graphdef, state = nnx.split(model)
    requests = []
    for k, img in enumerate(random_images([(56, 84), (84, 84)], seed=3)):
        pv, grid = vision_batch([img])
        ids, _, _ = token_batch(CONFIG, grid, [[0]], seed=40 + k)
        requests.append(RolloutRequest(ids[0], pv, grid))
    rng = np.random.default_rng(1)
    responses = [[rng.integers(7, 128, size=int(rng.integers(3, 9))) for _ in range(2)] for _ in requests]
    batch = build_train_batch(CONFIG, requests, responses, np.asarray([1.0, -1.0, 0.5, -0.5], np.float32),
                              micro_batches=2)
    params = nnx.to_pure_dict(state)
    logp = np.asarray(ts.make_logprob_fn(graphdef, ts.LossConfig(logprob_chunk=4))(params, batch))
    return graphdef, params, batch, logp


def _step(setup, cfg, old_logp):
    graphdef, params, batch, _ = setup
    tx = optax.sgd(0.1)
    step = ts.make_train_step(graphdef, tx, cfg)
    return step(jax.tree.map(jnp.copy, params), tx.init(params), None, batch._replace(old_logp=old_logp),
                jax.random.key(0))


def test_the_step_compares_the_rollouts_logprobs_with_its_own_before_the_update(setup):
    """The metrics use the trainer's log-probs at the parameters the step starts from (an independent forward
    here), against the batch's old_logp (the rollout's)."""
    _, _, batch, logp = setup
    valid = batch.response_mask > 0
    shift = np.where(valid, np.random.default_rng(2).normal(scale=0.1, size=logp.shape), 0.0).astype(np.float32)
    _, _, metrics = _step(setup, ts.LossConfig(logprob_chunk=4), logp - shift)
    d = shift[valid]
    assert float(metrics["rollout/logp_diff_mean"]) == pytest.approx(np.abs(d).mean(), abs=2e-6)
    assert float(metrics["rollout/logp_diff_max"]) == pytest.approx(np.abs(d).max(), abs=2e-6)
    assert float(metrics["rollout/kl_k3"]) == pytest.approx(np.mean(np.exp(d) - 1 - d), abs=1e-6)
    assert float(metrics["ratio_mean"]) == pytest.approx(np.exp(d).mean(), abs=1e-5)  # r = pi / pi_rollout


def test_recompute_takes_the_ratio_against_the_trainer_and_tis_weighs_by_the_rollout(setup):
    """old_logp_source="recompute": r = 1 at every token whatever the rollout's log-probs, and the update equals
    the one with the trainer's own log-probs as old_logp; with tis_cap the weights are min(p_train / p_rollout,
    cap)."""
    _, _, batch, logp = setup
    valid = batch.response_mask > 0
    off = np.where(valid, logp - 0.3 * np.sign(np.arange(logp.size).reshape(logp.shape) % 2 - 0.5), 0.0)
    cfg = ts.LossConfig(logprob_chunk=4, old_logp_source="recompute")
    recomputed, _, m = _step(setup, cfg, off.astype(np.float32))
    assert float(m["ratio_mean"]) == pytest.approx(1.0, abs=1e-7) and float(m["clip_frac_low"]) == 0
    own, _, _ = _step(setup, ts.LossConfig(logprob_chunk=4), logp)
    for a, b in zip(jax.tree.leaves(recomputed), jax.tree.leaves(own)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)
    cfg = ts.LossConfig(logprob_chunk=4, old_logp_source="recompute", tis_cap=1.2)
    _, _, m = _step(setup, cfg, off.astype(np.float32))
    w = np.minimum(np.exp(logp - off), 1.2)[valid]  # half the tokens 1.2 (e^0.3 capped), half e^-0.3
    assert float(m["tis_weight_mean"]) == pytest.approx(w.mean(), abs=1e-5)
    assert float(m["tis_capped_frac"]) == pytest.approx((w >= 1.2).mean())
    assert 0 < float(m["tis_capped_frac"]) < 1
