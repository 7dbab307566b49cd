"""Scenes of coloured shapes on a background: the vocabulary, layout sampling and rendering.

Every object is defined by its integer box (x1, y1, x2, y2; pixels [x1, x2) x [y1, y2) of the image) and the
shape is drawn to touch all four sides of it, so a ground-truth box is exact, not estimated from pixels. Objects
never overlap and keep a gap of a few pixels, so every box is visible in full. Shapes are drawn 4x supersampled
and box-filtered down (anti-aliased edges; interiors keep their exact colour).

Sizes come in two classes with a clear gap between them (a "large" object's side is at least ~1.4x a "small"
one's), so "the large red circle" is unambiguous to a human as well as to `referring.resolve`.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "diamond", "hexagon")
# Shapes the engine never labels or names: look-alike decoys that no expression or category can mean.
DECOY_SHAPES = ("cross", "pentagon", "arrow", "trapezoid")
COLORS = {  # saturated, mutually distinct, never close to the pale backgrounds
    "red": (220, 38, 38),
    "green": (22, 163, 74),
    "blue": (37, 99, 235),
    "yellow": (234, 179, 8),
    "purple": (147, 51, 234),
    "orange": (249, 115, 22),
}
SIZES = ("small", "large")
# Side of an object's (square) box as a fraction of the image's shorter side, per size class.
SIZE_RANGES = {"small": (0.10, 0.14), "large": (0.20, 0.26)}
MAX_OBJECT_SCALE = 1.9  # a large object's side stays under half the image
BACKGROUNDS = ("solid", "gradient", "stripes", "noise")
SUPERSAMPLE = 4


@dataclasses.dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    size: str
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2

    @property
    def area(self) -> int:
        x1, y1, x2, y2 = self.box
        return (x2 - x1) * (y2 - y1)

    def to_json(self) -> dict:
        return {"shape": self.shape, "color": self.color, "size": self.size, "box": list(self.box)}

    @staticmethod
    def from_json(d: dict) -> "SceneObject":
        return SceneObject(d["shape"], d["color"], d["size"], tuple(int(v) for v in d["box"]))


@dataclasses.dataclass(frozen=True)
class Scene:
    width: int
    height: int
    background: dict  # {"kind": ..., "colors": [[r, g, b], ...], ...}: enough to redraw it
    objects: tuple[SceneObject, ...]

    def to_json(self) -> dict:
        return {"width": self.width, "height": self.height, "background": self.background,
                "objects": [o.to_json() for o in self.objects]}

    @staticmethod
    def from_json(d: dict) -> "Scene":
        return Scene(d["width"], d["height"], d["background"], tuple(SceneObject.from_json(o) for o in d["objects"]))


def min_gap(width: int, height: int) -> int:
    """Pixels kept free between two objects (and between an object and the border)."""
    return max(2, round(0.02 * min(width, height)))


def sample_background(rng: np.random.Generator) -> dict:
    """A pale background description: solid, vertical gradient, stripes or low-amplitude noise."""
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    colors = [[int(v) for v in rng.integers(200, 256, 3)] for _ in range(2)]
    bg = {"kind": kind, "colors": colors}
    if kind == "stripes":
        bg["period"] = int(rng.integers(8, 24))
        bg["horizontal"] = bool(rng.integers(2))
    if kind == "noise":
        bg["seed"] = int(rng.integers(2**31))
        bg["amplitude"] = 12
    return bg


def render_background(bg: dict, width: int, height: int) -> np.ndarray:
    """uint8 [height, width, 3] for a background description (deterministic: noise has its own seed)."""
    c0, c1 = (np.asarray(c, np.float64) for c in bg["colors"])
    kind = bg["kind"]
    if kind == "solid":
        img = np.broadcast_to(c0, (height, width, 3)).copy()
    elif kind == "gradient":
        t = np.linspace(0.0, 1.0, height)[:, None, None]
        img = np.broadcast_to(c0 * (1 - t) + c1 * t, (height, width, 3)).copy()
    elif kind == "stripes":
        axis = np.arange(height if bg["horizontal"] else width)
        on = ((axis // bg["period"]) % 2 == 1)
        line = np.where(on[:, None], c1, c0)
        img = np.broadcast_to(line[:, None, :] if bg["horizontal"] else line[None, :, :], (height, width, 3)).copy()
    elif kind == "noise":
        noise = np.random.default_rng(bg["seed"]).integers(-bg["amplitude"], bg["amplitude"] + 1, (height, width, 1))
        img = c0 + noise
    else:
        raise ValueError(f"background kind {kind!r} is unknown; known: {BACKGROUNDS}")
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def sample_layout(rng: np.random.Generator, width: int, height: int, specs: list[tuple[str, str, str]],
                  max_tries: int = 200, scale: float = 1.0) -> list[SceneObject]:
    """Places objects given as (shape, colour, size) without overlap; objects that do not fit are dropped.
    `scale` multiplies both SIZE_RANGES classes (their ratio, hence the gap between them, stays)."""
    gap = min_gap(width, height)
    short = min(width, height)
    placed: list[SceneObject] = []
    for shape, color, size in specs:
        lo, hi = (r * scale for r in SIZE_RANGES[size])
        for _ in range(max_tries):
            side = int(rng.integers(math.ceil(lo * short), math.floor(hi * short) + 1))
            if side + 2 * gap > min(width, height):
                break
            x1 = int(rng.integers(gap, width - gap - side + 1))
            y1 = int(rng.integers(gap, height - gap - side + 1))
            box = (x1, y1, x1 + side, y1 + side)
            if all(boxes_apart(box, o.box, gap) for o in placed):
                placed.append(SceneObject(shape, color, size, box))
                break
    return placed


def boxes_apart(a, b, gap: int) -> bool:
    """True when boxes a and b (x1, y1, x2, y2) are at least `gap` pixels apart along x or y."""
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def _unit_polygon(shape: str) -> list[tuple[float, float]]:
    """Vertices in the unit square, touching all four sides (y grows downwards)."""
    if shape == "square":
        pts = [(0, 0), (1, 0), (1, 1), (0, 1)]
    elif shape == "triangle":
        pts = [(0.5, 0), (1, 1), (0, 1)]
    elif shape == "diamond":
        pts = [(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)]
    elif shape == "hexagon":
        pts = [(math.cos(math.radians(90 + 60 * k)), -math.sin(math.radians(90 + 60 * k))) for k in range(6)]
    elif shape == "cross":
        a, b = 1 / 3, 2 / 3
        pts = [(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b), (0, b), (0, a), (a, a)]
    elif shape == "pentagon":
        pts = [(math.cos(math.radians(90 + 72 * k)), -math.sin(math.radians(90 + 72 * k))) for k in range(5)]
    elif shape == "arrow":
        pts = [(0, 0.3), (0.55, 0.3), (0.55, 0), (1, 0.5), (0.55, 1), (0.55, 0.7), (0, 0.7)]
    elif shape == "trapezoid":
        pts = [(0.25, 0), (0.75, 0), (1, 1), (0, 1)]
    elif shape == "star":
        pts = []
        for k in range(10):
            r = 1.0 if k % 2 == 0 else 0.45
            a = math.radians(90 + 36 * k)
            pts.append((r * math.cos(a), -r * math.sin(a)))
    else:
        raise ValueError(f"shape {shape!r} has no polygon; known shapes: {SHAPES + DECOY_SHAPES}")
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, y0, sx, sy = min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
    return [((x - x0) / sx, (y - y0) / sy) for x, y in pts]


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill, scale: int = 1) -> None:
    """Draws `shape` filling pixels [x1, x2) x [y1, y2) of the final image on a canvas `scale` times larger."""
    x1, y1, x2, y2 = box
    # Pixel i of the final image is canvas pixels [i*scale, (i+1)*scale); PIL fills edges inclusively, hence -1.
    left, top = x1 * scale, y1 * scale
    w, h = (x2 - x1) * scale - 1, (y2 - y1) * scale - 1
    if shape == "circle":
        draw.ellipse([left, top, left + w, top + h], fill=fill)
        return
    draw.polygon([(left + u * w, top + v * h) for u, v in _unit_polygon(shape)], fill=fill)


def render_objects(base: np.ndarray, objects, colors: dict = COLORS) -> Image.Image:
    """Draws objects over a uint8 [H, W, 3] background, anti-aliased by supersampling."""
    height, width = base.shape[:2]
    canvas = Image.fromarray(base).resize((width * SUPERSAMPLE, height * SUPERSAMPLE), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    for o in objects:
        draw_shape(draw, o.shape, o.box, colors[o.color], SUPERSAMPLE)
    return canvas.resize((width, height), Image.BOX)


def coverage(obj: SceneObject, width: int, height: int) -> np.ndarray:
    """float32[H, W] in [0, 1]: the fraction of each pixel the object covers, drawn exactly as `render_objects`
    draws it (the engine's true shape mask is coverage >= 0.5)."""
    canvas = Image.new("L", (width * SUPERSAMPLE, height * SUPERSAMPLE), 0)
    draw_shape(ImageDraw.Draw(canvas), obj.shape, obj.box, 255, SUPERSAMPLE)
    return np.asarray(canvas.resize((width, height), Image.BOX), np.float32) / 255.0


def render_scene(scene: Scene) -> Image.Image:
    """The RGB image of a scene."""
    return render_objects(render_background(scene.background, scene.width, scene.height), scene.objects)


def sample_scene(rng: np.random.Generator, width: int, height: int, num_objects: int,
                 shapes=SHAPES, colors=tuple(COLORS), sizes=SIZES, scale: float = 1.0) -> Scene:
    """A random scene with up to `num_objects` objects whose attributes are drawn from the given vocabularies."""
    specs = [(shapes[int(rng.integers(len(shapes)))], colors[int(rng.integers(len(colors)))],
              sizes[int(rng.integers(len(sizes)))]) for _ in range(num_objects)]
    # Large objects first: they are the hard ones to fit.
    specs.sort(key=lambda s: s[2] != "large")
    objects = sample_layout(rng, width, height, specs, scale=scale)
    order = rng.permutation(len(objects))
    return Scene(width, height, sample_background(rng), tuple(objects[i] for i in order))


def sub_vocabulary(rng: np.random.Generator, vocab, k: int) -> tuple:
    """`k` distinct entries of `vocab`, in vocabulary order."""
    idx = sorted(rng.choice(len(vocab), size=min(k, len(vocab)), replace=False).tolist())
    return tuple(vocab[i] for i in idx)
