"""The router thread of the data server: the only thread that touches the ROUTER socket.

It parses and validates every request (header limits, fields, the image's structure: synth_torch.image_check,
all bounded work), admits synthesize jobs against the byte budgets (synth_torch.admission), answers ping, stats,
shutdown and every error itself, and forwards the worker's replies. It never waits: sends are non-blocking, and
a reply the client's connection will not take yet waits in a per-client outbox (counted in the budgets) that is
retried every few milliseconds. When a client's connection closes (synth_torch.peers), its queued jobs are
dropped unrun and everything held for it is released.
"""
from __future__ import annotations

import collections
import hmac
import itertools
import logging
import threading
import time
from typing import Callable

import zmq

from syngrpo_jax.protocol import synthesis as proto
from synth_torch.admission import AdminGate, Ledger, reply_reserve
from synth_torch.image_check import sniff_image
from synth_torch.job_queue import JobQueue
from synth_torch.peers import Peers
from synth_torch.pipeline import Job
from synth_torch.stats import ServerStats
from synth_torch.worker import unpack_token

log = logging.getLogger("synth_torch.server")

_BURST = 256  # requests read per turn, so replies and disconnects are handled between bursts of requests


class Router:
    """Runs on one thread: `run()` until `stop` is set; then `answer_queued()`, and `finish()` once the worker
    is done (SynthServer orders the three)."""

    def __init__(self, *, sock: zmq.Socket, peers: Peers, pull: zmq.Socket, queue: JobQueue[Job], ledger: Ledger,
                 stats: ServerStats, limits: proto.Limits, admin_token: str | None, admin_gate: AdminGate,
                 stop: threading.Event, describe: Callable[[], dict], backend: str):
        self.sock, self.peers, self.pull, self.queue, self.ledger = sock, peers, pull, queue, ledger
        self.stats, self.limits, self.stop, self.describe, self.backend = stats, limits, stop, describe, backend
        self.admin_token, self.admin_gate = admin_token, admin_gate
        self.ready = True
        self._jobs: dict[int, tuple[Job, int, int]] = {}  # token -> (job, request bytes, reply reserve)
        self._tokens = itertools.count(1)
        self._outbox: dict[bytes, collections.deque] = {}  # identity -> [(frames, nbytes, reserved)]

    # ---- loop ------------------------------------------------------------------------------------------------

    def run(self) -> None:
        poller = zmq.Poller()
        for s in (self.sock, self.pull, self.peers.monitor):
            poller.register(s, zmq.POLLIN)
        while not self.stop.is_set():
            events = dict(poller.poll(5 if self._outbox else 100))
            if self.peers.monitor in events:
                self._drop_clients(self.peers.drain())
            if self.pull in events:
                self.forward_results()
            if self.sock in events:
                self._receive_burst()
            self._flush()

    def _receive_burst(self) -> None:
        for _ in range(_BURST):
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            received = time.perf_counter()
            self._drop_clients(self.peers.drain())  # the events before this message, so `seen` ties it right
            identity = frames[0].bytes
            if not self.peers.seen(identity, frames[0].get(zmq.SRCFD)):
                self.stats.add("dropped_gone")  # its sender's connection closed already: no one to answer
                continue
            # The header as bytes; an image frame as a view of ZeroMQ's buffer (no copy on this thread).
            self.handle(identity, [f.bytes if i == 0 else f.buffer for i, f in enumerate(frames[1:])], received)
            if self.stop.is_set():
                return

    def answer_queued(self) -> None:
        """Stopping, first: queued jobs are answered `shutting_down`."""
        self.queue.close()
        for job in self.queue.drain():
            self._release(job.token)
            self._send_error(job.identity, "synthesize", job.request.request_id,
                             proto.ProtocolError("shutting_down", "the server stopped before this job ran"),
                             job_id=job.request.job_id, sample_id=job.request.sample_id)

    # ---- requests ----------------------------------------------------------------------------------------------

    def handle(self, identity: bytes, frames: list[bytes], received: float) -> None:
        op = request_id = None
        echo = {}
        try:
            header = self._header(frames)
            op, request_id, echo = _echo(header, self.limits)  # echoed even if validation fails below
            op, request_id = proto.validate_envelope(header, self.limits)
            if op != "synthesize" and len(frames) != 1:
                raise proto.ProtocolError("bad_message", f"op {op!r} takes one frame, got {len(frames)}")
            if op == "synthesize":
                self._admit(identity, header, frames, received)
            elif op in ("ping", "stats"):
                proto.validate_plain(header)
                fields = dict(ready=self.ready, backend=self.backend) if op == "ping" else dict(stats=self.describe())
                self._send(identity, [proto.pack(proto.reply_header(op, request_id, True, **fields))])
            else:
                self._shutdown(identity, header, request_id)
        except proto.ProtocolError as e:
            self.stats.add("overloaded" if e.code == "overloaded" else "rejected")
            self._send_error(identity, op, request_id, e, **echo)
        except Exception as e:  # a bug must cost one reply, not the service
            log.exception("router failed on a request")
            self.stats.add("rejected")
            self._send_error(identity, op, request_id, proto.ProtocolError("internal", f"{type(e).__name__}: {e}"),
                             **echo)

    def _header(self, frames: list[bytes]) -> dict:
        if not frames or len(frames) > 2:
            raise proto.ProtocolError(
                "bad_message", f"message has {len(frames)} frames; expected [header] or [header, image]")
        size = sum(len(f) for f in frames)
        if size > self.limits.max_message_bytes:
            raise proto.ProtocolError(
                "limit_exceeded", f"message is {size} bytes, over max_message_bytes={self.limits.max_message_bytes}",
                limit="max_message_bytes")
        return proto.unpack_header(frames[0], self.limits)

    def _admit(self, identity: bytes, header: dict, frames: list[bytes], received: float) -> None:
        request = proto.validate_synthesize(header, self.limits)
        if len(frames) != 2:
            raise proto.ProtocolError("bad_message", "synthesize needs an image frame after the header", field="image")
        _, width, height = sniff_image(frames[1], self.limits)
        if len(self.queue) >= self.queue.capacity:
            raise proto.ProtocolError(
                "overloaded", f"job queue is full (queue_size={self.queue.capacity} waiting); retry later",
                limit="queue_size")
        nbytes, reserve = len(frames[0]) + len(frames[1]), reply_reserve(width, height)
        self.ledger.admit(identity, nbytes, reserve)  # raises `overloaded` naming the budget
        job = Job(identity, request, frames[1], width, height, received, token=next(self._tokens))
        self._jobs[job.token] = (job, nbytes, reserve)
        if not self.queue.try_put(job):  # closed: the server is stopping
            self._release(job.token)
            raise proto.ProtocolError("shutting_down", "the server is stopping")
        self.stats.add("accepted")

    def _shutdown(self, identity: bytes, header: dict, request_id: str) -> None:
        token = proto.validate_shutdown(header, self.limits)
        if not self.admin_token:
            raise proto.ProtocolError("unauthorized", "shutdown is disabled: the server has no admin token")
        wait = self.admin_gate.wait_s()
        if wait > 0:
            self.stats.add("unauthorized_throttled")
            raise proto.ProtocolError("unauthorized", f"shutdown refused unchecked: a wrong admin token was tried "
                                      f"recently; retry in {wait:.2f} s", field="token")
        if not hmac.compare_digest(token.encode(), self.admin_token.encode()):
            self.admin_gate.failed()
            self.stats.add("unauthorized")
            raise proto.ProtocolError("unauthorized", "shutdown refused: wrong admin token", field="token")
        self._send(identity, [proto.pack(proto.reply_header("shutdown", request_id, True))])
        log.info("authenticated shutdown request")
        self.stop.set()

    # ---- replies ----------------------------------------------------------------------------------------------

    def forward_results(self) -> None:
        while True:
            try:
                token, *frames = self.pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            job = self._release(unpack_token(token))
            if job is not None:
                self._send(job.identity, frames, reserved=True)

    def finish(self) -> None:
        """Stopping, last (after the worker was joined): its last replies are forwarded, best effort."""
        self.forward_results()
        self._flush()

    def _release(self, token: int) -> Job | None:
        entry = self._jobs.pop(token, None)
        if entry is None:
            return None
        job, nbytes, reserve = entry
        self.ledger.release(job.identity, nbytes, reserve)
        return job

    def _send_error(self, identity, op, request_id, err: proto.ProtocolError, **fields) -> None:
        self._send(identity, [proto.pack(proto.error_header(op, request_id, err, **fields))])

    def _send(self, identity: bytes, frames: list[bytes], *, reserved: bool = False) -> None:
        """Hands a reply to ZeroMQ, or parks it in the client's outbox (behind earlier ones: order is kept).
        reserved: a job reply whose bytes were reserved at admission; other replies must fit the budget or are
        dropped (a client that never reads cannot grow the outbox with error replies)."""
        nbytes = sum(len(f) for f in frames)
        if identity not in self._outbox and self._hand(identity, frames, nbytes):
            return
        if self.ledger.hold(identity, nbytes, reserved=reserved):
            self._outbox.setdefault(identity, collections.deque()).append((frames, nbytes))
        else:
            self.stats.add("reply_dropped")

    def _hand(self, identity: bytes, frames: list[bytes], nbytes: int) -> bool:
        """True when the message is dealt with (sent, or its client is gone); False when ZeroMQ's pipe is full."""
        try:
            self.sock.send_multipart([identity, *frames], zmq.NOBLOCK)
        except zmq.Again:
            return False
        except zmq.ZMQError as e:
            self.stats.add("reply_dropped")
            if e.errno == zmq.EHOSTUNREACH:  # the client left before its DISCONNECTED event was read
                self.peers.forget(identity)
                self._drop_clients({identity})
            else:
                log.warning("reply dropped: %s", e)
            return True
        self.ledger.handed(identity, nbytes)
        return True

    def _flush(self) -> None:
        for identity in list(self._outbox):
            box = self._outbox.get(identity)
            while box:
                frames, nbytes = box[0]
                if not self._hand(identity, frames, nbytes):
                    break
                if identity not in self._outbox:  # the client was found gone (its whole outbox is dropped)
                    break
                box.popleft()
                self.ledger.unhold(identity, nbytes)
            if not box and self._outbox.get(identity) is box:
                del self._outbox[identity]

    def _drop_clients(self, identities: set[bytes]) -> None:
        """Their connections closed: drop their queued jobs unrun, their outboxes, and their byte counts."""
        if not identities:
            return
        dropped = self.queue.remove(lambda job: job.identity in identities)
        for job in dropped:
            self._release(job.token)
        for identity in identities:
            self._outbox.pop(identity, None)
            self.ledger.forget(identity)
        if dropped:
            self.stats.add("dropped_disconnected", len(dropped))
            log.info("dropped %d queued jobs of %d departed clients", len(dropped), len(identities))


def _echo(header: dict, limits: proto.Limits) -> tuple[str | None, str | None, dict]:
    """op, id and the job's ids as far as they are well-formed, for the error reply of an invalid request."""
    op = header.get("op") if header.get("op") in proto.OPS else None
    rid = header.get("id")
    request_id = rid if isinstance(rid, str) and len(rid) <= limits.max_id_chars else None
    echo = {}
    for k in ("job_id", "sample_id"):
        v = header.get(k)
        if (isinstance(v, str) and len(v) <= limits.max_id_chars) or (
                isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63):
            echo[k] = v
    return op, request_id, echo
