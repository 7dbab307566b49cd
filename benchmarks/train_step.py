"""One GRPO update: the jitted Flax step vs the same loss and optimizer on transformers' PyTorch model.

    python benchmarks/train_step.py                                  # small config, float32, CPU; ~5 minutes
    python benchmarks/train_step.py --config=3b --dtype=bfloat16     # a GPU machine (also reports MFU)

Both sides update the same weights (transformers' random init, saved and loaded with from_pretrained) on the same
B prompts (one image each) x G responses of T tokens, with the same loss: GRPO's clipped surrogate with token-mean
aggregation, the ratio taken against the current policy's log-probs (one update per rollout, as in the paper),
global-norm clipping at 1.0 and AdamW. Both implementations compute the full sequences (prompt + response).
Reported: tokens/s (B*G*(prompt + response) per update, median of --repeats), the ratio, Flax compile time, the
gradient norms of the first update (they must agree: same loss, same weights) and, on GPU, MFU.

The Flax step shares each prompt's vision features across its G responses (the vision tower runs B times, not
B*G); transformers' model, like the GRPO trainers built on it, encodes each sequence's image.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import harness
import jax
import jax.numpy as jnp
import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from model_forward import (FIRST_TEXT_ID, build_hf_model, flax_twin, get_config, hf_kwargs,  # noqa: E402
                           image_offsets, make_batch, model_flops, one_image_requests)

PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 per GPU


def torch_step(model, optimizer, kwargs, responses, advantages, prompt_len: int, clip: float = 0.2):
    """One update of the same loss on transformers' model; returns the pre-clipping gradient norm."""
    model.train()
    logits = model(**kwargs).logits[:, prompt_len - 1:-1].float()
    logp = torch.log_softmax(logits, dim=-1).gather(-1, responses[..., None])[..., 0]
    ratio = torch.exp(logp - logp.detach())
    adv = advantages[:, None]
    loss = -torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(norm)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="small", choices=("small", "3b", "7b"))
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--image_size", type=int, default=224)
    p.add_argument("--text_tokens", type=int, default=64)
    p.add_argument("--response_tokens", type=int, default=128)
    p.add_argument("--micro_batches", type=int, default=1)
    # Training pads prompts to multiples of 64 so a run compiles a bounded number of times; this batch has one
    # prompt length, so pad only to the longest prompt, as transformers does (the default 64 would add 24% here).
    p.add_argument("--prompt_multiple", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max_load", type=float, default=0.0)
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "train_step.json"))
    a = p.parse_args()

    from flax import nnx

    from syngrpo_jax.grpo import train_step as ts
    from syngrpo_jax.grpo.batch import build_train_batch
    from syngrpo_jax.grpo.optimizer import make_optimizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[a.dtype]
    load_before = harness.wait_for_quiet(a.max_load, timeout_s=600) if a.max_load else harness.load_average()
    config = get_config(a.config)
    hf = build_hf_model(config, torch_dtype, device, seed=0)
    model = flax_twin(hf, jnp.dtype(a.dtype))

    ids, mask, pixel_values, grid = make_batch(config, a.prompts, a.image_size, a.text_tokens, seed=1)
    rng = np.random.default_rng(2)
    n = a.prompts * a.group
    text_end = min(config.text.vocab_size, 151643)
    responses = rng.integers(FIRST_TEXT_ID, text_end, size=(n, a.response_tokens))
    advantages = rng.normal(size=n).astype(np.float32)
    offsets = image_offsets(grid)
    requests = one_image_requests(ids, mask, pixel_values, grid)

    # ---- ours
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    tx = make_optimizer(learning_rate=1e-6, total_steps=1000, max_grad_norm=1.0)
    cfg = ts.LossConfig(logprob_chunk=128)
    batch = build_train_batch(config, requests, [[r for r in responses[i * a.group:(i + 1) * a.group]]
                                                 for i in range(a.prompts)], advantages,
                              micro_batches=a.micro_batches, response_multiple=a.response_tokens,
                              prompt_multiple=a.prompt_multiple)
    batch = batch._replace(old_logp=np.asarray(ts.make_logprob_fn(graphdef, cfg)(params, batch)))
    step = ts.make_train_step(graphdef, tx, cfg)
    flax_state = {"params": params, "opt": jax.jit(tx.init)(params)}

    def flax_call():
        flax_state["params"], flax_state["opt"], metrics = step(flax_state["params"], flax_state["opt"], None, batch,
                                                                jax.random.key(0))
        return metrics

    t0 = time.perf_counter()
    first = jax.block_until_ready(flax_call())
    compile_s = time.perf_counter() - t0

    # ---- transformers: the same sequences (left-padded prompt, then the response), one image per sequence
    rep = np.repeat(np.arange(a.prompts), a.group)
    seq_ids = np.concatenate([ids[rep], responses], axis=1)
    seq_mask = np.concatenate([mask[rep], np.ones_like(responses)], axis=1)
    seq_pixels = np.concatenate([pixel_values[offsets[i]:offsets[i + 1]] for i in rep])
    kwargs = hf_kwargs(config, seq_ids, seq_mask, seq_pixels, grid[rep], device, torch_dtype)
    optimizer = torch.optim.AdamW(hf.parameters(), lr=1e-6, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    resp_t = torch.tensor(responses, device=device)
    adv_t = torch.tensor(advantages, device=device)
    torch_norms = []

    def torch_call():
        torch_norms.append(torch_step(hf, optimizer, kwargs, resp_t, adv_t, ids.shape[1]))
        if device == "cuda":
            torch.cuda.synchronize()

    torch_call()  # warm-up (first AdamW step allocates its state)
    timings = harness.interleaved({"flax": flax_call, "transformers": torch_call}, warmup=0, repeats=a.repeats,
                                  sync=jax.block_until_ready)
    tokens = n * seq_ids.shape[1]
    med = {k: harness.summary(v, timings.others_cpu[k]) for k, v in timings.seconds.items()}
    tps = {k: tokens / m["median"] for k, m in med.items()}
    flax_norm, torch_norm = float(first["grad_norm"]), torch_norms[0]
    inputs = batch.inputs._replace(**{f: np.asarray(getattr(batch.inputs, f))[0] for f in batch.inputs._fields})
    # Forward + backward ~ 3x forward, for each of the M micro-batches (counted on our inputs: B images).
    flops = 3 * a.micro_batches * model_flops(config, inputs)["total"]
    result = {
        "benchmark": "train_step", "command": harness.command_line(), "machine": harness.machine_info(),
        "load_average_before": load_before, "load_average_after": harness.load_average(),
        "config": a.config, "dtype": a.dtype, "prompts": a.prompts, "group": a.group, "sequences": n,
        "sequence_length": int(seq_ids.shape[1]), "response_tokens": a.response_tokens,
        "tokens_per_update": tokens, "seconds": med, "tokens_per_s": tps,
        "ratio_flax_over_transformers": tps["flax"] / tps["transformers"], "flax_compile_s": compile_s,
        "first_update_grad_norm": {"flax": flax_norm, "transformers": torch_norm,
                                   "relative_difference": abs(flax_norm - torch_norm) / torch_norm},
        "flops_per_update": flops,
    }
    gpu = result["machine"].get("torch_cuda") or ""
    peak = next((v for k, v in PEAK_FLOPS.items() if k in gpu), None)
    if peak and a.dtype == "bfloat16":
        result["mfu"] = {k: flops / med[k]["median"] / peak for k in med}
    markdown = "\n".join([
        f"# GRPO update: Flax vs transformers ({a.config}, {a.dtype}, {device})", "",
        f"{a.prompts} prompts x G={a.group} responses of {a.response_tokens} tokens; sequences of "
        f"{seq_ids.shape[1]} tokens. Command: `{result['command']}`. Load {load_before} -> "
        f"{result['load_average_after']}.", "",
        harness.markdown_table(["", "median s/update", "tokens/s"],
                               [[k, med[k]["median"], tps[k]] for k in ("flax", "transformers")]), "",
        f"Ratio flax/transformers: {result['ratio_flax_over_transformers']:.2f}x (target >= 1.5x). Flax compile "
        f"{compile_s:.1f} s. First-update gradient norms: flax {flax_norm:.6g}, transformers {torch_norm:.6g} "
        f"(relative difference {result['first_update_grad_norm']['relative_difference']:.2e}).",
    ])
    harness.write_results(a.out, result, markdown)
    print(markdown)
    ok = result["first_update_grad_norm"]["relative_difference"] < (1e-3 if a.dtype == "float32" else 5e-2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
