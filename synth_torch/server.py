r"""The data server: a ZeroMQ ROUTER front end, a bounded job queue, and one worker thread that owns the device.

    python -m synth_torch.server --config=configs/synth.py:procedural [--config.port=0 --ready_file=/tmp/r.json]

Threads: the router thread only parses, validates and answers (ping, stats, errors, `overloaded`) -- it never
waits on the backend; the worker thread builds the backend (so the device has one owner), takes batches of jobs
with equal image size and params from the queue, runs the pipeline and hands finished replies back to the router
over an inproc socket (ZeroMQ sockets are not shared between threads). Protocol: syngrpo_jax.protocol.synthesis.
"""
from __future__ import annotations

import collections
import hmac
import logging
import os
import signal
import sys
import threading
import time
import uuid

import numpy as np
import zmq

from syngrpo_jax.protocol import curve_keys, endpoints
from syngrpo_jax.protocol.endpoints import BindRefused  # re-exported: the server raises it
from syngrpo_jax.protocol import synthesis as proto
from synth_torch.job_queue import JobQueue
from synth_torch.pipeline import Job, Outcome, SynthesisPipeline, sniff_image

log = logging.getLogger("synth_torch.server")

ADMIN_TOKEN_ENV = "SYNGRPO_SYNTH_ADMIN_TOKEN"
PARENT_PID_ENV = "SYNGRPO_SYNTH_PARENT_PID"  # set by a launcher whose death should stop this server


def limits_from_config(limits_cfg) -> proto.Limits:
    return proto.Limits(**{f: int(limits_cfg[f]) for f in proto.Limits.__dataclass_fields__ if f in limits_cfg})


def server_curve_keys(config) -> tuple[bytes, bytes] | None:
    """(public, secret) from the config, or None when CURVE is not configured."""
    c = config.curve
    if c.server_secret_key_file:
        return curve_keys.load_secret_keypair(c.server_secret_key_file)
    if c.server_public_key or c.server_secret_key:
        if not (c.server_public_key and c.server_secret_key):
            raise ValueError("config.curve needs both server_public_key and server_secret_key (Z85), or a key file")
        return c.server_public_key.encode(), c.server_secret_key.encode()
    return None


def check_bind(config) -> tuple[bytes, bytes] | None:
    """Refuses a non-loopback bind without CURVE keys; returns the keys (or None on plain loopback)."""
    keys = server_curve_keys(config)
    endpoints.check_bind(config.bind_address, keys,
                         how_to="set config.curve.server_secret_key_file=KEYS/server.key_secret")
    return keys


class _Stats:
    """Counters and recent per-stage timings; written by both threads, hence the lock."""

    def __init__(self, window: int = 1024):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.timings = {s: collections.deque(maxlen=window) for s in (*proto.STAGES, "total")}
        self.batch_sizes = collections.deque(maxlen=window)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] += n

    def record(self, outcome: Outcome) -> None:
        with self.lock:
            self.counts["done" if outcome.error is None else "failed"] += 1
            if outcome.error is not None:
                self.counts[f"failed_{outcome.error.code}"] += 1
            for stage, seconds in outcome.timings.items():
                if stage in self.timings:
                    self.timings[stage].append(seconds)
            self.batch_sizes.append(outcome.batch_size)

    def snapshot(self) -> dict:
        with self.lock:
            timings = {}
            for stage, values in self.timings.items():
                if values:
                    arr = np.asarray(values)
                    timings[stage] = {"count": len(arr), "mean_s": float(arr.mean()),
                                      "p50_s": float(np.percentile(arr, 50)), "p95_s": float(np.percentile(arr, 95)),
                                      "max_s": float(arr.max())}
            return {"counts": dict(self.counts), "timings": timings,
                    "mean_batch_size": float(np.mean(self.batch_sizes)) if self.batch_sizes else 0.0}


