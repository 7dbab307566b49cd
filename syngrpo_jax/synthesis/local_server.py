"""Start a data server on this machine as a subprocess, wait until it answers, stop it on exit.

    with start_local_server("procedural") as server:           # configs/synth.py:procedural, any free port
        client = SynthesisClient(server.endpoint)
        ...
    # on exit: an authenticated shutdown, then terminate, then kill

`overrides` are config fields, e.g. {"model.base_dir": "/m/base", "queue_size": 8}. The helper generates a random
admin token, hands it to the server through the environment (not the command line, which `ps` shows) and keeps
it for the shutdown. The server's log goes to `server.log_path`.
"""
from __future__ import annotations

import os
import secrets
import sys
import uuid
from pathlib import Path

import zmq

from syngrpo_jax.protocol import synthesis as proto
from syngrpo_jax.service_process import REPO_ROOT, ServiceProcess, start_service

PARENT_PID_ENV = "SYNGRPO_SYNTH_PARENT_PID"  # synth_torch.server reads it (a name, not an import: no torch here)

ADMIN_TOKEN_ENV = "SYNGRPO_SYNTH_ADMIN_TOKEN"  # read by synth_torch.server
DEFAULT_CONFIG_FILE = REPO_ROOT / "configs" / "synth.py"


def request(endpoint: str, header: dict, timeout_s: float = 2.0, server_public_key: bytes | None = None) -> dict | None:
    """One request on a fresh DEALER; the reply header, or None if none came within timeout_s."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        if server_public_key is not None:
            sock.curve_serverkey = server_public_key
            sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
        sock.connect(endpoint)
        sock.send(proto.pack(header))
        if sock.poll(int(timeout_s * 1000)):
            try:
                return proto.unpack_reply(sock.recv_multipart()[0])
            except proto.ProtocolError:
                return None
        return None
    finally:
        sock.close()


def ping(endpoint: str, timeout_s: float = 2.0, server_public_key: bytes | None = None) -> bool:
    reply = request(endpoint, proto.request_header("ping", uuid.uuid4().hex), timeout_s, server_public_key)
    return bool(reply and reply.get("ok"))


class LocalServer:
    """A running server subprocess. `endpoint`, `port`, `admin_token`, `process`, `log_path`."""

    def __init__(self, service: ServiceProcess, admin_token: str):
        self.service, self.admin_token = service, admin_token
        self.process, self.endpoint, self.log_path = service.process, service.endpoint, service.log_path
        self.port = int(self.endpoint.rsplit(":", 1)[1])

    def alive(self) -> bool:
        return self.service.alive()

    def ping(self, timeout_s: float = 2.0) -> bool:
        return self.alive() and ping(self.endpoint, timeout_s)

    def stats(self, timeout_s: float = 5.0) -> dict | None:
        reply = request(self.endpoint, proto.request_header("stats", uuid.uuid4().hex), timeout_s)
        return reply.get("stats") if reply and reply.get("ok") else None

    def log(self) -> str:
        return self.service.log()

    def kill(self) -> None:
        """SIGKILL, no cleanup (for crash tests)."""
        self.service.kill()

    def stop(self, timeout_s: float = 10.0) -> int:
        """Authenticated shutdown, then SIGTERM, then SIGKILL; returns the exit code."""
        shutdown = lambda: request(  # noqa: E731
            self.endpoint, proto.request_header("shutdown", uuid.uuid4().hex, token=self.admin_token), 2.0)
        return self.service.stop(shutdown, timeout_s)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_local_server(config: str = "procedural", *, overrides: dict | None = None, port: int | None = None,
                       config_file: str | os.PathLike | None = None, startup_timeout_s: float = 120.0,
                       env: dict | None = None, python: str | None = None) -> LocalServer:
    """Runs `python -m synth_torch.server --config=<config_file>:<config>` and waits until it answers ping.

    port None/0 picks a free port (the server binds port 0 and reports the one it got). Raises RuntimeError with
    the server's log if it exits or does not answer within startup_timeout_s.
    """
    config_file = Path(config_file or DEFAULT_CONFIG_FILE).resolve()
    args = [python or sys.executable, "-m", "synth_torch.server", f"--config={config_file}:{config}",
            f"--config.port={int(port or 0)}"]
    for key, value in (overrides or {}).items():
        if value is not None:
            args.append(f"--config.{key}={value}")
    token = secrets.token_urlsafe(24)
    service = start_service("synthesis server", args, parent_pid_env=PARENT_PID_ENV,
                            ping=lambda endpoint: ping(endpoint, 1.0), env=env, extra_env={ADMIN_TOKEN_ENV: token},
                            startup_timeout_s=startup_timeout_s, cwd=REPO_ROOT)
    return LocalServer(service, token)
