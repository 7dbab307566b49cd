"""The local-server helper and crash recovery: SIGKILL with jobs in flight, restart, no duplicate results."""
import time

import numpy as np
import pytest

from syngrpo_jax.synthesis.client import SynthesisClient, SynthesisJob
from syngrpo_jax.synthesis.local_server import start_local_server


def job(helpers, sample_id):
    return SynthesisJob(sample_id=sample_id, description="a purple kitchen", boxes=[[2, 3, 30, 20]],
                        image=helpers.png_bytes(helpers.make_image(48, 64, seed=sample_id)), seed=sample_id)


def collect(client, n, timeout):
    results, deadline = [], time.monotonic() + timeout
    while len(results) < n and time.monotonic() < deadline:
        results += client.poll()
        time.sleep(0.02)
    return results


def test_start_stop(helpers):
    server = start_local_server("procedural")
    assert server.ping() and server.stats()["backend"]["backend"] == "procedural"
    assert server.stop() == 0 and not server.alive()  # authenticated shutdown: a clean exit


@pytest.mark.slow
def test_sigkill_with_jobs_in_flight_then_restart(helpers):
    overrides = {"procedural_delay_s": 0.4, "segmentation.model": "none"}  # keep = the boxes, returned exact
    server = start_local_server("procedural", overrides=overrides)
    client = SynthesisClient(server.endpoint, timeout_s=5.0, heartbeat_s=0.1, server_down_after_s=0.5)
    try:
        submitted = {client.submit(job(helpers, i)): i for i in range(6)}
        assert None not in submitted
        first = collect(client, 1, 5)  # one finishes, the rest are queued or running
        server.kill()
        results = first + collect(client, 6 - len(first), 10)
        assert len(results) == 6
        lost = [r for r in results if not r.ok]
        assert lost and all(r.error_code in ("connection_lost", "timeout") for r in lost)
        assert helpers.wait_until(lambda: client.metrics()["server_up"] is False, 5)

        server = start_local_server("procedural", overrides=overrides, port=server.port)  # same address
        assert helpers.wait_until(lambda: client.metrics()["server_up"], 10)
        more = {client.submit(job(helpers, 100 + i)): 100 + i for i in range(3)}
        assert None not in more
        new = collect(client, 3, 15)
        assert sorted(r.job_id for r in new) == sorted(more) and all(r.ok and r.boxes_verified for r in new)
        time.sleep(0.5)
        assert client.poll() == []

        everything = results + new
        assert len({r.job_id for r in everything}) == len(everything)  # nothing delivered twice
        expected = {**submitted, **more}
        for r in everything:
            assert r.sample_id == expected[r.job_id]  # nothing delivered for the wrong sample
            if r.ok:
                np.testing.assert_array_equal(r.image()[3:20, 2:30],
                                              helpers.make_image(48, 64, seed=r.sample_id)[3:20, 2:30])
        m = client.metrics()
        assert m["misrouted_replies"] == 0 and m["in_flight"] == 0
        assert m["completed"] == len([r for r in everything if r.ok])
    finally:
        client.close()
        server.stop()


def test_a_sigkilled_launchers_temp_dir_is_reclaimed_by_the_next_start(helpers, tmp_path, monkeypatch):
    """SIGKILL leaves the launcher no chance to remove its server's temporary directory; the next start of any
    service does, once the launcher and its server are both gone (a live one's directory is left alone)."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from syngrpo_jax import service_process

    code = ("from syngrpo_jax.synthesis.local_server import start_local_server\n"
            "s = start_local_server('procedural')\nprint(s.log_path, flush=True)\nimport time; time.sleep(600)\n")
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=str(service_process.REPO_ROOT))
    launcher = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        orphan = Path(launcher.stdout.readline().strip()).parent
        assert orphan.parent == tmp_path and orphan.name.startswith(service_process.TEMP_PREFIX)
        server_pid = json.loads((orphan / "owner.json").read_text())["service_pid"]
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        assert service_process.reclaim_orphaned_dirs() == []  # its launcher still runs
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(10)
        # The server follows its launcher.
        assert helpers.wait_until(lambda: not service_process.pid_alive(server_pid), 15)
        assert orphan.is_dir()

        with start_local_server("procedural") as server:
            assert not orphan.exists()
            assert Path(server.log_path).parent.is_dir()
        assert list(tmp_path.glob(f"{service_process.TEMP_PREFIX}*")) == []
    finally:
        if launcher.poll() is None:
            launcher.kill()
