"""Figures from synthetic runs: curves draw the logged arrays, galleries show the right image per epoch, PNGs
are written with sensible sizes and are not blank, and missing metrics or image files do not crash."""
import json
import math
import os

import numpy as np
import pytest
from PIL import Image, ImageDraw

from syngrpo_jax import plots
from syngrpo_jax.metrics import MetricsWriter, read_metrics

STEPS = 40
STEPS_PER_EPOCH = 10
RED, BLUE, GREEN = (220, 30, 30), (30, 60, 220), (20, 170, 60)


def write_run(workdir, *, syn: bool, seed: int) -> list[dict]:
    """A run like the trainer's: GRPO's entropy and diversity collapse; Syn-GRPO also logs R_div and synthesis."""
    rng = np.random.default_rng(seed)
    v_global = None
    with MetricsWriter(workdir, tensorboard=False) as writer:
        for step in range(STEPS):
            decay = math.exp(-step / (60 if syn else 12))
            v_batch = float(np.clip(0.5 * decay + 0.05 * rng.standard_normal(), 0, 1))
            v_global = v_batch if v_global is None else 0.7 * v_global + 0.3 * v_batch
            m = {"epoch": step // STEPS_PER_EPOCH, "entropy": 1.2 * decay + 0.05 * rng.standard_normal(),
                 "diversity/V_batch": v_batch, "diversity/V_global": v_global,
                 "reward/accuracy": 0.3 + 0.4 * (1 - decay) + 0.05 * rng.standard_normal(),
                 "reward/format": min(1.0, 0.5 + step / 20), "loss": float(rng.standard_normal()),
                 "kl_ref": 0.01 * step, "grad_norm": 1 + rng.random(), "clip_frac_low": 0.01, "clip_frac_high": 0.02,
                 "response_length_mean": 120 - step, "lr": 1e-6,
                 "time/rollout": 2 + rng.random(), "time/rewards": 0.2, "time/update": 1.5, "time/weight_sync": 0.3,
                 "time/waiting": 0.1 * rng.random(), "time/step": 4.5}
            if step == 7:
                m["entropy"] = float("nan")  # logged as null: a gap, not a crash
            if syn:
                m["reward/diversity"] = 0.6 + 0.3 * (1 - decay)
                m.update({"synthesis/submitted": 4 * (step + 1), "synthesis/completed": 4 * step,
                          "synthesis/failed": step // 10, "synthesis/in_flight": 4 - step // 10 % 2,
                          "pool/synthesized_samples": min(20, 2 * step)})
            m["reward/total"] = m["reward/accuracy"] + m["reward/format"] + m.get("reward/diversity", 0.0)
            writer.write(step, m)
    return read_metrics(workdir)


def solid_png(path, color, size=(80, 60), mark=(255, 255, 255)):
    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).ellipse((20, 15, 50, 45), fill=mark)  # the "foreground" that synthesis keeps
    image.save(path)
    return str(path)


def write_gallery(workdir):
    """Sample a: two synthesized versions in epoch 0 then one in epoch 2; b: never rewritten; c: its v1 file is gone."""
    synth = workdir / "synth"
    synth.mkdir()
    long = ("a quiet autumn park with golden leaves on wet cobblestones, soft morning fog and a row of old "
            "lamp posts fading into the distance behind the object")
    tracked = [
        {"sample_id": "a", "original": solid_png(workdir / "a.png", RED),
         "history": [{"version": 0, "epoch": None, "step": None, "path": str(workdir / "a.png"), "description": ""},
                     {"version": 1, "epoch": 0, "step": 3, "path": solid_png(synth / "a1.png", GREEN),
                      "description": "a beach"},
                     {"version": 2, "epoch": 0, "step": 8, "path": solid_png(synth / "a2.png", BLUE),
                      "description": long},
                     {"version": 3, "epoch": 2, "step": 25, "path": "synth/a3.png",  # relative to the workdir
                      "description": "a snowy street"}]},
        {"sample_id": "b", "original": solid_png(workdir / "b.png", GREEN, size=(50, 90)), "history": []},
        {"sample_id": "c", "original": solid_png(workdir / "c.png", RED),
         "history": [{"version": 1, "epoch": 1, "step": 14, "path": str(synth / "gone.png"), "description": "x"}]},
    ]
    solid_png(synth / "a3.png", (240, 240, 240), mark=(0, 0, 0))
    (workdir / "gallery.json").write_text(json.dumps({"tracked": tracked}))
    return tracked


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    grpo, syn = root / "grpo", root / "syn_grpo"
    records = {"grpo": write_run(grpo, syn=False, seed=0), "syn_grpo": write_run(syn, syn=True, seed=1)}
    write_gallery(syn)
    return {"grpo": str(grpo), "syn_grpo": str(syn), "records": records, "root": root}


