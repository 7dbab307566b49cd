"""The worker's ZeroMQ front: one ROUTER socket, one thread, one request at a time (generation is the work).

Every message gets a reply; a malformed one gets an error reply and the worker keeps serving. What one message
may cost is bounded by `protocol.rollout.Limits` (sizes checked before anything is decoded or generated) and
by the checkpoint itself: pushed weights must carry the checkpoint's own names and shapes, so a weight update
never stages more than one model's bytes.

Weight updates arrive either as a file the trainer wrote on this host (`weights_file`, the fast path: no socket
copy) or as buckets over the socket (`weights_bucket`... `weights_commit`), which the worker appends to a
staging file of its own. Either way the engine loads them in one `reload_weights` pass at the commit, so a
half-sent update is never visible, and the version changes only once the new weights are in.
"""
from __future__ import annotations

import hmac
import io
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

import zmq
from PIL import Image

from syngrpo_jax.protocol import rollout as proto

log = logging.getLogger(__name__)
STAGING_PREFIX = "syngrpo-weights-"  # files a weights_file request may name (inside the staging directory)


def checkpoint_tensors(model_dir: str) -> dict[str, tuple[int, ...]]:
    """{HF name: shape} of every tensor in the checkpoint's safetensors files (headers only)."""
    from safetensors import safe_open

    out = {}
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as f:
            for name in f.keys():
                out[name] = tuple(f.get_slice(name).get_shape())
    if not out:
        raise FileNotFoundError(f"no *.safetensors files in {model_dir!r}")
    return out


class WeightSpec:
    """What a complete update must contain: the checkpoint's tensors (a tied lm_head may be left out)."""

    def __init__(self, tensors: dict[str, tuple[int, ...]], tied_embeddings: bool):
        self.tensors = tensors
        self.optional = {"lm_head.weight"} if tied_embeddings else set()
        self.max_bytes = sum(4 * _numel(s) for s in tensors.values())

    def check_entry(self, entry: proto.TensorEntry) -> None:
        shape = self.tensors.get(entry.name)
        if shape is None:
            raise proto.ProtocolError("bad_field", f"tensor {entry.name!r} is not in the checkpoint", field="tensors")
        if tuple(entry.shape) != tuple(shape):
            raise proto.ProtocolError("bad_field", f"tensor {entry.name!r} has shape {list(entry.shape)}, the "
                                      f"checkpoint's is {list(shape)}", field="tensors")

    def check_complete(self, names: set[str]) -> None:
        missing = sorted(set(self.tensors) - self.optional - names)
        if missing:
            raise proto.ProtocolError("bad_field", f"the update lacks {len(missing)} tensors, e.g. {missing[:3]}",
                                      field="tensors")


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


class Staging:
    """Buckets of one socket update, appended to a file in the staging directory until the commit."""

    def __init__(self, update_id: str, directory: str, spec: WeightSpec):
        self.update_id, self.spec = update_id, spec
        fd, self.path = tempfile.mkstemp(prefix=STAGING_PREFIX, suffix=".bin", dir=directory)
        self.file = os.fdopen(fd, "wb")
        self.table: list[list] = []
        self.names: set[str] = set()
        self.received = 0
        self.size = 0

    def add(self, index: int, entries: list[proto.TensorEntry], data: memoryview) -> None:
        if index != self.received:
            raise proto.ProtocolError("bad_field", f"bucket index {index}, expected {self.received}", field="index")
        for e in entries:
            self.spec.check_entry(e)
            if e.name in self.names:
                raise proto.ProtocolError("bad_field", f"tensor {e.name!r} sent twice", field="tensors")
        if self.size + len(data) > self.spec.max_bytes:
            raise proto.ProtocolError("limit_exceeded", f"update exceeds the checkpoint's {self.spec.max_bytes} "
                                      "bytes in float32", limit="model_bytes")
        self.file.write(data)
        for e in entries:
            self.table.append([e.name, e.dtype, list(e.shape), self.size + e.offset])
            self.names.add(e.name)
        self.size += len(data)
        self.received += 1

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()
        Path(self.path).unlink(missing_ok=True)


