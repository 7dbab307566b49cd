r"""Forward throughput of our jitted Flax Qwen2.5-VL vs transformers' PyTorch model, same weights, same batch.

    python benchmarks/model_forward.py                      # small config, float32, CPU (~3 min on 2 cores)
    python benchmarks/model_forward.py --config=3b --dtype=bfloat16 --hf_attention=sdpa   # GPU machine
    python benchmarks/model_forward.py --config=7b --dtype=bfloat16 --hf_attention=sdpa   # GPU machine

What runs: a transformers Qwen2_5_VLForConditionalGeneration is built from the config with random weights
(drawn so activations and logits are O(1)), saved with save_pretrained to a temporary directory, and loaded
with our `qwen2_5_vl.from_pretrained`. The batch is processor-shaped: `--batch` prompts, each one random
`--image_size`^2 image (Qwen2VLImageProcessorPil) between ~`--text_tokens` text tokens, left padded.
  flax        jax.jit(logits(hidden_states(inputs))) on device-resident `ModelInputs`; compile timed apart
  flax+prep   the same plus `prepare_inputs` (host) and the transfer: what transformers' forward also does
  hf_<attn>   model(**processor arrays, use_cache=False) under torch.no_grad(), per attention implementation
Timed rounds alternate the contenders (shared machine); the median of `--repeats` rounds is reported, as
tokens/s = batch * padded length / seconds. With `--parts`, the vision tower and the text decoder (+ lm_head)
are also timed on their own. Logits are compared at real (unpadded) positions; the script exits with status 1
if the largest difference exceeds `--rtol` times the largest logit.

Configs: tiny (seconds; the GPU suite's smoke test), small (CPU: text 512 x 8 layers, vision 256 x 4 blocks with
the real window/full-attention pattern), 3b and 7b (the released Qwen2.5-VL shapes, random weights; a GPU).
Results: benchmarks/results/model_forward.json and .md (override with --out).
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

# Both frameworks share one GPU: stop jax from reserving most of its memory up front (set before jax loads).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402
from PIL import Image  # noqa: E402

from syngrpo_jax.models import qwen2_5_vl  # noqa: E402
from syngrpo_jax.models.config import Qwen25VLConfig  # noqa: E402
from syngrpo_jax.models.released import TOKEN_IDS, released_config  # noqa: E402
from syngrpo_jax.models.tiny import tiny_config  # noqa: E402

# The small config puts its specials at the bottom of its own vocabulary (the released ids: models/released.py).
SMALL_IDS = dict(image_token_id=5, video_token_id=6, vision_start_token_id=3, vision_end_token_id=4,
                 bos_token_id=0, eos_token_id=2, pad_token_id=0)
RELEASED_NAMES = {"3b": "Qwen2.5-VL-3B-Instruct", "7b": "Qwen2.5-VL-7B-Instruct"}
FIRST_TEXT_ID = 7  # random text tokens are drawn from [7, 151643) or [7, vocab): never a special token


CONFIGS = ("tiny", "small", "3b", "7b")


def get_config(name: str) -> Qwen25VLConfig:
    if name == "tiny":  # seconds on a CPU: the GPU suite's smoke test
        return tiny_config(**SMALL_IDS, vocab_size=512, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                           vision_hidden_size=32, vision_depth=2, window_size=112, fullatt_block_indexes=(1,))
    if name == "small":
        return tiny_config(**SMALL_IDS, vocab_size=16384, hidden_size=512, num_layers=8, num_heads=8,
                           num_kv_heads=2, intermediate_size=1376, vision_hidden_size=256, vision_depth=4,
                           vision_heads=4, vision_intermediate_size=688, window_size=112,
                           fullatt_block_indexes=(1, 3), tie_word_embeddings=False)
    return released_config(RELEASED_NAMES[name])


def build_hf_model(config: Qwen25VLConfig, torch_dtype, device: str, seed: int):
    """transformers' model with weights N(0, 1/fan_in) (norm weights 1 + N(0, 0.1^2), biases N(0, 0.1^2)), so
    every activation and the logits are O(1) and a wrong mapping would show far above the tolerance."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            Qwen2_5_VLConfig(**config.to_hf_dict()), attn_implementation="sdpa", dtype=torch_dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 1.0 / math.sqrt(p[0].numel()))
            elif "norm" in name or "ln_q" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.1)
    return model


