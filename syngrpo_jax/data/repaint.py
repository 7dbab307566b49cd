"""Engine scenes on the backgrounds the description vocabulary paints: what the procedural data server would make
of a scene, drawn directly by the data engine (`engine.EngineConfig.repainted`).

Why: Syn-GRPO replaces every sample's image with one painted from the policy's own description, so after the
first epoch the policy trains on textured, cluttered backgrounds with look-alike decoys. A warm start that only
saw the engine's pale backgrounds meets those as new images: on the CPU demo its format and accuracy on them
collapsed (README, "What the demo shows"). Repainted scenes let the warm start see that distribution.

A repainted scene keeps its objects and expression; its background is `backgrounds.render_background` of a
description drawn like a warm-start target (`descriptions.draw`, so it never repeats the scene's own texture and
its colours keep clear of the objects'), and a "hard" description adds `decoys` exactly as the data server does:
decoys differ from every object in shape, colour and size class, so the expression still means one object.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from syngrpo_jax.data import backgrounds, decoys, descriptions
from syngrpo_jax.data.shape_scene import COLORS, Scene, coverage, render_objects, render_scene


def repaint(rng: np.random.Generator, scene: Scene, object_scale: float = 1.0) -> tuple[Image.Image, dict]:
    """The scene's objects on a vocabulary background drawn from rng, and the record of how it was painted
    ({"description", "seed", "decoys": [object JSON]}, enough to redraw it)."""
    colours = sorted({tuple(COLORS[o.color]) for o in scene.objects})
    description = descriptions.draw(rng, colours, scene.background["kind"])
    seed = int(rng.integers(2**31))
    background = backgrounds.render_background(description, seed, scene.width, scene.height)
    placed = []
    if descriptions.parse(description).hard and scene.objects:
        keep = np.zeros((scene.height, scene.width), bool)
        for o in scene.objects:
            keep |= coverage(o, scene.width, scene.height) >= 0.5
        placed = decoys.plan(backgrounds.rng_for(description, seed, "decoys"), np.asarray(render_scene(scene)),
                             keep, [o.box for o in scene.objects], scale=object_scale)
    image = render_objects(background, list(placed) + list(scene.objects))
    return image, {"description": description, "seed": seed, "decoys": [d.to_json() for d in placed]}
