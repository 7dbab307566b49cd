"""The server under normal use, limits, overload, garbage, authentication and CURVE."""
import os
import pickle
import struct
import time
import zlib

import msgpack
import numpy as np
import pytest
import zmq

from syngrpo_jax.protocol import curve_keys
from syngrpo_jax.protocol import synthesis as proto
from syngrpo_jax.synthesis.local_server import ping, request, start_local_server
from synth_torch.server import BindRefused, SynthServer


class Peer:
    """A raw DEALER: sends any frames, collects reply headers."""

    def __init__(self, endpoint, server_key=None):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.rcvhwm = self.sock.sndhwm = 10_000
        if server_key is not None:
            self.sock.curve_serverkey = server_key
            self.sock.curve_publickey, self.sock.curve_secretkey = zmq.curve_keypair()
        self.sock.connect(endpoint)

    def send(self, frames):
        self.sock.send_multipart(frames)

    def recv(self, timeout_s=5.0):
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        frames = self.sock.recv_multipart()
        return proto.unpack_reply(frames[0]), frames[1:]

    def ask(self, frames, timeout_s=5.0):
        self.send(frames)
        return self.recv(timeout_s)

    def close(self):
        self.sock.close()
        self.ctx.term()


def synth_frames(helpers, image=None, **overrides):
    header = proto.request_header("synthesize", "r1", job_id="r1", sample_id=1, description="a green field",
                                  boxes=[[2, 2, 20, 20]], seed=0)
    header.update(overrides)
    data = helpers.png_bytes(image if image is not None else helpers.make_image(32, 32))
    return [proto.pack(header), data]


@pytest.fixture
def server(helpers):
    config = helpers.load_config(admin_token="s3cret", admin_retry_s=0.5, **{"limits.max_boxes": 8,
                                                                            "limits.max_description_chars": 100})
    with helpers.running_server(config) as s:
        yield s


def test_ping_stats_and_a_job(server, helpers):
    peer = Peer(server.endpoint)
    reply, _ = peer.ask([proto.pack(proto.request_header("ping", "p"))])
    assert reply["ok"] and reply["id"] == "p" and reply["ready"] and reply["backend"] == "procedural"
    reply, frames = peer.ask(synth_frames(helpers))
    assert reply["ok"] and reply["job_id"] == "r1" and reply["sample_id"] == 1 and reply["boxes_verified"]
    assert set(reply["timings"]) == {*proto.STAGES, "total"} and len(frames) == 1
    stats = peer.ask([proto.pack(proto.request_header("stats", "s"))])[0]["stats"]
    assert stats["done"] == 1 and stats["queue_depth"] == 0 and stats["backend"]["model"] == "procedural-v1"
    assert set(stats["timings"]) == {*proto.STAGES, "total"}
    peer.close()


@pytest.mark.parametrize("change, code, limit", [
    (dict(description="x" * 101), "limit_exceeded", "max_description_chars"),
    (dict(boxes=[[0, 0, 1, 1]] * 9), "limit_exceeded", "max_boxes"),
    (dict(job_id="j" * 200), "limit_exceeded", "max_id_chars"),
    (dict(v=99), "bad_version", None),
    (dict(seed=-3), "bad_field", None),
])
def test_limit_and_field_errors_are_named(server, helpers, change, code, limit):
    peer = Peer(server.endpoint)
    reply, frames = peer.ask(synth_frames(helpers, **change))
    assert not reply["ok"] and reply["error"]["code"] == code and reply["error"]["limit"] == limit
    assert frames == []
    assert next(iter(change)) in (reply["error"]["field"] or "v") or limit
    peer.close()


def test_image_and_message_size_limits(helpers):
    config = helpers.load_config(**{"limits.max_image_pixels": 40 * 40, "limits.max_message_bytes": 50_000})
    with helpers.running_server(config) as s:
        peer = Peer(s.endpoint)
        reply, _ = peer.ask(synth_frames(helpers, image=helpers.make_image(41, 40)))
        assert reply["error"]["limit"] == "max_image_pixels" and reply["error"]["field"] == "image"
        reply, _ = peer.ask(synth_frames(helpers)[:1] + [os.urandom(60_000)])
        assert reply["error"]["limit"] == "max_message_bytes" and reply["id"] is None
        reply, _ = peer.ask(synth_frames(helpers)[:1])
        assert reply["error"]["field"] == "image" and reply["id"] == "r1" and reply["job_id"] == "r1"
        peer.close()


