"""Rollout engines side by side: the vLLM worker vs the JAX sampler vs transformers' generate; weight-sync speed.

    python benchmarks/rollout_engines.py                 # the demo model (configs/tiny_cpu.py), CPU, ~10 minutes
    python benchmarks/rollout_engines.py --repeats=5 --sync_models=demo,wide

Model: configs/tiny_cpu.py's (the demo's architecture and tokenizer, built by the trainer's own code) with
weights redrawn at a scale that gives O(1) logits, saved as an HF directory that all three load. Prompts: the
demo's REC prompts (one 112 px image each), G responses of --new_tokens each at temperature 1 with no stop
token, so every engine generates exactly prompts x G x new_tokens tokens. Reported: generated tokens/s (median
of --repeats, interleaved), the vLLM/JAX ratio (target >= 2x at G = 6, 128 tokens), and how many of 16 greedy
tokens of the first prompt vLLM and the JAX sampler agree on.

Weight sync: for each model in --sync_models, pushes of the parameters (float32) through the /dev/shm file and
through socket buckets; seconds (gather + send + the worker's load into vLLM, and the load alone) and MB/s vs
parameter bytes. For the demo model it is compared with the demo's GRPO update (batch 8 x G 4, its max_tokens),
timed here with the project's train step: target under 5% of a training step.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import harness
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from flax import nnx  # noqa: E402

from syngrpo_jax import policy  # noqa: E402
from syngrpo_jax.data.sources import load_samples  # noqa: E402
from syngrpo_jax.grpo.batch import build_train_batch  # noqa: E402
from syngrpo_jax.grpo.optimizer import make_optimizer  # noqa: E402
from syngrpo_jax.grpo.train_step import LossConfig, make_train_step  # noqa: E402
from syngrpo_jax.models import qwen2_5_vl  # noqa: E402
from syngrpo_jax.rollout.base import SamplingParams  # noqa: E402
from syngrpo_jax.rollout.jax_sampler import JaxSampler  # noqa: E402
from syngrpo_jax.rollout.requests import prepare_request  # noqa: E402
from syngrpo_jax.rollout.vllm_engine import engine_from_config  # noqa: E402

WIDE = dict(vocab_size=512, hidden_size=1024, num_layers=12, num_heads=16, num_kv_heads=4, intermediate_size=2816,
            vision_hidden_size=256, vision_depth=4, vision_heads=4, vision_intermediate_size=1024,
            fullatt_block_indexes=(3,))


def demo_config():
    sys.path.insert(0, os.path.join(REPO, "configs"))
    import tiny_cpu

    return tiny_cpu.get_config()


def redraw(model, seed: int = 1, std: float = 0.15):
    """N(0, std) weights, norms 1 + N(0, 0.1), so logits are O(1) and greedy choices have clear margins."""
    state = nnx.state(model, nnx.Param)
    leaves, tree = jax.tree.flatten_with_path(state)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    new = [(1.0 if "norm" in jax.tree_util.keystr(p) else 0.0)
           + (0.1 if "norm" in jax.tree_util.keystr(p) else std) * jax.random.normal(k, x.shape, x.dtype)
           for (p, x), k in zip(leaves, keys)]
    nnx.update(model, jax.tree.unflatten(tree, new))


def hf_generate_fn(model_dir, requests, group, new_tokens, pad_id):
    from transformers import Qwen2_5_VLForConditionalGeneration

    hf = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    length = max(len(r.prompt_ids) for r in requests)
    ids = np.full((len(requests), length), pad_id, np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(requests):
        ids[i, length - len(r.prompt_ids):], mask[i, length - len(r.prompt_ids):] = r.prompt_ids, 1
    kwargs = dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                  mm_token_type_ids=torch.tensor((ids == hf.config.image_token_id).astype(np.int64)),
                  pixel_values=torch.tensor(np.concatenate([r.pixel_values for r in requests])),
                  image_grid_thw=torch.tensor(np.concatenate([r.image_grid_thw for r in requests])))

    def run():
        with torch.no_grad():
            out = hf.generate(**kwargs, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                              max_new_tokens=new_tokens, min_new_tokens=new_tokens, num_return_sequences=group,
                              pad_token_id=pad_id)
        assert out.shape == (len(requests) * group, length + new_tokens), out.shape

    return run


def sync_rows(engine, params, name: str, repeats: int) -> list[dict]:
    rows = []
    for path in ("file", "socket"):
        engine.transfer = path
        runs = []
        for k in range(repeats + 1):
            engine.update_weights(params, 1000 + k)
            runs.append(dict(engine.last_sync))
        runs = runs[1:]  # the first push of a path warms it up
        seconds = float(np.median([r["seconds"] for r in runs]))
        assert all(r["path"] == path for r in runs)
        rows.append({"model": name, "path": path, "bytes": runs[0]["bytes"], "seconds": seconds,
                     "worker_load_s": float(np.median([r["worker_s"] for r in runs])),
                     "MB_per_s": runs[0]["bytes"] / 1e6 / seconds})
    engine.transfer = "auto"
    return rows


def update_seconds(model, config, requests, engine, repeats: int) -> float:
    """The demo's GRPO update (its batch, G and max_tokens) with the project's jitted train step."""
    g, t = config.rollout.group_size, config.rollout.max_tokens
    out = engine.generate(requests, SamplingParams(n=g, temperature=1.0, max_tokens=t, seed=3))
    batch = build_train_batch(model.config, requests, [[r.token_ids for r in grp] for grp in out],
                              np.random.default_rng(0).normal(size=len(requests) * g).astype(np.float32),
                              old_logp=[[r.logprobs for r in grp] for grp in out],
                              prompt_multiple=config.rollout.prompt_multiple, response_multiple=t, max_response_len=t)
    graphdef, state = nnx.split(model)
    tx = make_optimizer(learning_rate=config.optim.learning_rate, total_steps=10)
    step = make_train_step(graphdef, tx, LossConfig(temperature=1.0))
    params = nnx.to_pure_dict(state)
    opt = tx.init(params)
    seconds = []
    for k in range(repeats + 1):
        params = jax.tree.map(jnp.copy, params)  # the step donates its inputs
        started = time.perf_counter()
        params, opt, metrics = step(params, opt, None, batch, jax.random.key(k))
        jax.block_until_ready(metrics)
        seconds.append(time.perf_counter() - started)
    return float(np.median(seconds[1:]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--group", type=int, default=6)
    p.add_argument("--new_tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sync_models", default="demo,wide", help="demo and/or wide (hidden 1024 x 12 layers)")
    p.add_argument("--skip_transformers", action="store_true")
    p.add_argument("--max_load", type=float, default=0.0)
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "rollout_engines.json"))
    a = p.parse_args()
    load_before = harness.wait_for_quiet(a.max_load, timeout_s=600) if a.max_load else harness.load_average()
    root = tempfile.mkdtemp(prefix="rollout-engines-")
    config = demo_config()
    config.rollout.vllm.update(max_model_len=1024, max_images=1)
    samples = load_samples(config.data, os.path.join(root, "data"))
    pol = policy.load_policy(config.model, root, seed=0,
                             corpus=policy.task_corpus(samples, config.reward.response_format))
    redraw(pol.model)
    qwen2_5_vl.save_pretrained(pol.model, pol.model_dir)
    requests = [prepare_request(s, pol.tokenizer, config.reward.response_format, min_pixels=config.data.min_pixels,
                                max_pixels=config.data.max_pixels).request for s in samples[:a.prompts]]
    params = SamplingParams(n=a.group, temperature=1.0, max_tokens=a.new_tokens, seed=0)
    jax_sampler = JaxSampler(pol.model, pol.tokenizer, prompt_multiple=config.rollout.prompt_multiple)
    engine = engine_from_config(pol.model.config, pol.model_dir, config, workdir=root)
    try:
        contenders = {"vllm": lambda: engine.generate(requests, params),
                      "jax": lambda: jax_sampler.generate(requests, params)}
        if not a.skip_transformers:
            contenders["transformers"] = hf_generate_fn(pol.model_dir, requests, a.group, a.new_tokens,
                                                        pol.tokenizer.pad_id)
        for name in ("vllm", "jax"):
            assert all(len(r.token_ids) == a.new_tokens for g in contenders[name]() for r in g), name
        timings = harness.interleaved(contenders, warmup=1, repeats=a.repeats)
        med = {k: harness.summary(v, timings.others_cpu[k]) for k, v in timings.seconds.items()}
        tokens = a.prompts * a.group * a.new_tokens
        tps = {k: tokens / m["median"] for k, m in med.items()}
        greedy = SamplingParams(n=1, temperature=0.0, max_tokens=16)
        ours, ref = engine.generate(requests[:1], greedy)[0][0].token_ids, jax_sampler.generate(
            requests[:1], greedy)[0][0].token_ids
        agree = int(np.argmax(np.append(ours != ref, True)))
        sync = sync_rows(engine, nnx.state(pol.model, nnx.Param), "demo", a.repeats) if "demo" in a.sync_models else []
        update_s = update_seconds(pol.model, config, requests, engine, a.repeats)
        rollout_demo_s = med["vllm"]["median"] * (config.rollout.group_size * config.rollout.max_tokens) / (
            a.group * a.new_tokens) * config.train.batch_size / a.prompts
    finally:
        engine.close()
    wide_error = None
    if "wide" in a.sync_models:
        try:  # the demo's numbers are kept even if a worker for the wide model cannot start (memory, ...)
            sync += wide_sync(root, config, a.repeats)
        except RuntimeError as e:
            wide_error = str(e).splitlines()[0]

    demo_file = next((r for r in sync if r["model"] == "demo" and r["path"] == "file"), None)
    result = {
        "benchmark": "rollout_engines", "command": harness.command_line(), "machine": harness.machine_info(),
        "load_average_before": load_before, "load_average_after": harness.load_average(),
        "prompts": a.prompts, "group": a.group, "new_tokens": a.new_tokens, "generated_tokens": tokens,
        "parameters": int(sum(x.size for x in jax.tree.leaves(nnx.state(pol.model, nnx.Param)))),
        "seconds": med, "tokens_per_s": tps, "ratio_vllm_over_jax": tps["vllm"] / tps["jax"],
        "greedy_tokens_agreeing_of_16": agree, "weight_sync": sync, "wide_sync_error": wide_error,
        "demo_update_s": update_s,
        "demo_rollout_s_estimate": rollout_demo_s,
        "demo_sync_share_of_update": demo_file["seconds"] / update_s if demo_file else None,
        "demo_sync_share_of_step": demo_file["seconds"] / (update_s + rollout_demo_s + demo_file["seconds"])
        if demo_file else None,
    }
    harness.write_results(a.out, result, render_markdown(result))
    print(render_markdown(result))
    return 0 if agree == 16 else 1


def wide_sync(root: str, config, repeats: int) -> list[dict]:
    model_dir = policy.build_tiny(os.path.join(root, "wide"), ml_collections.ConfigDict(WIDE), seed=0)
    model = qwen2_5_vl.from_pretrained(model_dir)
    engine = engine_from_config(model.config, model_dir, config, workdir=os.path.join(root, "wide_run"))
    try:
        return sync_rows(engine, nnx.state(model, nnx.Param), "wide", repeats)
    finally:
        engine.close()


def render_markdown(r: dict) -> str:
    rows = [[k, r["seconds"][k]["median"], r["tokens_per_s"][k]] for k in r["tokens_per_s"]]
    sync = [[s["model"], s["path"], s["bytes"] / 1e6, s["seconds"], s["worker_load_s"], s["MB_per_s"]]
            for s in r["weight_sync"]]
    share = r["demo_sync_share_of_step"]
    return "\n".join([
        "# Rollout engines: vLLM worker vs JAX sampler vs transformers generate (demo model, CPU)", "",
        f"{r['prompts']} prompts x G={r['group']}, {r['new_tokens']} new tokens each, temperature 1, no stop token; "
        f"the demo's REC prompts with one 112 px image; {r['parameters']:,} parameters, float32. Command: "
        f"`{r['command']}`. Load {r['load_average_before']} -> {r['load_average_after']}.", "",
        harness.markdown_table(["", "median s", "generated tokens/s"], rows), "",
        f"Ratio vLLM/JAX: {r['ratio_vllm_over_jax']:.2f}x (target >= 2x). Greedy decoding: vLLM and the JAX sampler "
        f"agree on {r['greedy_tokens_agreeing_of_16']}/16 tokens of the first prompt.", "",
        "## Weight sync (float32 pushes, median)", "",
        harness.markdown_table(["model", "path", "MB", "seconds (gather+send+load)", "worker load s", "MB/s"], sync),
        "",
        f"Demo GRPO update (batch 8 x G 4, jitted train step): {r['demo_update_s']:.3f} s; the demo's vLLM rollout "
        f"(estimated from the rate above): {r['demo_rollout_s_estimate']:.3f} s. Demo sync through the file: "
        + (f"{100 * r['demo_sync_share_of_update']:.1f}% of the update alone, {100 * share:.1f}% of rollout + update "
           f"+ sync (target < 5%)." if share is not None else "not measured."),
    ])


if __name__ == "__main__":
    sys.exit(main())
