"""The jitted GRPO step: exact micro-batch accumulation, sharded == single device, frozen groups, KL, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from hf_reference import CONFIGS, random_images, token_batch, vision_batch
from syngrpo_jax.grpo import train_step as ts
from syngrpo_jax.grpo.advantages import group_advantages
from syngrpo_jax.grpo.batch import build_train_batch
from syngrpo_jax.grpo.optimizer import make_optimizer
from syngrpo_jax.models import qwen2_5_vl
from syngrpo_jax.parallel import sharding
from syngrpo_jax.parallel.mesh import make_mesh
from syngrpo_jax.rollout.base import RolloutRequest

CONFIG = CONFIGS["tied_gqa2"]
G = 2


@pytest.fixture(scope="module")
def setup():
    model = qwen2_5_vl.init_random(CONFIG, seed=5)
    graphdef, state = nnx.split(model)
    imgs = random_images([(112, 112), (84, 150), (56, 84), (84, 84)], seed=5)
    requests = []
    for k, img in enumerate(imgs):
        pv, grid = vision_batch([img])
        ids, _, _ = token_batch(CONFIG, grid, [[0]], seed=20 + k)
        requests.append(RolloutRequest(ids[0], pv, grid))
    rng = np.random.default_rng(0)
    responses = [[rng.integers(7, 128, size=int(rng.integers(3, 11))) for _ in range(G)] for _ in requests]
    old = [[-np.abs(rng.normal(size=len(r))).astype(np.float32) for r in g] for g in responses]
    rewards = rng.uniform(size=len(requests) * G).astype(np.float32)
    adv = np.asarray(group_advantages(jnp.asarray(rewards), G))
    return graphdef, nnx.to_pure_dict(state), requests, responses, old, adv


def _batch(setup, m):
    _, _, requests, responses, old, adv = setup
    return build_train_batch(CONFIG, requests, responses, adv, micro_batches=m, old_logp=old)


def test_four_micro_batches_equal_one_full_batch(setup):
    graphdef, params = setup[:2]
    cfg = ts.LossConfig(clip_low=0.2, clip_high=0.28, logprob_chunk=4)
    grads = jax.jit(lambda p, b: ts.grad_and_metrics(graphdef, cfg, p, None, b, jax.random.key(0)))
    g1, d1, m1, _ = grads(params, _batch(setup, 1))
    g4, d4, m4, _ = grads(params, _batch(setup, 4))
    assert float(d1) == float(d4) > 0
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g4)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(g1)) > 1e-3  # gradients are not trivially zero
    for k in m1:
        np.testing.assert_allclose(m1[k].value, m4[k].value, rtol=1e-6, atol=1e-7)


def test_sharded_step_equals_single_device(setup):
    graphdef, params = setup[:2]
    cfg = ts.LossConfig(logprob_chunk=4)
    tx = optax.sgd(0.05)  # SGD: the update is linear in the gradient, so the comparison is not sign-amplified
    batch = _batch(setup, 2)
    single = ts.make_train_step(graphdef, tx, cfg)
    p1, _, m1 = single(jax.tree.map(jnp.copy, params), tx.init(params), None, batch, jax.random.key(1))

    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    model = qwen2_5_vl.init_random(CONFIG, seed=5, mesh=mesh)
    graphdef_m, state_m = nnx.split(model)
    params_m = nnx.to_pure_dict(state_m)
    param_sh = nnx.to_pure_dict(sharding.state_shardings(nnx.state(model), mesh))
    opt_sh = ts.optimizer_shardings(tx, params_m, param_sh, mesh)
    opt_state = jax.jit(tx.init, out_shardings=opt_sh)(params_m)
    step = ts.make_train_step(graphdef_m, tx, cfg, mesh=mesh, param_shardings=param_sh, opt_shardings=opt_sh)
    placed = jax.device_put(batch, ts.batch_shardings(batch, mesh))
    p8, _, m8 = step(params_m, opt_state, None, placed, jax.random.key(1))

    q = p8["text"]["layers"]["q_kernel"]
    assert len(q.sharding.device_set) == 8 and q.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor")
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-6)
    for k in m1:
        np.testing.assert_allclose(float(m8[k]), float(m1[k]), rtol=1e-5, atol=1e-6)


def test_frozen_vision_and_kl_to_reference(setup):
    graphdef, params = setup[:2]
    cfg = ts.LossConfig(kl_coef=0.1, entropy_adv_alpha=0.4, entropy_adv_kappa=2.0, logprob_chunk=4)
    tx = make_optimizer(learning_rate=1e-2, total_steps=10, frozen=("vision",))
    step = ts.make_train_step(graphdef, tx, cfg)
    ref = jax.tree.map(jnp.copy, params)
    new, opt, metrics = step(jax.tree.map(jnp.copy, params), tx.init(params), ref, _batch(setup, 2),
                             jax.random.key(2))
    assert float(metrics["kl_ref"]) == 0.0  # the policy equals the reference before the update
    for a, b in zip(jax.tree.leaves(params["vision"]), jax.tree.leaves(new["vision"])):
        np.testing.assert_array_equal(a, b)
    changed = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params["text"]), jax.tree.leaves(new["text"]))]
    assert all(changed)
    _, _, metrics = step(new, opt, ref, _batch(setup, 2), jax.random.key(3))
    assert float(metrics["kl_ref"]) > 0 and np.isfinite(float(metrics["loss"]))


@pytest.mark.parametrize("kwargs,message", [
    (dict(agg="token-median"), "agg"),
    (dict(kl_estimator="k9"), "kl_estimator"),
    (dict(clip_low=1.2), "clip_low"),
    (dict(clip_high=-0.1), "clip_high"),
    (dict(dual_clip=0.5), "dual_clip"),
    (dict(cov_mode="entropy_cov"), "cov_mode"),
    (dict(entropy_adv_alpha=0.1, entropy_adv_kappa=0.5), "entropy_adv"),
    (dict(temperature=0.0), "temperature"),
])
def test_bad_loss_config_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ts.LossConfig(**kwargs).validate()


def test_bad_batch_layout_is_named(setup):
    _, _, requests, responses, old, adv = setup
    with pytest.raises(ValueError, match="micro_batches=3"):
        build_train_batch(CONFIG, requests, responses, adv, micro_batches=3)
    with pytest.raises(ValueError, match="advantages has 5 entries"):
        build_train_batch(CONFIG, requests, responses, adv[:5])
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(jnp.zeros(6), 4)
    with pytest.raises(ValueError, match="optim.schedule='step'"):
        make_optimizer(learning_rate=1e-6, total_steps=10, schedule="step")


def test_bfloat16_step_returns_the_state_it_was_given(setup):
    """Parameters and optimizer state come back with the dtypes they went in with (else the second step
    compiles again, and the Adam moments silently double in size)."""
    graphdef, params = setup[:2]
    params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    tx = make_optimizer(learning_rate=1e-3, total_steps=10)
    opt = tx.init(params)
    step = ts.make_train_step(graphdef, tx, ts.LossConfig())
    new_params, new_opt, _ = jax.eval_shape(step, params, opt, None, _batch(setup, 1), jax.random.key(0))
    for before, after in ((params, new_params), (opt, new_opt)):
        assert jax.tree.structure(before) == jax.tree.structure(after)
        for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
            assert (a.dtype, a.shape) == (b.dtype, b.shape)
