"""Multi-process training: two CPU processes on localhost (gloo collectives, 2 devices each, one global (2, 2)
mesh) train like one process with 4 devices, keep their host state identical, write one set of outputs, survive
the loss of a process by stopping and resuming, and leave checkpoints that load on any other layout. The main run
is started by launch/local_multiprocess.sh; the tests that kill a process or give each its own directory start
the processes themselves (tests/multiprocess.py)."""
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from multiprocess import REPO, TINY_CPU, Job, cpu_env, free_port, train_argv
from syngrpo_jax import export, train
from syngrpo_jax.checkpoint_sources import OrbaxParams, resolve_checkpoint
from syngrpo_jax.checkpoints import Checkpointer
from syngrpo_jax.grpo import train_step as ts
from syngrpo_jax.grpo.optimizer import make_optimizer
from syngrpo_jax.metrics import read_metrics
from syngrpo_jax.models import qwen2_5_vl
from syngrpo_jax.parallel.mesh import make_mesh

pytestmark = pytest.mark.slow
# The tests of the two runs share one xdist worker, so the runs (the costly part) happen once under -n 2.
one_worker = pytest.mark.xdist_group("multiprocess_runs")

# Three RL steps with asynchronous synthesis from fixed descriptions (images change from step 2 on), from a
# warm-started policy whose responses are partly well-formed, so rewards, advantages and the loss are not zero.
RL_ARG = "scale=test,sft_steps=0,steps=3,method=grpo_offline_generation"
HASH = re.compile(r"step (\d+): pool/state_hash (\w+) \(process (\d)\)")


def rl_overrides(model_dir):
    return [f"--config.model.path={model_dir}", "--config.rollout.max_tokens=56", "--config.mesh.data=2",
            "--config.mesh.fsdp=2"]


def tiny_config(arg):
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_cpu", TINY_CPU)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


@pytest.fixture(scope="module")
def warm_model(tmp_path_factory):
    """An HF directory of the tiny test model after 80 supervised steps (in this process), shared by both runs so
    that they start from the same weights bit for bit."""
    root = tmp_path_factory.mktemp("warm")
    config = tiny_config("scale=test,method=sft,steps=80")
    config.optim.learning_rate, config.sft.warmup_steps = 1e-2, 0
    config.eval.splits = {}
    train.train(config, str(root / "run"))
    return export.export(str(root / "run"), str(root / "hf"))


