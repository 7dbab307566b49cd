"""Function graphs: the value of a drawn line or parabola at an integer x.

    d1  a line y = a x + b, the point (x0, f(x0)) marked: "The graph shows y = f(x). What is f(2)?"
    d2  a parabola y = a (x - h)^2 + k, nothing marked
    d3  a line or a parabola; x0 is shown only as a red triangle on the x-axis

Values are integers at integer x, inside the drawn range.
"""
from __future__ import annotations

import numpy as np
from PIL import ImageDraw

from syngrpo_jax.data.qa.drawing import (CURVE_COLOR, INK, LIGHT_GRAY, MARK_COLOR, canvas, font,
                                         sample_calm_background, text)

MARKERS = {1: "point", 2: "none", 3: "axis_triangle"}


def evaluate(fn: dict, x):
    if fn["kind"] == "line":
        return fn["a"] * x + fn["b"]
    if fn["kind"] == "parabola":
        return fn["a"] * (x - fn["h"]) ** 2 + fn["k"]
    raise ValueError(f"function kind {fn['kind']!r} is unknown; known: ('line', 'parabola')")


def sample(rng: np.random.Generator, width: int, height: int, difficulty: int) -> dict:
    r = 5 if difficulty == 1 else 6
    while True:
        if difficulty == 1 or (difficulty == 3 and rng.random() < 0.5):
            fn = {"kind": "line", "a": int(rng.choice([-2, -1, 1, 2])), "b": int(rng.integers(-3, 4))}
        else:
            fn = {"kind": "parabola", "a": int(rng.choice([-1, 1])), "h": int(rng.integers(-2, 3)),
                  "k": int(rng.integers(-3, 4))}
        xs = [x for x in range(-r + 1, r) if abs(evaluate(fn, x)) <= r - 1]
        if xs:
            x0 = int(xs[int(rng.integers(len(xs)))])
            break
    marker = MARKERS[difficulty]
    if marker == "axis_triangle":
        question = ("The graph shows y = f(x). What is the value of f at the x-coordinate marked by the red "
                    "triangle on the x-axis?")
    else:
        question = f"The graph shows y = f(x). What is f({x0})?"
    fs = max(7, round(min(width, height) / 18))
    short = min(width, height)
    unit = max(4, (short - 2 * max(4, round(0.06 * short))) // (2 * r))
    ox, oy = width // 2, height // 2
    plot_box = [max(0, ox - r * unit - 3 * fs), max(0, oy - r * unit - 2), min(width, ox + r * unit + 2),
                min(height, oy + r * unit + fs + 4)]
    return {"question": question, "answer": str(evaluate(fn, x0)), "boxes": [plot_box], "labels": ["plot"],
            "function": fn, "x0": x0, "range": r, "origin_px": [ox, oy], "unit_px": unit, "font_px": fs,
            "marker": marker, "background": sample_calm_background(rng)}


def render(scene: dict):
    image = canvas(scene)
    draw = ImageDraw.Draw(image)
    fnt = font(scene["font_px"])
    r, unit, fn = scene["range"], scene["unit_px"], scene["function"]
    ox, oy = scene["origin_px"]
    x_lo, x_hi, y_lo, y_hi = ox - r * unit, ox + r * unit, oy - r * unit, oy + r * unit
    for k in range(-r, r + 1):
        draw.line([(ox + k * unit, y_lo), (ox + k * unit, y_hi)], fill=LIGHT_GRAY, width=1)
        draw.line([(x_lo, oy - k * unit), (x_hi, oy - k * unit)], fill=LIGHT_GRAY, width=1)
    draw.line([(x_lo, oy), (x_hi, oy)], fill=INK, width=1)
    draw.line([(ox, y_lo), (ox, y_hi)], fill=INK, width=1)
    for k in range(-r + r % 2, r + 1, 2):  # label the even ticks
        if k:
            text(draw, (ox + k * unit, oy + 2), str(k), fnt, anchor="mt")
            text(draw, (ox - 3, oy - k * unit), str(k), fnt, anchor="rm")
    run: list[tuple[float, float]] = []
    for t in np.linspace(-r, r, 40 * r + 1):
        y = evaluate(fn, float(t))
        if abs(y) <= r:
            run.append((ox + t * unit, oy - y * unit))
        else:
            if len(run) > 1:
                draw.line(run, fill=CURVE_COLOR, width=2)
            run = []
    if len(run) > 1:
        draw.line(run, fill=CURVE_COLOR, width=2)
    x0 = scene["x0"]
    px, py = ox + x0 * unit, oy - evaluate(fn, x0) * unit
    rad = max(2, unit // 3)
    if scene["marker"] == "point":
        draw.ellipse([px - rad, py - rad, px + rad, py + rad], fill=MARK_COLOR)
    elif scene["marker"] == "axis_triangle":
        draw.polygon([(px, oy + 1), (px - rad - 1, oy + 2 * rad + 2), (px + rad + 1, oy + 2 * rad + 2)],
                     fill=MARK_COLOR)
    return image