def test_shutdown_needs_the_admin_token(server, helpers):
    """Wrong tokens are refused; after one, no token is even compared for admin_retry_s (0.5 s here), so
    guessing is throttled to 2/s (it ran at 34k/s): the right token is refused too until then."""
    peer = Peer(server.endpoint)
    for token in ("wrong", "s3cret" + "x", ""):
        reply, _ = peer.ask([proto.pack(proto.request_header("shutdown", "x", token=token))])
        assert reply["error"]["code"] == "unauthorized"
    reply, _ = peer.ask([proto.pack(proto.request_header("shutdown", "x"))])
    assert reply["error"]["field"] == "token"
    assert peer.ask([proto.pack(proto.request_header("ping", "p"))])[0]["ok"]
    t0 = time.monotonic()
    guesses = [peer.ask([proto.pack(proto.request_header("shutdown", "x", token=t))])[0]
               for t in ("guess", "s3cret")]
    assert all(r["error"]["code"] == "unauthorized" for r in guesses) and "retry in" in guesses[1]["error"]["message"]
    stats = peer.ask([proto.pack(proto.request_header("stats", "s"))])[0]["stats"]
    assert stats["counts"]["unauthorized"] == 1 and stats["counts"]["unauthorized_throttled"] == 4  # 1 compared
    time.sleep(max(0.0, 0.55 - (time.monotonic() - t0)))
    assert peer.ask([proto.pack(proto.request_header("shutdown", "x", token="s3cret"))])[0]["ok"]
    assert peer.ask([proto.pack(proto.request_header("ping", "p"))], timeout_s=1.0) is None
    peer.close()


def test_shutdown_disabled_without_token(helpers, monkeypatch):
    monkeypatch.delenv("SYNGRPO_SYNTH_ADMIN_TOKEN", raising=False)
    with helpers.running_server(helpers.load_config()) as s:
        reply = request(s.endpoint, proto.request_header("shutdown", "x", token="anything"))
        assert reply["error"]["code"] == "unauthorized" and "disabled" in reply["error"]["message"]


def test_overload_then_recovery(helpers):
    config = helpers.load_config(queue_size=2, procedural_delay_s=0.3)
    with helpers.running_server(config) as s:
        peer = Peer(s.endpoint)
        for i in range(8):
            peer.send(synth_frames(helpers, job_id=f"j{i}", id=f"j{i}"))
        replies = [peer.recv(10) for _ in range(8)]
        codes = {r[0]["job_id"]: (r[0]["ok"], (r[0].get("error") or {}).get("code")) for r in replies}
        overloaded = [j for j, (ok, code) in codes.items() if code == "overloaded"]
        done = [j for j, (ok, code) in codes.items() if ok]
        assert len(overloaded) >= 4 and len(done) + len(overloaded) == 8, codes
        assert peer.ask([proto.pack(proto.request_header("stats", "s"))])[0]["stats"]["overloaded"] == len(overloaded)
        reply, _ = peer.ask(synth_frames(helpers, job_id="after", id="after"), timeout_s=10)
        assert reply["ok"] and reply["job_id"] == "after"
        peer.close()


def test_expired_jobs_are_dropped_unrun(helpers):
    with helpers.running_server(helpers.load_config(procedural_delay_s=0.3)) as s:
        peer = Peer(s.endpoint)
        peer.send(synth_frames(helpers, job_id="slow", id="slow"))
        peer.send(synth_frames(helpers, job_id="short", id="short", timeout_s=0.05))
        replies = {r[0]["job_id"]: r[0] for r in (peer.recv(10), peer.recv(10))}
        assert replies["slow"]["ok"] and replies["short"]["error"]["code"] == "expired"
        peer.close()