@pytest.fixture(scope="module")
def runs(warm_model, tmp_path_factory):
    """The same 3 steps twice, at the same time: 2 processes x 2 devices, and 1 process with 4 devices."""
    root = tmp_path_factory.mktemp("runs")
    multi, single = root / "multi", root / "single"
    launcher = subprocess.Popen(  # process i logs to multi/logs/process_<i>.log
        ["bash", str(REPO / "launch" / "local_multiprocess.sh"), "--num_processes=2", "--devices_per_process=2",
         f"--port={free_port()}", f"{TINY_CPU}:{RL_ARG}", str(multi), *rl_overrides(warm_model)],
        cwd=REPO, env=cpu_env(1, PYTHON=sys.executable), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(root / "single.log", "w") as log:
        one = subprocess.Popen(train_argv(single, RL_ARG, *rl_overrides(warm_model)), cwd=REPO, env=cpu_env(4),
                               stdout=log, stderr=subprocess.STDOUT)
        out, _ = launcher.communicate(timeout=1500)
        assert one.wait(600) == 0, (root / "single.log").read_text()[-3000:]
    logs = [(multi / "logs" / f"process_{i}.log").read_text(errors="replace") for i in (0, 1)]
    assert launcher.returncode == 0, out + "".join(f"--- process {i} ---\n{t[-3000:]}" for i, t in enumerate(logs))
    return {"multi": multi, "single": single, "logs": logs}


@one_worker
def test_two_processes_train_like_one(runs):
    multi, single, logs = runs["multi"], runs["single"], runs["logs"]
    # One writer: process 0's files only, the same files as the single-process run writes.
    assert [p.relative_to(multi) for p in multi.rglob("metrics.jsonl")] == [Path("metrics.jsonl")]
    assert [p.relative_to(single) for p in single.rglob("metrics.jsonl")] == [Path("metrics.jsonl")]
    assert len(read_metrics(multi)) == len(read_metrics(single))  # one line per step and evaluation, not two
    rows = [r for r in read_metrics(multi) if "reward/total" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[-1]["synthesis/applied"] > 0  # asynchronous synthesis changed the pool during the run
    assert not list(multi.glob(".shared-fs-check.*"))

    # The host state agrees across processes after every step.
    hashes = {}
    for i in (0, 1):
        for step, digest, process in HASH.findall(logs[i]):
            assert int(process) == i
            hashes.setdefault(int(step), set()).add(digest)
    assert sorted(hashes) == [1, 2, 3], logs
    assert all(len(d) == 1 for d in hashes.values()), hashes
    assert len({d for s in hashes.values() for d in s}) == 3  # and it changes from step to step

    # Step 1 equals the single-process run on 4 devices: the same responses, so the same rewards; the loss and
    # the update's statistics up to float reduction order.
    ones = {r["step"]: r for r in read_metrics(single) if "reward/total" in r}
    a, b = rows[0], ones[1]
    assert b["reward/format"] > 0 and b["loss"] != 0
    for key in ("reward/accuracy", "reward/format", "reward/total", "response_length_mean",
                "num_response_tokens"):
        assert a[key] == pytest.approx(b[key], abs=1e-6), key
    for key in ("loss", "pg_loss", "entropy", "grad_norm"):
        assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-6), key


def _restore(run, step, mesh):
    """(params, opt_state, host state) of a run's checkpoint, laid out on `mesh` (None: one device), through the
    loader evaluation and export use (OrbaxParams) plus the optimizer state like the trainer's."""
    source = resolve_checkpoint(str(run))
    params_like = OrbaxParams(source, mesh=mesh).like
    tx = make_optimizer(learning_rate=1.0, total_steps=3)
    abstract = jax.eval_shape(tx.init, params_like)
    if mesh is None:
        opt_shardings = jax.tree.map(lambda _: jax.sharding.SingleDeviceSharding(jax.devices()[0]), abstract)
    else:
        opt_shardings = ts.optimizer_shardings(tx, params_like, jax.tree.map(lambda x: x.sharding, params_like), mesh)
    opt_like = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, opt_shardings)
    ckpt = Checkpointer(source.checkpoints_dir, max_to_keep=None, async_save=False)
    try:
        params, opt_state, _, host = ckpt.restore(step, params_like=params_like, opt_state_like=opt_like)
    finally:
        ckpt.close()
    return params, opt_state, host


