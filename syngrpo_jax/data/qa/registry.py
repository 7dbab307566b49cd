r"""The QA families by name: how each samples a scene and renders it, and `generate_qa`, which does both.

A family is two pure functions:

  sample(rng, width, height, difficulty) -> dict   the scene as JSON: the question, the exact answer (the
                                                   string that belongs in `\boxed{}`), foreground boxes (x1, y1,
                                                   x2, y2 pixels) with a label each, and everything the picture is
                                                   drawn from (values, coordinates, the background description)
  render(scene) -> PIL.Image                       the picture, from the scene JSON alone (no randomness left)

so an answer can be audited from the scene without pixels, the same scene always gives the same pixels, and
tests can check thousands of scenes while rendering few. The engine, configs (`data.engine.families`) and the
gallery name families by the keys of `FAMILIES`; the data-engine approach's six families are grid shapes
(grid_count), cubes, charts (bar_chart and pie_chart), Sudoku-style grids (sudoku), function graphs
(function_graph) and Euclidean geometry (geometry).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from PIL import Image

from syngrpo_jax.data.qa import bar_chart, cubes, function_graph, geometry, grid, pie_chart, sudoku

DIFFICULTIES = (1, 2, 3)


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    sample: Callable[[np.random.Generator, int, int, int], dict]
    render: Callable[[dict], Image.Image]
    summary: str  # one line, for listings and the gallery


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("grid_count", grid.sample, grid.render, "count shapes in a grid by shape, colour, rows/columns"),
    Family("bar_chart", bar_chart.sample, bar_chart.render, "read a bar, or the difference of two bars"),
    Family("pie_chart", pie_chart.sample, pie_chart.render, "read a share, compare two slices, the largest"),
    Family("cubes", cubes.sample, cubes.render, "count cubes (by colour, hidden ones), the turned-around structure"),
    Family("sudoku", sudoku.sample, sudoku.render, "the digit of a marked cell in a grid with one completion"),
    Family("function_graph", function_graph.sample, function_graph.render, "the value of a drawn line/parabola"),
    Family("geometry", geometry.sample, geometry.render, "lengths, angles, areas, parallel/perpendicular lines"),
)}
QA_CATEGORIES = tuple(FAMILIES)


@dataclasses.dataclass(frozen=True)
class QAExample:
    image: Image.Image
    question: str
    answer: str  # exactly what belongs inside \boxed{}
    boxes: list[list[int]]  # x1, y1, x2, y2 pixels of foreground elements
    labels: list[str]
    category: str
    difficulty: int
    scene: dict  # JSON-able: everything the answer and the picture come from

    @property
    def boxed(self) -> str:
        """The reference answer as the policy must write it inside <answer>."""
        return f"\\boxed{{{self.answer}}}"


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"qa family {name!r} is unknown; known: {QA_CATEGORIES}")
    return FAMILIES[name]


def sample_scene(rng: np.random.Generator, category: str, width: int, height: int, difficulty: int) -> dict:
    """The scene JSON of one `category` question at `difficulty` (no rendering)."""
    fam = family(category)
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty {difficulty!r} must be one of {DIFFICULTIES}")
    return {"category": category, "difficulty": difficulty, "width": width, "height": height,
            **fam.sample(rng, width, height, difficulty)}


def render_scene(scene: dict) -> Image.Image:
    """The RGB picture of a scene made by `sample_scene` (or read back from JSON)."""
    image = family(scene["category"]).render(scene)
    if image.size != (scene["width"], scene["height"]) or image.mode != "RGB":
        raise RuntimeError(f"{scene['category']} rendered {image.mode} {image.size}, "
                             f"expected RGB {(scene['width'], scene['height'])}")
    return image


def generate_qa(rng: np.random.Generator, category: str, width: int, height: int, difficulty: int) -> QAExample:
    """A rendered `category` question at `difficulty` drawn from `rng`."""
    scene = sample_scene(rng, category, width, height, difficulty)
    return QAExample(render_scene(scene), scene["question"], scene["answer"], scene["boxes"], scene["labels"],
                     category, difficulty, scene)
