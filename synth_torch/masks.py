"""Foreground and outpaint masks, compositing, and the exact paste-back of the kept foreground.

Box rounding (the same everywhere, and the reason the paste-back check can be exact): a box [x0, y0, x1, y1] in
original-image pixels covers columns floor(x0) .. ceil(x1) - 1 and rows floor(y0) .. ceil(y1) - 1, clipped to
the image -- rounded outward, so no labelled pixel is ever repainted.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageFilter

from syngrpo_jax.protocol.synthesis import ProtocolError

PixelBox = tuple[int, int, int, int]  # x0, y0, x1, y1 with x1/y1 exclusive


def pixel_boxes(boxes: Sequence[Sequence[float]], width: int, height: int) -> list[PixelBox]:
    """Rounds boxes outward to whole pixels and clips them to the image; an empty result is a request error."""
    out = []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        px0, py0 = max(0, math.floor(x0)), max(0, math.floor(y0))
        px1, py1 = min(width, math.ceil(x1)), min(height, math.ceil(y1))
        if px1 <= px0 or py1 <= py0:
            raise ProtocolError(
                "bad_field", f"field 'boxes[{i}]'={[x0, y0, x1, y1]} lies outside the {width}x{height} image",
                field=f"boxes[{i}]")
        out.append((px0, py0, px1, py1))
    return out


def box_mask(boxes: Sequence[PixelBox], height: int, width: int) -> np.ndarray:
    """bool[H, W], True inside any box."""
    mask = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation with a (2r+1)^2 square: separable running sums over a zero-padded copy, O(H*W)."""
    if radius <= 0:
        return mask.copy()
    k = 2 * radius + 1
    out = mask.astype(np.int32)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(out, pad), axis=axis, dtype=np.int32)
        n = out.shape[axis]
        hi = c[k:k + n] if axis == 0 else c[:, k:k + n]
        lo = c[:n] if axis == 0 else c[:, :n]
        out = hi - lo
    return out > 0


def outpaint_mask(keep: np.ndarray, dilation_px: int) -> np.ndarray:
    """bool[H, W], True where the backend paints: the complement of `keep`, grown `dilation_px` into it."""
    return dilate(~keep, dilation_px)


def feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """float32[H, W] in [0, 1]: the mask with a Gaussian-blurred edge (radius 0 = the hard mask)."""
    if radius <= 0:
        return mask.astype(np.float32)
    img = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(img, np.float32) / 255.0


def composite(original: np.ndarray, generated: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8[H, W, 3]: generated where alpha = 1, original where alpha = 0, blended between (only the feathered
    band is computed in floating point)."""
    out = np.where((alpha > 0)[..., None], generated, original)
    band = (alpha > 0) & (alpha < 1)
    if band.any():
        a = alpha[band][:, None]
        blend = original[band].astype(np.float32) * (1.0 - a) + generated[band].astype(np.float32) * a
        out[band] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    return out


def paste_kept(dst: np.ndarray, src: np.ndarray, keep: np.ndarray) -> None:
    """Copies src's pixels where `keep` (bool[H, W]) is True into dst, in place."""
    dst[keep] = src[keep]


def kept_identical(a: np.ndarray, b: np.ndarray, keep: np.ndarray) -> bool:
    """True when a and b hold exactly the same pixels wherever `keep` is True."""
    return a.shape == b.shape and np.array_equal(a[keep], b[keep])