def flax_twin(hf, dtype, **kwargs):
    """Our model with the weights of transformers' `hf`: save_pretrained to a temp dir, then from_pretrained.
    The directory is in /dev/shm (memory) where that has room: 3B/7B checkpoints are 7-17 GB."""
    size = sum(p.numel() * p.element_size() for p in hf.parameters())
    shm = "/dev/shm"
    fast = os.path.isdir(shm) and shutil.disk_usage(shm).free > 2 * size
    with tempfile.TemporaryDirectory(dir=shm if fast else None) as tmp:
        hf.save_pretrained(tmp)
        return qwen2_5_vl.from_pretrained(tmp, dtype=dtype, **kwargs)


def image_offsets(grid: np.ndarray) -> np.ndarray:
    """Row offsets of each image's patches in the concatenated pixel_values: image i is [off[i], off[i + 1])."""
    return np.concatenate([[0], np.cumsum(np.prod(grid, axis=1))])


def one_image_requests(ids, mask, pixel_values, grid) -> list:
    """The processor batch as rollout requests: prompt i = its unpadded tokens and its one image."""
    from syngrpo_jax.rollout.base import RolloutRequest

    off = image_offsets(grid)
    return [RolloutRequest(ids[i][mask[i] > 0], pixel_values[off[i]:off[i + 1]], grid[i:i + 1])
            for i in range(len(ids))]


