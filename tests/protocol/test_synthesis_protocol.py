"""The data-server wire format: round trips, field-naming errors, strict unpacking, and no jax/torch imports."""
import pickle
import subprocess
import sys

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syngrpo_jax.protocol import curve_keys
from syngrpo_jax.protocol import synthesis as proto

LIMITS = proto.Limits(max_boxes=4, max_description_chars=50, max_id_chars=16, max_header_bytes=4096)


def header(**overrides):
    h = proto.request_header("synthesize", "j1", job_id="j1", sample_id=7, description="a red beach",
                             boxes=[[1.5, 2, 30, 40.25]], seed=3)
    h.update(overrides)
    return {k: v for k, v in h.items() if v is not ...}


def check(h, limits=LIMITS):
    op, _ = proto.validate_envelope(h, limits)
    assert op == "synthesize"
    return proto.validate_synthesize(h, limits)


def test_synthesize_round_trip():
    frames = proto.synthesize_frames(job_id="j1", sample_id="s-1", description="snowy street", boxes=[(0, 0, 5, 5)],
                                     seed=2**62, image_bytes=b"PNG", params={"steps": 4, "guidance": 2}, timeout_s=3)
    assert frames[1] == b"PNG"
    req = check(proto.unpack_header(frames[0], LIMITS))
    assert (req.job_id, req.sample_id, req.description, req.seed) == ("j1", "s-1", "snowy street", 2**62)
    assert req.boxes == ((0.0, 0.0, 5.0, 5.0),)
    assert req.params == {"steps": 4, "guidance": 2.0}
    assert req.timeout_s == 3.0


@pytest.mark.parametrize("overrides, code, field, limit", [
    (dict(seed=-1), "bad_field", "seed", None),
    (dict(seed=True), "bad_field", "seed", None),
    (dict(seed="3"), "bad_field", "seed", None),
    (dict(seed=...), "bad_field", "seed", None),
    (dict(sample_id=1.5), "bad_field", "sample_id", None),
    (dict(description=b"x".decode() * 51), "limit_exceeded", "description", "max_description_chars"),
    (dict(description=3), "bad_field", "description", None),
    (dict(job_id="x" * 17), "limit_exceeded", "job_id", "max_id_chars"),
    (dict(boxes=...), "bad_field", "boxes", None),
    (dict(boxes=[]), "bad_field", "boxes", None),
    (dict(boxes=[[0, 0, 1, 1]] * 5), "limit_exceeded", "boxes", "max_boxes"),
    (dict(boxes=[[0, 0, 1]]), "bad_field", "boxes[0]", None),
    (dict(boxes=[[0, 0, 1, 1], [5, 5, 2, 9]]), "bad_field", "boxes[1]", None),
    (dict(boxes=[[0, 0, float("nan"), 1]]), "bad_field", "boxes[0]", None),
    (dict(boxes=[[0, 0, "1", 1]]), "bad_field", "boxes[0]", None),
    (dict(params={"steps": 0}), "bad_field", "params.steps", None),
    (dict(params={"steps": 10**6}), "bad_field", "params.steps", None),
    (dict(params={"strength": 1.5}), "bad_field", "params.strength", None),
    (dict(params={"eta": 1}), "bad_field", "eta", None),
    (dict(params=[1]), "bad_field", "params", None),
    (dict(timeout_s=-1), "bad_field", "timeout_s", None),
    (dict(colour="red"), "bad_field", "colour", None),
])
def test_errors_name_the_field(overrides, code, field, limit):
    with pytest.raises(proto.ProtocolError) as info:
        check(header(**overrides))
    err = info.value
    assert (err.code, err.field, err.limit) == (code, field, limit)
    assert field.split(".")[-1].split("[")[0] in err.message


