"""Start a ZeroMQ service (the data server, the vLLM rollout worker) as a subprocess, wait until it answers, stop it.

The child writes a ready file ({"endpoint": ..., "pid": ...}, see protocol.endpoints.write_ready_file) once bound;
the launcher then pings it until it answers. The child gets the launcher's pid in an environment variable and
exits when the launcher dies (protocol.endpoints.exit_with_parent), even by SIGKILL, so a crashed trainer leaves
no orphan holding a device. Secrets (an admin token) travel in the environment, never on the command line.

Each service has a temporary directory (its ready file, and its log unless given a path), `syngrpo-service-*`,
removed by `stop()`. A launcher killed with SIGKILL cannot remove it, so the directory names its launcher's and
service's pids (owner.json), and every start first removes such directories whose processes are both gone.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMP_PREFIX = "syngrpo-service-"
_OWNER_FILE = "owner.json"


class ServiceProcess:
    """A running service subprocess: `process`, `endpoint`, `info` (its ready file), `log_path`."""

    def __init__(self, name: str, process: subprocess.Popen, endpoint: str, info: dict, log_path: str,
                 tmpdir: tempfile.TemporaryDirectory):
        self.name, self.process, self.endpoint, self.info, self.log_path = name, process, endpoint, info, log_path
        self._tmpdir = tmpdir

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self, tail_chars: int | None = None) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""
        return text[-tail_chars:] if tail_chars else text

    def kill(self) -> None:
        """SIGKILL, no cleanup (crash tests)."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, shutdown: Callable[[], object] | None = None, timeout_s: float = 10.0) -> int | None:
        """`shutdown()` (e.g. an authenticated shutdown request), then SIGTERM, then SIGKILL; the exit code."""
        if self.alive():
            if shutdown is not None:
                try:
                    shutdown()
                except Exception:  # the signals below still stop it
                    pass
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None and self.alive():
                    self.process.send_signal(sig)
                try:
                    self.process.wait(timeout_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._tmpdir.cleanup()
        return self.process.returncode


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def reclaim_orphaned_dirs(parent: str | os.PathLike | None = None) -> list[str]:
    """Removes the temporary directories of services whose launcher and service processes are both gone (a
    SIGKILLed launcher leaves its directory behind); returns the removed paths. A directory without an owner
    file (still being set up), not ours, or whose pids still run (or were reused) is left alone."""
    removed = []
    for path in Path(parent or tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        try:
            owner = json.loads((path / _OWNER_FILE).read_text())
            pids = [int(owner["launcher_pid"]), int(owner["service_pid"])]
            if path.stat().st_uid != os.getuid() or any(_alive(pid) for pid in pids):
                continue
            shutil.rmtree(path)
            removed.append(str(path))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, being set up, or already gone
    return removed


def start_service(name: str, args: Sequence[str], *, ready_flag: str = "--ready_file", parent_pid_env: str,
                  ping: Callable[[str], bool], env: dict | None = None, extra_env: dict | None = None,
                  log_path: str | os.PathLike | None = None, startup_timeout_s: float = 120.0,
                  cwd: str | os.PathLike = REPO_ROOT) -> ServiceProcess:
    """Runs `args + [ready_flag=FILE]`, waits for FILE, then until `ping(endpoint)` is true.

    Raises RuntimeError naming `name`, with the command and the tail of its log, if the child exits or is not
    ready within startup_timeout_s. The log goes to `log_path` (default: a temporary directory's).
    """
    reclaim_orphaned_dirs()
    tmpdir = tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{'-'.join(name.split())}-")
    ready_file = Path(tmpdir.name) / "ready.json"
    log_path = Path(log_path) if log_path else Path(tmpdir.name) / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [*map(str, args), f"{ready_flag}={ready_file}"]
    child_env = dict(os.environ if env is None else env)
    child_env.update(extra_env or {})
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), child_env.get("PYTHONPATH")) if p)
    child_env[parent_pid_env] = str(os.getpid())
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=child_env, cwd=str(cwd))
    (Path(tmpdir.name) / _OWNER_FILE).write_text(json.dumps({"launcher_pid": os.getpid(), "service_pid": process.pid}))

    def fail(why: str):
        if process.poll() is None:
            process.kill()
            process.wait(10)
        text = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""
        tmpdir.cleanup()
        raise RuntimeError(f"{name} {why}. Command: {' '.join(command)}\n--- {name} log ({log_path}) ---\n{text}")

    deadline = time.monotonic() + startup_timeout_s
    while not ready_file.exists():
        if process.poll() is not None:
            fail(f"exited with code {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            fail(f"was not ready within {startup_timeout_s} s")
        time.sleep(0.05)
    info = json.loads(ready_file.read_text())
    endpoint = info["endpoint"]
    while not ping(endpoint):  # the first answer proves the serving loop runs
        if process.poll() is not None:
            fail(f"exited with code {process.returncode} after binding {endpoint}")
        if time.monotonic() > deadline:
            fail(f"bound {endpoint} but did not answer ping within {startup_timeout_s} s")
    return ServiceProcess(name, process, endpoint, info, str(log_path), tmpdir)
