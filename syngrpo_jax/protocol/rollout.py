"""Wire format of the rollout-worker protocol, shared by the trainer's vLLM engine and the worker process.

The same family as the data server's protocol (`protocol.synthesis`): a ZeroMQ multipart message whose first
frame is a msgpack header (unpacked with size limits, never unpickled), then raw byte frames. No jax, no torch.

    request = [header, *frames]      reply = [header, *frames]

Request headers (string keys; unknown keys are an error). Every op: v (PROTOCOL_VERSION, an int), op, id.

    ping             -
    stats            -
    generate         params: {n, temperature, top_p, top_k, max_tokens, stop_token_ids, seed}
                     prompts: [{ids: [int] (ONE image placeholder per image), images: int, seed: int}, ...]
                     frames: each prompt's images in order, as PNG (or JPEG) file bytes
    process_images   frames: images; the reply carries what the worker's own image processor makes of them
    weights_bucket   update: str, index: int, tensors: TABLE; one frame holding the bytes TABLE points into
    weights_commit   update: str, version: int, buckets: int (how many were sent)
    weights_file     version: int, path: str, tensors: TABLE (the bytes are in a file on the worker's host)
    shutdown         token: str

TABLE is [[name, dtype, shape, offset], ...]: HF checkpoint names and layouts, dtype one of DTYPES, raw
little-endian C-order bytes at `offset`, tensors packed without overlap.

Reply headers: v, op, id, ok; on failure error: {code, message, field, limit} (codes of protocol.synthesis).

    ping             ready: bool, weight_version: int, model: str
    generate         weight_version: int, prompt_lens: [int] (prompt length after the worker expanded the
                     images), results: [[{ids: [int], logprobs: [float], text: str, finish: "stop"|"length"}]]
    process_images   grids: [[t, h, w]]; one frame: float32 pixel_values of all images, concatenated
    weights_*        weight_version (after a commit/file: the new one), received: int (buckets so far);
                     after a commit/file also load_s: float (seconds the engine took to load them)
    stats            stats: map
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from syngrpo_jax.protocol import synthesis
from syngrpo_jax.protocol.synthesis import ProtocolError, pack, unpack_header
from syngrpo_jax.service_process import pid_alive

__all__ = ["ProtocolError", "pack", "unpack_header"]

PROTOCOL_VERSION = 1
ADMIN_TOKEN_ENV = "SYNGRPO_ROLLOUT_ADMIN_TOKEN"  # the worker's shutdown token (from its launcher's environment)
PARENT_PID_ENV = "SYNGRPO_ROLLOUT_PARENT_PID"  # set by a launcher whose death should stop the worker
OPS = ("ping", "stats", "generate", "process_images", "weights_bucket", "weights_commit", "weights_file",
       "shutdown")
DTYPES = {"float32": 4, "bfloat16": 2, "float16": 2}
# Weight files in the worker's staging directory (/dev/shm: memory) are named STAGING_PREFIX<pid of the writer>-*,
# written by the trainer (weights_file) or the worker (socket buckets) and removed by their writer. One killed
# mid-push (SIGKILL) cannot remove its file: the next worker or trainer to start removes files of dead writers.
STAGING_PREFIX = "syngrpo-weights-"
FINISH_REASONS = ("stop", "length")
SAMPLING_FIELDS = ("n", "temperature", "top_p", "top_k", "max_tokens", "stop_token_ids", "seed")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may carry; the worker's flags set them. Bounds the worker's memory and work per message."""

    max_message_bytes: int = 1 << 30  # all frames of one message (a weight bucket is the largest)
    max_header_bytes: int = 4 << 20  # the msgpack header (a weight table of a 7B model is ~60 kB)
    max_prompts: int = 1024  # prompts per generate
    max_prompt_tokens: int = 32768  # ids per prompt (before image expansion)
    max_images: int = 16  # images per prompt
    max_image_pixels: int = 4096 * 4096
    max_n: int = 64  # samples per prompt
    max_new_tokens: int = 32768
    max_stop_ids: int = 64
    max_tensors: int = 100_000  # tensors in one table
    max_id_chars: int = 128


@dataclasses.dataclass(frozen=True)
class Prompt:
    ids: list[int]
    images: int
    seed: int


@dataclasses.dataclass(frozen=True)
class GenerateRequest:
    prompts: list[Prompt]
    params: dict[str, Any]  # the SAMPLING_FIELDS, validated


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPES[self.dtype]

    def to_wire(self) -> list:
        return [self.name, self.dtype, list(self.shape), self.offset]


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if type(value) is not int:  # bool and float (1.0) are not ints here
        raise ProtocolError("bad_field", f"field {name!r} must be an integer, got {_short(value)}", field=name)
    if not lo <= value <= hi:
        raise ProtocolError("bad_field", f"field {name!r}={value} is outside [{lo}, {hi}]", field=name)
    return value


