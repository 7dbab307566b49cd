"""Cubes: isometric pictures of unit cubes stacked in columns on a floor grid.

The scene is the 3D model, a list of cubes (x, y, z, colour) on integer positions; columns stand on the floor
with no gaps. The picture is the model in isometric projection, seen from the direction (1, 1, 1): a cube shows
its top, +x and +y faces. Answers come from that model:

    d1  up to 6 cubes of one colour, all at least partly visible: "How many cubes are there?"
    d2  up to 10 cubes in 2-3 colours, all at least partly visible: "How many red cubes are there?", or
        "which of A, B, C is the structure turned around" (3 options)
    d3  up to 20 cubes, some hidden behind others, every column's top visible: "How many cubes are there in
        total?" / "How many cubes cannot be seen?", or the turned-around structure among 4 options

Visibility is exact, not estimated from pixels: projected along (1, 1, 1) the cube (x, y, z) covers the six
triangles of the triangular lattice around (x - z, y - z) (two per visible face); a ray through a triangle visits
cells with x + y + z increasing by one per cell, so the cube with the largest x + y + z among those covering a
triangle owns it. A cube is visible when it owns a triangle.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from syngrpo_jax.data.qa.drawing import GRID_GRAY, INK, canvas, font, sample_calm_background, shade, text
from syngrpo_jax.data.shape_scene import COLORS, sub_vocabulary

COS30 = math.sqrt(3) / 2
FACES = ("top", "x", "y")
FACE_SHADES = {"top": 1.35, "x": 1.0, "y": 0.68}
EVERY_CUBE_VISIBLE = "Every cube is at least partly visible."
STACK_RULE = ("The cubes stand in columns on the grey floor grid, with no gaps under any cube, and the top of every "
              "column can be seen.")
# footprint range (nx, ny from), max height, cube count range, colours, question kinds
_LEVELS = {
    1: ((2, 3), 2, (2, 7), 1, ("count",)),
    2: ((2, 4), 3, (4, 11), 3, ("count_color", "count_color", "match")),
    3: ((3, 4), 4, (7, 21), 2, ("total", "hidden", "match")),
}


def owners(cubes) -> dict[tuple[int, int, int], tuple[int, str]]:
    """{lattice triangle (i, j, t): (index of the cube that owns it, face)} for cubes given as (x, y, z, ...)."""
    owned = {}
    for i in sorted(range(len(cubes)), key=lambda k: sum(cubes[k][:3])):  # far to near: the nearest writes last
        x, y, z = cubes[i][:3]
        a, b = x - z, y - z
        for face, tris in (("top", ((a - 1, b - 1, 0), (a - 1, b - 1, 1))), ("x", ((a, b, 0), (a, b - 1, 1))),
                           ("y", ((a, b, 1), (a - 1, b, 0)))):
            for tri in tris:
                owned[tri] = (i, face)
    return owned


def visible_cubes(cubes) -> set[int]:
    return {i for i, _ in owners(cubes).values()}


def tops_visible(cubes) -> bool:
    """Whether the top face of every column's highest cube owns a triangle."""
    top_of = {}
    for i, (x, y, z, *_) in enumerate(cubes):
        if (x, y) not in top_of or z > cubes[top_of[x, y]][2]:
            top_of[x, y] = i
    seen = {i for i, face in owners(cubes).values() if face == "top"}
    return set(top_of.values()) <= seen


def from_heights(heights: np.ndarray, colors) -> list[list]:
    """Cubes [x, y, z, colour] of a height map (colours assigned in x, y, z order)."""
    cubes = [[int(x), int(y), int(z)] for x in range(heights.shape[0]) for y in range(heights.shape[1])
             for z in range(int(heights[x, y]))]
    return [c + [colors[k]] for k, c in enumerate(cubes)]


def heights_of(cubes, footprint) -> np.ndarray:
    h = np.zeros(footprint, int)
    for x, y, z, *_ in cubes:
        h[x, y] = max(h[x, y], z + 1)
    return h


def _normal(h: np.ndarray) -> bytes:
    """A height map without its empty border rows/columns, as a hashable key (shape included)."""
    xs, ys = np.nonzero(h)
    core = h[xs.min():xs.max() + 1, ys.min():ys.max() + 1]
    return bytes(str(core.shape), "ascii") + core.astype(np.int8).tobytes()


def rotations(h: np.ndarray) -> list[np.ndarray]:
    """The height map turned by 0, 90, 180 and 270 degrees about the vertical axis."""
    return [np.rot90(h, k) for k in range(4)]


def _random_heights(rng, footprint, max_h, lo, hi) -> np.ndarray:
    while True:
        h = rng.integers(0, max_h + 1, footprint)
        if lo <= h.sum() < hi and (h > 0).sum() >= 2:
            return h


