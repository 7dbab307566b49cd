"""Diversity: V(q), its EMA smoothing across steps, R_div and description selection, against formulas written
out independently here (plain Python, no numpy reductions)."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syngrpo_jax.rewards.diversity import (
    DiversitySmoother,
    diversity_reward,
    ground_truth_diversity,
    select_descriptions,
)

FUZZ = settings(max_examples=200, derandomize=True, deadline=None)


def ref_v(row):
    mean = sum(row) / len(row)
    return min(1.0, max(0.0, sum((x - mean) ** 2 for x in row) / len(row) * 4))


class RefSmoother:
    def __init__(self, gamma):
        self.gamma, self.v_g = gamma, None

    def __call__(self, v):
        v_b = sum(v) / len(v)
        self.v_g = v_b if self.v_g is None else self.gamma * self.v_g + (1 - self.gamma) * v_b
        if v_b == 0:
            return [0.0] * len(v)
        return [min(1.0, max(0.0, x * self.v_g / v_b)) for x in v]


def test_ground_truth_diversity_values():
    acc = [[1, 1, 0, 0], [1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5], [1, 0, 0, 0]]
    np.testing.assert_allclose(ground_truth_diversity(acc), [1.0, 0.0, 0.0, 0.75])  # 0.25/0.25, 0, 0, 3/16*4


@given(st.lists(st.lists(st.floats(0, 1), min_size=1, max_size=8), min_size=1, max_size=6).filter(
    lambda rows: len({len(r) for r in rows}) == 1))
@FUZZ
def test_ground_truth_diversity_formula(rows):
    got = ground_truth_diversity(rows)
    np.testing.assert_allclose(got, [ref_v(r) for r in rows], atol=1e-12)
    assert ((got >= 0) & (got <= 1)).all()


def test_ground_truth_diversity_bad_shapes():
    with pytest.raises(ValueError, match="acc"):
        ground_truth_diversity([1.0, 0.0])
    with pytest.raises(ValueError, match="acc"):
        ground_truth_diversity(np.zeros((2, 0)))
    with pytest.raises(ValueError, match="acc"):
        ground_truth_diversity([[0.0, float("nan")]])


SEQUENCE = [
    [0.2, 0.6, 0.0],
    [0.0, 0.0, 0.0],  # V_b = 0: all-zero output, V_g still decays
    [0.9, 0.1, 0.5],
    [1.0, 1.0, 0.8],  # large V relative to V_g: clipped at 1
    [0.05, 0.0, 0.1],
]


@pytest.mark.parametrize("gamma", [0.0, 0.7, 0.95])
def test_smoother_matches_reference_over_steps(gamma):
    ours, ref = DiversitySmoother(gamma), RefSmoother(gamma)
    for v in SEQUENCE:
        np.testing.assert_allclose(ours(v), ref(v), atol=1e-15)
        assert ours.v_g == pytest.approx(ref.v_g, abs=1e-15)


def test_smoother_first_step_and_zero_batch_mean():
    s = DiversitySmoother(0.7)
    out = s([0.0, 0.0])
    assert out.tolist() == [0.0, 0.0] and s.v_g == 0.0 and s.initialized  # V_g = V_b = 0 at the first step
    out = s([0.5, 0.3])  # V_b = .4, V_g = .7 * 0 + .3 * .4 = .12
    assert s.v_g == pytest.approx(0.12)
    np.testing.assert_allclose(out, [0.5 * 0.12 / 0.4, 0.3 * 0.12 / 0.4])
    s2 = DiversitySmoother(0.7)
    np.testing.assert_allclose(s2([0.5, 0.3]), [0.5, 0.3])  # first step: V_g = V_b, identity
    s2([0.0, 0.0])
    assert s2.v_g == pytest.approx(0.7 * 0.4)


def test_smoother_clip_at_one_binds():
    """A batch whose mean falls below V_g: V * V_g / V_b exceeds 1 for its most diverse prompt, and is clipped."""
    s = DiversitySmoother(0.7)
    s([0.9, 0.1])  # V_g = V_b = 0.5
    out = s([1.0, 0.1, 0.0, 0.0])  # V_b = .275, V_g = .7 * .5 + .3 * .275 = .4325, ratio 1.5727...
    assert s.v_g == pytest.approx(0.4325)
    np.testing.assert_allclose(out, [1.0, 0.1 * 0.4325 / 0.275, 0.0, 0.0])
    assert 1.0 * 0.4325 / 0.275 > 1.5  # unclipped, the first value would be far above 1


def test_smoother_state_round_trip_gives_identical_continuation():
    a = DiversitySmoother(0.7)
    for v in SEQUENCE[:2]:
        a(v)
    state = json.loads(json.dumps(a.state_dict()))  # what a checkpoint would hold
    assert state == a.state_dict()
    assert all(type(x) in (float, int, bool) for x in state.values())
    b = DiversitySmoother(0.7)
    b.load_state_dict(state)
    for v in SEQUENCE[2:]:
        assert a(v).tolist() == b(v).tolist()
        assert a.state_dict() == b.state_dict()
    # The state matters: a smoother that was not restored continues differently (V_g = V_b at its first step).
    c = DiversitySmoother(0.7)
    c.load_state_dict(state)
    assert c(SEQUENCE[2]).tolist() != DiversitySmoother(0.7)(SEQUENCE[2]).tolist()


def test_state_of_a_fresh_smoother():
    assert DiversitySmoother(0.5).state_dict() == {"gamma": 0.5, "v_g": 0.0, "initialized": False, "steps": 0}


@pytest.mark.parametrize("gamma", [1.0, -0.1, 1.5, float("nan"), "0.7", True, None])
def test_bad_gamma(gamma):
    with pytest.raises(ValueError, match="gamma"):
        DiversitySmoother(gamma)


@pytest.mark.parametrize(
    "state, field",
    [
        ({"gamma": 0.7, "v_g": 0.1, "initialized": True}, "keys"),
        ({"gamma": 0.5, "v_g": 0.1, "initialized": True, "steps": 1}, "gamma"),
        ({"gamma": 0.7, "v_g": -1.0, "initialized": True, "steps": 1}, "v_g"),
        ({"gamma": 0.7, "v_g": 0.1, "initialized": 1, "steps": 1}, "initialized"),
        ({"gamma": 0.7, "v_g": 0.1, "initialized": True, "steps": -1}, "steps"),
    ],
)
def test_bad_state(state, field):
    with pytest.raises(ValueError, match=field):
        DiversitySmoother(0.7).load_state_dict(state)


@pytest.mark.parametrize("v", [[], [[0.1]], [-0.1], [float("inf")]])
def test_smoother_bad_input(v):
    with pytest.raises(ValueError, match="v must"):
        DiversitySmoother()(v)


@given(st.lists(st.lists(st.floats(0, 1), min_size=1, max_size=5), min_size=1, max_size=8), st.floats(0, 0.99))
@FUZZ
def test_smoother_fuzz(batches, gamma):
    ours, ref = DiversitySmoother(gamma), RefSmoother(gamma)
    for v in batches:
        got = ours(v)
        assert ((got >= 0) & (got <= 1)).all()
        np.testing.assert_allclose(got, ref(v), rtol=1e-12, atol=1e-300)


def test_diversity_reward_values():
    nan = float("nan")
    pred = [[0.1, 0.5, nan], [1.0, 0.0, 0.3]]
    got = diversity_reward(pred, [0.5, 0.0])
    np.testing.assert_allclose(got, [[0.6, 1.0, 0.0], [0.0, 1.0, 0.7]])


def test_diversity_reward_bad_arguments():
    with pytest.raises(ValueError, match="smoothed"):
        diversity_reward([[0.1, 0.2]], [0.5, 0.5])
    with pytest.raises(ValueError, match="pred_v"):
        diversity_reward([0.1, 0.2], [0.5])
    with pytest.raises(ValueError, match="pred_v"):
        diversity_reward([[1.5]], [0.5])
    with pytest.raises(ValueError, match="smoothed"):
        diversity_reward([[0.5]], [2.0])


@given(st.lists(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=3, max_size=3),
                min_size=1, max_size=4), st.data())
@FUZZ
def test_diversity_reward_formula(pred, data):
    smoothed = data.draw(st.lists(st.floats(0, 1), min_size=len(pred), max_size=len(pred)))
    got = diversity_reward(pred, smoothed)
    for b, row in enumerate(pred):
        for i, v in enumerate(row):
            expected = 0.0 if math.isnan(v) else 1 - abs(v - smoothed[b])
            assert got[b, i] == pytest.approx(expected, abs=1e-15)
    assert ((got >= 0) & (got <= 1)).all()


def test_select_descriptions():
    r = [[0.2, 0.9, 0.9, 0.1],  # tie -> lowest index
         [0.9, 0.8, 0.1, 0.0],  # best has an empty description -> next best usable
         [0.5, 0.5, 0.5, 0.5],  # nothing usable
         [0.0, 0.0, 0.0, 0.3]]
    d = [["a", "b", "c", "d"],
         ["   ", "b", None, "d"],
         [None, "", " \n", None],
         ["a", "b", "c", "d"]]
    assert select_descriptions(r, d) == [1, 1, -1, 3]


def test_select_descriptions_bad_shapes():
    with pytest.raises(ValueError, match="descriptions"):
        select_descriptions([[0.1, 0.2]], [["a"]])
    with pytest.raises(ValueError, match="descriptions"):
        select_descriptions([[0.1, 0.2]], [["a", "b"], ["c", "d"]])
    with pytest.raises(ValueError, match="r_div"):
        select_descriptions([0.1, 0.2], [["a", "b"]])


@given(st.lists(st.lists(st.tuples(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.sampled_from([None, "", " ", "d"])),
                         min_size=1, max_size=6), min_size=1, max_size=4).filter(
    lambda rows: len({len(r) for r in rows}) == 1))
@FUZZ
def test_select_descriptions_formula(rows):
    r = [[x for x, _ in row] for row in rows]
    d = [[y for _, y in row] for row in rows]
    got = select_descriptions(r, d)
    for row_r, row_d, i in zip(r, d, got):
        usable = [j for j, s in enumerate(row_d) if s is not None and s.strip()]
        if not usable:
            assert i == -1
        else:
            best = max(row_r[j] for j in usable)
            assert i == min(j for j in usable if row_r[j] == best)


def test_ragged_inputs_name_the_field():
    with pytest.raises(ValueError, match="acc"):
        ground_truth_diversity([[1.0, 0.0], [1.0]])
    with pytest.raises(ValueError, match="pred_v"):
        diversity_reward([[0.1, 0.2], [0.3]], [0.5, 0.5])
    with pytest.raises(ValueError, match="r_div"):
        select_descriptions([[0.1], [0.2, 0.3]], [["a"], ["b", "c"]])