def _float(value: Any, name: str, lo: float, hi: float) -> float:
    if type(value) not in (int, float):
        raise ProtocolError("bad_field", f"field {name!r} must be a number, got {_short(value)}", field=name)
    value = float(value)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ProtocolError("bad_field", f"field {name!r}={value} is not finite or outside [{lo}, {hi}]", field=name)
    return value


def _str(value: Any, name: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise ProtocolError("bad_field", f"field {name!r} must be a string, got {_short(value)}", field=name)
    if len(value) > max_chars:
        raise ProtocolError("limit_exceeded", f"field {name!r} has {len(value)} characters, over {max_chars}",
                            field=name, limit="max_id_chars")
    return value


def _list(value: Any, name: str, max_len: int, limit: str) -> list:
    if not isinstance(value, list):
        raise ProtocolError("bad_field", f"field {name!r} must be a list, got {_short(value)}", field=name)
    if len(value) > max_len:
        raise ProtocolError("limit_exceeded", f"field {name!r} has {len(value)} entries, over {limit}={max_len}",
                            field=name, limit=limit)
    return value


def _fields(header: dict, required: set[str], optional: set[str] = frozenset(), where: str = "header") -> None:
    allowed = required | optional
    unknown = sorted(str(k) for k in header if k not in allowed)
    if unknown:
        raise ProtocolError("bad_field", f"unknown field(s) in {where}: {_short(unknown)}", field=unknown[0])
    missing = sorted(required - set(header))
    if missing:
        raise ProtocolError("bad_field", f"missing field {missing[0]!r} in {where}", field=missing[0])


_ENVELOPE = {"v", "op", "id"}


def validate_envelope(header: dict, limits: Limits) -> tuple[str, str]:
    """Checks v, op and id; returns (op, id)."""
    v = header.get("v")
    if type(v) is not int or v != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"protocol version v={_short(v)}, this worker speaks "
                            f"v={PROTOCOL_VERSION} (an integer)", field="v")
    op = header.get("op")
    if op not in OPS:
        raise ProtocolError("bad_field", f"field 'op'={_short(op)} is not one of {OPS}", field="op")
    if "id" not in header:
        raise ProtocolError("bad_field", "missing field 'id'", field="id")
    return op, _str(header["id"], "id", limits.max_id_chars)


def validate_plain(header: dict) -> None:
    _fields(header, _ENVELOPE)


def validate_shutdown(header: dict) -> str:
    _fields(header, _ENVELOPE | {"token"})
    return _str(header["token"], "token", 1024)


def validate_sampling(params: Any, limits: Limits, vocab_size: int) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise ProtocolError("bad_field", f"field 'params' must be a map, got {_short(params)}", field="params")
    _fields(params, set(SAMPLING_FIELDS), where="params")
    stop = _list(params["stop_token_ids"], "params.stop_token_ids", limits.max_stop_ids, "max_stop_ids")
    return {
        "n": _int(params["n"], "params.n", 1, limits.max_n),
        "temperature": _float(params["temperature"], "params.temperature", 0.0, 100.0),
        "top_p": _float(params["top_p"], "params.top_p", 1e-6, 1.0),
        "top_k": _int(params["top_k"], "params.top_k", 0, vocab_size),
        "max_tokens": _int(params["max_tokens"], "params.max_tokens", 1, limits.max_new_tokens),
        "stop_token_ids": [_int(t, f"params.stop_token_ids[{i}]", 0, vocab_size - 1) for i, t in enumerate(stop)],
        "seed": _int(params["seed"], "params.seed", 0, 2**63 - 1),
    }


def validate_generate(header: dict, num_frames: int, limits: Limits, vocab_size: int) -> GenerateRequest:
    """The generate request, with its image count checked against the frames that came with it."""
    _fields(header, _ENVELOPE | {"params", "prompts"})
    params = validate_sampling(header["params"], limits, vocab_size)
    prompts = []
    for i, p in enumerate(_list(header["prompts"], "prompts", limits.max_prompts, "max_prompts")):
        where = f"prompts[{i}]"
        if not isinstance(p, dict):
            raise ProtocolError("bad_field", f"field {where!r} must be a map, got {_short(p)}", field=where)
        _fields(p, {"ids", "images", "seed"}, where=where)
        ids = _list(p["ids"], f"{where}.ids", limits.max_prompt_tokens, "max_prompt_tokens")
        if not ids:
            raise ProtocolError("bad_field", f"field '{where}.ids' is empty", field=f"{where}.ids")
        if not all(type(t) is int and 0 <= t < vocab_size for t in ids):
            bad = next(t for t in ids if not (type(t) is int and 0 <= t < vocab_size))
            raise ProtocolError("bad_field", f"field '{where}.ids' holds {_short(bad)}, not a token id in "
                                f"[0, {vocab_size})", field=f"{where}.ids")
        prompts.append(Prompt(ids, _int(p["images"], f"{where}.images", 0, limits.max_images),
                              _int(p["seed"], f"{where}.seed", 0, 2**63 - 1)))
    if not prompts:
        raise ProtocolError("bad_field", "field 'prompts' is empty", field="prompts")
    images = sum(p.images for p in prompts)
    if images != num_frames:
        raise ProtocolError("bad_message", f"the prompts name {images} images but {num_frames} image frames came",
                            field="prompts")
    return GenerateRequest(prompts, params)


