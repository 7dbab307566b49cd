"""One GRPO update: the jitted Flax step vs the same loss and optimizer on transformers' PyTorch model.

    python benchmarks/train_step.py                                  # small config, float32, CPU; ~5 minutes
    python benchmarks/train_step.py --config=3b --dtype=bfloat16 --prompts=20 --group=6 --response_tokens=512 \
        --remat=dots --micro_batches=auto --flax_attention=cudnn     # the paper's update on a GPU (MFU too)

Both sides update the same weights (transformers' random init, saved and loaded with from_pretrained) on the same
B prompts (one image each) x G responses of T tokens, with the same loss: GRPO's clipped surrogate with token-mean
aggregation, the ratio taken against the current policy's log-probs (one update per rollout, as in the paper),
global-norm clipping at 1.0 and AdamW. Both implementations compute the full sequences (prompt + response) and
accumulate gradients over the same micro-batches (`--micro_batches`, whole prompt groups each; `auto`: the
fewest that an estimate of the update's memory fits into 75% of the device, doubled on an out-of-memory error).
With `--remat`, our layers are rematerialised with that policy and transformers' layers with gradient
checkpointing. Reported: tokens/s (B*G*(prompt + response) per update, median of --repeats), the ratio, Flax
compile time, the gradient norms of the first update (they must agree: same loss, same weights), peak device
memory of each and, in bfloat16 on a GPU, MFU = model FLOPs / time / peak (790 TFLOP/s, the bf16 dense matmul
rate measured on an H200, and `--peak_tflops` when the caller measured its own device).

The Flax step shares each prompt's vision features across its G responses (the vision tower runs B times, not
B*G); transformers' model, like the GRPO trainers built on it, encodes each sequence's image.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time

import harness

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # both frameworks share the device

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from model_forward import (CONFIGS, FIRST_TEXT_ID, build_hf_model, flax_twin, get_config,  # noqa: E402
                           hf_kwargs, image_offsets, make_batch, model_flops, one_image_requests)

H200_BF16_PEAK = 790e12  # bf16 8192^3 matmul measured on the H200 (shared/ENVIRONMENT.md)


def torch_step(model, optimizer, kwargs, responses, advantages, micro_batches: int, clip: float = 0.2):
    """One update of the same loss on transformers' model, gradients accumulated over micro-batches of rows;
    returns the pre-clipping gradient norm. Only the response positions' logits are computed."""
    model.train()
    n, t = responses.shape
    optimizer.zero_grad(set_to_none=True)
    for rows in np.array_split(np.arange(n), micro_batches):
        rows = torch.as_tensor(rows, device=responses.device)
        part = {k: v[rows] for k, v in kwargs.items() if k not in ("pixel_values", "image_grid_thw")}
        per_image = kwargs["pixel_values"].shape[0] // n  # one same-sized image per sequence
        pix = kwargs["pixel_values"].view(n, per_image, -1)[rows].reshape(-1, kwargs["pixel_values"].shape[1])
        logits = model(**part, pixel_values=pix, image_grid_thw=kwargs["image_grid_thw"][rows],
                       logits_to_keep=t + 1).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, responses[rows][..., None])[..., 0]
        ratio = torch.exp(logp - logp.detach())
        adv = advantages[rows][:, None]
        loss = -torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv).sum() / (n * t)
        loss.backward()
        del logits, logp, ratio, loss
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(norm)


def estimate_update_bytes(config, n_params: int, rows: int, seq_len: int, micro_batches: int, remat: str,
                          dtype_bytes: int, logprob_chunk: int = 128) -> float:
    """A rough upper estimate of our update's device memory: parameters, gradient accumulator and both Adam
    moments (+ one parameter-sized temporary), the activations kept per token per layer under the remat policy,
    one layer's attention scores and one log-prob chunk's logits (float32)."""
    t = config.text
    kv = t.num_key_value_heads * t.head_dim
    # Kept per token and layer: the layer's input (the scan carry) and, under "dots", the 2-D matmul outputs
    # (q, k, v, o, gate, up, down); without remat also norms, rotary, activations (a rough 3x of that).
    dots = 4 * t.hidden_size + 2 * kv + 2 * t.intermediate_size
    per_layer = {"none": 3 * dots, "dots": dots, "full": t.hidden_size}[remat]
    mb_rows = rows // micro_batches
    tokens = mb_rows * seq_len
    kept = tokens * t.num_hidden_layers * per_layer * dtype_bytes
    working = 2 * mb_rows * t.num_attention_heads * seq_len**2 * 4 + 8 * tokens * t.intermediate_size * dtype_bytes
    logits = 3 * mb_rows * logprob_chunk * t.vocab_size * 4
    return 5 * n_params * dtype_bytes + kept + working + logits


