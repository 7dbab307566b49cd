"""The data server under the attacks of issue 11, each reproduced: a JPEG scan bomb, header floods, a client that
never reads its replies, padded images, queued bytes, clients that leave with jobs queued."""
import os
import threading
import time

import numpy as np
import pytest
import zmq

from syngrpo_jax.protocol import synthesis as proto
from syngrpo_jax.synthesis.local_server import start_local_server
from synth_torch.admission import memory_bound_bytes, reply_reserve
from synth_torch.backends import Backend


def _dealer(ctx, endpoint, **options):
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    for name, value in options.items():
        setattr(sock, name, value)
    sock.connect(endpoint)
    return sock


def _recv(sock, timeout_s):
    if not sock.poll(int(timeout_s * 1000)):
        return None
    frames = sock.recv_multipart()
    return proto.unpack_reply(frames[0]), frames[1:]


def _job(helpers, job_id, image_bytes=None, **fields):
    header = proto.request_header("synthesize", job_id, job_id=job_id, sample_id=1, description="a green field",
                                  boxes=[[2, 2, 20, 20]], seed=0, **fields)
    image = image_bytes if image_bytes is not None else helpers.png_bytes(helpers.make_image(32, 32))
    return [proto.pack(header), image]


def _ping(sock, request_id="p", timeout_s=5.0):
    t0 = time.perf_counter()
    sock.send(proto.pack(proto.request_header("ping", request_id)))
    reply = _recv(sock, timeout_s)
    assert reply is not None and reply[0]["ok"], f"no answer to ping within {timeout_s} s"
    return time.perf_counter() - t0


def _stats(sock):
    sock.send(proto.pack(proto.request_header("stats", "s")))
    return _recv(sock, 5)[0]["stats"]


def test_scan_bomb_does_not_delay_the_next_job(helpers):
    """A 4096^2 progressive JPEG repeating one scan 3,000 times (250 KB) kept the old worker busy for 35 s, and a
    32x32 job behind it waited as long. Now the worker counts its scans before decoding and refuses it."""
    bomb = helpers.jpeg_scan_bomb(4096, 4096, repeats=3000)
    with helpers.running_server(helpers.load_config()) as s, zmq.Context() as ctx:
        sock = _dealer(ctx, s.endpoint)
        t0 = time.perf_counter()
        sock.send_multipart(_job(helpers, "bomb", bomb))
        sock.send_multipart(_job(helpers, "small"))
        replies = {}
        while len(replies) < 2 and time.perf_counter() - t0 < 10:
            got = _recv(sock, 10 - (time.perf_counter() - t0))
            if got:
                replies[got[0]["job_id"]] = (got[0], time.perf_counter() - t0)
        assert replies["small"][0]["ok"] and replies["small"][1] < 10, replies
        err = replies["bomb"][0]["error"]
        assert err["code"] == "limit_exceeded" and err["limit"] == "max_jpeg_scans" and err["field"] == "image"
        assert "decode" not in replies["bomb"][0]["timings"]  # refused before decoding began


def test_ping_answered_while_header_floods_are_checked(helpers):
    """32 MB of empty PNG chunks / JPEG COM markers stalled every client's ping for 8.6 s / 3.4 s on the old
    router thread. Now the walk stops at the chunk / marker limit: a concurrent ping is answered within 1 s.
    (The server runs as its own process, as in production, so the attacker here does not share its GIL.)"""
    floods = [helpers.png_many_chunks(), helpers.jpeg_many_markers()] * 3
    with start_local_server("procedural") as server, zmq.Context() as ctx:
        attacker, pinger = _dealer(ctx, server.endpoint), _dealer(ctx, server.endpoint)
        _ping(pinger)
        latencies, done = [], threading.Event()

        def attack():
            for i, data in enumerate(floods):
                attacker.send_multipart(_job(helpers, f"flood{i}", data))
            done.set()

        thread = threading.Thread(target=attack)
        thread.start()
        while not done.is_set() or len(latencies) < 5:
            latencies.append(_ping(pinger, timeout_s=5.0))
        thread.join()
        codes = [_recv(attacker, 10)[0]["error"] for _ in floods]
        assert {e["limit"] for e in codes} == {"max_png_chunks", "max_jpeg_markers"}, codes
        assert max(latencies) < 1.0, latencies


def test_padding_after_the_image_end_is_refused(helpers):
    """Bytes after IEND / EOI were accepted, so every queued job could carry the message limit for free."""
    png = helpers.png_bytes(helpers.make_image(32, 32))
    jpeg = helpers.png_bytes(helpers.make_image(32, 32), "JPEG")
    with helpers.running_server(helpers.load_config()) as s, zmq.Context() as ctx:
        sock = _dealer(ctx, s.endpoint)
        for i, data in enumerate((png + bytes(1 << 20), jpeg + bytes(1 << 20))):
            sock.send_multipart(_job(helpers, f"pad{i}", data))
            reply = _recv(sock, 5)[0]
            assert reply["error"]["code"] == "bad_image" and "follow" in reply["error"]["message"]
        assert _stats(sock)["queue_depth"] == 0


class GatedBackend(Backend):
    """Paints a flat colour, but only once `gate` is open: jobs wait inside the worker for as long as a test
    needs (no timing assumptions). `painted` counts the jobs that ran."""

    name = "gated"

    def __init__(self):
        self.gate, self.painted = threading.Event(), 0

    def outpaint(self, items):
        assert self.gate.wait(60)
        self.painted += len(items)
        return [np.full_like(item.image, 7) for item in items]


