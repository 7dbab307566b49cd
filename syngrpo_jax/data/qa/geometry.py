"""Euclidean geometry: figures with labelled points, drawn to scale, asking for exact values.

    d1  rectangle ABCD with its side lengths written: the area or the perimeter; triangle ABC with two angles
        written: the third angle (degrees)
    d2  right triangle with its legs written: the hypotenuse (Pythagorean triples); isosceles triangle with the
        apex angle written: a base angle; a triangle on a unit grid: the area (a whole number or one decimal)
    d3  on a unit grid: the length of AB (a whole number), whether lines AB and CD are parallel, perpendicular or
        neither, the angle ABC (45, 90 or 135 degrees)

Points are stored in figure units (y up); `points_px` are their pixels. Answers are integers, a number with one
decimal (areas of lattice triangles are multiples of 1/2), or one of the words parallel / perpendicular /
neither, as the question states.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import ImageDraw

from syngrpo_jax.data.qa.drawing import GRID_GRAY, INK, MARK_COLOR, canvas, font, sample_calm_background, text

TRIPLES = ((3, 4, 5), (6, 8, 10), (5, 12, 13), (8, 15, 17), (9, 12, 15), (7, 24, 25), (12, 16, 20))
GRID_TRIPLES = ((3, 4, 5), (6, 8, 10))  # fit on the d3 grid
GRID_SIZE = 10  # d3 grids span 0..GRID_SIZE
_KINDS = {1: ("rect_area", "rect_perimeter", "third_angle"), 2: ("hypotenuse", "isosceles_base", "grid_area"),
          3: ("grid_length", "line_relation", "grid_angle")}
NUMBER = "Answer with a number."


def _rect(rng):
    w, h = (int(v) for v in rng.integers(2, 10, 2))
    if w == h:
        h = w + 1
    pts = {"A": (0, 0), "B": (w, 0), "C": (w, h), "D": (0, h)}
    sides = [["A", "B", str(w)], ["B", "C", str(h)]]
    return pts, sides, w, h


def _triangle_from_angles(alpha: float, beta: float, base: float = 10.0) -> dict:
    """A, B on the x-axis, C above, with the given angles at A and B (degrees)."""
    ta, tb = math.tan(math.radians(alpha)), math.tan(math.radians(beta))
    x = base * tb / (ta + tb)
    return {"A": (0.0, 0.0), "B": (base, 0.0), "C": (round(x, 6), round(x * ta, 6))}


def _lattice(rng, k: int, lo: int = 0, hi: int = GRID_SIZE) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in rng.integers(lo, hi + 1, 2)) for _ in range(k)]


def _d1(rng, kind):
    if kind in ("rect_area", "rect_perimeter"):
        pts, sides, w, h = _rect(rng)
        what = "area" if kind == "rect_area" else "perimeter"
        answer = w * h if kind == "rect_area" else 2 * (w + h)
        return dict(points=pts, polygon=list("ABCD"), sides=sides, right_angles=[],
                    question=f"What is the {what} of rectangle ABCD? {NUMBER}", answer=str(answer))
    while True:
        alpha, beta = (int(v) * 5 for v in rng.integers(7, 18, 2))  # 35..85: room for the labels
        if alpha + beta <= 145:
            break
    return dict(points=_triangle_from_angles(alpha, beta), polygon=list("ABC"), sides=[],
                angles=[["A", alpha], ["B", beta]], question=f"What is the measure of angle ACB in degrees? {NUMBER}",
                answer=str(180 - alpha - beta))


def _d2(rng, kind):
    if kind == "hypotenuse":
        a, b, c = TRIPLES[int(rng.integers(len(TRIPLES)))]
        if rng.random() < 0.5:
            a, b = b, a
        pts = {"C": (0, 0), "B": (a, 0), "A": (0, b)}
        return dict(points=pts, polygon=list("ABC"), sides=[["C", "B", str(a)], ["A", "C", str(b)]],
                    right_angles=["C"], question=f"Angle C is a right angle. What is the length of AB? {NUMBER}",
                    answer=str(c))
    if kind == "isosceles_base":
        apex = int(rng.integers(10, 71)) * 2  # even: the base angles are whole degrees
        base = (180 - apex) // 2
        pts = _triangle_from_angles(base, base)
        pts = {"B": pts["A"], "C": pts["B"], "A": pts["C"]}
        return dict(points=pts, polygon=list("ABC"), sides=[], ticks=[["A", "B"], ["A", "C"]],
                    angles=[["A", apex]],
                    question=f"In triangle ABC, AB = AC. What is the measure of angle ABC in degrees? {NUMBER}",
                    answer=str(base))
    while True:
        pts = dict(zip("ABC", _lattice(rng, 3, 0, 8)))
        twice = _cross(pts["A"], pts["B"], pts["C"])
        if abs(twice) >= 6:
            break
    return dict(points=pts, polygon=list("ABC"), sides=[], grid=8,
                question=("Each small square of the grid has side 1. What is the area of triangle ABC? "
                          "Answer with a number (a decimal if it is not whole)."),
                answer=_half(abs(twice)))


def _cross(a, b, c) -> int:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _half(twice: int) -> str:
    return str(twice // 2) if twice % 2 == 0 else f"{twice // 2}.5"


def _d3(rng, kind):
    grid_q = "Each small square of the grid has side 1."
    if kind == "grid_length":
        a, b, c = GRID_TRIPLES[int(rng.integers(len(GRID_TRIPLES)))] if rng.random() < 0.75 else (
            int(rng.integers(2, 10)), 0, None)
        dx, dy = (a, b) if rng.random() < 0.5 else (b, a)
        dx, dy = dx * int(rng.choice([-1, 1])), dy * int(rng.choice([-1, 1]))
        x0 = int(rng.integers(max(0, -dx), GRID_SIZE - max(0, dx) + 1))
        y0 = int(rng.integers(max(0, -dy), GRID_SIZE - max(0, dy) + 1))
        pts = {"A": (x0, y0), "B": (x0 + dx, y0 + dy)}
        return dict(points=pts, segments=[["A", "B"]], grid=GRID_SIZE,
                    question=f"{grid_q} What is the length of segment AB? {NUMBER}", answer=str(c or max(a, b)))
    if kind == "line_relation":
        want = ("parallel", "perpendicular", "neither")[int(rng.integers(3))]
        while True:
            pts = dict(zip("ABCD", _lattice(rng, 4)))
            u = np.subtract(pts["B"], pts["A"])
            v = np.subtract(pts["D"], pts["C"])
            if not u.any() or not v.any() or _cross(pts["A"], pts["B"], pts["C"]) == 0:
                continue  # a point, or C on line AB (the lines would coincide or meet at a labelled point)
            rel = "parallel" if u[0] * v[1] == u[1] * v[0] else "perpendicular" if u @ v == 0 else "neither"
            if rel == want:
                break
        return dict(points=pts, segments=[["A", "B"], ["C", "D"]], grid=GRID_SIZE,
                    question=("Are lines AB and CD parallel, perpendicular, or neither? "
                              "Answer with one word: parallel, perpendicular or neither."), answer=rel)
    angle = (45, 90, 135)[int(rng.integers(3))]
    dirs = [(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)]  # 45 degrees apart
    while True:
        k = int(rng.integers(8))
        d1, d2 = dirs[k], dirs[(k + angle // 45) % 8]
        s1, s2 = (int(v) for v in rng.integers(2, 5, 2))
        b = _lattice(rng, 1, 2, GRID_SIZE - 2)[0]
        a = (b[0] + s1 * d1[0], b[1] + s1 * d1[1])
        c = (b[0] + s2 * d2[0], b[1] + s2 * d2[1])
        if all(0 <= v <= GRID_SIZE for v in a + c):
            break
    return dict(points={"A": a, "B": b, "C": c}, segments=[["B", "A"], ["B", "C"]], grid=GRID_SIZE,
                question=f"{grid_q} What is the measure of angle ABC in degrees? {NUMBER}", answer=str(angle))


def sample(rng: np.random.Generator, width: int, height: int, difficulty: int) -> dict:
    kinds = _KINDS[difficulty]
    kind = kinds[int(rng.integers(len(kinds)))]
    fig = {"d1": _d1, "d2": _d2, "d3": _d3}[f"d{difficulty}"](rng, kind)
    fig = {"polygon": [], "segments": [], "sides": [], "angles": [], "ticks": [], "right_angles": [], "grid": 0,
           **fig}
    fig["points"] = {k: [float(v) if isinstance(v, float) else int(v) for v in p] for k, p in fig["points"].items()}
    fs = max(7, round(min(width, height) / 16))
    view = _layout(fig, width, height, fs)
    px = {k: _to_px(view, p) for k, p in fig["points"].items()}
    xs, ys = [p[0] for p in px.values()], [p[1] for p in px.values()]
    lo, hi = (0, 0), (fig["grid"], fig["grid"])
    if fig["grid"]:
        (gx0, gy1), (gx1, gy0) = _to_px(view, lo), _to_px(view, hi)
        xs, ys = xs + [gx0, gx1], ys + [gy0, gy1]
    pad = 1.6 * fs
    box = [max(0, math.floor(min(xs) - pad)), max(0, math.floor(min(ys) - pad)),
           min(width, math.ceil(max(xs) + pad)), min(height, math.ceil(max(ys) + pad))]
    return {"kind": kind, **fig, "question": fig["question"], "answer": fig["answer"], "boxes": [box],
            "labels": ["figure"], "view": view, "font_px": fs, "points_px": {k: list(p) for k, p in px.items()},
            "background": sample_calm_background(rng)}


def _layout(fig: dict, width: int, height: int, fs: int) -> dict:
    """Pixels per unit and the pixel of the origin: the figure (or its grid) centred, labels inside the image."""
    pts = list(fig["points"].values())
    if fig["grid"]:
        pts += [(0, 0), (fig["grid"], fig["grid"])]
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    margin = 2.2 * fs
    scale = min((width - 2 * margin) / max(x1 - x0, 1e-9), (height - 2 * margin) / max(y1 - y0, 1e-9))
    return {"scale": round(scale, 4), "origin": [round(width / 2 - scale * (x0 + x1) / 2, 3),
                                                 round(height / 2 + scale * (y0 + y1) / 2, 3)]}


def _to_px(view: dict, p) -> tuple[float, float]:
    return (round(view["origin"][0] + view["scale"] * p[0], 3), round(view["origin"][1] - view["scale"] * p[1], 3))


def _outward(px: dict, name: str, dist: float) -> tuple[float, float]:
    """A label position `dist` pixels from point `name`, away from the centroid of the other points."""
    others = [p for k, p in px.items() if k != name] or [px[name]]
    cx, cy = np.mean(others, axis=0)
    x, y = px[name]
    d = np.array([x - cx, y - cy])
    n = np.linalg.norm(d)
    d = d / n if n > 1e-9 else np.array([0.0, -1.0])
    return x + dist * d[0], y + dist * d[1]


def render(scene: dict):
    image = canvas(scene)
    draw = ImageDraw.Draw(image)
    fs, view, px = scene["font_px"], scene["view"], {k: tuple(v) for k, v in scene["points_px"].items()}
    fnt = font(fs)
    if scene["grid"]:
        for k in range(scene["grid"] + 1):
            draw.line([_to_px(view, (k, 0)), _to_px(view, (k, scene["grid"]))], fill=GRID_GRAY)
            draw.line([_to_px(view, (0, k)), _to_px(view, (scene["grid"], k))], fill=GRID_GRAY)
    poly = scene["polygon"]
    if poly:
        draw.polygon([px[k] for k in poly], outline=INK, width=2)
    for a, b in scene["segments"]:
        draw.line([px[a], px[b]], fill=INK, width=2)
    for a, b, label in scene["sides"]:
        (x1, y1), (x2, y2) = px[a], px[b]
        mid = {"m": ((x1 + x2) / 2, (y1 + y2) / 2)}
        text(draw, _outward({**{k: px[k] for k in poly}, "m": mid["m"]}, "m", 0.9 * fs), label, fnt, fill=MARK_COLOR)
    for a, b in scene["ticks"]:
        _tick(draw, px[a], px[b], fs)
    for name, degrees in scene["angles"]:
        _angle_label(draw, px, name, poly, f"{degrees}\N{DEGREE SIGN}", fnt, fs)
    for name in scene["right_angles"]:
        _right_angle(draw, px, name, poly, fs)
    r = max(2, fs // 5)
    for name, (x, y) in px.items():
        draw.ellipse([x - r, y - r, x + r, y + r], fill=INK)
        text(draw, _outward(px, name, 0.9 * fs), name, fnt, fill=INK)
    return image


def _neighbours(name: str, poly: list[str]) -> tuple[str, str]:
    k = poly.index(name)
    return poly[k - 1], poly[(k + 1) % len(poly)]


def _unit(a, b) -> np.ndarray:
    d = np.subtract(b, a, dtype=float)
    return d / np.linalg.norm(d)


def _angle_label(draw, px, name, poly, label, fnt, fs) -> None:
    p, q = _neighbours(name, poly)
    u, v = _unit(px[name], px[p]), _unit(px[name], px[q])
    bis = (u + v) / np.linalg.norm(u + v)
    half = math.acos(float(np.clip(u @ v, -1, 1))) / 2
    shorter = min(np.linalg.norm(np.subtract(px[p], px[name])), np.linalg.norm(np.subtract(px[q], px[name])))
    # Far enough along the bisector that the text clears both sides, but inside the figure.
    x, y = np.add(px[name], min(1.1 * fs / math.sin(half), 0.5 * shorter) * bis)
    text(draw, (x, y), label, fnt, fill=MARK_COLOR)


def _right_angle(draw, px, name, poly, fs) -> None:
    p, q = _neighbours(name, poly)
    u, v = _unit(px[name], px[p]) * 0.8 * fs, _unit(px[name], px[q]) * 0.8 * fs
    o = np.asarray(px[name], float)
    draw.line([tuple(o + u), tuple(o + u + v), tuple(o + v)], fill=MARK_COLOR, width=1)


def _tick(draw, a, b, fs) -> None:
    """A short mark across the middle of segment ab (equal sides carry equal marks)."""
    mid = np.add(a, b) / 2
    n = _unit(a, b)[::-1] * np.array([1, -1]) * 0.4 * fs
    draw.line([tuple(mid - n), tuple(mid + n)], fill=MARK_COLOR, width=2)
