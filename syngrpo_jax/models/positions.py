"""Position bookkeeping computed on the host from token ids and image grids (numpy, data-dependent shapes).

- `rope_index`: the text decoder's 3D (temporal, height, width) M-RoPE position ids, a port of transformers'
  `Qwen2_5_VLModel.get_rope_index` for images: text tokens count up by one; an image's merged tokens take
  (t, h, w) grid coordinates offset by the running position; the next text resumes after max(h, w) / merge.
- `vision_patch_layout`: each image's patches permuted into the reference's window order (every attention
  window one contiguous run), with their (h, w) rotary positions and window ids; the tower runs in that order
  and puts its merged features back into processor order at the end.
"""
from __future__ import annotations

import numpy as np


def _runs(flags: np.ndarray):
    """(value, start, end) for each run of equal values in a 1-D array."""
    if flags.size == 0:
        return []
    change = np.flatnonzero(np.diff(flags.astype(np.int64))) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [flags.size]])
    return [(int(flags[s]), int(s), int(e)) for s, e in zip(starts, ends)]


def rope_index(input_ids: np.ndarray, image_grid_thw: np.ndarray | None, *, image_token_id: int,
               spatial_merge_size: int, attention_mask: np.ndarray | None = None):
    """3D M-RoPE position ids [3, B, L] and rope deltas [B] (max position + 1 - number of real tokens).

    Padding positions (attention_mask == 0) get position 0. Each run of consecutive image-pad tokens is one
    image and consumes the next row of `image_grid_thw`, in batch order; a run whose length does not match its
    grid (t*h*w / merge^2) is an error.
    """
    input_ids = np.asarray(input_ids)
    b, length = input_ids.shape
    mask = np.ones_like(input_ids, dtype=bool) if attention_mask is None else np.asarray(attention_mask).astype(bool)
    grids = np.zeros((0, 3), np.int64) if image_grid_thw is None else np.asarray(image_grid_thw, np.int64)
    positions = np.zeros((3, b, length), np.int64)
    deltas = np.zeros((b,), np.int64)
    next_image = 0
    for i in range(b):
        ids = input_ids[i][mask[i]]
        pieces, cur = [], 0
        for is_image, start, end in _runs(ids == image_token_id):
            n = end - start
            if not is_image:
                pieces.append(np.broadcast_to(np.arange(n) + cur, (3, n)))
                cur += n
                continue
            if next_image >= len(grids):
                raise ValueError(f"input_ids: sample {i} has more images than image_grid_thw rows ({len(grids)})")
            t, h, w = (int(x) for x in grids[next_image])
            gh, gw = h // spatial_merge_size, w // spatial_merge_size
            if n != t * gh * gw:
                raise ValueError(
                    f"input_ids: sample {i}, image {next_image}: {n} image tokens but image_grid_thw="
                    f"{[t, h, w]} needs t*h*w/merge^2={t * gh * gw}")
            tt, hh, ww = np.meshgrid(np.arange(t), np.arange(gh), np.arange(gw), indexing="ij")
            pieces.append(np.stack([tt.ravel(), hh.ravel(), ww.ravel()]) + cur)
            cur += max(h, w) // spatial_merge_size
            next_image += 1
        pos = np.concatenate(pieces, axis=1) if pieces else np.zeros((3, 0), np.int64)
        positions[:, i, mask[i]] = pos
        deltas[i] = (pos.max() + 1 - ids.size) if ids.size else 0
    if next_image != len(grids):
        raise ValueError(f"image_grid_thw has {len(grids)} rows but input_ids hold {next_image} images")
    return positions, deltas


def vision_patch_layout(image_grid_thw: np.ndarray, *, spatial_merge_size: int, window_merged: int):
    """Per image, its patches in window order: list of (order [n], pos_hw [n, 2], window_id [n]).

    `order[j]` is the processor-order index of the patch at window-order slot j. Window order is the reference's
    (`Qwen2_5_VisionTransformer.get_window_index`): windows of window_merged x window_merged merged tokens,
    row-major over the image; inside a window its merged tokens row-major; each merged token's merge^2 patches
    contiguous, in processor order. Every window is then one contiguous run of at most
    window_merged^2 * merge^2 patches, which is what lets windowed attention run per chunk in linear time.
    pos_hw is the patch's (h, w) rotary position, window_id the window's row-major number.
    """
    m = spatial_merge_size
    out = []
    for i, (t, h, w) in enumerate(np.asarray(image_grid_thw, np.int64).reshape(-1, 3)):
        t, h, w = int(t), int(h), int(w)
        if t != 1:
            raise ValueError(f"image_grid_thw row {i} = {[t, h, w]}: t must be 1 (one image; video is not "
                             "supported)")
        gh, gw = h // m, w // m
        br, bc = (a.ravel() for a in np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij"))
        nww = -(-gw // window_merged)
        window = (br // window_merged) * nww + bc // window_merged  # per merged token, processor order
        merged_order = np.lexsort((bc, br, window))  # sort by window, then row, then column
        order = (merged_order[:, None] * m * m + np.arange(m * m)).ravel()
        # Processor order puts merge block (br, bc)'s patches at (br*m + dr, bc*m + dc), dr/dc row-major.
        dr, dc = np.divmod(np.arange(m * m), m)
        hpos = (br[:, None] * m + dr).ravel()
        wpos = (bc[:, None] * m + dc).ravel()
        pos = np.stack([hpos, wpos], -1)[order]
        out.append((order, pos, np.repeat(window[merged_order], m * m)))
    return out