def choose_micro_batches(config, n_params, prompts, group, seq_len, remat, dtype_bytes, device_bytes) -> int:
    """The fewest micro-batches (a divisor of the prompt count) whose estimate fits 75% of the device."""
    divisors = [m for m in range(1, prompts + 1) if prompts % m == 0]
    if not device_bytes:
        return 1
    for m in divisors:
        if estimate_update_bytes(config, n_params, prompts * group, seq_len, m, remat, dtype_bytes) \
                <= 0.75 * device_bytes:
            return m
    return divisors[-1]


def device_memory() -> tuple[int | None, int | None]:
    """(what jax may use, peak_bytes_in_use) of its first device, where the backend reports them (without a
    pool limit, e.g. with the platform allocator: 90% of the GPU's memory)."""
    stats = jax.devices()[0].memory_stats() or {}
    limit = stats.get("bytes_limit")
    if limit is None and torch.cuda.is_available():
        limit = int(0.9 * torch.cuda.mem_get_info()[1])
    return limit, stats.get("peak_bytes_in_use")


def is_out_of_memory(err: Exception) -> bool:
    text = f"{type(err).__name__}: {err}"
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def build_flax_update(config, model, requests, responses, advantages, a, micro_batches):
    """The jitted step, its batch (old_logp = the current policy's log-probs) and a call that runs one update."""
    from flax import nnx

    from syngrpo_jax.grpo import train_step as ts
    from syngrpo_jax.grpo.batch import build_train_batch
    from syngrpo_jax.grpo.optimizer import make_optimizer

    graphdef, state = nnx.split(model)
    # Committed to the device, as the step's outputs are: the second call then reuses the first's executable.
    dev = jax.devices()[0]
    params = jax.device_put(nnx.to_pure_dict(state), dev)
    tx = make_optimizer(learning_rate=1e-6, total_steps=1000, max_grad_norm=1.0)
    cfg = ts.LossConfig(logprob_chunk=128)
    batch = build_train_batch(config, requests, [list(responses[i * a.group:(i + 1) * a.group])
                                                 for i in range(a.prompts)], advantages,
                              micro_batches=micro_batches, response_multiple=a.response_tokens,
                              prompt_multiple=a.prompt_multiple)
    batch = batch._replace(old_logp=np.asarray(ts.make_logprob_fn(graphdef, cfg)(params, batch)))
    batch = jax.device_put(batch, dev)
    step = ts.make_train_step(graphdef, tx, cfg)
    holder = {"params": params, "opt": jax.device_put(jax.jit(tx.init)(params), dev)}

    def call():
        holder["params"], holder["opt"], metrics = step(holder["params"], holder["opt"], None, batch,
                                                        jax.random.key(0))
        return metrics

    return batch, call