def _png_claiming(width, height):
    """A PNG whose header claims width x height (the data is not needed: the server must not decode it)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\0" * 32


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/pwned-by-synth-test",))


def malformed_messages(helpers, n, seed=0):
    """n messages that must each be refused, over every kind of breakage."""
    rng = np.random.default_rng(seed)
    good = synth_frames(helpers)
    header = msgpack.unpackb(good[0])
    wrong_values = [None, True, -1, 2**64 - 1, 1.5, float("nan"), "", "x" * 300, [], [[1, 2]], {"a": 1}, b"bytes"]
    out = []
    for i in range(n):
        kind = i % 14
        if kind == 0:  # random bytes, one frame
            out.append([rng.bytes(int(rng.integers(0, 300)))])
        elif kind == 1:  # random bytes in two frames
            out.append([rng.bytes(int(rng.integers(1, 64))), rng.bytes(int(rng.integers(0, 2000)))])
        elif kind == 2:  # too many frames
            out.append(good + [b"x"] * int(rng.integers(1, 4)))
        elif kind == 3:  # msgpack, but not a map
            out.append([msgpack.packb([1, "a", None][: int(rng.integers(0, 3))] if i % 2 else int(rng.integers(9)))])
        elif kind == 4:  # one field of the wrong type
            h = dict(header)
            h[str(rng.choice(sorted(h)))] = wrong_values[int(rng.integers(len(wrong_values)))]
            try:  # some replacements are still valid (an empty description): break those another way
                proto.validate_envelope(h, proto.Limits())
                proto.validate_synthesize(h, proto.Limits())
                h["seed"] = "nope"
            except proto.ProtocolError:
                pass
            out.append([msgpack.packb(h, use_bin_type=True), good[1]])
        elif kind == 5:  # a missing field
            h = dict(header)
            del h[str(rng.choice(sorted(h)))]
            out.append([msgpack.packb(h), good[1]])
        elif kind == 6:  # missing image frame
            out.append(good[:1])
        elif kind == 7:  # oversized fields
            h = dict(header)
            field = ["description", "boxes", "job_id", "id", "sample_id"][i % 5]
            h[field] = [[0, 0, 1, 1]] * 300 if field == "boxes" else "z" * 70_000 if i % 3 else "z" * 3000
            out.append([msgpack.packb(h), good[1]])
        elif kind == 8:  # a pickled payload (never unpickled: just bytes)
            out.append([pickle.dumps(Evil() if i % 2 else header), good[1]])
        elif kind == 9:  # a wrong protocol version
            h = dict(header, v=[0, 2, "1", None, True, 1.5, 1.0][i % 7])
            out.append([msgpack.packb(h), good[1]])
        elif kind == 10:  # image frame that is not an image, empty, or claims to be huge
            out.append([good[0], [b"", rng.bytes(100), _png_claiming(100_000, 100_000), b"GIF89a" + b"\0" * 20][i % 4]])
        elif kind == 11:  # unknown op / ping with an extra frame / unknown field in ping
            out.append([[msgpack.packb(dict(v=1, op="pong", id="x")), msgpack.packb(dict(v=1, op="ping", id="x")),
                         msgpack.packb(dict(v=1, op="ping", id="x", extra=1))][i % 3]] + ([b"x"] if i % 3 == 1 else []))
        elif kind == 12:  # shutdown with a wrong or missing token
            out.append([msgpack.packb(dict(v=1, op="shutdown", id="x", **({"token": "guess"} if i % 2 else {})))])
        else:  # lying length prefixes, ext types, nesting, an empty frame
            out.append([[b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xc7\x05\x01abcde", b"\x91" * 5000,
                         b""][i % 5]])
    return out


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024


@pytest.mark.slow
def test_fuzz_1000_malformed_messages(helpers):
    """Every malformed message gets an error reply; the server still answers ping; its memory stays bounded."""
    messages = malformed_messages(helpers, 1400)
    with start_local_server("procedural", overrides={"limits.max_message_bytes": 200_000}) as server:
        peer = Peer(server.endpoint)
        peer.send(synth_frames(helpers))
        assert peer.recv(10)[0]["ok"]
        rss = []
        for start in range(0, len(messages), 100):
            for frames in messages[start:start + 100]:
                peer.send(frames)
            for k in range(100):
                got = peer.recv(10)
                assert got is not None, f"no reply to message {start + k}: {messages[start + k]!r:.200}"
                reply, frames = got
                assert reply["ok"] is False and reply["error"]["code"] in proto.ERROR_CODES, reply
                assert frames == [] and reply["error"]["message"]
            if start == 200 or start + 100 >= len(messages):
                rss.append(rss_bytes(server.process.pid))
        assert peer.ask([proto.pack(proto.request_header("ping", "alive"))])[0]["ok"]
        assert peer.ask(synth_frames(helpers), timeout_s=10)[0]["ok"]
        stats = server.stats()
        assert stats["rejected"] == len(messages) and stats["queue_depth"] == 0
        assert rss[-1] - rss[0] < 40 * 2**20, f"server RSS grew {(rss[-1] - rss[0]) / 2**20:.1f} MiB"
        peer.close()
    assert not os.path.exists("/tmp/pwned-by-synth-test")


def test_non_loopback_bind_refuses_without_keys(helpers):
    for address in ("0.0.0.0", "*", "10.1.2.3", "example.org"):
        with pytest.raises(BindRefused, match="CURVE"):
            SynthServer(helpers.load_config(bind_address=address))
    for address in ("127.0.0.1", "localhost"):
        SynthServer(helpers.load_config(bind_address=address)).close()


def test_cli_refuses_non_loopback_without_keys():
    with pytest.raises(RuntimeError, match="exited with code 2(.|\n)*CURVE"):
        start_local_server("procedural", overrides={"bind_address": "0.0.0.0"}, startup_timeout_s=60)


def test_cli_nice_lowers_the_server_priority_and_bad_values_are_named():
    base = os.getpriority(os.PRIO_PROCESS, 0)
    server = start_local_server("procedural", overrides={"nice": 5}, startup_timeout_s=60)
    try:
        assert os.getpriority(os.PRIO_PROCESS, server.process.pid) == min(base + 5, 19)
    finally:
        server.stop()
    with pytest.raises(RuntimeError, match="exited with code 2(.|\n)*config.nice=25"):
        start_local_server("procedural", overrides={"nice": 25}, startup_timeout_s=60)


def test_curve_refuses_clients_without_the_server_key(helpers, tmp_path):
    public_file, secret_file = curve_keys.write_keypair(tmp_path)
    server_key = curve_keys.load_public_key(public_file)
    config = helpers.load_config(bind_address="0.0.0.0", **{"curve.server_secret_key_file": str(secret_file)})
    with helpers.running_server(config) as s:
        endpoint = "tcp://127.0.0.1:" + s.endpoint.rsplit(":", 1)[1]
        assert ping(endpoint, 5.0, server_public_key=server_key)
        assert not ping(endpoint, 1.0)  # no key: the handshake never completes
        assert not ping(endpoint, 1.0, server_public_key=zmq.curve_keypair()[0])  # the wrong key
        assert s.stats()["curve"]


def test_curve_with_an_authorized_clients_directory(helpers, tmp_path):
    _, secret_file = curve_keys.write_keypair(tmp_path / "server")
    client_public_file, client_secret_file = curve_keys.write_keypair(tmp_path / "clients", "trainer")
    config = helpers.load_config(**{"curve.server_secret_key_file": str(secret_file),
                                    "curve.authorized_clients_dir": str(tmp_path / "clients")})
    server_public, _ = curve_keys.load_secret_keypair(secret_file)
    with helpers.running_server(config) as s:
        from syngrpo_jax.synthesis.client import SynthesisClient

        known = SynthesisClient(s.endpoint, server_public_key=server_public, heartbeat_s=0.1,
                                client_keys=curve_keys.load_secret_keypair(client_secret_file))
        stranger = SynthesisClient(s.endpoint, server_public_key=server_public, heartbeat_s=0.1)
        time.sleep(1.0)
        assert known.metrics()["server_up"] and not stranger.metrics()["server_up"]
        known.close()
        stranger.close()
