"""Shared helpers of the data-server tests (tests/synth_torch) and its client's tests (tests/synthesis): the data
server's config with overrides, images as PNG bytes, an in-process server."""
import contextlib
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def wait_until(predicate, timeout_s: float) -> bool:
    """Poll `predicate` every 20 ms until it holds (True) or timeout_s passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def load_config(arg="procedural", **overrides):
    """configs/synth.py:arg with dotted-key overrides (what --config.a.b=v does on the command line)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("synth_config", REPO / "configs" / "synth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(arg)
    config.port = 0
    for key, value in overrides.items():
        *path, last = key.split(".")
        node = config
        for p in path:
            node = node[p]
        node[last] = value
    return config


def png_bytes(image: np.ndarray, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


def make_image(h=96, w=128, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@contextlib.contextmanager
def running_server(config, **kwargs):
    from synth_torch.server import SynthServer

    server = SynthServer(config, **kwargs).start(load_timeout_s=120)
    try:
        yield server
    finally:
        server.stop()


# ---- hostile images (issue 11): each reproduces an attack that got past the old header checks -------------------


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment of a well-formed JPEG; a scan's entropy-coded data is part of its
    SOS segment. Written independently of synth_torch.image_check (a plain walk of a trusted file)."""
    import re
    import struct

    out, pos = [], 2
    while True:
        marker = data[pos + 1]
        if marker == 0xD9:
            out.append((marker, pos, pos + 2))
            return out
        end = pos + 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker == 0xDA:
            end = re.compile(rb"\xff[^\x00\xd0-\xd7]").search(data, end).start()
        out.append((marker, pos, end))
        pos = end


def progressive_jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (120, 30, 200)).save(buf, "JPEG", progressive=True, quality=90)
    return buf.getvalue()


def jpeg_scan_bomb(width=4096, height=4096, repeats=3000) -> bytes:
    """A progressive JPEG whose last scan is repeated `repeats` times: ~160 KB, and each repeat costs the decoder
    a pass over the whole image (~12 ms at 4096^2: 3,000 repeats held the old server's worker for 35 s)."""
    data = progressive_jpeg(width, height)
    _, start, end = [s for s in jpeg_segments(data) if s[0] == 0xDA][-1]
    return data[:end] + data[start:end] * repeats + data[end:]


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_many_chunks(total_bytes=32 * 2**20 - 4096, image=None) -> bytes:
    """A valid small PNG with empty ancillary chunks (12 bytes each) inserted after IHDR up to total_bytes: the
    old server's Pillow walked all 2.7M of them on the router thread (8.6 s without answering anyone)."""
    data = png_bytes(image if image is not None else make_image(16, 16))
    ihdr_end = 8 + 25
    filler = png_chunk(b"prVt", b"")  # a private ancillary chunk type: decoders skip it
    n = (total_bytes - len(data)) // len(filler)
    return data[:ihdr_end] + filler * n + data[ihdr_end:]


def jpeg_many_markers(total_bytes=32 * 2**20 - 4096) -> bytes:
    """A valid small JPEG with empty COM markers (4 bytes each) after SOI up to total_bytes (the old server's
    Pillow walked them all in Python: 3.4 s for 32 MB)."""
    buf = io.BytesIO()
    Image.fromarray(make_image(16, 16)).save(buf, "JPEG")
    data = buf.getvalue()
    n = (total_bytes - len(data)) // 4
    return data[:2] + b"\xff\xfe\x00\x02" * n + data[2:]


# ---- a fake data server (issue 11, trainer side): the real protocol, replies chosen by the test ------------------


class FakeDataServer:
    """A ROUTER on loopback speaking protocol/synthesis.py: answers ping, and answers each synthesize request with
    `reply(header, image_bytes) -> (ok, png_bytes)` (None: no answer, the job stays pending). `jobs` lists the
    job ids received; `close()` kills it (the peers see their connection drop), like a SIGKILLed server."""

    def __init__(self, reply):
        import threading

        import zmq

        from syngrpo_jax.protocol import synthesis as proto

        self.proto, self.reply, self.jobs = proto, reply, []
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        proto = self.proto
        while not self._stop.is_set():
            if not self.sock.poll(20):
                continue
            peer, head, *rest = self.sock.recv_multipart()
            h = proto.unpack_header(head, proto.Limits())
            if h["op"] != "synthesize":
                self.sock.send_multipart([peer, proto.pack(proto.reply_header(h["op"], h["id"], True, ready=True))])
                continue
            self.jobs.append(h["job_id"])
            answer = self.reply(h, rest[0])
            if answer is None:
                continue
            ok, png = answer
            header = proto.reply_header("synthesize", h["id"], ok, job_id=h["job_id"], sample_id=h["sample_id"],
                                        boxes_verified=ok, timings={}, batch_size=1)
            self.sock.send_multipart([peer, proto.pack(header), png])

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        self.ctx.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.sock.closed:
            self.close()


def image_size(png: bytes) -> tuple[int, int]:
    """(width, height) of PNG/JPEG file bytes."""
    with Image.open(io.BytesIO(png)) as im:
        return im.size