class SynthServer:
    """The data server. In-process use (tests, benchmarks):

        server = SynthServer(config).start()   # builds the backend, binds, serves on background threads
        server.endpoint                         # "tcp://127.0.0.1:PORT"
        server.stop()

    `backend` / `segmenter` may be passed in instead of being built from the config (tests inject slow ones).
    """

    def __init__(self, config, *, backend=None, segmenter=None):
        self.config = config
        self.limits = limits_from_config(config.limits)
        self._curve = check_bind(config)  # fail fast, before any model loads
        self.admin_token = config.admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None
        self.queue: JobQueue[Job] = JobQueue(int(config.queue_size))
        self.batch_size = max(1, int(config.batch_size))
        self._stats = _Stats()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._backend, self._segmenter = backend, segmenter
        self.pipeline: SynthesisPipeline | None = None
        self.identity: dict = {"backend": config.backend}
        self._ctx = zmq.Context()
        self._inproc = f"inproc://synth-results-{uuid.uuid4().hex}"
        self._auth = None
        self._router = self._pull = None
        self._threads: list[threading.Thread] = []
        self.endpoint: str | None = None
        self.started = time.time()
        self._in_progress = 0

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def _load_and_bind(self, load_timeout_s: float | None) -> None:
        worker = threading.Thread(target=self._worker_main, name="synth-worker", daemon=True)
        self._pull = self._ctx.socket(zmq.PULL)
        self._pull.bind(self._inproc)
        worker.start()
        self._threads.append(worker)
        if not self._ready.wait(load_timeout_s):
            raise TimeoutError(f"backend {self.config.backend!r} did not load within {load_timeout_s} s")
        if self._load_error is not None:
            self.close()
            raise self._load_error
        self._bind()

    def _bind(self) -> None:
        cfg = self.config
        sock, self.endpoint, self._auth = endpoints.bind_router(
            self._ctx, cfg.bind_address, int(cfg.port), self._curve,
            authorized_clients_dir=cfg.curve.authorized_clients_dir, max_message_bytes=self.limits.max_message_bytes)
        self._router = sock
        log.info("synth server (%s) listening on %s%s", cfg.backend, self.endpoint,
                 " with CURVE" if self._curve else "")

    def start(self, load_timeout_s: float | None = None) -> "SynthServer":
        """Loads the backend, binds, and serves on a background thread."""
        self._load_and_bind(load_timeout_s)
        router = threading.Thread(target=self._router_main, name="synth-router", daemon=True)
        router.start()
        self._threads.append(router)
        return self

    def serve_forever(self, ready_file: str | None = None) -> None:
        """Loads, binds and serves on the calling thread until `stop()` or an authenticated `shutdown`."""
        self._load_and_bind(None)
        if ready_file:
            endpoints.write_ready_file(
                ready_file, {"endpoint": self.endpoint, "pid": os.getpid(), "backend": self.config.backend})
        self._router_main()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self.queue.close()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout_s)
        self.close()

    def close(self) -> None:
        self._stop.set()
        self.queue.close()
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        for s in (self._router, self._pull):
            if s is not None and not s.closed:
                s.close()
        if all(not t.is_alive() for t in self._threads):
            self._ctx.term()  # a worker still inside the backend keeps its socket; terminating would hang

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- router thread ---------------------------------------------------------------------------------------

    def _router_main(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._pull, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(100))
                if self._pull in events:
                    self._forward_results()
                if self._router in events:
                    for _ in range(256):  # bounded so results are forwarded between request bursts
                        try:
                            frames = self._router.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._handle(frames[0], frames[1:])
                        if self._stop.is_set():
                            break
        finally:
            self._finish()

    def _finish(self) -> None:
        """Answers queued jobs with `shutting_down`, lets the worker finish, forwards what it sent."""
        self.queue.close()
        for job in self.queue.drain():
            self._send_error(job.identity, "synthesize", job.request.request_id,
                             proto.ProtocolError("shutting_down", "the server stopped before this job ran"),
                             job_id=job.request.job_id, sample_id=job.request.sample_id)
        for t in self._threads:
            if t.name == "synth-worker":
                t.join(30.0)
        self._forward_results()
        log.info("synth server stopped: %s", self._stats.snapshot()["counts"])

    def _forward_results(self) -> None:
        while True:
            try:
                frames = self._pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._send(frames)

    def _send(self, frames: list[bytes]) -> None:
        try:
            self._router.send_multipart(frames, zmq.NOBLOCK)  # unknown or slow peers are dropped, never waited on
        except zmq.ZMQError as e:
            self._stats.add("reply_dropped")
            log.debug("reply dropped: %s", e)

    def _send_error(self, identity, op, request_id, err: proto.ProtocolError, **fields) -> None:
        self._send([identity, proto.pack(proto.error_header(op, request_id, err, **fields))])

    def _handle(self, identity: bytes, frames: list[bytes]) -> None:
        received = time.perf_counter()
        op = request_id = None
        echo = {}
        try:
            if not frames:
                raise proto.ProtocolError("bad_message", "message has no frames; expected [header] or [header, image]")
            if len(frames) > 2:
                raise proto.ProtocolError(
                    "bad_message", f"message has {len(frames)} frames; expected [header] or [header, image]")
            size = sum(len(f) for f in frames)
            if size > self.limits.max_message_bytes:
                raise proto.ProtocolError(
                    "limit_exceeded", f"message is {size} bytes, over max_message_bytes={self.limits.max_message_bytes}",
                    limit="max_message_bytes")
            header = proto.unpack_header(frames[0], self.limits)
            # Echo what can be echoed even if validation fails below, so the sender can match the error.
            op = header.get("op") if header.get("op") in proto.OPS else None
            rid = header.get("id")
            request_id = rid if isinstance(rid, str) and len(rid) <= self.limits.max_id_chars else None
            for k in ("job_id", "sample_id"):
                v = header.get(k)
                if (isinstance(v, str) and len(v) <= self.limits.max_id_chars) or (
                        isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63):
                    echo[k] = v
            op, request_id = proto.validate_envelope(header, self.limits)
            if op != "synthesize" and len(frames) != 1:
                raise proto.ProtocolError("bad_message", f"op {op!r} takes one frame, got {len(frames)}")
            if op == "synthesize":
                self._admit(identity, header, frames, received)
            elif op == "ping":
                proto.validate_plain(header)
                self._send([identity, proto.pack(proto.reply_header(
                    op, request_id, True, ready=self._ready.is_set(), backend=self.config.backend))])
            elif op == "stats":
                proto.validate_plain(header)
                self._send([identity, proto.pack(proto.reply_header(op, request_id, True, stats=self.stats()))])
            elif op == "shutdown":
                token = proto.validate_shutdown(header, self.limits)
                if not self.admin_token:
                    raise proto.ProtocolError("unauthorized", "shutdown is disabled: the server has no admin token")
                if not hmac.compare_digest(token.encode(), self.admin_token.encode()):
                    self._stats.add("unauthorized")
                    raise proto.ProtocolError("unauthorized", "shutdown refused: wrong admin token", field="token")
                self._send([identity, proto.pack(proto.reply_header(op, request_id, True))])
                log.info("authenticated shutdown request")
                self._stop.set()
        except proto.ProtocolError as e:
            self._stats.add("overloaded" if e.code == "overloaded" else "rejected")
            self._send_error(identity, op, request_id, e, **echo)
        except Exception as e:  # a bug must cost one reply, not the service
            log.exception("router failed on a request")
            self._stats.add("rejected")
            self._send_error(identity, op, request_id,
                             proto.ProtocolError("internal", f"{type(e).__name__}: {e}"), **echo)

    def _admit(self, identity, header, frames, received) -> None:
        request = proto.validate_synthesize(header, self.limits)
        if len(frames) != 2:
            raise proto.ProtocolError("bad_message", "synthesize needs an image frame after the header", field="image")
        _, width, height = sniff_image(frames[1], self.limits)
        job = Job(identity, request, frames[1], width, height, received)
        if not self.queue.try_put(job):
            raise proto.ProtocolError(
                "overloaded", f"job queue is full ({self.queue.capacity} waiting, queue_size={self.queue.capacity}); "
                "retry later", limit="queue_size")
        self._stats.add("accepted")

    # ---- worker thread ---------------------------------------------------------------------------------------

    def _worker_main(self) -> None:
        try:
            self.pipeline = SynthesisPipeline(self.config, backend=self._backend, segmenter=self._segmenter)
            self.identity = self.pipeline.identity()
        except BaseException as e:  # reported by start()/serve_forever() on the main thread
            self._load_error = e
            self._ready.set()
            return
        push = self._ctx.socket(zmq.PUSH)
        push.linger = 1000
        push.connect(self._inproc)
        self._ready.set()

        def key(job: Job):
            try:
                return self.pipeline.batch_key(job)
            except Exception:
                return id(job)  # unbatchable, never equal to another key

        try:
            while not self._stop.is_set():
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
            if job.request.timeout_s is not None and dequeued - job.received > job.request.timeout_s:
                oc = Outcome(job, error=proto.ProtocolError(
                    "expired", f"job waited {dequeued - job.received:.3f} s in the queue, over its "
                    f"timeout_s={job.request.timeout_s}", field="timeout_s"))
                oc.timings["queue_wait"] = dequeued - job.received
                self._reply(oc, push)
            else:
                live.append(job)
        if not live:
            return
        self._in_progress = len(live)
        try:
            outcomes = self.pipeline.run(live, dequeued)
        except Exception as e:
            log.exception("pipeline failed on a batch of %d", len(live))
            outcomes = [Outcome(j, error=proto.ProtocolError("internal", f"{type(e).__name__}: {e}"),
                                batch_size=len(live)) for j in live]
        finally:
            self._in_progress = 0
        for oc in outcomes:
            self._reply(oc, push)

    def _reply(self, oc: Outcome, push) -> None:
        req = oc.job.request
        oc.timings["total"] = time.perf_counter() - oc.job.received
        self._stats.record(oc)
        common = dict(job_id=req.job_id, sample_id=req.sample_id, timings=oc.timings, batch_size=oc.batch_size)
        if oc.error is not None:
            push.send_multipart([oc.job.identity, proto.pack(proto.error_header("synthesize", req.request_id,
                                                                                oc.error, **common))])
            return
        header = proto.reply_header(
            "synthesize", req.request_id, True, width=oc.job.width, height=oc.job.height,
            boxes_verified=bool(oc.boxes_verified), backend=self.config.backend, **common)
        push.send_multipart([oc.job.identity, proto.pack(header), oc.image_png])

    # ---- introspection ---------------------------------------------------------------------------------------

    def stats(self) -> dict:
        snap = self._stats.snapshot()
        counts = snap["counts"]
        return {
            "protocol_version": proto.PROTOCOL_VERSION,
            "queue_depth": len(self.queue), "queue_capacity": self.queue.capacity,
            "in_progress": self._in_progress, "batch_size": self.batch_size,
            "done": counts.get("done", 0), "failed": counts.get("failed", 0),
            "overloaded": counts.get("overloaded", 0), "rejected": counts.get("rejected", 0),
            "counts": counts, "timings": snap["timings"], "mean_batch_size": snap["mean_batch_size"],
            "backend": _plain(self.identity), "uptime_s": time.time() - self.started, "pid": os.getpid(),
            "curve": self._curve is not None,
        }


def _plain(obj):
    """Only msgpack-safe values in stats."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def _lower_priority(nice) -> None:
    """Raises this process's niceness by `nice` (0-19), so a server sharing CPUs with a trainer yields to it."""
    if not (isinstance(nice, int) and not isinstance(nice, bool) and 0 <= nice <= 19):
        log.error("config.nice=%r must be an integer from 0 to 19", nice)
        sys.exit(2)
    if nice:
        os.nice(nice)


def main(argv) -> None:
    from absl import flags

    del argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    endpoints.exit_with_parent(PARENT_PID_ENV)
    config = flags.FLAGS.config
    _lower_priority(config.get("nice", 0))
    try:
        server = SynthServer(config)
    except BindRefused as e:
        log.error("%s", e)
        sys.exit(2)

    def on_signal(signum, frame):
        log.info("signal %d: stopping", signum)
        server._stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.serve_forever(ready_file=flags.FLAGS.ready_file)
    server.close()


def _define_flags():
    from absl import flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, "configs/synth.py[:procedural|sdxl]", lock_config=True)
    flags.DEFINE_string("ready_file", None, "write {endpoint, pid} as JSON here once bound (for launchers)")
    flags.mark_flags_as_required(["config"])


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
