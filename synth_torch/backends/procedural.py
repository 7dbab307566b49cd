"""A weightless CPU backend that paints the background a description asks for (the vocabulary in
syngrpo_jax.data.descriptions): colours and brightness, a texture, clutter and its density, and, for "hard",
look-alike decoys near the kept objects (synth_torch.decoys). Words outside the vocabulary are ignored; a description with
no colour word takes colours from its words' hashes, and what no word sets is drawn from the seed, so any text
still gives its own background.

The clutter is deliberately not object-like (soft out-of-focus blobs and thin strokes, never crisp filled
shapes); the only object-like things a background gains are the decoys, which are chosen so that no expression of
a kept object can mean them. Same (description, seed, image) -> same pixels. Serves the embedded demo, CPU users
and tests.
"""
from __future__ import annotations

import hashlib
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from syngrpo_jax.data import descriptions
from syngrpo_jax.data.descriptions import BRIGHT_MIX, CLUTTER_COUNTS, DARK_SCALE, TEXTURES, Spec
from syngrpo_jax.data.shape_scene import SceneObject, render_objects
from synth_torch import decoys
from synth_torch.backends import Backend, OutpaintItem

_SEEDED_TEXTURES = tuple(t for t in TEXTURES if t != "plain")


def _rng(description: str, seed: int, stream: str) -> np.random.Generator:
    digest = hashlib.sha256("\0".join(("bg", stream, description, str(seed))).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def palette(spec: Spec) -> np.ndarray:
    """float32[K >= 2, 3]: main colour, secondary colour, then any further ones, brightness applied."""
    colours = [np.asarray(c, np.float32) for c in (spec.colors or spec.hashed_colors)]
    if len(colours) == 1:
        c = colours[0]
        light = float(c @ np.array([0.299, 0.587, 0.114], np.float32)) >= 160
        colours.append(c * 0.6 if light else c + 0.45 * (255 - c))  # a shade of the one colour
    out = np.stack(colours)
    if spec.brightness == "dark":
        out = out * DARK_SCALE
    elif spec.brightness == "bright":
        out = out + BRIGHT_MIX * (255 - out)
    return out


def texture_blend(kind: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """float32[H, W] in [0, 1]: how much of the secondary colour each pixel takes, for a texture kind."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    along_x = bool(rng.integers(2))  # the axis the pattern varies along (stripes, gradient, waves)
    pos, other = (xx, yy) if along_x else (yy, xx)
    side = width if along_x else height
    period = rng.uniform(0.12, 0.25) * side
    if kind == "plain":
        return np.zeros((height, width), np.float32)
    if kind == "gradient":
        return pos / max(side - 1, 1)
    if kind == "striped":
        return (np.floor(pos / period) % 2).astype(np.float32)
    if kind == "checkered":
        cell = max(2, int(period))
        return ((xx // cell + yy // cell) % 2).astype(np.float32)
    if kind == "wavy":
        period = rng.uniform(0.2, 0.35) * side  # smooth waves, two or more across the image
        wander = 0.35 * np.sin(2 * np.pi * other / (2.5 * period) + rng.uniform(0, 2 * np.pi))
        return 0.5 + 0.5 * np.sin(2 * np.pi * (pos / period + wander))
    if kind == "noisy":
        return rng.random((height, width)).astype(np.float32)
    if kind == "mottled":
        coarse = Image.fromarray((rng.random((max(2, height // 24), max(2, width // 24))) * 255).astype(np.uint8))
        return np.asarray(coarse.resize((width, height), Image.BICUBIC), np.float32) / 255.0
    raise ValueError(f"texture {kind!r} is unknown; known: {TEXTURES}")


def _clutter(canvas: Image.Image, colours: np.ndarray, level: str, rng: np.random.Generator) -> Image.Image:
    """Soft blobs (blurred, half transparent) and thin open strokes, CLUTTER_COUNTS[level] of each."""
    n_blobs, n_strokes = CLUTTER_COUNTS[level]
    if not n_blobs + n_strokes:
        return canvas
    width, height = canvas.size
    scale = max(width, height)

    def colour(lo, hi):
        return tuple(min(255, int(c)) for c in colours[rng.integers(len(colours))] * rng.uniform(lo, hi))

    blobs = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(blobs)
    for _ in range(n_blobs):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.05, 0.2) * scale
        draw.ellipse([cx - r, cy - r * rng.uniform(0.6, 1.4), cx + r, cy + r], fill=(*colour(0.6, 1.2), 140))
    blobs = blobs.filter(ImageFilter.GaussianBlur(radius=max(2.0, 0.04 * scale)))
    canvas = Image.alpha_composite(canvas.convert("RGBA"), blobs).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    for _ in range(n_strokes):  # grass, wires, cracks: lines, never closed shapes
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        length, heading, bend = rng.uniform(0.1, 0.5) * scale, rng.uniform(0, 2 * np.pi), rng.uniform(-0.5, 0.5)
        points = [(x0 + length * t * np.cos(heading + bend * t), y0 + length * t * np.sin(heading + bend * t))
                  for t in np.linspace(0, 1, 8)]
        draw.line(points, fill=colour(0.5, 1.1), width=max(1, int(0.006 * scale)))
    return canvas


def render_background(description: str, seed: int, width: int, height: int) -> np.ndarray:
    """uint8[H, W, 3]: texture and clutter for a description, a pure function of (description, seed, size)."""
    spec = descriptions.parse(description)
    rng = _rng(description, seed, "texture")
    colours = palette(spec)
    texture = spec.texture or _SEEDED_TEXTURES[int(rng.integers(len(_SEEDED_TEXTURES)))]
    t = texture_blend(texture, rng, height, width)[..., None]
    img = colours[0] * (1 - t) + colours[1] * t
    canvas = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    clutter = spec.clutter
    if clutter is None:
        clutter = "none" if texture == "plain" else ("sparse", "normal")[int(rng.integers(2))]
    return np.asarray(_clutter(canvas, colours, clutter, _rng(description, seed, "clutter")))


def paint(item: OutpaintItem, object_scale: float = 1.0) -> tuple[np.ndarray, list[SceneObject]]:
    """The new frame for one item and the decoys drawn on it ([] unless the description asks for "hard");
    object_scale: the engine object scale of the scenes served (decoy size classes follow it)."""
    h, w = item.paint.shape
    background = render_background(item.prompt, item.seed, w, h)
    if not descriptions.parse(item.prompt).hard or item.keep is None or not item.boxes:
        return background, []
    placed = decoys.plan(_rng(item.prompt, item.seed, "decoys"), item.image, item.keep, list(item.boxes),
                         scale=object_scale)
    return np.asarray(render_objects(background, placed)), placed


class ProceduralBackend(Backend):
    name = "procedural"

    def __init__(self, delay_s: float = 0.0, object_scale: float = 1.0):
        self.delay_s = delay_s
        self.object_scale = object_scale

    def identity(self) -> dict:
        return {"backend": self.name, "model": "procedural-v2", "device": "cpu", "delay_s": self.delay_s,
                "object_scale": self.object_scale}

    def batch_key(self, width, height, params):
        return ("any",)  # painting is per image; batching only saves queue round trips

    def outpaint(self, items: list[OutpaintItem]) -> list[np.ndarray]:
        out = []
        for item in items:
            out.append(paint(item, self.object_scale)[0])
            if self.delay_s:
                time.sleep(self.delay_s)
        return out
