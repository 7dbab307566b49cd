"""The run directory's layout, named once: what is a run directory, and where each path of a run is."""
import os

from syngrpo_jax import run_dir
from syngrpo_jax.run_dir import RunDir, is_run_dir, run_of_step_dir


def test_paths(tmp_path):
    run = RunDir(str(tmp_path / "r"))
    assert run.root == str(tmp_path / "r")
    expected = {"config": "config.json", "checkpoints": "checkpoints", "policy": "policy", "tiny_model": "tiny_model",
                "data": "data", "synth": "synth", "sft": "sft", "metrics": "metrics.jsonl",
                "tensorboard": "tensorboard", "gallery": "gallery.json", "plots": "plots", "eval": "eval",
                "logs": "logs"}
    for attribute, name in expected.items():
        assert getattr(run, attribute) == os.path.join(run.root, name), attribute
    assert run.checkpoint(20) == os.path.join(run.root, "checkpoints", "20")
    assert run.eval_step(0) == os.path.join(run.root, "eval", "0") == run_dir.eval_step_dir(run.eval, 0)
    assert run.eval_data == os.path.join(run.root, "eval", "data")
    assert run.log_file("data_server") == os.path.join(run.root, "logs", "data_server.log")
    assert RunDir("~/x").root == os.path.join(os.path.expanduser("~"), "x")


def test_a_run_is_recognised_by_its_layout_not_its_config_json(tmp_path):
    hf_like = tmp_path / "hf"
    hf_like.mkdir()
    (hf_like / "config.json").write_text("{}")
    assert not is_run_dir(hf_like)  # config.json alone: an HF model directory has one too
    by_checkpoints = tmp_path / "a"
    (by_checkpoints / "checkpoints").mkdir(parents=True)
    assert is_run_dir(by_checkpoints)
    by_policy = tmp_path / "b"
    (by_policy / "policy").mkdir(parents=True)
    assert not is_run_dir(by_policy)
    (by_policy / "policy" / "config.json").write_text("{}")
    assert is_run_dir(by_policy)
    assert run_of_step_dir(by_checkpoints / "checkpoints" / "40") == RunDir(str(by_checkpoints))
    assert run_of_step_dir(by_checkpoints / "checkpoints") is None
    assert run_of_step_dir(tmp_path / "other" / "40") is None
