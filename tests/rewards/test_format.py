"""Format reward: each documented rule, one failing example per rule, and fuzzing."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syngrpo_jax.rewards.format import format_reward
from syngrpo_jax.rewards.response_format import RESPONSE_FORMATS

FUZZ = settings(max_examples=300, derandomize=True, deadline=None)
NEVER_RAISES = settings(max_examples=2000, derandomize=True, deadline=None)  # parsers: >= 2,000 fuzz cases each

BOX = '[{"bbox_2d": [1, 2, 30, 40], "label": "cat"}]'


def syn(think="I look.", score="0.4", description="a snowy street at dusk", answer=BOX, sep=""):
    return (f"<think>{think}</think>{sep}<score>{score}</score>{sep}<description>{description}</description>{sep}"
            f"<answer>{answer}</answer>")


def test_well_formed_responses():
    assert format_reward(syn(), "syn_grpo") == 1.0
    assert format_reward(syn(sep="\n\n"), "syn_grpo") == 1.0
    assert format_reward("\n  " + syn() + "  \n", "syn_grpo") == 1.0
    assert format_reward("<think>x</think>\n<answer>y</answer>", "grpo") == 1.0
    assert format_reward("<think>x</think><description>d</description><answer>y</answer>", "syn_grpo_no_div") == 1.0
    assert format_reward("<think></think><answer></answer>", "grpo") == 1.0  # contents are free (no task)


def test_rule_1_shape():
    assert format_reward("Sure! " + syn(), "syn_grpo") == 0.0  # text before
    assert format_reward(syn() + " Hope it helps.", "syn_grpo") == 0.0  # text after
    assert format_reward(syn(sep=" and "), "syn_grpo") == 0.0  # text between
    order = "<score>0.4</score><think>t</think><description>d</description><answer>a</answer>"
    assert format_reward(order, "syn_grpo") == 0.0  # out of order
    assert format_reward("<think>x</think><answer>y", "grpo") == 0.0  # not closed
    assert format_reward("<think>x</think>", "grpo") == 0.0  # missing a tag
    assert format_reward("<Think>x</Think><answer>y</answer>", "grpo") == 0.0  # tags are lowercase
    assert format_reward("<think>x</think><answer>y</answer>", "syn_grpo") == 0.0  # format needs more tags


def test_rule_2_once():
    assert format_reward("<think>x</think><think>x</think><answer>y</answer>", "grpo") == 0.0
    assert format_reward("<think>maybe <answer>1</answer></think><answer>2</answer>", "grpo") == 0.0
    # tags of other formats are plain text
    assert format_reward("<think>my <score>0.3</score></think><answer>2</answer>", "grpo") == 1.0


@pytest.mark.parametrize("score, ok", [("0.4", True), (" 1 ", True), ("0", True), ("1.5", False),
                                       ("high", False), ("", False), ("-0.1", False), ("0.4 0.5", False)])
def test_rule_3_score(score, ok):
    assert format_reward(syn(score=score), "syn_grpo") == float(ok)


def test_rule_4_description():
    assert format_reward(syn(description="  \n "), "syn_grpo") == 0.0
    empty = "<think>x</think><description></description><answer>y</answer>"
    assert format_reward(empty, "syn_grpo_no_div") == 0.0


@pytest.mark.parametrize(
    "task, answer, ok",
    [
        ("rec", "[1, 2, 3, 4]", True),
        ("rec", BOX, True),
        ("rec", "the cat on the left", False),
        ("ovd", BOX, True),
        ("ovd", "[]", True),  # an explicit "no objects"
        ("ovd", "```json\n[]\n```", True),
        ("ovd", "none", False),
        ("isr", BOX, True),
        ("qa", "\\boxed{3}", True),
        ("qa", "3", True),  # lenient QA: any non-empty content
        ("qa", "", False),
    ],
)
def test_rule_5_answer_parses_for_task(task, answer, ok):
    assert format_reward(syn(answer=answer), "syn_grpo", task=task) == float(ok)
    assert format_reward(syn(answer=answer), "syn_grpo") == 1.0  # without a task, any answer


def test_rule_5_strict_qa():
    assert format_reward(syn(answer="\\boxed{3}"), "syn_grpo", task="qa", strict_qa=True) == 1.0
    assert format_reward(syn(answer="It is \\boxed{3}"), "syn_grpo", task="qa", strict_qa=True) == 0.0
    assert format_reward(syn(answer="It is \\boxed{3}"), "syn_grpo", task="qa") == 1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="'nope'"):
        format_reward(syn(), "nope")
    with pytest.raises(ValueError, match="task 'seg'"):
        format_reward(syn(), "syn_grpo", task="seg")
    with pytest.raises(ValueError, match="response"):
        format_reward(None, "syn_grpo")


pieces = st.lists(
    st.sampled_from(["<think>", "</think>", "<score>", "</score>", "<description>", "</description>", "<answer>",
                     "</answer>", "0.5", "1.5", " ", "\n", "x", "[1, 2, 3, 4]", "\\boxed{1}", "[]", "{", "<"]),
    max_size=14,
).map("".join)


@given(st.one_of(pieces, st.text(max_size=200)), st.sampled_from(sorted(RESPONSE_FORMATS)),
       st.sampled_from([None, "rec", "ovd", "isr", "qa"]), st.booleans())
@NEVER_RAISES
def test_format_reward_never_raises(response, fmt, task, strict_qa):
    r = format_reward(response, fmt, task=task, strict_qa=strict_qa)
    assert r in (0.0, 1.0)
    if r == 1.0:  # then the tags are there, in order, once each
        positions = [response.index(f"<{t}>") for t in RESPONSE_FORMATS[fmt]]
        assert positions == sorted(positions)
        assert all(response.count(f"<{t}>") == 1 for t in RESPONSE_FORMATS[fmt])


content = st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=30)
gap = st.text(alphabet=st.sampled_from([" ", "\n", "\t"]), max_size=3)


@given(st.sampled_from(sorted(RESPONSE_FORMATS)), st.lists(content, min_size=4, max_size=4),
       st.lists(gap, min_size=5, max_size=5), st.floats(0, 1), st.sampled_from(["", "x"]))
@FUZZ
def test_built_responses(fmt, contents, gaps, score, junk):
    tags = RESPONSE_FORMATS[fmt]
    filled = {t: c for t, c in zip(tags, contents)}
    if "score" in filled:
        filled["score"] = repr(score)
    if "description" in filled:
        filled["description"] = filled["description"] + " d"
    parts = [gaps[0]]
    for i, t in enumerate(tags):
        parts.append(f"<{t}>{filled[t]}</{t}>")
        parts.append(gaps[i + 1] + (junk if i == 0 else ""))  # junk, if any, after the first tag
    assert format_reward("".join(parts), fmt) == (1.0 if not junk else 0.0)
