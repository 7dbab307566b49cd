"""Checkpoints under damage (issue 11): each of the five corruptions that used to end a restart with raw orbax /
tensorstore / JSON tracebacks is detected and named, the damaged step is moved aside (kept), and the newest
intact step is restored, with one warning; with no intact step, one error names the directory. Once through the
trainer's real resume path."""
import glob
import importlib.util
import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from syngrpo_jax.checkpoints import DAMAGED_DIR, CheckpointError, Checkpointer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# orbax's abandoned read coroutines used to print a traceback each when collected: make any such one fail here
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


def _params(step):
    return {"w": jnp.arange(1200.0).reshape(12, 100) + step, "b": {"x": jnp.full((7,), float(step))}}


def _opt(step):
    return {"m": jnp.full((12, 100), -float(step))}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Steps 1, 2, 3 of a small run, written once; each test works on its own copy."""
    directory = str(tmp_path_factory.mktemp("pristine") / "checkpoints")
    ckpt = Checkpointer(directory, max_to_keep=None)
    for step in (1, 2, 3):
        ckpt.save(step, params=_params(step), opt_state=_opt(step), state={"step": step, "pool": {"n": step}})
    ckpt.close()
    return directory


@pytest.fixture
def run_dir(saved, tmp_path):
    directory = str(tmp_path / "checkpoints")
    shutil.copytree(saved, directory)
    return directory


def _truncate(path, keep=0.5):
    with open(path, "r+b") as f:
        f.truncate(int(os.path.getsize(path) * keep))


def _largest(pattern):
    return max(glob.glob(pattern), key=os.path.getsize)


CORRUPTIONS = {
    "truncated array data": lambda s: _truncate(_largest(f"{s}/params/ocdbt.process_0/d/*")),
    "truncated manifest": lambda s: _truncate(f"{s}/params/manifest.ocdbt"),
    "truncated array metadata": lambda s: _truncate(f"{s}/params/_METADATA"),
    "deleted params directory": lambda s: shutil.rmtree(f"{s}/params"),
    "truncated host-state JSON": lambda s: _truncate(f"{s}/state/metadata"),
    "empty step directory": lambda s: (shutil.rmtree(s), os.mkdir(s)),
}


def _restore(directory):
    ckpt = Checkpointer(directory, max_to_keep=None)
    like_p, like_o = jax_zeros(_params(0)), jax_zeros(_opt(0))
    return ckpt, ckpt.restore(params_like=like_p, opt_state_like=like_o)


def jax_zeros(tree):
    return jax.tree.map(jnp.zeros_like, tree)


def _records(caplog, level=logging.WARNING):
    return [r for r in caplog.records if r.levelno >= level]


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_damaged_newest_step_is_moved_aside_and_the_previous_restored(run_dir, kind, caplog, capfd):
    step3 = os.path.join(run_dir, "3")
    before = sorted(os.listdir(step3))
    CORRUPTIONS[kind](step3)
    damaged_files = sorted(os.listdir(step3))
    caplog.set_level(logging.INFO)

    ckpt, (params, opt, ref, state) = _restore(run_dir)

    assert state == {"step": 2, "pool": {"n": 2}} and ref is None
    np.testing.assert_array_equal(params["w"], _params(2)["w"])
    np.testing.assert_array_equal(opt["m"], _opt(2)["m"])
    assert ckpt.all_steps() == [1, 2] and not os.path.exists(step3)
    (kept,) = glob.glob(os.path.join(run_dir, DAMAGED_DIR, "3-*"))
    assert sorted(os.listdir(kept)) == damaged_files and (kind == "empty step directory" or damaged_files)
    assert kind != "deleted params directory" or "params" in before and "params" not in damaged_files

    warnings = _records(caplog)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one warning, nothing from orbax
    message = warnings[0].getMessage()
    assert "step 3" in message and kept in message and "resuming from step 2" in message
    assert "Traceback" not in capfd.readouterr().err

    ckpt.save(3, params=params, opt_state=opt, state={"step": 3})  # the run goes on: step 3 is free again
    ckpt.close()
    assert Checkpointer(run_dir).all_steps() == [1, 2, 3]


def test_each_damaged_item_is_named(run_dir, caplog):
    CORRUPTIONS["truncated host-state JSON"](os.path.join(run_dir, "3"))
    CORRUPTIONS["deleted params directory"](os.path.join(run_dir, "2"))
    _, (_, _, _, state) = _restore(run_dir)
    assert state["step"] == 1
    (warning,) = _records(caplog)
    message = warning.getMessage()
    assert "steps 3, 2" in message and "step 3: state: JSONDecodeError" in message and "step 2: params" in message
    assert len(glob.glob(os.path.join(run_dir, DAMAGED_DIR, "*"))) == 2


def test_no_intact_step_is_one_error_naming_the_directory_and_moves_nothing(run_dir, caplog, capfd):
    for step, kind in zip((1, 2, 3), ("truncated array data", "empty step directory", "truncated manifest")):
        CORRUPTIONS[kind](os.path.join(run_dir, str(step)))
    with pytest.raises(CheckpointError) as info:
        _restore(run_dir)
    message = str(info.value)
    assert run_dir in message and all(f"step {s}:" in message for s in (1, 2, 3))
    assert info.value.__cause__ is None and info.value.__context__ is None  # no orbax traceback chained on
    assert sorted(os.listdir(run_dir)) == ["1", "2", "3"]
    assert _records(caplog) == [] and "Traceback" not in capfd.readouterr().err


def test_a_model_that_no_longer_matches_is_not_mistaken_for_damage(run_dir):
    """Every step fails alike when the config changed: nothing is moved, and the error says so."""
    ckpt = Checkpointer(run_dir)
    wrong = {"w": jnp.zeros((6, 100)), "b": {"x": jnp.zeros(7)}}
    with pytest.raises(CheckpointError, match="config changed"):
        ckpt.restore(params_like=wrong, opt_state_like=jax_zeros(_opt(0)))
    assert sorted(os.listdir(run_dir)) == ["1", "2", "3"]


def test_an_explicit_damaged_step_is_an_error_not_a_fallback(run_dir):
    CORRUPTIONS["truncated array data"](os.path.join(run_dir, "2"))
    ckpt = Checkpointer(run_dir)
    with pytest.raises(CheckpointError, match=r"step 2 in .* cannot be restored: params"):
        ckpt.restore(2, params_like=jax_zeros(_params(0)), opt_state_like=jax_zeros(_opt(0)))
    np.testing.assert_array_equal(ckpt.restore_params(3, params_like=jax_zeros(_params(0)))["w"], _params(3)["w"])
    assert sorted(os.listdir(run_dir)) == ["1", "2", "3"]


def _tiny_config(steps):
    spec = importlib.util.spec_from_file_location("tiny_cpu", os.path.join(REPO, "configs", "tiny_cpu.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(f"scale=test,sft_steps=0,method=grpo,steps={steps}")
    config.eval.splits = {}
    config.train.checkpoint_every = 1
    return config


@pytest.mark.slow
def test_trainer_resumes_from_the_newest_intact_step(tmp_path, caplog, capfd):
    """The real resume path: train 2 steps (a checkpoint each), truncate step 2's array data, restart for 3."""
    from syngrpo_jax import train

    workdir = str(tmp_path / "run")
    train.train(_tiny_config(2), workdir)
    checkpoints = os.path.join(workdir, "checkpoints")
    CORRUPTIONS["truncated array data"](os.path.join(checkpoints, "2"))
    capfd.readouterr()
    caplog.clear()

    summary = train.train(_tiny_config(3), workdir)

    assert summary["start_step"] == 1 and summary["steps"] == 3
    assert Checkpointer(checkpoints).all_steps() == [1, 2, 3]  # 2 and 3 written again by the resumed run
    (kept,) = glob.glob(os.path.join(checkpoints, DAMAGED_DIR, "2-*"))
    assert os.path.isdir(os.path.join(kept, "params"))
    damage = [r.getMessage() for r in _records(caplog) if "damaged" in r.getMessage()]
    assert len(damage) == 1 and "step 2" in damage[0] and "OUT_OF_RANGE" in damage[0], damage
    assert "Traceback" not in capfd.readouterr().err
