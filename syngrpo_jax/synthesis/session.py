"""The trainer's side of synthesis: send each step's chosen descriptions to the data server, apply what returns.

A job is (description, the sample's ORIGINAL image, its ground-truth boxes, a seed); the server keeps the boxes'
pixels and paints a new background. Results are applied to the data pool as they arrive (asynchronous mode: at
the start of later steps, so training never waits) or before the step ends (synchronous mode: the step waits for
its own jobs). The session remembers which sample, description and step each job belongs to, so a result is
applied to the right sample exactly once and a stale one (older than the sample's current image) is dropped.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time

from syngrpo_jax.data.pool import DataPool
from syngrpo_jax.synthesis.client import SynthesisClient, SynthesisJob, SynthesisResult
from syngrpo_jax.synthesis.local_server import LocalServer, start_local_server

log = logging.getLogger(__name__)
MODES = ("async", "sync")


@dataclasses.dataclass(frozen=True)
class _Submitted:
    sample_id: str
    description: str
    step: int


def parse_overrides(text: str) -> dict[str, str]:
    """"key=value,key=value" -> {key: value} (values with "~" expanded: they are mostly model directories)."""
    out = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"synthesis.server_overrides: {part!r} is not key=value")
        out[key.strip()] = os.path.expanduser(value.strip())
    return out


class SynthesisSession:
    def __init__(self, synthesis_cfg, pool: DataPool):
        if synthesis_cfg.mode not in MODES:
            raise ValueError(f"synthesis.mode={synthesis_cfg.mode!r} is unknown; choose one of {MODES}")
        self.cfg = synthesis_cfg
        self.pool = pool
        self.server: LocalServer | None = None
        address = synthesis_cfg.address
        if not address:
            env = None
            if synthesis_cfg.get("server_visible_devices"):
                env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(synthesis_cfg.server_visible_devices))
            self.server = start_local_server(synthesis_cfg.server_config, env=env,
                                             overrides=parse_overrides(synthesis_cfg.server_overrides))
            address = self.server.endpoint
        self.client = SynthesisClient(address, server_public_key=synthesis_cfg.server_public_key or None,
                                      max_in_flight=synthesis_cfg.max_in_flight, timeout_s=synthesis_cfg.timeout_s)
        self._jobs: dict[str, _Submitted] = {}
        self.applied = 0
        self.stale = 0
        self.failed = 0

    def submit(self, requests: list[tuple[str, str, int]], step: int) -> list[str]:
        """requests: (sample_id, description, seed). Returns the ids of the accepted jobs."""
        ids = []
        for sample_id, description, seed in requests:
            original = self.pool.original(sample_id)
            with open(original.image_path, "rb") as f:
                image = f.read()
            job_id = self.client.submit(SynthesisJob(sample_id=sample_id, description=description,
                                                     boxes=original.boxes.tolist(), image=image, seed=seed))
            if job_id is not None:
                self._jobs[job_id] = _Submitted(sample_id, description, step)
                ids.append(job_id)
        return ids

    def apply(self, results: list[SynthesisResult], step: int) -> int:
        """Apply finished results to the pool; returns how many replaced an image."""
        replaced = 0
        for result in results:
            job = self._jobs.pop(result.job_id, None)
            if job is None or str(result.sample_id) != job.sample_id:
                continue  # not ours (the client already guarantees this; belt and braces)
            if not result.ok:
                self.failed += 1
                continue
            if job.sample_id not in self.pool:  # retired while the job ran (adaptive difficulty): nowhere to go
                self.stale += 1
                continue
            if self.pool.replace(job.sample_id, result.image_png, description=job.description,
                                 submitted_step=job.step, applied_step=step, job_id=result.job_id,
                                 meta={"boxes_verified": result.boxes_verified, "latency_s": result.latency_s}):
                replaced += 1
            else:
                self.stale += 1
        self.applied += replaced
        return replaced

    def poll(self, step: int) -> int:
        """Apply whatever finished since the last call (never waits)."""
        return self.apply(self.client.poll(), step)

    def wait(self, job_ids: list[str], step: int) -> float:
        """Synchronous mode: wait for these jobs (up to sync_timeout_s), apply them; returns seconds waited."""
        start = time.perf_counter()
        self.apply(self.client.wait(job_ids, timeout=self.cfg.sync_timeout_s), step)
        return time.perf_counter() - start

    def metrics(self) -> dict[str, float]:
        m = self.client.metrics()
        return {"synthesis/submitted": m["submitted"], "synthesis/completed": m["completed"],
                "synthesis/failed": m["failed"] + m["connection_lost"], "synthesis/timed_out": m["timed_out"],
                "synthesis/in_flight": m["in_flight"], "synthesis/server_up": float(m["server_up"]),
                "synthesis/applied": self.applied, "synthesis/stale": self.stale}

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()