class RolloutWorker:
    """Serves `host` (a vllm_worker.llm.VllmHost, or anything with its methods) on a ROUTER socket."""

    def __init__(self, host, spec: WeightSpec, *, limits: proto.Limits, staging_dir: str,
                 admin_token: str | None = None, model_name: str = ""):
        self.host, self.spec, self.limits = host, spec, limits
        self.staging_dir = str(Path(staging_dir).resolve())
        self.admin_token = admin_token
        self.model_name = model_name
        self.weight_version = 0
        self.staging: Staging | None = None
        self.counts: dict[str, int] = {}
        self.started = time.time()
        self._stop = False

    # ---- loop ---------------------------------------------------------------------------------------------

    def serve(self, sock: zmq.Socket, should_stop=lambda: False) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        while not (self._stop or should_stop()):
            if not poller.poll(100):
                continue
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                continue
            reply = self.handle([f.buffer for f in frames[1:]])
            try:
                sock.send_multipart([frames[0].bytes, *reply], zmq.NOBLOCK)
            except zmq.ZMQError as e:  # a peer that went away or does not read: drop, never wait
                log.debug("reply dropped: %s", e)
        if self.staging is not None:
            self.staging.close()

    def handle(self, frames: list[memoryview]) -> list[bytes]:
        """One request's frames (identity removed) -> the reply's frames. Never raises."""
        op = request_id = None
        try:
            if not frames:
                raise proto.ProtocolError("bad_message", "message has no frames")
            size = sum(len(f) for f in frames)
            if size > self.limits.max_message_bytes:
                raise proto.ProtocolError("limit_exceeded", f"message is {size} bytes, over max_message_bytes="
                                          f"{self.limits.max_message_bytes}", limit="max_message_bytes")
            header = proto.unpack_header(bytes(frames[0]), self.limits)
            rid = header.get("id")
            request_id = rid if isinstance(rid, str) and len(rid) <= self.limits.max_id_chars else None
            op, request_id = proto.validate_envelope(header, self.limits)
            reply, extra = getattr(self, f"_op_{op}")(header, frames[1:])
            self._count(op)
            return [proto.pack(proto.reply_header(op, request_id, True, **reply)), *extra]
        except proto.ProtocolError as e:
            self._count("rejected")
            return [proto.pack(proto.error_header(op, request_id, e))]
        except Exception as e:  # a bug or an engine error costs this request, not the service
            log.exception("request %s failed", op)
            self._count("failed")
            return [proto.pack(proto.error_header(op, request_id, proto.ProtocolError(
                "internal", f"{type(e).__name__}: {str(e)[:500]}")))]

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    @staticmethod
    def _no_frames(op: str, frames) -> None:
        if frames:
            raise proto.ProtocolError("bad_message", f"op {op!r} takes one frame, got {len(frames) + 1}")

    # ---- ops ------------------------------------------------------------------------------------------------

    def _op_ping(self, header, frames):
        proto.validate_plain(header)
        self._no_frames("ping", frames)
        return {"ready": True, "weight_version": self.weight_version, "model": self.model_name,
                "host": socket.gethostname(), "staging_dir": self.staging_dir}, []

    def _op_stats(self, header, frames):
        proto.validate_plain(header)
        self._no_frames("stats", frames)
        return {"stats": {"counts": dict(self.counts), "weight_version": self.weight_version, "pid": os.getpid(),
                          "uptime_s": time.time() - self.started}}, []

    def _op_shutdown(self, header, frames):
        token = proto.validate_shutdown(header)
        if not self.admin_token:
            raise proto.ProtocolError("unauthorized", "shutdown is disabled: the worker has no admin token")
        if not hmac.compare_digest(token.encode(), self.admin_token.encode()):
            raise proto.ProtocolError("unauthorized", "shutdown refused: wrong admin token", field="token")
        self._stop = True
        return {}, []

    def _decode_images(self, frames) -> list[Image.Image]:
        images = []
        for i, frame in enumerate(frames):
            try:
                image = Image.open(io.BytesIO(frame))
                if image.format not in ("PNG", "JPEG"):
                    raise ValueError(f"format {image.format}, not PNG or JPEG")
                if image.width * image.height > self.limits.max_image_pixels:
                    raise proto.ProtocolError("limit_exceeded", f"image {i} is {image.width}x{image.height}, over "
                                              f"max_image_pixels={self.limits.max_image_pixels}",
                                              limit="max_image_pixels")
                images.append(image.convert("RGB"))
            except proto.ProtocolError:
                raise
            except Exception as e:
                raise proto.ProtocolError("bad_image", f"image frame {i} is not a readable image: "
                                          f"{type(e).__name__}: {str(e)[:200]}", field="images")
        return images

    def _op_generate(self, header, frames):
        request = proto.validate_generate(header, len(frames), self.limits, self.host.vocab_size)
        images = self._decode_images(frames)
        per_prompt, k = [], 0
        for p in request.prompts:
            per_prompt.append(images[k:k + p.images])
            k += p.images
        try:
            prompt_lens, results = self.host.generate(request.prompts, per_prompt, request.params)
        except ValueError as e:  # vLLM's own input checks (too long for max_model_len, placeholders, ...)
            raise proto.ProtocolError("bad_field", f"{str(e)[:500]}", field="prompts")
        return {"weight_version": self.weight_version, "prompt_lens": prompt_lens, "results": results}, []

    def _op_process_images(self, header, frames):
        proto.validate_plain(header)
        if not frames or len(frames) > self.limits.max_images:
            raise proto.ProtocolError("bad_message", f"process_images takes 1 to {self.limits.max_images} images")
        pixel_values, grids = self.host.process_images(self._decode_images(frames))
        return {"grids": [[int(x) for x in g] for g in grids]}, [pixel_values.astype("<f4").tobytes()]

    def _op_weights_bucket(self, header, frames):
        if len(frames) != 1:
            raise proto.ProtocolError("bad_message", f"weights_bucket needs one data frame, got {len(frames)}")
        update_id, index, entries = proto.validate_weights_bucket(header, len(frames[0]), self.limits)
        if self.staging is None or self.staging.update_id != update_id:
            if index != 0:
                raise proto.ProtocolError("bad_field", f"update {update_id!r} is unknown: start with bucket 0",
                                          field="update")
            if self.staging is not None:
                self.staging.close()  # an abandoned update (its sender died): replaced
            self.staging = Staging(update_id, self.staging_dir, self.spec)
        try:
            self.staging.add(index, entries, frames[0])
        except proto.ProtocolError:
            self.staging.close()
            self.staging = None
            raise
        return {"weight_version": self.weight_version, "received": self.staging.received}, []

    def _op_weights_commit(self, header, frames):
        self._no_frames("weights_commit", frames)
        update_id, version, buckets = proto.validate_weights_commit(header, self.limits)
        staging = self.staging
        if staging is None or staging.update_id != update_id:
            raise proto.ProtocolError("bad_field", f"update {update_id!r} has no buckets here", field="update")
        self.staging = None
        try:
            if buckets != staging.received:
                raise proto.ProtocolError("bad_field", f"commit says {buckets} buckets, {staging.received} "
                                          "arrived", field="buckets")
            staging.file.close()
            seconds = self._load(staging.path, staging.table, staging.names, version)
        finally:
            staging.close()
        return {"weight_version": self.weight_version, "received": buckets, "load_s": seconds}, []

    def _op_weights_file(self, header, frames):
        self._no_frames("weights_file", frames)
        version, path, entries = proto.validate_weights_file(header, self.limits)
        resolved = Path(path).resolve()
        if resolved.parent != Path(self.staging_dir) or not resolved.name.startswith(STAGING_PREFIX):
            raise proto.ProtocolError("bad_field", f"path {path!r} is not a {STAGING_PREFIX}* file in the "
                                      f"worker's staging directory {self.staging_dir!r}", field="path")
        if not resolved.is_file():
            raise proto.ProtocolError("bad_field", f"path {path!r} does not exist on the worker's host",
                                      field="path")
        size = resolved.stat().st_size
        names = set()
        for e in entries:
            self.spec.check_entry(e)
            if e.offset + e.nbytes > size or e.name in names:
                raise proto.ProtocolError("bad_field", f"tensor {e.name!r} is repeated or lies beyond the file's "
                                          f"{size} bytes", field="tensors")
            names.add(e.name)
        seconds = self._load(str(resolved), [e.to_wire() for e in entries], names, version)
        return {"weight_version": self.weight_version, "received": 1, "load_s": seconds}, []

    def _load(self, path: str, table: list, names: set[str], version: int) -> float:
        """Loads a complete update into the engine; returns the seconds it took."""
        self.spec.check_complete(names)
        started = time.perf_counter()
        self.host.load_weights(path, table)
        self.weight_version = version
        seconds = time.perf_counter() - started
        log.info("weights v%d loaded (%d tensors) in %.3f s", version, len(table), seconds)
        return seconds
