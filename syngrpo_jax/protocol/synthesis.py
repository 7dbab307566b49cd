"""Wire format of the data server (synthesis) protocol, shared by the JAX client and the torch server.

No jax, no torch here: both sides import this module. Nothing on the wire is ever unpickled; a header is a
msgpack map unpacked with strict size limits, then validated field by field.

Frames (a ZeroMQ multipart message; the server's ROUTER socket adds the peer identity in front):

    request  = [header]                 ping, stats, shutdown
             | [header, image_bytes]    synthesize (the image as PNG or JPEG file bytes, in its own frame)
    reply    = [header]                 every error, ping, stats, shutdown
             | [header, png_bytes]      a successful synthesize

Request headers (all maps with string keys; unknown keys are an error, so a typo never passes silently):

    every op   v: int (PROTOCOL_VERSION; 1.0 is not 1)   op: str   id: str (chosen by the sender, echoed in the reply)
    synthesize job_id: str   sample_id: str | int   description: str   seed: int in [0, 2**63)
               boxes: [[x0, y0, x1, y1], ...] in original-image pixels (floats or ints), at least one
               params: optional map {steps: int, guidance: float, strength: float}, each key optional
               timeout_s: optional float; the server drops the job ("expired") if it waited longer in the queue
    shutdown   token: str (the server's admin token)

Reply headers:

    every op   v, op (echoed, or None when the request was unreadable), id (echoed or None), ok: bool
    error      error: {code: str (ERROR_CODES), message: str, field: str | None, limit: str | None}
    synthesize job_id, sample_id (echoed), width, height, boxes_verified: bool, backend: str, batch_size: int,
               timings: {stage: seconds} for the stages in STAGES plus "total" (server receive -> reply)
    ping       ready: bool, backend: str
    stats      stats: map (see synth_torch.server.SynthServer.stats)

Box convention (used by the server's paste-back check and documented here so both sides agree): a box
[x0, y0, x1, y1] covers the pixel columns floor(x0) .. ceil(x1) - 1 and rows floor(y0) .. ceil(y1) - 1 after
clipping to the image, i.e. it is rounded outward to whole pixels. A box that is empty after that is an error.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import msgpack

PROTOCOL_VERSION = 1

OPS = ("synthesize", "ping", "stats", "shutdown")
STAGES = ("queue_wait", "decode", "mask", "backend", "paste", "encode")
ERROR_CODES = (
    "bad_message",  # frames or msgpack unreadable
    "bad_version",  # header.v is not PROTOCOL_VERSION
    "bad_field",  # a field is missing, unknown, of the wrong type or out of range
    "limit_exceeded",  # a configured limit was exceeded; `limit` names it
    "bad_image",  # the image frame is not a readable PNG/JPEG
    "overloaded",  # a queue or memory budget is full (`limit` names it); retry later
    "expired",  # the job waited in the queue longer than its timeout_s
    "unauthorized",  # shutdown with a wrong or missing token
    "shutting_down",  # the server stopped before the job ran
    "internal",  # the pipeline failed on this job; the server keeps serving
)
GENERATION_PARAMS = {"steps": int, "guidance": float, "strength": float}


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what one request may carry. The server's config sets them; these defaults suit 4K images."""

    max_message_bytes: int = 32 * 2**20  # all frames together
    max_header_bytes: int = 64 * 2**10  # the msgpack header frame alone
    max_image_pixels: int = 4096 * 4096  # width * height of the decoded image
    max_boxes: int = 256
    max_description_chars: int = 2000
    max_id_chars: int = 128  # id, job_id, and sample_id when it is a string
    max_steps: int = 200  # params.steps upper bound
    max_png_chunks: int = 8192  # chunks in a PNG (libpng writes 8 KB IDATs: 4096 for a 32 MB file)
    max_jpeg_markers: int = 256  # JPEG marker segments before the first scan (encoders write about 10-30)
    max_jpeg_scans: int = 64  # JPEG scans (a progressive encoder writes about 10; each costs a full-image pass)


class ProtocolError(Exception):
    """A request or reply that breaks the protocol. Carries what the error reply needs."""

    def __init__(self, code: str, message: str, *, field: str | None = None, limit: str | None = None):
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code, self.message, self.field, self.limit = code, message, field, limit

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "field": self.field, "limit": self.limit}


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


# ---------------------------------------------------------------------------------------------------------
# msgpack with limits


def pack(header: dict[str, Any]) -> bytes:
    return msgpack.packb(header, use_bin_type=True)


