"""Qwen2.5-VL image preprocessing: smart_resize + normalise + patchify, bit-equal to transformers' image processor.

Reference: transformers' `Qwen2VLImageProcessorPil` (what `Qwen2VLImageProcessor` is without torchvision). Its
steps, which this module repeats operation for operation so that pixel_values are identical:
  1. to RGB: PIL images via `convert("RGB")`, images with transparency composited onto white first;
  2. resize with PIL bicubic to `smart_resize(h, w)` (both sides multiples of patch_size * merge_size);
  3. uint8 -> float64 * (1/255) -> float32, then (x - mean) / std in float32;
  4. cut into patch_size x patch_size patches ordered so that each merge_size x merge_size block is contiguous,
     the still image repeated temporal_patch_size times, each patch flattened as (channel, time, row, column).

Boxes: the model sees the image at `model_hw(grid_thw)`; a box in original pixels maps to model pixels by
scaling x by model_w / orig_w and y by model_h / orig_h.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

# CLIP's normalisation constants, as transformers spells them (image_utils.OPENAI_CLIP_MEAN/STD).
OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

# transformers' defaults for smart_resize (the processor class uses the same: 56*56 and 28*28*1280).
DEFAULT_MIN_PIXELS = 56 * 56
DEFAULT_MAX_PIXELS = 28 * 28 * 1280
MAX_ASPECT_RATIO = 200

ImageLike = Image.Image | np.ndarray


def smart_resize(
    height: int,
    width: int,
    factor: int = 28,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """(height, width) to resize to: both multiples of `factor`, area within [min_pixels, max_pixels] where the
    aspect ratio allows, aspect ratio kept as closely as possible. Same arithmetic as transformers' smart_resize
    (Python's round-half-to-even included). Raises ValueError for an aspect ratio above 200."""
    for name, value in (("height", height), ("width", width), ("factor", factor)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not (isinstance(min_pixels, (int, np.integer)) and isinstance(max_pixels, (int, np.integer))):
        raise ValueError(f"min_pixels and max_pixels must be integers, got {min_pixels!r} and {max_pixels!r}")
    if not 1 <= min_pixels <= max_pixels:
        raise ValueError(f"need 1 <= min_pixels <= max_pixels, got min_pixels={min_pixels}, max_pixels={max_pixels}")
    height, width = int(height), int(width)
    aspect = max(height, width) / min(height, width)
    if aspect > MAX_ASPECT_RATIO:
        raise ValueError(
            f"image aspect ratio {aspect:g} (height={height}, width={width}) exceeds {MAX_ASPECT_RATIO}, "
            "the most Qwen2.5-VL's resize accepts"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        scale = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / scale / factor) * factor)
        w_bar = max(factor, math.floor(width / scale / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * scale / factor) * factor
        w_bar = math.ceil(width * scale / factor) * factor
    return h_bar, w_bar


def to_rgb_array(image: ImageLike) -> np.ndarray:
    """[H, W, 3] uint8 RGB, converted as transformers does (transparency composited onto white).

    Arrays must be uint8 and channels-last: [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] (RGBA).
    """
    if isinstance(image, Image.Image):
        if "A" in image.getbands() or image.info.get("transparency") is not None:
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return np.array(Image.alpha_composite(white, rgba).convert("RGB"))
        return np.array(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a PIL image or a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image array dtype must be uint8 (HWC, 0..255), got dtype={image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image array shape must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got {image.shape}")
    channels = image.shape[-1]
    if channels == 1:
        return np.repeat(image, 3, axis=-1)
    if channels == 4:
        # Straight alpha over white, rounded back to uint8 (transformers' array path does the same in float64).
        alpha = image[..., 3:4] / 255
        blended = alpha * image[..., :3] + (1 - alpha) * 255
        return np.round(blended).astype(np.uint8)
    return image


def _patchify(pixels: np.ndarray, patch_size: int, temporal_patch_size: int, merge_size: int) -> np.ndarray:
    """[H, W, C] -> [gh * gw, C * T * ps * ps]; rows walk merge blocks in raster order, then patches inside one."""
    height, width, channels = pixels.shape
    gh, gw = height // patch_size, width // patch_size
    m, ps = merge_size, patch_size
    blocks = pixels.reshape(gh // m, m, ps, gw // m, m, ps, channels)
    # -> (block_row, block_col, row_in_block, col_in_block, channel, pixel_row, pixel_col)
    blocks = blocks.transpose(0, 3, 1, 4, 6, 2, 5)
    # A still image is a clip of temporal_patch_size identical frames; time sits between channel and pixel row.
    frames = np.broadcast_to(blocks[:, :, :, :, :, None], (*blocks.shape[:5], temporal_patch_size, ps, ps))
    return frames.reshape(gh * gw, channels * temporal_patch_size * ps * ps)


def preprocess_image(
    image: ImageLike,
    *,
    min_pixels: int,
    max_pixels: int,
    patch_size: int = 14,
    temporal_patch_size: int = 2,
    merge_size: int = 2,
    mean: Sequence[float] = OPENAI_CLIP_MEAN,
    std: Sequence[float] = OPENAI_CLIP_STD,
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """One image -> (pixel_values [t*h*w, 3*T*ps*ps] float32, grid_thw (1, h, w)) with h, w in patches."""
    rgb = to_rgb_array(image)
    height, width = rgb.shape[:2]
    new_h, new_w = smart_resize(
        height, width, factor=patch_size * merge_size, min_pixels=min_pixels, max_pixels=max_pixels
    )
    # PIL bicubic, reducing_gap=None, like transformers (it always goes through PIL, even at the same size).
    resized = np.array(Image.fromarray(rgb).resize((new_w, new_h), resample=Image.Resampling.BICUBIC))
    scaled = (resized.astype(np.float64) * (1 / 255)).astype(np.float32)
    normalised = (scaled - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    pixel_values = np.ascontiguousarray(_patchify(normalised, patch_size, temporal_patch_size, merge_size))
    return pixel_values, (1, new_h // patch_size, new_w // patch_size)


def preprocess_images(
    images: Sequence[ImageLike],
    *,
    min_pixels: int,
    max_pixels: int,
    patch_size: int = 14,
    temporal_patch_size: int = 2,
    merge_size: int = 2,
    mean: Sequence[float] = OPENAI_CLIP_MEAN,
    std: Sequence[float] = OPENAI_CLIP_STD,
) -> tuple[np.ndarray, np.ndarray]:
    """Several images -> (pixel_values [sum t*h*w, D] float32 concatenated in order, grid_thw [n, 3] int64).

    An empty list gives [0, D] and [0, 3] arrays (D = 3 * temporal_patch_size * patch_size**2).
    """
    kwargs = dict(
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        patch_size=patch_size,
        temporal_patch_size=temporal_patch_size,
        merge_size=merge_size,
        mean=mean,
        std=std,
    )
    patches, grids = [], []
    for index, image in enumerate(images):
        try:
            pv, grid = preprocess_image(image, **kwargs)
        except (ValueError, TypeError) as e:
            raise type(e)(f"images[{index}]: {e}") from e
        patches.append(pv)
        grids.append(grid)
    dim = 3 * temporal_patch_size * patch_size * patch_size
    pixel_values = np.concatenate(patches, axis=0) if patches else np.zeros((0, dim), np.float32)
    grid_thw = np.array(grids, dtype=np.int64).reshape(len(grids), 3)
    return pixel_values, grid_thw


def model_hw(grid_thw: Sequence[int], patch_size: int = 14) -> tuple[int, int]:
    """(height, width) in pixels of the image the model sees: grid_h * patch_size, grid_w * patch_size."""
    _, gh, gw = (int(x) for x in grid_thw)
    return gh * patch_size, gw * patch_size


def num_image_tokens(grid_thw: Sequence[int], merge_size: int = 2) -> int:
    """Number of `<|image_pad|>` tokens (merged patches) an image with this grid takes in the prompt."""
    t, gh, gw = (int(x) for x in grid_thw)
    return t * gh * gw // (merge_size * merge_size)


def pixels_to_image(
    pixel_values: np.ndarray,
    grid_thw: Sequence[int],
    *,
    patch_size: int = 14,
    temporal_patch_size: int = 2,
    merge_size: int = 2,
    mean: Sequence[float] = OPENAI_CLIP_MEAN,
    std: Sequence[float] = OPENAI_CLIP_STD,
) -> np.ndarray:
    """The inverse of `preprocess_image` after its resize: one image's patches -> the resized [H, W, 3] uint8 image.

    Exact: every normalised value came from a uint8, and undoing the normalisation lands within 1e-3 of that
    integer, so rounding recovers it. Preprocessing the result again (its size is a fixed point of smart_resize
    for the bounds that produced it, and PIL copies an image resized to its own size) gives `pixel_values` back
    bit for bit. An external rollout worker that only accepts images (vLLM) gets these pixels this way.
    """
    t, gh, gw = (int(x) for x in grid_thw)
    channels, ps, m = len(mean), patch_size, merge_size
    if t != 1:
        raise ValueError(f"grid_thw={list(grid_thw)}: only still images (t=1) have one picture to recover")
    expected = (gh * gw, channels * temporal_patch_size * ps * ps)
    if pixel_values.shape != expected:
        raise ValueError(f"pixel_values shape {pixel_values.shape} does not match grid_thw={list(grid_thw)} "
                         f"(expected {expected})")
    # [block_row, block_col, row_in_block, col_in_block, channel, time, pixel_row, pixel_col]; frame 0 suffices.
    blocks = pixel_values.reshape(gh // m, gw // m, m, m, channels, temporal_patch_size, ps, ps)[:, :, :, :, :, 0]
    normalised = blocks.transpose(0, 2, 5, 1, 3, 6, 4).reshape(gh * ps, gw * ps, channels)
    scaled = normalised.astype(np.float64) * np.asarray(std, np.float64) + np.asarray(mean, np.float64)
    return np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)


def preprocessor_config(*, min_pixels: int, max_pixels: int, patch_size: int = 14, temporal_patch_size: int = 2,
                        merge_size: int = 2) -> dict:
    """The `preprocessor_config.json` of a Qwen2.5-VL checkpoint with these settings (what transformers' and
    vLLM's processors read from a model directory)."""
    return {
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor",
        "do_convert_rgb": True, "do_resize": True, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": list(OPENAI_CLIP_MEAN), "image_std": list(OPENAI_CLIP_STD),
        "min_pixels": int(min_pixels), "max_pixels": int(max_pixels), "patch_size": patch_size,
        "temporal_patch_size": temporal_patch_size, "merge_size": merge_size,
        "size": {"shortest_edge": int(min_pixels), "longest_edge": int(max_pixels)},
    }
