"""Adaptive difficulty: the pure pieces against formulas written here, and the controller driven by scripted
"policies" whose pass rate depends on the difficulty (and, for one, improves with training)."""
import json

import numpy as np
import pytest

from syngrpo_jax.data.difficulty import (DifficultyController, ema, fresh_example, fresh_samples, nearest_difficulty,
                                         relax)
from syngrpo_jax.data.engine import EngineConfig, make_example
from syngrpo_jax.data.qa_jsonl import read_qa, write_qa_jsonl
from syngrpo_jax.data.sample import load_image

BATCH, GROUP = 8, 4  # prompts per family and step, responses per prompt


def test_nearest_difficulty_ema_and_relax():
    assert nearest_difficulty({1: 0.9, 2: 0.6, 3: 0.2}) == 2
    assert nearest_difficulty({1: 0.9, 2: 0.8, 3: 0.45}) == 3
    assert nearest_difficulty({1: 0.7, 2: 0.3, 3: 0.1}) == 1  # |0.7-0.5| = |0.3-0.5|: the easier
    assert nearest_difficulty({1: 0.9, 2: None, 3: 0.5}) == 2  # unseen counts as at the target; ties: easier
    assert nearest_difficulty({1: 0.9, 2: 0.8, 3: 0.7}, target=0.75) == 2
    assert ema(None, 0.25, 0.8) == 0.25 and ema(0.5, 1.0, 0.8) == pytest.approx(0.8 * 0.5 + 0.2 * 1.0)
    assert relax(0.9, 0.5, 0.25) == pytest.approx(0.9 - 0.25 * 0.4) and relax(None, 0.5, 0.25) is None
    with pytest.raises(ValueError, match="rates is empty"):
        nearest_difficulty({})


def run(controller, pass_rate, steps, seed=0):
    """Per step and family: generate at the chosen level, a scripted policy answers BATCH x GROUP responses, each
    correct with probability pass_rate(family, level, step); returns {family: [chosen level per step]}."""
    rng = np.random.default_rng(seed)
    chosen = {f: [] for f in controller.families}
    for step in range(steps):
        for family in controller.families:
            level = controller.choose(family)
            acc = (rng.random(BATCH * GROUP) < pass_rate(family, level, step)).astype(float)
            controller.update(family, {level: acc})
            chosen[family].append(level)
    return chosen


# Stationary policies; the level nearest 0.5 is 3 for cubes, 1 for sudoku, 2 for geometry (no ties).
RATES = {"cubes": {1: 0.95, 2: 0.75, 3: 0.4}, "sudoku": {1: 0.55, 2: 0.2, 3: 0.05},
         "geometry": {1: 0.9, 2: 0.45, 3: 0.15}}
BEST = {"cubes": 3, "sudoku": 1, "geometry": 2}
SETTLE = 5  # steps to reach the level nearest the target: one per level to try, plus two


def test_controller_moves_to_the_difficulty_nearest_the_target_and_stays():
    controller = DifficultyController(families=tuple(RATES))
    chosen = run(controller, lambda f, d, step: RATES[f][d], steps=SETTLE + 60)
    for family, levels in chosen.items():
        assert levels[SETTLE - 1] == BEST[family], (family, levels[:SETTLE])
        after = levels[SETTLE:]
        # It stays there, apart from an occasional re-check of a level whose estimate has gone stale.
        assert sum(d == BEST[family] for d in after) >= 0.9 * len(after), (family, after)


def test_controller_follows_an_improving_policy():
    """The policy's skill rises from 0.8 to 3 over training and a level passes with probability
    sigmoid(3 (skill - level)): the level nearest 0.5 moves 1 -> 2 -> 3, and the controller follows."""
    def pass_rate(family, level, step):
        return 1 / (1 + np.exp(-3 * (0.8 + 2.2 * step / (steps - 1) - level)))

    def best(step):
        return nearest_difficulty({d: pass_rate("cubes", d, step) for d in (1, 2, 3)})

    steps = 120
    levels = run(DifficultyController(families=("cubes",)), pass_rate, steps, seed=1)["cubes"]
    optimum = [best(s) for s in range(steps)]
    assert optimum[0] == 1 and optimum[-1] == 3 and 2 in optimum
    agree = np.mean([a == b for a, b in zip(levels, optimum)])
    assert agree >= 0.75, (agree, levels, optimum)
    assert levels[-10:] == [3] * 10


def test_a_level_that_was_too_hard_is_retried_once_its_estimate_goes_stale():
    controller = DifficultyController(families=("cubes",), relax=0.1)
    controller.update("cubes", {1: [1.0] * 8, 2: [0.5] * 8, 3: [0.0] * 8})
    retried = []
    for _ in range(30):
        controller.update("cubes", {2: [0.5] * 8})  # level 3 is never observed: it relaxes towards 0.5
        retried.append(controller.choose("cubes"))
    assert retried[0] == 2 and controller.rates["cubes"][3] == pytest.approx(0.5 * (1 - 0.9 ** 30))
    assert controller.rates["cubes"][1] > 0.5


def test_state_round_trip_and_errors():
    controller = DifficultyController(families=("cubes", "sudoku"))
    run(controller, lambda f, d, step: RATES[f][d], steps=7)
    again = DifficultyController(families=("cubes", "sudoku"))
    again.load_state_dict(json.loads(json.dumps(controller.state_dict())))
    assert again.rates == controller.rates and again.choose("sudoku") == controller.choose("sudoku")
    with pytest.raises(ValueError, match="'pie_chart' is not controlled"):
        controller.choose("pie_chart")
    with pytest.raises(ValueError, match=r"accuracies\[2\]"):
        controller.update("cubes", {2: [1.5]})
    with pytest.raises(ValueError, match=r"difficulties \[4\]"):
        controller.update("cubes", {4: [1.0]})
    with pytest.raises(ValueError, match="target=2"):
        DifficultyController(target=2)
    with pytest.raises(ValueError, match="families="):
        DifficultyController(families=("histogram",))


def test_fresh_samples_at_the_chosen_difficulty(tmp_path):
    cfg = EngineConfig(width=96, height=80, photo=True)
    ex = fresh_example(cfg, 0, "sudoku", 3, 0)
    assert ex.meta == {"difficulty": 3, "qa_category": "sudoku"} and ex.scene["n"] == 9
    again = fresh_example(cfg, 0, "sudoku", 3, 0)
    assert again.scene == ex.scene and np.array_equal(np.asarray(again.image), np.asarray(ex.image))
    assert fresh_example(cfg, 0, "sudoku", 3, 1).scene != ex.scene
    training = [make_example("qa", 0, i, EngineConfig(width=96, height=80, families=("sudoku",), difficulty=3))
                for i in range(4)]
    assert all(t.scene["grid"] != ex.scene["grid"] for t in training)  # its own stream, not the training scenes
    samples = fresh_samples(tmp_path, cfg, 0, "cubes", 2, start=5, count=3)
    assert [s.sample_id for s in samples] == [f"qa-fresh-cubes-d2-{i:06d}" for i in (5, 6, 7)]
    assert all(s.meta["difficulty"] == 2 and s.meta["qa_category"] == "cubes" for s in samples)
    write_qa_jsonl(samples, tmp_path / "fresh.jsonl", tmp_path)
    read = read_qa(tmp_path / "fresh.jsonl")
    assert [r.answer for r in read] == [s.answer for s in samples]
    assert load_image(read[0]).size == (96, 80)
