"""Drawing helpers shared by the QA families: ink colours, the bundled font, calm backgrounds.

Every family renders from its scene JSON alone, so these helpers take descriptions (a background dict, a font
size) and never draw random numbers themselves.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from syngrpo_jax.data.shape_scene import COLORS, render_background, sample_background

INK = (30, 30, 30)
GRID_GRAY = (150, 150, 150)
LIGHT_GRAY = (205, 205, 205)
CURVE_COLOR = COLORS["blue"]
MARK_COLOR = COLORS["red"]


def font(px: int) -> ImageFont.ImageFont:
    """Pillow's bundled font at `px` pixels (no system fonts: images must be identical on every machine)."""
    try:
        return ImageFont.load_default(size=max(6, int(px)))
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def text(draw: ImageDraw.ImageDraw, xy, label: str, fnt, fill=INK, anchor: str = "mm") -> None:
    draw.text(xy, label, fill=fill, font=fnt, anchor=anchor)


def sample_calm_background(rng: np.random.Generator) -> dict:
    """A pale background description; stripes fight with gridlines and chart edges, so they become solid."""
    bg = sample_background(rng)
    if bg["kind"] == "stripes":
        bg = {"kind": "solid", "colors": bg["colors"]}
    return bg


def canvas(scene: dict) -> Image.Image:
    """The scene's background as an RGB image (`scene` has width, height and a background description)."""
    return Image.fromarray(render_background(scene["background"], scene["width"], scene["height"]))


def shade(color, factor: float) -> tuple[int, int, int]:
    """`color` scaled towards black (factor < 1) or white (factor > 1), as integer RGB."""
    c = np.asarray(color, np.float64)
    out = c * factor if factor <= 1 else c + (255 - c) * (factor - 1)
    return tuple(int(v) for v in np.clip(np.rint(out), 0, 255))
