"""Helpers of the multi-process tests: N CPU processes on localhost joined into one JAX job (gloo collectives,
D forced devices each), the way launch/local_multiprocess.sh wires them (JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES, JAX_PROCESS_ID, read by syngrpo_jax/parallel/distributed.py)."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY_CPU = REPO / "configs" / "tiny_cpu.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_env(devices: int, **extra) -> dict:
    """A child's environment: this repository on PYTHONPATH, CPU JAX with `devices` forced host devices."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", TOKENIZERS_PARALLELISM="false",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}" if devices > 1 else "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Job:
    """N processes of one JAX job; each one's stdout and stderr go to <log_dir>/process_<i>.log."""

    def __init__(self, argv_of, *, processes: int = 2, devices: int = 2, log_dir: Path, extra_path=()):
        """argv_of(i): the command line of process i; extra_path: more PYTHONPATH entries (e.g. tests/)."""
        log_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.logs = [log_dir / f"process_{i}.log" for i in range(processes)]
        self.procs = []
        for i in range(processes):
            env = cpu_env(devices, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=processes,
                          JAX_PROCESS_ID=i)
            env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], *map(str, extra_path)])
            with open(self.logs[i], "w") as log:
                self.procs.append(subprocess.Popen(argv_of(i), cwd=REPO, env=env, stdout=log,
                                                   stderr=subprocess.STDOUT))

    def wait(self, timeout_s: float) -> list[int]:
        """Every process's exit status (after killing what is still running at the deadline)."""
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            try:
                proc.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        return [proc.wait() for proc in self.procs]

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()

    def log(self, i: int) -> str:
        return self.logs[i].read_text(errors="replace")

    def tails(self, chars: int = 3000) -> str:
        return "\n".join(f"--- process {i} ---\n{self.log(i)[-chars:]}" for i in range(len(self.procs)))


def train_argv(workdir, config_arg: str, *overrides: str):
    """`python -m syngrpo_jax.train` on configs/tiny_cpu.py:<config_arg> in `workdir`."""
    return [sys.executable, "-m", "syngrpo_jax.train", f"--config={TINY_CPU}:{config_arg}", f"--workdir={workdir}",
            *overrides]
