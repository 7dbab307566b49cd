"""Data engine: output round-trips through the readers, pictures match the scene metadata, runs are deterministic."""
import collections
import filecmp
import os
import subprocess
import sys

import numpy as np
import pytest

from qa_checkers import CHECKS, PIXELS
from syngrpo_jax.data.coco_detection import read_coco_detection
from syngrpo_jax.data.engine import EngineConfig, generate, main, make_example
from syngrpo_jax.data.qa import QA_CATEGORIES
from syngrpo_jax.data.qa_jsonl import read_qa
from syngrpo_jax.data.rec_jsonl import read_rec
from syngrpo_jax.data.sample import load_image
from syngrpo_jax.data.shape_scene import COLORS, SHAPES, min_gap

READERS = {"rec": lambda out: read_rec(os.path.join(out, "rec.jsonl")),
           "ovd": lambda out: read_coco_detection(os.path.join(out, "ovd.json")),
           "qa": lambda out: read_qa(os.path.join(out, "qa.jsonl"))}


@pytest.mark.parametrize("task", ["rec", "ovd", "qa"])
def test_output_round_trips_through_the_readers(engine_output, task):
    written = engine_output.samples[task]
    read = READERS[task](engine_output.out)
    assert len(read) == len(written) > 0
    for w, r in zip(written, read):
        assert (r.sample_id, r.task, r.query, r.labels, r.categories, r.answer, r.image_path) == (
            w.sample_id, w.task, w.query, w.labels, w.categories, w.answer, w.image_path)
        np.testing.assert_array_equal(r.boxes, w.boxes)
        assert r.image_size == w.image_size == (engine_output.width, engine_output.height)
        assert r.meta["difficulty"] == w.meta["difficulty"] and r.meta["split"] == "train"
        assert r.meta["dataset"] == "engine"
        image = load_image(r)
        assert image.mode == "RGB" and image.size == (engine_output.width, engine_output.height)
    assert set(s.meta["difficulty"] for s in read) == {1, 2, 3}


@pytest.mark.parametrize("task", ["rec", "ovd"])
def test_shape_scene_pictures_match_their_metadata(engine_output, task):
    """Every object has its colour at its box centre, boxes keep the minimum gap, and on plain backgrounds the
    drawn pixels fill each box exactly: nothing outside the boxes, every box touched on all four sides."""
    gap = min_gap(engine_output.width, engine_output.height)
    for sample, record in zip(engine_output.samples[task], engine_output.scenes[task]):
        scene = record["scene"]
        pixels = np.asarray(load_image(sample)).astype(int)
        boxes = [o["box"] for o in scene["objects"]]
        for o in scene["objects"]:
            x1, y1, x2, y2 = o["box"]
            assert tuple(pixels[(y1 + y2) // 2, (x1 + x2) // 2]) == COLORS[o["color"]], (sample.sample_id, o)
            assert 0 < x1 < x2 < engine_output.width and 0 < y1 < y2 < engine_output.height
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]), (a, b)
        if scene["background"]["kind"] == "solid":
            drawn = (pixels != scene["background"]["colors"][0]).any(-1)
            inside = np.zeros_like(drawn)
            for x1, y1, x2, y2 in boxes:
                inside[y1:y2, x1:x2] = True
                part = drawn[y1:y2, x1:x2]
                assert part[0].any() and part[-1].any() and part[:, 0].any() and part[:, -1].any()
            assert not (drawn & ~inside).any(), sample.sample_id


def test_ovd_labels_are_shapes_and_label_sets_include_absent_shapes(engine_output):
    negatives = 0
    for sample, record in zip(engine_output.samples["ovd"], engine_output.scenes["ovd"]):
        objects = record["scene"]["objects"]
        assert list(sample.labels) == [o["shape"] for o in objects]
        present = {o["shape"] for o in objects}
        assert present <= set(sample.categories) <= set(SHAPES)
        assert list(sample.categories) == [s for s in SHAPES if s in sample.categories]
        negatives += len(set(sample.categories) - present)
    assert negatives > 0


