import numpy as np
import pytest

from syngrpo_jax.protocol.synthesis import ProtocolError
from synth_torch import masks


def test_pixel_boxes_round_outward_and_clip():
    assert masks.pixel_boxes([(1.2, 2.9, 3.1, 4.0)], 10, 10) == [(1, 2, 4, 4)]
    assert masks.pixel_boxes([(-5, -1, 20, 30)], 10, 8) == [(0, 0, 10, 8)]
    assert masks.pixel_boxes([(9.5, 7.5, 10, 8)], 10, 8) == [(9, 7, 10, 8)]
    with pytest.raises(ProtocolError, match="outside the 10x8 image") as info:
        masks.pixel_boxes([(0, 0, 1, 1), (12, 0, 15, 3)], 10, 8)
    assert info.value.field == "boxes[1]"


def naive_dilate(mask, r):
    h, w = mask.shape
    out = np.zeros_like(mask)
    for y, x in zip(*np.nonzero(mask)):
        out[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1] = True
    return out


@pytest.mark.parametrize("r", [0, 1, 3, 20])
def test_dilate_matches_a_naive_square_dilation(r):
    rng = np.random.default_rng(r)
    mask = rng.random((23, 31)) > 0.97
    np.testing.assert_array_equal(masks.dilate(mask, r), naive_dilate(mask, r))


def test_outpaint_mask_is_the_grown_complement():
    keep = masks.box_mask([(10, 10, 20, 20)], 30, 30)
    paint = masks.outpaint_mask(keep, 2)
    assert paint[0, 0] and not paint[15, 15] and paint[11, 11] and not paint[12, 12]
    np.testing.assert_array_equal(masks.outpaint_mask(keep, 0), ~keep)


def test_feather_composite_and_exact_paste():
    rng = np.random.default_rng(0)
    orig = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    new = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    boxes = [(5, 6, 17, 21), (30, 0, 50, 40)]
    paint = masks.outpaint_mask(masks.box_mask(boxes, 40, 50), 3)
    alpha = masks.feather(paint, 2.0)
    assert alpha.dtype == np.float32 and 0 <= alpha.min() and alpha.max() <= 1 and 0 < alpha[14, 12] < 1
    out = masks.composite(orig, new, alpha)
    keep = masks.box_mask(boxes, 40, 50)
    assert not masks.kept_identical(out, orig, keep)  # the dilated mask repainted box edges...
    masks.paste_kept(out, orig, keep)
    assert masks.kept_identical(out, orig, keep)  # ...and the paste restores every kept pixel
    for x0, y0, x1, y1 in boxes:
        np.testing.assert_array_equal(out[y0:y1, x0:x1], orig[y0:y1, x0:x1])
    assert not np.array_equal(out[~keep], orig[~keep])  # and nothing else
    out[6, 5, 0] ^= 1
    assert not masks.kept_identical(out, orig, keep)
