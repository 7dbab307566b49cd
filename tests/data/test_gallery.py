"""The gallery page: one row per family, a column per difficulty and a photo-like one, showing the engine's own
examples; deterministic; the committed copy is small and shows every family."""
import os

import numpy as np
from PIL import Image

from syngrpo_jax.data import gallery
from syngrpo_jax.data.engine import main
from syngrpo_jax.data.qa import QA_CATEGORIES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAMILIES = ("cubes", "sudoku")


def test_gallery_page_shows_the_engine_examples(tmp_path, capsys):
    path = tmp_path / "g.png"
    main([f"--gallery={path}", "--size=96", f"--families={','.join(FAMILIES)}"])
    assert "wrote the gallery of 2 QA families" in capsys.readouterr().out
    page = np.asarray(Image.open(path).convert("RGB")).astype(int)
    lay = gallery.layout(96, FAMILIES)
    assert page.shape == (lay.header_h + 2 * lay.tile_h, lay.label_w + 4 * lay.tile_w, 3)
    assert [c[1:] for c in gallery.columns()] == [(1, False), (2, False), (3, False), (3, True)]
    for r, family in enumerate(FAMILIES):
        for c, (_, difficulty, photo) in enumerate(gallery.columns()):
            ex = gallery.tile_example(0, r, c, 96, family)
            assert ex.meta == {"difficulty": difficulty, "qa_category": family} and ("photo" in ex.scene) == photo
            x0, y0 = lay.origin(r, c)
            tile = page[y0:y0 + 96, x0:x0 + 96]
            assert np.abs(tile - np.asarray(ex.image).astype(int)).mean() < 6  # the 256-colour page's copy
    gallery.make_gallery(tmp_path / "again.png", size=96, families=FAMILIES)
    assert path.read_bytes() == (tmp_path / "again.png").read_bytes()


def test_committed_gallery_shows_every_family_and_is_small():
    path = os.path.join(REPO, "docs", "engine_gallery.png")
    assert os.path.getsize(path) < 500_000
    lay = gallery.layout(200, QA_CATEGORIES)
    assert Image.open(path).size == (lay.label_w + 4 * lay.tile_w, lay.header_h + len(QA_CATEGORIES) * lay.tile_h)
