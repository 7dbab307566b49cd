"""Independent answer checkers for the QA families (tests/data/qa, tests/data/test_engine.py).

Each `check_<family>(scene)` reads the question TEXT and the scene JSON, recomputes the answer with code written
here (its own parsing, its own solver, ray casting, vector arithmetic; nothing from syngrpo_jax.data.qa), and
asserts that it equals the stored answer, and that what the question claims about the picture holds for the
scene. `pixels_<family>(scene, pixels)` checks the rendered picture against the scene. CHECKS and PIXELS map
family names to them.
"""
import functools
import math
import re
from fractions import Fraction

import numpy as np

from syngrpo_jax.data.qa import sample_scene
from syngrpo_jax.data.shape_scene import COLORS

WIDTH, HEIGHT = 144, 112  # not square, so that a width/height mix-up shows
RED = (220, 38, 38)
SEED = 20_251_130


@functools.cache
def scenes(family: str, difficulty: int, n: int = 500) -> tuple[dict, ...]:
    """`n` scenes of a family at a difficulty (sampled, not rendered), the same ones in every test."""
    return tuple(sample_scene(np.random.default_rng([SEED, difficulty, i]), family, WIDTH, HEIGHT, difficulty)
                 for i in range(n))


# ---------------------------------------------------------------- grid_count

def check_grid_count(scene):
    m = re.fullmatch(r"How many (?:(\w+) )?(\w+)s are there in "
                     r"(?:the grid|the (top|bottom|left|right) two (rows|columns) of the grid)\?", scene["question"])
    assert m, scene["question"]
    color, shape, where = m.group(1), m.group(2), m.group(3)
    n = scene["rows"]
    rows = cols = range(n)
    if where in ("top", "bottom"):
        rows = range(2) if where == "top" else range(n - 2, n)
    if where in ("left", "right"):
        cols = range(2) if where == "left" else range(n - 2, n)
    count = sum(1 for c in scene["cells"] if c["shape"] == shape and color in (None, c["color"])
                and c["row"] in rows and c["col"] in cols)
    assert scene["answer"] == str(count)
    gx, gy = scene["grid_box"][:2]
    size = scene["cell"]
    for c in scene["cells"]:
        x1, y1, x2, y2 = c["box"]
        assert gx + c["col"] * size < x1 < x2 < gx + (c["col"] + 1) * size, c  # inside its column
        assert gy + c["row"] * size < y1 < y2 < gy + (c["row"] + 1) * size, c  # inside its row


