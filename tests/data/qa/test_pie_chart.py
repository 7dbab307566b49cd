"""Pie charts: each level asks its kinds of questions; percentages are printed at levels 1 and 2 only."""
import collections

from qa_checkers import scenes


def test_kinds_and_labels_per_level():
    expected = {1: {"share", "largest"}, 2: {"difference", "sum"}, 3: {"compare", "largest"}}
    for difficulty, kinds in expected.items():
        level = scenes("pie_chart", difficulty)
        assert {s["query"]["kind"] for s in level} == kinds
        assert {s["percent_labels"] for s in level} == {difficulty < 3}
        assert {len(s["shares"]) for s in level} == {1: {3, 4}, 2: {4, 5}, 3: {5, 6}}[difficulty]
    letters = collections.Counter(s["answer"] for s in scenes("pie_chart", 3))
    assert len(letters) >= 5  # the largest slice is not always the same letter