@one_worker
def test_checkpoint_restores_on_one_device_and_another_mesh(runs):
    """Saved by 2 processes on a (2, 2) mesh; restored here on 1 device and on a (1, 4) mesh: the same values."""
    run = runs["multi"]
    p1, o1, h1 = _restore(run, 3, None)
    p4, o4, h4 = _restore(run, 3, make_mesh(data=1, fsdp=4, devices=jax.devices()[:4]))
    assert all(len(x.devices()) == 1 for x in jax.tree.leaves((p1, o1)))
    assert any(len(x.devices()) == 4 and not x.sharding.is_fully_replicated for x in jax.tree.leaves(p4))
    for x, y in zip(jax.tree.leaves((p1, o1)), jax.tree.leaves((p4, o4)), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert h1 == h4 and h1["step"] == 3 and any(h1["pool"]["versions"].values())


@one_worker
def test_evaluate_and_export_run_on_one_cpu(runs, tmp_path):
    """The 2-process checkpoint, evaluated and exported by single-device processes; the export holds the saved
    parameters exactly."""
    step_dir = runs["multi"] / "checkpoints" / "3"
    evaluate = subprocess.run(
        [sys.executable, "-m", "syngrpo_jax.evaluate", f"--config={TINY_CPU}:scale=test",
         f"--checkpoint={step_dir}", f"--workdir={tmp_path / 'eval'}"],
        cwd=REPO, env=cpu_env(1), capture_output=True, text=True, timeout=900)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert '"step": 3' in evaluate.stdout and (tmp_path / "eval" / "3" / "metrics.json").is_file()
    out = tmp_path / "hf"
    exported = subprocess.run([sys.executable, "-m", "syngrpo_jax.export", f"--checkpoint={step_dir}",
                               f"--out={out}"], cwd=REPO, env=cpu_env(1), capture_output=True, text=True, timeout=900)
    assert exported.returncode == 0, exported.stderr[-3000:]
    saved, _, _ = _restore(runs["multi"], 3, None)
    model = qwen2_5_vl.from_pretrained(str(out))
    for x, y in zip(jax.tree.leaves(saved), jax.tree.leaves(nnx.to_pure_dict(nnx.state(model))), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_lost_process_stops_the_run_and_a_relaunch_resumes(tmp_path):
    """SIGKILL process 1 mid-run: process 0 exits within the heartbeat timeout (plus slack for a loaded machine),
    naming process 1; the same command again resumes from the last checkpoint and finishes."""
    heartbeat = 15
    arg, run = "scale=test,sft_steps=0,steps=6,method=grpo_offline_generation", tmp_path / "run"
    overrides = (f"--config.multiprocess.heartbeat_timeout_s={heartbeat}",)
    job = Job(lambda i: train_argv(run, arg, *overrides), log_dir=tmp_path / "logs1")
    deadline = time.monotonic() + 900
    while not (run / "checkpoints" / "2").is_dir():
        assert all(p.poll() is None for p in job.procs), job.tails()
        assert time.monotonic() < deadline, job.tails()
        time.sleep(0.2)
    job.procs[1].kill()
    killed = time.monotonic()
    try:
        code = job.procs[0].wait(heartbeat + 90)
    except subprocess.TimeoutExpired:
        job.kill()
        pytest.fail(f"process 0 still running {heartbeat + 90} s after process 1 died\n{job.tails()}")
    took = time.monotonic() - killed
    assert code != 0
    assert re.search(r"unhealthy \(stopped sending heartbeats\):\s*1\b", job.log(0)), job.tails()
    # Said by the trainer when a collective failed first, else by its watcher, which writes just after the abort.
    advice = "relaunch the same command on every process"
    for _ in range(100):
        if advice in job.log(0):
            break
        time.sleep(0.1)
    assert advice in job.log(0), job.tails()
    latest = Checkpointer(str(run / "checkpoints")).latest_step()
    assert 2 <= latest < 6
    print(f"process 0 exited {took:.1f} s after process 1 was killed (heartbeat timeout {heartbeat} s)")

    again = Job(lambda i: train_argv(run, arg, *overrides), log_dir=tmp_path / "logs2")
    assert again.wait(900) == [0, 0], again.tails()
    for i in (0, 1):
        assert f"resumed from step {latest}" in again.log(i)
    assert [r["step"] for r in read_metrics(run) if "reward/total" in r] == [1, 2, 3, 4, 5, 6]


def test_a_run_directory_that_is_not_shared_fails_at_start(tmp_path):
    """Each process given its own directory stands for per-host local disks: the run stops before writing
    anything, and each process's error names its path and the process that did not see process 0's file."""
    dirs = [tmp_path / "host0" / "run", tmp_path / "host1" / "run"]
    job = Job(lambda i: train_argv(dirs[i], "scale=test,sft_steps=0,steps=1",
                                   "--config.multiprocess.shared_fs_timeout_s=2"), log_dir=tmp_path / "logs")
    codes = job.wait(600)
    assert codes[0] != 0 and codes[1] != 0, job.tails()
    for i in (0, 1):
        assert re.search(rf"run directory '{re.escape(str(dirs[i]))}' is not shared by all processes: "
                         r"process\(es\) \[1\] did not see", job.log(i)), job.tails()
    assert sorted(p.name for p in dirs[0].iterdir()) == [] and sorted(p.name for p in dirs[1].iterdir()) == []
