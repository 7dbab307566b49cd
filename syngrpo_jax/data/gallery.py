"""A page of example QA images: one row per family, one column per difficulty, plus a photo-like column.

    python -m syngrpo_jax.data.engine --gallery=docs/engine_gallery.png [--seed=0] [--size=200]

Each tile is made by the engine's own `qa_example` (the code path of training data) with the family and the
difficulty fixed, and shows the question and the answer under the picture, so a person can check at a glance
that pictures, questions and answers agree. The page is saved as a 256-colour PNG (small enough to commit).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
from PIL import Image, ImageDraw

from syngrpo_jax.data.engine import EngineConfig, Example, qa_example
from syngrpo_jax.data.qa import DIFFICULTIES, FAMILIES
from syngrpo_jax.data.qa.drawing import INK, font

BACKGROUND = (255, 255, 255)
ANSWER_COLOR = (200, 30, 30)
TEXT_LINES = 6  # of the question, under each picture (then the answer)
PAD = 6
_GALLERY_SALT = 9_001  # the gallery's random streams, apart from any dataset's


def columns() -> list[tuple[str, int, bool]]:
    """(title, difficulty, photo) per column."""
    return [(f"difficulty {d}", d, False) for d in DIFFICULTIES] + [("difficulty 3, photo-like", 3, True)]


@dataclasses.dataclass(frozen=True)
class Layout:
    size: int  # picture side, pixels
    font_px: int
    label_w: int  # the family-name column
    header_h: int  # the column-title row

    @property
    def tile_w(self) -> int:
        return self.size + PAD

    @property
    def tile_h(self) -> int:
        return self.size + (TEXT_LINES + 1) * (self.font_px + 2) + 4 + PAD

    def origin(self, row: int, col: int) -> tuple[int, int]:
        """Top-left pixel of the picture in tile (row, col)."""
        return self.label_w + col * self.tile_w, self.header_h + row * self.tile_h


def layout(size: int, families) -> Layout:
    fs = max(9, size // 17)
    return Layout(size, fs, int(max(font(fs + 3).getlength(name) for name in families)) + 2 * PAD, 2 * fs + 6)


def tile_example(seed: int, row: int, col: int, size: int, family: str) -> Example:
    """The example shown in tile (row, col)."""
    _, difficulty, photo = columns()[col]
    cfg = EngineConfig(width=size, height=size, difficulty=difficulty, families=(family,), photo=photo)
    return qa_example(np.random.default_rng([seed, _GALLERY_SALT, row, col]), cfg)


def make_gallery(path: str | os.PathLike, seed: int = 0, size: int = 200, families=tuple(FAMILIES)) -> Image.Image:
    """Renders the page, saves it as a palette PNG and returns it (RGB, before the palette)."""
    cols, lay = columns(), layout(size, families)
    fnt, bold = font(lay.font_px), font(lay.font_px + 3)
    page = Image.new("RGB", (lay.label_w + len(cols) * lay.tile_w, lay.header_h + len(families) * lay.tile_h),
                     BACKGROUND)
    draw = ImageDraw.Draw(page)
    for c, (title, _, _) in enumerate(cols):
        draw.text((lay.origin(0, c)[0] + size // 2, lay.header_h // 2), title, fill=INK, font=bold, anchor="mm")
    for r, name in enumerate(families):
        draw.text((PAD, lay.origin(r, 0)[1] + size // 2), name, fill=INK, font=bold, anchor="lm")
        for c in range(len(cols)):
            ex = tile_example(seed, r, c, size, name)
            x0, y0 = lay.origin(r, c)
            page.paste(ex.image, (x0, y0))
            lines = _wrap(ex.query, fnt, size, TEXT_LINES)
            for k, line in enumerate(lines + [f"answer: {ex.answer}"]):
                color = INK if k < len(lines) else ANSWER_COLOR
                draw.text((x0, y0 + size + 3 + k * (lay.font_px + 2)), line, fill=color, font=fnt)
    page.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
        os.fspath(path), format="PNG", optimize=True)
    return page


def _wrap(text: str, fnt, width: int, lines: int) -> list[str]:
    """`text` in lines no wider than `width` pixels, at most `lines` of them (the last one cut with "...")."""
    out: list[str] = []
    for word in text.split():
        if out and fnt.getlength(f"{out[-1]} {word}") <= width:
            out[-1] = f"{out[-1]} {word}"
        else:
            out.append(word)
    if len(out) > lines:
        last = out[lines - 1]
        while fnt.getlength(last + "...") > width and " " in last:
            last = last.rsplit(" ", 1)[0]
        out = out[:lines - 1] + [last + "..."]
    return out
