"""Host-side state of a run that every process must agree on, in one object: the multi-process seam.

    host = HostState.build(config, samples, run)    # data pool + diversity smoother (+ fixed descriptions,
                                                    #   + adaptive difficulty with data.adaptive.enabled)
    host.start_synthesis()                          # the data-server session (process 0 only)
    host.receive(step)                              # apply finished synthesis results to the pool, then sync
    host.sync()                                     # after any phase that may apply results (sync mode's wait)
    host.refresh(step)                              # adaptive difficulty: this step's fresh samples join the pool
    host.observe(samples, accuracy, step)           # a batch's accuracies: pass rates (+ the difficulty controller)
    state = host.state_dict()                       # {"pool", "smoother"[, "adaptive"]}: plain JSON, checkpointed
    host.load_state_dict(state)

What lives here changes the data every process trains on: the pool's images, pass rates, sampler position and
fresh samples, the difficulty controller, the smoother's V_g, the synthesis session's in-flight jobs, the fixed
descriptions file. Everything else in a step is a pure function of (config, seed, step) and the arrays. In a
multi-process run only process 0 has a session (it alone talks to the data server); its pool records every change
it applies, and `sync` broadcasts them so every other process applies the same ones in the same order
(`host_sync`); adaptive difficulty's fresh samples are a pure function of its state and the batch accuracies, which
every process computes alike. `state_dict` is then identical on every process, which `state_hash` shows in each
process's log.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np

from syngrpo_jax.data.adaptive import AdaptiveDifficulty, AdaptiveSettings
from syngrpo_jax.data.engine import EngineConfig
from syngrpo_jax.data.pool import DataPool
from syngrpo_jax.data.sample import Sample
from syngrpo_jax.data.sources import engine_families
from syngrpo_jax.parallel import multihost
from syngrpo_jax.rewards.diversity import DiversitySmoother
from syngrpo_jax.run_dir import RunDir
from syngrpo_jax.trainer import host_sync


def load_descriptions(path: str) -> list | dict:
    """A fixed descriptions file: a JSON list (for every sample) or {sample_id: [descriptions]}."""
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, (list, dict)) or not data:
        raise ValueError(f"synthesis.descriptions_file={path!r}: expected a non-empty JSON list or object")
    return data


class HostState:
    """The data pool, the diversity smoother, the synthesis session, the fixed descriptions and adaptive difficulty
    of one run."""

    def __init__(self, pool: DataPool, smoother: DiversitySmoother, synthesis_cfg=None,
                 fixed_descriptions: list | dict | None = None, adaptive: AdaptiveDifficulty | None = None, *,
                 sync_timeout_s: float = 1800.0):
        self.pool = pool  # a host_sync.RecordingPool on process 0 of a multi-process run
        self.smoother = smoother
        self.synthesis_cfg = synthesis_cfg
        self.fixed_descriptions = fixed_descriptions
        self.adaptive = adaptive
        self.sync_timeout_s = sync_timeout_s  # how long the other processes wait for process 0's changes
        self.session = None  # a synthesis.session.SynthesisSession once start_synthesis() ran

    @classmethod
    def build(cls, config, samples: Sequence[Sample], run: RunDir) -> "HostState":
        """From the run config: the pool over `samples` (images under run.synth), the smoother with
        diversity.gamma, and what synthesis needs (started later by start_synthesis)."""
        recording = multihost.process_count() > 1 and multihost.is_primary()
        pool = (host_sync.RecordingPool if recording else DataPool)(
            samples, run.root, seed=config.seed, sampling=config.data.sampling,
            keep_versions=config.data.keep_versions)
        synthesis = config.synthesis if config.synthesis.enabled else None
        fixed = None
        if synthesis is not None and synthesis.descriptions == "file":
            fixed = load_descriptions(synthesis.descriptions_file)
        adaptive = None
        if config.data.adaptive.enabled:
            e = config.data.engine
            adaptive = AdaptiveDifficulty(
                AdaptiveSettings.from_config(config.data.adaptive),
                EngineConfig(width=e.size, height=e.size, families=engine_families(e.families), photo=e.photo),
                seed=e.seed, out_dir=run.fresh)
        return cls(pool, DiversitySmoother(config.diversity.gamma), synthesis, fixed, adaptive,
                   sync_timeout_s=config.multiprocess.host_sync_timeout_s)

    def start_synthesis(self) -> None:
        """Start the data-server session (a local server subprocess, or a client of synthesis.address); process 0
        only."""
        if self.synthesis_cfg is not None and self.session is None and multihost.is_primary():
            from syngrpo_jax.synthesis.session import SynthesisSession  # ZeroMQ only when synthesis runs

            self.session = SynthesisSession(self.synthesis_cfg, self.pool)

    def receive(self, step: int) -> int:
        """Apply the synthesis results that finished since the last call (never waits), on every process; how many
        replaced an image (process 0's count)."""
        replaced = self.session.poll(step) if self.session is not None else 0
        self.sync()
        return replaced

    def sync(self) -> int:
        """Multi-process: process 0 broadcasts the pool changes it applied since the last sync, every other
        process applies them in the same order. Returns their number (0 with one process)."""
        if multihost.process_count() == 1:
            return 0
        if multihost.is_primary():
            changes = self.pool.take_changes()
            multihost.broadcast_bytes(host_sync.encode(changes), timeout_s=self.sync_timeout_s)
        else:
            changes = host_sync.decode(multihost.broadcast_bytes(None, timeout_s=self.sync_timeout_s))
            host_sync.replay(self.pool, changes)
        return len(changes)

    def refresh(self, step: int) -> None:
        """Adaptive difficulty: this step's fresh samples join the pool (before its batch is drawn)."""
        if self.adaptive is not None:
            self.adaptive.refresh(self.pool)

    def observe(self, samples: Sequence[Sample], accuracy: np.ndarray, step: int) -> None:
        """A batch's accuracies ([B, G], row b for samples[b]): each sample's mean into the pool's pass rates, each
        response's into the difficulty controller."""
        accuracy = np.asarray(accuracy, np.float64)
        self.pool.update_pass_rates({s.sample_id: float(a.mean()) for s, a in zip(samples, accuracy)}, step)
        if self.adaptive is not None:
            self.adaptive.observe(samples, accuracy)

    def state_dict(self) -> dict[str, Any]:
        state = {"pool": self.pool.state_dict(), "smoother": self.smoother.state_dict()}
        return state | ({"adaptive": self.adaptive.state_dict()} if self.adaptive is not None else {})

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if ("adaptive" in state) != (self.adaptive is not None):
            raise ValueError(f"the checkpoint was saved with data.adaptive.enabled={'adaptive' in state}; this run "
                             f"has data.adaptive.enabled={self.adaptive is not None}")
        added = self.adaptive.load_state_dict(state["adaptive"]) if self.adaptive is not None else ()
        self.smoother.load_state_dict(state["smoother"])
        self.pool.load_state_dict(state["pool"], added=added)

    def state_hash(self) -> str:
        """A digest of `state_dict()`: equal on every process of a run after `sync`."""
        return host_sync.state_hash(self.state_dict())

    def metrics(self) -> dict[str, float]:
        out = {"pool/synthesized_samples": self.pool.stats()["num_synthesized"]}
        out |= self.adaptive.metrics() if self.adaptive is not None else {}
        return out | (self.session.metrics() if self.session is not None else {})

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