@pytest.mark.parametrize("v", [0, 2, "1", None, True, 1.0000001, 1.0])
def test_wrong_version(v):
    """Only the integer 1 is version 1: 1.0 (== 1 in Python) and True (== 1 too) are not, on either side."""
    h = header(v=v)
    with pytest.raises(proto.ProtocolError) as info:
        proto.validate_envelope(proto.unpack_header(proto.pack(h), LIMITS), LIMITS)
    assert info.value.code == "bad_version" and info.value.field == "v"
    with pytest.raises(proto.ProtocolError, match="v1"):
        proto.unpack_reply(proto.pack(dict(proto.reply_header("ping", "x", True), v=v)))


def test_missing_version_and_unknown_op():
    with pytest.raises(proto.ProtocolError, match="'v'"):
        proto.validate_envelope(header(v=...), LIMITS)
    with pytest.raises(proto.ProtocolError, match="op") as info:
        proto.validate_envelope(header(op="rm -rf"), LIMITS)
    assert info.value.field == "op"


def test_pickle_is_just_bad_bytes():
    frame = pickle.dumps(header())
    with pytest.raises(proto.ProtocolError) as info:
        proto.validate_envelope(proto.unpack_header(frame, LIMITS), LIMITS)
    assert info.value.code in ("bad_message", "bad_version")


def test_unpack_limits():
    with pytest.raises(proto.ProtocolError) as info:
        proto.unpack_header(b"\x80" * 5000, LIMITS)
    assert info.value.limit == "max_header_bytes"
    lying = b"\xdd\xff\xff\xff\xff"  # array32 header claiming 4 billion elements, no data
    with pytest.raises(proto.ProtocolError, match="msgpack"):
        proto.unpack_header(lying, LIMITS)
    for not_a_map in (msgpack.packb([1, 2]), msgpack.packb(3), msgpack.packb("x")):
        with pytest.raises(proto.ProtocolError, match="map"):
            proto.unpack_header(not_a_map, LIMITS)
    with pytest.raises(proto.ProtocolError):  # binary inside a header
        proto.unpack_header(msgpack.packb({"v": 1, "x": b"\0" * 10}, use_bin_type=True), LIMITS)
    with pytest.raises(proto.ProtocolError):  # ext types
        proto.unpack_header(msgpack.packb(msgpack.ExtType(5, b"abc")), LIMITS)
    with pytest.raises(proto.ProtocolError):  # deep nesting
        proto.unpack_header(b"\x91" * 3000 + b"\x00", LIMITS)


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(proto._SYNTH) + ["token", "x"]), _values, max_size=12))
def test_validation_raises_only_protocol_errors(h):
    try:
        op, _ = proto.validate_envelope(h, LIMITS)
        if op == "synthesize":
            proto.validate_synthesize(h, LIMITS)
    except proto.ProtocolError as e:
        assert e.code in proto.ERROR_CODES and e.message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_unpack_or_fail_cleanly(data):
    try:
        proto.unpack_header(data, LIMITS)
    except proto.ProtocolError as e:
        assert e.code in ("bad_message", "limit_exceeded")


def test_curve_key_files(tmp_path):
    public_file, secret_file = curve_keys.write_keypair(tmp_path)
    public, secret = curve_keys.load_secret_keypair(secret_file)
    assert curve_keys.load_public_key(public_file) == public == curve_keys.load_public_key(public.decode())
    assert len(secret) == 40 and (secret_file.stat().st_mode & 0o777) == 0o600
    with pytest.raises(FileNotFoundError, match="neither"):
        curve_keys.load_public_key(tmp_path / "missing.key")
    with pytest.raises(ValueError, match="no secret"):
        curve_keys.load_secret_keypair(public_file)


def test_client_side_imports_neither_jax_nor_torch():
    code = ("import sys, syngrpo_jax.protocol.synthesis, syngrpo_jax.protocol.curve_keys, "
            "syngrpo_jax.synthesis.client, syngrpo_jax.synthesis.local_server\n"
            "bad = [m for m in ('jax', 'torch', 'diffusers') if m in sys.modules]\nassert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_server_imports_no_jax():
    code = "import sys, synth_torch.server\nassert 'jax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
