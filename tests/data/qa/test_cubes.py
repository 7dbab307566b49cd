"""Cubes: the generator's exact visibility (triangle ownership) equals ray casting on random stacks, and each
level asks its kinds of questions with answers that vary."""
import collections

import numpy as np

from qa_checkers import cube_visibility, scenes
from syngrpo_jax.data.qa import cubes


def test_visibility_equals_ray_casting():
    rng = np.random.default_rng(0)
    hidden_seen = 0
    for _ in range(150):
        h = rng.integers(0, 5, (int(rng.integers(1, 5)), int(rng.integers(1, 5))))
        if not h.any():
            continue
        structure = cubes.from_heights(h, ["red"] * int(h.sum()))
        cast = cube_visibility(structure)
        assert cubes.visible_cubes(structure) == {i for i, f in cast.items() if any(f.values())}
        tops = {}
        for i, (x, y, z, _) in enumerate(structure):
            tops[x, y] = max(tops.get((x, y), (-1, -1)), (z, i))
        assert cubes.tops_visible(structure) == all(cast[i]["top"] for _, i in tops.values())
        hidden_seen += len(structure) - len(cubes.visible_cubes(structure))
    assert hidden_seen > 0


def test_questions_per_level():
    kinds = {d: collections.Counter(s["kind"] for s in scenes("cubes", d)) for d in (1, 2, 3)}
    assert set(kinds[1]) == {"count"}
    assert set(kinds[2]) == {"count_color", "match"}
    assert set(kinds[3]) == {"total", "hidden", "match"}
    hidden = [int(s["answer"]) for s in scenes("cubes", 3) if s["kind"] == "hidden"]
    assert max(hidden) >= 3 and np.mean(hidden) > 1
    letters = collections.Counter(s["answer"] for s in scenes("cubes", 3) if s["kind"] == "match")
    assert set(letters) == set("ABCD") and min(letters.values()) >= 0.1 * sum(letters.values())