def unpack_header(frame: bytes, limits: Limits) -> dict[str, Any]:
    """Unpacks one header frame; never allocates more than the frame's size allows, never runs code."""
    if len(frame) > limits.max_header_bytes:
        raise ProtocolError(
            "limit_exceeded",
            f"header frame is {len(frame)} bytes, over max_header_bytes={limits.max_header_bytes}",
            limit="max_header_bytes",
        )
    try:
        header = msgpack.unpackb(
            frame,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=limits.max_header_bytes,
            max_bin_len=0,  # headers carry no binary; images travel in their own frame
            max_ext_len=0,
            # Every element takes at least one byte, so the header size already bounds these; set them anyway
            # so a length prefix that lies cannot make the unpacker reserve more than the frame could hold.
            max_array_len=limits.max_header_bytes,
            max_map_len=limits.max_header_bytes // 2,
        )
    except Exception as e:  # msgpack raises many types (ValueError, ExtraData, StackError, UnicodeDecodeError...)
        raise ProtocolError("bad_message", f"header frame is not a valid msgpack map: {type(e).__name__}: {_short(str(e))}")
    if not isinstance(header, dict):
        raise ProtocolError("bad_message", f"header must be a msgpack map, got {type(header).__name__}")
    return header


# ---------------------------------------------------------------------------------------------------------
# field checks


def _str(header: dict, name: str, max_chars: int, limit: str, *, required: bool = True) -> str | None:
    if name not in header:
        if required:
            raise ProtocolError("bad_field", f"missing field {name!r}", field=name)
        return None
    value = header[name]
    if not isinstance(value, str):
        raise ProtocolError("bad_field", f"field {name!r} must be a string, got {_short(value)}", field=name)
    if len(value) > max_chars:
        raise ProtocolError(
            "limit_exceeded", f"field {name!r} has {len(value)} characters, over {limit}={max_chars}",
            field=name, limit=limit)
    return value


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("bad_field", f"field {name!r} must be an integer, got {_short(value)}", field=name)
    if not lo <= value <= hi:
        raise ProtocolError("bad_field", f"field {name!r}={value} is outside [{lo}, {hi}]", field=name)
    return value


