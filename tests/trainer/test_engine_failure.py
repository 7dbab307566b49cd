"""A rollout engine that fails for good (its worker died past rollout.vllm.max_restarts) stops the run with its
error, after a checkpoint of everything trained: the step before the failure, or the step whose update was in
when only the weight push failed. An engine that fails on a given call stands in for the dead worker."""
import pytest

from syngrpo_jax import train
from syngrpo_jax.checkpoints import Checkpointer
from syngrpo_jax.rollout import jax_sampler, registry
from syngrpo_jax.rollout.base import EngineError
from test_train import tiny_config


class FailingSampler(jax_sampler.JaxSampler):
    """The JAX sampler, whose `fail_on`-th call of `method` raises EngineError naming a fake worker."""

    method, fail_on = "generate", 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def _maybe_fail(self, name):
        if name == self.method:
            self.calls += 1
            if self.calls == self.fail_on:
                raise EngineError("rollout worker at tcp://127.0.0.1:1 (pid 4242) died (exit code -9) during " + name)

    def generate(self, requests, params):
        self._maybe_fail("generate")
        return super().generate(requests, params)

    def update_weights(self, params, version):
        self._maybe_fail("update_weights")
        super().update_weights(params, version)


def failing_engine(context):
    return FailingSampler(context.model, context.tokenizer, prompt_multiple=context.config.rollout.prompt_multiple)


@pytest.mark.slow
@pytest.mark.parametrize("method,fail_on,saved", [
    ("generate", 2, 1),        # step 2's rollout: checkpoint 1, the pool as step 2 found it
    ("update_weights", 3, 2),  # the push after step 2's update (call 1 is the initial push): checkpoint 2
])
def test_an_engine_failure_stops_the_run_with_a_checkpoint(tmp_path, monkeypatch, method, fail_on, saved):
    monkeypatch.setattr(FailingSampler, "method", method)
    monkeypatch.setattr(FailingSampler, "fail_on", fail_on)
    monkeypatch.setitem(registry._ENGINES, "failing_for_tests", failing_engine)  # this test's only
    config = tiny_config("method=grpo,steps=3")
    config.rollout.engine = "failing_for_tests"
    config.train.checkpoint_every = 10  # only the end, or the failure, writes one
    del config.eval.splits["rec_val"]  # no evaluation: the engine's calls are the steps'
    with pytest.raises(EngineError, match=r"pid 4242\) died"):
        train.train(config, str(tmp_path))
    ckpt = Checkpointer(str(tmp_path / "checkpoints"))
    assert ckpt.all_steps() == [saved]
    state = ckpt.restore_state()
    assert state["step"] == saved and state["pool"]["step"] == saved  # batches drawn = steps done, no more