def make_batch(config: Qwen25VLConfig, batch: int, image_size: int, text_tokens: int, seed: int):
    """Processor arrays for `batch` prompts of one image each: (input_ids, attention_mask, pixel_values, grid).

    Prompt i: a few text tokens, <vision_start> <image_pad>*n <vision_end>, then the rest of its text; text
    lengths vary by up to 1/8 so the batch is left padded, as sampled GRPO prompts are.
    """
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8))
              for _ in range(batch)]
    processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=image_size * image_size)
    out = processor(images=images, return_tensors="np")
    pixel_values, grid = out["pixel_values"], out["image_grid_thw"]
    text_end = min(config.text.vocab_size, TOKEN_IDS["bos_token_id"])
    seqs = []
    for g in grid:
        n_text = text_tokens - int(rng.integers(0, max(1, text_tokens // 8)))
        head = rng.integers(FIRST_TEXT_ID, text_end, size=max(1, n_text // 4)).tolist()
        tail = rng.integers(FIRST_TEXT_ID, text_end, size=n_text - len(head)).tolist()
        n_image = int(np.prod(g)) // config.vision.merge_unit
        seqs.append(head + [config.vision_start_token_id] + [config.image_token_id] * n_image
                    + [config.vision_end_token_id] + tail)
    length = max(map(len, seqs))
    ids = np.full((batch, length), config.pad_token_id, np.int64)
    mask = np.zeros((batch, length), np.int64)
    for i, s in enumerate(seqs):
        ids[i, length - len(s):], mask[i, length - len(s):] = s, 1
    return ids, mask, pixel_values, grid


def hf_kwargs(config, ids, mask, pixel_values, grid, device, torch_dtype) -> dict:
    return dict(input_ids=torch.tensor(ids, device=device), attention_mask=torch.tensor(mask, device=device),
                # transformers 5 needs the token types to build M-RoPE positions.
                mm_token_type_ids=torch.tensor((ids == config.image_token_id).astype(np.int64), device=device),
                pixel_values=torch.tensor(pixel_values, device=device, dtype=torch_dtype),
                image_grid_thw=torch.tensor(grid, device=device))


def flax_functions(model, inputs):
    """Jitted pure functions of (state, inputs) for the full forward and its two parts."""
    graphdef, state = nnx.split(model)

    def full(state, inputs):
        m = nnx.merge(graphdef, state)
        return m.logits(m.hidden_states(inputs))

    def vision(state, inputs):
        return nnx.merge(graphdef, state).image_features(inputs)

    def text(state, inputs):
        # With no patches, hidden_states skips the tower and embeds the image-pad ids as text: the same decoder
        # work as the full forward.
        m = nnx.merge(graphdef, state)
        return m.logits(m.hidden_states(inputs._replace(patches=inputs.patches[:0])))

    return state, {"full": jax.jit(full), "vision": jax.jit(vision), "text": jax.jit(text)}


def compile_timed(fn, *args) -> tuple[object, dict]:
    t0 = time.perf_counter()
    lowered = fn.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    info = {"trace_lower_s": t1 - t0, "compile_s": t2 - t1}
    try:
        mem = compiled.memory_analysis()
        info["xla_temp_bytes"] = int(mem.temp_size_in_bytes)
        info["xla_argument_bytes"] = int(mem.argument_size_in_bytes)
        info["xla_output_bytes"] = int(mem.output_size_in_bytes)
    except Exception:  # not every backend reports it
        pass
    return compiled, info


def model_flops(config: Qwen25VLConfig, inputs) -> dict:
    """Matmul FLOPs of one forward (2 per multiply-add), counted as transformers computes them: vision attention
    within each window (windowed blocks) or image (full blocks), text attention over all L x L pairs (both
    implementations compute the masked square). Elementwise work (norms, rotary, softmax) is not counted."""
    v, t = config.vision, config.text
    window_id = np.asarray(inputs.window_id)
    per_image = (window_id >= 0).sum(axis=1)
    patches = int(per_image.sum())
    window_pairs = sum(int(np.square(np.bincount(row[row >= 0])).sum()) for row in window_id)
    n_full = len(v.fullatt_block_indexes)
    d, f = v.hidden_size, v.intermediate_size
    vision = 2 * patches * (v.patch_dim * d + v.depth * (3 * d * d + d * d + 3 * d * f))
    vision += 2 * (patches // v.merge_unit) * (v.merge_unit * d) * (v.merge_unit * d + v.out_hidden_size)
    vision += 4 * d * (n_full * int(np.square(per_image).sum()) + (v.depth - n_full) * window_pairs)
    b, length = np.asarray(inputs.input_ids).shape
    h, hd = t.hidden_size, t.head_dim
    qd, kvd = t.num_attention_heads * hd, t.num_key_value_heads * hd
    text = 2 * b * length * t.num_hidden_layers * (h * qd + 2 * h * kvd + qd * h + 3 * h * t.intermediate_size)
    text += 4 * b * length * length * qd * t.num_hidden_layers
    lm_head = 2 * b * length * h * t.vocab_size
    return {"vision": float(vision), "text_decoder": float(text), "lm_head": float(lm_head),
            "total": float(vision + text + lm_head)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=CONFIGS, default="small")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                    help="parameter and compute dtype of both models")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--image_size", type=int, default=448, help="square image side in pixels (a multiple of 28)")
    ap.add_argument("--text_tokens", type=int, default=64, help="text tokens per prompt (at most; some fewer)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--hf_attention", default="sdpa,eager", help="comma-separated transformers attention impls")
    ap.add_argument("--flax_attention", default="xla", choices=("xla", "jax_nn", "cudnn"))
    ap.add_argument("--parts", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the vision tower and the text decoder (+ lm_head) on their own")
    ap.add_argument("--rtol", type=float, default=None,
                    help="allowed max |logits diff| / max |reference logit| (default 1e-4 float32, 0.1 bfloat16)")
    ap.add_argument("--max_load", type=float, default=None,
                    help="wait up to 10 min for the 1-minute load average to fall below this before timing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "model_forward.json"))
    args = ap.parse_args(argv)
    rtol = args.rtol if args.rtol is not None else (1e-4 if args.dtype == "float32" else 0.1)

    config = get_config(args.config)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    jax_dtype = jnp.dtype(args.dtype)

    print(f"building {args.config} ({args.dtype}) on torch:{device} / jax:{jax.default_backend()} ...", flush=True)
    hf = build_hf_model(config, torch_dtype, device, args.seed)
    flax_model = flax_twin(hf, jax_dtype, attention_impl=args.flax_attention)
    n_params = sum(p.numel() for p in hf.parameters())

    ids, mask, pixel_values, grid = make_batch(config, args.batch, args.image_size, args.text_tokens, args.seed)
    hf_in = hf_kwargs(config, ids, mask, pixel_values, grid, device, torch_dtype)
    b, length = ids.shape
    tokens = b * length

    def prepare():
        return jax.device_put(qwen2_5_vl.prepare_inputs(config, ids, mask, pixel_values, grid))

    t0 = time.perf_counter()
    inputs = jax.block_until_ready(prepare())
    prepare_s = time.perf_counter() - t0
    state, jitted = flax_functions(flax_model, inputs)
    names = ["full"] + (["vision", "text"] if args.parts else [])
    compiled, compile_info = {}, {}
    for name in names:
        print(f"compiling flax {name} ...", flush=True)
        compiled[name], compile_info[name] = compile_timed(jitted[name], state, inputs)

    # transformers' parts, called as its own forward calls them.
    def hf_call(attn):
        def call():
            hf.set_attn_implementation(attn)
            return hf(**hf_in, use_cache=False).logits
        return call

    with torch.no_grad():
        hf_embeds = hf.model.get_input_embeddings()(hf_in["input_ids"])
        image_embeds = torch.cat(hf.model.get_image_features(hf_in["pixel_values"], hf_in["image_grid_thw"],
                                                             return_dict=True).pooler_output)
        image_mask = (hf_in["input_ids"] == config.image_token_id)[..., None].expand_as(hf_embeds)
        hf_embeds = hf_embeds.masked_scatter(image_mask, image_embeds.to(hf_embeds.dtype))
        hf_pos = hf.model.compute_3d_position_ids(
            input_ids=hf_in["input_ids"], image_grid_thw=hf_in["image_grid_thw"], video_grid_thw=None,
            inputs_embeds=hf_embeds, attention_mask=hf_in["attention_mask"], past_key_values=None,
            mm_token_type_ids=hf_in["mm_token_type_ids"])

    def hf_vision(attn):
        def call():
            hf.set_attn_implementation(attn)
            return hf.model.visual(hf_in["pixel_values"], grid_thw=hf_in["image_grid_thw"]).pooler_output
        return call

    def hf_text(attn):
        def call():
            hf.set_attn_implementation(attn)
            h = hf.model.language_model(inputs_embeds=hf_embeds, position_ids=hf_pos,
                                        attention_mask=hf_in["attention_mask"], use_cache=False).last_hidden_state
            return hf.lm_head(h)
        return call

    hf_attns = [a for a in args.hf_attention.split(",") if a]
    contenders = {"flax": lambda: compiled["full"](state, inputs),
                  "flax+prep": lambda: compiled["full"](state, prepare())}
    contenders.update({f"hf_{a}": hf_call(a) for a in hf_attns})
    part_contenders = {}
    if args.parts:
        part_contenders = {"vision/flax": lambda: compiled["vision"](state, inputs),
                           "text/flax": lambda: compiled["text"](state, inputs)}
        part_contenders.update({f"vision/hf_{a}": hf_vision(a) for a in hf_attns})
        part_contenders.update({f"text/hf_{a}": hf_text(a) for a in hf_attns})

    sync = harness.block

    # Correctness first (also the first call of each: peak resident growth is measured there).
    peak_rss = {}
    with torch.no_grad():
        with harness.PeakRSS() as m:
            ours = np.asarray(sync(contenders["flax"]()).astype(jnp.float32))
        peak_rss["flax"] = m.peak_bytes
        diffs = {}
        for a in hf_attns:
            with harness.PeakRSS() as m:
                theirs = sync(hf_call(a)()).float().cpu().numpy()
            peak_rss[f"hf_{a}"] = m.peak_bytes
            real = mask.astype(bool)
            d = np.abs(ours[real] - theirs[real])
            scale = float(np.abs(theirs[real]).max())
            diffs[f"hf_{a}"] = {"max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()),
                                "max_abs_logit": scale, "relative_max_diff": float(d.max()) / scale,
                                "argmax_agreement": float((ours[real].argmax(-1) == theirs[real].argmax(-1)).mean())}

        load_before = harness.load_average()
        if args.max_load is not None:
            load_before = harness.wait_for_quiet(args.max_load, timeout_s=600)
        print(f"timing (load average {load_before}) ...", flush=True)
        times = harness.interleaved(contenders, warmup=args.warmup, repeats=args.repeats, sync=sync)
        part_times = (harness.interleaved(part_contenders, warmup=args.warmup, repeats=args.repeats, sync=sync)
                      if part_contenders else None)
        load_after = harness.load_average()

    gpu_peak = {}
    if device == "cuda":
        gpu_peak["torch_max_memory_allocated"] = torch.cuda.max_memory_allocated()
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        gpu_peak["jax_peak_bytes_in_use"] = stats["peak_bytes_in_use"]

    med = {k: harness.summary(times.seconds[k], times.others_cpu[k]) for k in times.seconds}
    part_med = ({k: harness.summary(part_times.seconds[k], part_times.others_cpu[k]) for k in part_times.seconds}
                if part_times else {})
    tps = {k: tokens / v["median"] for k, v in med.items()}
    tps_quiet = {k: tokens / v["median_quiet"] for k, v in med.items() if v.get("median_quiet")}
    ref = f"hf_{hf_attns[0]}" if hf_attns else None
    ratio = lambda t: {f"{k}/{h}": t[k] / t[h] for k in ("flax", "flax+prep") for h in t  # noqa: E731
                       if h.startswith("hf_") and k in t}
    worst = max((d["relative_max_diff"] for d in diffs.values()), default=0.0)
    ok = worst <= rtol

    result = {
        "benchmark": "Qwen2.5-VL forward (logits), jitted Flax vs transformers, same weights and batch",
        "command": harness.command_line(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": args.config,
        "dtype": args.dtype,
        "shapes": {"batch": b, "padded_length": length, "tokens_per_forward": tokens,
                   "image_tokens_per_prompt": int(np.prod(grid[0])) // config.vision.merge_unit,
                   "patches_per_image": int(np.prod(grid[0])), "image_size": args.image_size,
                   "text_hidden": config.text.hidden_size, "text_layers": config.text.num_hidden_layers,
                   "heads": config.text.num_attention_heads, "kv_heads": config.text.num_key_value_heads,
                   "intermediate": config.text.intermediate_size, "vocab": config.text.vocab_size,
                   "vision_hidden": config.vision.hidden_size, "vision_depth": config.vision.depth,
                   "vision_heads": config.vision.num_heads, "window_size": config.vision.window_size,
                   "fullatt_block_indexes": list(config.vision.fullatt_block_indexes), "parameters": n_params},
        "flax_attention": args.flax_attention,
        "tokens_per_second": tps,
        "ratio_tokens_per_second": ratio(tps),
        # The same over the calls during which other processes used < 10% of the CPUs (shared machine).
        "tokens_per_second_quiet": tps_quiet,
        "ratio_tokens_per_second_quiet": ratio(tps_quiet),
        "seconds": med,
        "parts_seconds": part_med,
        "model_flops": model_flops(config, inputs),
        "flax_compile": compile_info,
        "flax_prepare_inputs_first_call_s": prepare_s,
        "logits": {"rtol": rtol, "ok": ok, "vs": diffs},
        "peak_rss_growth_first_call_bytes": peak_rss,
        "gpu_peak_bytes": gpu_peak,
        "load_average": {"before_timing": load_before, "after_timing": load_after},
        "machine": harness.machine_info(),
    }
    markdown = render_markdown(result, ref)
    json_path, md_path = harness.write_results(args.out, result, markdown)
    print(markdown)
    print(f"written to {json_path} and {md_path}")
    if not ok:
        print(f"FAIL: logits differ by {worst:.3g} of their scale > rtol {rtol:g}", file=sys.stderr)
        return 1
    return 0


def render_markdown(r: dict, ref: str | None) -> str:
    s, m = r["shapes"], r["machine"]
    lines = [
        f"# Qwen2.5-VL forward: Flax (jax.jit) vs transformers — `{r['config']}`, {r['dtype']}",
        "",
        f"`{r['command']}` — {r['date']}",
        "",
        f"Batch {s['batch']} x {s['padded_length']} tokens ({s['image_tokens_per_prompt']} image tokens from "
        f"{s['patches_per_image']} patches per prompt, {s['image_size']}px images); text {s['text_hidden']} x "
        f"{s['text_layers']} layers ({s['heads']} heads, {s['kv_heads']} kv), vocab {s['vocab']}; vision "
        f"{s['vision_hidden']} x {s['vision_depth']} (window {s['window_size']}, full attention at "
        f"{s['fullatt_block_indexes']}); {s['parameters'] / 1e6:.1f}M parameters.",
        "",
    ]
    def ms(v):
        return "-" if v is None else v * 1e3

    def timing_row(k, v):
        others = v.get("others_cpu")
        return [k, ms(v["median"]), ms(v["min"]), ms(v["max"]),
                "-" if others is None else f"{statistics.median(others):.0%}",
                f"{ms(v.get('median_quiet')) if v.get('median_quiet') else '-'} ({v.get('quiet_calls', 0)})"]

    def speed(table, k):
        return f"{table[k]:,.0f} ({table[k] / table[ref]:.2f}x)" if ref in table and k in table else "-"

    header = ["forward", "median ms", "min ms", "max ms", "others' CPU", "quiet median ms (calls)"]
    lines.append(harness.markdown_table(
        header + [f"tokens/s (vs {ref})", "quiet tokens/s"],
        [timing_row(k, v) + [speed(r["tokens_per_second"], k), speed(r["tokens_per_second_quiet"], k)]
         for k, v in r["seconds"].items()]))
    lines += ["", "others' CPU: median share of the CPUs other processes used during a call; quiet: calls where "
                  "that share was below 10%."]
    if r["parts_seconds"]:
        lines += ["", "Parts (vision tower alone; text decoder + lm_head alone):", ""]
        lines.append(harness.markdown_table(["part"] + header[1:],
                                            [timing_row(k, v) for k, v in r["parts_seconds"].items()]))
    c = r["flax_compile"]["full"]
    lines += ["", f"Flax compile (full forward): trace+lower {c['trace_lower_s']:.2f} s, compile "
                  f"{c['compile_s']:.2f} s" + (f"; XLA temp buffers {c['xla_temp_bytes'] / 2**20:.0f} MiB"
                                               if "xla_temp_bytes" in c else "")
              + "."]
    fl = r["model_flops"]
    lines += ["", f"Model FLOPs per forward (matmuls, windowed vision attention): {fl['total'] / 1e9:.1f} G "
                  f"(vision {fl['vision'] / 1e9:.1f}, text decoder {fl['text_decoder'] / 1e9:.1f}, lm_head "
                  f"{fl['lm_head'] / 1e9:.1f}); achieved GFLOP/s: "
                  + ", ".join(f"{k} {fl['total'] / v['median'] / 1e9:.1f}" for k, v in r["seconds"].items()) + "."]
    lg = r["logits"]
    lines += ["", f"Logits vs transformers at real positions (pass: max diff <= {lg['rtol']:g} x max |logit|; "
                  f"{'OK' if lg['ok'] else 'FAILED'}):", ""]
    lines.append(harness.markdown_table(["vs", "max abs diff", "mean abs diff", "max abs logit", "argmax agree"],
                                        [[k, f"{d['max_abs_diff']:.2e}", f"{d['mean_abs_diff']:.2e}",
                                          d["max_abs_logit"], d["argmax_agreement"]]
                                         for k, d in lg["vs"].items()]))
    rss = {k: f"{v / 2**20:.0f} MiB" for k, v in r["peak_rss_growth_first_call_bytes"].items() if v is not None}
    if rss:
        lines += ["", f"Peak resident growth during the first call (coarse): {rss}."]
    if r["gpu_peak_bytes"]:
        lines += ["", f"GPU peak bytes: {r['gpu_peak_bytes']}."]
    la = r["load_average"]
    lines += ["", f"Machine: {m['platform']}, {m['cpu_count']} CPUs, jax {m['versions']['jax']} "
                  f"({', '.join(m.get('jax_devices', []))}), torch {m['versions']['torch']} "
                  f"({m.get('torch_threads')} threads, cuda: {m.get('torch_cuda')}), transformers "
                  f"{m['versions']['transformers']}. Load average (1/5/15 min) before timing {la['before_timing']}, "
                  f"after {la['after_timing']}."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
