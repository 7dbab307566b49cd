"""Token filtering and sampling against numpy formulas."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from syngrpo_jax.rollout import sampling


def _np_filter(logits, temperature, top_k, top_p, suppress):
    x = logits.astype(np.float64) / temperature
    x[:, suppress] = -np.inf
    out = np.full_like(x, -np.inf)
    for i, row in enumerate(x):
        keep = np.isfinite(row)
        if top_k:
            kth = np.sort(row)[::-1][top_k - 1]
            keep &= row >= kth
        if top_p is not None:
            order = np.argsort(-np.where(keep, row, -np.inf), kind="stable")
            p = np.exp(row[order] - row[order].max()) * keep[order]
            p /= p.sum()
            before = np.cumsum(p) - p
            kept = set(order[before < top_p].tolist())
            keep &= np.isin(np.arange(row.size), list(kept))
        out[i, keep] = row[keep]
    return out


@pytest.mark.parametrize("top_k,top_p", [(0, None), (5, None), (0, 0.7), (8, 0.5), (1, None), (0, 1e-6)])
def test_filter_matches_numpy(top_k, top_p):
    rng = np.random.default_rng(top_k + int(100 * (top_p or 0)))
    logits = rng.normal(size=(6, 40)).astype(np.float32) * 3
    suppress = np.zeros(40, bool)
    suppress[[3, 17]] = True
    got = np.asarray(sampling.filter_logits(jnp.asarray(logits), temperature=0.7, top_k=top_k, top_p=top_p,
                                            suppress=jnp.asarray(suppress)))
    want = _np_filter(logits, 0.7, top_k, top_p, np.flatnonzero(suppress))
    kept = np.isfinite(want)
    np.testing.assert_array_equal(got > -1e29, kept)
    np.testing.assert_allclose(got[kept], want[kept], rtol=1e-6)
    assert kept.sum(1).min() >= 1


def test_sampling_follows_the_filtered_distribution():
    logits = jnp.asarray(np.log(np.array([[0.5, 0.3, 0.15, 0.05]], np.float32)))
    keys = jax.random.split(jax.random.key(0), 20000)
    draws = jax.vmap(lambda k: sampling.sample_tokens(k, logits, greedy=False, temperature=1.0, top_p=0.75))(keys)
    freq = np.bincount(np.asarray(draws).ravel(), minlength=4) / draws.size
    # top_p=0.75 keeps {0, 1} (0.5 + 0.3 crosses 0.75), renormalised to 0.625 / 0.375.
    np.testing.assert_allclose(freq, [0.625, 0.375, 0, 0], atol=0.015)


def test_greedy_respects_suppression_and_logprob_is_over_the_allowed_tokens():
    """The log-prob is of the distribution sampled from: suppressed tokens removed, the rest renormalised (what
    vLLM reports with its -100 logit bias, and what the trainer's teacher-forced log-probs compute)."""
    logits = jnp.asarray([[1.0, 5.0, 2.0]])
    suppress = jnp.asarray([False, True, False])
    tok = sampling.sample_tokens(None, logits, greedy=True, suppress=suppress)
    assert int(tok[0]) == 2
    lp = sampling.token_logprob(logits, tok, 1.0, suppress)
    np.testing.assert_allclose(float(lp[0]), 2.0 - np.log(np.exp([1.0, 2.0]).sum()), rtol=1e-6)
    full = sampling.token_logprob(logits / 0.5, tok, 2.0)  # nothing suppressed: the whole vocabulary
    np.testing.assert_allclose(float(full[0]), 2.0 - np.log(np.exp([1.0, 5.0, 2.0]).sum()), rtol=1e-6)
