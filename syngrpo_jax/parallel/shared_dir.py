"""Is a directory the same directory for every process of a run? Checked once, before a run writes anything.

A multi-process run assumes its run directory is on a file system every process sees (NFS, Lustre, a GCS or
S3 FUSE mount, or one machine's disk): orbax checkpoints are written by all processes into it, process 0 writes
the metrics, and every process reads the data, the tiny model and the synthesized images from it. On a path that
is local to each host, that would fail much later and obscurely (a checkpoint that never finalises, a missing
image), so `check_shared` fails at start instead: process 0 writes a token file, every other process must see it,
with the right content, within `timeout_s` (network file systems make new files visible with a delay), and every
process raises the same error, naming the path and the processes that did not see it.
"""
from __future__ import annotations

import json
import os
import secrets
import time

from syngrpo_jax.atomic_write import atomic_write
from syngrpo_jax.parallel import multihost

TOKEN_PREFIX = ".shared-fs-check."


class NotSharedError(RuntimeError):
    pass


def _sees(path: str, token: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.listdir(os.path.dirname(path))  # NFS: a fresh directory listing revalidates its cached entries
            with open(path) as f:
                if f.read() == token:
                    return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def check_shared(directory: str, *, timeout_s: float = 60.0) -> None:
    """Raise NotSharedError (on every process) unless every process sees process 0's files in `directory`.
    Creates the directory. A no-op for a single process."""
    if multihost.process_count() == 1:
        return
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    if multihost.is_primary():
        token = secrets.token_hex(16)
        path = os.path.join(directory, TOKEN_PREFIX + token)
        atomic_write(path, token)
        multihost.broadcast_bytes(token.encode())
        ok = True
    else:
        token = multihost.broadcast_bytes(None).decode()
        path = os.path.join(directory, TOKEN_PREFIX + token)
        ok = _sees(path, token, timeout_s)
    verdicts = [json.loads(v) for v in multihost.gather_bytes(json.dumps(ok).encode(), timeout_s=timeout_s + 600)]
    if multihost.is_primary():
        os.unlink(path)
    multihost.barrier("shared-dir-checked")  # the token is gone before any process goes on
    blind = [i for i, seen in enumerate(verdicts) if not seen]
    if blind:
        raise NotSharedError(
            f"run directory {directory!r} is not shared by all processes: process(es) {blind} did not see the file "
            f"{path!r} that process 0 wrote there within {timeout_s:.0f} s (multiprocess.shared_fs_timeout_s). "
            "Put --workdir on a file system every process mounts at the same path (NFS, Lustre, a bucket mount).")
