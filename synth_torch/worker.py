"""The worker thread of the data server: it owns the backend (so the device has one owner), takes batches of jobs
with equal image size and params from the queue, runs the pipeline, and hands every reply to the router thread
over an inproc PUSH socket (ZeroMQ sockets are not shared between threads).

Internal reply message: [token (8 bytes, the job's router-side name), header, png?]; the router releases the
job's byte accounting and sends [identity, header, png?] on. Jobs that waited longer than their timeout_s are
answered `expired` without running; a JPEG's scans are counted before it is decoded (image_check.check_scans).
"""
from __future__ import annotations

import logging
import struct
import threading
import time

import zmq

from syngrpo_jax.protocol import synthesis as proto
from synth_torch.image_check import check_scans
from synth_torch.job_queue import JobQueue
from synth_torch.pipeline import Job, Outcome, SynthesisPipeline
from synth_torch.stats import ServerStats

log = logging.getLogger("synth_torch.server")


def pack_token(token: int) -> bytes:
    return struct.pack("<Q", token)


def unpack_token(frame: bytes) -> int:
    return struct.unpack("<Q", frame)[0]


class Worker:
    """`ready` is set once the backend loaded (or failed: `load_error`); `run` then serves until `stop`."""

    def __init__(self, config, limits: proto.Limits, queue: JobQueue[Job], stats: ServerStats, ctx: zmq.Context,
                 endpoint: str, *, backend=None, segmenter=None):
        self.config, self.limits, self.queue, self.stats = config, limits, queue, stats
        self._ctx, self._endpoint = ctx, endpoint
        self._backend, self._segmenter = backend, segmenter
        self.batch_size = max(1, int(config.batch_size))
        self.ready = threading.Event()
        self.load_error: BaseException | None = None
        self.pipeline: SynthesisPipeline | None = None
        self.identity: dict = {"backend": config.backend}
        self.in_progress = 0

    def run(self, stop: threading.Event) -> None:
        try:
            self.pipeline = SynthesisPipeline(self.config, backend=self._backend, segmenter=self._segmenter)
            self.identity = self.pipeline.identity()
        except BaseException as e:  # reported by the server on the main thread
            self.load_error = e
            self.ready.set()
            return
        push = self._ctx.socket(zmq.PUSH)
        push.linger = 1000
        push.connect(self._endpoint)
        self.ready.set()

        def key(job: Job):
            try:
                return self.pipeline.batch_key(job)
            except Exception:
                return id(job)  # unbatchable, never equal to another key

        try:
            while not stop.is_set():
                batch = self.queue.take_batch(self.batch_size, key, timeout=0.2,
                                              linger_s=float(self.config.batch_wait_s))
                if batch:
                    self._run_batch(batch, push)
        finally:
            push.close()

    def _run_batch(self, batch: list[Job], push) -> None:
        dequeued = time.perf_counter()
        live = []
        for job in batch:
            try:
                if job.request.timeout_s is not None and dequeued - job.received > job.request.timeout_s:
                    raise proto.ProtocolError(
                        "expired", f"job waited {dequeued - job.received:.3f} s in the queue, over its "
                        f"timeout_s={job.request.timeout_s}", field="timeout_s")
                check_scans(job.image_bytes, self.limits)  # bounds the decode's cost before it starts
            except proto.ProtocolError as e:
                oc = Outcome(job, error=e)
                oc.timings["queue_wait"] = dequeued - job.received
                self._reply(oc, push)
            else:
                live.append(job)
        if not live:
            return
        self.in_progress = len(live)
        try:
            outcomes = self.pipeline.run(live, dequeued)
        except Exception as e:
            log.exception("pipeline failed on a batch of %d", len(live))
            outcomes = [Outcome(j, error=proto.ProtocolError("internal", f"{type(e).__name__}: {e}"),
                                batch_size=len(live)) for j in live]
        finally:
            self.in_progress = 0
        for oc in outcomes:
            self._reply(oc, push)

    def _reply(self, oc: Outcome, push) -> None:
        req = oc.job.request
        oc.timings["total"] = time.perf_counter() - oc.job.received
        self.stats.record(oc)
        common = dict(job_id=req.job_id, sample_id=req.sample_id, timings=oc.timings, batch_size=oc.batch_size)
        token = pack_token(oc.job.token)
        if oc.error is not None:
            push.send_multipart([token, proto.pack(proto.error_header("synthesize", req.request_id, oc.error,
                                                                      **common))])
            return
        header = proto.reply_header(
            "synthesize", req.request_id, True, width=oc.job.width, height=oc.job.height,
            boxes_verified=bool(oc.boxes_verified), backend=self.config.backend, **common)
        push.send_multipart([token, proto.pack(header), oc.image_png])
