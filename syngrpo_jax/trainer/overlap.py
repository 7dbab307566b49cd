"""One-step-ahead rollouts (rollout.overlap): step t+1's batch is sampled while step t's update runs.

    ahead = RolloutAhead()
    ahead.start(step + 1, samples, fn)   # fn(samples) -> RolloutResult, on a thread, with the engine's current
                                         # weights (version t: one update behind the step that will use them)
    update = learner.update(...)         # meanwhile, on this thread (XLA releases the GIL)
    ahead.wait()                         # before anything else talks to the engine (push_weights, evaluation)
    result = ahead.take(step + 1)        # at the next step

The engine is used by one thread at a time: `start` hands it to the thread, `wait` takes it back, so a client
that is not thread-safe (a ZeroMQ socket) is safe. The batch is drawn on the calling thread by the pool's usual
seeded sampler, in the same order as without overlap (one draw per step), before step t+1 receives synthesis
results: with overlap those results reach the batches one step later.

Resume: a checkpoint at step t records the sample ids of the batch drawn ahead for t+1 (`pending_ids`); the
resumed run rolls out those samples (drawn again from the pool by id, so the batch and the pool's sampler state
are exactly the uninterrupted run's) with the checkpoint's weights, i.e. that one step is sampled on-policy
(staleness 0) where the uninterrupted run was one update behind: responses from then on differ in the sampling
noise's weights, not in which data is seen. Without overlap resume is exact.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Sequence

from syngrpo_jax.data.sample import Sample


class RolloutAhead:
    def __init__(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollout-ahead")
        self._pending: tuple[int, list[str], Future] | None = None

    def start(self, step: int, samples: Sequence[Sample], fn: Callable[[Sequence[Sample]], object]) -> None:
        """Roll out `samples` for `step` on the thread (the previous one must have been taken)."""
        if self._pending is not None:
            raise RuntimeError(f"a rollout for step {self._pending[0]} is still pending")
        self._pending = (step, [s.sample_id for s in samples], self._executor.submit(fn, samples))

    def wait(self) -> None:
        """Until the pending rollout is done (its error, if any, is raised by `take`)."""
        if self._pending is not None:
            self._pending[2].exception()

    def take(self, step: int):
        """The RolloutResult started for `step`, or None when none was (the first step, or after a resume)."""
        if self._pending is None:
            return None
        pending_step, _, future = self._pending
        if pending_step != step:
            raise RuntimeError(f"the rollout drawn ahead is for step {pending_step}, not {step}")
        self._pending = None
        return future.result()

    def pending_ids(self) -> dict | None:
        """{"step", "sample_ids"} of the batch drawn ahead (checkpointed with the host state), or None."""
        if self._pending is None:
            return None
        return {"step": self._pending[0], "sample_ids": list(self._pending[1])}

    def close(self) -> None:
        self.wait()
        self._pending = None
        self._executor.shutdown(wait=True)
