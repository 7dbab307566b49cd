"""The worker's request handling without vLLM: validation, weight staging and versioning, limits.

A stand-in host records what the server hands it; the vLLM engine itself is exercised in test_vllm_engine.py.
"""
import io
import uuid
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch
from PIL import Image

from syngrpo_jax.protocol import rollout as proto
from syngrpo_jax.rollout import weight_push
from syngrpo_jax.rollout.vllm_worker.extension import iter_tensors
from syngrpo_jax.rollout.vllm_worker.server import STAGING_PREFIX, RolloutWorker, WeightSpec

SPEC = {"a.weight": (4, 3), "b.bias": (5,), "lm_head.weight": (2, 3)}


class FakeHost:
    vocab_size = 100

    def __init__(self):
        self.loaded, self.generated = [], []

    def load_weights(self, path, table):
        data = open(path, "rb").read()
        self.loaded.append({name: t.clone() for name, t in iter_tensors(bytearray(data), table)})

    def generate(self, prompts, images, params):
        self.generated.append((prompts, images, params))
        return [len(p.ids) for p in prompts], [[{"ids": [1], "logprobs": [-0.5], "text": "x", "finish": "length"}]
                                                * params["n"] for _ in prompts]


@pytest.fixture
def worker(tmp_path):
    host = FakeHost()
    return RolloutWorker(host, WeightSpec(SPEC, tied_embeddings=True), limits=proto.Limits(max_prompts=4),
                         staging_dir=str(tmp_path), admin_token="secret"), host


def call(worker, op, *frames, **fields):
    return proto.unpack_reply(worker.handle([proto.pack(proto.request_header(op, uuid.uuid4().hex, **fields)),
                                             *frames])[0])


