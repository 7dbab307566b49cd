"""The trainer's connection to a vLLM rollout worker: start one as a subprocess, or reach one at an address.

`WorkerClient.call` sends one request and waits for its reply, watching the subprocess meanwhile: a worker that
dies or stops answering raises `WorkerError`, which names the worker (endpoint, pid, log) so the trainer's error
says which process failed. An error reply raises `WorkerReplyError` (the worker is fine; the request was not).
"""
from __future__ import annotations

import os
import secrets
import time
import uuid
from pathlib import Path

import zmq

from syngrpo_jax.protocol import curve_keys
from syngrpo_jax.protocol import rollout as proto
from syngrpo_jax.service_process import REPO_ROOT, ServiceProcess, start_service

DEFAULT_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"


class WorkerError(RuntimeError):
    """The worker died, could not start, or did not answer in time."""


class WorkerReplyError(RuntimeError):
    """The worker answered with an error (code, message, field)."""

    def __init__(self, op: str, error: dict):
        self.code, self.field = error.get("code"), error.get("field")
        super().__init__(f"rollout worker refused {op}: [{self.code}] {error.get('message')}")


def worker_python(configured: str = "") -> str:
    """The worker venv's python: the configured one, or the repository's .venv-vllm (what `make setup` builds)."""
    python = Path(os.path.expanduser(configured)) if configured else DEFAULT_PYTHON
    if not python.is_file():
        raise FileNotFoundError(
            f"rollout.vllm.python={str(python)!r} does not exist: build the vLLM environment with `make setup` "
            "(it creates .venv-vllm) or point rollout.vllm.python at a python that has vllm installed")
    return str(python)


class WorkerClient:
    """A DEALER socket to one worker. `process`: the ServiceProcess when this trainer started it."""

    def __init__(self, endpoint: str, *, server_public_key: str | bytes | None = None,
                 process: ServiceProcess | None = None, admin_token: str | None = None):
        self.endpoint, self.process, self.admin_token = endpoint, process, admin_token
        self._server_key = curve_keys.load_public_key(server_public_key) if server_public_key else None
        self._ctx = zmq.Context.instance()
        self._sock = None
        self._connect()

    def _connect(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
        sock = self._ctx.socket(zmq.DEALER)
        sock.linger = 0
        if self._server_key is not None:
            sock.curve_serverkey = self._server_key
            sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
        sock.connect(self.endpoint)
        self._sock = sock

    def describe(self) -> str:
        if self.process is None:
            return f"rollout worker at {self.endpoint}"
        return f"rollout worker at {self.endpoint} (pid {self.process.pid}, log {self.process.log_path})"

    def alive(self) -> bool:
        return self.process is None or self.process.alive()

    def call(self, op: str, frames=(), *, timeout_s: float = 60.0, **fields) -> tuple[dict, list]:
        """One request -> (reply header, reply frames). Raises WorkerError / WorkerReplyError."""
        request_id = uuid.uuid4().hex
        self._sock.send_multipart([proto.pack(proto.request_header(op, request_id, **fields)), *frames],
                                  copy=False)
        deadline = time.monotonic() + timeout_s
        while True:
            if self._sock.poll(200):
                reply = self._sock.recv_multipart()
                header = proto.unpack_reply(reply[0])
                if header.get("id") != request_id:
                    continue  # the late answer to a request that timed out before
                if not header.get("ok"):
                    raise WorkerReplyError(op, header.get("error") or {})
                return header, reply[1:]
            if not self.alive():
                code = self.process.process.returncode
                raise WorkerError(f"{self.describe()} died (exit code {code}) during {op}\n--- its log, last "
                                  f"lines ---\n{self.process.log(1500)}")
            if time.monotonic() > deadline:
                self._connect()  # a fresh socket: a late reply must not be taken for the next request's
                raise WorkerError(f"{self.describe()} did not answer {op} within {timeout_s} s")

    def stop(self) -> None:
        if self.process is not None:
            def shutdown():
                self.call("shutdown", timeout_s=5.0, token=self.admin_token)

            self.process.stop(shutdown if self.process.alive() else None)
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None


def ping(endpoint: str, timeout_s: float = 2.0, server_public_key=None) -> dict | None:
    """The ping reply of the worker at `endpoint`, or None."""
    client = WorkerClient(endpoint, server_public_key=server_public_key)
    try:
        return client.call("ping", timeout_s=timeout_s)[0]
    except (WorkerError, WorkerReplyError, proto.ProtocolError):
        return None
    finally:
        client.stop()


def launch_worker(model_dir: str, *, python: str = "", args: dict | None = None, log_path: str | None = None,
                  startup_timeout_s: float = 600.0, extra_env: dict | None = None) -> WorkerClient:
    """Starts `python -m syngrpo_jax.rollout.vllm_worker --model=model_dir --k=v...` on loopback (any free
    port), waits until it answers, and returns a client that owns it (it also dies with this process)."""
    command = [worker_python(python), "-m", "syngrpo_jax.rollout.vllm_worker", f"--model={model_dir}",
               "--bind_address=127.0.0.1", "--port=0"]
    command += [f"--{k}={v}" for k, v in (args or {}).items() if v is not None]
    token = secrets.token_urlsafe(24)
    service = start_service(
        "vllm rollout worker", command, parent_pid_env=proto.PARENT_PID_ENV,
        ping=lambda endpoint: ping(endpoint, 1.0) is not None, log_path=log_path,
        extra_env={proto.ADMIN_TOKEN_ENV: token, **(extra_env or {})}, startup_timeout_s=startup_timeout_s)
    return WorkerClient(service.endpoint, process=service, admin_token=token)


__all__ = ["WorkerClient", "WorkerError", "WorkerReplyError", "launch_worker", "ping", "worker_python"]
