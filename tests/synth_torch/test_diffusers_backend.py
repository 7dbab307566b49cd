"""The real diffusers path: a tiny random SDXL ControlNet inpainting checkpoint, saved and loaded by path."""
import numpy as np
import pytest

from syngrpo_jax.synthesis.client import SynthesisClient, SynthesisJob
from synth_torch.backends.diffusers_sdxl import DiffusersSDXLBackend, working_size


def sdxl_config(helpers, dirs, **overrides):
    return helpers.load_config(
        "sdxl", **{"model.base_dir": dirs.base_dir, "model.controlnet_dir": dirs.controlnet_dir,
                   "model.vae_dir": dirs.vae_dir, "steps": 2, "working_resolution": 64, "device": "cpu",
                   **overrides})


def test_working_size():
    assert working_size(1024, 1024, 1024, 64) == (1024, 1024)
    assert working_size(640, 480, 1024, 64) == (1152, 896)
    w, h = working_size(33, 17, 64, 8)
    assert w % 8 == 0 and h % 8 == 0 and w > h
    assert working_size(5000, 10, 64, 16)[1] == 16


def test_missing_directories_are_named(helpers, tmp_path, tiny_sdxl):
    with pytest.raises(FileNotFoundError, match="model.base_dir"):
        DiffusersSDXLBackend.from_config(sdxl_config(helpers, tiny_sdxl, **{"model.base_dir": str(tmp_path / "x")}))
    with pytest.raises(FileNotFoundError, match="not a diffusers model directory"):
        DiffusersSDXLBackend.from_config(sdxl_config(helpers, tiny_sdxl, **{"model.controlnet_dir": str(tmp_path)}))
    with pytest.raises(ValueError, match="model.controlnet_dir"):
        DiffusersSDXLBackend.from_config(sdxl_config(helpers, tiny_sdxl, **{"model.controlnet_dir": None}))


def test_tiny_sdxl_serves_a_job_end_to_end(helpers, tiny_sdxl):
    """Server (diffusers_sdxl backend loaded from the saved dirs) + client: new background, exact boxes."""
    # keep = the whole boxes (the foreground estimate has its own tests): the boxes come back byte-exact
    config = sdxl_config(helpers, tiny_sdxl, batch_size=2, batch_wait_s=2.0, **{"segmentation.model": "none"})
    image = helpers.make_image(72, 100, seed=3)  # not a multiple of the model's stride: resized and back
    boxes = [[10.5, 8, 40, 50.5], [60, 20, 95, 70]]
    with helpers.running_server(config) as server:
        ident = server.stats()["backend"]
        assert ident["backend"] == "diffusers_sdxl" and ident["base_dir"] == tiny_sdxl.base_dir
        with SynthesisClient(server.endpoint, timeout_s=120) as client:
            jobs = [SynthesisJob(sample_id=i, description=d, boxes=boxes, image=helpers.png_bytes(image), seed=i)
                    for i, d in enumerate(["a snowy forest", "a red city street"])]
            results = client.run_batch(jobs)
    assert [r.sample_id for r in results] == [0, 1]
    for r in results:
        assert r.ok, r.error_message
        assert r.boxes_verified
        out = r.image()
        assert out.shape == image.shape
        for x0, y0, x1, y1 in [(10, 8, 40, 51), (60, 20, 95, 70)]:
            assert np.array_equal(out[y0:y1, x0:x1], image[y0:y1, x0:x1])
        bg = np.ones(image.shape[:2], bool)
        bg[0:63, 0:52] = bg[8:82, 48:100] = False  # boxes plus their dilated, feathered seam
        assert np.abs(out[bg].astype(int) - image[bg]).mean() > 20
        assert r.timings["backend"] > 0
    assert results[0].batch_size == 2  # equal sizes and params: one pipeline call
    assert not np.array_equal(results[0].image(), results[1].image())
