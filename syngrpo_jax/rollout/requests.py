"""From a `Sample` to what a rollout engine takes: the chat prompt's token ids and the processed image.

Qwen2.5-VL answers in absolute pixels of the image as it saw it (after smart_resize), so each prepared request
also records that size (`model_hw`) next to the original's (`image_hw`): rewards rescale predicted boxes from
one to the other, and SFT targets go the other way.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from syngrpo_jax.data.prompts import build_prompt
from syngrpo_jax.data.sample import Sample, load_image
from syngrpo_jax.processing.chat import prompt_ids
from syngrpo_jax.processing.image import model_hw as grid_model_hw
from syngrpo_jax.processing.image import num_image_tokens, preprocess_image
from syngrpo_jax.rollout.base import RolloutRequest


@dataclasses.dataclass(frozen=True)
class PreparedRequest:
    request: RolloutRequest
    sample: Sample
    model_hw: tuple[int, int]  # (height, width) of the resized image the model saw
    image_hw: tuple[int, int]  # (height, width) of the original image (the ground truth's frame)


def prepare_request(sample: Sample, tokenizer, fmt: str, *, min_pixels: int, max_pixels: int) -> PreparedRequest:
    """The rollout request for one sample in response format `fmt` (image loaded from sample.image_path)."""
    image = load_image(sample)
    pixels, grid = preprocess_image(image, min_pixels=min_pixels, max_pixels=max_pixels)
    ids = prompt_ids(tokenizer, build_prompt(sample, fmt), [num_image_tokens(grid)])
    request = RolloutRequest(np.asarray(ids, np.int32), pixels, np.asarray([grid], np.int64), sample.sample_id)
    return PreparedRequest(request, sample, grid_model_hw(grid), (image.height, image.width))


def with_prompt(prepared: PreparedRequest, tokenizer, text: str) -> PreparedRequest:
    """The same request (same image, same pixels) with `text` next to the image instead of its prompt."""
    ids = prompt_ids(tokenizer, text, [num_image_tokens(g) for g in prepared.request.image_grid_thw])
    request = dataclasses.replace(prepared.request, prompt_ids=np.asarray(ids, np.int32))
    return dataclasses.replace(prepared, request=request)
