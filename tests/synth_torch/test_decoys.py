"""The "hard" lever: look-alike decoys near the target, and synthesized REC samples that still mean exactly one
object -- read back from the synthesized pixels and resolved with the engine's own resolver."""
import io
import time

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from syngrpo_jax.data import decoys, descriptions, engine, referring, shape_scene
from syngrpo_jax.data.shape_scene import COLORS, DECOY_SHAPES, SHAPES, Scene, SceneObject
from syngrpo_jax.protocol import synthesis as proto
from synth_torch import foreground
from synth_torch.backends import OutpaintItem
from synth_torch.backends.procedural import paint
from synth_torch.pipeline import Job, SynthesisPipeline

SIZE = 112


def rec(index, difficulty, scale=1.0):
    ex = engine.make_example("rec", 0, index, engine.EngineConfig(width=SIZE, height=SIZE, difficulty=difficulty,
                                                                   object_scale=scale))
    scene = Scene.from_json(ex.scene["scene"])
    return ex, scene, ex.scene["target"]


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_decoys_differ_from_the_target_in_every_attribute(difficulty):
    placed = 0
    for i in range(30):
        ex, scene, t = rec(i, difficulty)
        target = scene.objects[t]
        image = np.asarray(ex.image)
        keep = foreground.estimate(image, [target.box])
        for seed in range(3):
            for d in decoys.plan(np.random.default_rng(seed), image, keep, [target.box]):
                placed += 1
                assert d.shape in DECOY_SHAPES and d.shape not in SHAPES
                assert d.color != target.color and d.size != target.size
                assert shape_scene.boxes_apart(d.box, target.box, shape_scene.min_gap(SIZE, SIZE))
                x0, y0, x1, y1 = d.box
                assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
    assert placed >= 30 * 3 * 2  # most scenes get two or three


def components(image):
    """Saturated connected regions of an image on a pale background -> [(bool mask, bbox)]."""
    img = image.astype(int)
    saturated = img.max(-1) - img.min(-1) > 80
    labels, n = ndimage.label(saturated)
    out = []
    for k in range(1, n + 1):
        mask = labels == k
        if mask.sum() < 12:
            continue  # anti-aliasing specks
        ys, xs = np.nonzero(mask)
        out.append((mask, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)))
    return out


def read_object(image, mask, box, scale):
    """An object read from pixels: nearest engine colour, best-matching polygon, size class from its box."""
    median = np.median(image[mask].astype(float), axis=0)
    color = min(COLORS, key=lambda c: np.linalg.norm(median - np.array(COLORS[c])))
    h, w = mask.shape

    def fit(shape):
        cov = shape_scene.coverage(SceneObject(shape, color, "small", box), w, h) >= 0.5
        return (cov & mask).sum() / (cov | mask).sum()

    shape = max(SHAPES + DECOY_SHAPES, key=fit)
    side = np.sqrt((box[2] - box[0]) * (box[3] - box[1])) / min(w, h)
    size = "large" if side >= 0.17 * scale else "small"  # between the engine's two (scaled) size ranges
    return SceneObject(shape, color, size, box)


def box_iou(a, b):
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union


def synthesize(image, box, description, seed):
    header = proto.unpack_header(proto.synthesize_frames(job_id="j", sample_id=0, description=description,
                                                         boxes=[list(box)], seed=seed, image_bytes=b"")[0],
                                 proto.Limits())
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    job = Job(b"peer", proto.validate_synthesize(header, proto.Limits()), png.getvalue(), SIZE, SIZE,
              time.perf_counter())
    return job


@pytest.mark.parametrize("word", sorted(descriptions.HARD_WORDS))
def test_hard_words_draw_decoys_near_the_target(word):
    ex, scene, t = rec(1, 1)
    image, box = np.asarray(ex.image), scene.objects[t].box
    keep = foreground.estimate(image, [box])
    plain, none = paint(OutpaintItem(image, ~keep, "a plain snow backdrop", 0, {}, keep=keep, boxes=(box,)))
    hard, placed = paint(OutpaintItem(image, ~keep, f"a plain snow backdrop, {word}", 0, {}, keep=keep,
                                      boxes=(box,)))
    assert none == [] and len(placed) >= 2
    changed = np.any(hard != plain, axis=-1)
    for d in placed:
        x0, y0, x1, y1 = d.box
        assert changed[y0:y1, x0:x1].mean() > 0.3  # the decoy is painted...
        near = max(x0 - box[2], box[0] - x1, y0 - box[3], box[1] - y1)
        assert near <= 2.5 * (x1 - x0)  # ...near the target
    outside = np.ones_like(changed)
    for d in placed:
        outside[d.box[1]:d.box[3], d.box[0]:d.box[2]] = False
    assert not changed[outside].any()  # and nothing else changes


@pytest.mark.parametrize("scale", [1.0, 1.8])
def test_synthesized_rec_samples_resolve_to_exactly_one_object(helpers, scale):
    """Through the real pipeline (foreground estimate + procedural backend): the synthesized image holds the
    target and the decoys, nothing else object-like; read back from its pixels, the sample's expression still
    means the target alone."""
    pipe = SynthesisPipeline(helpers.load_config(procedural_object_scale=scale))
    description = "a plain snow backdrop, hard"
    checked = with_decoys = 0
    for i in range(6):
        for difficulty in (1, 2):
            ex, scene, t = rec(i, difficulty, scale)
            target = scene.objects[t]
            image = np.asarray(ex.image)
            (oc,) = pipe.run([synthesize(image, target.box, description, seed=i)], time.perf_counter())
            assert oc.error is None and oc.boxes_verified
            out = np.asarray(Image.open(io.BytesIO(oc.image_png)).convert("RGB"))
            keep = foreground.estimate(image, [target.box])
            item = OutpaintItem(image, ~keep, description, i, {}, keep=keep, boxes=(target.box,))
            planned = paint(item, scale)[1]
            found = [read_object(out, m, b, scale) for m, b in components(out)]
            assert len(found) == 1 + len(planned)
            for d in planned:  # every planned decoy is drawn, and reads back as what it is
                assert any((o.shape, o.color, o.size) == (d.shape, d.color, d.size) and box_iou(o.box, d.box) > 0.8
                           for o in found), (d, found)
            overlap = [box_iou(o.box, target.box) for o in found]
            index = int(np.argmax(overlap))  # the target, read back (its thin anti-aliased rim may be lost)
            assert overlap[index] > 0.6
            assert found[index].color == target.color and found[index].shape == target.shape
            synthesized = Scene(SIZE, SIZE, scene.background, tuple(found))
            assert referring.resolve(ex.scene["expression"], synthesized) == [index]
            checked += 1
            with_decoys += bool(planned)
    assert checked == 12 and with_decoys >= 8


def test_no_decoy_without_a_safe_choice():
    """Kept objects of both size classes: no size class differs from all of them, so no decoy is safe."""
    for i in range(10):
        ex, scene, _ = rec(i, 1)
        sizes = {o.size: o.box for o in scene.objects}
        if len(sizes) == 2:
            break
    boxes = list(sizes.values())
    image = np.asarray(ex.image)
    keep = foreground.estimate(image, boxes)
    assert decoys.plan(np.random.default_rng(0), image, keep, boxes) == []
    assert len(decoys.plan(np.random.default_rng(0), image, keep, boxes[:1])) >= 1
