"""Non-blocking client of the data server (synth_torch.server), for the trainer.

    client = SynthesisClient("tcp://127.0.0.1:5557", max_in_flight=32, timeout_s=120)
    job_id = client.submit(SynthesisJob(sample_id=7, description="a snowy street at night", boxes=[[10, 20, 90, 120]],
                                        image=png_bytes, seed=3))      # returns at once; None if refused
    for result in client.poll():                                        # finished results, each exactly once
        if result.ok: pool.replace(result.sample_id, result.image_png)
    client.metrics()   # submitted, completed, failed, timed_out, in_flight, server_up, ...

A background thread owns the DEALER socket (ZeroMQ sockets are single-threaded); submit() and poll() only touch
queues under a lock, so training never waits on the network. Every job has a deadline (timeout_s); a job whose
connection drops (server killed or restarted) fails at once with `connection_lost`, since the server could not
answer it on the new connection anyway; so does every job not yet sent, and submit() refuses new jobs until the
connection is back (a job queued towards a dead server would only wait out its deadline). Replies are matched by
job id *and* sample id; replies for unknown, finished or mismatched jobs are dropped and counted, so a result is
never delivered twice or for the wrong sample.
If the server stops answering, one warning is logged per outage and metrics()["server_up"] turns False;
submit() then refuses new jobs (returns None) so training goes on with the current images. `silence_s()` says for
how long nothing came back, `fail_pending()` ends every pending job at once (its owner knows the server is gone).

Counters (metrics()): every submitted job ends in exactly one of completed, failed and timed_out (in_flight until
then); connection_lost and overloaded are the failed jobs of those two causes, counted inside failed.

Synchronous mode (the sync-vs-async comparison): `wait(job_ids)` or `run_batch(jobs)`.

Imports numpy, PIL, zmq, msgpack only (no torch, no jax).
"""
from __future__ import annotations

import collections
import dataclasses
import io
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Sequence

import numpy as np
import zmq
from PIL import Image
from zmq.utils.monitor import recv_monitor_message

from syngrpo_jax.protocol import curve_keys
from syngrpo_jax.protocol import synthesis as proto

log = logging.getLogger("syngrpo_jax.synthesis")


@dataclasses.dataclass
class SynthesisJob:
    sample_id: str | int
    description: str
    boxes: Sequence[Sequence[float]]  # [x0, y0, x1, y1] in the original image's pixels
    image: bytes | np.ndarray | Image.Image  # PNG/JPEG file bytes (sent as is), or pixels (sent as PNG)
    seed: int = 0
    params: dict | None = None  # optional steps / guidance / strength
    job_id: str | None = None  # chosen by submit() when None


@dataclasses.dataclass
class SynthesisResult:
    job_id: str
    sample_id: str | int
    ok: bool
    image_png: bytes | None = None
    error_code: str | None = None  # a protocol error code, or "timeout" / "connection_lost" (client side)
    error_message: str | None = None
    boxes_verified: bool = False
    timings: dict = dataclasses.field(default_factory=dict)  # server stages, seconds
    batch_size: int = 1
    latency_s: float = 0.0  # submit -> result, client clock

    def image(self) -> np.ndarray:
        """uint8[H, W, 3] of the returned PNG."""
        if self.image_png is None:
            raise ValueError(f"job {self.job_id} has no image ({self.error_code}: {self.error_message})")
        with Image.open(io.BytesIO(self.image_png)) as img:
            return np.asarray(img.convert("RGB"))


@dataclasses.dataclass
class _Pending:
    job: SynthesisJob
    submitted: float
    deadline: float


