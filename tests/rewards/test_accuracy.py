"""The accuracy dispatch: each task, rescaling from model pixels, bad arguments, malformed responses."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syngrpo_jax.rewards.accuracy import TASKS, accuracy_reward, accuracy_rewards, parse_answer
from syngrpo_jax.rewards.ovd import ovd_reward
from syngrpo_jax.rewards.rec import box_iou

FUZZ = settings(max_examples=300, derandomize=True, deadline=None)
NEVER_RAISES = settings(max_examples=2000, derandomize=True, deadline=None)  # parsers: >= 2,000 fuzz cases each


def det(objs, fenced=True):
    body = json.dumps([{"bbox_2d": list(b), "label": lab} for b, lab in objs])
    return f"<think>ok</think><answer>{'```json' if fenced else ''}\n{body}\n{'```' if fenced else ''}</answer>"


def test_rec():
    r = '<answer>{"bbox_2d": [0, 0, 10, 20], "label": "the dog"}</answer>'
    assert accuracy_reward("rec", r, gt_boxes=[0, 0, 10, 10]) == 0.5
    assert accuracy_reward("rec", r, gt_boxes=[[0, 0, 10, 10]]) == 0.5
    assert accuracy_reward("rec", "<answer>[1,2,3,4] or [0,0,10,10]</answer>", gt_boxes=[0, 0, 10, 10]) == pytest.approx(
        box_iou([1, 2, 3, 4], [0, 0, 10, 10]))  # the first box counts
    assert accuracy_reward("rec", "[0, 0, 10, 10]", gt_boxes=[0, 0, 10, 10]) == 0.0  # no answer tag


def test_rec_rescaling():
    # The model saw a 2x downscaled image: its box (0, 0, 5, 5) is (0, 0, 10, 10) in the original.
    r = "<answer>[0, 0, 5, 5]</answer>"
    assert accuracy_reward("rec", r, gt_boxes=[0, 0, 10, 10], model_hw=(50, 50), image_hw=(100, 100)) == 1.0
    assert accuracy_reward("rec", r, gt_boxes=[0, 0, 10, 10]) == 0.25
    # anisotropic: H scaled by 3, W by 1
    r = "<answer>[2, 1, 4, 3]</answer>"
    assert accuracy_reward("rec", r, gt_boxes=[2, 3, 4, 9], model_hw=(10, 10), image_hw=(30, 10)) == 1.0


def test_ovd_and_isr():
    gt, labels = [[0, 0, 10, 10], [20, 20, 40, 40]], ["cat", "dog"]
    perfect = det([((0, 0, 10, 10), "cat"), ((20, 20, 40, 40), "Dog ")])  # labels: stripped, case-folded
    for task in ("ovd", "isr"):
        assert accuracy_reward(task, perfect, gt_boxes=gt, gt_labels=labels) == pytest.approx(1.0, abs=1e-15)
    half = det([((0, 0, 10, 10), "cat"), ((20, 20, 40, 40), "cow"), ((50, 50, 60, 60), "cat"), ((0, 0, 1, 1), "x")])
    expected = ovd_reward(gt, labels, [[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60], [0, 0, 1, 1]],
                          ["cat", "cow", "cat", "x"])
    assert accuracy_reward("ovd", half, gt_boxes=gt, gt_labels=labels) == pytest.approx(expected, abs=1e-15)
    assert 0 < expected < 0.5


def test_ovd_rescaling():
    gt, labels = [[0, 0, 100, 60]], ["car"]
    r = det([((0, 0, 50, 30), "car")])
    assert accuracy_reward("ovd", r, gt_boxes=gt, gt_labels=labels, model_hw=(30, 50), image_hw=(60, 100)) > 0.99
    assert accuracy_reward("ovd", r, gt_boxes=gt, gt_labels=labels) < 0.3


def test_ovd_empty_cases():
    none_there = det([])
    assert accuracy_reward("ovd", none_there, gt_boxes=[], gt_labels=[]) == 1.0  # "nothing" and nothing
    assert accuracy_reward("ovd", none_there, gt_boxes=[[0, 0, 1, 1]], gt_labels=["a"]) == 0.0
    assert accuracy_reward("ovd", det([((0, 0, 1, 1), "a")]), gt_boxes=np.zeros((0, 4)), gt_labels=[]) == 0.0
    assert accuracy_reward("ovd", "<answer>I see nothing</answer>", gt_boxes=[], gt_labels=[]) == 0.0  # unparsable


def test_qa():
    assert accuracy_reward("qa", "<answer>\\boxed{ 12.0 }</answer>", gt_answer="12") == 1.0
    assert accuracy_reward("qa", "<answer>so \\boxed{12}</answer>", gt_answer="12") == 1.0
    assert accuracy_reward("qa", "<answer>so \\boxed{12}</answer>", gt_answer="12", strict_qa=True) == 0.0


def test_parse_answer_per_task():
    assert parse_answer("rec", "<answer>[1, 2, 3, 4]</answer>").box == (1.0, 2.0, 3.0, 4.0)
    assert parse_answer("rec", "<answer>left</answer>") is None
    assert parse_answer("ovd", "<answer>[]</answer>") == []
    assert parse_answer("ovd", "<answer>none</answer>") is None
    assert parse_answer("qa", "<answer>\\boxed{x}</answer>") == "x"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(task="seg"), "task 'seg'"),
        (dict(task="rec"), "gt_boxes"),
        (dict(task="rec", gt_boxes=[[0, 0, 1, 1], [0, 0, 2, 2]]), "gt_boxes"),
        (dict(task="rec", gt_boxes=[0, 0, 1, float("nan")]), "gt_boxes"),
        (dict(task="ovd", gt_boxes=[[0, 0, 1, 1]]), "gt_labels"),
        (dict(task="ovd", gt_boxes=[[0, 0, 1, 1]], gt_labels=[1]), "gt_labels"),
        (dict(task="ovd", gt_boxes=[[0, 0, 1, 1]], gt_labels=["a", "b"]), "gt_labels"),
        (dict(task="qa"), "gt_answer"),
        (dict(task="rec", gt_boxes=[0, 0, 1, 1], model_hw=(10, 10)), "image_hw"),
        (dict(task="rec", gt_boxes=[0, 0, 1, 1], model_hw=(0, 10), image_hw=(10, 10)), "model_hw"),
        (dict(task="ovd", gt_boxes=[[0, 0, 1]], gt_labels=["a"]), "gt_boxes"),
    ],
)
def test_bad_arguments(kwargs, field):
    task = kwargs.pop("task")
    with pytest.raises(ValueError, match=field):
        accuracy_reward(task, "<answer>[0, 0, 1, 1]</answer>", **kwargs)


def test_non_string_response_is_a_bad_argument():
    with pytest.raises(ValueError, match="response"):
        accuracy_reward("qa", None, gt_answer="1")


def test_batched_equals_per_response():
    rng = np.random.default_rng(3)
    responses, gts, labels = [], [], []
    for i in range(40):
        gt = rng.integers(0, 80, (int(rng.integers(0, 4)), 2))
        gt = np.concatenate([gt, gt + rng.integers(5, 30, gt.shape)], 1).tolist()
        lab = [["a", "b"][j % 2] for j in range(len(gt))]
        objs = [((np.array(b) + rng.integers(-2, 3, 4)).tolist(), lab[j]) for j, b in enumerate(gt)]
        responses.append(det(objs) if i % 5 else "garbage")
        gts.append(gt)
        labels.append(lab)
    hw = [(100, 100)] * 40
    got = accuracy_rewards("ovd", responses, gt_boxes=gts, gt_labels=labels, model_hw=hw, image_hw=[(50, 80)] * 40)
    want = [accuracy_reward("ovd", r, gt_boxes=g, gt_labels=lab, model_hw=(100, 100), image_hw=(50, 80))
            for r, g, lab in zip(responses, gts, labels)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    rec = accuracy_rewards("rec", ["<answer>[0,0,10,20]</answer>", "x"], gt_boxes=[[0, 0, 10, 10]] * 2)
    np.testing.assert_array_equal(rec, [0.5, 0.0])
    with pytest.raises(ValueError, match="gt_labels"):
        accuracy_rewards("ovd", ["x", "y"], gt_boxes=[[], []], gt_labels=[[]])


response_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(["<answer>", "</answer>", "[", "]", "{", "}", '"bbox_2d"', ":", ",", "1", "20.5", "-3",
                              '"label"', '"a"', "\\boxed{", "```json", "```", "NaN", "1e999", " "]),
             max_size=30).map("".join),
)


@given(response_text, st.sampled_from(TASKS), st.booleans(), st.booleans())
@NEVER_RAISES
def test_never_raises_on_malformed_responses(response, task, rescale, strict_qa):
    sizes = dict(model_hw=(28, 56), image_hw=(1000, 3)) if rescale else {}
    kwargs = {"rec": dict(gt_boxes=[0, 0, 10, 10]), "qa": dict(gt_answer="1"),
              "ovd": dict(gt_boxes=[[0, 0, 10, 10], [5, 5, 20, 20]], gt_labels=["a", "b"]),
              "isr": dict(gt_boxes=[[0, 0, 10, 10]], gt_labels=["a"])}[task]
    if task != "qa":
        kwargs.update(sizes)
    r = accuracy_reward(task, response, strict_qa=strict_qa, **kwargs)
    assert 0.0 <= r <= 1.0


@pytest.mark.parametrize("gt_boxes", [[[0, 0, 1, 1], [0, 0]], "box", [0, 0, "a", 1]])
def test_ragged_or_non_numeric_ground_truth(gt_boxes):
    for task, kw in (("rec", {}), ("ovd", {"gt_labels": ["a", "b"]})):
        with pytest.raises(ValueError, match="gt_boxes"):
            accuracy_reward(task, "<answer>[0, 0, 1, 1]</answer>", gt_boxes=gt_boxes, **kw)


def test_batched_unknown_task_even_when_empty():
    with pytest.raises(ValueError, match="task 'seg'"):
        accuracy_rewards("seg", [])
