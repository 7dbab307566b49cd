"""Outpainting backends: given an image, a mask of where to paint and a prompt, return a repainted image.

`procedural` (CPU, no weights) and `diffusers_sdxl` (StableDiffusionXLControlNetInpaintPipeline from local
directories). A backend paints the whole frame it is given; the pipeline composites and pastes the boxes back.
"""
from __future__ import annotations

import dataclasses
from typing import Hashable

import numpy as np


@dataclasses.dataclass
class OutpaintItem:
    image: np.ndarray  # uint8[H, W, 3], the original
    paint: np.ndarray  # bool[H, W], True where the backend should paint a new background
    prompt: str
    seed: int
    params: dict  # resolved generation params: steps, guidance, strength
    keep: np.ndarray | None = None  # bool[H, W], the pixels that will be pasted back (the objects)
    boxes: tuple = ()  # the ground-truth boxes in whole pixels (x0, y0, x1, y1), x1/y1 exclusive


class Backend:
    """Interface. One instance lives on the worker thread that owns the device."""

    name = "abstract"

    def identity(self) -> dict:
        """What `stats` reports: backend name, model paths/ids, device, dtype."""
        return {"backend": self.name}

    def batch_key(self, width: int, height: int, params: dict) -> Hashable:
        """Jobs with equal keys may share one `outpaint` call."""
        return (width, height, tuple(sorted(params.items())))

    def outpaint(self, items: list[OutpaintItem]) -> list[np.ndarray]:
        """uint8[H, W, 3] per item, same size as its image."""
        raise NotImplementedError


def resolve_device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def make_backend(config) -> Backend:
    if config.backend == "procedural":
        from synth_torch.backends.procedural import ProceduralBackend

        return ProceduralBackend(delay_s=config.procedural_delay_s,
                                 object_scale=config.get("procedural_object_scale", 1.0))
    if config.backend == "diffusers_sdxl":
        from synth_torch.backends.diffusers_sdxl import DiffusersSDXLBackend

        return DiffusersSDXLBackend.from_config(config)
    raise ValueError(f"config.backend={config.backend!r} must be 'procedural' or 'diffusers_sdxl'")
