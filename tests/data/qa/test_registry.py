"""The QA families' contract, for every family and difficulty: 500 scenes whose answers an independent checker
(tests/qa_checkers.py) recomputes from the question text and the scene JSON; valid boxes; pictures that are a
pure function of the scene JSON and agree with it."""
import json

import numpy as np
import pytest

from qa_checkers import CHECKS, HEIGHT, PIXELS, WIDTH, scenes
from syngrpo_jax.data.qa import DIFFICULTIES, FAMILIES, QA_CATEGORIES, generate_qa, render_scene, sample_scene
from syngrpo_jax.data.sample import Sample

CASES = [(f, d) for f in QA_CATEGORIES for d in DIFFICULTIES]


def test_the_six_families_are_registered_and_checked():
    assert set(QA_CATEGORIES) == set(CHECKS) == {"grid_count", "cubes", "bar_chart", "pie_chart", "sudoku",
                                                 "function_graph", "geometry"}
    assert all(FAMILIES[name].name == name and FAMILIES[name].summary for name in FAMILIES)


@pytest.mark.parametrize("family, difficulty", CASES)
def test_500_answers_recomputed_independently(family, difficulty):
    answers = set()
    for scene in scenes(family, difficulty):
        assert (scene["category"], scene["difficulty"]) == (family, difficulty)
        assert isinstance(scene["answer"], str) and scene["answer"] == scene["answer"].strip() != ""
        assert "{" not in scene["answer"] and "}" not in scene["answer"]  # it goes inside \boxed{}
        CHECKS[family](scene)
        # Boxes are valid and inside the image (Sample validates them), one label each.
        Sample("x", "qa", "/x.png", query=scene["question"], boxes=scene["boxes"], labels=tuple(scene["labels"]),
               answer=scene["answer"], image_size=(WIDTH, HEIGHT))
        answers.add(scene["answer"])
    assert len(answers) >= 3, answers  # not a constant answer


@pytest.mark.parametrize("family, difficulty", CASES)
def test_pictures_are_a_function_of_the_scene_json_and_match_it(family, difficulty):
    for scene in scenes(family, difficulty)[:4]:
        first = np.asarray(render_scene(scene))
        again = np.asarray(render_scene(json.loads(json.dumps(scene))))  # what the scenes file holds
        assert first.shape == (HEIGHT, WIDTH, 3) and first.dtype == np.uint8
        np.testing.assert_array_equal(first, again)
        PIXELS[family](scene, first.astype(int))


def test_generate_qa_is_deterministic_and_boxes_its_answer():
    for family in QA_CATEGORIES:
        a = generate_qa(np.random.default_rng(5), family, WIDTH, HEIGHT, 2)
        b = generate_qa(np.random.default_rng(5), family, WIDTH, HEIGHT, 2)
        assert a.scene == b.scene and a.answer == a.scene["answer"] and a.boxed == f"\\boxed{{{a.answer}}}"
        np.testing.assert_array_equal(np.asarray(a.image), np.asarray(b.image))


def test_unknown_family_or_difficulty_is_named():
    with pytest.raises(ValueError, match="'histogram'"):
        sample_scene(np.random.default_rng(0), "histogram", WIDTH, HEIGHT, 1)
    with pytest.raises(ValueError, match="difficulty 4"):
        sample_scene(np.random.default_rng(0), "cubes", WIDTH, HEIGHT, 4)
