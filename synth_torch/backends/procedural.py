"""A weightless CPU backend that paints the background a description asks for (the vocabulary in
syngrpo_jax.data.descriptions, painted by syngrpo_jax.data.backgrounds): colours and brightness, a texture, clutter
and its density, and, for "hard", look-alike decoys near the kept objects (syngrpo_jax.data.decoys). Words outside
the vocabulary are ignored; a description with no colour word takes colours from its words' hashes, and what no
word sets is drawn from the seed, so any text still gives its own background.

The only object-like things a background gains are the decoys, which are chosen so that no expression of a kept
object can mean them. Same (description, seed, image) -> same pixels. Serves the embedded demo, CPU users and
tests.
"""
from __future__ import annotations

import time

import numpy as np

from syngrpo_jax.data import backgrounds, decoys, descriptions
from syngrpo_jax.data.shape_scene import SceneObject, render_objects
from synth_torch.backends import Backend, OutpaintItem


def paint(item: OutpaintItem, object_scale: float = 1.0) -> tuple[np.ndarray, list[SceneObject]]:
    """The new frame for one item and the decoys drawn on it ([] unless the description asks for "hard");
    object_scale: the engine object scale of the scenes served (decoy size classes follow it)."""
    h, w = item.paint.shape
    background = backgrounds.render_background(item.prompt, item.seed, w, h)
    if not descriptions.parse(item.prompt).hard or item.keep is None or not item.boxes:
        return background, []
    placed = decoys.plan(backgrounds.rng_for(item.prompt, item.seed, "decoys"), item.image, item.keep,
                         list(item.boxes), scale=object_scale)
    return np.asarray(render_objects(background, placed)), placed


class ProceduralBackend(Backend):
    name = "procedural"

    def __init__(self, delay_s: float = 0.0, object_scale: float = 1.0):
        self.delay_s = delay_s
        self.object_scale = object_scale

    def identity(self) -> dict:
        return {"backend": self.name, "model": "procedural-v2", "device": "cpu", "delay_s": self.delay_s,
                "object_scale": self.object_scale}

    def batch_key(self, width, height, params):
        return ("any",)  # painting is per image; batching only saves queue round trips

    def outpaint(self, items: list[OutpaintItem]) -> list[np.ndarray]:
        out = []
        for item in items:
            out.append(paint(item, self.object_scale)[0])
            if self.delay_s:
                time.sleep(self.delay_s)
        return out
