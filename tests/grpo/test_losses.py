"""Policy loss, KL estimators, aggregations, Clip-Cov / KL-Cov and token entropy against formulas written out in
numpy here (values and derivatives), independently of the implementation."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from syngrpo_jax.grpo import entropy as ent_lib
from syngrpo_jax.grpo import cov_selection, loss_types, losses

AGGS = [
    ("token-mean", None),
    ("seq-mean-token-mean", None),
    ("seq-mean-token-sum", None),
    ("seq-mean-token-sum", 16.0),  # Dr.GRPO: a constant normaliser
]


# ---------------------------------------------------------------------------------------------------------------
# The reference: loss = sum_it c_it l_it, with l_it and dl_it/dlogp_it written out per variant
# ---------------------------------------------------------------------------------------------------------------


def np_agg_coeffs(mask, agg, norm_constant=None):
    """c_it such that the aggregated loss is sum_it c_it l_it."""
    m = (np.asarray(mask) != 0).astype(np.float64)
    if agg == "token-mean":
        return m / max(m.sum(), 1.0)
    n_tok = m.sum(1)
    rows = n_tok > 0
    n_rows = max(rows.sum(), 1)
    if agg == "seq-mean-token-mean":
        return np.where(rows[:, None], m / np.maximum(n_tok, 1)[:, None], 0.0) / n_rows
    assert agg == "seq-mean-token-sum"
    return m / (norm_constant or 1.0) / n_rows


def np_surrogate(lp, old, adv, clip_low, clip_high, dual_clip):
    """(value, d value / d lp) of the per-token clipped surrogate."""
    r = np.exp(lp - old)
    rc = np.clip(r, 1 - clip_low, 1 + clip_high)
    value = np.maximum(-adv * r, -adv * rc)
    grad = -adv * r
    grad = np.where(((adv < 0) & (r < 1 - clip_low)) | ((adv > 0) & (r > 1 + clip_high)), 0.0, grad)
    if dual_clip is not None:
        bind = (adv < 0) & (np.maximum(r, rc) > dual_clip)
        value = np.where(bind, dual_clip * np.abs(adv), value)
        grad = np.where(bind, 0.0, grad)
    return value, grad


def np_kl(lp, ref, estimator, straight_through):
    d = lp - ref
    if estimator == "k1":
        value, grad = d, np.ones_like(d)
    elif estimator == "k2":
        value, grad = 0.5 * d**2, d
    else:
        value, grad = np.exp(-d) + d - 1.0, 1.0 - np.exp(-d)
    return value, (d if straight_through else grad)


def np_policy_loss(lp, old, adv, mask, *, clip_low=0.2, clip_high=0.2, dual_clip=None, agg="token-mean",
                   norm_constant=None, ref=None, kl_coef=0.0, kl_estimator="k3", kl_st=False, ent=None,
                   entropy_coef=0.0):
    """(loss, dloss/dlp, dloss/dentropy) in float64."""
    lp, old = np.asarray(lp, np.float64), np.asarray(old, np.float64)
    adv = np.asarray(adv, np.float64)
    adv = np.broadcast_to(adv[:, None], lp.shape) if adv.ndim == 1 else adv
    c = np_agg_coeffs(mask, agg, norm_constant)
    value, grad = np_surrogate(lp, old, adv, clip_low, clip_high, dual_clip)
    if ref is not None and kl_coef:
        kv, kg = np_kl(lp, np.asarray(ref, np.float64), kl_estimator, kl_st)
        value, grad = value + kl_coef * kv, grad + kl_coef * kg
    grad_ent = None
    if ent is not None:
        value = value - entropy_coef * np.asarray(ent, np.float64)
        grad_ent = -entropy_coef * c
    return np.sum(c * value), c * grad, grad_ent


def make_batch(seed, n=8, t=12, per_token_adv=False, empty_row=True):
    rng = np.random.default_rng(seed)
    lp = -rng.uniform(0.05, 3.0, size=(n, t))
    old = lp + rng.normal(scale=0.3, size=(n, t))  # ratios spread well past 1 +- 0.2 on both sides
    adv = rng.normal(size=(n, t) if per_token_adv else (n,))
    lengths = rng.integers(1, t + 1, size=n)
    lengths[0] = t
    if empty_row:
        lengths[-1] = 0  # a padding row
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)
    ref = lp + rng.normal(scale=0.5, size=(n, t))
    ent = rng.uniform(0.0, 3.0, size=(n, t))
    return dict(lp=lp, old=old, adv=adv, mask=mask, ref=ref, ent=ent)


def jax_loss_and_grads(b, dtype, **kw):
    """(loss, dloss/dlp, dloss/dentropy) from policy_loss; kw in policy_loss's names."""
    cast = lambda x: jnp.asarray(x, dtype)  # noqa: E731

    def f(lp, ent):
        out = losses.policy_loss(
            lp, cast(b["old"]), cast(b["adv"]), jnp.asarray(b["mask"]),
            ref_logp=cast(b["ref"]) if kw.get("kl_coef") else None,
            entropy=ent if "entropy_coef" in kw else None, **kw
        )
        return out.loss, out

    (loss, out), (g_lp, g_ent) = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(cast(b["lp"]), cast(b["ent"]))
    return np.asarray(loss), np.asarray(g_lp), np.asarray(g_ent), out


