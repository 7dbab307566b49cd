"""The trainer end to end: the real data-server subprocess, every method config, exact resume after SIGKILL,
sync vs async synthesis, and configuration errors caught before anything compiles."""
import hashlib
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import nnx

from syngrpo_jax import methods, train
from syngrpo_jax.checkpoints import Checkpointer
from syngrpo_jax.data.pool import DataPool
from syngrpo_jax.data.sources import load_samples
from syngrpo_jax.grpo.optimizer import make_optimizer
from syngrpo_jax.metrics import read_metrics
from syngrpo_jax.models import qwen2_5_vl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CPU = os.path.join(REPO, "configs", "tiny_cpu.py")

STEP_FIELDS = {
    "step", "epoch", "lr", "reward/accuracy", "reward/format", "reward/diversity", "reward/total", "diversity/V_batch",
    "entropy", "loss", "pg_loss", "clip_frac_low", "clip_frac_high", "grad_norm", "response_length_mean",
    "response_length_max", "pool/synthesized_samples", "time/rollout", "time/rewards", "time/synthesis",
    "time/waiting", "time/update", "time/weight_sync", "time/step"}
SYNTHESIS_FIELDS = {"synthesis/submitted", "synthesis/completed", "synthesis/failed", "synthesis/in_flight",
                    "synthesis/timed_out", "synthesis/server_up"}


def tiny_config(arg: str):
    spec = importlib.util.spec_from_file_location("tiny_cpu", TINY_CPU)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(f"scale=test,sft_steps=0,{arg}")


def train_rows(workdir):
    """metrics.jsonl lines of training steps (evaluation lines, e.g. eval/* at step 0, are separate)."""
    return [r for r in read_metrics(str(workdir)) if "reward/total" in r]


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.slow
def test_end_to_end_through_the_data_server(tmp_path):
    """Synthesized images replace pool images; originals survive byte-identical; provenance and metrics."""
    config = tiny_config("method=grpo_offline_generation,steps=3,sync")
    data_dir = tmp_path / "data"
    originals = {s.sample_id: _sha(s.image_path) for s in load_samples(config.data, str(data_dir))}
    summary = train.train(config, str(tmp_path))
    assert summary["steps"] == 3

    rows = train_rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert STEP_FIELDS | SYNTHESIS_FIELDS <= set(r), sorted(STEP_FIELDS | SYNTHESIS_FIELDS - set(r))
    assert rows[-1]["synthesis/completed"] >= 8 and rows[-1]["pool/synthesized_samples"] >= 4

    state = Checkpointer(str(tmp_path / "checkpoints")).restore_state()
    pool = DataPool(load_samples(config.data, str(data_dir)), str(tmp_path), seed=config.seed)
    pool.load_state_dict(state["pool"])
    descriptions = set(json.load(open(config.synthesis.descriptions_file)))
    replaced = [sid for sid in pool.sample_ids if pool.version(sid) > 0]
    assert replaced
    for sid in pool.sample_ids:
        assert _sha(pool.original(sid).image_path) == originals[sid]  # originals survive
    for sid in replaced:
        current = pool.current(sid)
        assert current.image_path != pool.original(sid).image_path and os.path.isfile(current.image_path)
        assert _sha(current.image_path) != originals[sid]  # a new background
        last = pool.history(sid)[-1]
        assert last.description in descriptions
        assert 0 <= last.submitted_step <= last.applied_step <= 3
        assert last.meta["boxes_verified"] is True
    gallery = json.load(open(tmp_path / "gallery.json"))
    assert len(gallery["tracked"]) == config.train.track_samples


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(methods.METHODS))
def test_every_method_runs_two_steps(tmp_path, method):
    config = tiny_config(f"method={method},steps=2,sync")
    summary = train.train(config, str(tmp_path))
    ckpt = Checkpointer(str(tmp_path / "checkpoints"))
    assert ckpt.latest_step() == 2
    if not methods.get(method).rl:
        return
    rows = train_rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in rows)
    if method == "syn_grpo_no_div":
        assert all(r["reward/diversity"] == 0 for r in rows)
        assert "diversity/V_global" not in rows[-1]
    if method == "syn_grpo":
        assert "diversity/V_global" in rows[-1]
    assert summary["last"]["reward/total"] == pytest.approx(
        summary["last"]["reward/accuracy"] + summary["last"]["reward/format"] + summary["last"]["reward/diversity"])


