"""Sudoku-style grids: the generator's solver agrees with the test's own on grids with 0, 1 and many
completions, puzzles have exactly one completion and keep empty cells to fill."""
import numpy as np

from qa_checkers import count_completions, scenes
from syngrpo_jax.data.qa import sudoku


def test_solver_agrees_with_an_independent_count():
    rng = np.random.default_rng(0)
    kinds = set()
    for n, box in ((4, (2, 2)), (4, None), (6, (2, 3))):
        for _ in range(40):
            solved = sudoku._solved(rng, n, box)
            grid = [int(v) for v in solved.ravel()]
            for k in rng.permutation(n * n)[:int(rng.integers(n, n * n))]:
                grid[k] = 0
            if rng.random() < 0.2:  # a clash: no completion
                k = int(rng.integers(n * n))
                grid[k] = grid[k - 1] if k % n and grid[k - 1] else grid[k]
            count, _ = count_completions(grid, n, box, limit=2)
            found = sudoku.solutions(grid, n, box, limit=2)
            assert len(found) == count, (n, box, grid)
            for s in found:  # every completion keeps the givens and obeys the rules
                assert all(g in (0, v) for g, v in zip(grid, s))
                assert count_completions(list(s), n, box)[0] == 1
            kinds.add(min(count, 2))
    assert kinds == {0, 1, 2}


def test_solved_grids_obey_the_rules():
    rng = np.random.default_rng(1)
    for n, box in ((4, (2, 2)), (4, None), (6, (2, 3)), (9, (3, 3))):
        for _ in range(10):
            g = sudoku._solved(rng, n, box)
            assert all(sorted(g[r]) == list(range(1, n + 1)) for r in range(n))
            assert all(sorted(g[:, c]) == list(range(1, n + 1)) for c in range(n))
            if box:
                br, bc = box
                for r0 in range(0, n, br):
                    for c0 in range(0, n, bc):
                        assert sorted(g[r0:r0 + br, c0:c0 + bc].ravel()) == list(range(1, n + 1))


def test_puzzles_per_level():
    for difficulty, sizes, min_empty in ((1, {4}, 0.25), (2, {6}, 0.3), (3, {9}, 0.35)):
        level = scenes("sudoku", difficulty)
        assert {s["n"] for s in level} == sizes
        empty = [sum(v == 0 for v in s["grid"]) / len(s["grid"]) for s in level]
        assert np.mean(empty) >= min_empty, np.mean(empty)
    assert {s["box"] is None for s in scenes("sudoku", 1)} == {True, False}  # Latin squares and boxes at level 1