def _float(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError("bad_field", f"field {name!r} must be a number, got {_short(value)}", field=name)
    value = float(value)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ProtocolError("bad_field", f"field {name!r}={value} is not finite or outside [{lo}, {hi}]", field=name)
    return value


def _check_keys(header: dict, allowed: set[str], where: str = "header") -> None:
    unknown = sorted(str(k) for k in header if k not in allowed)
    if unknown:
        raise ProtocolError("bad_field", f"unknown field(s) in {where}: {_short(unknown)}", field=unknown[0])


_COMMON = {"v", "op", "id"}
_SYNTH = _COMMON | {"job_id", "sample_id", "description", "boxes", "seed", "params", "timeout_s"}


@dataclasses.dataclass(frozen=True)
class SynthesizeRequest:
    request_id: str
    job_id: str
    sample_id: str | int
    description: str
    boxes: tuple[tuple[float, float, float, float], ...]
    seed: int
    params: dict[str, float | int]  # only the keys the sender set
    timeout_s: float | None


def validate_envelope(header: dict[str, Any], limits: Limits) -> tuple[str, str]:
    """Checks v, op and id; returns (op, id)."""
    if "v" not in header:
        raise ProtocolError("bad_version", f"missing protocol version field 'v' (expected {PROTOCOL_VERSION})", field="v")
    if type(header["v"]) is not int or header["v"] != PROTOCOL_VERSION:  # not 1.0, not True
        raise ProtocolError(
            "bad_version", f"protocol version v={_short(header['v'])}, this server speaks v={PROTOCOL_VERSION}",
            field="v")
    op = header.get("op")
    if op not in OPS:
        raise ProtocolError("bad_field", f"field 'op'={_short(op)} is not one of {OPS}", field="op")
    request_id = _str(header, "id", limits.max_id_chars, "max_id_chars")
    return op, request_id


def validate_synthesize(header: dict[str, Any], limits: Limits) -> SynthesizeRequest:
    _check_keys(header, _SYNTH)
    job_id = _str(header, "job_id", limits.max_id_chars, "max_id_chars")
    if "sample_id" not in header:
        raise ProtocolError("bad_field", "missing field 'sample_id'", field="sample_id")
    sample_id = header["sample_id"]
    if isinstance(sample_id, str):
        _str(header, "sample_id", limits.max_id_chars, "max_id_chars")
    else:
        sample_id = _int(sample_id, "sample_id", -(2**63), 2**63 - 1)
    description = _str(header, "description", limits.max_description_chars, "max_description_chars")
    if "seed" not in header:
        raise ProtocolError("bad_field", "missing field 'seed'", field="seed")
    seed = _int(header["seed"], "seed", 0, 2**63 - 1)
    boxes = validate_boxes(header.get("boxes"), limits)
    params: dict[str, float | int] = {}
    if header.get("params") is not None:
        raw = header["params"]
        if not isinstance(raw, dict):
            raise ProtocolError("bad_field", f"field 'params' must be a map, got {_short(raw)}", field="params")
        _check_keys(raw, set(GENERATION_PARAMS), where="params")
        if "steps" in raw:
            params["steps"] = _int(raw["steps"], "params.steps", 1, limits.max_steps)
        if "guidance" in raw:
            params["guidance"] = _float(raw["guidance"], "params.guidance", 0.0, 100.0)
        if "strength" in raw:
            params["strength"] = _float(raw["strength"], "params.strength", 1e-3, 1.0)
    timeout_s = None
    if header.get("timeout_s") is not None:
        timeout_s = _float(header["timeout_s"], "timeout_s", 0.0, 7 * 24 * 3600.0)
    return SynthesizeRequest(header["id"], job_id, sample_id, description, boxes, seed, params, timeout_s)


def validate_boxes(boxes: Any, limits: Limits) -> tuple[tuple[float, float, float, float], ...]:
    if boxes is None:
        raise ProtocolError("bad_field", "missing field 'boxes'", field="boxes")
    if not isinstance(boxes, list):
        raise ProtocolError("bad_field", f"field 'boxes' must be a list of [x0, y0, x1, y1], got {_short(boxes)}",
                            field="boxes")
    if len(boxes) > limits.max_boxes:
        raise ProtocolError("limit_exceeded", f"field 'boxes' has {len(boxes)} boxes, over max_boxes={limits.max_boxes}",
                            field="boxes", limit="max_boxes")
    if not boxes:
        raise ProtocolError("bad_field", "field 'boxes' is empty: at least one ground-truth box is needed", field="boxes")
    out = []
    for i, box in enumerate(boxes):
        name = f"boxes[{i}]"
        if not isinstance(box, list) or len(box) != 4:
            raise ProtocolError("bad_field", f"field {name!r} must be [x0, y0, x1, y1], got {_short(box)}", field=name)
        x0, y0, x1, y1 = (_float(c, name, -1e6, 1e6) for c in box)
        if not (x1 > x0 and y1 > y0):
            raise ProtocolError("bad_field", f"field {name!r}={_short(box)} needs x1 > x0 and y1 > y0", field=name)
        out.append((x0, y0, x1, y1))
    return tuple(out)


def validate_shutdown(header: dict[str, Any], limits: Limits) -> str:
    _check_keys(header, _COMMON | {"token"})
    return _str(header, "token", 1024, "max_token_chars")


def validate_plain(header: dict[str, Any]) -> None:
    """ping and stats take nothing beyond the envelope."""
    _check_keys(header, _COMMON)


# ---------------------------------------------------------------------------------------------------------
# building messages (both sides)


# Both protocols (this one and rollout's) build and read their envelopes with these; `protocol` is the version.


def request_header(op: str, request_id: str, *, protocol: int = PROTOCOL_VERSION, **fields: Any) -> dict[str, Any]:
    return {"v": protocol, "op": op, "id": request_id, **fields}


def synthesize_frames(
    *, job_id: str, sample_id: str | int, description: str, boxes, seed: int, image_bytes: bytes,
    params: dict | None = None, timeout_s: float | None = None,
) -> list[bytes]:
    header = request_header(
        "synthesize", job_id, job_id=job_id, sample_id=sample_id, description=description,
        boxes=[[float(c) for c in b] for b in boxes], seed=int(seed))
    if params:
        header["params"] = dict(params)
    if timeout_s is not None:
        header["timeout_s"] = float(timeout_s)
    return [pack(header), bytes(image_bytes)]


def reply_header(op: str | None, request_id: str | None, ok: bool, *, protocol: int = PROTOCOL_VERSION,
                 **fields: Any) -> dict[str, Any]:
    return {"v": protocol, "op": op, "id": request_id, "ok": ok, **fields}


def error_header(op: str | None, request_id: str | None, err: ProtocolError, *, protocol: int = PROTOCOL_VERSION,
                 **fields: Any) -> dict[str, Any]:
    return reply_header(op, request_id, False, protocol=protocol, error=err.to_wire(), **fields)


def unpack_reply(frame: bytes, max_bytes: int = 1 << 20, *, protocol: int = PROTOCOL_VERSION) -> dict[str, Any]:
    """Client side: replies are smaller than requests' limits but still untrusted bytes."""
    if len(frame) > max_bytes:
        raise ProtocolError("limit_exceeded", f"reply header is {len(frame)} bytes, over {max_bytes}")
    try:
        header = msgpack.unpackb(frame, raw=False, strict_map_key=True, max_bin_len=0, max_ext_len=0)
    except Exception as e:
        raise ProtocolError("bad_message", f"reply header is not valid msgpack: {type(e).__name__}")
    if not isinstance(header, dict) or type(header.get("v")) is not int or header["v"] != protocol:
        raise ProtocolError("bad_version", f"reply is not a v{protocol} map")
    return header