def _sample_structure(rng, level, need) -> np.ndarray:
    (f_lo, f_hi), max_h, (lo, hi), _, _ = _LEVELS[level]
    for _ in range(1000):
        footprint = (int(rng.integers(f_lo, f_hi + 1)), int(rng.integers(f_lo, f_hi + 1)))
        h = _random_heights(rng, footprint, max_h, lo, hi)
        cubes = from_heights(h, [None] * int(h.sum()))
        if need == "all" and len(visible_cubes(cubes)) == len(cubes):
            return h
        if need == "tops" and tops_visible(cubes):
            return h
    raise RuntimeError(f"no cube structure with {need} visible in 1000 tries (level {level})")


def _distractor(rng, h: np.ndarray, forbidden: set[bytes]) -> np.ndarray | None:
    """`h` with one top cube moved onto another column (or a free floor cell), differing from every turn of h."""
    for _ in range(50):
        g = h.copy()
        src = [tuple(p) for p in np.argwhere(g > 0)]
        x, y = src[int(rng.integers(len(src)))]
        g[x, y] -= 1
        dst = [tuple(p) for p in np.argwhere(g < h.max()) if tuple(p) != (x, y)]
        if not dst:
            continue
        u, v = dst[int(rng.integers(len(dst)))]
        g[u, v] += 1
        cubes = from_heights(g, [None] * int(g.sum()))
        if _normal(g) not in forbidden and len(visible_cubes(cubes)) == len(cubes) and (g > 0).sum() >= 2:
            return g
    return None


def _turned(rng, h: np.ndarray, turns) -> np.ndarray | None:
    """`h` turned by a random one of `turns` (quarter turns) that keeps every cube visible; None if none does."""
    for k in rng.permutation(list(turns)):
        g = np.rot90(h, int(k))
        if len(visible_cubes(from_heights(g, [None] * int(g.sum())))) == int(g.sum()):
            return g
    return None


def _project(view: dict, p) -> tuple[float, float]:
    x, y, z = p
    s = view["scale"]
    return view["origin"][0] + s * COS30 * (x - y), view["origin"][1] + s * (0.5 * (x + y) - z)