def tensors(seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [(n, rng.normal(size=s).astype(dtype)) for n, s in SPEC.items() if n != "lm_head.weight"]


def test_socket_buckets_apply_at_the_commit_only(worker):
    w, host = worker
    pieces = list(weight_push.buckets(tensors(0), bucket_bytes=50))
    assert len(pieces) == 2  # a.weight (48 bytes) fills one bucket
    for i, (table, data) in enumerate(pieces):
        reply = call(w, "weights_bucket", bytes(data), update="u1", index=i, tensors=[e.to_wire() for e in table])
        assert reply["ok"] and reply["received"] == i + 1 and reply["weight_version"] == 0
    assert host.loaded == []
    reply = call(w, "weights_commit", update="u1", version=7, buckets=2)
    assert reply["ok"] and reply["weight_version"] == 7 and w.weight_version == 7
    for name, array in tensors(0):
        np.testing.assert_array_equal(host.loaded[0][name].numpy(), array)
    assert not list(Path(w.staging_dir).glob(f"{STAGING_PREFIX}*"))  # the staging file is gone


def test_a_file_update_in_bfloat16_round_trips(worker, tmp_path):
    w, host = worker
    source = tensors(1, ml_dtypes.bfloat16)
    path = tmp_path / f"{STAGING_PREFIX}x.bin"
    table, nbytes = weight_push.write_file(str(path), source)
    assert nbytes == sum(a.nbytes for _, a in source)
    reply = call(w, "weights_file", version=3, path=str(path), tensors=[e.to_wire() for e in table])
    assert reply["ok"] and w.weight_version == 3
    for name, array in source:
        got = host.loaded[0][name]
        assert got.dtype == torch.bfloat16
        np.testing.assert_array_equal(got.float().numpy(), array.astype(np.float32))


@pytest.mark.parametrize("case,code", [
    ("unknown name", "bad_field"), ("wrong shape", "bad_field"), ("incomplete", "bad_field"),
    ("count mismatch", "bad_field"), ("out of order", "bad_field"), ("outside staging", "bad_field"),
    ("overlap", "bad_field"), ("float version", "bad_field")])
def test_bad_updates_are_refused_and_change_nothing(worker, tmp_path, case, code):
    w, host = worker
    good = [e.to_wire() for e in weight_push.buckets(tensors(0), 1 << 20).__next__()[0]]
    data = next(weight_push.buckets(tensors(0), 1 << 20))[1]
    if case == "unknown name":
        reply = call(w, "weights_bucket", bytes(data), update="u", index=0, tensors=[["c.weight", "float32", [3], 0]])
    elif case == "wrong shape":
        reply = call(w, "weights_bucket", bytes(data), update="u", index=0, tensors=[["a.weight", "float32", [3, 4], 0]])
    elif case == "incomplete":
        call(w, "weights_bucket", bytes(data[:48]), update="u", index=0, tensors=good[:1])
        reply = call(w, "weights_commit", update="u", version=1, buckets=1)
    elif case == "count mismatch":
        call(w, "weights_bucket", bytes(data), update="u", index=0, tensors=good)
        reply = call(w, "weights_commit", update="u", version=1, buckets=2)
    elif case == "out of order":
        call(w, "weights_bucket", bytes(data), update="u", index=0, tensors=good[:1])
        reply = call(w, "weights_bucket", bytes(data), update="u", index=2, tensors=good[1:])
    elif case == "outside staging":
        reply = call(w, "weights_file", version=1, path=str(tmp_path.parent / f"{STAGING_PREFIX}y.bin"), tensors=good)
    elif case == "overlap":
        reply = call(w, "weights_bucket", bytes(data), update="u", index=0,
                     tensors=[good[0], ["b.bias", "float32", [5], 40]])
    else:
        call(w, "weights_bucket", bytes(data), update="u", index=0, tensors=good)
        reply = call(w, "weights_commit", update="u", version=1.0, buckets=1)
    assert reply["ok"] is False and reply["error"]["code"] == code, reply["error"]
    assert host.loaded == [] and w.weight_version == 0


def test_generate_splits_images_per_prompt_and_checks_limits(worker):
    w, host = worker
    png = io.BytesIO()
    Image.fromarray(np.zeros((28, 56, 3), np.uint8)).save(png, format="PNG")
    params = dict(n=2, temperature=1.0, top_p=0.9, top_k=5, max_tokens=3, stop_token_ids=[7], seed=1)
    prompts = [{"ids": [1, 9, 2], "images": 1, "seed": 4}, {"ids": [3], "images": 0, "seed": 5},
               {"ids": [9, 9], "images": 2, "seed": 6}]
    reply = call(w, "generate", png.getvalue(), png.getvalue(), png.getvalue(), params=params, prompts=prompts)
    assert reply["ok"] and reply["prompt_lens"] == [3, 1, 2] and len(reply["results"][0]) == 2
    got_prompts, images, got_params = host.generated[0]
    assert [len(i) for i in images] == [1, 0, 2] and images[0][0].size == (56, 28)
    assert [p.seed for p in got_prompts] == [4, 5, 6] and got_params == params
    too_many = call(w, "generate", params=params, prompts=[{"ids": [1], "images": 0, "seed": 0}] * 5)
    assert too_many["error"]["code"] == "limit_exceeded" and too_many["error"]["limit"] == "max_prompts"
    big = dict(params, max_tokens=10**9)
    assert call(w, "generate", params=big, prompts=prompts[1:2])["error"]["field"] == "params.max_tokens"
    assert call(w, "ping")["ok"]


def test_shutdown_needs_the_token(worker):
    w, _ = worker
    assert call(w, "shutdown", token="nope")["error"]["code"] == "unauthorized" and not w._stop
    assert call(w, "shutdown", token="secret")["ok"] and w._stop


def test_a_curve_worker_answers_only_clients_with_its_key(worker, tmp_path):
    import threading

    import zmq

    from syngrpo_jax.protocol import curve_keys, endpoints
    from syngrpo_jax.rollout.vllm_client import WorkerClient, WorkerError

    w, _ = worker
    public_file, secret_file = curve_keys.write_keypair(tmp_path / "keys")
    ctx = zmq.Context()
    sock, endpoint, _ = endpoints.bind_router(ctx, "127.0.0.1", 0, curve_keys.load_secret_keypair(secret_file),
                                              max_message_bytes=1 << 20)
    thread = threading.Thread(target=w.serve, args=(sock,), daemon=True)
    thread.start()
    try:
        good = WorkerClient(endpoint, server_public_key=str(public_file))
        assert good.call("ping", timeout_s=10)[0]["ready"]
        good.stop()
        plain = WorkerClient(endpoint)
        with pytest.raises(WorkerError, match="did not answer ping"):
            plain.call("ping", timeout_s=1.0)
        plain.stop()
    finally:
        w._stop = True
        thread.join(5)
        sock.close(linger=0)
        ctx.term()


def test_the_worker_refuses_an_open_bind_without_keys():
    """Before vLLM loads (the model path does not even exist)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "syngrpo_jax.rollout.vllm_worker", "--model=/nonexistent",
                          "--bind_address=0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "refusing to bind '0.0.0.0'" in out.stderr and "CURVE" in out.stderr
