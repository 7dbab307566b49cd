"""Training with the vLLM rollout worker: `python -m syngrpo_jax.train --config=configs/tiny_cpu.py:steps=3
--config.rollout.engine=vllm` (run in-process here, with fewer warm-start steps), with the worker SIGKILLed midway.

One module, one run: the run's first worker is killed with a real SIGKILL before step 2's rollout; the engine
starts a second one (bounded by rollout.vllm.max_restarts), pushes it the current weights and the run goes on.
The demo model (head_dim 32: vLLM's CPU attention needs >= 32) is used, not the test scale.
"""
import importlib.util
import logging
import os
import signal

import pytest

from syngrpo_jax.checkpoints import Checkpointer
from syngrpo_jax.metrics import read_metrics
from syngrpo_jax.rollout.vllm_client import DEFAULT_PYTHON
from syngrpo_jax.service_process import pid_alive
from syngrpo_jax.trainer.trainer import Trainer
from test_train import TINY_CPU

MISMATCH = ("rollout/logp_diff_mean", "rollout/logp_diff_max", "rollout/kl_k3")


def vllm_config():
    spec = importlib.util.spec_from_file_location("tiny_cpu", TINY_CPU)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("steps=3,sft_steps=40,num_samples=16")
    config.rollout.engine = "vllm"
    config.rollout.vllm.update(max_restarts=1, startup_timeout_s=300.0)
    config.eval.splits = {}  # evaluation through vLLM is the engine tests' business; keep this run short
    return config


@pytest.mark.slow
def test_three_steps_with_the_vllm_worker_killed_midway(tmp_path, caplog):
    if not DEFAULT_PYTHON.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{DEFAULT_PYTHON} is missing: `make setup` builds the vLLM environment")
        pytest.skip(f"no vLLM environment at {DEFAULT_PYTHON} (run `make setup`)")
    trainer = Trainer(vllm_config(), str(tmp_path))
    assert trainer.config.synthesis.enabled and trainer.config.method == "syn_grpo"
    killed = []
    step = trainer.step

    def step_with_a_kill(s):
        if s == 1:  # the worker dies between steps: step 2's rollout finds it gone
            killed.append(trainer.engine.client.process.pid)
            os.kill(killed[0], signal.SIGKILL)
        return step(s)

    trainer.step = step_with_a_kill
    engine = trainer.engine
    with caplog.at_level(logging.WARNING, logger="syngrpo_jax.rollout.vllm_engine"):
        summary = trainer.run()
    assert summary["steps"] == 3
    assert engine.restarts == 1 and not pid_alive(killed[0]) and engine.client is None  # closed with the run

    rows = [r for r in read_metrics(str(tmp_path)) if "reward/total" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        # float32 on both sides: vLLM's CPU kernels and XLA's agree far below any clip range
        assert 0 <= r["rollout/logp_diff_mean"] <= r["rollout/logp_diff_max"] < 1e-3, r
        assert 0 <= r["rollout/kl_k3"] < 1e-6
        # the weights pushed after step s's update (version s) sample step s + 1, also through the new worker
        assert r["rollout/weight_version"] == r["step"] - 1 and r["rollout/staleness"] == 0
    assert "synthesis/submitted" in rows[-1]
    assert f"pid {killed[0]}" in caplog.text and "restart 1 of 1" in caplog.text  # the dead worker, named
    assert Checkpointer(str(tmp_path / "checkpoints")).latest_step() == 3
