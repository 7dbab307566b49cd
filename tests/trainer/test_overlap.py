"""One-step-ahead rollouts: the pending rollout's hand-over, and a run with rollout.overlap (JAX sampler) that
samples each step with the previous step's weights and resumes with the batch it had drawn ahead."""
import os
import signal
import threading

import pytest

from syngrpo_jax import train
from syngrpo_jax.checkpoints import Checkpointer
from syngrpo_jax.metrics import read_metrics
from syngrpo_jax.trainer.overlap import RolloutAhead
from syngrpo_jax.trainer.trainer import Trainer
from test_train import tiny_config


class Item:
    def __init__(self, sample_id):
        self.sample_id = sample_id


def test_the_pending_rollout_runs_on_another_thread_and_is_taken_once():
    ahead = RolloutAhead()
    assert ahead.take(0) is None and ahead.pending_ids() is None
    gate, threads = threading.Event(), []

    def fn(samples):
        threads.append(threading.current_thread())
        gate.wait(5)
        return [s.sample_id for s in samples]

    ahead.start(4, [Item("a"), Item("b")], fn)
    assert ahead.pending_ids() == {"step": 4, "sample_ids": ["a", "b"]}
    with pytest.raises(RuntimeError, match="still pending"):
        ahead.start(5, [], fn)
    gate.set()
    ahead.wait()
    assert threads[0] is not threading.current_thread()
    with pytest.raises(RuntimeError, match="for step 4, not 3"):
        ahead.take(3)
    assert ahead.take(4) == ["a", "b"] and ahead.take(5) is None

    def fail(samples):
        raise ValueError("worker gone")

    ahead.start(6, [], fail)
    ahead.wait()  # never raises: the step that takes the result does
    with pytest.raises(ValueError, match="worker gone"):
        ahead.take(6)
    ahead.close()


def overlap_config():
    config = tiny_config("method=grpo,steps=3")
    config.rollout.overlap = True
    return config


@pytest.mark.slow
def test_overlap_samples_one_update_behind_and_resumes_the_batch_drawn_ahead(tmp_path):
    train.train(overlap_config(), str(tmp_path / "straight"))
    rows = [r for r in read_metrics(str(tmp_path / "straight")) if "reward/total" in r]
    # step 1 (index 0) is sampled before any update; each later one while the previous step updated
    assert [r["rollout/weight_version"] for r in rows] == [0, 0, 1]
    assert [r["rollout/staleness"] for r in rows] == [0, 1, 1]

    # The same run stopped (SIGTERM: finish the step, checkpoint, stop) after step 2, while step 3's batch was
    # drawn and being sampled; the resumed run samples that batch, not a new one.
    stopped = tmp_path / "stopped"
    trainer = Trainer(overlap_config(), str(stopped))
    step = trainer.step

    def step_then_stop(s):
        out = step(s)
        if s == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    trainer.step = step_then_stop
    assert trainer.run()["last"]["rollout/staleness"] == 1
    ckpt = Checkpointer(str(stopped / "checkpoints"))
    assert ckpt.latest_step() == 2 and ckpt.restore_state()["ahead"]["step"] == 2
    train.train(overlap_config(), str(stopped))
    rows = [r for r in read_metrics(str(stopped)) if "reward/total" in r]
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[-1]["rollout/staleness"] == 0  # on-policy after resume
    want = Checkpointer(str(tmp_path / "straight" / "checkpoints")).restore_state()["pool"]
    got = Checkpointer(str(stopped / "checkpoints")).restore_state()["pool"]
    for key in ("step", "samples_drawn", "sampler"):
        assert got[key] == want[key], key
