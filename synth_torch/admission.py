"""Admission control of the data server: what one client, and all clients together, may make it hold in memory.

Memory is bounded by bytes, not message counts (a 12 KB request can ask for a 10 MB reply):

    queued request bytes   every job's frames from admission until its reply is handed on (queued or running),
                           in total <= memory.max_queued_bytes
    reply bytes            per client: for each of its jobs queued or running, the most its reply can take
                           (`reply_reserve`, fixed by the image size before the job runs); replies waiting for its
                           connection (ZeroMQ would not take more: see below); and the last reply_hwm + 1 messages
                           handed to ZeroMQ for it (they may still sit in its pipe or encoder). Per client
                           <= memory.max_client_reply_bytes, over all clients <= memory.max_reply_bytes.

A job that does not fit is refused with `overloaded` naming the budget, before it is queued. The ROUTER socket
holds at most reply_hwm messages per connection (ROUTER_MANDATORY turns a full pipe into EAGAIN instead of a
silent drop); what it will not take waits in the server's own outbox, counted above. Hence

    RSS <= idle RSS + max_queued_bytes + max_reply_bytes + the worker's working set for one batch

(`memory_bound_bytes` computes the first three). A client whose connection closes is forgotten at once: its
queued jobs are dropped unrun and its counts released (synth_torch.peers tells the router).

The Ledger is used by the router thread only (no lock).
"""
from __future__ import annotations

import collections
import dataclasses
import time

from syngrpo_jax.protocol.synthesis import ProtocolError

_REPLY_OVERHEAD = 4096  # the reply header (timings, ids) and the PNG's chunk framing


def deflate_bound(n: int) -> int:
    """zlib's compressBound: the most a zlib stream of n input bytes can take at any level."""
    return n + (n >> 12) + (n >> 14) + (n >> 25) + 13


def reply_reserve(width: int, height: int) -> int:
    """Upper bound on the bytes of a synthesize reply for a width x height image: an RGB PNG written by
    pipeline.encode_png (one filter byte per row, one zlib stream) plus the header frame."""
    return deflate_bound(height * (3 * width + 1)) + _REPLY_OVERHEAD


def largest_reply(max_image_pixels: int) -> int:
    """reply_reserve of the worst image shape within max_image_pixels (one pixel wide: a filter byte per pixel)."""
    return reply_reserve(1, max_image_pixels)


@dataclasses.dataclass
class _Client:
    queued: int = 0  # request bytes of its jobs queued or running
    reserved: int = 0  # reply_reserve of its jobs queued or running
    waiting: int = 0  # bytes of its replies in the outbox (ZeroMQ's pipe to it was full)
    handed: collections.deque = dataclasses.field(default_factory=collections.deque)  # last messages to ZeroMQ

    def reply_bytes(self) -> int:
        return self.reserved + self.waiting + sum(self.handed)