def test_method_prompts_and_rewards():
    """syn_grpo_no_div asks for no score and gives no R_div; mm_upt's rewards ignore the labels."""
    from syngrpo_jax.data.prompts import build_prompt
    from syngrpo_jax.data.sample import Sample
    from syngrpo_jax.rewards.group_rewards import score_groups
    from syngrpo_jax.rollout.requests import PreparedRequest
    from syngrpo_jax.rollout.base import RolloutRequest

    sample = Sample("s0", "rec", "/x.png", query="the red circle", boxes=np.array([[10, 10, 40, 40]], np.float32),
                    labels=("the red circle",), image_size=(100, 100))
    assert "<score>" not in build_prompt(sample, "syn_grpo_no_div") and "<description>" in build_prompt(
        sample, "syn_grpo_no_div")
    assert "<score>" in build_prompt(sample, "syn_grpo")
    texts = [["<think>a</think><score>0.3</score><description>snow</description><answer>" + b + "</answer>"
              for b in ('{"bbox_2d": [10, 10, 40, 40]}', '{"bbox_2d": [12, 10, 40, 42]}', '{"bbox_2d": [60, 60, 90, 90]}',
                        "oops")]]
    prep = PreparedRequest(RolloutRequest(np.zeros(3, np.int32)), sample, (100, 100), (100, 100))
    no_div = score_groups([prep], texts, response_format="syn_grpo_no_div", use_diversity=False)
    assert np.all(no_div.diversity == 0) and np.allclose(no_div.total, no_div.accuracy + no_div.format)

    corrupted = PreparedRequest(prep.request, Sample(
        "s0", "rec", "/x.png", query="garbage", boxes=np.array([[70, 0, 99, 5]], np.float32), labels=("zzz",),
        image_size=(100, 100)), (100, 100), (100, 100))
    a = score_groups([prep], texts, response_format="grpo", accuracy_mode="majority")
    b = score_groups([corrupted], texts, response_format="grpo", accuracy_mode="majority")
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    assert a.accuracy[0, 0] > 0.5 and a.accuracy[0, 3] == 0  # agreeing with the medoid pays; unparsable gets 0
    task = score_groups([corrupted], texts, response_format="grpo", accuracy_mode="task")
    assert not np.array_equal(task.accuracy, a.accuracy)  # the task reward does read the (corrupted) labels


@pytest.mark.slow
def test_sync_waits_and_async_never_waits(tmp_path):
    sync = tiny_config("method=grpo_offline_generation,steps=2,sync")
    sync.synthesis.server_overrides = "procedural_delay_s=1.0"
    train.train(sync, str(tmp_path / "sync"))
    asyn = tiny_config("method=grpo_offline_generation,steps=2")
    asyn.synthesis.server_overrides = "procedural_delay_s=1.0"
    train.train(asyn, str(tmp_path / "async"))
    sync_rows, async_rows = train_rows(tmp_path / "sync"), train_rows(tmp_path / "async")
    # 4 jobs of 1 s each per step, served one at a time: sync waits for them, async does not wait at all.
    assert all(r["time/waiting"] >= 3.0 for r in sync_rows)
    assert all(r["time/waiting"] == 0.0 for r in async_rows)
    assert all(r["time/step"] < 3.0 for r in async_rows[1:])  # the first step includes compilation
    # Sync applies a step's images within the step; async applies them when a later step polls.
    assert sync_rows[0]["pool/synthesized_samples"] >= 1 and async_rows[0]["pool/synthesized_samples"] == 0
    assert async_rows[1]["pool/synthesized_samples"] >= 1


def _run(workdir, arg, *overrides):
    cmd = [sys.executable, "-m", "syngrpo_jax.train", f"--config={TINY_CPU}:scale=test,sft_steps=0,{arg}",
           f"--workdir={workdir}", *overrides]
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _final_state(workdir, step):
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    model = qwen2_5_vl.from_pretrained(os.path.join(workdir, "tiny_model"))
    params_like = nnx.to_pure_dict(nnx.state(model))
    opt_like = jax.eval_shape(lambda p: make_optimizer(learning_rate=1.0, total_steps=6).init(p), params_like)
    opt_like = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), opt_like)
    params, opt_state, _, host = ckpt.restore(step, params_like=params_like, opt_state_like=opt_like)
    return params, opt_state, host


