"""The trainer's side of synthesis: send each step's chosen descriptions to the data server, apply what returns.

A job is (description, the sample's ORIGINAL image, its ground-truth boxes, a seed); the server keeps the boxes'
pixels and paints a new background. Results are applied to the data pool as they arrive (asynchronous mode: at
the start of later steps, so training never waits) or before the step ends (synchronous mode: the step waits for
its own jobs). The session remembers which sample, description and step each job belongs to, so a result is
applied to the right sample exactly once and a stale one (older than the sample's current image) is dropped.

Faults (none of them ends training by surprise):
- A result the pool refuses (wrong size, not a PNG, an unknown sample) is dropped with one warning naming the job,
  and counted (synthesis/dropped).
- A lost server: a local one whose process exited, or any server silent for synthesis.server_lost_after_s. Its
  pending jobs fail at once. A local server is restarted on its port, at most synthesis.max_restarts times; a
  remote one (synthesis.address) cannot be restarted from here, the client's reconnect attempts during that
  silence were its chance. Past that, synthesis.on_server_lost decides: "stop" raises `SynthesisServerLost` (the
  trainer saves a checkpoint first), "continue" trains on without synthesis. This happens only in `poll`, at the
  start of a step, so a stop never interrupts a step half done. Steps whose jobs could not go out (server down or
  given up) report synthesis/unavailable = 1.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time

from syngrpo_jax.data.pool import DataPool, PoolError, UnknownSampleError
from syngrpo_jax.synthesis.client import SynthesisClient, SynthesisJob, SynthesisResult
from syngrpo_jax.synthesis.local_server import LocalServer, start_local_server

log = logging.getLogger(__name__)
MODES = ("async", "sync")
ON_SERVER_LOST = ("stop", "continue")
RECONNECT_WAIT_S = 10.0  # after a restart, how long poll() waits for the client to hear from the new server


class SynthesisServerLost(RuntimeError):
    """The data server is gone for good and synthesis.on_server_lost="stop". The message names the server."""


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
        if synthesis_cfg.on_server_lost not in ON_SERVER_LOST:
            raise ValueError(f"synthesis.on_server_lost={synthesis_cfg.on_server_lost!r} is unknown; choose one of "
                             f"{ON_SERVER_LOST}")
        self.cfg = synthesis_cfg
        self.pool = pool
        self.server: LocalServer | None = None
        address = synthesis_cfg.address
        if not address:
            self.server = self._start_server()
            address = self.server.endpoint
        self.client = SynthesisClient(address, server_public_key=synthesis_cfg.server_public_key or None,
                                      max_in_flight=synthesis_cfg.max_in_flight, timeout_s=synthesis_cfg.timeout_s)
        self._jobs: dict[str, _Submitted] = {}
        self.applied = 0
        self.stale = 0
        self.failed = 0
        self.dropped = 0  # results the pool refused
        self.restarts = 0
        self.lost: str | None = None  # why synthesis stopped for good (on_server_lost="continue")
        self._unavailable = False  # this step's jobs could not go out

    @property
    def name(self) -> str:
        """The server, as messages name it."""
        if self.server is None:
            return f"at {self.cfg.address} (synthesis.address)"
        return f"{self.cfg.server_config!r} at {self.server.endpoint} (pid {self.server.process.pid})"

    def _start_server(self, port: int | None = None) -> LocalServer:
        env = None
        if self.cfg.get("server_visible_devices"):
            env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(self.cfg.server_visible_devices))
        return start_local_server(self.cfg.server_config, env=env, port=port,
                                  overrides=parse_overrides(self.cfg.server_overrides))

    def submit(self, requests: list[tuple[str, str, int]], step: int) -> list[str]:
        """requests: (sample_id, description, seed). Returns the ids of the accepted jobs."""
        self._unavailable = self.lost is not None or not self.client.available()
        if self.lost is not None:
            return []
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
            elif self.client.last_refusal == "server_down":
                self._unavailable = True
        return ids

    def apply(self, results: list[SynthesisResult], step: int) -> int:
        """Apply finished results to the pool; returns how many replaced an image. A result the pool refuses is
        dropped with a warning naming the job."""
        replaced = 0
        for result in results:
            job = self._jobs.pop(result.job_id, None)
            if job is None or str(result.sample_id) != job.sample_id:
                continue  # not ours (the client already guarantees this; belt and braces)
            if not result.ok:
                self.failed += 1
                continue
            if self.pool.was_retired(job.sample_id):  # retired while the job ran (adaptive difficulty): nowhere to go
                self.stale += 1
                continue
            try:
                ok = self.pool.replace(job.sample_id, result.image_png, description=job.description,
                                       submitted_step=job.step, applied_step=step, job_id=result.job_id,
                                       meta={"boxes_verified": result.boxes_verified, "latency_s": result.latency_s})
            except (PoolError, UnknownSampleError) as e:
                self.dropped += 1
                log.warning("synthesis job %s (sample %r, submitted at step %d): the data pool refused its result, "
                            "dropped: %s", result.job_id, job.sample_id, job.step, e)
                continue
            replaced += ok
            self.stale += not ok
        self.applied += replaced
        return replaced

    def poll(self, step: int) -> int:
        """Apply whatever finished since the last call (never waits on jobs), then see to the server: restart a
        lost local one, or apply synthesis.on_server_lost (raises SynthesisServerLost for "stop")."""
        replaced = self.apply(self.client.poll(), step)
        if self.lost is None and (why := self._why_lost()) is not None:
            self.client.fail_pending(f"data server {why}")
            self.apply(self.client.poll(), step)  # counted as failed, once
            self._recover(why, step)
        return replaced

    def wait(self, job_ids: list[str], step: int) -> float:
        """Synchronous mode: wait for these jobs (up to sync_timeout_s), apply them; returns seconds waited."""
        start = time.perf_counter()
        if job_ids:
            self.apply(self.client.wait(job_ids, timeout=self.cfg.sync_timeout_s), step)
        return time.perf_counter() - start

    # ---- a lost server ----------------------------------------------------------------------------------------

    def _why_lost(self) -> str | None:
        if self.server is not None and not self.server.alive():
            return f"exited with code {self.server.process.returncode}"
        silence, limit = self.client.silence_s(), self.cfg.server_lost_after_s
        if silence > limit:
            return f"has not answered for {silence:.0f} s (synthesis.server_lost_after_s={limit})"
        return None

    def _recover(self, why: str, step: int) -> None:
        """Restart a local server (bounded), else give up as synthesis.on_server_lost says."""
        tail = ""
        while self.server is not None and self.restarts < self.cfg.max_restarts:
            old, name = self.server, self.name
            tail = tail or old.log()[-1500:]
            old.kill()
            old.stop()
            self.restarts += 1
            log.warning("data server %s %s; restarting it (restart %d of synthesis.max_restarts=%d)", name, why,
                        self.restarts, self.cfg.max_restarts)
            started = time.monotonic()
            try:
                self.server = self._start_server(port=old.port)  # the client reconnects to the same address
            except RuntimeError as e:
                why = f"{why}; restart {self.restarts} failed: {str(e).splitlines()[0]}"
                continue
            # Submit only once the client heard from the new server (it refuses jobs while the link is down).
            deadline = time.monotonic() + RECONNECT_WAIT_S
            while not (self.client.available() and self.client.silence_s() < time.monotonic() - started):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            return
        if self.server is not None:
            tail = tail or self.server.log()[-1500:]
            how = f"restarted {self.restarts} times already (synthesis.max_restarts={self.cfg.max_restarts})"
        else:
            how = "a remote server cannot be restarted from here; reconnecting did not bring it back"
        self.lost = f"data server {self.name} {why}; {how}"
        self.close()
        if self.cfg.on_server_lost == "stop":
            raise SynthesisServerLost(
                f"{self.lost}. Training stops before step {step} with a checkpoint: fix the server and rerun the same "
                f"command to resume, or set synthesis.on_server_lost=continue to train on without synthesis."
                + (f"\n--- the server's log (last lines) ---\n{tail}" if tail else ""))
        log.warning("%s. synthesis.on_server_lost=continue: training goes on without synthesis (the current images)",
                    self.lost)

    # ---- reporting --------------------------------------------------------------------------------------------

    def metrics(self) -> dict[str, float]:
        """Cumulative counts since the session started, and this step's synthesis/unavailable. Every submitted job
        is counted once: submitted = completed + failed + timed_out + in_flight; connection_lost is the part of
        failed lost with the server; a completed result is applied, stale or dropped (refused by the pool)."""
        m = self.client.metrics()
        return {"synthesis/submitted": m["submitted"], "synthesis/completed": m["completed"],
                "synthesis/failed": m["failed"], "synthesis/connection_lost": m["connection_lost"],
                "synthesis/timed_out": m["timed_out"], "synthesis/in_flight": m["in_flight"],
                "synthesis/server_up": float(m["server_up"] and self.lost is None),
                "synthesis/applied": self.applied, "synthesis/stale": self.stale, "synthesis/dropped": self.dropped,
                "synthesis/restarts": self.restarts, "synthesis/unavailable": float(self._unavailable)}

    def close(self) -> None:
        """Idempotent; metrics() still answers afterwards."""
        self.client.close()
        if self.server is not None:
            self.server.stop()
