"""Host-side state of a run that every process must agree on, in one object: the multi-process seam.

    host = HostState.build(config, samples, run)    # data pool + diversity smoother (+ fixed descriptions)
    host.start_synthesis()                          # the data-server session (RL runs with synthesis only)
    host.receive(step)                              # apply finished synthesis results to the pool
    state = host.state_dict()                       # {"pool": ..., "smoother": ...}: plain JSON, checkpointed
    host.load_state_dict(state)

What lives here changes the data every process trains on: the pool's images, pass rates and sampler position,
the smoother's V_g, the synthesis session's in-flight jobs, the fixed descriptions file. Everything else in a step
is a pure function of (config, seed, step) and the arrays. Today one process runs the trainer. A multi-process run
gives the session to process 0 alone (it talks to the data server), and after `receive` broadcasts what it applied
(sample id, version, PNG bytes) so every process's pool applies the same results; `state_dict` is then identical on
every process. That change touches this object only.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from syngrpo_jax.data.pool import DataPool
from syngrpo_jax.data.sample import Sample
from syngrpo_jax.rewards.diversity import DiversitySmoother
from syngrpo_jax.run_dir import RunDir


def load_descriptions(path: str) -> list | dict:
    """A fixed descriptions file: a JSON list (for every sample) or {sample_id: [descriptions]}."""
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, (list, dict)) or not data:
        raise ValueError(f"synthesis.descriptions_file={path!r}: expected a non-empty JSON list or object")
    return data


class HostState:
    """The data pool, the diversity smoother, the synthesis session and the fixed descriptions of one run."""

    def __init__(self, pool: DataPool, smoother: DiversitySmoother, synthesis_cfg=None,
                 fixed_descriptions: list | dict | None = None):
        self.pool = pool
        self.smoother = smoother
        self.synthesis_cfg = synthesis_cfg
        self.fixed_descriptions = fixed_descriptions
        self.session = None  # a synthesis.session.SynthesisSession once start_synthesis() ran

    @classmethod
    def build(cls, config, samples: Sequence[Sample], run: RunDir) -> "HostState":
        """From the run config: the pool over `samples` (images under run.synth), the smoother with
        diversity.gamma, and what synthesis needs (started later by start_synthesis)."""
        pool = DataPool(samples, run.root, seed=config.seed, sampling=config.data.sampling,
                        keep_versions=config.data.keep_versions)
        synthesis = config.synthesis if config.synthesis.enabled else None
        fixed = None
        if synthesis is not None and synthesis.descriptions == "file":
            fixed = load_descriptions(synthesis.descriptions_file)
        return cls(pool, DiversitySmoother(config.diversity.gamma), synthesis, fixed)

    def start_synthesis(self) -> None:
        """Start the data-server session (a local server subprocess, or a client of synthesis.address)."""
        if self.synthesis_cfg is not None and self.session is None:
            from syngrpo_jax.synthesis.session import SynthesisSession  # ZeroMQ only when synthesis runs

            self.session = SynthesisSession(self.synthesis_cfg, self.pool)

    def receive(self, step: int) -> int:
        """Apply the synthesis results that finished since the last call (never waits); how many replaced an
        image. The place where a multi-process run broadcasts what process 0 applied."""
        return self.session.poll(step) if self.session is not None else 0

    def state_dict(self) -> dict[str, Any]:
        return {"pool": self.pool.state_dict(), "smoother": self.smoother.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.smoother.load_state_dict(state["smoother"])
        self.pool.load_state_dict(state["pool"])

    def metrics(self) -> dict[str, float]:
        out = {"pool/synthesized_samples": self.pool.stats()["num_synthesized"]}
        return out | (self.session.metrics() if self.session is not None else {})

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
