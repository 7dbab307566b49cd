"""The trainer under data-server faults (issue 11, items 5 and 7), each reproducing the attack end to end:
a server answering `ok` with images the pool cannot take, a local server SIGKILLed mid-run, a remote one that goes
silent (on_server_lost stop / continue); and `train.main` reporting a CheckpointError without a traceback."""
import importlib.util
import itertools
import os
import signal
import subprocess
import sys
import time

import pytest

from syngrpo_jax import train
from syngrpo_jax.checkpoints import Checkpointer
from syngrpo_jax.metrics import read_metrics
from syngrpo_jax.synthesis.session import SynthesisServerLost, SynthesisSession

import synth_helpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_CPU = os.path.join(REPO, "configs", "tiny_cpu.py")
ARG = "scale=test,sft_steps=0,method=grpo_offline_generation"  # fixed descriptions: every sample gets a job


def tiny_config(arg=""):
    spec = importlib.util.spec_from_file_location("tiny_cpu", TINY_CPU)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(f"{ARG},{arg}".rstrip(","))
    config.eval.splits = {}
    return config


def train_rows(workdir):
    return [r for r in read_metrics(str(workdir)) if "reward/total" in r]


def run_main(workdir, arg, *overrides):
    cmd = [sys.executable, "-m", "syngrpo_jax.train", f"--config={TINY_CPU}:{ARG},{arg}", f"--workdir={workdir}",
           "--config.eval.splits.rec_val.num=1", *overrides]
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_replies_the_pool_cannot_take_are_dropped_and_reported(tmp_path):
    """A fake data server answers every job `ok`, alternately with a wrong-size PNG and with bytes that are not a
    PNG: the trainer finishes (exit 0), counts them (synthesis/dropped), warns once per job, and its printed
    summary reports them."""
    count = itertools.count()

    def reply(header, image):
        w, h = synth_helpers.image_size(image)
        if next(count) % 2:
            return True, b"\x89PNX not a png"
        return True, synth_helpers.png_bytes(synth_helpers.make_image(h // 2, w, seed=header["seed"] % 97))

    with synth_helpers.FakeDataServer(reply) as fake:
        done = run_main(tmp_path, "steps=2,sync", f"--config.synthesis.address={fake.endpoint}")
        jobs = list(fake.jobs)
    assert done.returncode == 0, done.stderr[-3000:]
    last = train_rows(tmp_path)[-1]
    assert len(jobs) == 8 and last["synthesis/submitted"] == last["synthesis/completed"] == 8
    assert last["synthesis/dropped"] == 8 and last["synthesis/applied"] == 0
    assert last["pool/synthesized_samples"] == 0
    for job_id in jobs:
        assert done.stderr.count(job_id) == 1, job_id  # one warning naming each job
    assert "| results dropped (the pool refused them) | 8 |" in done.stdout
    assert "| steps without synthesis (data server unavailable) | 0 of 2 |" in done.stdout


@pytest.mark.slow
def test_a_sigkilled_data_server_is_restarted_and_later_steps_get_images(tmp_path, monkeypatch):
    """Sync mode, 5 steps; during step 2's wait (jobs in flight) the local server is SIGKILLed. Its jobs fail at
    once (no step waits out the timeout), step 3 restarts it, and images synthesized after the kill reach the
    pool."""
    config = tiny_config("steps=5,sync")
    config.synthesis.server_overrides = "procedural_delay_s=0.5"  # 4 jobs per step: ~2 s of work to kill into
    config.synthesis.sync_timeout_s = 20.0
    killed = {}
    wait = SynthesisSession.wait

    def wait_then_kill(self, job_ids, step):
        if step == 2 and not killed:
            killed.update(pid=self.server.process.pid, jobs=len(job_ids))
            time.sleep(0.3)  # the server is working on them
            os.kill(killed["pid"], signal.SIGKILL)
        return wait(self, job_ids, step)

    monkeypatch.setattr(SynthesisSession, "wait", wait_then_kill)
    summary = train.train(config, str(tmp_path))
    rows = train_rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5] and killed["jobs"] == 4
    assert all(r["time/waiting"] <= config.synthesis.sync_timeout_s + 1 for r in rows)
    assert rows[2]["time/waiting"] < 5.0  # the killed step's jobs failed at once
    assert rows[2]["synthesis/connection_lost"] >= 1 and rows[2]["synthesis/restarts"] == 0
    assert rows[3]["synthesis/restarts"] == 1 and rows[3]["synthesis/unavailable"] == 0
    last = rows[-1]
    assert last["synthesis/submitted"] == last["synthesis/completed"] + last["synthesis/failed"]
    assert summary["synthesis"]["steps_without"] == 0

    state = Checkpointer(str(tmp_path / "checkpoints")).restore_state(5)
    after_kill = [v for versions in state["pool"]["versions"].values() for v in versions
                  if v["submitted_step"] >= 3]
    assert after_kill and all(v["meta"]["boxes_verified"] and v["applied_step"] >= 3 for v in after_kill)


@pytest.mark.slow
@pytest.mark.parametrize("policy,checkpoint_every", [("stop", 10), ("stop", 1), ("continue", 10)])
def test_a_remote_server_that_goes_silent(tmp_path, monkeypatch, policy, checkpoint_every):
    """synthesis.address: a fake server that answers every job with a good image, closed before step 2 and
    silent past server_lost_after_s. stop: an error naming the server, with a checkpoint of the steps done (also
    when that step's own checkpoint was just saved); continue: the run finishes, and its summary counts the steps
    without synthesis."""
    def reply(header, image):
        w, h = synth_helpers.image_size(image)
        return True, synth_helpers.png_bytes(synth_helpers.make_image(h, w, seed=header["seed"] % 97))

    fake = synth_helpers.FakeDataServer(reply)
    config = tiny_config("steps=4,sync")
    config.synthesis.address = fake.endpoint
    config.synthesis.server_lost_after_s = 1.0
    config.synthesis.on_server_lost = policy
    config.train.checkpoint_every = checkpoint_every
    poll = SynthesisSession.poll

    def close_then_poll(self, step):
        if step == 2 and not fake.sock.closed:
            fake.close()
            time.sleep(1.5)
        return poll(self, step)

    monkeypatch.setattr(SynthesisSession, "poll", close_then_poll)
    try:
        if policy == "stop":
            with pytest.raises(SynthesisServerLost, match=rf"data server at {fake.endpoint} \(synthesis.address\) "
                                                          r"has not answered.*stops before step 2 with a checkpoint"):
                train.train(config, str(tmp_path))
            steps = Checkpointer(str(tmp_path / "checkpoints")).all_steps()
            assert steps == ([2] if checkpoint_every == 10 else [1, 2])
            assert [r["step"] for r in train_rows(tmp_path)] == [1, 2]
            return
        summary = train.train(config, str(tmp_path))
    finally:
        if not fake.sock.closed:
            fake.close()
    rows = train_rows(tmp_path)
    assert [r["synthesis/unavailable"] for r in rows] == [0, 0, 1, 1]
    assert rows[1]["pool/synthesized_samples"] > 0
    assert summary["synthesis"] == {**summary["synthesis"], "steps": 4, "steps_without": 2}
    assert "| steps without synthesis (data server unavailable) | 2 of 4 |" in train.summary_table(summary)


@pytest.mark.slow
def test_main_reports_a_checkpoint_error_without_a_traceback(tmp_path):
    os.makedirs(tmp_path / "checkpoints" / "1")  # the only checkpoint: an empty step directory
    done = run_main(tmp_path, "steps=2")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert f"error: no checkpoint in {tmp_path / 'checkpoints'} can be restored" in done.stderr