def png_stats(path):
    image = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
    return image.shape[1], image.shape[0], image.std(), image


def lines_by_gid(fig):
    return {line.get_gid(): line for ax in fig.axes for line in ax.get_lines() if line.get_gid()}


def reference_ema(values, w):
    out, acc, n = [], 0.0, 0
    for x in values:
        if np.isnan(x):
            out.append(np.nan)
            continue
        acc, n = w * acc + (1 - w) * x, n + 1
        out.append(acc / (1 - w ** n))
    return np.array(out)


def test_curves_draw_the_logged_values(runs, tmp_path):
    out = tmp_path / "curves.png"
    fig = plots.plot_curves([runs["grpo"], runs["syn_grpo"]], str(out), labels=["GRPO", "Syn-GRPO"], smoothing=0.5)
    lines = lines_by_gid(fig)
    for label, key in (("GRPO", "grpo"), ("Syn-GRPO", "syn_grpo")):
        records = runs["records"][key]
        for metric in ("entropy", "diversity/V_batch", "reward/accuracy", "reward/total"):
            expected = np.array([np.nan if r[metric] is None else r[metric] for r in records])
            raw = lines[f"{label}|{metric}|raw"]
            np.testing.assert_array_equal(raw.get_xdata(), [r["step"] for r in records])
            np.testing.assert_allclose(raw.get_ydata(), expected, equal_nan=True)
            np.testing.assert_allclose(lines[f"{label}|{metric}|smooth"].get_ydata(), reference_ema(expected, 0.5),
                                       equal_nan=True)
        # V_global is already an EMA: drawn once, as logged.
        np.testing.assert_allclose(lines[f"{label}|diversity/V_global|raw"].get_ydata(),
                                   [r["diversity/V_global"] for r in records])
        assert f"{label}|diversity/V_global|smooth" not in lines
    assert np.isnan(lines["GRPO|entropy|raw"].get_ydata()[7])
    # GRPO has no diversity reward: no line, and the panel says so.
    assert "Syn-GRPO|reward/diversity|raw" in lines and "GRPO|reward/diversity|raw" not in lines
    panel = next(ax for ax in fig.axes if ax.get_title() == "Diversity reward")
    assert any(t.get_text() == "not logged: GRPO" for t in panel.texts)

    width, height, std, _ = png_stats(out)
    assert 1000 <= width <= 1400 and 900 <= height <= 1400, (width, height)
    assert std > 20


def test_curves_without_smoothing_and_panels_only_for_logged_metrics(runs, tmp_path):
    fig = plots.plot_curves(runs["grpo"], str(tmp_path / "c.png"))
    titles = {ax.get_title() for ax in fig.axes if ax.get_visible()}
    assert titles == {"Token entropy", "Answer diversity", "Accuracy reward", "Format reward", "Total reward"}
    assert not [g for g in lines_by_gid(fig) if g.endswith("|smooth")]
    with pytest.raises(ValueError, match="smoothing"):
        plots.plot_curves(runs["grpo"], str(tmp_path / "d.png"), smoothing=1.0)
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        plots.plot_curves([str(tmp_path)], str(tmp_path / "e.png"))


