"""Warm-start descriptions: varied across images, specific to each (its objects stay visible, its texture
changes), and written only in the words the procedural backend obeys."""
import re

import numpy as np

from syngrpo_jax.data import descriptions as D
from syngrpo_jax.data.prompts import build_target, target_description
from syngrpo_jax.data.rec_jsonl import read_rec
from syngrpo_jax.data.shape_scene import COLORS
from syngrpo_jax.policy import task_corpus
from syngrpo_jax.processing.tiny_tokenizer import build_tiny_tokenizer_object

GLUE = {"a", "and", "background", "soft", "easy"}  # template words and the two neutral fillers
KINDS = {"solid": "plain", "gradient": "gradient", "stripes": "striped", "noise": "noisy"}


def vocabulary_words():
    return {w for words in D.vocabulary().values() for w in words}


def test_descriptions_use_only_the_backends_words_and_set_every_property():
    known = vocabulary_words()
    for i in range(200):
        d = D.for_sample(f"s{i}", [COLORS["red"]], "stripes")
        assert set(re.findall(r"[a-z]+", d)) <= known | GLUE, d
        spec = D.parse(d)
        assert spec.texture and spec.clutter and len(set(spec.colors)) == 2
        assert len(d.split()) == len(D.TARGET_TEMPLATE.split()), d  # one word in every slot
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


def test_targets_put_the_answer_at_one_token_offset(engine_output):
    """With the run's tiny tokenizer (trained on task_corpus), every target-description word is one token, so the
    text before <answer> has the same token length in every syn_grpo target: the warm start's answer sits at a
    fixed offset (why: `descriptions.for_sample`)."""
    samples = read_rec(f"{engine_output.out}/rec.jsonl")
    tok = build_tiny_tokenizer_object(768, task_corpus(samples, "syn_grpo"))
    for w in D.target_words():
        assert len(tok.encode(" " + w).ids) == 1, w
    prefixes = set()
    for s in samples:
        target = build_target(s, "syn_grpo", (112, 112))
        prefixes.add(len(tok.encode(target[:target.index("<answer>")]).ids))
    # descriptions of samples beyond the corpus's first ones, too
    described = {len(tok.encode(f"<description>{D.for_sample(f'other-{i}')}</description>").ids) for i in range(100)}
    assert len(prefixes) == 1 and len(described) == 1, (prefixes, described)
