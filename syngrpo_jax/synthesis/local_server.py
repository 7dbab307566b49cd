"""Start a data server on this machine as a subprocess, wait until it answers, stop it on exit.

    with start_local_server("procedural") as server:           # configs/synth.py:procedural, any free port
        client = SynthesisClient(server.endpoint)
        ...
    # on exit: an authenticated shutdown, then terminate, then kill

`overrides` are config fields, e.g. {"model.base_dir": "/m/base", "queue_size": 8}. The helper generates a random
admin token, hands it to the server through the environment (not the command line, which `ps` shows) and keeps
it for the shutdown. The server's log goes to `server.log_path`, in a temporary directory `synth-server-*` that
`stop()` removes. A launcher killed with SIGKILL cannot remove it; the directory names its launcher's and
server's pids (owner.json), and the next start removes every such directory whose processes are both gone.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import zmq

from syngrpo_jax.protocol import synthesis as proto

PARENT_PID_ENV = "SYNGRPO_SYNTH_PARENT_PID"  # synth_torch.server reads it (a name, not an import: no torch here)

ADMIN_TOKEN_ENV = "SYNGRPO_SYNTH_ADMIN_TOKEN"  # read by synth_torch.server
REPO_ROOT = Path(__file__).resolve().parents[2]
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

    def __init__(self, process: subprocess.Popen, endpoint: str, admin_token: str, log_path: str, workdir):
        self.process, self.endpoint, self.admin_token, self.log_path = process, endpoint, admin_token, log_path
        self.port = int(endpoint.rsplit(":", 1)[1])
        self._workdir = workdir

    def alive(self) -> bool:
        return self.process.poll() is None

    def ping(self, timeout_s: float = 2.0) -> bool:
        return self.alive() and ping(self.endpoint, timeout_s)

    def stats(self, timeout_s: float = 5.0) -> dict | None:
        reply = request(self.endpoint, proto.request_header("stats", uuid.uuid4().hex), timeout_s)
        return reply.get("stats") if reply and reply.get("ok") else None

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, no cleanup (for crash tests)."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout_s: float = 10.0) -> int:
        """Authenticated shutdown, then SIGTERM, then SIGKILL; returns the exit code."""
        if self.alive():
            request(self.endpoint, proto.request_header("shutdown", uuid.uuid4().hex, token=self.admin_token), 2.0)
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None and self.alive():
                    self.process.send_signal(sig)
                try:
                    self.process.wait(timeout_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._workdir.cleanup()
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


_TEMP_PREFIX = "synth-server-"
_OWNER_FILE = "owner.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def reclaim_orphaned_dirs(parent: str | None = None) -> list[str]:
    """Removes the temporary directories of local servers whose launcher and server processes are both gone
    (a SIGKILLed launcher leaves its directory behind); returns the removed paths. A directory without an
    owner file, or whose pids still run (or were reused), is left alone."""
    removed = []
    for path in Path(parent or tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*"):
        try:
            owner = json.loads((path / _OWNER_FILE).read_text())
            pids = [int(owner["launcher_pid"]), int(owner["server_pid"])]
            if path.stat().st_uid != os.getuid() or any(_alive(pid) for pid in pids):
                continue
            shutil.rmtree(path)
            removed.append(str(path))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, being created, or already gone
    return removed


def start_local_server(config: str = "procedural", *, overrides: dict | None = None, port: int | None = None,
                       config_file: str | os.PathLike | None = None, startup_timeout_s: float = 120.0,
                       env: dict | None = None, python: str | None = None) -> LocalServer:
    """Runs `python -m synth_torch.server --config=<config_file>:<config>` and waits until it answers ping.

    port None/0 picks a free port (the server binds port 0 and reports the one it got). Raises RuntimeError with
    the server's log if it exits or does not answer within startup_timeout_s.
    """
    reclaim_orphaned_dirs()
    workdir = tempfile.TemporaryDirectory(prefix=_TEMP_PREFIX)
    ready_file = Path(workdir.name) / "ready.json"
    log_path = Path(workdir.name) / "server.log"
    config_file = Path(config_file or DEFAULT_CONFIG_FILE).resolve()
    args = [python or sys.executable, "-m", "synth_torch.server", f"--config={config_file}:{config}",
            f"--ready_file={ready_file}", f"--config.port={int(port or 0)}"]
    for key, value in (overrides or {}).items():
        if value is not None:
            args.append(f"--config.{key}={value}")
    token = secrets.token_urlsafe(24)
    child_env = dict(os.environ if env is None else env)
    child_env[ADMIN_TOKEN_ENV] = token
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), child_env.get("PYTHONPATH")) if p)
    log_file = open(log_path, "wb")
    child_env[PARENT_PID_ENV] = str(os.getpid())  # the server exits when this process dies (even by SIGKILL)
    process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=child_env, cwd=str(REPO_ROOT))
    log_file.close()
    (Path(workdir.name) / _OWNER_FILE).write_text(json.dumps({"launcher_pid": os.getpid(), "server_pid": process.pid}))

    def fail(why: str):
        if process.poll() is None:
            process.kill()
            process.wait(10)
        text = log_path.read_text(errors="replace")[-4000:]
        workdir.cleanup()
        raise RuntimeError(f"synthesis server {why}. Command: {' '.join(args)}\n--- server log ---\n{text}")

    deadline = time.monotonic() + startup_timeout_s
    while not ready_file.exists():
        if process.poll() is not None:
            fail(f"exited with code {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            fail(f"was not ready within {startup_timeout_s} s")
        time.sleep(0.05)
    endpoint = json.loads(ready_file.read_text())["endpoint"]
    while not ping(endpoint, 1.0):  # the first answer proves the router thread runs
        if process.poll() is not None:
            fail(f"exited with code {process.returncode} after binding {endpoint}")
        if time.monotonic() > deadline:
            fail(f"bound {endpoint} but did not answer ping within {startup_timeout_s} s")
    return LocalServer(process, endpoint, token, str(log_path), workdir)