def files_under(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_same_seed_gives_byte_identical_files(tmp_path):
    cfg = EngineConfig(width=96, height=80)
    for run in ("a", "b"):
        for task in ("rec", "ovd", "qa"):
            generate(tmp_path / run, task, 6, seed=3, cfg=cfg, progress=False)
    names = files_under(tmp_path / "a")
    assert names == files_under(tmp_path / "b") and len(names) == 3 * 6 + 6
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", names, shallow=False)
    assert mismatch == [] and errors == []


def test_different_seeds_differ_and_prefixes_do_not_depend_on_num(tmp_path):
    cfg = EngineConfig(width=96, height=80)
    for task in ("rec", "ovd", "qa"):
        a = generate(tmp_path / "s0", task, 4, seed=0, cfg=cfg, progress=False)
        generate(tmp_path / "s1", task, 4, seed=1, cfg=cfg, progress=False)
        generate(tmp_path / "long", task, 8, seed=0, cfg=cfg, progress=False)
        name = {"rec": "rec.jsonl", "ovd": "ovd.json", "qa": "qa.jsonl"}[task]
        assert (tmp_path / "s0" / name).read_bytes() != (tmp_path / "s1" / name).read_bytes()
        for s in a:
            image = os.path.join("images", os.path.basename(s.image_path))
            assert (tmp_path / "s0" / image).read_bytes() == (tmp_path / "long" / image).read_bytes()
            assert (tmp_path / "s0" / image).read_bytes() != (tmp_path / "s1" / image).read_bytes()


def test_fixed_difficulty_and_families():
    cfg = EngineConfig(width=96, height=96, difficulty=3, families=("bar_chart",))
    examples = [make_example("qa", 0, i, cfg) for i in range(4)]
    assert {e.meta["difficulty"] for e in examples} == {3}
    assert {e.meta["qa_category"] for e in examples} == {"bar_chart"}
    kinds = collections.Counter(make_example("rec", 0, i, cfg).meta["expression_kind"] for i in range(6))
    assert set(kinds) <= {"relation", "extreme"}
    with pytest.raises(ValueError, match="difficulty"):
        EngineConfig(difficulty=4)
    with pytest.raises(ValueError, match="'histogram'"):
        EngineConfig(families=("histogram",))
    with pytest.raises(ValueError, match="families='cubes'"):
        EngineConfig(families="cubes")  # a string is not a tuple of names


def test_stratified_covers_every_family_and_difficulty_equally():
    families = ("cubes", "pie_chart", "sudoku")
    cfg = EngineConfig(width=96, height=80, families=families, stratified=True)
    cells = collections.Counter((e.meta["qa_category"], e.meta["difficulty"])
                                for e in (make_example("qa", 4, i, cfg) for i in range(18)))
    assert cells == {(f, d): 2 for f in families for d in (1, 2, 3)}
    fixed = EngineConfig(width=96, height=80, families=families, stratified=True, difficulty=2)
    cells = collections.Counter((e.meta["qa_category"], e.meta["difficulty"])
                                for e in (make_example("qa", 4, i, fixed) for i in range(6)))
    assert cells == {(f, 2): 2 for f in families}


def test_engine_qa_answers_recomputed_from_question_and_scene(engine_output):
    """What the engine writes (qa.jsonl, qa_scenes.jsonl) passes the independent checkers of every family."""
    samples = {s.sample_id: s for s in read_qa(f"{engine_output.out}/qa.jsonl")}
    seen = set()
    for record in engine_output.scenes["qa"]:
        sample = samples[record["id"]]
        assert sample.meta["qa_category"] == record["category"] and sample.answer == record["answer"]
        assert sample.query == record["question"] and sample.meta["difficulty"] == record["difficulty"]
        np.testing.assert_array_equal(sample.boxes, np.asarray(record["boxes"], np.float32).reshape(-1, 4))
        CHECKS[record["category"]](record)
        PIXELS[record["category"]](record, np.asarray(load_image(sample)).astype(int))
        seen.add(record["category"])
    assert seen == set(QA_CATEGORIES)


def test_cli_writes_what_the_readers_read(tmp_path):
    out = tmp_path / "cli"
    main([f"--out={out}", "--task=rec,qa", "--num=3", "--seed=5", "--size=96x80", "--no_progress"])
    assert [s.image_size for s in read_rec(out / "rec.jsonl")] == [(96, 80)] * 3
    assert len(read_qa(out / "qa.jsonl")) == 3
    # The module entry point itself, as the README runs it.
    done = subprocess.run([sys.executable, "-m", "syngrpo_jax.data.engine", f"--out={tmp_path / 'm'}", "--task=ovd",
                           "--num=2", "--size=80", "--no_progress"], capture_output=True, text=True, check=True)
    assert "wrote 2 ovd samples" in done.stdout
    assert [s.image_size for s in read_coco_detection(tmp_path / "m" / "ovd.json")] == [(80, 80)] * 2