def _wait_for(sock, predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not predicate(stats := _stats(sock)):
        assert time.monotonic() < deadline, stats
        time.sleep(0.02)
    return stats


def test_queued_request_bytes_are_bounded_in_total(helpers):
    """Jobs of large (incompressible) images queue until their bytes reach memory.max_queued_bytes (a running
    job's count too); then `overloaded` names that budget, and the server accepts again once they are done."""
    image = helpers.png_bytes(helpers.make_image(300, 400))  # ~360 KB of noise
    config = helpers.load_config(**{"limits.max_message_bytes": 1 << 20,
                                    "memory.max_queued_bytes": 3 * len(image) + 4096})
    backend = GatedBackend()
    with helpers.running_server(config, backend=backend) as s, zmq.Context() as ctx:
        sock = _dealer(ctx, s.endpoint)
        for i in range(6):
            sock.send_multipart(_job(helpers, f"j{i}", image))
        refused = [_recv(sock, 10)[0] for _ in range(3)]  # while j0 runs (gated) and j1, j2 wait
        assert [r["job_id"] for r in refused] == ["j3", "j4", "j5"], refused
        assert all(r["error"]["code"] == "overloaded" and r["error"]["limit"] == "max_queued_bytes" for r in refused)
        backend.gate.set()
        assert all(_recv(sock, 10)[0]["ok"] for _ in range(3))
        sock.send_multipart(_job(helpers, "after", image))
        assert _recv(sock, 10)[0]["ok"]
        assert _stats(sock)["memory"]["queued_bytes"] == 0


def test_jobs_of_a_departed_client_do_not_run(helpers):
    """A client queues six jobs and disconnects while the first runs: the five queued are dropped unrun (they
    used to run, for nobody), so the next client's job is the next to run."""
    backend = GatedBackend()
    with helpers.running_server(helpers.load_config(), backend=backend) as s, zmq.Context() as ctx:
        leaver, other = _dealer(ctx, s.endpoint), _dealer(ctx, s.endpoint)
        for i in range(6):
            leaver.send_multipart(_job(helpers, f"gone{i}"))
        _wait_for(other, lambda st: st["queue_depth"] == 5 and st["in_progress"] == 1)
        leaver.close()
        _wait_for(other, lambda st: st["counts"].get("dropped_disconnected", 0) == 5 and st["queue_depth"] == 0)
        other.send_multipart(_job(helpers, "mine"))
        backend.gate.set()
        reply = _recv(other, 10)[0]
        assert reply["ok"] and reply["job_id"] == "mine"
        assert backend.painted == 2  # gone0 (already running when its client left) and mine
        stats = _stats(other)
        assert stats["done"] == 2 and stats["memory"]["queued_bytes"] == 0
        assert stats["memory"]["reply_bytes"] <= 2 * reply_reserve(32, 32)  # only what was handed to `other`


def _rss(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


@pytest.mark.slow
def test_never_reading_client_leaves_rss_within_the_stated_bound(helpers):
    """A client submits 30 jobs whose replies are ~10x their requests (an all-zero image comes back painted) and
    never reads. The old server kept every reply (sndhwm 1000 per connection, no bound across them). Now RSS
    stays within configs/synth.py's bound (idle + max_queued_bytes + max_reply_bytes, the worker idle) while
    another client is served."""
    side = 1536
    overrides = {"limits.max_image_pixels": side * side, "limits.max_message_bytes": 4 << 20,
                 "memory.max_queued_bytes": 8 << 20, "memory.max_client_reply_bytes": 30 << 20,
                 "memory.max_reply_bytes": 40 << 20}
    config = helpers.load_config(**overrides)
    bound = memory_bound_bytes(config.memory)
    zeros = helpers.png_bytes(np.zeros((side, side, 3), np.uint8))
    # Large blocks straight from mmap, so the worker's freed working set goes back to the OS at once and RSS
    # measures what the server holds (glibc otherwise keeps up to ~50 MB of freed heap around, at random).
    server = start_local_server("procedural", overrides=overrides,
                                env=dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(128 << 10)))
    try:
        with zmq.Context() as ctx:
            reader = _dealer(ctx, server.endpoint)
            reader.send_multipart(_job(helpers, "warm", zeros))  # the worker's working set, before the baseline
            warm = _recv(reader, 30)
            assert warm[0]["ok"] and len(warm[1][0]) > 10 * len(zeros)
            idle = _rss(server.process.pid)

            silent = _dealer(ctx, server.endpoint, rcvhwm=1, rcvbuf=4096)
            for i in range(30):
                silent.send_multipart(_job(helpers, f"big{i}", zeros))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                stats = _stats(reader)
                if stats["queue_depth"] == 0 and stats["in_progress"] == 0 and stats["done"] > 1:
                    break
                time.sleep(0.1)
            assert _ping(reader) < 1.0
            reader.send_multipart(_job(helpers, "served"))
            assert _recv(reader, 10)[0]["ok"]

            grown = _rss(server.process.pid) - idle
            stats = _stats(reader)
            admitted = stats["done"] - 2  # warm and served
            assert 0 < admitted < 30 and stats["overloaded"] == 30 - admitted, stats["counts"]
            assert stats["memory"]["reply_bytes"] <= config.memory.max_reply_bytes
            assert grown <= bound, f"RSS grew {grown / 2**20:.1f} MiB, over the stated {bound / 2**20:.0f} MiB"
            silent.close()
    finally:
        server.stop()
