"""A CPU foreground estimate inside ground-truth boxes: the object kept, not its box (when BEN2 is not configured).

Idea: a box is drawn tight around its object, so the ring of pixels just outside the box is background. Inside the
box, a pixel is background-like when its colour is close to SOME ring colour (textured backgrounds, gradients and
stripes all show their colours in the ring); the background is what is background-like and connected to the ring
(a flood fill from the box border), and the foreground is the rest of the box. "Close" is relative to the box's
contrast: a pixel counts as background-like when its distance to the nearest ring colour is under half the
distance reached by the most object-like pixels (the 90th percentile), which puts the cut of an anti-aliased edge
where the object covers about half the pixel -- the same cut as a 0.5-coverage ground-truth mask.

A box whose pixels barely differ from its ring (contrast under `min_contrast`), or a box covering the whole image
(no ring), has no object to separate: all of it is kept, like the box mask. Measured on engine scenes (`tests/synth_torch/test_foreground.py`): IoU >= 0.9
with the engine's true shape masks on every background kind.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage, spatial

from synth_torch.masks import PixelBox

MIN_CONTRAST = 24.0  # RGB distance below which a box is treated as all object (nothing to separate)
_RING = 1  # pixels of ring outside the box used as background samples


def _ring_colours(image: np.ndarray, box: PixelBox, width: int) -> np.ndarray:
    """float32[N, 3]: the pixels within `width` outside the box, clipped to the image (a side flush with the
    image border contributes nothing; its box edge is still flooded from where it is background-like)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    outer = np.zeros((h, w), bool)
    outer[max(0, y0 - width):min(h, y1 + width), max(0, x0 - width):min(w, x1 + width)] = True
    outer[y0:y1, x0:x1] = False
    return image[outer].astype(np.float32)


def _distance_to_ring(crop: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """float32[h, w]: each crop pixel's RGB distance to the nearest ring colour (a k-d tree: memory linear in the
    box, whatever its size)."""
    tree = spatial.cKDTree(np.unique(ring, axis=0))
    dist, _ = tree.query(crop.reshape(-1, 3).astype(np.float32), k=1)
    return dist.astype(np.float32).reshape(crop.shape[:2])


def box_foreground(image: np.ndarray, box: PixelBox, *, min_contrast: float = MIN_CONTRAST) -> np.ndarray:
    """bool[y1-y0, x1-x0]: the object's pixels within `box` of a uint8[H, W, 3] image."""
    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1]
    ring = _ring_colours(image, box, _RING)
    if len(ring) == 0:  # the box is the whole image: no background sample
        return np.ones(crop.shape[:2], bool)
    dist = _distance_to_ring(crop, ring)
    contrast = float(np.percentile(dist, 90))
    if contrast < min_contrast:
        return np.ones(dist.shape, bool)
    background_like = dist < 0.5 * contrast
    # Background = background-like pixels connected (4-neighbourhood) to the box border, i.e. to the ring.
    labels, _ = ndimage.label(background_like)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touching = np.unique(border[border > 0])
    return ~np.isin(labels, touching)


def estimate(image: np.ndarray, boxes: Sequence[PixelBox]) -> np.ndarray:
    """bool[H, W]: the union over boxes of each box's foreground estimate (nothing outside the boxes)."""
    h, w = image.shape[:2]
    keep = np.zeros((h, w), bool)
    for box in boxes:
        x0, y0, x1, y1 = box
        keep[y0:y1, x0:x1] |= box_foreground(image, box)
    return keep