@pytest.mark.slow
def test_exact_resume_after_sigkill(tmp_path):
    """6 steps straight == 3+ steps, SIGKILL, resume to 6: identical params, optimizer, smoother and pool."""
    arg = "method=grpo_offline_generation,steps=6,sync"
    slow = "--config.synthesis.server_overrides=procedural_delay_s=0.2"
    straight = _run(tmp_path / "straight", arg, slow)
    assert straight.wait(600) == 0, straight.stderr.read()[-3000:]

    killed = tmp_path / "killed"
    proc = _run(killed, arg, slow)
    deadline = time.monotonic() + 600
    while not (killed / "checkpoints" / "3").is_dir():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps_before = Checkpointer(str(killed / "checkpoints")).latest_step()
    assert 3 <= steps_before < 6
    resumed = _run(killed, arg, slow)
    assert resumed.wait(600) == 0, resumed.stderr.read()[-3000:]

    a_params, a_opt, a_host = _final_state(str(tmp_path / "straight"), 6)
    b_params, b_opt, b_host = _final_state(str(killed), 6)
    for x, y in zip(jax.tree.leaves(a_params), jax.tree.leaves(b_params)):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(jax.tree.leaves(a_opt), jax.tree.leaves(b_opt)):
        np.testing.assert_array_equal(x, y)
    assert a_host["smoother"] == b_host["smoother"]
    a_pool = {k: v for k, v in a_host["pool"].items()}
    b_pool = {k: v for k, v in b_host["pool"].items()}
    for v in list(a_pool["versions"].values()) + list(b_pool["versions"].values()):
        for entry in v:
            entry.pop("job_id", None)  # random per submission; everything else must match
            entry.get("meta", {}).pop("latency_s", None)
    assert a_pool == b_pool
    assert any(a_pool["versions"].values())  # the pool really changed during the run
    assert [r["step"] for r in train_rows(killed)] == [1, 2, 3, 4, 5, 6]  # no duplicated steps after the resume


@pytest.mark.parametrize("arg,override,error,message", [
    ("method=grpo", ("method", "dpo"), ValueError, "method='dpo' is unknown"),
    ("method=grpo", ("rollout.group_size", 1), ValueError, r"rollout.group_size=1: must be >= 2"),
    ("method=grpo", ("train.micro_batches", 3), ValueError, r"train.micro_batches=3"),
    ("method=syn_grpo", ("reward.diversity", False), ValueError, r"reward.diversity=False contradicts"),
    ("method=grpo", ("data.source", "files"), FileNotFoundError, r"data.train_path=''"),
    ("method=grpo", ("loss.clip_low", 1.5), ValueError, "clip_low"),
])
def test_bad_config_fails_before_compiling(tmp_path, monkeypatch, arg, override, error, message):
    config = tiny_config(arg)
    with config.unlocked():
        group, _, field = override[0].rpartition(".")
        (config[group] if group else config)[field] = override[1]
    compiled = []
    monkeypatch.setattr(jax, "jit", lambda *a, **k: compiled.append(1))
    with pytest.raises(error, match=message):
        train.train(config, str(tmp_path))
    assert not compiled and not os.listdir(tmp_path)


@pytest.mark.slow
def test_resume_restores_smoother_and_reference(tmp_path):
    """syn_grpo with a KL reference: 3 steps straight == 2 steps, then a restart that resumes to 3 (the smoother's
    state and the frozen reference model come back from the checkpoint, not from a fresh start)."""

    def cfg(steps):
        c = tiny_config(f"method=syn_grpo,steps={steps}")
        c.loss.kl_coef = 0.05
        c.eval.splits = {}
        return c

    train.train(cfg(3), str(tmp_path / "straight"))
    train.train(cfg(2), str(tmp_path / "resumed"))
    train.train(cfg(3), str(tmp_path / "resumed"))

    states = []
    for run in ("straight", "resumed"):
        ckpt = Checkpointer(str(tmp_path / run / "checkpoints"))
        model = qwen2_5_vl.from_pretrained(str(tmp_path / run / "tiny_model"))
        like = nnx.to_pure_dict(nnx.state(model))
        opt_like = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), jax.eval_shape(
            lambda p: make_optimizer(learning_rate=1.0, total_steps=3).init(p), like))
        states.append(ckpt.restore(3, params_like=like, opt_state_like=opt_like, ref_params_like=like))
    (pa, oa, ra, ha), (pb, ob, rb, hb) = states
    for x, y in zip(jax.tree.leaves((pa, oa, ra)), jax.tree.leaves((pb, ob, rb))):
        np.testing.assert_array_equal(x, y)
    assert ha["smoother"] == hb["smoother"] and ha["smoother"]["steps"] == 3
    assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(ra)))  # it trained


@pytest.mark.parametrize("module", ["syngrpo_jax.train", "syngrpo_jax.evaluate", "syngrpo_jax.export"])
def test_docstring_examples_name_configs_that_load(module):
    """The --config=<file>[:arg] of every example in an entry point's help loads (a stale argument would not)."""
    import re

    doc = importlib.import_module(module).__doc__
    configs = re.findall(r"--config=(configs/\S+)", doc)
    assert configs or module == "syngrpo_jax.export"
    for spec in configs:
        file, _, arg = spec.partition(":")
        loader = importlib.util.spec_from_file_location("example", os.path.join(REPO, file))
        config_module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(config_module)
        assert config_module.get_config(arg or None).method
