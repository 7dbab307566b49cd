import io
import time

import numpy as np
import pytest
from PIL import Image

from syngrpo_jax.data import engine, shape_scene
from syngrpo_jax.protocol import synthesis as proto
from synth_torch import foreground
from synth_torch.pipeline import Job, SynthesisPipeline


def job(image_png: bytes, boxes, description: str, width: int, height: int, seed: int = 1) -> Job:
    header = proto.unpack_header(proto.synthesize_frames(job_id="j", sample_id=0, description=description,
                                                         boxes=boxes, seed=seed, image_bytes=b"")[0], proto.Limits())
    return Job(b"peer", proto.validate_synthesize(header, proto.Limits()), image_png, width, height,
               time.perf_counter())


def true_mask(obj, width, height):
    return shape_scene.coverage(obj, width, height) >= 0.5


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("size", [112, 160])
def test_estimate_matches_the_engines_true_shape_masks(size):
    cfg = engine.EngineConfig(width=size, height=size)
    ious = {}
    for i in range(24):
        for task in ("rec", "ovd"):
            ex = engine.make_example(task, 0, i, cfg)
            scene = shape_scene.Scene.from_json(ex.scene["scene"])
            image = np.asarray(ex.image)
            boxes = [o.box for o in scene.objects]
            est = foreground.estimate(image, boxes)
            truth = np.zeros_like(est)
            for o in scene.objects:
                one = foreground.estimate(image, [o.box])
                ious.setdefault((scene.background["kind"], o.shape), []).append(iou(one, true_mask(o, size, size)))
                truth |= true_mask(o, size, size)
            assert iou(est, truth) >= 0.9
    kinds = {k for k, _ in ious}
    assert kinds == set(shape_scene.BACKGROUNDS) and {s for _, s in ious} == set(shape_scene.SHAPES)
    worst = min(min(v) for v in ious.values())
    assert worst >= 0.9, {k: round(min(v), 3) for k, v in ious.items()}


def test_a_box_the_object_fills_and_a_box_without_contrast_are_kept_whole():
    image = np.full((40, 50, 3), 230, np.uint8)
    image[10:20, 10:22] = (220, 38, 38)  # a square fills its box
    np.testing.assert_array_equal(foreground.box_foreground(image, (10, 10, 22, 20)), np.ones((10, 12), bool))
    np.testing.assert_array_equal(foreground.box_foreground(image, (30, 5, 45, 25)), np.ones((20, 15), bool))


def test_object_flush_with_the_image_border():
    obj = shape_scene.SceneObject("circle", "blue", "large", (0, 0, 30, 30))
    scene = shape_scene.Scene(64, 48, {"kind": "solid", "colors": [[240, 235, 220], [0, 0, 0]]}, (obj,))
    image = np.asarray(shape_scene.render_scene(scene))
    assert iou(foreground.estimate(image, [obj.box]), true_mask(obj, 64, 48)) >= 0.9


def test_pipeline_keeps_the_object_and_repaints_the_background_inside_its_box(helpers):
    ex = engine.make_example("rec", 0, 2, engine.EngineConfig(width=112, height=112, difficulty=1))
    scene = shape_scene.Scene.from_json(ex.scene["scene"])
    target = scene.objects[ex.scene["target"]]
    image = np.asarray(ex.image)
    pipe = SynthesisPipeline(helpers.load_config())  # the default: segmentation.model="estimate"
    (oc,) = pipe.run([job(helpers.png_bytes(image), [target.box], "dark checkered forest", 112, 112)],
                     time.perf_counter())
    assert oc.error is None and oc.boxes_verified
    out = np.asarray(Image.open(io.BytesIO(oc.image_png)).convert("RGB"))
    x0, y0, x1, y1 = target.box
    cov = shape_scene.coverage(target, 112, 112)[y0:y1, x0:x1]
    inside, new = image[y0:y1, x0:x1].astype(int), out[y0:y1, x0:x1].astype(int)
    np.testing.assert_array_equal(new[cov >= 0.99], inside[cov >= 0.99])  # the object: every pixel kept
    corners = cov == 0  # the box's old background around the object
    assert corners.sum() > 10 and np.abs(new[corners] - inside[corners]).mean() > 40  # ...is the new one
    assert pipe.identity()["segmentation"] == {"model": "estimate"}


def test_an_unknown_segmentation_model_is_named(helpers):
    with pytest.raises(ValueError, match="segmentation.model='bogus'"):
        SynthesisPipeline(helpers.load_config(**{"segmentation.model": "bogus"}))
