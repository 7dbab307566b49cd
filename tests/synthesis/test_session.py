"""SynthesisSession under faults (issue 11, items 5 and 7): results the pool refuses, a server that disappears
(remote: a fake one closed; local: the real subprocess SIGKILLed), restarts, on_server_lost, counting each job
once. The fake server speaks the real protocol (synth_helpers.FakeDataServer)."""
import importlib.util
import logging
import os
import time

import pytest

from syngrpo_jax.data.pool import DataPool
from syngrpo_jax.data.sources import load_samples
from syngrpo_jax.synthesis.client import SynthesisResult
from syngrpo_jax.synthesis.session import SynthesisServerLost, SynthesisSession, _Submitted

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_config():
    spec = importlib.util.spec_from_file_location("tiny_cpu", os.path.join(REPO, "configs", "tiny_cpu.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config("scale=test,sft_steps=0,method=grpo_offline_generation")


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return load_samples(tiny_config().data, str(tmp_path_factory.mktemp("data")))


@pytest.fixture
def pool(samples, tmp_path):
    return DataPool(samples, str(tmp_path), seed=0)


def synthesis_cfg(address="", **fields):
    cfg = tiny_config().synthesis
    cfg.address = address
    cfg.timeout_s = 30.0
    cfg.update(fields)
    return cfg


def requests(pool, n):
    return [(sid, f"a scene {i}", i) for i, sid in enumerate(pool.sample_ids[:n])]


def test_results_the_pool_refuses_are_dropped_with_one_warning_each(helpers, pool, caplog):
    """A server answering `ok` with a wrong-size image, with bytes that are not a PNG, and (for the third job) a
    right one: two results dropped and named, one applied, nothing raised."""
    def reply(header, image):
        w, h = helpers.image_size(image)
        kind = int(header["seed"]) % 3
        return True, (helpers.png_bytes(helpers.make_image(h + 1, w, seed=1)) if kind == 0 else
                      b"GIF89a, not a png at all" if kind == 1 else helpers.png_bytes(helpers.make_image(h, w)))

    caplog.set_level(logging.WARNING, logger="syngrpo_jax.synthesis.session")
    with helpers.FakeDataServer(reply) as fake:
        session = SynthesisSession(synthesis_cfg(fake.endpoint, mode="sync"), pool)
        try:
            ids = session.submit(requests(pool, 3), step=0)
            assert len(ids) == 3
            session.wait(ids, step=0)
            m = session.metrics()
        finally:
            session.close()
    assert (m["synthesis/completed"], m["synthesis/applied"], m["synthesis/dropped"]) == (3, 1, 2)
    assert [pool.version(sid) for sid in pool.sample_ids[:3]] == [0, 0, 1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert ids[0] in warnings[0] and "size" in warnings[0] and pool.sample_ids[0] in warnings[0]
    assert ids[1] in warnings[1] and "not a PNG" in warnings[1]


def test_a_result_for_a_sample_the_pool_does_not_know_is_dropped(helpers, pool, caplog):
    with helpers.FakeDataServer(lambda h, img: None) as fake:
        session = SynthesisSession(synthesis_cfg(fake.endpoint), pool)
        session._jobs["j1"] = _Submitted("no-such-sample", "a beach", 0)
        png = helpers.png_bytes(helpers.make_image(8, 8))
        assert session.apply([SynthesisResult("j1", "no-such-sample", True, image_png=png)], step=1) == 0
        assert session.dropped == 1 and "j1" in caplog.text and "no-such-sample" in caplog.text
        session.close()


def test_a_dropped_connection_fails_every_pending_job_at_once_and_counts_it_once(helpers, pool):
    """Jobs the server holds, and a job submitted right after it died (before the client's heartbeat could
    notice): all end at once as connection_lost, each counted once (failed includes connection_lost)."""
    fake = helpers.FakeDataServer(lambda h, img: None)  # never answers a job
    session = SynthesisSession(synthesis_cfg(fake.endpoint, mode="sync"), pool)
    try:
        held = session.submit(requests(pool, 3), step=0)
        assert helpers.wait_until(lambda: len(fake.jobs) == 3, 5)
        fake.close()
        t0 = time.monotonic()
        late = session.submit(requests(pool, 1), step=1)  # refused, or accepted and then lost at once
        session.wait(held + late, step=1)
        assert time.monotonic() - t0 < 2.0  # not the 30 s job timeout
        m = session.metrics()
        n = len(held) + len(late)
        assert (m["synthesis/submitted"], m["synthesis/failed"], m["synthesis/connection_lost"]) == (n, n, n)
        assert m["synthesis/timed_out"] == 0 and m["synthesis/in_flight"] == 0 and session.failed == n
        assert session.submit(requests(pool, 1), step=2) == []  # known down: refused at once
        assert session.metrics()["synthesis/unavailable"] == 1.0
    finally:
        session.close()


@pytest.mark.parametrize("policy", ["stop", "continue"])
def test_a_remote_server_silent_too_long_is_given_up_as_configured(helpers, pool, policy, caplog):
    fake = helpers.FakeDataServer(lambda h, img: None)
    session = SynthesisSession(synthesis_cfg(fake.endpoint, server_lost_after_s=1.0, on_server_lost=policy), pool)
    try:
        assert helpers.wait_until(lambda: session.metrics()["synthesis/server_up"], 5)
        session.poll(step=0)  # up: nothing happens
        fake.close()
        time.sleep(1.5)
        if policy == "stop":
            with pytest.raises(SynthesisServerLost, match=f"data server at {fake.endpoint}.*has not answered.*"
                                                          "cannot be restarted.*on_server_lost=continue"):
                session.poll(step=4)
            return
        session.poll(step=4)
        assert "training goes on without synthesis" in caplog.text and fake.endpoint in caplog.text
        assert session.submit(requests(pool, 2), step=4) == [] and session.wait([], 4) < 0.1
        m = session.metrics()
        assert m["synthesis/unavailable"] == 1.0 and m["synthesis/server_up"] == 0.0 and m["synthesis/restarts"] == 0
        session.poll(step=5)  # given up once: no second warning, no error
    finally:
        session.close()


def test_a_sigkilled_local_server_is_restarted_then_given_up_on(helpers, pool):
    """max_restarts=1: the first SIGKILL is followed by a restart on the same port (new jobs complete), the second
    one stops synthesis with an error naming the server and its restarts."""
    session = SynthesisSession(synthesis_cfg(mode="sync", max_restarts=1, on_server_lost="stop"), pool)
    try:
        first = session.server
        ids = session.submit(requests(pool, 2), step=0)
        session.wait(ids, step=0)
        assert session.applied == 2
        first.kill()
        session.poll(step=1)
        assert session.restarts == 1 and session.server is not first and session.server.alive()
        assert session.server.port == first.port and not first.alive()
        ids = session.submit(requests(pool, 2), step=1)
        assert len(ids) == 2
        session.wait(ids, step=1)
        assert session.applied == 4 and [pool.version(s) for s in pool.sample_ids[:2]] == [2, 2]
        pid = session.server.process.pid
        session.server.kill()
        with pytest.raises(SynthesisServerLost, match=rf"data server 'procedural' at .*pid {pid}.*exited with code "
                                                      r"-9; restarted 1 times already \(synthesis.max_restarts=1\)"):
            session.poll(step=2)
        m = session.metrics()
        assert m["synthesis/restarts"] == 1 and m["synthesis/submitted"] == m["synthesis/completed"] == 4
    finally:
        session.close()