class SynthesisClient:
    def __init__(self, address: str, *, server_public_key: str | bytes | os.PathLike | None = None,
                 client_keys: tuple[bytes, bytes] | None = None, max_in_flight: int = 32, timeout_s: float = 120.0,
                 heartbeat_s: float = 1.0, server_down_after_s: float | None = None,
                 refuse_when_down: bool = True, png_compress_level: int = 1, remember_finished: int = 100_000):
        """address: "tcp://host:port". server_public_key: the server's CURVE key (Z85 or a .key file) when it
        uses CURVE; client_keys: (public, secret) if the server only admits known clients (otherwise an
        ephemeral pair). timeout_s: per job, from submit. server_down_after_s: silence (no reply to heartbeats)
        after which the server counts as down (default 3 heartbeats)."""
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight={max_in_flight} must be at least 1")
        self.address = address
        self.max_in_flight = max_in_flight
        self.timeout_s = float(timeout_s)
        self.heartbeat_s = float(heartbeat_s)
        self.server_down_after_s = float(server_down_after_s or 3 * heartbeat_s)
        self.refuse_when_down = refuse_when_down
        self.png_compress_level = png_compress_level
        self.last_refusal: str | None = None  # why the last submit() returned None

        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: dict[str, _Pending] = {}
        self._outbox: collections.deque[str] = collections.deque()
        self._done: collections.OrderedDict[str, SynthesisResult] = collections.OrderedDict()
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._remember = remember_finished
        self._counts = collections.Counter()
        self._server_up: bool | None = None
        self._link_up: bool | None = None  # the connection: None before the first one, False after it dropped
        self._warned_down = False
        self._started = time.monotonic()
        self._last_reply: float | None = None
        self._ping_ids = itertools.count()
        self._closed = threading.Event()

        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.linger = 0
        self._sock.immediate = True  # no queueing towards a dead server: sends fail until a connection is up
        self._sock.reconnect_ivl = 100
        self._sock.reconnect_ivl_max = 2000
        if server_public_key is not None:
            public, secret = client_keys or zmq.curve_keypair()
            self._sock.curve_serverkey = curve_keys.load_public_key(server_public_key)
            self._sock.curve_publickey, self._sock.curve_secretkey = public, secret
        self._monitor = self._sock.get_monitor_socket(
            zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_CONNECTED)
        self._sock.connect(address)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._io_main, name="synthesis-client", daemon=True)
        self._thread.start()

    # ---- caller side ---------------------------------------------------------------------------------------

    def submit(self, job: SynthesisJob) -> str | None:
        """Queues a job and returns its id at once; None (see `last_refusal`) when in-flight jobs are at the
        bound, the server is known to be down, or the client is closed."""
        if not isinstance(job.sample_id, (str, int)) or isinstance(job.sample_id, bool):
            raise TypeError(f"SynthesisJob.sample_id must be str or int, got {job.sample_id!r}")
        with self._lock:
            refusal = None
            if self._closed.is_set():
                refusal = "closed"
            elif len(self._pending) >= self.max_in_flight:
                refusal = "in_flight_full"
            elif self.refuse_when_down and not self._available():
                refusal = "server_down"
            self.last_refusal = refusal
            if refusal:
                self._counts[f"refused_{refusal}"] += 1
                return None
            job = dataclasses.replace(job, job_id=job.job_id or uuid.uuid4().hex)
            if job.job_id in self._pending or job.job_id in self._finished:
                raise ValueError(f"job_id {job.job_id!r} was already submitted")
            now = time.monotonic()
            self._pending[job.job_id] = _Pending(job, now, now + self.timeout_s)
            self._outbox.append(job.job_id)
            self._counts["submitted"] += 1
        self._wake()
        return job.job_id

    def poll(self) -> list[SynthesisResult]:
        """Every result finished since the last poll (or wait), each delivered once."""
        with self._lock:
            results = list(self._done.values())
            self._done.clear()
        return results

    def wait(self, job_ids: Sequence[str], timeout: float | None = None) -> list[SynthesisResult]:
        """Blocks until each job has a result (every job has one by its deadline) or `timeout` passes; returns
        the results in job_ids order, leaving out jobs still unfinished at the timeout."""
        wanted = [j for j in job_ids if j is not None]
        with self._cond:
            self._cond.wait_for(lambda: all(j in self._done or j not in self._pending for j in wanted), timeout)
            return [self._done.pop(j) for j in wanted if j in self._done]

    def run_batch(self, jobs: Sequence[SynthesisJob], timeout: float | None = None) -> list[SynthesisResult]:
        """Synchronous mode: submits the jobs (max_in_flight at a time) and waits for all of them."""
        results, ids = [], []
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in jobs:
            while (job_id := self.submit(job)) is None and self.last_refusal == "in_flight_full":
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                results += self.wait(ids, timeout=min(0.05, left) if left is not None else 0.05)
                ids = [i for i in ids if i not in {r.job_id for r in results}]
            if job_id is not None:
                ids.append(job_id)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return results + self.wait(ids, timeout=left)

    def available(self) -> bool:
        """False while the server is known down (silent, or the connection dropped and is not back)."""
        with self._lock:
            return self._available()

    def _available(self) -> bool:
        return self._server_up is not False and self._link_up is not False

    def silence_s(self) -> float:
        """Seconds since the last reply (since the client started if none came yet)."""
        with self._lock:
            return time.monotonic() - (self._last_reply if self._last_reply is not None else self._started)

    def fail_pending(self, message: str) -> int:
        """Ends every pending job (sent or not) now as `connection_lost`: for an owner that knows the server died
        (its process exited) or gave up on it. Returns how many jobs it ended."""
        with self._lock:
            return self._lose([*self._pending], message)

    def metrics(self) -> dict[str, Any]:
        with self._lock:
            m = {k: self._counts.get(k, 0) for k in (
                "submitted", "completed", "failed", "timed_out", "connection_lost", "overloaded",
                "refused_in_flight_full", "refused_server_down", "dropped_replies", "misrouted_replies")}
            m["in_flight"] = len(self._pending)
            m["server_up"] = bool(self._server_up)
            m["last_reply_age_s"] = None if self._last_reply is None else time.monotonic() - self._last_reply
            return m

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake()
        self._thread.join(5.0)
        self._wake_r.close()
        self._wake_w.close()
        with self._cond:
            self._cond.notify_all()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already woken (buffer full) or closing

    # ---- IO thread -----------------------------------------------------------------------------------------

    def _io_main(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        next_ping = 0.0
        try:
            while not self._closed.is_set():
                now = time.monotonic()
                timeout_ms = max(0.0, min(next_ping - now, 0.05)) * 1000
                events = dict(poller.poll(timeout_ms))
                if self._wake_r.fileno() in events:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                if self._monitor in events:
                    self._read_monitor()
                if self._sock in events:
                    self._read_replies()
                self._send_outbox()
                now = time.monotonic()
                if now >= next_ping:
                    self._send([proto.pack(proto.request_header("ping", f"ping-{next(self._ping_ids)}"))])
                    next_ping = now + self.heartbeat_s
                self._expire(now)
                self._update_server_up(now)
        except Exception:
            log.exception("synthesis client IO thread failed; jobs will time out")
        finally:
            self._sock.disable_monitor()
            self._monitor.close()
            self._sock.close()
            self._ctx.term()

    def _send(self, frames: list[bytes]) -> bool:
        try:
            self._sock.send_multipart(frames, zmq.NOBLOCK)
            return True
        except zmq.Again:  # no connection (immediate=True) or the send buffer is full: retry next tick
            return False

    def _frames(self, job: SynthesisJob) -> list[bytes]:
        image = job.image
        if isinstance(image, (bytes, bytearray, memoryview)):
            data = bytes(image)
        else:
            if isinstance(image, np.ndarray):
                image = Image.fromarray(image)
            buf = io.BytesIO()
            image.convert("RGB").save(buf, format="PNG", compress_level=self.png_compress_level)
            data = buf.getvalue()
        timeout_left = max(0.0, self._pending[job.job_id].deadline - time.monotonic())
        return proto.synthesize_frames(
            job_id=job.job_id, sample_id=job.sample_id, description=job.description, boxes=job.boxes,
            seed=job.seed, image_bytes=data, params=job.params, timeout_s=timeout_left)

    def _send_outbox(self) -> None:
        while True:
            with self._lock:
                if not self._outbox:
                    return
                job_id = self._outbox[0]
                pending = self._pending.get(job_id)
                if pending is None:  # finished (timed out or lost) before it was sent
                    self._outbox.popleft()
                    continue
            try:
                frames = self._frames(pending.job)  # encoding outside the lock
            except Exception as e:
                with self._lock:
                    self._outbox.popleft()
                    if job_id in self._pending:  # not lost or expired meanwhile: a job ends once
                        self._finish(job_id, SynthesisResult(job_id, pending.job.sample_id, False,
                                                             error_code="bad_job",
                                                             error_message=f"{type(e).__name__}: {e}"), "failed")
                continue
            if not self._send(frames):
                return
            with self._lock:
                self._outbox.popleft()

    def _read_replies(self) -> None:
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            now = time.monotonic()
            try:
                header = proto.unpack_reply(frames[0])
            except proto.ProtocolError:
                with self._lock:
                    self._counts["dropped_replies"] += 1
                continue
            with self._lock:
                self._last_reply = now
                if header.get("op") == "synthesize" or "job_id" in header:
                    self._on_job_reply(header, frames, now)

    def _on_job_reply(self, header: dict, frames: list[bytes], now: float) -> None:
        job_id = header.get("job_id", header.get("id"))
        pending = self._pending.get(job_id) if isinstance(job_id, str) else None
        if pending is None:  # unknown, already delivered, or timed out: never deliver twice
            self._counts["dropped_replies"] += 1
            return
        if "sample_id" in header and header["sample_id"] != pending.job.sample_id:
            self._counts["misrouted_replies"] += 1
            self._counts["dropped_replies"] += 1
            log.error("reply for job %s names sample %r, submitted for sample %r: dropped", job_id,
                      header["sample_id"], pending.job.sample_id)
            return
        common = dict(timings=header.get("timings") or {}, batch_size=header.get("batch_size", 1),
                      latency_s=now - pending.submitted)
        if header.get("ok") and len(frames) == 2:
            result = SynthesisResult(job_id, pending.job.sample_id, True, image_png=frames[1],
                                     boxes_verified=bool(header.get("boxes_verified")), **common)
            self._finish(job_id, result, "completed")
        else:
            err = header.get("error") or {}
            code = err.get("code", "bad_message") if isinstance(err, dict) else "bad_message"
            result = SynthesisResult(job_id, pending.job.sample_id, False, error_code=code,
                                     error_message=str(err.get("message") if isinstance(err, dict) else err), **common)
            self._finish(job_id, result, "failed")
            if code == "overloaded":
                self._counts["overloaded"] += 1

    def _finish(self, job_id: str, result: SynthesisResult, counter: str) -> None:
        """Moves a job from pending to done exactly once. Caller holds the lock."""
        self._pending.pop(job_id, None)
        self._finished[job_id] = None
        while len(self._finished) > self._remember:
            self._finished.popitem(last=False)
        self._done[job_id] = result
        self._counts[counter] += 1
        self._cond.notify_all()

    def _read_monitor(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] in (zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_SUCCEEDED):
                with self._lock:
                    self._link_up = True
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                # The server answers on the connection a request came in on; once it is gone, no reply to
                # anything already sent can arrive, and nothing unsent can go out (immediate=True), so fail every
                # pending job now instead of at its deadline.
                with self._lock:
                    self._link_up = False
                    lost = self._lose([*self._pending], f"connection to {self.address} dropped with the job pending")
                if lost:
                    log.debug("connection lost with %d jobs pending", lost)

    def _lose(self, job_ids: list[str], message: str) -> int:
        """Ends these pending jobs as connection_lost (counted once, as failed). Caller holds the lock."""
        now = time.monotonic()
        for job_id in job_ids:
            p = self._pending[job_id]
            self._finish(job_id, SynthesisResult(job_id, p.job.sample_id, False, error_code="connection_lost",
                                                 error_message=message, latency_s=now - p.submitted), "failed")
            self._counts["connection_lost"] += 1
        return len(job_ids)

    def _expire(self, now: float) -> None:
        with self._lock:
            for job_id in [j for j, p in self._pending.items() if p.deadline <= now]:
                p = self._pending[job_id]
                self._finish(job_id, SynthesisResult(
                    job_id, p.job.sample_id, False, error_code="timeout",
                    error_message=f"no result within timeout_s={self.timeout_s}", latency_s=now - p.submitted),
                    "timed_out")

    def _update_server_up(self, now: float) -> None:
        with self._lock:
            last = self._last_reply if self._last_reply is not None else self._started
            up = (now - last) <= self.server_down_after_s
            if self._last_reply is None and up:
                return  # still starting: unknown, not down
            was, self._server_up = self._server_up, up
            in_flight = len(self._pending)
        if was is not False and not up and not self._warned_down:
            self._warned_down = True
            log.warning("synthesis server at %s has not answered for %.1f s; training goes on with the current "
                        "images (%d jobs in flight will time out; new jobs are refused until it is back)",
                        self.address, now - last, in_flight)
        elif was is False and up:
            self._warned_down = False
            log.info("synthesis server at %s answers again", self.address)
