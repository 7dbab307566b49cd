"""SynthesisClient: non-blocking submit/poll, bounds, timeouts, server down, duplicates and misrouting."""
import logging
import threading
import time

import pytest
import zmq

from syngrpo_jax.protocol import synthesis as proto
from syngrpo_jax.synthesis.client import SynthesisClient, SynthesisJob


def job(helpers, sample_id, **kw):
    return SynthesisJob(sample_id=sample_id, description=f"a scene number {sample_id}", boxes=[[4, 4, 20, 24]],
                        image=helpers.make_image(32, 40, seed=sample_id), seed=sample_id, **kw)


def drain(client, n, timeout=20.0):
    results, deadline = [], time.monotonic() + timeout
    while len(results) < n and time.monotonic() < deadline:
        results += client.poll()
        time.sleep(0.01)
    return results


def test_submit_returns_at_once_and_poll_delivers_each_result_once(helpers):
    config = helpers.load_config(procedural_delay_s=0.05, **{"segmentation.model": "none"})  # keep = the boxes
    with helpers.running_server(config) as server, SynthesisClient(server.endpoint) as client:
        t0 = time.perf_counter()
        ids = [client.submit(job(helpers, i)) for i in range(6)]
        assert time.perf_counter() - t0 < 0.05 and len(set(ids)) == 6
        results = drain(client, 6)
        assert sorted(r.job_id for r in results) == sorted(ids)
        for r in results:
            assert r.ok and r.boxes_verified and r.sample_id == ids.index(r.job_id)
            assert (r.image()[4:24, 4:20] == helpers.make_image(32, 40, seed=r.sample_id)[4:24, 4:20]).all()
            assert r.latency_s >= r.timings["total"] > 0
        time.sleep(0.1)
        assert client.poll() == []
        m = client.metrics()
        assert (m["submitted"], m["completed"], m["failed"], m["in_flight"], m["server_up"]) == (6, 6, 0, 0, True)


def test_sync_mode_waits_for_a_batch(helpers):
    with helpers.running_server(helpers.load_config()) as server, \
            SynthesisClient(server.endpoint, max_in_flight=2) as client:
        results = client.run_batch([job(helpers, i) for i in range(5)])  # more jobs than max_in_flight
        assert sorted(r.sample_id for r in results) == list(range(5)) and all(r.ok for r in results)
        ids = [client.submit(job(helpers, 10 + i)) for i in range(2)]
        assert [r.job_id for r in client.wait(ids)] == ids
        assert client.poll() == []


def test_in_flight_bound(helpers):
    with helpers.running_server(helpers.load_config(procedural_delay_s=0.3)) as server, \
            SynthesisClient(server.endpoint, max_in_flight=2) as client:
        assert client.submit(job(helpers, 0)) and client.submit(job(helpers, 1))
        assert client.submit(job(helpers, 2)) is None and client.last_refusal == "in_flight_full"
        assert client.metrics()["refused_in_flight_full"] == 1
        assert len(drain(client, 2)) == 2
        assert client.submit(job(helpers, 3)) is not None


def test_timeout_then_the_late_reply_is_dropped(helpers):
    with helpers.running_server(helpers.load_config(procedural_delay_s=0.6)) as server, \
            SynthesisClient(server.endpoint, timeout_s=0.2) as client:
        job_id = client.submit(job(helpers, 0))
        (result,) = drain(client, 1)
        assert result.job_id == job_id and not result.ok and result.error_code == "timeout"
        time.sleep(0.8)  # the server finishes it (or drops it as expired) and answers: dropped, not delivered
        assert client.poll() == []
        m = client.metrics()
        assert m["timed_out"] == 1 and m["dropped_replies"] == 1 and m["in_flight"] == 0


def test_server_down_warns_once_and_refuses(helpers, caplog):
    with zmq.Context() as ctx:  # a port with nobody on it
        s = ctx.socket(zmq.ROUTER)
        port = s.bind_to_random_port("tcp://127.0.0.1")
        s.close()
    caplog.set_level(logging.WARNING, logger="syngrpo_jax.synthesis")
    with SynthesisClient(f"tcp://127.0.0.1:{port}", heartbeat_s=0.05, timeout_s=0.3) as client:
        first = client.submit(job(helpers, 0))  # not known to be down yet: accepted, then times out
        assert first is not None
        time.sleep(0.8)
        m = client.metrics()
        assert m["server_up"] is False and m["timed_out"] == 1
        assert client.submit(job(helpers, 1)) is None and client.last_refusal == "server_down"
        time.sleep(0.3)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not answered" in warnings[0].getMessage()


class FakeServer:
    """A ROUTER that answers each synthesize with a wrong-sample reply, the right reply twice, and a stray one;
    every reply carries its own payload, so a test can tell which one was delivered."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            if not self.sock.poll(20):
                continue
            peer, head, *rest = self.sock.recv_multipart()
            h = proto.unpack_header(head, proto.Limits())
            if h["op"] == "ping":
                self.sock.send_multipart([peer, proto.pack(proto.reply_header("ping", h["id"], True))])
                continue
            ok = proto.pack(proto.reply_header("synthesize", h["id"], True, job_id=h["job_id"],
                                               sample_id=h["sample_id"], boxes_verified=True, timings={}))
            wrong = proto.pack(proto.reply_header("synthesize", h["id"], True, job_id=h["job_id"],
                                                  sample_id="someone-else", timings={}))
            stray = proto.pack(proto.reply_header("synthesize", "zzz", True, job_id="zzz", sample_id=0))
            for frames in ([peer, wrong, b"misrouted"], [peer, ok, b"right"], [peer, ok, b"duplicate"],
                           [peer, stray, b"stray"], [peer, b"\xc1garbage"]):
                self.sock.send_multipart(frames)

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()
        self.ctx.term()


def test_duplicates_strays_and_misrouted_replies_are_dropped(helpers):
    fake = FakeServer()
    try:
        with SynthesisClient(f"tcp://127.0.0.1:{fake.port}") as client:
            job_id = client.submit(job(helpers, 5))
            results = drain(client, 1)
            time.sleep(0.2)
            results += client.poll()
            assert len(results) == 1 and results[0].job_id == job_id and results[0].sample_id == 5
            assert results[0].image_png == b"right"  # the right reply's image, not the misrouted one's
            m = client.metrics()
            assert m["completed"] == 1 and m["misrouted_replies"] == 1
            assert m["dropped_replies"] == 4  # misrouted + duplicate + stray + garbage
    finally:
        fake.close()


def test_duplicate_job_ids_and_bad_sample_ids_are_refused(helpers):
    with SynthesisClient("tcp://127.0.0.1:1") as client:
        client.submit(job(helpers, 0, job_id="same"))
        with pytest.raises(ValueError, match="already submitted"):
            client.submit(job(helpers, 1, job_id="same"))
        with pytest.raises(TypeError, match="sample_id"):
            client.submit(SynthesisJob(sample_id=1.5, description="x", boxes=[[0, 0, 1, 1]], image=b""))
