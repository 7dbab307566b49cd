"""Multi-process JAX initialisation (several hosts, or one process per GPU), from the launcher's environment.

`initialize()` calls `jax.distributed.initialize()` when the environment says this process is one of several:
an explicit coordinator (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID), a SLURM job step with
more than one task (JAX detects SLURM itself), or a multi-host TPU slice (detected by JAX on TPU VMs). On CPU,
processes exchange data with gloo (`jax_cpu_collectives_implementation`).

A lost process: JAX's coordination service (hosted by process 0) expects a heartbeat from every process. When one
stops for `heartbeat_timeout_s` (it died, or its host did), the service tells every other process, and each
terminates with "The following tasks are unhealthy (stopped sending heartbeats): <process ids>"; when process 0
itself dies, the others fail their next call to it at once ("the leader task ... died"). Either way every process
exits within about heartbeat_timeout_s, naming the lost one, and a relaunch resumes from the last checkpoint.
Nothing in a process can log once the coordination service has aborted it, so `report_unclean_exit` leaves the
advice to a tiny watcher process that shares its stderr (below).
The coordinator binds where it is reached when that is a loopback address (a one-machine job opens no port to the
network); otherwise on every interface, as JAX does.
"""
from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys

import jax

log = logging.getLogger(__name__)
_LOOPBACK = ("127.", "localhost", "[::1]")


def wanted() -> bool:
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return True
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return True
    return bool(os.environ.get("TPU_WORKER_HOSTNAMES", "").count(","))


def initialize(*, heartbeat_timeout_s: int = 100, shutdown_timeout_s: int = 300, init_timeout_s: int = 300) -> None:
    """Join the multi-process job when there is one (no-op for a single process).

    heartbeat_timeout_s: a process silent this long counts as lost and every other one exits naming it.
    shutdown_timeout_s: how long a finished process waits at exit for the others to finish.
    init_timeout_s: how long processes wait for each other to join."""
    if not wanted():
        return
    if os.environ.get("JAX_PLATFORMS", "").startswith("cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = dict(heartbeat_timeout_seconds=int(heartbeat_timeout_s), shutdown_timeout_seconds=int(shutdown_timeout_s),
                  initialization_timeout=int(init_timeout_s))
    address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if address:
        kwargs.update(coordinator_address=address, num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                      process_id=int(os.environ["JAX_PROCESS_ID"]))
        if address.startswith(_LOOPBACK) and not os.environ.get("JAX_COORDINATOR_BIND_ADDRESS"):
            kwargs["coordinator_bind_address"] = address
    jax.distributed.initialize(**kwargs)
    log.info("process %d of %d (pid %d), %d local / %d global devices; lost processes detected after %d s",
             jax.process_index(), jax.process_count(), os.getpid(), jax.local_device_count(), jax.device_count(),
             heartbeat_timeout_s)


# The watcher: reads its stdin (a pipe from the watched process) to the end and, unless it got the all-clear,
# writes its message to its stderr (the watched process's own). It ignores Ctrl-C, which reaches the whole group.
_WATCHER = """
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
if sys.stdin.buffer.read() != b"clean":
    sys.stderr.write(sys.argv[1] + "\\n")
"""


def report_unclean_exit(message: str) -> subprocess.Popen:
    """Have `message` written to this process's stderr if it ends without Python's shutdown: SIGKILL, the OOM
    killer, or the abort with which JAX's coordination service ends every process when one is lost. A normal exit,
    an uncaught exception or SystemExit included, sends the all-clear (atexit) and the watcher says nothing."""
    sys.stderr.flush()
    watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, message], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL)

    def all_clear():
        try:
            watcher.stdin.write(b"clean")
            watcher.stdin.close()
        except OSError:  # the watcher was killed with its group: nothing to tell it
            pass

    atexit.register(all_clear)
    return watcher
