"""How complex an image's background is: what the paper's Fig. 8 shows growing over epochs of synthesis.

The trainer logs their means over each step's training images (`samples_complexity`) as data/bytes_per_pixel
and data/edge_density, so their rise over epochs of synthesis can be plotted.

Two measures, both of the background only (the pixels outside the ground-truth boxes), both pure functions:

  bytes_per_pixel  zlib-compressed size (level 9) of the image with its boxes blanked out, per background
                   pixel: a plain backdrop compresses to almost nothing, clutter and noise do not
                   (a Kolmogorov-style proxy, as in image-complexity studies that use PNG/JPEG file size).
  edge_density     the fraction of background pixels on an edge: the luminance differs from the right or the
                   lower neighbour by more than EDGE_THRESHOLD (of 255). Stripes and checkers count their
                   boundaries, smooth gradients nothing, noise nearly everything.
"""
from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np

EDGE_THRESHOLD = 24.0
_LUMA = np.array([0.299, 0.587, 0.114])


def background_mask(boxes: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """bool[H, W]: True outside every box (boxes x1, y1, x2, y2 in pixels, rounded outward)."""
    mask = np.ones((height, width), bool)
    for x1, y1, x2, y2 in boxes:
        mask[max(0, int(np.floor(y1))):int(np.ceil(y2)), max(0, int(np.floor(x1))):int(np.ceil(x2))] = False
    return mask


def bytes_per_pixel(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Compressed bytes per (masked) pixel of a uint8 [H, W, 3] image; pixels outside `mask` are zeroed first."""
    img = np.asarray(image, np.uint8)
    if mask is not None:
        img = np.where(mask[..., None], img, 0).astype(np.uint8)
    n = int(mask.sum()) if mask is not None else img.shape[0] * img.shape[1]
    return len(zlib.compress(np.ascontiguousarray(img).tobytes(), 9)) / max(n, 1)


def edge_density(image: np.ndarray, mask: np.ndarray | None = None, threshold: float = EDGE_THRESHOLD) -> float:
    """Fraction of (masked) pixels whose luminance differs from the right or lower neighbour by > threshold."""
    y = np.asarray(image, np.float64) @ _LUMA
    edge = np.zeros(y.shape, bool)
    edge[:, :-1] |= np.abs(np.diff(y, axis=1)) > threshold
    edge[:-1, :] |= np.abs(np.diff(y, axis=0)) > threshold
    if mask is None:
        return float(edge.mean())
    return float(edge[mask].mean()) if mask.any() else 0.0


def background_complexity(image: np.ndarray, boxes: Sequence[Sequence[float]]) -> dict[str, float]:
    """{"bytes_per_pixel", "edge_density"} of the background of an image with these ground-truth boxes."""
    mask = background_mask(boxes, image.shape[0], image.shape[1])
    return {"bytes_per_pixel": bytes_per_pixel(image, mask), "edge_density": edge_density(image, mask)}


def samples_complexity(samples) -> dict[str, float]:
    """Means of `background_complexity` over the current images of data.sample.Sample objects ({} for none)."""
    from syngrpo_jax.data.sample import load_image

    rows = [background_complexity(np.asarray(load_image(s).convert("RGB")), s.boxes) for s in samples]
    return {k: float(np.mean([r[k] for r in rows])) for k in ("bytes_per_pixel", "edge_density")} if rows else {}