class Ledger:
    """Byte counts per client (ROUTER identity) and in total; see the module docstring."""

    def __init__(self, *, max_queued_bytes: int, max_reply_bytes: int, max_client_reply_bytes: int, reply_hwm: int):
        self.max_queued_bytes, self.max_reply_bytes = int(max_queued_bytes), int(max_reply_bytes)
        self.max_client_reply_bytes, self.reply_hwm = int(max_client_reply_bytes), int(reply_hwm)
        self._clients: dict[bytes, _Client] = {}
        self.queued_total = 0
        self.reply_total = 0

    @classmethod
    def from_config(cls, memory_cfg) -> "Ledger":
        return cls(max_queued_bytes=memory_cfg.max_queued_bytes, max_reply_bytes=memory_cfg.max_reply_bytes,
                   max_client_reply_bytes=memory_cfg.max_client_reply_bytes, reply_hwm=memory_cfg.reply_hwm)

    def _client(self, identity: bytes) -> _Client:
        c = self._clients.get(identity)
        if c is None:
            c = self._clients[identity] = _Client()
        return c

    def admit(self, identity: bytes, request_bytes: int, reserve: int) -> None:
        """Counts a job in, or raises `overloaded` naming the budget it would break."""
        c = self._client(identity)
        for used, limit, name, what in (
                (self.queued_total + request_bytes, self.max_queued_bytes, "max_queued_bytes", "queued requests"),
                (c.reply_bytes() + reserve, self.max_client_reply_bytes, "max_client_reply_bytes",
                 "this client's unread and pending replies"),
                (self.reply_total + reserve, self.max_reply_bytes, "max_reply_bytes", "all clients' replies")):
            if used > limit:
                raise ProtocolError("overloaded", f"{what} would take {used} bytes, over {name}={limit}; read "
                                    "your replies or retry later", limit=name)
        c.queued += request_bytes
        c.reserved += reserve
        self.queued_total += request_bytes
        self.reply_total += reserve

    def release(self, identity: bytes, request_bytes: int, reserve: int) -> None:
        """A job left the queue or the worker (its reply, if any, is accounted by `hold` / `handed` next)."""
        c = self._clients.get(identity)
        if c is not None:
            c.queued -= request_bytes
            c.reserved -= reserve
            self.queued_total -= request_bytes
            self.reply_total -= reserve

    def hold(self, identity: bytes, nbytes: int, *, reserved: bool) -> bool:
        """A reply waits in the outbox. reserved: it replaces a reservation just released (always fits);
        otherwise (errors, pings) it must fit the budgets, and False means: drop it."""
        c = self._client(identity)
        if not reserved and (c.reply_bytes() + nbytes > self.max_client_reply_bytes
                             or self.reply_total + nbytes > self.max_reply_bytes):
            return False
        c.waiting += nbytes
        self.reply_total += nbytes
        return True

    def unhold(self, identity: bytes, nbytes: int) -> None:
        c = self._clients.get(identity)
        if c is not None:
            c.waiting -= nbytes
            self.reply_total -= nbytes

    def handed(self, identity: bytes, nbytes: int) -> None:
        """ZeroMQ took a message for this client: it counts until reply_hwm + 1 later messages got through (the
        pipe holds reply_hwm, the encoder one) or the client goes."""
        c = self._client(identity)
        c.handed.append(nbytes)
        self.reply_total += nbytes
        while len(c.handed) > self.reply_hwm + 1:
            self.reply_total -= c.handed.popleft()

    def forget(self, identity: bytes) -> None:
        """The client's connection closed: nothing of it is held any more (the caller dropped its jobs)."""
        c = self._clients.pop(identity, None)
        if c is not None:
            self.queued_total -= c.queued
            self.reply_total -= c.reserved + c.waiting + sum(c.handed)

    def idle(self, identity: bytes) -> bool:
        c = self._clients.get(identity)
        return c is None or not (c.queued or c.reserved or c.waiting or c.handed)

    def snapshot(self) -> dict:
        return {"queued_bytes": self.queued_total, "reply_bytes": self.reply_total, "clients": len(self._clients)}


def check_memory_config(memory_cfg, limits) -> None:
    """Refuses budgets that could never admit a job of the largest allowed size, naming the fields."""
    one = largest_reply(limits.max_image_pixels)
    need = (int(memory_cfg.reply_hwm) + 2) * one
    for name in ("reply_hwm", "request_hwm"):
        if int(memory_cfg[name]) < 1:
            raise ValueError(f"config.memory.{name}={memory_cfg[name]} must be at least 1")
    if int(memory_cfg.max_queued_bytes) < limits.max_message_bytes:
        raise ValueError(f"config.memory.max_queued_bytes={memory_cfg.max_queued_bytes} is below "
                         f"limits.max_message_bytes={limits.max_message_bytes}: a full-size job could never queue")
    for name in ("max_client_reply_bytes", "max_reply_bytes"):
        if int(memory_cfg[name]) < need:
            raise ValueError(
                f"config.memory.{name}={memory_cfg[name]} is below {need} bytes = (reply_hwm + 2) x the largest "
                f"reply ({one} bytes for limits.max_image_pixels={limits.max_image_pixels}): a client could be "
                "refused forever; raise it or lower max_image_pixels")
    if int(memory_cfg.max_client_reply_bytes) > int(memory_cfg.max_reply_bytes):
        raise ValueError(f"config.memory.max_client_reply_bytes={memory_cfg.max_client_reply_bytes} exceeds "
                         f"config.memory.max_reply_bytes={memory_cfg.max_reply_bytes}")


def memory_bound_bytes(memory_cfg) -> int:
    """The server's RSS above idle, not counting the worker's working set for the batch it runs (see above)."""
    return int(memory_cfg.max_queued_bytes) + int(memory_cfg.max_reply_bytes)


class AdminGate:
    """Throttles admin-token guesses: after a wrong token, no token is compared for `interval_s`, for all clients
    together (a per-client limit would be void: identities are free). Attempts in between are refused unchecked,
    so guessing runs at 1 / interval_s per second instead of as fast as the router can answer."""

    def __init__(self, interval_s: float, clock=time.monotonic):
        self.interval_s, self._clock, self._next = float(interval_s), clock, float("-inf")

    def wait_s(self) -> float:
        """0.0 if a token may be compared now, else the seconds until one may."""
        return max(0.0, self._next - self._clock())

    def failed(self) -> None:
        self._next = self._clock() + self.interval_s
