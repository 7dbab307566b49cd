"""parallel/multihost, shared_dir and host_arrays: the identity with one process, and two real processes on
localhost (gloo, 2 devices each) exchanging bytes, flags and array slices."""
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from multiprocess import Job
from syngrpo_jax.parallel import host_arrays, multihost, shared_dir

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multihost_worker.py")


def test_one_process_is_the_identity(tmp_path):
    assert multihost.is_primary() and multihost.process_count() == 1
    assert multihost.broadcast_bytes(b"abc") == b"abc"
    assert multihost.gather_bytes(b"x") == [b"x"]
    assert multihost.any_process(True) and not multihost.any_process(False)
    multihost.barrier("nothing")
    with multihost.primary_first("block"):
        pass
    shared_dir.check_shared(str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # nothing to check, nothing written


def test_to_global_and_back_on_one_process():
    mesh = jax.make_mesh((2, 4), ("a", "b"))
    host = np.arange(4 * 8, dtype=np.int32).reshape(4, 8)
    arr = host_arrays.to_global(host, NamedSharding(mesh, PartitionSpec("a", "b")))
    assert len(arr.addressable_shards) == 8 and arr.shape == (4, 8)
    np.testing.assert_array_equal(host_arrays.to_host(arr), host)
    tree = host_arrays.to_global({"x": host, "y": host[:, 0]}, {"x": NamedSharding(mesh, PartitionSpec()),
                                                                "y": NamedSharding(mesh, PartitionSpec("b"))})
    np.testing.assert_array_equal(host_arrays.to_host(tree["y"]), host[:, 0])


def test_two_processes(tmp_path):
    job = Job(lambda i: [sys.executable, WORKER, str(tmp_path)], log_dir=tmp_path / "logs")
    assert job.wait(600) == [0, 0], job.tails()
    seen = [json.loads((tmp_path / f"worker_{i}.json").read_text()) for i in (0, 1)]
    for i, s in enumerate(seen):
        assert s["broadcast_empty"] and s["broadcast_small"] and s["broadcast_large"], s
        assert s["gather"] == ["from 0", "from 1"]
        assert s["any_one"] is True and s["any_none"] is False
        assert s["order"] == "01"  # process 0's block ran first
        assert s["token_left"] == []
        assert s["sum"] == float(np.arange(24).sum()) and s["to_host"]
    assert seen[0]["broadcast_keys"] == [str(max(int(k) for k in seen[0]["broadcast_keys"]))]  # only the last one
    # Each process placed only the row blocks of its own 2 devices; together, all 4.
    assert len(seen[0]["local_rows"]) == len(seen[1]["local_rows"]) == 2
    assert sorted(seen[0]["local_rows"] + seen[1]["local_rows"]) == [0, 2, 4, 6]


def test_losing_process_zero_ends_the_others_at_once(tmp_path):
    """Process 0 hosts JAX's coordination service: when it dies, the others end within seconds (not after the
    heartbeat timeout), saying the leader task died. (A lost process 1 is named by process 0 after the heartbeat
    timeout: tests/trainer/test_multiprocess.py.)"""
    job = Job(lambda i: [sys.executable, WORKER, str(tmp_path), "loop"], log_dir=tmp_path / "logs")
    try:
        deadline = time.monotonic() + 300
        while not all((tmp_path / f"ready_{i}").exists() for i in (0, 1)):
            assert all(p.poll() is None for p in job.procs) and time.monotonic() < deadline, job.tails()
            time.sleep(0.1)
        job.procs[0].kill()
        killed = time.monotonic()
        try:
            code = job.procs[1].wait(30)  # the heartbeat timeout is 60 s: this is not it
        except subprocess.TimeoutExpired:
            pytest.fail(f"process 1 still running 30 s after process 0 died\n{job.tails()}")
        assert code != 0 and "leader task" in job.log(1), job.tails()
        print(f"process 1 exited {time.monotonic() - killed:.2f} s after process 0 was killed")
    finally:
        job.kill()
