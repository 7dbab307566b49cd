"""Bar charts: read a bar's value, or the difference of two bars.

    d1  3-4 bars, values multiples of 10 up to 50, printed on the bars: "What is the value of bar C?"
    d2  4-6 bars, values multiples of 20 up to 100 on the gridlines, no printed values
    d3  5-7 bars, multiples of 10 up to 100 (half of them between gridlines); half the questions ask
        "How much greater is the value of bar B than the value of bar E?"
"""
from __future__ import annotations

import numpy as np
from PIL import ImageDraw

from syngrpo_jax.data.qa.drawing import INK, LIGHT_GRAY, canvas, font, sample_calm_background, text
from syngrpo_jax.data.shape_scene import COLORS

# bar count range, (axis maximum, gridline step), value unit
_LEVELS = {1: ((3, 5), (50, 10), 10), 2: ((4, 7), (100, 20), 20), 3: ((5, 8), (100, 20), 10)}


def sample(rng: np.random.Generator, width: int, height: int, difficulty: int) -> dict:
    (lo, hi), (vmax, step), unit = _LEVELS[difficulty]
    num_bars = int(rng.integers(lo, hi))
    values = [int(v) * unit for v in rng.integers(1, vmax // unit + 1, num_bars)]
    names = [chr(ord("A") + k) for k in range(num_bars)]
    palette = list(COLORS)
    bar_colors = [palette[int(rng.integers(len(palette)))] for _ in range(num_bars)]
    if difficulty == 3 and rng.random() < 0.5 and len(set(values)) >= 2:
        i, j = rng.choice(num_bars, 2, replace=False).tolist()
        while values[i] == values[j]:
            i, j = rng.choice(num_bars, 2, replace=False).tolist()
        if values[i] < values[j]:
            i, j = j, i
        query = {"kind": "difference", "bars": [names[i], names[j]]}
        question = f"How much greater is the value of bar {names[i]} than the value of bar {names[j]}?"
        answer = values[i] - values[j]
    else:
        k = int(rng.integers(num_bars))
        query = {"kind": "value", "bar": names[k]}
        question = f"What is the value of bar {names[k]}?"
        answer = values[k]

    value_labels = difficulty == 1
    fs = max(7, round(min(width, height) / 16))
    left, right = round(0.04 * width) + 3 * fs, width - round(0.05 * width)
    top, bottom = round(0.08 * height) + (fs if value_labels else 0), height - round(0.06 * height) - fs
    plot_h = bottom - top
    slot = (right - left) / num_bars
    bar_w = max(3, int(slot * 0.6))
    bars = []
    for k, value in enumerate(values):
        x1 = left + int(round(slot * k + (slot - bar_w) / 2))
        bars.append([x1, bottom - round(value / vmax * plot_h), x1 + bar_w, bottom])
    chart_box = [max(0, left - 3 * fs - 2), max(0, top - fs - 4), min(width, right + 1), min(height, bottom + fs + 4)]
    return {"question": question, "answer": str(answer), "boxes": [chart_box] + bars,
            "labels": ["chart"] + [f"bar {n}" for n in names],
            "names": names, "values": values, "colors": bar_colors, "vmax": vmax, "step": step, "font_px": fs,
            "baseline_y": bottom, "plot_height": plot_h, "plot_box": [left, top, right, bottom], "bars": bars,
            "value_labels": value_labels, "query": query, "background": sample_calm_background(rng)}


def render(scene: dict):
    image = canvas(scene)
    draw = ImageDraw.Draw(image)
    fnt = font(scene["font_px"])
    left, top, right, bottom = scene["plot_box"]
    vmax = scene["vmax"]
    for tick in range(0, vmax + 1, scene["step"]):
        y = bottom - round(tick / vmax * scene["plot_height"])
        if tick:
            draw.line([(left, y), (right, y)], fill=LIGHT_GRAY, width=1)
        text(draw, (left - 3, y), str(tick), fnt, anchor="rm")
    for name, value, color, (x1, y_top, x2, _) in zip(scene["names"], scene["values"], scene["colors"],
                                                      scene["bars"]):
        draw.rectangle([x1, y_top, x2 - 1, bottom - 1], fill=COLORS[color])
        text(draw, ((x1 + x2) / 2, bottom + 2), name, fnt, anchor="mt")
        if scene["value_labels"]:
            text(draw, ((x1 + x2) / 2, y_top - 2), str(value), fnt, anchor="mb")
    draw.line([(left, top - 2), (left, bottom)], fill=INK, width=1)
    draw.line([(left, bottom), (right, bottom)], fill=INK, width=1)
    return image