def first_flax_update(config, hf, requests, responses, advantages, a, n_params):
    """Load our twin and run its first update, with `auto` micro-batches retried at the next divisor on an
    out-of-memory error. Returns (micro_batches, batch, call, first metrics, compile seconds, attempts)."""
    seq_len = requests[0].prompt_ids.size + a.response_tokens  # about: prompts are left padded to the longest
    dtype_bytes = jnp.dtype(a.dtype).itemsize
    auto = a.micro_batches == "auto"
    m = (choose_micro_batches(config, n_params, a.prompts, a.group, seq_len, a.remat, dtype_bytes,
                              device_memory()[0]) if auto else int(a.micro_batches))
    divisors = [d for d in range(m, a.prompts + 1) if a.prompts % d == 0]
    attempts = []
    for m in divisors:
        model = flax_twin(hf, jnp.dtype(a.dtype), attention_impl=a.flax_attention, remat=a.remat)
        try:
            t0 = time.perf_counter()
            batch, call = build_flax_update(config, model, requests, responses, advantages, a, m)
            first = jax.block_until_ready(call())
            attempts.append({"micro_batches": m, "ok": True})
            return m, batch, call, first, time.perf_counter() - t0, attempts
        except Exception as err:  # noqa: BLE001 - only out-of-memory is retried
            attempts.append({"micro_batches": m, "ok": False, "error": f"{type(err).__name__}: {err}"[:500]})
            if not (auto and is_out_of_memory(err)):
                raise
            print(f"out of memory at {m} micro-batches; trying more", flush=True)
            del model
    raise RuntimeError(f"no micro-batch count fits: {attempts}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="small", choices=CONFIGS)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--image_size", type=int, default=224)
    p.add_argument("--text_tokens", type=int, default=64)
    p.add_argument("--response_tokens", type=int, default=128)
    p.add_argument("--micro_batches", default="1", help="a divisor of --prompts, or auto")
    p.add_argument("--remat", default="none", choices=("none", "full", "dots"),
                   help="ours: this remat policy; transformers: gradient checkpointing unless none")
    p.add_argument("--flax_attention", default="xla", choices=("xla", "jax_nn", "cudnn"))
    # Training pads prompts to multiples of 64 so a run compiles a bounded number of times; this batch has one
    # prompt length, so pad only to the longest prompt, as transformers does (the default 64 would add 24% here).
    p.add_argument("--prompt_multiple", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--peak_tflops", type=float, default=None, help="a measured bf16 matmul rate for MFU")
    p.add_argument("--torch_rows", type=int, default=0,
                   help="transformers' rows per micro-batch (0: our micro-batches). Its full-vocabulary float32 "
                        "log-softmax over every response position makes large micro-batches run out of memory")
    p.add_argument("--sequential", action="store_true",
                   help="time ours, free it, then time transformers (both updates' state will not fit at once)")
    p.add_argument("--max_load", type=float, default=0.0)
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "train_step.json"))
    a = p.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[a.dtype]
    load_before = harness.wait_for_quiet(a.max_load, timeout_s=600) if a.max_load else harness.load_average()
    config = get_config(a.config)
    hf = build_hf_model(config, torch_dtype, device, seed=0)
    n_params = sum(t.numel() for t in hf.parameters())

    ids, mask, pixel_values, grid = make_batch(config, a.prompts, a.image_size, a.text_tokens, seed=1)
    rng = np.random.default_rng(2)
    n = a.prompts * a.group
    text_end = min(config.text.vocab_size, 151643)
    responses = rng.integers(FIRST_TEXT_ID, text_end, size=(n, a.response_tokens))
    advantages = rng.normal(size=n).astype(np.float32)
    requests = one_image_requests(ids, mask, pixel_values, grid)

    # ---- ours (first update: compile, and the micro-batch count when auto)
    micro_batches, batch, flax_call, first, compile_s, attempts = first_flax_update(
        config, hf, requests, responses, advantages, a, n_params)
    flax_peak = device_memory()[1]
    print(f"flax: first update (compile included) {compile_s:.1f} s with {micro_batches} micro-batches", flush=True)
    flax_timings = None
    if a.sequential:
        flax_timings = harness.interleaved({"flax": flax_call}, warmup=0, repeats=a.repeats,
                                           sync=jax.block_until_ready)
        flax_peak = device_memory()[1]
        batch = jax.device_get(batch)
        del flax_call
        jax.clear_caches()
        gc.collect()

    # ---- transformers: the same sequences (left-padded prompt, then the response), one image per sequence
    offsets = image_offsets(grid)
    rep = np.repeat(np.arange(a.prompts), a.group)
    seq_ids = np.concatenate([ids[rep], responses], axis=1)
    seq_mask = np.concatenate([mask[rep], np.ones_like(responses)], axis=1)
    seq_pixels = np.concatenate([pixel_values[offsets[i]:offsets[i + 1]] for i in rep])
    kwargs = hf_kwargs(config, seq_ids, seq_mask, seq_pixels, grid[rep], device, torch_dtype)
    if a.remat != "none":
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    optimizer = torch.optim.AdamW(hf.parameters(), lr=1e-6, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    resp_t = torch.tensor(responses, device=device)
    adv_t = torch.tensor(advantages, device=device)
    torch_norms = []
    torch_micro = max(micro_batches, -(-n // a.torch_rows)) if a.torch_rows else micro_batches

    def torch_call():
        torch_norms.append(torch_step(hf, optimizer, kwargs, resp_t, adv_t, torch_micro))
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    torch_call()  # warm-up (first AdamW step allocates its state)
    if flax_timings is None:
        timings = harness.interleaved({"flax": flax_call, "transformers": torch_call}, warmup=0,
                                      repeats=a.repeats, sync=jax.block_until_ready)
    else:
        torch_timings = harness.interleaved({"transformers": torch_call}, warmup=0, repeats=a.repeats)
        timings = harness.Timings(*({**f, **t} for f, t in zip(flax_timings, torch_timings)))  # field by field
    peaks = {"flax_device_peak_bytes": (flax_peak if a.sequential else device_memory()[1]) or flax_peak,
             "transformers_cuda_peak_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None}
    result = summarize(a, config, batch, seq_ids, timings, first, torch_norms[0], compile_s, micro_batches,
                       attempts, peaks, n_params, load_before)
    result["transformers_micro_batches"] = torch_micro
    write(a, result, device)
    ok = result["first_update_grad_norm"]["relative_difference"] < (1e-3 if a.dtype == "float32" else 5e-2)
    return 0 if ok else 1


def summarize(a, config, batch, seq_ids, timings, first, torch_norm, compile_s, micro_batches, attempts, peaks,
              n_params, load_before) -> dict:
    n = a.prompts * a.group
    tokens = n * seq_ids.shape[1]
    med = {k: harness.summary(v, timings.others_cpu[k]) for k, v in timings.seconds.items()}
    tps = {k: tokens / m["median"] for k, m in med.items()}
    flax_norm = float(first["grad_norm"])
    inputs = batch.inputs._replace(**{f: np.asarray(getattr(batch.inputs, f))[0] for f in batch.inputs._fields})
    # Forward + backward ~ 3x forward, for each of the M micro-batches (counted on our inputs: B images).
    flops = 3 * micro_batches * model_flops(config, inputs)["total"]
    result = {
        "benchmark": "train_step", "command": harness.command_line(), "machine": harness.machine_info(),
        "load_average_before": load_before, "load_average_after": harness.load_average(),
        "config": a.config, "dtype": a.dtype, "parameters": n_params, "prompts": a.prompts, "group": a.group,
        "sequences": n, "sequence_length": int(seq_ids.shape[1]), "response_tokens": a.response_tokens,
        "micro_batches": micro_batches, "rows_per_micro_batch": n // micro_batches,
        "micro_batch_attempts": attempts, "remat": a.remat, "flax_attention": a.flax_attention,
        "sequential": a.sequential,
        "tokens_per_update": tokens, "seconds": med, "tokens_per_s": tps,
        "ratio_flax_over_transformers": tps["flax"] / tps["transformers"], "flax_compile_s": compile_s,
        "first_update_grad_norm": {"flax": flax_norm, "transformers": torch_norm,
                                   "relative_difference": abs(flax_norm - torch_norm) / torch_norm},
        "flops_per_update": flops, "peak_memory_bytes": peaks,
    }
    if result["machine"].get("torch_cuda") and a.dtype == "bfloat16":
        result["mfu"] = {k: flops / med[k]["median"] / H200_BF16_PEAK for k in med}
        if a.peak_tflops:
            result["mfu_vs_measured_matmul"] = {k: flops / med[k]["median"] / (a.peak_tflops * 1e12) for k in med}
    return result


def write(a, result: dict, device: str) -> None:
    med, tps = result["seconds"], result["tokens_per_s"]
    gib = lambda b: "-" if not b else f"{b / 2**30:.1f}"  # noqa: E731
    mfu = result.get("mfu")
    lines = [
        f"# GRPO update: Flax vs transformers ({a.config}, {a.dtype}, {device})", "",
        f"{a.prompts} prompts x G={a.group} responses of {a.response_tokens} tokens; sequences of "
        f"{result['sequence_length']} tokens; {result['micro_batches']} micro-batches of "
        f"{result['rows_per_micro_batch']} rows; remat {a.remat}; Flax attention {a.flax_attention}. Command: "
        f"`{result['command']}`. Load {result['load_average_before']} -> {result['load_average_after']}.", "",
        harness.markdown_table(
            ["", "median s/update", "tokens/s", "peak GiB"] + (["MFU (790 TFLOP/s)"] if mfu else []),
            [[k, med[k]["median"], tps[k], gib(result["peak_memory_bytes"].get(
                "flax_device_peak_bytes" if k == "flax" else "transformers_cuda_peak_bytes"))]
             + ([f"{mfu[k]:.1%}"] if mfu else []) for k in ("flax", "transformers")]), "",
        f"Ratio flax/transformers: {result['ratio_flax_over_transformers']:.2f}x (target >= 1.5x). Flax compile "
        f"(first update) {result['flax_compile_s']:.1f} s. First-update gradient norms: flax "
        f"{result['first_update_grad_norm']['flax']:.6g}, transformers "
        f"{result['first_update_grad_norm']['transformers']:.6g} (relative difference "
        f"{result['first_update_grad_norm']['relative_difference']:.2e}).",
    ]
    harness.write_results(a.out, result, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