def np_kwargs(b, **kw):
    return dict(
        clip_low=kw.get("clip_low", 0.2), clip_high=kw.get("clip_high", 0.2), dual_clip=kw.get("dual_clip"),
        agg=kw.get("agg", "token-mean"), norm_constant=kw.get("norm_constant"), ref=b["ref"],
        kl_coef=kw.get("kl_coef", 0.0), kl_estimator=kw.get("kl_estimator", "k3"),
        kl_st=kw.get("kl_straight_through", False), ent=b["ent"] if "entropy_coef" in kw else None,
        entropy_coef=kw.get("entropy_coef", 0.0),
    )


# ---------------------------------------------------------------------------------------------------------------
# Values and gradients of every variant
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("agg,norm_constant", AGGS)
@pytest.mark.parametrize("clip", [dict(), dict(clip_high=0.28), dict(clip_low=0.1, clip_high=0.3, dual_clip=1.3)])
@pytest.mark.parametrize("per_token_adv", [False, True])
def test_surrogate_and_aggregations_match_formula(agg, norm_constant, clip, per_token_adv):
    b = make_batch(1, per_token_adv=per_token_adv)
    kw = dict(agg=agg, norm_constant=norm_constant, **clip)
    with jax.enable_x64(True):
        loss, g_lp, _, _ = jax_loss_and_grads(b, jnp.float64, **kw)
    want_loss, want_g, _ = np_policy_loss(b["lp"], b["old"], b["adv"], b["mask"], **np_kwargs(b, **kw))
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g_lp, want_g, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
@pytest.mark.parametrize("straight_through", [False, True])
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_kl_to_reference_matches_formula(estimator, straight_through, agg):
    b = make_batch(2)
    kw = dict(agg=agg, kl_coef=0.3, kl_estimator=estimator, kl_straight_through=straight_through)
    with jax.enable_x64(True):
        loss, g_lp, _, out = jax_loss_and_grads(b, jnp.float64, **kw)
        kl_metric = float(out.metrics["kl_ref"].value)
    want_loss, want_g, _ = np_policy_loss(b["lp"], b["old"], b["adv"], b["mask"], **np_kwargs(b, **kw))
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(g_lp, want_g, rtol=1e-10, atol=1e-14)
    # The metric is the token mean of the estimator's value (never of the straight-through surrogate).
    kv, _ = np_kl(b["lp"], b["ref"], estimator, straight_through)
    m = b["mask"] != 0
    np.testing.assert_allclose(kl_metric, kv[m].mean(), rtol=1e-10)


def test_kl_estimators_standalone():
    rng = np.random.default_rng(3)
    lp, ref = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    with jax.enable_x64(True):
        for name in ("k1", "k2", "k3"):
            for st in (False, True):
                val = losses.kl_divergence(jnp.asarray(lp), jnp.asarray(ref), name, straight_through=st)
                grad = jax.grad(lambda x: losses.kl_divergence(x, jnp.asarray(ref), name, straight_through=st).sum())(
                    jnp.asarray(lp))
                want_v, want_g = np_kl(lp, ref, name, st)
                np.testing.assert_allclose(np.asarray(val), want_v, rtol=1e-12, atol=1e-15)
                np.testing.assert_allclose(np.asarray(grad), want_g, rtol=1e-12, atol=1e-15)
    assert set(losses.KL_ESTIMATORS) == {"k1", "k2", "k3"}


def test_kl_skipped_when_coef_zero_or_no_reference():
    b = make_batch(4)
    args = (jnp.asarray(b["lp"]), jnp.asarray(b["old"]), jnp.asarray(b["adv"]), jnp.asarray(b["mask"]))
    plain = losses.policy_loss(*args)
    zero = losses.policy_loss(*args, ref_logp=jnp.asarray(b["ref"]), kl_coef=0.0)
    none = losses.policy_loss(*args, ref_logp=None, kl_coef=0.5)
    for out in (zero, none):
        assert float(out.loss) == float(plain.loss)
        assert "kl_ref" not in out.metrics
    # A reference that would poison the loss with NaN proves it is not even read when the coefficient is 0.
    nan_ref = losses.policy_loss(*args, ref_logp=jnp.full(b["lp"].shape, jnp.nan), kl_coef=0.0)
    assert float(nan_ref.loss) == float(plain.loss)


