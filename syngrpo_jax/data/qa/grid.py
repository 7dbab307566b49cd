"""Grid counting: coloured shapes in the cells of a square grid; count those matching a description.

    d1  3x3 grid, two shapes, two colours: "How many circles are there in the grid?"
    d2  4x4 grid, three shapes and colours: "How many red circles are there in the grid?"
    d3  5x5 grid, colour and shape within two rows or columns: "... in the top two rows of the grid?"

The answer is the number of cells whose shape, colour, row and column match the query.
"""
from __future__ import annotations

import numpy as np
from PIL import ImageDraw

from syngrpo_jax.data.qa.drawing import GRID_GRAY, canvas, sample_calm_background
from syngrpo_jax.data.shape_scene import COLORS, SHAPES, SceneObject, render_objects, sub_vocabulary

_LEVELS = {1: (3, 2, 2), 2: (4, 3, 3), 3: (5, 3, 3)}  # grid side, #shapes, #colours
FILL = 0.75  # probability that a cell holds a shape


def sample(rng: np.random.Generator, width: int, height: int, difficulty: int) -> dict:
    n, n_shapes, n_colors = _LEVELS[difficulty]
    shapes = sub_vocabulary(rng, SHAPES, n_shapes)
    colors = sub_vocabulary(rng, tuple(COLORS), n_colors)
    short = min(width, height)
    margin = max(3, round(0.05 * short))
    cell = (short - 2 * margin) // n
    gx, gy = (width - n * cell) // 2, (height - n * cell) // 2
    cells = []
    for row in range(n):
        for col in range(n):
            if rng.random() >= FILL:
                continue
            side = int(round(cell * rng.uniform(0.5, 0.72)))
            slack = cell - side - 4
            x1 = gx + col * cell + 2 + int(rng.integers(0, slack + 1))
            y1 = gy + row * cell + 2 + int(rng.integers(0, slack + 1))
            cells.append({"row": row, "col": col, "shape": shapes[int(rng.integers(len(shapes)))],
                          "color": colors[int(rng.integers(len(colors)))], "box": [x1, y1, x1 + side, y1 + side]})

    query = {"shape": shapes[int(rng.integers(len(shapes)))], "color": None, "rows": None, "cols": None}
    if difficulty >= 2:
        query["color"] = colors[int(rng.integers(len(colors)))]
    region = "the grid"
    if difficulty == 3:
        where = ["top", "bottom", "left", "right"][int(rng.integers(4))]
        span = list(range(2)) if where in ("top", "left") else list(range(n - 2, n))
        query["rows" if where in ("top", "bottom") else "cols"] = span
        region = f"the {where} two {'rows' if where in ('top', 'bottom') else 'columns'} of the grid"
    noun = f"{query['color']} {query['shape']}s" if query["color"] else f"{query['shape']}s"
    grid_box = [gx, gy, min(gx + n * cell + 1, width), min(gy + n * cell + 1, height)]
    return {"question": f"How many {noun} are there in {region}?", "answer": str(answer(cells, query)),
            "boxes": [grid_box] + [c["box"] for c in cells], "labels": ["grid"] + [c["shape"] for c in cells],
            "rows": n, "cols": n, "grid_box": grid_box, "cell": cell, "cells": cells, "query": query,
            "background": sample_calm_background(rng)}


def answer(cells: list[dict], query: dict) -> int:
    return sum(1 for c in cells if _matches(c, query))


def _matches(cell: dict, query: dict) -> bool:
    return (cell["shape"] == query["shape"]
            and (query["color"] is None or cell["color"] == query["color"])
            and (query["rows"] is None or cell["row"] in query["rows"])
            and (query["cols"] is None or cell["col"] in query["cols"]))


def render(scene: dict):
    image = canvas(scene)
    draw = ImageDraw.Draw(image)
    gx, gy = scene["grid_box"][:2]
    n, cell = scene["rows"], scene["cell"]
    for k in range(n + 1):
        draw.line([(gx + k * cell, gy), (gx + k * cell, gy + n * cell)], fill=GRID_GRAY, width=1)
        draw.line([(gx, gy + k * cell), (gx + n * cell, gy + k * cell)], fill=GRID_GRAY, width=1)
    objects = [SceneObject(c["shape"], c["color"], "small", tuple(c["box"])) for c in scene["cells"]]
    return render_objects(np.asarray(image), objects)
