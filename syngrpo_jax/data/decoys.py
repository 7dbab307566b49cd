"""Look-alike decoys: crisp filled shapes near the kept objects that no referring expression of theirs can mean.

The "hard" words of the procedural vocabulary make a background harder for grounding the natural way: other
objects of the same kind (filled polygons in the engine's saturated object colours, at object sizes) stand near
the target, so the model has to read the expression to tell them apart. The data server never sees the
expression, so a decoy is chosen to differ from EVERY kept object in all three attributes an engine expression
can use (`syngrpo_jax.data.referring`): its shape is one the engine never names (shape_scene.DECOY_SHAPES), its
colour is none of the kept objects' colours, and its size class is the other one. Any expression that means a
kept object -- an attribute set, a superlative over an attribute set, a relation -- then still means it alone,
and no detection category can match a decoy.

A kept object's attributes are read from its pixels: its colour is the engine colour nearest to the median of its
foreground pixels (colours within EXCLUDE_DISTANCE of that median are all excluded, so a colour estimate that is
slightly off still never lands on the object's own colour), its size class is "large" when its box side is
nearer the large than the small range of shape_scene.SIZE_RANGES. The server must know the engine's
object_scale for that (config.procedural_object_scale): from one object alone, "small at a large scale" and
"large at the default scale" look the same.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from syngrpo_jax.data.shape_scene import COLORS, DECOY_SHAPES, SIZE_RANGES, SceneObject, boxes_apart, min_gap

EXCLUDE_DISTANCE = 110.0  # RGB distance within which an engine colour counts as the object's own
NUM_DECOYS = 3  # decoys placed per image (fewer when they do not fit)
_SIZE_SPLIT = (SIZE_RANGES["small"][1] + SIZE_RANGES["large"][0]) / 2  # side / short side between the classes


def size_class(box: Sequence[int], width: int, height: int, scale: float = 1.0) -> str:
    """The engine size class of an object in `box`, for scenes drawn at engine object_scale `scale`."""
    side = math.sqrt((box[2] - box[0]) * (box[3] - box[1]))
    return "large" if side / min(width, height) >= _SIZE_SPLIT * scale else "small"


def excluded_colours(image: np.ndarray, keep: np.ndarray, box: Sequence[int]) -> set[str]:
    """Engine colour names that the object in `box` (its kept pixels) could be called."""
    x0, y0, x1, y1 = box
    pixels = image[y0:y1, x0:x1][keep[y0:y1, x0:x1]]
    if len(pixels) == 0:
        return set(COLORS)  # nothing to read: exclude every colour (no decoys for this object)
    median = np.median(pixels.astype(np.float32), axis=0)
    dist = {name: float(np.linalg.norm(median - np.asarray(rgb, np.float32))) for name, rgb in COLORS.items()}
    nearest = min(dist, key=dist.get)
    return {nearest} | {name for name, d in dist.items() if d < EXCLUDE_DISTANCE}


def plan(rng: np.random.Generator, image: np.ndarray, keep: np.ndarray, boxes: Sequence[Sequence[int]],
         count: int = NUM_DECOYS, scale: float = 1.0) -> list[SceneObject]:
    """Up to `count` decoys near the kept objects, none overlapping a box or another decoy (see module doc).
    scale: the engine object_scale the scenes were drawn at (size classes, and the decoys' sizes, follow it)."""
    height, width = image.shape[:2]
    if not boxes:
        return []
    colours = set(COLORS)
    sizes = set()
    for box in boxes:
        colours -= excluded_colours(image, keep, box)
        sizes.add(size_class(box, width, height, scale))
    if not colours or len(sizes) != 1:
        return []  # no colour or no size class differs from every kept object: no safe decoy
    size = "small" if sizes == {"large"} else "large"
    colours = sorted(colours)
    gap, short = max(3, min_gap(width, height)), min(width, height)
    lo, hi = (math.ceil(r * scale * short) for r in SIZE_RANGES[size])
    placed: list[SceneObject] = []
    for _ in range(count):
        for _ in range(60):
            anchor = boxes[int(rng.integers(len(boxes)))]
            side = int(rng.integers(lo, max(lo, hi) + 1))
            reach = (anchor[2] - anchor[0] + side) / 2 + gap + rng.uniform(0, 1.2 * side)
            angle = rng.uniform(0, 2 * np.pi)
            cx = (anchor[0] + anchor[2]) / 2 + reach * math.cos(angle)
            cy = (anchor[1] + anchor[3]) / 2 + reach * math.sin(angle)
            x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
            box = (x0, y0, x0 + side, y0 + side)
            if x0 < gap or y0 < gap or box[2] > width - gap or box[3] > height - gap:
                continue
            if all(boxes_apart(box, b, gap) for b in boxes) and all(boxes_apart(box, d.box, gap) for d in placed):
                placed.append(SceneObject(DECOY_SHAPES[int(rng.integers(len(DECOY_SHAPES)))],
                                          colours[int(rng.integers(len(colours)))], size, box))
                break
    return placed