@pytest.mark.parametrize("agg,norm_constant", AGGS)
def test_entropy_bonus_matches_formula(agg, norm_constant):
    b = make_batch(5)
    kw = dict(agg=agg, norm_constant=norm_constant, entropy_coef=0.05)
    with jax.enable_x64(True):
        loss, g_lp, g_ent, out = jax_loss_and_grads(b, jnp.float64, **kw)
        ent_metric, pg_metric = float(out.metrics["entropy"].value), float(out.metrics["pg_loss"].value)
    want_loss, want_g, want_g_ent = np_policy_loss(b["lp"], b["old"], b["adv"], b["mask"], **np_kwargs(b, **kw))
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(g_lp, want_g, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g_ent, want_g_ent, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ent_metric, b["ent"][b["mask"] != 0].mean(), rtol=1e-10)
    # loss = agg(surrogate) - coef * agg(entropy), exactly.
    np.testing.assert_allclose(
        loss, pg_metric - 0.05 * np.sum(np_agg_coeffs(b["mask"], agg, norm_constant) * b["ent"]),
        rtol=1e-12,
    )


def test_everything_on_matches_central_differences():
    """All terms at once (Clip-Higher, dual clip, k3 with straight-through, entropy, seq-mean-token-mean) against
    central finite differences of the loss in float64."""
    b = make_batch(6, per_token_adv=True)
    kw = dict(clip_low=0.2, clip_high=0.28, dual_clip=2.0, agg="seq-mean-token-mean", kl_coef=0.2,
              kl_estimator="k3", entropy_coef=0.01)
    with jax.enable_x64(True):
        consts = {k: jnp.asarray(v, jnp.float64) for k, v in b.items()}
        f = jax.jit(lambda lp: losses.policy_loss(
            lp, consts["old"], consts["adv"], consts["mask"], ref_logp=consts["ref"], entropy=consts["ent"], **kw
        ).loss)
        grad = np.asarray(jax.grad(f)(consts["lp"]))
        h = 1e-6
        fd = np.zeros_like(b["lp"])
        for idx in np.ndindex(*b["lp"].shape):
            e = np.zeros_like(b["lp"])
            e[idx] = h
            fd[idx] = (float(f(jnp.asarray(b["lp"] + e))) - float(f(jnp.asarray(b["lp"] - e)))) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    # The draw exercises the clipped and the unclipped branches (the KL term keeps every gradient nonzero).
    r, adv, m = np.exp(b["lp"] - b["old"]), b["adv"], b["mask"] != 0
    clipped = ((adv < 0) & (r < 0.8)) | ((adv > 0) & (r > 1.28)) | ((adv < 0) & (r > 2.0))
    assert np.any(clipped & m) and np.any(~clipped & m)


