"""Pie charts: read a share, compare two slices, find the largest.

Slices are lettered A, B, ... clockwise; shares are whole percentages, multiples of 5, at least 10.

    d1  3-4 slices, percentages printed: "What percentage of the whole is slice C?" / "Which slice is the largest?"
    d2  4-5 slices, percentages printed: the difference of two slices, or the share of two slices together
    d3  5-6 slices, no percentages: "Which slice is larger, B or D?" (at least 10 points apart) / the largest
        (at least 10 points ahead of the next)
"""
from __future__ import annotations

import math

import numpy as np
from PIL import ImageDraw

from syngrpo_jax.data.qa.drawing import INK, canvas, font, sample_calm_background, text
from syngrpo_jax.data.shape_scene import COLORS

UNIT = 5  # shares are multiples of this many percent
MIN_UNITS = 2  # ... and at least 10 %
_LEVELS = {1: ((3, 5), ("share", "largest"), 5), 2: ((4, 6), ("difference", "sum"), 5),
           3: ((5, 7), ("compare", "largest"), 10)}  # slice count range, question kinds, clear margin (points)
LETTER_ANSWER = "Answer with the slice's letter."
NUMBER_ANSWER = "Answer with a number (without the % sign)."


def _shares(rng: np.random.Generator, n: int) -> list[int]:
    extra = rng.multinomial(100 // UNIT - MIN_UNITS * n, np.full(n, 1.0 / n))
    return [int(UNIT * (MIN_UNITS + e)) for e in extra]


def _question(rng, kind: str, names: list[str], shares: list[int], margin: int):
    """(query, question, answer), or None when these shares cannot ask `kind` clearly."""
    order = sorted(range(len(shares)), key=lambda k: -shares[k])
    if kind == "largest":
        if shares[order[0]] - shares[order[1]] < margin:
            return None
        return {"kind": kind}, f"Which slice of the pie chart is the largest? {LETTER_ANSWER}", names[order[0]]
    i, j = (int(v) for v in rng.choice(len(shares), 2, replace=False))
    if kind == "share":
        return {"kind": kind, "slice": names[i]}, (
            f"What percentage of the whole pie is slice {names[i]}? {NUMBER_ANSWER}"), str(shares[i])
    if kind == "sum":
        i, j = sorted((i, j))
        return {"kind": kind, "slices": [names[i], names[j]]}, (
            f"What percentage of the whole pie do slices {names[i]} and {names[j]} make up together? "
            f"{NUMBER_ANSWER}"), str(shares[i] + shares[j])
    if abs(shares[i] - shares[j]) < margin:
        return None
    if kind == "difference":
        if shares[i] < shares[j]:
            i, j = j, i
        return {"kind": kind, "slices": [names[i], names[j]]}, (
            f"How many percentage points larger is slice {names[i]} than slice {names[j]}? {NUMBER_ANSWER}"), str(
            shares[i] - shares[j])
    i, j = sorted((i, j))
    bigger = names[i] if shares[i] > shares[j] else names[j]
    return {"kind": kind, "slices": [names[i], names[j]]}, (
        f"Which slice is larger, {names[i]} or {names[j]}? {LETTER_ANSWER}"), bigger


def sample(rng: np.random.Generator, width: int, height: int, difficulty: int) -> dict:
    (lo, hi), kinds, margin = _LEVELS[difficulty]
    while True:
        n = int(rng.integers(lo, hi))
        shares = _shares(rng, n)
        names = [chr(ord("A") + k) for k in range(n)]
        found = _question(rng, kinds[int(rng.integers(len(kinds)))], names, shares, margin)
        if found is not None:
            break
    query, question, answer = found
    colors = [str(c) for c in rng.permutation(list(COLORS))[:n]]
    short = min(width, height)
    fs = max(7, round(short / 16))
    radius = int(short / 2 - max(3, round(0.04 * short)) - 1.6 * fs)
    cx, cy = width // 2, height // 2
    pie_box = [cx - radius, cy - radius, cx + radius + 1, cy + radius + 1]
    pad = int(math.ceil(1.6 * fs))
    chart_box = [max(0, cx - radius - pad), max(0, cy - radius - pad), min(width, cx + radius + pad + 1),
                 min(height, cy + radius + pad + 1)]
    return {"question": question, "answer": answer, "boxes": [chart_box, pie_box], "labels": ["chart", "pie"],
            "names": names, "shares": shares, "colors": colors, "start_deg": int(rng.integers(0, 360)),
            "center_px": [cx, cy], "radius_px": radius, "font_px": fs, "percent_labels": difficulty < 3,
            "query": query, "background": sample_calm_background(rng)}


def slice_angles(scene: dict) -> list[tuple[float, float]]:
    """(start, end) of every slice in degrees, clockwise from 3 o'clock (PIL's convention, y pointing down)."""
    edges = scene["start_deg"] + 3.6 * np.concatenate([[0], np.cumsum(scene["shares"])])
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]


def render(scene: dict):
    image = canvas(scene)
    draw = ImageDraw.Draw(image)
    fnt = font(scene["font_px"])
    (cx, cy), r, fs = scene["center_px"], scene["radius_px"], scene["font_px"]
    for (a0, a1), color in zip(slice_angles(scene), scene["colors"]):
        draw.pieslice([cx - r, cy - r, cx + r, cy + r], a0, a1, fill=COLORS[color], outline=(255, 255, 255))
    for (a0, a1), name, share in zip(slice_angles(scene), scene["names"], scene["shares"]):
        mid = math.radians((a0 + a1) / 2)
        text(draw, (cx + (r + 0.8 * fs) * math.cos(mid), cy + (r + 0.8 * fs) * math.sin(mid)), name, fnt, fill=INK)
        if scene["percent_labels"]:
            text(draw, (cx + 0.62 * r * math.cos(mid), cy + 0.62 * r * math.sin(mid)), f"{share}%", fnt,
                 fill=(255, 255, 255))
    return image
