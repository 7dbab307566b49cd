"""A page of example QA images: one row per family, one column per difficulty, plus a photo-like column.

    python -m syngrpo_jax.data.engine --gallery=docs/engine_gallery.png [--seed=0] [--size=200]

Each tile is made by the engine's own `qa_example` (the code path of training data) with the family and the
difficulty fixed, and shows the question and the answer under the picture, so a person can check at a glance
that pictures, questions and answers agree.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from syngrpo_jax.data.engine import EngineConfig, qa_example
from syngrpo_jax.data.qa import DIFFICULTIES, FAMILIES
from syngrpo_jax.data.qa.drawing import INK, font

BACKGROUND = (255, 255, 255)
ANSWER_COLOR = (200, 30, 30)
_GALLERY_SALT = 9_001  # the gallery's random streams, apart from any dataset's


def columns() -> list[tuple[str, int, bool]]:
    """(title, difficulty, photo) per column."""
    return [(f"difficulty {d}", d, False) for d in DIFFICULTIES] + [("difficulty 3, photo-like", 3, True)]


def make_gallery(path: str | os.PathLike, seed: int = 0, size: int = 200, families=tuple(FAMILIES)) -> Image.Image:
    """Renders the page, saves it as a palette PNG (small enough to commit) and returns it (RGB)."""
    cols = columns()
    fs = max(9, size // 17)
    fnt, bold = font(fs), font(fs + 3)
    lines = 6
    text_h = (lines + 1) * (fs + 2) + 4
    pad = 6
    label_w, header_h = int(max(bold.getlength(name) for name in families)) + 2 * pad, 2 * fs + 6
    tile_w, tile_h = size + pad, size + text_h + pad
    page = Image.new("RGB", (label_w + len(cols) * tile_w, header_h + len(families) * tile_h), BACKGROUND)
    draw = ImageDraw.Draw(page)
    for c, (title, _, _) in enumerate(cols):
        draw.text((label_w + c * tile_w + size // 2, header_h // 2), title, fill=INK, font=bold, anchor="mm")
    for r, name in enumerate(families):
        y0 = header_h + r * tile_h
        draw.text((pad, y0 + size // 2), name, fill=INK, font=bold, anchor="lm")
        for c, (_, difficulty, photo) in enumerate(cols):
            cfg = EngineConfig(width=size, height=size, difficulty=difficulty, families=(name,), photo=photo)
            ex = qa_example(np.random.default_rng([seed, _GALLERY_SALT, r, c]), cfg)
            x0 = label_w + c * tile_w
            page.paste(ex.image, (x0, y0))
            wrapped = _wrap(ex.query, fnt, size, lines)
            for k, line in enumerate(wrapped + [f"answer: {ex.answer}"]):
                color = INK if k < len(wrapped) else ANSWER_COLOR
                draw.text((x0, y0 + size + 3 + k * (fs + 2)), line, fill=color, font=fnt)
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
