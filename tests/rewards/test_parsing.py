"""Tags, scores, boxes, rescaling and boxed QA answers parse as documented, and malformed text never raises."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syngrpo_jax.rewards.parsing import (
    MAX_ABS_COORD,
    LabeledBox,
    extract_tag,
    is_empty_box_list,
    parse_boxes,
    parse_qa_answer,
    parse_score,
    rescale_boxes,
)

FUZZ = settings(max_examples=300, derandomize=True, deadline=None)
NEVER_RAISES = settings(max_examples=2000, derandomize=True, deadline=None)  # parsers: >= 2,000 fuzz cases each

# ------------------------------------------------------------------------------------------------- tags


@pytest.mark.parametrize(
    "text, tag, expected",
    [
        ("<answer>42</answer>", "answer", "42"),
        ("  junk\n<answer>\n  42 \n</answer>\ntrailing", "answer", "42"),
        ("<answer>first</answer> then <answer>second</answer>", "answer", "second"),  # the last one
        ("<answer>done</answer> <answer>unclosed", "answer", "done"),  # last *complete* one
        ("<answer>a <answer>b</answer>", "answer", "b"),  # nearest opening before the last closing
        ("<ANSWER>x</Answer>", "answer", "x"),  # case-insensitive tag names
        ("<think>t</think><answer></answer>", "answer", ""),
        ("<answer>no close", "answer", None),
        ("no open</answer>", "answer", None),
        ("</answer>backwards<answer>", "answer", None),
        ("", "answer", None),
        ("<think>a\nb</think>", "think", "a\nb"),
        ("<score>0.3</score>", "description", None),
    ],
)
def test_extract_tag(text, tag, expected):
    assert extract_tag(text, tag) == expected


def test_extract_tag_keeps_case_of_content():
    assert extract_tag("<Description>A Red Barn</description>", "description") == "A Red Barn"


# ------------------------------------------------------------------------------------------------ score


@pytest.mark.parametrize(
    "text, expected",
    [("0.4", 0.4), (" 0.4\n", 0.4), (".5", 0.5), ("1", 1.0), ("0", 0.0), ("1.0", 1.0), ("4e-1", 0.4),
     ("+0.25", 0.25), ("-0", 0.0), ("0.", 0.0)],
)
def test_parse_score_accepts(text, expected):
    assert parse_score(text) == expected


@pytest.mark.parametrize(
    "text", ["", " ", "1.5", "-0.1", "40%", "0.4 maybe", "nan", "inf", "NaN", "0x1", "1/2", "0,5", "..5", None, 3]
)
def test_parse_score_rejects(text):
    assert parse_score(text) is None


def test_parse_score_negative_zero_is_plain_zero():
    assert math.copysign(1.0, parse_score("-0.0")) == 1.0


# ------------------------------------------------------------------------------------------------ boxes


def boxes_of(text):
    return [(b.box, b.label) for b in parse_boxes(text)]


def test_boxes_from_object_list():
    text = '[{"bbox_2d": [1, 2, 30, 40], "label": "cat"}, {"bbox_2d": [5.5, 6, 7, 8.25], "label": " dog "}]'
    assert boxes_of(text) == [((1.0, 2.0, 30.0, 40.0), "cat"), ((5.5, 6.0, 7.0, 8.25), "dog")]


def test_boxes_from_single_object_and_missing_label():
    assert boxes_of('{"bbox_2d": [1, 2, 3, 4], "label": "cat"}') == [((1.0, 2.0, 3.0, 4.0), "cat")]
    assert boxes_of('{"bbox_2d": [1, 2, 3, 4]}') == [((1.0, 2.0, 3.0, 4.0), None)]
    assert boxes_of('{"bbox_2d": [1, 2, 3, 4], "label": 7}') == [((1.0, 2.0, 3.0, 4.0), None)]


def test_boxes_from_fenced_json_block():
    text = 'Here you go:\n```json\n[\n  {"bbox_2d": [10, 20, 30, 40], "label": "person"}\n]\n```\nDone [9, 9, 9, 9].'
    assert boxes_of(text) == [((10.0, 20.0, 30.0, 40.0), "person")]  # the fence wins over text outside it


def test_boxes_from_last_fenced_block():
    text = '```json\n[[1, 1, 2, 2]]\n```\nor rather\n```\n[[3, 3, 4, 4]]\n```'
    assert boxes_of(text) == [((3.0, 3.0, 4.0, 4.0), None)]


def test_boxes_from_bare_lists():
    assert boxes_of("[1, 2, 3, 4]") == [((1.0, 2.0, 3.0, 4.0), None)]
    assert boxes_of("[[1, 2, 3, 4], [5, 6, 7, 8.5]]") == [((1.0, 2.0, 3.0, 4.0), None), ((5.0, 6.0, 7.0, 8.5), None)]
    assert boxes_of("The box is [1,2,3,4].") == [((1.0, 2.0, 3.0, 4.0), None)]


def test_boxes_with_trailing_and_leading_junk():
    assert boxes_of('sure! {"bbox_2d": [1, 2, 3, 4], "label": "a"} hope that helps }]') == [
        ((1.0, 2.0, 3.0, 4.0), "a")
    ]


def test_truncated_list_keeps_complete_objects():
    text = '[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6, 7, 8], "label": "b"}, {"bbox_2d": [9, 9'
    assert boxes_of(text) == [((1.0, 2.0, 3.0, 4.0), "a"), ((5.0, 6.0, 7.0, 8.0), "b")]


def test_mixed_list_keeps_only_boxes():
    text = '[{"bbox_2d": [1, 2, 3, 4]}, "x", [1, 2], {"box": [1, 2, 3, 4]}, [5, 6, 7, 8], null]'
    assert boxes_of(text) == [((1.0, 2.0, 3.0, 4.0), None), ((5.0, 6.0, 7.0, 8.0), None)]


@pytest.mark.parametrize(
    "text",
    [
        "", "no boxes here", "[]", "{}", "[1, 2, 3]", "[1, 2, 3, 4, 5]", '["1", "2", "3", "4"]',
        "[true, 0, 1, 1]", "[NaN, 0, 1, 1]", "[Infinity, 0, 1, 1]", "[1e400, 0, 1, 1]",
        f"[{10 ** 400}, 0, 1, 1]", f"[{MAX_ABS_COORD * 10}, 0, 1, 1]", '{"bbox_2d": [1, 2, 3]}',
        "[" * 5000 + "]" * 5000, "[" * 100000,
    ],
)
def test_malformed_boxes_give_empty(text):
    assert parse_boxes(text) == []


def test_parse_boxes_non_string():
    assert parse_boxes(None) == [] and parse_boxes(b"[1,2,3,4]") == []


def test_empty_box_list_detection():
    assert is_empty_box_list("[]") and is_empty_box_list(" ```json\n[]\n``` ")
    assert not is_empty_box_list("[[1, 2, 3, 4]]") and not is_empty_box_list("nothing") and not is_empty_box_list(None)


@given(
    st.lists(
        st.tuples(
            st.lists(st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False)), min_size=4, max_size=4),
            st.one_of(st.none(), st.text(max_size=8).map(str.strip)),
        ),
        max_size=6,
    ),
    st.sampled_from(["plain", "fenced", "junk"]),
)
@FUZZ
def test_boxes_round_trip(objs, wrapping):
    payload = [{"bbox_2d": box, **({"label": lab} if lab is not None else {})} for box, lab in objs]
    text = json.dumps(payload)
    if wrapping == "fenced":
        text = f"Objects:\n```json\n{text}\n```"
    elif wrapping == "junk":
        text = f"The answer is {text} and nothing else."
    got = parse_boxes(text)
    assert [(b.box, b.label) for b in got] == [(tuple(float(x) for x in box), lab) for box, lab in objs]
    assert all(isinstance(b, LabeledBox) for b in got)


@given(st.text(alphabet=st.sampled_from(list('[]{}",:0123456789.-e bbox_2dlabel\n`json<>/answer')), max_size=200))
@NEVER_RAISES
def test_parse_boxes_never_raises(text):
    for b in parse_boxes(text):
        assert len(b.box) == 4 and all(math.isfinite(x) and abs(x) <= MAX_ABS_COORD for x in b.box)
        assert b.label is None or isinstance(b.label, str)


@given(st.text(max_size=300))
@NEVER_RAISES
def test_text_parsers_never_raise(text):
    for tag in ("think", "score", "description", "answer"):
        extract_tag(text, tag)
    v = parse_score(text)
    assert v is None or 0.0 <= v <= 1.0
    parse_boxes(text)
    is_empty_box_list(text)
    for strict in (False, True):
        a = parse_qa_answer(text, strict=strict)
        assert a is None or (isinstance(a, str) and a)


# --------------------------------------------------------------------------------------------- rescaling


def test_rescale_boxes_values():
    # The model saw 476 x 644 (H x W); the original is 480 x 640.
    out = rescale_boxes([[0, 0, 644, 476], [322, 238, 644, 476]], (476, 644), (480, 640))
    np.testing.assert_allclose(out, [[0, 0, 640, 480], [320, 240, 640, 480]])


def test_rescale_boxes_anisotropic_and_round_trip():
    boxes = np.array([[10.0, 20.0, 30.0, 40.0]])
    out = rescale_boxes(boxes, (100, 200), (300, 100))  # y * 3, x * 0.5
    np.testing.assert_allclose(out, [[5.0, 60.0, 15.0, 120.0]])
    np.testing.assert_allclose(rescale_boxes(out, (300, 100), (100, 200)), boxes)


def test_rescale_boxes_empty():
    assert rescale_boxes([], (10, 10), (20, 20)).shape == (0, 4)


@pytest.mark.parametrize(
    "from_hw, to_hw, field",
    [((0, 10), (10, 10), "from_hw"), ((10, 10), (10, -1), "to_hw"), ((10,), (10, 10), "from_hw"),
     ((10, 10), (float("nan"), 10), "to_hw"), ("ab", (10, 10), "from_hw")],
)
def test_rescale_boxes_bad_sizes(from_hw, to_hw, field):
    with pytest.raises(ValueError, match=field):
        rescale_boxes([[1, 2, 3, 4]], from_hw, to_hw)


def test_rescale_boxes_bad_shape():
    with pytest.raises(ValueError, match="boxes"):
        rescale_boxes([[1, 2, 3]], (10, 10), (10, 10))


# ------------------------------------------------------------------------------------------- QA answers


@pytest.mark.parametrize(
    "response, lenient, strict",
    [
        ("<answer>\\boxed{42}</answer>", "42", "42"),
        ("<answer>  \\boxed{ 42 }\n</answer>", "42", "42"),
        ("<answer>The answer is \\boxed{42}.</answer>", "42", None),
        ("<answer>\\boxed{1} or \\boxed{2}</answer>", "2", None),
        ("<answer>\\boxed{\\frac{1}{2}}</answer>", "\\frac{1}{2}", "\\frac{1}{2}"),
        ("<answer>\\boxed{{a}{b{c}}}</answer>", "{a}{b{c}}", "{a}{b{c}}"),
        ("<answer>\\boxed{\\{1, 2\\}}</answer>", "\\{1, 2\\}", "\\{1, 2\\}"),  # escaped braces do not nest
        ("<answer>42</answer>", "42", None),
        ("<answer>\\boxed{}</answer>", None, None),  # an empty box is no answer
        ("<answer>\\boxed{42</answer>", "\\boxed{42", None),  # unbalanced
        ("<answer>\\boxed{1}} \\boxed{2</answer>", "1", None),
        ("\\boxed{42}", None, None),  # no answer tag
        ("<answer>\\boxed{1}</answer> <answer>\\boxed{2}</answer>", "2", "2"),
        ("<answer></answer>", None, None),
    ],
)
def test_parse_qa_answer(response, lenient, strict):
    assert parse_qa_answer(response) == lenient
    assert parse_qa_answer(response, strict=True) == strict