def test_metric_series_sorts_and_keeps_the_last_duplicate():
    records = [{"step": 2, "x": 1.0}, {"step": 0, "x": None}, {"step": 1}, {"step": 2, "x": 5.0}]
    steps, values = plots.metric_series(records, "x")
    assert steps.tolist() == [0, 2]
    np.testing.assert_array_equal(values, [np.nan, 5.0])
    assert plots.epoch_boundaries([{"step": s, "epoch": s // 3} for s in range(7)]) == [(3, 1), (6, 2)]


def test_gallery_columns_pick_the_latest_version_per_epoch(runs):
    tracked = json.load(open(os.path.join(runs["syn_grpo"], "gallery.json")))["tracked"]
    versions = [[None if e is None else e["version"] for e in plots.gallery_columns(t, range(4))] for t in tracked]
    assert versions == [[2, 2, 3, 3], [None] * 4, [None, 1, 1, 1]]


def test_gallery_png(runs, tmp_path):
    out = tmp_path / "gallery.png"
    fig = plots.plot_gallery(runs["syn_grpo"], str(out))
    # 3 samples x (original + epochs 0..3, the last epoch from metrics.jsonl)
    image_axes = [ax for ax in fig.axes if ax.get_images()]
    assert len(image_axes) == 3 * 5
    assert [ax.get_title() for ax in image_axes[:5]] == ["original", "end of epoch 0", "end of epoch 1",
                                                         "end of epoch 2", "end of epoch 3"]
    assert sum("missing" in t.get_text() for ax in fig.axes for t in ax.texts) == 3  # c's v1, epochs 1..3
    captions = [ax.get_xlabel() for ax in image_axes]
    assert captions[1].startswith("v2 · epoch 0 · step 8\na quiet autumn park")
    assert captions[1].endswith("…") and captions[1].count("\n") == 3
    assert captions[2] == "v2 (unchanged)" and captions[3].startswith("v3 · epoch 2 · step 25\na snowy street")

    width, height, std, pixels = png_stats(out)
    assert 900 <= width <= 1500 and 800 <= height <= 1200, (width, height)
    assert std > 20

    def share(color):
        return np.mean(np.all(np.abs(pixels - np.array(color)) < 12, axis=-1))

    # Every version that should be shown is: red originals (a, c, c's fallback), blue a-v2, green b.
    assert share(RED) > 0.01 and share(BLUE) > 0.01 and share(GREEN) > 0.01


def test_gallery_max_epochs_and_bad_input(runs, tmp_path):
    fig = plots.plot_gallery(runs["syn_grpo"], str(tmp_path / "g.png"), max_epochs=2, max_samples=1)
    assert [ax.get_title() for ax in fig.axes if ax.get_images()] == ["original", "end of epoch 0", "end of epoch 3"]
    (tmp_path / "gallery.json").write_text(json.dumps({"tracked": [{"sample_id": "a"}]}))
    with pytest.raises(ValueError, match="original"):
        plots.plot_gallery(str(tmp_path), str(tmp_path / "h.png"))


def test_timing_png_and_skip_when_nothing_timed(runs, tmp_path):
    out = tmp_path / "timing.png"
    fig = plots.plot_timing([runs["grpo"], runs["syn_grpo"]], str(out))
    assert fig is not None and png_stats(out)[2] > 20
    assert any("no synthesis" in t.get_text() for ax in fig.axes for t in ax.texts)  # GRPO's panel
    with MetricsWriter(tmp_path / "bare", tensorboard=False) as writer:
        writer.write(0, {"reward/accuracy": 0.5})
    assert plots.plot_timing(str(tmp_path / "bare"), str(tmp_path / "t2.png")) is None
    assert not (tmp_path / "t2.png").exists()


def test_plot_all_and_cli(runs, tmp_path):
    written = plots.plot_all(runs["syn_grpo"], str(tmp_path / "one"))
    assert sorted(os.path.basename(p) for p in written) == ["curves.png", "gallery.png", "timing.png",
                                                           "training.png"]
    assert all(png_stats(p)[2] > 20 for p in written)

    written = plots.main([f"--workdir={runs['grpo']},{runs['syn_grpo']}", "--labels=GRPO,Syn-GRPO",
                          f"--out={tmp_path / 'two'}", "--smoothing=0.3"])
    assert sorted(os.path.basename(p) for p in written) == ["curves.png", "gallery_Syn-GRPO.png", "timing.png",
                                                           "training.png"]
    assert os.path.dirname(written[0]) == str(tmp_path / "two")
    with pytest.raises(SystemExit):
        plots.main([f"--workdir={runs['grpo']}", "--labels=a,b"])


def test_difficulty_png_draws_each_family_and_level_and_the_chosen_levels(tmp_path):
    """difficulty.png: per QA family a panel with the logged accuracy per level (EMA of the raw values) and the
    chosen level as background spans; runs without qa/ metrics get no file."""
    chosen = [1, 1, 2, 2, 2, 3, 3, 2]
    with MetricsWriter(tmp_path / "qa", tensorboard=False) as writer:
        for step, level in enumerate(chosen):
            writer.write(step, {"qa/cubes/level": level, f"qa/cubes/d{level}/accuracy": 0.1 * step,
                                "qa/sudoku/d1/accuracy": 0.5, "reward/accuracy": 0.5})
    out = tmp_path / "difficulty.png"
    fig = plots.plot_difficulty(str(tmp_path / "qa"), str(out), smoothing=0.5)
    assert png_stats(out)[2] > 20
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["cubes", "sudoku"]
    cubes = fig.axes[0]
    line = next(ln for ln in cubes.lines if ln.get_gid() == "cubes|d2")
    np.testing.assert_allclose(line.get_ydata(), reference_ema([0.2, 0.3, 0.4, 0.7], 0.5))
    spans = [(p.get_x(), p.get_x() + p.get_width()) for p in cubes.patches]
    assert spans == [(0, 2), (2, 5), (5, 7), (7, 8)]  # the level logged after step s holds for (s, s + 1]
    assert plots.plot_difficulty(str(tmp_path / "qa"), str(tmp_path / "d0.png"), smoothing=0.0) is not None
    with MetricsWriter(tmp_path / "bare", tensorboard=False) as writer:
        writer.write(0, {"reward/accuracy": 0.5})
    assert plots.plot_difficulty(str(tmp_path / "bare"), str(tmp_path / "d2.png")) is None
    assert not (tmp_path / "d2.png").exists()


def test_curves_plot_the_training_images_complexity(tmp_path):
    """data/bytes_per_pixel and data/edge_density (logged per step by the trainer) get their own panel."""
    bpp, edges = [0.1, 0.2, 0.4, 0.5], [0.05, 0.1, 0.3, 0.2]
    with MetricsWriter(str(tmp_path), tensorboard=False) as w:
        for step, (b, e) in enumerate(zip(bpp, edges), 1):
            w.write(step, {"entropy": 1.0, "data/bytes_per_pixel": b, "data/edge_density": e})
    fig = plots.plot_curves(str(tmp_path), str(tmp_path / "c.png"))
    panel = next(ax for ax in fig.axes if ax.get_title() == "Training-image background complexity")
    ys = {line.get_gid().split("|")[1]: line.get_ydata().tolist() for line in panel.get_lines() if line.get_gid()}
    assert ys == {"data/bytes_per_pixel": bpp, "data/edge_density": edges}


def test_evaluations_are_drawn_as_marked_points(tmp_path):
    """A run evaluated only before and after (the demo) must not look like a measured straight line: each
    evaluation is a marker at its step; the per-step training curves carry none."""
    with MetricsWriter(str(tmp_path), tensorboard=False) as w:
        for step in range(0, 101):
            m = {"entropy": 0.3}
            if step in (0, 100):
                m["eval/rec_val/acc@0.5"] = 0.545 if step == 0 else 0.605
            w.write(step, m)
    fig = plots.plot_curves(str(tmp_path), str(tmp_path / "c.png"))
    lines = lines_by_gid(fig)
    evaluated = next(line for gid, line in lines.items() if gid.endswith("|eval/rec_val/acc@0.5|raw"))
    assert evaluated.get_xdata().tolist() == [0, 100] and evaluated.get_ydata().tolist() == [0.545, 0.605]
    assert evaluated.get_marker() == "o"
    assert next(line for gid, line in lines.items() if gid.endswith("|entropy|raw")).get_marker() in ("None", None)


def test_gallery_enlarges_small_images_pixel_for_pixel(tmp_path):
    """A demo image (112 px) is drawn larger than it is: without smoothing, so a 1-px edge stays one (enlarged)
    pixel instead of a blurred band. A large image is shrunk with antialiasing."""
    small, large = solid_png(tmp_path / "small.png", RED, size=(112, 112)), solid_png(tmp_path / "large.png", RED,
                                                                                      size=(600, 400))
    tracked = [{"sample_id": "s", "original": small, "history": []},
               {"sample_id": "l", "original": large, "history": []}]
    (tmp_path / "gallery.json").write_text(json.dumps({"tracked": tracked}))
    with MetricsWriter(str(tmp_path), tensorboard=False) as w:
        w.write(0, {"epoch": 0, "entropy": 1.0})
    fig = plots.plot_gallery(str(tmp_path), str(tmp_path / "g.png"))
    shown = [ax.get_images()[0] for ax in fig.axes if ax.get_images()]
    assert [im.get_interpolation() for im in shown] == ["nearest", "nearest", "antialiased", "antialiased"]
