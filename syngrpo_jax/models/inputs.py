"""`ModelInputs`: everything the jitted forward needs, as static-shape arrays prepared on the host.

transformers' processor output (input_ids, attention_mask, pixel_values packed over all images, image_grid_thw)
has data-dependent shapes. `prepare_inputs` turns it into fixed-shape arrays: images padded to a common patch
count (rounded up to a bucket so a run compiles a bounded number of times), their patches permuted into
attention-window order with rotary positions and window ids, the 3D text positions and, for every image-pad
token, the index of the merged vision feature that replaces it.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from syngrpo_jax.models.config import Qwen25VLConfig
from syngrpo_jax.models.positions import rope_index, vision_patch_layout


class ModelInputs(NamedTuple):
    """A batch for `Qwen25VL.hidden_states`. B prompts of length L; N images padded to P patches each."""

    input_ids: np.ndarray  # [B, L] int32
    attention_mask: np.ndarray  # [B, L] bool, False at padding
    position_ids: np.ndarray  # [3, B, L] int32, M-RoPE (t, h, w)
    rope_deltas: np.ndarray  # [B] int32, next text position = number of real tokens + delta
    image_src: np.ndarray  # [B, L] int32, flat index into the [N * P / merge^2] merged features, -1 for text
    patches: np.ndarray  # [N, P, C*T*p*p] float32 pixel patches in window order, zero padded at the end
    patch_pos: np.ndarray  # [N, P, 2] int32 (h, w) rotary positions, window order
    window_id: np.ndarray  # [N, P] int32 attention window (contiguous runs), -1 at padding
    merged_order: np.ndarray  # [N, P / merge^2] int32 window-order index of each processor-order merged token


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _as_int_array(name: str, x, ndim: int) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != ndim or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be a {ndim}-D integer array, got shape {a.shape} dtype {a.dtype}")
    return a


def prepare_inputs(config: Qwen25VLConfig, input_ids, attention_mask=None, pixel_values=None,
                   image_grid_thw=None, *, patch_multiple: int = 64, num_images: int | None = None,
                   num_patches: int | None = None) -> ModelInputs:
    """Host-side preparation of a processor batch (numpy, or anything np.asarray accepts: torch/jax arrays).

    patch_multiple: per-image patch count is padded up to a multiple of this (a multiple of merge^2).
    num_images: pad the image axis to this many images (for a fixed compiled shape); default: exactly as many.
    num_patches: pad every image to exactly this many patches (overrides the rounding).
    """
    vc = config.vision
    ids = _as_int_array("input_ids", input_ids, 2)
    b, length = ids.shape
    if attention_mask is None:
        mask = np.ones((b, length), bool)
    else:
        mask = np.asarray(attention_mask)
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask shape {mask.shape} != input_ids shape {ids.shape}")
        mask = mask.astype(bool)
    if np.any(ids[mask] == config.video_token_id):
        raise ValueError(f"input_ids contain video tokens (id {config.video_token_id}); video is not supported")
    if np.any((ids < 0) | (ids >= config.text.vocab_size)):
        bad = ids[(ids < 0) | (ids >= config.text.vocab_size)][0]
        raise ValueError(f"input_ids: token id {int(bad)} outside the vocabulary [0, {config.text.vocab_size})")
    if (pixel_values is None) != (image_grid_thw is None):
        raise ValueError("pixel_values and image_grid_thw must be given together")
    grids = (np.zeros((0, 3), np.int64) if image_grid_thw is None
             else _as_int_array("image_grid_thw", image_grid_thw, 2).astype(np.int64))
    position_ids, rope_deltas = rope_index(ids, grids, image_token_id=config.image_token_id,
                                           spatial_merge_size=vc.spatial_merge_size, attention_mask=mask)
    patches, patch_pos, window_id, merged_order = prepare_vision(
        config, pixel_values, grids, patch_multiple=patch_multiple, num_images=num_images, num_patches=num_patches)
    counts = np.prod(grids, axis=1).astype(np.int64)
    p = patches.shape[1]

    # The j-th image token of the batch (row-major) is the j-th merged feature over images in order.
    merged_per_image = p // vc.merge_unit
    src = np.concatenate([i * merged_per_image + np.arange(c // vc.merge_unit) for i, c in enumerate(counts)]
                         ) if len(grids) else np.zeros((0,), np.int64)
    is_image = (ids == config.image_token_id) & mask
    if int(is_image.sum()) != src.size:
        raise ValueError(f"input_ids hold {int(is_image.sum())} image tokens but image_grid_thw gives "
                         f"{src.size} merged vision features")
    image_src = np.full((b, length), -1, np.int32)
    image_src[is_image] = src
    return ModelInputs(ids.astype(np.int32), mask, position_ids.astype(np.int32), rope_deltas.astype(np.int32),
                       image_src, patches, patch_pos, window_id, merged_order)


def prepare_vision(config: Qwen25VLConfig, pixel_values, image_grid_thw, *, patch_multiple: int = 64,
                   num_images: int | None = None, num_patches: int | None = None):
    """Pad packed processor pixels into per-image rows in window order (see `positions.vision_patch_layout`):
    (patches [N, P, patch_dim], patch_pos [N, P, 2], window_id [N, P], merged_order [N, P / merge^2]);
    P = num_patches, or the largest image's patch count rounded up to patch_multiple."""
    vc = config.vision
    if patch_multiple % vc.merge_unit:
        raise ValueError(f"patch_multiple={patch_multiple} must be a multiple of merge^2={vc.merge_unit}")
    grids = np.zeros((0, 3), np.int64) if image_grid_thw is None else np.asarray(image_grid_thw, np.int64)
    if grids.ndim != 2 or grids.shape[1] != 3:
        raise ValueError(f"image_grid_thw must be [num_images, 3], got shape {grids.shape}")
    m = vc.spatial_merge_size
    bad = np.flatnonzero((grids <= 0).any(1) | (grids[:, 1] % m != 0) | (grids[:, 2] % m != 0))
    if bad.size:
        raise ValueError(f"image_grid_thw row {int(bad[0])} = {grids[bad[0]].tolist()}: entries must be "
                         f"positive with h and w divisible by spatial_merge_size={m}")
    counts = np.prod(grids, axis=1).astype(np.int64)
    pixels = (np.zeros((0, vc.patch_dim), np.float32) if pixel_values is None
              else np.asarray(pixel_values, dtype=np.float32))
    expected = int(counts.sum())
    if pixels.ndim != 2 or pixels.shape != (expected, vc.patch_dim):
        raise ValueError(f"pixel_values shape {pixels.shape} does not match image_grid_thw: expected "
                         f"({expected}, {vc.patch_dim}) = (sum of t*h*w, C*T*patch^2)")
    n = len(grids) if num_images is None else num_images
    if n < len(grids):
        raise ValueError(f"num_images={num_images} is less than the {len(grids)} images in the batch")
    p = round_up(int(counts.max()), patch_multiple) if len(grids) else patch_multiple
    if num_patches is not None:
        if num_patches < (int(counts.max()) if len(grids) else 0) or num_patches % vc.merge_unit:
            raise ValueError(f"num_patches={num_patches} must be a multiple of {vc.merge_unit} holding the largest "
                             f"image ({int(counts.max()) if len(grids) else 0} patches)")
        p = num_patches
    patches = np.zeros((n, p, vc.patch_dim), np.float32)
    patch_pos = np.zeros((n, p, 2), np.int32)
    window_id = np.full((n, p), -1, np.int32)
    merged_order = np.tile(np.arange(p // vc.merge_unit, dtype=np.int32), (n, 1))  # identity at padding
    layout = vision_patch_layout(grids, spatial_merge_size=m, window_merged=vc.window_merged)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for i, (order, pos, win) in enumerate(layout):
        k = int(counts[i])
        patches[i, :k] = pixels[offsets[i]:offsets[i + 1]][order]
        patch_pos[i, :k], window_id[i, :k] = pos, win
        merged_order[i, order[::vc.merge_unit] // vc.merge_unit] = np.arange(k // vc.merge_unit)
    return patches, patch_pos, window_id, merged_order


def prepare_prompts(config: Qwen25VLConfig, prompt_ids, pixel_values=None, image_grid_thw=None, *, pad_id: int,
                    length_multiple: int = 64, patch_multiple: int = 64, length: int | None = None,
                    num_images: int | None = None, num_patches: int | None = None) -> ModelInputs:
    """Left-pad a list of prompts (each a 1-D id sequence, image pads expanded) to a common bucketed length, so
    every prompt's last token sits at the same position and generation appends in lockstep. pixel_values and
    image_grid_thw are per-prompt lists (None or empty for prompts without images). `length`, `num_images`
    and `num_patches` force the padded shapes (several batches sharing one compiled shape)."""
    lengths = [len(p) for p in prompt_ids]
    if not lengths or min(lengths) == 0:
        raise ValueError(f"prompt_ids: need at least one non-empty prompt, got lengths {lengths}")
    if length is not None and length < max(lengths):
        raise ValueError(f"length={length} is shorter than the longest prompt ({max(lengths)} tokens)")
    length = length or round_up(max(lengths), length_multiple)
    ids = np.full((len(lengths), length), pad_id, np.int64)
    mask = np.zeros((len(lengths), length), bool)
    for i, p in enumerate(prompt_ids):
        ids[i, length - len(p):] = np.asarray(p)
        mask[i, length - len(p):] = True
    pixels = [np.asarray(x, np.float32) for x in (pixel_values or []) if x is not None and len(x)]
    grids = [np.asarray(g, np.int64).reshape(-1, 3) for g in (image_grid_thw or []) if g is not None and len(g)]
    return prepare_inputs(config, ids, mask,
                          np.concatenate(pixels) if pixels else None, np.concatenate(grids) if grids else None,
                          patch_multiple=patch_multiple, num_images=num_images, num_patches=num_patches)


def extend_with_responses(prompts: ModelInputs, response_ids: np.ndarray, response_mask: np.ndarray,
                          group_size: int) -> ModelInputs:
    """Inputs for teacher-forcing B left-padded prompts x G responses: [B*G, Lp + T].

    Row b*G + g is prompt b followed by response g of that prompt (right-padded to T). Image tokens of all G
    copies point at the same vision features (the tower runs once per prompt, and gradients from every copy add
    up). Response tokens continue the text positions (real prompt length + k + rope delta); they are never
    treated as image tokens, whatever ids they hold.
    """
    response_ids = np.asarray(response_ids)
    response_mask = np.asarray(response_mask).astype(bool)
    b = prompts.input_ids.shape[0]
    n, t = response_ids.shape
    if n != b * group_size or response_mask.shape != (n, t):
        raise ValueError(f"responses {response_ids.shape} / mask {response_mask.shape} do not match {b} prompts x "
                         f"group_size {group_size}")
    rep = np.repeat(np.arange(b), group_size)
    prompt_len = prompts.attention_mask.sum(axis=1)[rep]
    delta = prompts.rope_deltas[rep]
    resp_pos = (prompt_len + delta)[:, None] + np.arange(t)[None, :]
    return ModelInputs(
        input_ids=np.concatenate([prompts.input_ids[rep], response_ids.astype(np.int32)], axis=1),
        attention_mask=np.concatenate([prompts.attention_mask[rep], response_mask], axis=1),
        position_ids=np.concatenate([prompts.position_ids[:, rep], np.broadcast_to(resp_pos, (3, n, t))],
                                    axis=2).astype(np.int32),
        rope_deltas=delta.astype(np.int32),
        image_src=np.concatenate([prompts.image_src[rep], np.full((n, t), -1, np.int32)], axis=1),
        patches=prompts.patches, patch_pos=prompts.patch_pos, window_id=prompts.window_id,
        merged_order=prompts.merged_order)
