"""Geometry: every level asks its kinds of questions, answers take the stated exact forms."""
import collections
import re

from qa_checkers import scenes

FORMS = {"rect_area": r"\d+", "rect_perimeter": r"\d+", "third_angle": r"\d+", "hypotenuse": r"\d+",
         "isosceles_base": r"\d+", "grid_area": r"\d+(\.5)?", "grid_length": r"\d+",
         "line_relation": r"parallel|perpendicular|neither", "grid_angle": r"45|90|135"}


def test_kinds_and_answer_forms_per_level():
    expected = {1: {"rect_area", "rect_perimeter", "third_angle"},
                2: {"hypotenuse", "isosceles_base", "grid_area"},
                3: {"grid_length", "line_relation", "grid_angle"}}
    for difficulty, kinds in expected.items():
        level = scenes("geometry", difficulty)
        assert {s["kind"] for s in level} == kinds
        for s in level:
            assert re.fullmatch(FORMS[s["kind"]], s["answer"]), (s["kind"], s["answer"])
    relations = collections.Counter(s["answer"] for s in scenes("geometry", 3) if s["kind"] == "line_relation")
    assert set(relations) == {"parallel", "perpendicular", "neither"}
    assert any(s["answer"].endswith(".5") for s in scenes("geometry", 2) if s["kind"] == "grid_area")
