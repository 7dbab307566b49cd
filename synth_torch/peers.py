"""Which clients of the ROUTER socket are still connected, so the server can drop the work of those that left.

ZeroMQ's ROUTER does not say when a peer goes (ROUTER_NOTIFY is a draft API, absent from released libzmq). Two
facts that it does give are enough:

  - the socket monitor reports ACCEPTED and DISCONNECTED with the connection's file descriptor, in order;
  - every received message carries the descriptor it arrived on (the SRCFD message property).

A descriptor number is reused once closed, so each ACCEPTED opens a new *generation* of that descriptor. A
message is tied to the generation that is current when it is read, after draining the monitor: libzmq emits
ACCEPTED before it reads anything from the new connection, so the events before the message have been drained
by then. On DISCONNECTED, the identities seen on that generation are gone. The one race left is harmless: a
message of a peer that has already gone, read after the descriptor was reused, is tied to the new generation;
its job runs and its reply finds no route (ROUTER_MANDATORY reports that, and the router forgets it then).
"""
from __future__ import annotations

import zmq
from zmq.utils.monitor import recv_monitor_message


class Peers:
    """Owned by the router thread, like the socket it watches."""

    def __init__(self, router: zmq.Socket):
        self.monitor = router.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self._router = router
        self._generation: dict[int, int] = {}  # fd -> generation of its current connection
        self._open: set[int] = set()  # fds with a connection now
        self._on: dict[tuple[int, int], set[bytes]] = {}  # (fd, generation) -> identities seen on it
        self.connections = 0  # open connections (for stats)

    def drain(self) -> set[bytes]:
        """Reads the monitor's events; returns the identities whose connection has closed since the last call."""
        gone: set[bytes] = set()
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return gone
            fd = int(event["value"])
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._generation[fd] = self._generation.get(fd, 0) + 1
                self._open.add(fd)
            elif fd in self._open:  # DISCONNECTED
                self._open.discard(fd)
                gone |= self._on.pop((fd, self._generation[fd]), set())
            self.connections = len(self._open)

    def seen(self, identity: bytes, fd: int) -> bool:
        """Ties a message's identity to its connection (call after `drain`); False if that connection is known
        to have closed already (the message's sender is gone: drop it)."""
        if fd < 0 or fd not in self._generation:  # no descriptor (inproc) or not accepted through the monitor
            return True
        if fd not in self._open:
            return False
        self._on.setdefault((fd, self._generation[fd]), set()).add(identity)
        return True

    def forget(self, identity: bytes) -> None:
        """Stops tracking an identity (its reply found no route: it left without a DISCONNECTED seen yet)."""
        for ids in self._on.values():
            ids.discard(identity)

    def close(self) -> None:
        try:
            self._router.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(linger=0)