def validate_table(tensors: Any, limits: Limits, data_bytes: int | None) -> list[TensorEntry]:
    """A weight table: names, dtypes, shapes, offsets; entries must not overlap and (when the data's size is
    known) must lie inside it."""
    out, spans = [], []
    for i, t in enumerate(_list(tensors, "tensors", limits.max_tensors, "max_tensors")):
        where = f"tensors[{i}]"
        if not (isinstance(t, list) and len(t) == 4):
            raise ProtocolError("bad_field", f"field {where!r} must be [name, dtype, shape, offset], got "
                                f"{_short(t)}", field=where)
        name, dtype, shape, offset = t
        name = _str(name, f"{where}.name", 512)
        if dtype not in DTYPES:
            raise ProtocolError("bad_field", f"field '{where}.dtype'={_short(dtype)} is not one of {list(DTYPES)}",
                                field=f"{where}.dtype")
        dims = tuple(_int(d, f"{where}.shape", 1, 2**40) for d in _list(shape, f"{where}.shape", 8, "max_rank"))
        entry = TensorEntry(name, dtype, dims, _int(offset, f"{where}.offset", 0, 2**50))
        if data_bytes is not None and entry.offset + entry.nbytes > data_bytes:
            raise ProtocolError("bad_field", f"{where} ({name}) spans bytes [{entry.offset}, "
                                f"{entry.offset + entry.nbytes}) beyond the {data_bytes} bytes sent", field=where)
        out.append(entry)
        spans.append((entry.offset, entry.offset + entry.nbytes, name))
    spans.sort()
    for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
        if start < end:
            raise ProtocolError("bad_field", f"tensors {a!r} and {b!r} overlap", field="tensors")
    return out


def validate_weights_bucket(header: dict, data_bytes: int, limits: Limits) -> tuple[str, int, list[TensorEntry]]:
    _fields(header, _ENVELOPE | {"update", "index", "tensors"})
    return (_str(header["update"], "update", limits.max_id_chars), _int(header["index"], "index", 0, 2**31),
            validate_table(header["tensors"], limits, data_bytes))


def validate_weights_commit(header: dict, limits: Limits) -> tuple[str, int, int]:
    _fields(header, _ENVELOPE | {"update", "version", "buckets"})
    return (_str(header["update"], "update", limits.max_id_chars), _int(header["version"], "version", 0, 2**62),
            _int(header["buckets"], "buckets", 0, 2**31))


def validate_weights_file(header: dict, limits: Limits) -> tuple[int, str, list[TensorEntry]]:
    _fields(header, _ENVELOPE | {"version", "path", "tensors"})
    return (_int(header["version"], "version", 0, 2**62), _str(header["path"], "path", 4096),
            validate_table(header["tensors"], limits, None))


# ---------------------------------------------------------------------------------------------------------
# building and reading messages (both sides)


def staging_prefix(pid: int | None = None) -> str:
    """The name prefix of the staging files this process (or `pid`) writes."""
    return f"{STAGING_PREFIX}{os.getpid() if pid is None else int(pid)}-"


def remove_stale_staging(directory: str | os.PathLike) -> list[str]:
    """Removes staging files in `directory` whose writer process is gone (a push killed midway); returns them.
    Files of running processes, of other users, or without a pid in their name are left alone."""
    removed = []
    for path in Path(directory).glob(f"{STAGING_PREFIX}*"):
        pid = path.name[len(STAGING_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or pid_alive(int(pid)) or path.stat().st_uid != os.getuid():
                continue
            path.unlink()
            removed.append(str(path))
        except OSError:
            continue  # removed meanwhile
    return removed


def request_header(op: str, request_id: str, **fields: Any) -> dict[str, Any]:
    return synthesis.request_header(op, request_id, protocol=PROTOCOL_VERSION, **fields)


def reply_header(op: str | None, request_id: str | None, ok: bool, **fields: Any) -> dict[str, Any]:
    return synthesis.reply_header(op, request_id, ok, protocol=PROTOCOL_VERSION, **fields)


def error_header(op: str | None, request_id: str | None, err: ProtocolError) -> dict[str, Any]:
    return synthesis.error_header(op, request_id, err, protocol=PROTOCOL_VERSION)


def unpack_reply(frame: bytes, max_bytes: int = 256 << 20) -> dict[str, Any]:
    """Client side: a reply header (generate replies carry every sampled token, so the bound is generous)."""
    return synthesis.unpack_reply(frame, max_bytes, protocol=PROTOCOL_VERSION)
