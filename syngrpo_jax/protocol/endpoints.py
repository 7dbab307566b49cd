"""The server side of every ZeroMQ service here (the data server, the rollout worker): where it may bind, its
CURVE keys, the ready file launchers wait for, and dying with the launcher. No jax, no torch.

Policy: loopback by default; any other address needs a CURVE key pair (clients then need the public key, see
`curve_keys`), optionally restricted to the client keys in a directory.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import sys
from typing import Callable

import zmq

from syngrpo_jax.protocol import curve_keys

log = logging.getLogger(__name__)


class BindRefused(RuntimeError):
    """The configured address is not loopback and no CURVE keys were given."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # "*", interface names and host names are not loopback


def check_bind(host: str, keys: tuple[bytes, bytes] | None, *, how_to: str) -> None:
    """Refuses a non-loopback `host` without CURVE `keys`; `how_to` says which setting takes the key file."""
    if not is_loopback(host) and keys is None:
        raise BindRefused(
            f"refusing to bind {host!r}: it is not a loopback address, and serving beyond this machine requires "
            "ZeroMQ CURVE keys. Generate them with `python -m syngrpo_jax.protocol.curve_keys --out_dir=KEYS` and "
            f"{how_to} (clients then need KEYS/server.key).")


def bind_router(ctx: zmq.Context, host: str, port: int, keys: tuple[bytes, bytes] | None, *,
                authorized_clients_dir: str | None = None, max_message_bytes: int, rcvhwm: int = 64,
                sndhwm: int = 1000, router_mandatory: bool = False,
                before_bind: Callable[[zmq.Socket], None] | None = None):
    """A ROUTER socket bound to tcp://host:port (0: any free port), CURVE server if `keys`. Returns
    (socket, endpoint, authenticator or None). Frames over 2 * max_message_bytes disconnect their sender.
    router_mandatory: sends to a full pipe raise EAGAIN and to a departed peer EHOSTUNREACH, instead of being
    dropped silently. before_bind(socket): e.g. attach a socket monitor that must see every connection."""
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 500
    sock.rcvhwm = rcvhwm
    sock.sndhwm = sndhwm
    sock.router_mandatory = router_mandatory
    sock.maxmsgsize = 2 * max_message_bytes
    auth = None
    if keys is not None:
        public, secret = keys
        if authorized_clients_dir:
            from zmq.auth.thread import ThreadAuthenticator

            auth = ThreadAuthenticator(ctx, log=logging.getLogger(f"{__name__}.auth"))
            auth.start()
            auth.configure_curve(domain="*", location=str(authorized_clients_dir))
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True
    if before_bind is not None:
        before_bind(sock)
    if ":" in host:
        sock.ipv6 = True
        host = f"[{host.strip('[]')}]"
    sock.bind(f"tcp://{host}:{int(port) if port else '*'}")
    return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT), auth


def load_server_keys(secret_key_file: str | None) -> tuple[bytes, bytes] | None:
    return curve_keys.load_secret_keypair(secret_key_file) if secret_key_file else None


def write_ready_file(path: str, info: dict) -> None:
    """Atomically publish {endpoint, pid, ...} for a launcher polling for it."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.replace(tmp, path)


def exit_with_parent(env_var: str) -> None:
    """If a launcher asked (its pid in `env_var`), get SIGTERM when it dies (Linux), so a SIGKILLed trainer leaves
    no orphan service holding a device; a parent already gone before this point is caught by comparing pids."""
    parent = os.environ.get(env_var)
    if not parent:
        return
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):
        log.error("launcher %s is gone; exiting", parent)
        sys.exit(1)
