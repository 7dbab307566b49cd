"""Training with the vLLM rollout worker: `python -m syngrpo_jax.train --config=configs/tiny_cpu.py:steps=3
--config.rollout.engine=vllm` (fewer warm-start steps and samples), with the worker SIGKILLed midway.

One module, one run: once step 1's metrics are written, the run's worker is killed with a real SIGKILL, wherever
step 2 then is (rollout, update or weight push); the engine starts a second worker (bounded by
rollout.vllm.max_restarts), pushes it the current weights and the run goes on. The demo model is used (head_dim
32: vLLM's CPU attention needs >= 32), not the test scale.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syngrpo_jax.checkpoints import Checkpointer
from syngrpo_jax.metrics import read_metrics
from syngrpo_jax.rollout.vllm_client import DEFAULT_PYTHON
from syngrpo_jax.service_process import pid_alive
from test_train import REPO, TINY_CPU

WORKER_MODULE = "syngrpo_jax.rollout.vllm_worker"


def worker_pids(parent: int) -> list[int]:
    """Child processes of `parent` running the vLLM worker (from /proc)."""
    out = []
    for task in Path(f"/proc/{parent}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            try:
                if WORKER_MODULE in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                    out.append(child)
            except OSError:
                continue
    return out


def train_rows(workdir):
    try:
        return [r for r in read_metrics(str(workdir)) if "reward/total" in r]
    except FileNotFoundError:
        return []


@pytest.mark.slow
def test_three_steps_with_the_vllm_worker_killed_midway(tmp_path):
    if not DEFAULT_PYTHON.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{DEFAULT_PYTHON} is missing: `make setup` builds the vLLM environment")
        pytest.skip(f"no vLLM environment at {DEFAULT_PYTHON} (run `make setup`)")
    workdir, log_path = tmp_path / "run", tmp_path / "train.log"
    cmd = [sys.executable, "-m", "syngrpo_jax.train", f"--config={TINY_CPU}:steps=3,sft_steps=40,num_samples=16",
           "--config.rollout.engine=vllm", "--config.rollout.vllm.max_restarts=1",
           "--config.eval.splits.rec_val.num=16", "--config.eval.splits.rec_repainted.num=16",
           f"--workdir={workdir}"]  # the demo's 200 per split: minutes on vLLM's CPU
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", XLA_FLAGS="")  # one device, as the command runs
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 1200
        while not train_rows(workdir) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        killed = worker_pids(proc.pid)
        assert len(killed) == 1, (killed, log_path.read_text()[-3000:])
        os.kill(killed[0], signal.SIGKILL)
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log_path.read_text()
    assert rc == 0, text[-3000:]
    assert not pid_alive(killed[0]) and f"pid {killed[0]}" in text and "restart 1 of 1" in text  # named, restarted

    rows = train_rows(workdir)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        # float32 on both sides: vLLM's CPU kernels and XLA's agree far below any clip range
        assert 0 <= r["rollout/logp_diff_mean"] <= r["rollout/logp_diff_max"] < 1e-3, r
        assert 0 <= r["rollout/kl_k3"] < 1e-6
        # the weights pushed after step s's update (version s) sample step s + 1, also through the new worker
        assert r["rollout/weight_version"] == r["step"] - 1 and r["rollout/staleness"] == 0
        assert "synthesis/submitted" in r  # Syn-GRPO with its data server
    assert Checkpointer(str(workdir / "checkpoints")).latest_step() == 3
    assert not worker_pids(proc.pid)
