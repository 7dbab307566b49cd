"""Sudoku-style grids: the digit that belongs in the marked cell of a partly filled grid.

The rules are stated in the question; the grid has exactly one completion (checked by `solutions`), so the
marked cell's digit is determined:

    d1  4x4, every row and column holds 1-4 once (a Latin square), or with 2x2 boxes as well
    d2  6x6 with 2x3 boxes
    d3  9x9 with 3x3 boxes, more empty cells

Generation: a solved grid (a pattern, shuffled by symbols, rows within bands, bands, columns within stacks,
stacks), then a set of cells emptied at once; while the grid has a second completion, one cell where the two
completions differ is given back. A grid is a tuple of n*n ints, 0 for empty.
"""
from __future__ import annotations

import numpy as np
from PIL import ImageDraw

from syngrpo_jax.data.qa.drawing import INK, MARK_COLOR, canvas, font, sample_calm_background, text

TARGET_FILL = (255, 205, 205)  # the asked cell: pale red behind a red "?"
# size, box shape (rows, cols) or None, empty-cell fraction range
_LEVELS = {1: ((4, (2, 2), (0.4, 0.6)), (4, None, (0.3, 0.45))),
           2: ((6, (2, 3), (0.4, 0.55)),),
           3: ((9, (3, 3), (0.45, 0.6)),)}


def units(n: int, box: tuple[int, int] | None) -> list[list[int]]:
    """The cell groups (rows, columns, boxes) that must each hold every digit 1..n once."""
    out = [[r * n + c for c in range(n)] for r in range(n)] + [[r * n + c for r in range(n)] for c in range(n)]
    if box is not None:
        br, bc = box
        out += [[(r0 + r) * n + c0 + c for r in range(br) for c in range(bc)]
                for r0 in range(0, n, br) for c0 in range(0, n, bc)]
    return out


def solutions(grid, n: int, box, limit: int = 2) -> list[tuple[int, ...]]:
    """Up to `limit` completions of `grid` (bitmask backtracking, the most constrained empty cell first)."""
    peers = [set() for _ in range(n * n)]
    for unit in units(n, box):
        for cell in unit:
            peers[cell].update(unit)
    for cell in range(n * n):
        peers[cell].discard(cell)
    peers = [tuple(p) for p in peers]
    full = (1 << (n + 1)) - 2  # bits 1..n
    cells = list(grid)
    found: list[tuple[int, ...]] = []

    def candidates(cell):
        used = 0
        for p in peers[cell]:
            used |= 1 << cells[p]
        return full & ~used

    def search():
        best, best_mask, best_count = -1, 0, n + 1
        for cell in range(n * n):
            if cells[cell] == 0:
                mask = candidates(cell)
                count = bin(mask).count("1")
                if count < best_count:
                    best, best_mask, best_count = cell, mask, count
                    if count <= 1:
                        break
        if best < 0:
            found.append(tuple(cells))
            return len(found) >= limit
        for d in range(1, n + 1):
            if best_mask >> d & 1:
                cells[best] = d
                if search():
                    return True
        cells[best] = 0
        return False

    for cell, d in enumerate(grid):  # a given that clashes with a peer: no completion
        if d and any(grid[p] == d for p in peers[cell]):
            return []
    search()
    return found


def _solved(rng: np.random.Generator, n: int, box) -> np.ndarray:
    if box is None:  # Latin square: cyclic pattern, rows, columns and symbols shuffled
        g = (np.arange(n)[:, None] + np.arange(n)[None, :]) % n
        g = g[rng.permutation(n)][:, rng.permutation(n)]
    else:
        br, bc = box
        r, c = np.arange(n)[:, None], np.arange(n)[None, :]
        g = (bc * (r % br) + r // br + c) % n  # the standard valid pattern for br x bc boxes
        rows = np.concatenate([b * br + rng.permutation(br) for b in rng.permutation(n // br)])
        cols = np.concatenate([s * bc + rng.permutation(bc) for s in rng.permutation(n // bc)])
        g = g[rows][:, cols]
    return rng.permutation(n)[g] + 1


def _puzzle(rng, solved: np.ndarray, n: int, box, frac) -> list[int]:
    truth = tuple(int(v) for v in solved.ravel())
    empty = rng.permutation(n * n)[:int(round(rng.uniform(*frac) * n * n))]
    grid = list(truth)
    for cell in empty:
        grid[cell] = 0
    while True:
        found = solutions(grid, n, box, limit=2)
        other = [s for s in found if s != truth]
        if not other:
            return grid
        differ = [k for k in range(n * n) if other[0][k] != truth[k]]
        k = differ[int(rng.integers(len(differ)))]
        grid[k] = truth[k]


def sample(rng: np.random.Generator, width: int, height: int, difficulty: int) -> dict:
    options = _LEVELS[difficulty]
    n, box, frac = options[int(rng.integers(len(options)))]
    solved = _solved(rng, n, box)
    grid = _puzzle(rng, solved, n, box, frac)
    blanks = [k for k in range(n * n) if grid[k] == 0]
    target = int(blanks[int(rng.integers(len(blanks)))])
    rules = "every row and every column" if box is None else (
        f"every row, every column and every outlined {box[0]}x{box[1]} box")
    question = (f"Fill the grid so that {rules} contains each of the digits 1 to {n} exactly once. "
                "Which digit belongs in the red cell with the question mark?")
    short = min(width, height)
    cell = (short - 2 * max(3, round(0.05 * short))) // n
    gx, gy = (width - n * cell) // 2, (height - n * cell) // 2
    grid_box = [gx, gy, gx + n * cell + 1, gy + n * cell + 1]
    r, c = divmod(target, n)
    target_box = [gx + c * cell, gy + r * cell, gx + (c + 1) * cell + 1, gy + (r + 1) * cell + 1]
    return {"question": question, "answer": str(int(solved.ravel()[target])), "boxes": [grid_box, target_box],
            "labels": ["grid", "marked cell"], "n": n, "box": list(box) if box else None, "grid": grid,
            "target": target, "origin_px": [gx, gy], "cell_px": cell, "background": sample_calm_background(rng)}


def render(scene: dict):
    image = canvas(scene)
    draw = ImageDraw.Draw(image)
    n, cell, box = scene["n"], scene["cell_px"], scene["box"]
    gx, gy = scene["origin_px"]
    draw.rectangle([gx, gy, gx + n * cell, gy + n * cell], fill=(255, 255, 255))
    r, c = divmod(scene["target"], n)
    draw.rectangle([gx + c * cell, gy + r * cell, gx + (c + 1) * cell, gy + (r + 1) * cell], fill=TARGET_FILL)
    thick = max(2, round(cell / 10))  # box outlines; a Latin square has no boxes, so all lines are thin
    for k in range(n + 1):
        row_w = thick if box is not None and k % box[0] == 0 else 1
        col_w = thick if box is not None and k % box[1] == 0 else 1
        draw.line([(gx, gy + k * cell), (gx + n * cell, gy + k * cell)], fill=INK, width=row_w)
        draw.line([(gx + k * cell, gy), (gx + k * cell, gy + n * cell)], fill=INK, width=col_w)
    fnt = font(round(cell * 0.6))
    for k, d in enumerate(scene["grid"]):
        r, c = divmod(k, n)
        xy = (gx + (c + 0.5) * cell, gy + (r + 0.5) * cell)
        if k == scene["target"]:
            text(draw, xy, "?", fnt, fill=MARK_COLOR)
        elif d:
            text(draw, xy, str(d), fnt, fill=INK)
    return image
