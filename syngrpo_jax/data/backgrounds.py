"""The backgrounds the description vocabulary (syngrpo_jax.data.descriptions) asks for, painted on the CPU: colours
and brightness, a texture, and clutter of a given density. A pure function of (description, seed, size).

Shared by the procedural data-server backend (synth_torch.backends.procedural, which adds the "hard" decoys and
composites the kept objects back) and the data engine's repainted scenes (`engine.EngineConfig.repainted`), so a
warm start can see the backgrounds the policy's own descriptions will later produce.

The clutter is deliberately not object-like (soft out-of-focus blobs and thin strokes, never crisp filled
shapes): the only object-like things a background gains are the decoys (syngrpo_jax.data.decoys).
"""
from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from syngrpo_jax.data import descriptions
from syngrpo_jax.data.descriptions import BRIGHT_MIX, CLUTTER_COUNTS, DARK_SCALE, TEXTURES, Spec

_SEEDED_TEXTURES = tuple(t for t in TEXTURES if t != "plain")


def rng_for(description: str, seed: int, stream: str) -> np.random.Generator:
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
    rng = rng_for(description, seed, "texture")
    colours = palette(spec)
    texture = spec.texture or _SEEDED_TEXTURES[int(rng.integers(len(_SEEDED_TEXTURES)))]
    t = texture_blend(texture, rng, height, width)[..., None]
    img = colours[0] * (1 - t) + colours[1] * t
    canvas = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    clutter = spec.clutter
    if clutter is None:
        clutter = "none" if texture == "plain" else ("sparse", "normal")[int(rng.integers(2))]
    return np.asarray(_clutter(canvas, colours, clutter, rng_for(description, seed, "clutter")))
