"""Warm-start descriptions: varied across images, specific to each (its objects stay visible, its texture
changes), and written only in the words the procedural backend obeys."""
import re

import numpy as np

from syngrpo_jax.data import descriptions as D
from syngrpo_jax.data.prompts import build_target, target_description
from syngrpo_jax.data.rec_jsonl import read_rec
from syngrpo_jax.data.shape_scene import COLORS

GLUE = {"a", "and", "background"}
KINDS = {"solid": "plain", "gradient": "gradient", "stripes": "striped", "noise": "noisy"}


def vocabulary_words():
    return {w for words in D.vocabulary().values() for w in words}


def test_descriptions_use_only_the_backends_words_and_set_every_property():
    known = vocabulary_words()
    for i in range(200):
        d = D.for_sample(f"s{i}", [COLORS["red"]], "stripes")
        assert set(re.findall(r"[a-z]+", d)) <= known | GLUE, d
        spec = D.parse(d)
        assert spec.texture and spec.clutter and 1 <= len(spec.colors) <= 2
        assert d == D.for_sample(f"s{i}", [COLORS["red"]], "stripes")  # deterministic


def test_descriptions_vary_across_images_in_every_property():
    specs = [D.parse(D.for_sample(f"rec-{i:06d}")) for i in range(300)]
    assert len({(s.texture, s.colors, s.brightness, s.clutter, s.hard) for s in specs}) > 200
    assert {s.texture for s in specs} == set(D.TARGET_TEXTURES)
    assert {s.clutter for s in specs} == set(D.CLUTTER_LEVELS)
    assert {s.brightness for s in specs} == {None, "dark", "bright"}
    assert 0.15 < np.mean([s.hard for s in specs]) < 0.45


def test_descriptions_keep_the_objects_visible_and_change_the_texture():
    rng = np.random.default_rng(0)
    names = list(COLORS)
    for i in range(200):
        objects = [COLORS[n] for n in rng.choice(names, size=int(rng.integers(1, 4)), replace=False)]
        kind = list(KINDS)[i % 4]
        spec = D.parse(D.for_sample(f"x{i}", objects, kind))
        assert spec.texture != KINDS[kind]
        for c in spec.colors:
            assert min(np.linalg.norm(np.subtract(c, o)) for o in objects) >= D.VISIBLE_DISTANCE


def test_engine_targets_carry_their_own_description(engine_output):
    """Through the files the trainer reads: the scene hints survive the REC jsonl round trip, and each target's
    description is the sample's own."""
    samples = read_rec(f"{engine_output.out}/rec.jsonl")
    seen = set()
    for s, scene in zip(samples, engine_output.scenes["rec"]):
        objects = {tuple(COLORS[o["color"]]) for o in scene["scene"]["objects"]}
        assert {tuple(c) for c in s.meta["object_colors"]} == objects
        assert s.meta["background"] == scene["scene"]["background"]["kind"]
        target = build_target(s, "syn_grpo", (112, 144))
        description = re.search(r"<description>(.*)</description>", target).group(1)
        assert description == target_description(s) == D.for_sample(s.sample_id, list(objects),
                                                                    s.meta["background"])
        seen.add(description)
    assert len(seen) >= 0.9 * len(samples)