def _fit(footprint, cubes, box, floor: bool, scale: float | None = None) -> dict:
    """A view (origin, scale in pixels per unit) that centres the structure (and floor) in `box`, at `scale` or
    as large as fits."""
    pts = [(x + i, y + j, z + k) for x, y, z, *_ in cubes for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    if floor:
        pts += [(0, 0, 0), (footprint[0], 0, 0), (0, footprint[1], 0), (footprint[0], footprint[1], 0)]
    us = [COS30 * (x - y) for x, y, z in pts]
    vs = [0.5 * (x + y) - z for x, y, z in pts]
    x1, y1, x2, y2 = box
    if scale is None:
        scale = min((x2 - x1) / (max(us) - min(us)), (y2 - y1) / (max(vs) - min(vs)))
    ox = (x1 + x2) / 2 - scale * (max(us) + min(us)) / 2
    oy = (y1 + y2) / 2 - scale * (max(vs) + min(vs)) / 2
    return {"origin": [round(ox, 3), round(oy, 3)], "scale": round(scale, 3), "floor": floor}


def _extent(view, footprint, cubes, width, height) -> list[int]:
    pts = [(x + i, y + j, z + k) for x, y, z, *_ in cubes for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    if view["floor"]:
        pts += [(0, 0, 0), (footprint[0], 0, 0), (0, footprint[1], 0), (footprint[0], footprint[1], 0)]
    uv = np.array([_project(view, p) for p in pts])
    return [max(0, math.floor(uv[:, 0].min()) - 1), max(0, math.floor(uv[:, 1].min()) - 1),
            min(width, math.ceil(uv[:, 0].max()) + 2), min(height, math.ceil(uv[:, 1].max()) + 2)]


def sample(rng: np.random.Generator, width: int, height: int, difficulty: int) -> dict:
    _, _, _, n_colors, kinds = _LEVELS[difficulty]
    kind = kinds[int(rng.integers(len(kinds)))]
    need = "tops" if kind in ("total", "hidden") else "all"
    h = _sample_structure(rng, difficulty, need)
    palette = sub_vocabulary(rng, tuple(COLORS), 1 if kind == "match" else n_colors)
    cubes = from_heights(h, [palette[int(rng.integers(len(palette)))] for _ in range(int(h.sum()))])
    footprint = [int(v) for v in h.shape]
    margin = max(3, round(0.05 * min(width, height)))
    scene = {"kind": kind, "footprint": footprint, "cubes": cubes, "options": [], "background":
             sample_calm_background(rng)}
    if kind == "match":
        return _match(rng, scene, h, difficulty, width, height, margin)
    view = _fit(footprint, cubes, [margin, margin, width - margin, height - margin], floor=True)
    n_visible = len(visible_cubes(cubes))
    if kind == "count":
        question, answer = f"How many cubes are there? {EVERY_CUBE_VISIBLE}", len(cubes)
    elif kind == "count_color":
        color = palette[int(rng.integers(len(palette)))]
        scene["query_color"] = color
        question = f"How many {color} cubes are there? {EVERY_CUBE_VISIBLE}"
        answer = sum(1 for c in cubes if c[3] == color)
    elif kind == "total":
        question, answer = f"{STACK_RULE} How many cubes are there in total?", len(cubes)
    else:
        question, answer = f"{STACK_RULE} How many cubes cannot be seen in the picture?", len(cubes) - n_visible
    box = _extent(view, footprint, cubes, width, height)
    return {**scene, "view": view, "question": question, "answer": str(answer), "boxes": [box],
            "labels": ["cubes"]}


def _match(rng, scene, h, difficulty, width, height, margin) -> dict:
    """The structure on the left; on the right, options: one is it turned around, the others differ by a cube."""
    n_options = 3 if difficulty == 2 else 4
    forbidden = {_normal(r) for r in rotations(h)}  # the answer, and every option already chosen, in any turn
    candidates = [_turned(rng, h, (1, 2, 3))]
    while len(candidates) < n_options and candidates[0] is not None:
        g = _distractor(rng, h, forbidden)
        if g is None:
            break
        forbidden |= {_normal(r) for r in rotations(g)}
        candidates.append(_turned(rng, g, (0, 1, 2, 3)))
    if len(candidates) < n_options or any(c is None for c in candidates):  # no clear options: draw another
        return sample(rng, width, height, difficulty)
    order = rng.permutation(n_options)
    letters = [chr(ord("A") + k) for k in range(n_options)]
    color = scene["cubes"][0][3]
    split = round(width * 0.55)
    view = _fit(scene["footprint"], scene["cubes"], [margin, margin, split - margin, height - margin], floor=True)
    boxes, labels, options = [_extent(view, scene["footprint"], scene["cubes"], width, height)], ["cubes"], []
    rows = (n_options + 1) // 2
    cell_w, cell_h = (width - split - margin) / 2, (height - 2 * margin) / rows
    fs = max(7, round(min(width, height) / 18))
    structures = [from_heights(candidates[k], [color] * int(candidates[k].sum())) for k in order]
    inner = [[cx + 2, cy + fs + 2, cx + cell_w - 2, cy + cell_h - 2] for cx, cy in
             ((split + (slot % 2) * cell_w, margin + (slot // 2) * cell_h) for slot in range(n_options))]
    # One scale for all options, so that size gives nothing away.
    scale = min(_fit(None, cubes, box, floor=False)["scale"] for cubes, box in zip(structures, inner))
    for slot, k in enumerate(order):
        g, cubes = candidates[k], structures[slot]
        cx, cy = inner[slot][0] - 2, inner[slot][1] - fs - 2
        oview = _fit(None, cubes, inner[slot], floor=False, scale=scale)
        options.append({"letter": letters[slot], "footprint": [int(v) for v in g.shape], "cubes": cubes,
                        "view": oview, "label_px": [round(cx + fs / 2 + 1), round(cy + fs / 2 + 1)]})
        boxes.append(_extent(oview, g.shape, cubes, width, height))
        labels.append(f"option {letters[slot]}")
    answer = letters[int(np.argmax(order == 0))]
    names = ", ".join(letters[:-1]) + f" and {letters[-1]}"
    question = (f"Which of the structures {names} is the large structure on the left turned around (rotated "
                "about a vertical axis)? Answer with the letter.")
    return {**scene, "view": view, "options": options, "font_px": fs, "question": question, "answer": answer,
            "boxes": boxes, "labels": labels}


def _draw_structure(draw: ImageDraw.ImageDraw, footprint, cubes, view) -> None:
    if view["floor"]:
        for i in range(footprint[0] + 1):
            draw.line([_project(view, (i, 0, 0)), _project(view, (i, footprint[1], 0))], fill=GRID_GRAY)
        for j in range(footprint[1] + 1):
            draw.line([_project(view, (0, j, 0)), _project(view, (footprint[0], j, 0))], fill=GRID_GRAY)
    for x, y, z, color in sorted(cubes, key=lambda c: c[0] + c[1] + c[2]):
        quads = {"top": [(x, y, z + 1), (x + 1, y, z + 1), (x + 1, y + 1, z + 1), (x, y + 1, z + 1)],
                 "x": [(x + 1, y, z), (x + 1, y + 1, z), (x + 1, y + 1, z + 1), (x + 1, y, z + 1)],
                 "y": [(x, y + 1, z), (x + 1, y + 1, z), (x + 1, y + 1, z + 1), (x, y + 1, z + 1)]}
        for face in FACES:
            draw.polygon([_project(view, p) for p in quads[face]], fill=shade(COLORS[color], FACE_SHADES[face]),
                         outline=shade(COLORS[color], 0.4))


def render(scene: dict) -> Image.Image:
    image = canvas(scene)
    draw = ImageDraw.Draw(image)
    _draw_structure(draw, scene["footprint"], scene["cubes"], scene["view"])
    if scene["options"]:
        fnt = font(scene["font_px"])
        for option in scene["options"]:
            _draw_structure(draw, option["footprint"], option["cubes"], option["view"])
            text(draw, option["label_px"], option["letter"], fnt, fill=INK)
    return image
