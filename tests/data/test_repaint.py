"""Repainted engine scenes (engine.EngineConfig.repainted): the objects and expression of a scene on a background
the description vocabulary paints, with decoys for "hard" descriptions, and the expression still meaning one
object."""
import numpy as np
import pytest

from syngrpo_jax.data import descriptions, engine, referring
from syngrpo_jax.data.backgrounds import render_background
from syngrpo_jax.data.descriptions import TEXTURES
from syngrpo_jax.data.rec_jsonl import read_rec
from syngrpo_jax.data.shape_scene import DECOY_SHAPES, Scene, SceneObject, coverage, render_scene
from syngrpo_jax.data.sources import engine_samples

SIZE = 112


def config(repainted, **kw):
    kw = dict(width=SIZE, height=SIZE, difficulty=1, objects=(1, 1), object_scale=1.8) | kw
    return engine.EngineConfig(repainted=repainted, **kw)


def covered(objects) -> np.ndarray:
    """bool[H, W]: pixels any object touches at all (their anti-aliased rims included), grown by one pixel."""
    mask = np.zeros((SIZE, SIZE), bool)
    for o in objects:
        mask |= coverage(o, SIZE, SIZE) > 0
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return grown


def test_without_a_share_scenes_keep_the_engine_background():
    """repainted=0 (the default): every image is the scene as the engine draws it, with no repaint record."""
    for i in range(8):
        ex = engine.make_example("rec", 0, i, config(0.0))
        assert "repainted" not in ex.scene and "background_description" not in ex.meta
        scene = Scene.from_json(ex.scene["scene"])
        assert np.array_equal(np.asarray(ex.image), np.asarray(render_scene(scene)))
        assert ex.meta["background"] == scene.background["kind"]


@pytest.mark.parametrize("task", ["rec", "ovd"])
def test_repainted_scenes_show_the_vocabulary_background_around_their_objects(task):
    """Every pixel away from the objects and decoys is the vocabulary painter's for the recorded (description,
    seed); the objects are drawn as the scene says; meta names the new texture, which is not the old one."""
    hard = 0
    for i in range(12):
        ex = engine.make_example(task, 0, i, config(1.0))
        record = ex.scene["repainted"]
        scene = Scene.from_json(ex.scene["scene"])
        placed = [SceneObject.from_json(d) for d in record["decoys"]]
        image = np.asarray(ex.image)
        free = ~covered(list(scene.objects) + placed)
        background = render_background(record["description"], record["seed"], SIZE, SIZE)
        assert np.array_equal(image[free], background[free])
        assert free.mean() > 0.5
        for o in scene.objects:  # each object's interior keeps its colour
            inside = coverage(o, SIZE, SIZE) == 1
            assert np.abs(image[inside].astype(int) - np.asarray(engine.COLORS[o.color])).max() <= 1
        spec = descriptions.parse(record["description"])
        assert spec.texture in TEXTURES and spec.texture == ex.meta["background"]
        assert ex.meta["background_description"] == record["description"]
        assert spec.texture != descriptions._ENGINE_KINDS.get(scene.background["kind"])
        hard += spec.hard
        assert bool(placed) <= spec.hard  # decoys only for hard descriptions
    assert hard >= 1


def test_hard_repainted_rec_scenes_still_mean_exactly_one_object():
    """With the decoys counted as objects, the engine's resolver still finds the target alone; every decoy
    differs from every object in shape (never one the engine names), colour and size class (so scenes whose
    objects span both size classes get none)."""
    checked = 0
    for i in range(80):
        for difficulty in (1, 2):
            ex = engine.make_example("rec", 0, i, config(1.0, difficulty=difficulty, objects=(1, 3), object_scale=1.0))
            placed = [SceneObject.from_json(d) for d in ex.scene["repainted"]["decoys"]]
            if not placed:
                continue
            scene = Scene.from_json(ex.scene["scene"])
            for d in placed:
                assert d.shape in DECOY_SHAPES
                assert all(d.color != o.color and d.size != o.size for o in scene.objects)
            with_decoys = Scene(SIZE, SIZE, scene.background, scene.objects + tuple(placed))
            assert referring.resolve(ex.scene["expression"], with_decoys) == [ex.scene["target"]]
            checked += 1
    assert checked >= 10


def test_the_share_is_the_configured_one_and_the_cache_keeps_settings_apart(tmp_path):
    shares = [np.mean(["repainted" in engine.make_example("rec", 0, i, config(p)).scene for i in range(200)])
              for p in (0.25, 0.5)]
    assert abs(shares[0] - 0.25) < 0.08 and abs(shares[1] - 0.5) < 0.08
    plain = engine_samples("rec", str(tmp_path), num=4, seed=0, size=SIZE, difficulty=1, min_objects=1, max_objects=1)
    mixed = engine_samples("rec", str(tmp_path), num=4, seed=0, size=SIZE, difficulty=1, min_objects=1, max_objects=1,
                           repainted=1.0)
    assert plain[0].image_path != mixed[0].image_path
    assert all("background_description" in s.meta for s in mixed)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", True])
def test_a_bad_share_is_refused_by_name(bad, tmp_path):
    with pytest.raises(ValueError, match="repainted"):
        engine.EngineConfig(repainted=bad)
    with pytest.raises(ValueError, match="repainted"):
        engine_samples("rec", str(tmp_path), num=1, seed=0, size=SIZE, difficulty=1, repainted=bad)


@pytest.mark.parametrize("texture", TEXTURES)
def test_a_target_description_never_repeats_a_repainted_scene_s_texture(texture):
    """The warm-start description of a repainted sample asks for a texture other than the one it shows."""
    drawn = {descriptions.parse(descriptions.for_sample(f"rec-{i:06d}", (), texture)).texture for i in range(60)}
    assert texture not in drawn and len(drawn) == len(TEXTURES) - 1


def test_the_engine_cli_repaints_and_refuses_a_bad_share_by_name(tmp_path, capsys):
    engine.main([f"--out={tmp_path}", "--task=rec", "--num=6", "--size=112", "--difficulty=1", "--objects", "1", "1",
                 "--repainted=1", "--no_progress"])
    assert all("background_description" in s.meta for s in read_rec(tmp_path / "rec.jsonl"))
    with pytest.raises(SystemExit):
        engine.main([f"--out={tmp_path}", "--task=rec", "--num=1", "--repainted=2", "--no_progress"])
    assert "repainted=2.0: must be a share in [0, 1]" in capsys.readouterr().err
