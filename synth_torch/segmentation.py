"""Optional foreground segmentation that refines the box mask: BEN2 (Background Erase Network) with local weights.

The `ben2` package is imported only when configured (pip install git+https://github.com/PramaLLC/BEN2, weights
BEN2_Base.pth from its model page, stored locally). Its model returns the foreground as an RGBA image; the alpha
channel is the matte.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
from PIL import Image


class Segmenter:
    """Interface: foreground(images) -> bool[H, W] masks, one per image."""

    name = "none"

    def foreground(self, images: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


class Ben2Segmenter(Segmenter):
    name = "ben2"

    def __init__(self, weights_path: str | None, device, threshold: float = 0.5):
        if not weights_path:
            raise ValueError("segmentation.model='ben2' needs segmentation.weights_path (a local BEN2_Base.pth)")
        if not Path(weights_path).is_file():
            raise FileNotFoundError(f"segmentation.weights_path={weights_path!r}: no such file (BEN2 weights)")
        module = None
        for name in ("ben2", "BEN2"):  # the pip package is `ben2`; a source checkout exposes `BEN2`
            try:
                module = importlib.import_module(name)
                break
            except ImportError:
                continue
        if module is None or not hasattr(module, "BEN_Base"):
            raise ImportError(
                "segmentation.model='ben2' needs the `ben2` package (pip install git+https://github.com/PramaLLC/BEN2)"
                "; it is not installed")
        self.model = module.BEN_Base().to(device).eval()
        self.model.loadcheckpoints(str(weights_path))
        self.threshold = threshold
        self.identity = {"model": "ben2", "weights": str(weights_path)}

    def foreground(self, images: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            outs = self.model.inference([Image.fromarray(im) for im in images])
        if not isinstance(outs, list):
            outs = [outs]
        return [np.asarray(o.convert("RGBA"))[..., 3] >= self.threshold * 255 for o in outs]


MODELS = ("estimate", "ben2", "none")


def check_model(model) -> None:
    if model not in MODELS and model is not None:
        raise ValueError(f"segmentation.model={model!r} must be one of {MODELS}")


def make_segmenter(config, device) -> Segmenter | None:
    """The configured segmenter; None for "estimate" (synth_torch.foreground, computed per box by the pipeline)
    and "none" (the boxes themselves are the foreground)."""
    model = config.segmentation.model
    check_model(model)
    if model == "ben2":
        return Ben2Segmenter(config.segmentation.weights_path, device, config.segmentation.threshold)
    return None
