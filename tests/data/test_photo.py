"""Photo-like variants: boxes follow the warp and stay inside the image, the answer and the scene never change,
the same seed gives the same pixels, and difficulty raises how often and how strongly operations apply."""
import json

import numpy as np
import pytest
from PIL import Image

from syngrpo_jax.data import photo
from syngrpo_jax.data.engine import EngineConfig, make_example
from syngrpo_jax.data.qa import QA_CATEGORIES

W, H = 144, 112


def random_boxes(rng, k):
    out = []
    for _ in range(k):
        x1, y1 = int(rng.integers(0, W - 3)), int(rng.integers(0, H - 3))
        out.append([x1, y1, int(rng.integers(x1 + 2, W + 1)), int(rng.integers(y1 + 2, H + 1))])
    return out


def test_homography_maps_the_four_points():
    rng = np.random.default_rng(0)
    src = [[0, 0], [W, 0], [W, H], [0, H]]
    dst = (np.array(src) + rng.uniform(-9, 9, (4, 2))).tolist()
    h = photo.homography(src, dst)
    q = np.c_[np.array(src, float), np.ones(4)] @ h.T  # projective coordinates, written out here
    np.testing.assert_allclose(q[:, :2] / q[:, 2:], dst, atol=1e-9)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_warped_boxes_hold_the_warped_content_tightly_and_stay_inside(difficulty):
    """A white box on black, warped: its pixels lie inside the warped box, which is at most a pixel too large."""
    warped = 0
    for seed in range(60):
        rng = np.random.default_rng([seed, difficulty])
        variant = photo.sample_variant(rng, difficulty, W, H)
        persp = [dict(op, backdrop=[0, 0, 0]) for op in variant["ops"] if op["op"] == "perspective"]
        for box in random_boxes(rng, 3):
            x1, y1, x2, y2 = box
            mask = np.zeros((H, W, 3), np.uint8)
            mask[y1:y2, x1:x2] = 255
            image, (new,) = photo.apply_variant(Image.fromarray(mask), [box], {"ops": persp})
            assert 0 <= new[0] < new[2] <= W and 0 <= new[1] < new[3] <= H, new
            ys, xs = np.nonzero(np.asarray(image)[..., 0] > 20)
            assert new[0] <= xs.min() and new[1] <= ys.min() and xs.max() < new[2] and ys.max() < new[3]
            assert max(xs.min() - new[0], ys.min() - new[1], new[2] - 1 - xs.max(), new[3] - 1 - ys.max()) <= 1
            warped += bool(persp)
    assert warped > 0


def test_same_variant_same_pixels_and_json_round_trip():
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    boxes = random_boxes(rng, 4)
    variant = photo.sample_variant(np.random.default_rng(11), 3, W, H)
    assert variant == photo.sample_variant(np.random.default_rng(11), 3, W, H)
    a, boxes_a = photo.apply_variant(image, boxes, variant)
    b, boxes_b = photo.apply_variant(image, boxes, json.loads(json.dumps(variant)))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert boxes_a == boxes_b


def test_every_operation_changes_the_picture_and_keeps_its_size():
    rng = np.random.default_rng(5)
    image = Image.fromarray(rng.integers(40, 216, (H, W, 3), dtype=np.uint8))
    seen = set()
    for seed in range(40):
        for op in photo.sample_variant(np.random.default_rng(seed), 3, W, H)["ops"]:
            out, _ = photo.apply_variant(image, [], {"ops": [op]})
            assert out.size == image.size and out.mode == "RGB"
            assert not np.array_equal(np.asarray(out), np.asarray(image)), op
            seen.add(op["op"])
    assert seen == set(photo.OPS)


def test_difficulty_raises_frequency_and_strength():
    stats = {}
    for d in (1, 2, 3):
        variants = [photo.sample_variant(np.random.default_rng([d, i]), d, W, H) for i in range(400)]
        ops = [op for v in variants for op in v["ops"]]
        for op in ops:
            lo, hi = photo.LEVELS[d][op["op"]][1]
            assert lo <= op["strength"] <= hi
        stats[d] = (len(ops) / len(variants), np.mean([op["strength"] for op in ops]))
    assert stats[1][0] < stats[2][0] < stats[3][0] and stats[1][1] < stats[2][1] < stats[3][1], stats


@pytest.mark.parametrize("family", QA_CATEGORIES)
def test_photo_variants_keep_the_scene_and_answer_and_boxes_inside(family):
    plain = EngineConfig(width=W, height=H, families=(family,))
    photo_cfg = EngineConfig(width=W, height=H, families=(family,), photo=True)
    changed = 0
    for index in range(6):
        a, b = make_example("qa", 0, index, plain), make_example("qa", 0, index, photo_cfg)
        assert {k: v for k, v in b.scene.items() if k != "photo"} == a.scene
        assert (b.query, b.answer, b.labels, b.meta) == (a.query, a.answer, a.labels, a.meta)
        for x1, y1, x2, y2 in b.boxes:
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
        if not any(op["op"] == "perspective" for op in b.scene["photo"]["ops"]):
            assert b.boxes == a.boxes
        changed += not np.array_equal(np.asarray(a.image), np.asarray(b.image))
        np.testing.assert_array_equal(np.asarray(b.image), np.asarray(make_example("qa", 0, index, photo_cfg).image))
    assert changed


def test_unknown_op_and_difficulty_are_named():
    with pytest.raises(ValueError, match="'sepia'"):
        photo.apply_variant(Image.new("RGB", (8, 8)), [], {"ops": [{"op": "sepia", "strength": 1.0}]})
    with pytest.raises(ValueError, match="difficulty 0"):
        photo.sample_variant(np.random.default_rng(0), 0, W, H)