def test_float32_inputs_give_float32_and_match():
    b = make_batch(7)
    loss, g_lp, _, out = jax_loss_and_grads(b, jnp.float32, clip_high=0.28)
    assert loss.dtype == np.float32 and g_lp.dtype == np.float32
    want_loss, want_g, _ = np_policy_loss(b["lp"].astype(np.float32), b["old"].astype(np.float32), b["adv"],
                                          b["mask"], clip_high=0.28)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(g_lp, want_g, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------------------------------------------------
# Exact accumulation over micro-batches
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("agg,norm_constant", AGGS)
def test_micro_batches_accumulate_exactly(agg, norm_constant):
    b = make_batch(8)  # variable lengths and one padding row
    kw = dict(agg=agg, norm_constant=norm_constant, clip_high=0.28, dual_clip=3.0, kl_coef=0.1,
              kl_estimator="k3", kl_straight_through=True, entropy_coef=0.01)
    f32 = {k: jnp.asarray(v, jnp.float32) for k, v in b.items()}

    def run(sl, lp):
        return losses.policy_loss(lp, f32["old"][sl], f32["adv"][sl], f32["mask"][sl], ref_logp=f32["ref"][sl],
                                  entropy=f32["ent"][sl], **kw)

    full_grad, full = jax.grad(lambda lp: (run(slice(None), lp).loss, run(slice(None), lp)), has_aux=True)(f32["lp"])

    parts, part_grads = [], []
    for k in range(4):
        sl = slice(2 * k, 2 * k + 2)
        # Differentiate each micro-batch's loss_sum; the denominator does not depend on the parameters.
        g, part = jax.grad(lambda lp: (run(sl, lp).loss_sum, run(sl, lp)), has_aux=True)(f32["lp"][sl])
        parts.append(part)
        part_grads.append(g)
    acc = loss_types.combine(parts)
    acc_grad = jnp.concatenate(part_grads) / acc.denominator

    np.testing.assert_allclose(float(acc.loss), float(full.loss), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(acc_grad), np.asarray(full_grad), rtol=1e-6, atol=1e-8)
    assert float(acc.denominator) == float(full.denominator)
    for name, metric in full.metrics.items():
        np.testing.assert_allclose(float(acc.metrics[name].value), float(metric.value), rtol=1e-6, atol=1e-7,
                                   err_msg=name)
    # Averaging per-micro-batch means instead is not the same thing (so the check above can fail).
    naive = np.mean([float(p.loss) for p in parts])
    assert abs(naive - float(full.loss)) > 1e-4


# ---------------------------------------------------------------------------------------------------------------
# Clip-Higher and dual clip change the right boundary
# ---------------------------------------------------------------------------------------------------------------


def _grad_one_token(ratio, adv, **kw):
    lp = jnp.asarray([[np.log(ratio)]], jnp.float32)
    f = lambda x: losses.policy_loss(x, jnp.zeros((1, 1)), jnp.asarray([adv]), jnp.ones((1, 1)), **kw)  # noqa
    out = f(lp)
    return float(out.loss), float(jax.grad(lambda x: f(x).loss)(lp)[0, 0]), out.metrics


def test_clip_higher_moves_only_the_upper_boundary():
    # A > 0, r = 1.25: clipped by the symmetric 0.2 (no gradient), not by clip_high = 0.28.
    loss_sym, g_sym, m_sym = _grad_one_token(1.25, 1.0, clip_low=0.2, clip_high=0.2)
    loss_hi, g_hi, m_hi = _grad_one_token(1.25, 1.0, clip_low=0.2, clip_high=0.28)
    assert g_sym == 0.0 and np.isclose(loss_sym, -1.2)
    assert np.isclose(g_hi, -1.25) and np.isclose(loss_hi, -1.25)
    assert float(m_sym["clip_frac_high"].value) == 1.0 and float(m_hi["clip_frac_high"].value) == 0.0
    # A > 0, r = 1.3: clipped in both, at its own boundary.
    loss_hi2, g_hi2, _ = _grad_one_token(1.3, 1.0, clip_low=0.2, clip_high=0.28)
    assert g_hi2 == 0.0 and np.isclose(loss_hi2, -1.28)
    # A < 0, r = 0.75: the lower boundary is the same in both.
    for ch in (0.2, 0.28):
        loss, g, m = _grad_one_token(0.75, -1.0, clip_low=0.2, clip_high=ch)
        assert g == 0.0 and np.isclose(loss, 0.8) and float(m["clip_frac_low"].value) == 1.0


def test_dual_clip_bounds_negative_advantage_losses():
    # A < 0 and a ratio that has run away: plain PPO loss grows with r, dual clip caps it at c |A|, no gradient.
    loss_plain, g_plain, _ = _grad_one_token(10.0, -2.0)
    loss_dual, g_dual, m = _grad_one_token(10.0, -2.0, dual_clip=3.0)
    assert np.isclose(loss_plain, 20.0) and np.isclose(g_plain, 20.0)
    assert np.isclose(loss_dual, 6.0) and g_dual == 0.0 and float(m["dual_clip_frac"].value) == 1.0
    # Below the cap, or with A > 0, dual clip changes nothing.
    assert _grad_one_token(2.0, -2.0, dual_clip=3.0)[:2] == _grad_one_token(2.0, -2.0)[:2]
    assert _grad_one_token(10.0, 2.0, dual_clip=3.0)[:2] == _grad_one_token(10.0, 2.0)[:2]


# ---------------------------------------------------------------------------------------------------------------
# Clip-Cov and KL-Cov
# ---------------------------------------------------------------------------------------------------------------


def np_cov(lp, adv, mask):
    m = np.asarray(mask) != 0
    adv = np.broadcast_to(adv[:, None], lp.shape) if adv.ndim == 1 else adv
    return np.where(m, (lp - lp[m].mean()) * (adv - adv[m].mean()), 0.0)


def np_count(n_valid, fraction):
    return max(1, int(np.floor(np.float32(n_valid) * np.float32(fraction))))


def cov_batch(seed):
    rng = np.random.default_rng(seed)
    n, t = 8, 12
    lp = -rng.uniform(0.0, 4.0, size=(n, t))
    adv = rng.choice([-2.0, 2.0], size=n)
    mask = np.ones((n, t), np.float32)
    mask[-1, 10:] = 0
    old = lp + rng.normal(scale=0.02, size=(n, t))  # ratios near 1: nothing clipped ...
    old[:, :2] = lp[:, :2] + np.where(adv[:, None] > 0, -0.5, 0.5)  # ... except the first two tokens of each row
    return lp, old, adv, mask


def test_token_covariance_matches_formula():
    lp, _, adv, mask = cov_batch(0)
    got = cov_selection.token_covariance(jnp.asarray(lp, jnp.float32), jnp.broadcast_to(jnp.asarray(adv)[:, None], lp.shape),
                                  jnp.asarray(mask))
    np.testing.assert_allclose(np.asarray(got), np_cov(lp, adv, mask), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_valid,fraction", [(128, 2e-4), (1000, 2e-3), (500, 2e-3), (120, 0.05), (0, 0.1)])
def test_selection_count(n_valid, fraction):
    assert int(cov_selection.selection_count(jnp.asarray(n_valid), fraction)) == np_count(n_valid, fraction)


def test_clip_cov_detaches_exactly_the_selected_tokens():
    lp, old, adv, mask = cov_batch(1)
    ratio_frac = 0.05
    m = mask != 0
    cov = np_cov(lp, adv, mask)
    r = np.exp(lp - old)
    clipped = ((adv[:, None] < 0) & (r < 0.8)) | ((adv[:, None] > 0) & (r > 1.2))
    candidates = m & ~clipped & (cov > 1.0) & (cov < 5.0)
    n_keep = min(np_count(m.sum(), ratio_frac), candidates.sum())
    assert candidates.sum() > 2 * n_keep and (clipped & m & (cov > 1) & (cov < 5)).any()  # a meaningful draw

    args = [jnp.asarray(x, jnp.float32) for x in (old, adv, mask)]
    key = jax.random.key(7)
    plain = lambda x: losses.policy_loss(x, *args)  # noqa: E731
    cc = lambda x: losses.policy_loss(x, *args, cov_mode="clip_cov", clip_cov_ratio=ratio_frac, rng=key)  # noqa
    x = jnp.asarray(lp, jnp.float32)
    g_plain = np.asarray(jax.grad(lambda v: plain(v).loss)(x))
    g_cc = np.asarray(jax.grad(lambda v: cc(v).loss)(x))
    out = cc(x)

    detached = (g_cc == 0) & (g_plain != 0)
    assert detached.sum() == n_keep
    assert np.all(candidates[detached])
    np.testing.assert_array_equal(g_cc[~detached], g_plain[~detached])
    assert float(out.loss) == float(plain(x).loss)  # values kept, only gradients detached
    np.testing.assert_allclose(float(out.metrics["cov_selected_frac"].value), n_keep / m.sum(), rtol=1e-6)

    # The public selection with the same key is the same set; the key alone decides (deterministic).
    sel = cov_selection.clip_cov_select(jnp.asarray(cov, jnp.float32), jnp.asarray(mask), jnp.asarray(~clipped),
                                 ratio=ratio_frac, cov_low=1.0, cov_high=5.0, rng=key)
    np.testing.assert_array_equal(np.asarray(sel), detached)
    g_again = np.asarray(jax.grad(lambda v: cc(v).loss)(x))
    np.testing.assert_array_equal(g_again, g_cc)

    # Over many keys: always exactly n_keep candidates, never an ineligible token, and every candidate drawn.
    # (A jitted loop, not vmap: a vmapped threefry takes seconds to compile on CPU.)
    select = jax.jit(lambda k: cov_selection.clip_cov_select(
        jnp.asarray(cov, jnp.float32), jnp.asarray(mask), jnp.asarray(~clipped), ratio=ratio_frac, cov_low=1.0,
        cov_high=5.0, rng=k))
    draws = np.stack([np.asarray(select(jax.random.key(seed))) for seed in range(200)])
    assert np.all(draws.sum(axis=(1, 2)) == n_keep)
    assert not np.any(draws & ~candidates)
    np.testing.assert_array_equal(draws.any(axis=0), candidates)


def test_clip_cov_keeps_all_candidates_when_fewer_than_the_budget():
    cov = jnp.asarray([[0.5, 2.0, 3.0, 6.0], [1.5, 0.0, 0.0, 0.0]])
    mask = jnp.ones((2, 4))
    sel = cov_selection.clip_cov_select(cov, mask, jnp.ones((2, 4), bool), ratio=1.0, cov_low=1.0, cov_high=5.0,
                                 rng=jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(sel), [[False, True, True, False], [True, False, False, False]])


@pytest.mark.parametrize("agg,norm_constant", AGGS[:2])
def test_kl_cov_penalises_exactly_the_top_k_tokens(agg, norm_constant):
    lp, old, adv, mask = cov_batch(2)
    old = lp + np.random.default_rng(3).normal(scale=0.05, size=lp.shape)  # no PPO clipping
    fraction, coef = 0.05, 1.5
    m = mask != 0
    cov = np_cov(lp, adv, mask)
    k = np_count(m.sum(), fraction)
    order = np.argsort(np.where(m, -cov, np.inf).reshape(-1), kind="stable")
    top = np.zeros(lp.size, bool)
    top[order[:k]] = True
    top = top.reshape(lp.shape)

    with jax.enable_x64(True):
        args = [jnp.asarray(x, jnp.float64) for x in (old, adv, mask)]
        f = lambda x, **kw: losses.policy_loss(x, *args, agg=agg, norm_constant=norm_constant, **kw)  # noqa
        x = jnp.asarray(lp, jnp.float64)
        plain, klc = f(x), f(x, cov_mode="kl_cov", kl_cov_ratio=fraction, kl_cov_coef=coef)
        g_plain = np.asarray(jax.grad(lambda v: f(v).loss)(x))
        g_klc = np.asarray(jax.grad(lambda v: f(v, cov_mode="kl_cov", kl_cov_ratio=fraction, kl_cov_coef=coef).loss)(x))
        sel = np.asarray(cov_selection.kl_cov_select(jnp.asarray(cov), jnp.asarray(mask), ratio=fraction))
        loss_diff = float(klc.loss) - float(plain.loss)
        selected_frac = float(klc.metrics["cov_selected_frac"].value)

    c = np_agg_coeffs(mask, agg, norm_constant)
    d = lp - old
    np.testing.assert_array_equal(sel, top)
    np.testing.assert_allclose(loss_diff, coef * np.sum(c * np.abs(d) * top), rtol=1e-9)
    np.testing.assert_allclose(g_klc - g_plain, coef * np.sign(d) * c * top, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(selected_frac, k / m.sum(), rtol=1e-6)  # metrics are float32


def test_kl_cov_ties_and_padding():
    # Equal covariances: the earliest valid positions (row-major) win; padding is never selected.
    cov = jnp.full((2, 3), 1.0)
    mask = jnp.asarray([[0, 1, 1], [1, 1, 1]])
    sel = np.asarray(cov_selection.kl_cov_select(cov, mask, ratio=0.5))  # max(1, floor(5 * 0.5)) = 2
    np.testing.assert_array_equal(sel, [[False, True, True], [False, False, False]])
    assert not np.asarray(cov_selection.kl_cov_select(cov, jnp.zeros((2, 3)), ratio=0.5)).any()


# ---------------------------------------------------------------------------------------------------------------
# Robustness, jit, validation
# ---------------------------------------------------------------------------------------------------------------


def test_padding_garbage_and_empty_batches_stay_finite():
    b = make_batch(9)
    m = b["mask"] != 0
    lp = np.where(m, b["lp"], -np.inf)
    old = np.where(m, b["old"], np.nan)
    f = lambda x, mask: losses.policy_loss(x, jnp.asarray(old, jnp.float32), jnp.asarray(b["adv"], jnp.float32),  # noqa
                                           mask, ref_logp=jnp.asarray(old, jnp.float32), kl_coef=0.1,
                                           cov_mode="kl_cov").loss
    x = jnp.asarray(lp, jnp.float32)
    loss, grad = jax.value_and_grad(f)(x, jnp.asarray(b["mask"]))
    assert np.isfinite(float(loss)) and np.all(np.isfinite(np.asarray(grad)))
    assert np.all(np.asarray(grad)[~m] == 0.0)
    clean = np_policy_loss(np.where(m, b["lp"], 0), np.where(m, b["old"], 0), b["adv"], b["mask"],
                           ref=np.where(m, b["old"], 0), kl_coef=0.1)
    assert np.isfinite(clean[0])
    empty_loss, empty_grad = jax.value_and_grad(f)(x, jnp.zeros(lp.shape))
    assert float(empty_loss) == 0.0 and np.all(np.asarray(empty_grad) == 0.0)


def test_jit_with_static_config_and_traced_coefficients():
    b = make_batch(10)
    arrs = {k: jnp.asarray(v, jnp.float32) for k, v in b.items()}
    kw = dict(agg="seq-mean-token-mean", clip_high=0.28, kl_estimator="k2")

    def eager(kl_coef, entropy_coef):
        return losses.policy_loss(arrs["lp"], arrs["old"], arrs["adv"], arrs["mask"], ref_logp=arrs["ref"],
                                  entropy=arrs["ent"], kl_coef=kl_coef, entropy_coef=entropy_coef, **kw)

    jitted = jax.jit(functools.partial(losses.policy_loss, **kw))
    out = jitted(arrs["lp"], arrs["old"], arrs["adv"], arrs["mask"], ref_logp=arrs["ref"], entropy=arrs["ent"],
                 kl_coef=jnp.float32(0.1), entropy_coef=jnp.float32(0.02))  # traced: e.g. a schedule
    np.testing.assert_allclose(float(out.loss), float(eager(0.1, 0.02).loss), rtol=1e-6)
    assert set(out.metrics) >= {"pg_loss", "kl_ref", "entropy", "ratio_mean", "approx_kl_old", "clip_frac_low",
                                "clip_frac_high"}
    r = np.exp(b["lp"] - b["old"])[b["mask"] != 0]
    np.testing.assert_allclose(float(out.metrics["ratio_mean"].value), r.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(out.metrics["approx_kl_old"].value), np.mean(r - 1 - np.log(r)), rtol=1e-4)


GOOD = dict(lp=np.zeros((2, 3)), old=np.zeros((2, 3)), adv=np.zeros(2), mask=np.ones((2, 3)))


@pytest.mark.parametrize(
    "override,kwargs,match",
    [
        ({}, dict(agg="mean"), r"agg='mean' is unknown; known: \['seq-mean-token-mean', 'seq-mean-token-sum', "),
        ({}, dict(kl_estimator="k4"), r"kl_estimator='k4' is unknown; known: \['k1', 'k2', 'k3'\]"),
        ({}, dict(clip_low=1.0), r"clip_low must be in \[0, 1\), got 1.0"),
        ({}, dict(clip_low=-0.1), r"clip_low must be in \[0, 1\), got -0.1"),
        ({}, dict(clip_high=-0.2), r"clip_high must be >= 0, got -0.2"),
        ({}, dict(dual_clip=1.0), r"dual_clip must be None or > 1, got 1.0"),
        ({}, dict(dual_clip=0.5), r"dual_clip must be None or > 1, got 0.5"),
        ({}, dict(kl_coef=-0.1), r"kl_coef must be >= 0, got -0.1"),
        ({}, dict(kl_straight_through="yes"), r"kl_straight_through must be a bool, got 'yes'"),
        ({}, dict(norm_constant=10.0), r"norm_constant=10.0 only applies to agg='seq-mean-token-sum', "
                                       r"not agg='token-mean'"),
        ({}, dict(agg="seq-mean-token-sum", norm_constant=0.0), r"norm_constant must be a finite number > 0, got 0.0"),
        ({}, dict(cov_mode="cov"), r"cov_mode='cov' is unknown"),
        ({}, dict(cov_mode="clip_cov"), r"rng=None: cov_mode='clip_cov'"),
        ({}, dict(cov_mode="clip_cov", clip_cov_ratio=0.0, rng=jax.random.key(0)),
         r"clip_cov_ratio must be in \(0, 1\], got 0.0"),
        ({}, dict(cov_mode="clip_cov", clip_cov_lb=5.0, clip_cov_ub=1.0, rng=jax.random.key(0)),
         r"clip_cov_lb must be < clip_cov_ub, got clip_cov_lb=5.0, clip_cov_ub=1.0"),
        ({}, dict(cov_mode="kl_cov", kl_cov_ratio=1.5), r"kl_cov_ratio must be in \(0, 1\], got 1.5"),
        ({}, dict(cov_mode="kl_cov", kl_cov_coef=-1.0), r"kl_cov_coef must be >= 0, got -1.0"),
        (dict(lp=np.zeros(3)), {}, r"logp must be \[N, T\], got shape \(3,\)"),
        (dict(old=np.zeros((2, 4))), {}, r"old_logp must have the shape of logp \(2, 3\), got shape \(2, 4\)"),
        (dict(mask=np.ones((3, 3))), {}, r"mask must have the shape of logp \(2, 3\), got shape \(3, 3\)"),
        (dict(adv=np.zeros(3)), {}, r"advantages must be \[N\]=\(2,\) or \[N, T\]=\(2, 3\), got shape \(3,\)"),
        ({}, dict(ref_logp=np.zeros((2, 2)), kl_coef=0.1), r"ref_logp must have the shape of logp"),
        ({}, dict(entropy=np.zeros((1, 3))), r"entropy must have the shape of logp"),
    ],
)
def test_bad_configurations_raise(override, kwargs, match):
    a = {**GOOD, **override}
    with pytest.raises(ValueError, match=match):
        losses.policy_loss(jnp.asarray(a["lp"]), jnp.asarray(a["old"]), jnp.asarray(a["adv"]), jnp.asarray(a["mask"]),
                           **kwargs)


def test_aggregate_and_combine_errors():
    with pytest.raises(ValueError, match=r"agg='sum' is unknown"):
        losses.aggregate(jnp.zeros((2, 2)), jnp.ones((2, 2)), "sum")
    with pytest.raises(ValueError, match="at least one"):
        loss_types.combine([])


# ---------------------------------------------------------------------------------------------------------------
# Token entropy and log-probabilities from logits
# ---------------------------------------------------------------------------------------------------------------


def np_log_softmax(x):
    x = np.asarray(x, np.float64)
    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_entropy_and_logprobs_match_formula(temperature):
    rng = np.random.default_rng(11)
    logits = rng.normal(scale=3.0, size=(2, 5, 37))
    targets = rng.integers(0, 37, size=(2, 5))
    logq = np_log_softmax(logits / temperature)
    want_h = -(np.exp(logq) * logq).sum(-1)
    want_lp = np.take_along_axis(logq, targets[..., None], -1)[..., 0]
    x = jnp.asarray(logits, jnp.float32)
    h = ent_lib.token_entropy(x, temperature=temperature)
    lp = ent_lib.token_logprobs(x, jnp.asarray(targets), temperature=temperature)
    both = ent_lib.token_logprobs_and_entropy(x, jnp.asarray(targets), temperature=temperature)
    assert h.shape == (2, 5) and h.dtype == jnp.float32 and lp.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(h), want_h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(lp), want_lp, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(both[0]), np.asarray(lp))
    np.testing.assert_array_equal(np.asarray(both[1]), np.asarray(h))


def test_token_entropy_gradient_matches_formula():
    # dH/dx_j = -p_j (log p_j + H)
    logits = np.random.default_rng(12).normal(scale=2.0, size=(3, 11))
    with jax.enable_x64(True):
        grad = np.asarray(jax.grad(lambda x: ent_lib.token_entropy(x).sum())(jnp.asarray(logits)))
        lp_grad = np.asarray(jax.grad(lambda x: ent_lib.token_logprobs(x, jnp.asarray([1, 4, 10])).sum())(
            jnp.asarray(logits)))
    logp = np_log_softmax(logits)
    p = np.exp(logp)
    h = -(p * logp).sum(-1, keepdims=True)
    np.testing.assert_allclose(grad, -p * (logp + h), rtol=1e-10, atol=1e-14)
    onehot = np.eye(11)[[1, 4, 10]]
    np.testing.assert_allclose(lp_grad, onehot - p, rtol=1e-10, atol=1e-14)


def test_token_entropy_bf16_and_extreme_logits():
    rng = np.random.default_rng(13)
    logits = jnp.asarray(rng.normal(scale=4.0, size=(4, 3000)), jnp.bfloat16)
    h = ent_lib.token_entropy(logits)
    assert h.dtype == jnp.float32
    logq = np_log_softmax(np.asarray(logits.astype(jnp.float32)))  # the same bf16 values, in float64
    np.testing.assert_allclose(np.asarray(h), -(np.exp(logq) * logq).sum(-1), rtol=1e-5)
    # Huge logits: one-hot -> 0 entropy, logprob 0 and -huge; all equal -> log V; nothing NaN.
    big = jnp.asarray([[1e4, -1e4, 0.0], [3e4, 3e4, 3e4]], jnp.float32)
    np.testing.assert_allclose(np.asarray(ent_lib.token_entropy(big)), [0.0, np.log(3)], atol=1e-6)
    np.testing.assert_allclose(np.asarray(ent_lib.token_logprobs(big, jnp.asarray([0, 2]))), [0.0, -np.log(3)],
                               atol=1e-6)
    assert float(ent_lib.token_logprobs(big, jnp.asarray([1, 0]))[0]) == -2e4
    with pytest.raises(ValueError, match="targets shape"):
        ent_lib.token_logprobs(big, jnp.asarray([0]))
    with pytest.raises(ValueError, match="temperature must be > 0, got 0.0"):
        ent_lib.token_entropy(big, temperature=0.0)