def pixels_grid_count(scene, pixels):
    for c in scene["cells"]:
        x1, y1, x2, y2 = c["box"]
        assert tuple(pixels[(y1 + y2) // 2, (x1 + x2) // 2]) == COLORS[c["color"]], c


# ---------------------------------------------------------------- bar_chart

def check_bar_chart(scene):
    value = dict(zip(scene["names"], scene["values"]))
    m = re.fullmatch(r"What is the value of bar (\w)\?", scene["question"])
    if m:
        expected = value[m.group(1)]
    else:
        m = re.fullmatch(r"How much greater is the value of bar (\w) than the value of bar (\w)\?", scene["question"])
        assert m, scene["question"]
        expected = value[m.group(1)] - value[m.group(2)]
        assert expected > 0
    assert scene["answer"] == str(expected)
    assert all(v % 10 == 0 and 0 < v <= scene["vmax"] for v in scene["values"])
    per_px = scene["vmax"] / scene["plot_height"]
    assert scene["labels"][0] == "chart"
    for k, name in enumerate(scene["names"]):
        x1, y1, x2, y2 = scene["boxes"][1 + k]
        assert scene["labels"][1 + k] == f"bar {name}" and y2 == scene["baseline_y"]
        assert abs((y2 - y1) * per_px - value[name]) <= per_px / 2 + 1e-9, (name, y1, y2)


def pixels_bar_chart(scene, pixels):
    for k, _ in enumerate(scene["names"]):
        x1, y1, x2, y2 = scene["boxes"][1 + k]
        assert tuple(pixels[(y1 + y2) // 2, (x1 + x2) // 2]) == COLORS[scene["colors"][k]]


# ---------------------------------------------------------------- pie_chart

def check_pie_chart(scene):
    share = dict(zip(scene["names"], scene["shares"]))
    q = scene["question"]
    assert sum(share.values()) == 100 and all(s % 5 == 0 and s >= 10 for s in share.values())
    clear = 5 if scene["percent_labels"] else 10  # unlabelled slices must differ visibly
    if m := re.fullmatch(r"What percentage of the whole pie is slice (\w)\? Answer with a number.*", q):
        assert scene["percent_labels"]
        expected = str(share[m.group(1)])
    elif m := re.fullmatch(r"What percentage of the whole pie do slices (\w) and (\w) make up together\?.*", q):
        assert scene["percent_labels"]
        expected = str(share[m.group(1)] + share[m.group(2)])
    elif m := re.fullmatch(r"How many percentage points larger is slice (\w) than slice (\w)\?.*", q):
        assert scene["percent_labels"]
        expected = str(share[m.group(1)] - share[m.group(2)])
        assert share[m.group(1)] - share[m.group(2)] >= clear
    elif m := re.fullmatch(r"Which slice is larger, (\w) or (\w)\? Answer with the slice's letter\.", q):
        a, b = share[m.group(1)], share[m.group(2)]
        assert abs(a - b) >= clear
        expected = m.group(1) if a > b else m.group(2)
    else:
        assert re.fullmatch(r"Which slice of the pie chart is the largest\? Answer with the slice's letter\.", q), q
        ranked = sorted(share.items(), key=lambda kv: -kv[1])
        assert ranked[0][1] - ranked[1][1] >= clear
        expected = ranked[0][0]
    assert scene["answer"] == expected


def pixels_pie_chart(scene, pixels):
    """Each slice's colour fills its share of the circle: near both of its edges and at the middle of its arc."""
    (cx, cy), r = scene["center_px"], scene["radius_px"]
    start = scene["start_deg"]
    for name, s, color in zip(scene["names"], scene["shares"], scene["colors"]):
        end = start + 3.6 * s  # clockwise from 3 o'clock, y down
        for degrees, radius in ((start + 8, 0.88), ((start + end) / 2, 0.4), (end - 8, 0.88)):
            x, y = cx + radius * r * math.cos(math.radians(degrees)), cy + radius * r * math.sin(math.radians(degrees))
            assert tuple(pixels[round(y), round(x)]) == COLORS[color], (name, s, degrees)
        start = end


# ---------------------------------------------------------------- function_graph

def check_function_graph(scene):
    fn = scene["function"]
    m = re.fullmatch(r"The graph shows y = f\(x\)\. What is f\((-?\d+)\)\?", scene["question"])
    if m:
        x = int(m.group(1))
        assert scene["marker"] in ("point", "none")
    else:
        assert scene["marker"] == "axis_triangle" and "red triangle on the x-axis" in scene["question"]
        x = scene["x0"]  # where the triangle is drawn; pixels_function_graph checks the picture agrees
    y = fn["a"] * x + fn["b"] if fn["kind"] == "line" else fn["a"] * (x - fn["h"]) ** 2 + fn["k"]
    assert scene["answer"] == str(y) and abs(y) < scene["range"] and abs(x) < scene["range"]


def pixels_function_graph(scene, pixels):
    fn = scene["function"]
    ox, oy = scene["origin_px"]
    unit = scene["unit_px"]
    red = (pixels == RED).all(-1)
    x = scene["x0"]
    if scene["marker"] == "axis_triangle":
        ys, xs = np.nonzero(red)
        assert len(xs) and ys.min() > oy  # the marker hangs below the x-axis ...
        assert abs(xs.mean() - (ox + x * unit)) <= 1.0  # ... under x0
    y = fn["a"] * x + fn["b"] if fn["kind"] == "line" else fn["a"] * (x - fn["h"]) ** 2 + fn["k"]
    px, py = ox + x * unit, oy - y * unit
    if scene["marker"] == "point":
        assert red[py - 1:py + 2, px - 1:px + 2].all()
    else:
        near = pixels[py - 2:py + 3, px - 2:px + 3]
        assert (near == COLORS["blue"]).all(-1).any(), "the curve does not pass through (x, f(x))"


# ---------------------------------------------------------------- cubes

_U = (0.1, 0.3, 0.5, 0.7, 0.9)  # sample points on a face: never on a diagonal of the unit square
_V = (0.2, 0.4, 0.6, 0.8)


def _face_points(x, y, z, face):
    pts = []
    for u in _U:
        for v in _V:
            pts.append({"top": (x + u, y + v, z + 1), "x": (x + 1, y + u, z + v), "y": (x + u, y + 1, z + v)}[face])
    return np.array(pts)


def _seen(points, boxes):
    """bool [P]: whether the ray from each point towards the viewer, direction (1, 1, 1), leaves every cube."""
    lo = boxes[None, :, :] - points[:, None, :]  # [P, N, 3]
    t_in, t_out = lo.max(-1), (lo + 1).min(-1)
    blocked = (t_out > t_in + 1e-9) & (t_out > 1e-9)
    return ~blocked.any(-1)


def cube_visibility(cubes):
    """{cube index: {face: visible}} by ray casting from points on each of the three faces facing the viewer."""
    boxes = np.array([c[:3] for c in cubes], float)
    return {i: {face: bool(_seen(_face_points(*c[:3], face), boxes).any()) for face in ("top", "x", "y")}
            for i, c in enumerate(cubes)}


def _norm(cells):
    cells = np.array(sorted(cells))
    return tuple(map(tuple, cells - cells.min(0)))


def _turns(cells):
    """The cells turned by 0, 90, 180, 270 degrees about the vertical axis, each moved to the origin."""
    out, cur = [], [tuple(c) for c in cells]
    for _ in range(4):
        out.append(tuple(sorted(_norm(cur))))
        cur = [(-y, x, z) for x, y, z in cur]
    return out


def _stacked(cubes):
    """Columns without gaps: each (x, y) holds z = 0 .. h - 1."""
    cols = {}
    for x, y, z, _ in cubes:
        cols.setdefault((x, y), []).append(z)
    return all(sorted(zs) == list(range(len(zs))) for zs in cols.values())


def check_cubes(scene):
    cubes, q = scene["cubes"], scene["question"]
    assert len({tuple(c[:3]) for c in cubes}) == len(cubes) and _stacked(cubes)
    vis = cube_visibility(cubes)
    visible = {i for i, faces in vis.items() if any(faces.values())}
    if m := re.fullmatch(r"Which of the structures ([A-D, and]+) is the large structure on the left turned around "
                         r"\(rotated about a vertical axis\)\? Answer with the letter\.", q):
        letters = re.findall(r"[A-D]", m.group(1))
        assert [o["letter"] for o in scene["options"]] == letters
        main = set(_turns([c[:3] for c in cubes]))
        same = [o["letter"] for o in scene["options"] if _turns([c[:3] for c in o["cubes"]])[0] in main]
        assert same == [scene["answer"]], same
        for o in scene["options"]:  # every option shows all of its cubes, so the differences are visible
            assert _stacked(o["cubes"])
            ov = cube_visibility(o["cubes"])
            assert all(any(f.values()) for f in ov.values())
        assert len(visible) == len(cubes)
        return
    if q.endswith("Every cube is at least partly visible."):
        assert len(visible) == len(cubes), "the question says every cube is visible"
        m = re.fullmatch(r"How many (?:(\w+) )?cubes are there\? Every cube is at least partly visible\.", q)
        assert m, q
        expected = sum(1 for c in cubes if m.group(1) in (None, c[3]))
    else:
        m = re.fullmatch(r"The cubes stand in columns on the grey floor grid, with no gaps under any cube, and the "
                         r"top of every column can be seen\. How many cubes (are there in total|cannot be seen in "
                         r"the picture)\?", q)
        assert m, q
        tops = {}
        for i, (x, y, z, _) in enumerate(cubes):
            if z >= tops.get((x, y), (-1, None))[0]:
                tops[x, y] = (z, i)
        assert all(vis[i]["top"] for _, i in tops.values()), "the question says every column's top is visible"
        expected = len(cubes) if m.group(1).startswith("are") else len(cubes) - len(visible)
    assert scene["answer"] == str(expected)


def _project(view, p):
    x, y, z = p
    s = view["scale"]
    return view["origin"][0] + s * math.sqrt(3) / 2 * (x - y), view["origin"][1] + s * (0.5 * (x + y) - z)


def pixels_cubes(scene, pixels):
    """Where a cube's top face is clearly visible, the picture shows its colour (lightened for the top face)."""
    boxes = np.array([c[:3] for c in scene["cubes"]], float)
    checked = 0
    for x, y, z, color in scene["cubes"]:
        for u, v in ((1 / 3, 2 / 3), (2 / 3, 1 / 3)):
            around = np.array([[x + u + du, y + v + dv, z + 1] for du, dv in
                               ((0, 0), (0.06, 0), (-0.06, 0), (0, 0.06), (0, -0.06))])
            if not _seen(around, boxes).all():  # hidden, or too near an edge in the picture
                continue
            px, py = _project(scene["view"], around[0])
            rgb = pixels[round(py), round(px)].astype(float)
            dists = {name: np.abs(rgb - (np.array(c) + (255 - np.array(c)) * 0.35)).sum()
                     for name, c in COLORS.items()}
            assert min(dists, key=dists.get) == color and dists[color] <= 6, ((x, y, z), rgb, color)
            checked += 1
    assert checked


# ---------------------------------------------------------------- sudoku

def count_completions(grid, n, box, limit=2):
    """Completions of `grid` (0 = empty) under the rules, counted up to `limit`: cell by cell in reading order."""
    cells = list(grid)
    groups = [[(r, c) for c in range(n)] for r in range(n)] + [[(r, c) for r in range(n)] for c in range(n)]
    if box:
        br, bc = box
        groups += [[(r0 + i, c0 + j) for i in range(br) for j in range(bc)]
                   for r0 in range(0, n, br) for c0 in range(0, n, bc)]
    member = {(r, c): [g for g in groups if (r, c) in g] for r in range(n) for c in range(n)}
    for r in range(n):  # the givens themselves must obey the rules
        for c in range(n):
            d = cells[r * n + c]
            if d and any(cells[i * n + j] == d for g in member[r, c] for i, j in g if (i, j) != (r, c)):
                return 0, None
    empties = [k for k in range(n * n) if cells[k] == 0]
    found = [0, None]

    def go(e):
        if found[0] >= limit:
            return
        if e == len(empties):
            found[0] += 1
            found[1] = tuple(cells)
            return
        r, c = divmod(empties[e], n)
        used = {cells[i * n + j] for g in member[r, c] for i, j in g}
        for d in range(1, n + 1):
            if d not in used:
                cells[empties[e]] = d
                go(e + 1)
        cells[empties[e]] = 0

    go(0)
    return found[0], found[1]


def check_sudoku(scene):
    m = re.fullmatch(r"Fill the grid so that every row(?:, every column and every outlined (\d)x(\d) box| and every "
                     r"column) contains each of the digits 1 to (\d) exactly once\. Which digit belongs in the "
                     r"red cell with the question mark\?", scene["question"])
    assert m, scene["question"]
    n = int(m.group(3))
    box = (int(m.group(1)), int(m.group(2))) if m.group(1) else None
    assert scene["n"] == n and (scene["box"] is None) == (box is None) and (box is None or list(box) == scene["box"])
    assert len(scene["grid"]) == n * n and scene["grid"][scene["target"]] == 0
    count, solution = count_completions(scene["grid"], n, box)
    assert count == 1, f"{count} completions"
    assert scene["answer"] == str(solution[scene["target"]])


def pixels_sudoku(scene, pixels):
    """The marked cell shows red ink, given cells dark ink, empty cells nothing."""
    n, cell = scene["n"], scene["cell_px"]
    gx, gy = scene["origin_px"]
    inset = max(3, cell // 5)
    for k, d in enumerate(scene["grid"]):
        r, c = divmod(k, n)
        inner = pixels[gy + r * cell + inset:gy + (r + 1) * cell - inset + 1,
                       gx + c * cell + inset:gx + (c + 1) * cell - inset + 1].astype(int)
        dark = (inner < 160).all(-1).sum()  # dark ink, anti-aliased digits included
        reddish = ((inner[..., 0] > 150) & (inner[..., 1] < 110)).sum()
        if k == scene["target"]:  # a pale red cell with red ink
            assert (inner[..., 0] - inner[..., 1]).mean() > 30 and reddish >= 1 and dark == 0, k
        elif d:
            assert dark >= 1 and reddish == 0, k
        else:
            assert (inner == 255).all(), k


# ---------------------------------------------------------------- geometry

def _pt(scene, name):
    return np.array(scene["points"][name], float)


def _angle(scene, at, p, q):
    u, v = _pt(scene, p) - _pt(scene, at), _pt(scene, q) - _pt(scene, at)
    return math.degrees(math.acos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1)))


def _whole(value, tol=1e-3):
    assert abs(value - round(value)) < tol, value
    return round(value)


def _dist(scene, a, b):
    return float(np.linalg.norm(_pt(scene, a) - _pt(scene, b)))


def check_geometry(scene):
    q, ans = scene["question"], scene["answer"]
    sides = {(a, b): float(label) for a, b, label in scene["sides"]}
    for (a, b), length in sides.items():  # written lengths are the drawn lengths
        assert abs(_dist(scene, a, b) - length) < 1e-9
    for name, degrees in scene["angles"]:  # written angles are the drawn angles
        p, r = [v for v in scene["polygon"] if v != name][:2] if len(scene["polygon"]) == 3 else (None, None)
        assert abs(_angle(scene, name, p, r) - degrees) < 1e-3, (name, degrees)
    if m := re.fullmatch(r"What is the (area|perimeter) of rectangle ABCD\? Answer with a number\.", q):
        for k in "ABCD":  # a rectangle: every corner is a right angle
            i = "ABCD".index(k)
            assert abs(_angle(scene, k, "ABCD"[i - 1], "ABCD"[(i + 1) % 4]) - 90) < 1e-9
        w, h = _dist(scene, "A", "B"), _dist(scene, "B", "C")
        assert ("A", "B") in sides and ("B", "C") in sides
        expected = w * h if m.group(1) == "area" else 2 * (w + h)
        assert ans == str(_whole(expected))
    elif q == "What is the measure of angle ACB in degrees? Answer with a number.":
        assert {n for n, _ in scene["angles"]} == {"A", "B"}
        assert ans == str(_whole(_angle(scene, "C", "A", "B")))
        assert ans == str(180 - sum(d for _, d in scene["angles"]))
    elif q == "Angle C is a right angle. What is the length of AB? Answer with a number.":
        assert abs(_angle(scene, "C", "A", "B") - 90) < 1e-9 and len(sides) == 2
        assert ans == str(_whole(math.hypot(*sides.values())))
    elif q == "In triangle ABC, AB = AC. What is the measure of angle ABC in degrees? Answer with a number.":
        assert abs(_dist(scene, "A", "B") - _dist(scene, "A", "C")) < 1e-3
        assert sorted(map(sorted, scene["ticks"])) == [["A", "B"], ["A", "C"]]
        assert ans == str(_whole(_angle(scene, "B", "A", "C")))
    elif q.startswith("Each small square of the grid has side 1."):
        check_grid_geometry(scene, q.removeprefix("Each small square of the grid has side 1. "), ans)
    elif q.startswith("Are lines AB and CD parallel, perpendicular, or neither?"):
        check_grid_geometry(scene, q, ans)
    else:
        raise AssertionError(f"unknown geometry question {q!r}")


def check_grid_geometry(scene, q, ans):
    pts = {k: tuple(v) for k, v in scene["points"].items()}
    assert all(isinstance(v, int) and 0 <= v <= scene["grid"] for p in pts.values() for v in p), pts
    if q.startswith("What is the area of triangle ABC?"):
        (ax, ay), (bx, by), (cx, cy) = pts["A"], pts["B"], pts["C"]
        area = Fraction(abs((bx - ax) * (cy - ay) - (by - ay) * (cx - ax)), 2)
        assert area > 0
        assert ans == (str(area.numerator) if area.denominator == 1 else f"{float(area):.1f}")
    elif q == "What is the length of segment AB? Answer with a number.":
        assert ans == str(_whole(_dist(scene, "A", "B"), 1e-12))
    elif q == "What is the measure of angle ABC in degrees? Answer with a number.":
        assert ans == str(_whole(_angle(scene, "B", "A", "C")))
    else:
        assert q == ("Are lines AB and CD parallel, perpendicular, or neither? "
                     "Answer with one word: parallel, perpendicular or neither."), q
        u = np.subtract(pts["B"], pts["A"])
        v = np.subtract(pts["D"], pts["C"])
        cross, dot = u[0] * v[1] - u[1] * v[0], int(u @ v)
        w = np.subtract(pts["C"], pts["A"])
        assert u[0] * w[1] - u[1] * w[0] != 0  # C is off line AB: parallel lines are distinct
        assert ans == ("parallel" if cross == 0 else "perpendicular" if dot == 0 else "neither")


def pixels_geometry(scene, pixels):
    """Points are drawn at their pixels, and to scale: one scale for x and y, y pointing up."""
    view = scene["view"]
    for name, (x, y) in scene["points"].items():
        px, py = scene["points_px"][name]
        assert abs(px - (view["origin"][0] + view["scale"] * x)) < 1e-2
        assert abs(py - (view["origin"][1] - view["scale"] * y)) < 1e-2
        assert pixels[round(py), round(px)].sum() < 3 * 90, name  # the dark dot of the point


CHECKS = {name: globals()[f"check_{name}"] for name in
          ("grid_count", "bar_chart", "pie_chart", "cubes", "sudoku", "function_graph", "geometry")}
PIXELS = {name: globals()[f"pixels_{name}"] for name in CHECKS}
