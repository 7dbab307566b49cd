r"""How the vision tower's time and memory grow with image size: our jitted Flax tower vs transformers'.

    python benchmarks/vision_scaling.py                          # CPU: 256-wide blocks, 448..1344 px, ~3 min
    python benchmarks/vision_scaling.py --config=3b --dtype=bfloat16 --sizes=448,896,1344,1792 \
        --flax_attention=cudnn                                   # a GPU machine: the released tower's shapes

Two towers are measured at each square image size: `windowed` (every block windowed: the part whose cost should
grow linearly in patches) and `mixed` (the config's own pattern of windowed and full-attention blocks). Both
sides run the same random weights (transformers' model saved with save_pretrained, loaded with our
from_pretrained) on the processor's pixels. Reported per size: seconds per call (median and fastest of
--repeats, interleaved), CPU seconds per call on a CPU (this process's, all threads: the work done), memory
(ours: XLA's temporary buffers of the compiled executable; transformers: the peak of torch.cuda allocations on
GPU, resident-set growth of the first call on CPU), the largest feature difference, and for each series the
growth exponent k in cost ~ patches^k (least squares over the sizes in log-log, and between the smallest and
largest size). The headline exponent is of CPU seconds on a CPU (on a machine shared with other jobs, wall time
grows with whatever else runs: others' load during each call is recorded too) and of wall time (the fastest
call) on an accelerator. Results: benchmarks/results/vision_scaling.json and .md (--out).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # both frameworks share the device

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

from model_forward import SMALL_IDS, build_hf_model, flax_twin, get_config  # noqa: E402
from syngrpo_jax.models import qwen2_5_vl  # noqa: E402
from syngrpo_jax.models.tiny import tiny_config  # noqa: E402


def vision_config(name: str, windowed_only: bool):
    """The tower to measure with a one-layer text model (never run; the merger's output width is the config's)."""
    if name == "cpu":  # 256-wide blocks with 64-dim heads; the released window layout
        config = tiny_config(**SMALL_IDS, vocab_size=256, hidden_size=256, num_layers=1, num_heads=4,
                             num_kv_heads=2, intermediate_size=256, vision_hidden_size=256, vision_depth=4,
                             vision_heads=4, vision_intermediate_size=688, window_size=112,
                             fullatt_block_indexes=(3,))
    elif name == "tiny":  # the suite's smoke test
        config = tiny_config(**SMALL_IDS, vocab_size=256, hidden_size=64, num_layers=1, num_heads=4,
                             num_kv_heads=2, vision_hidden_size=32, vision_depth=2, window_size=112,
                             fullatt_block_indexes=(1,))
    else:  # 3b / 7b: the released tower
        config = get_config(name)
        text = dataclasses.replace(config.text, vocab_size=256, num_hidden_layers=1, intermediate_size=256)
        config = dataclasses.replace(config, text=text, tie_word_embeddings=True, **SMALL_IDS)
    if windowed_only:
        config = dataclasses.replace(config, vision=dataclasses.replace(config.vision, fullatt_block_indexes=()))
    return config


def pixels(side: int, seed: int):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))
    out = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=side * side)(images=[image],
                                                                                    return_tensors="np")
    return out["pixel_values"], out["image_grid_thw"]


def growth_exponent(patches: list[int], values: list[float]) -> dict:
    """k in value ~ patches^k: least squares over all points in log-log, and from the first to the last point."""
    x, y = np.log(np.asarray(patches, float)), np.log(np.asarray(values, float))
    fit = float(np.polyfit(x, y, 1)[0]) if len(x) > 1 else float("nan")
    ends = float((y[-1] - y[0]) / (x[-1] - x[0])) if len(x) > 1 else float("nan")
    return {"least_squares": fit, "first_to_last": ends}


def measure_size(hf, model, side: int, *, device: str, torch_dtype, repeats: int, seed: int) -> dict:
    """One image size: compile ours, check features against transformers, then time both interleaved."""
    pv, grid = pixels(side, seed)
    config = model.config
    patches, pos, window_id, merged_order = (jax.device_put(x) for x in qwen2_5_vl.prepare_vision(config, pv, grid))
    n_merged = int(np.prod(grid[0])) // config.vision.merge_unit
    graphdef, state = nnx.split(model)
    fn = jax.jit(lambda s, *a: nnx.merge(graphdef, s).vision(*a, dtype=model.dtype,
                                                              attention_impl=model.attention_impl))
    args = (state, patches, pos, window_id, merged_order)
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    xla_temp = None
    try:
        xla_temp = int(compiled.memory_analysis().temp_size_in_bytes)
    except Exception:  # not every backend reports it
        pass
    pv_t = torch.tensor(pv, device=device, dtype=torch_dtype)
    grid_t = torch.tensor(grid, device=device)

    def ours():
        return compiled(*args)

    def theirs():
        with torch.no_grad():
            return hf.model.visual(pv_t, grid_thw=grid_t).pooler_output

    sync = harness.block

    with harness.PeakRSS() as rss_ours:
        a = np.asarray(sync(ours())[0, :n_merged].astype(jnp.float32))
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    with harness.PeakRSS() as rss_theirs:
        b = sync(theirs()).float().cpu().numpy()
    memory = {"flax_xla_temp_bytes": xla_temp, "flax_rss_growth_bytes": rss_ours.peak_bytes,
              "hf_rss_growth_bytes": rss_theirs.peak_bytes}
    if device == "cuda":
        memory["hf_cuda_peak_bytes"] = int(torch.cuda.max_memory_allocated() - base)
    times = harness.interleaved({"flax": ours, "hf": theirs}, warmup=1, repeats=repeats, sync=sync)
    scale = float(np.abs(b).max())
    return {"side": side, "patches": int(np.prod(grid[0])), "flax_compile_s": compile_s,
            "seconds": {k: harness.summary(v, times.others_cpu[k]) for k, v in times.seconds.items()},
            "cpu_seconds": {k: harness.summary(v) for k, v in times.own_cpu.items()},
            "memory": memory, "max_abs_diff": float(np.abs(a - b).max()), "max_abs_feature": scale,
            "relative_max_diff": float(np.abs(a - b).max()) / scale}


def series_exponents(rows: list[dict]) -> dict:
    """Growth exponents of wall time (each size's fastest call: on a shared machine the least disturbed one; the
    medians' too), of CPU time (medians) and of memory."""
    patches = [r["patches"] for r in rows]
    out = {}
    for name, key, stat in (("time", "seconds", "min"), ("time_median", "seconds", "median"),
                            ("cpu_time", "cpu_seconds", "median")):
        for side in ("flax", "hf"):
            if all(key in r for r in rows):
                out[f"{name}/{side}"] = growth_exponent(patches, [r[key][side][stat] for r in rows])
    for key in ("flax_xla_temp_bytes", "hf_cuda_peak_bytes", "hf_rss_growth_bytes"):
        vals = [r["memory"].get(key) for r in rows]
        if all(v for v in vals):
            out[f"memory/{key}"] = growth_exponent(patches, vals)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=("cpu", "tiny", "3b", "7b"), default="cpu")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--sizes", default="448,896,1344", help="square image sides in pixels (multiples of 28)")
    ap.add_argument("--towers", default="windowed,mixed")
    ap.add_argument("--flax_attention", default="xla", choices=("xla", "jax_nn", "cudnn"))
    ap.add_argument("--hf_attention", default="sdpa")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rtol", type=float, default=None, help="max feature diff / max |feature| (1e-4 fp32)")
    ap.add_argument("--max_exponent", type=float, default=1.3,
                    help="reported: does the windowed tower's time exponent stay at or below this")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "vision_scaling.json"))
    args = ap.parse_args(argv)
    rtol = args.rtol if args.rtol is not None else (1e-4 if args.dtype == "float32" else 0.1)
    device = args.device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    sizes = [int(s) for s in args.sizes.split(",")]
    towers = {}
    for tower in args.towers.split(","):
        config = vision_config(args.config, windowed_only=tower == "windowed")
        hf = build_hf_model(config, torch_dtype, device, args.seed)
        hf.set_attn_implementation(args.hf_attention)
        model = flax_twin(hf, jnp.dtype(args.dtype), attention_impl=args.flax_attention)
        v = config.vision
        towers[tower] = {"depth": v.depth, "hidden": v.hidden_size, "heads": v.num_heads,
                         "fullatt_block_indexes": list(v.fullatt_block_indexes), "sizes": []}
        for side in sizes:
            print(f"[{tower}] {side}px ...", flush=True)
            towers[tower]["sizes"].append(measure_size(hf, model, side, device=device, torch_dtype=torch_dtype,
                                                       repeats=args.repeats, seed=args.seed + side))
            towers[tower]["exponents"] = series_exponents(towers[tower]["sizes"])
            result = write(args, towers, rtol)  # after every size: a run cut short keeps what it measured
        del hf, model
    print(render_markdown(result))
    if not result["features"]["ok"]:
        print(f"FAIL: features differ by {result['features']['worst_relative_diff']:.3g} of their scale > rtol "
              f"{rtol:g}", file=sys.stderr)
        return 1
    return 0


def write(args, towers: dict, rtol: float) -> dict:
    # CPU seconds on a CPU (wall time there grows with others' load), wall time on an accelerator.
    headline = "cpu_time/flax" if args.device == "cpu" else "time/flax"
    windowed = towers.get("windowed", {}).get("exponents", {}).get(headline, {}).get("first_to_last")
    worst = max(r["relative_max_diff"] for t in towers.values() for r in t["sizes"])
    result = {"benchmark": "vision tower scaling, jitted Flax vs transformers", "command": harness.command_line(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": args.config, "dtype": args.dtype,
              "flax_attention": args.flax_attention, "hf_attention": args.hf_attention, "towers": towers,
              "windowed_time_exponent": windowed, "windowed_exponent_of": headline, "max_exponent": args.max_exponent,
              "windowed_exponent_ok": windowed is not None and windowed <= args.max_exponent,
              "features": {"rtol": rtol, "worst_relative_diff": worst, "ok": worst <= rtol},
              "machine": harness.machine_info()}
    harness.write_results(args.out, result, render_markdown(result))
    return result


def render_markdown(r: dict) -> str:
    lines = [f"# Vision tower vs image size: Flax vs transformers — `{r['config']}`, {r['dtype']}", "",
             f"`{r['command']}` — {r['date']}; Flax attention `{r['flax_attention']}`, transformers "
             f"`{r['hf_attention']}`.", ""]
    mib = lambda b: "-" if not b else f"{b / 2**20:,.0f}"  # noqa: E731

    def cpu_ms(s):
        return [s["cpu_seconds"][k]["median"] * 1e3 if "cpu_seconds" in s else "-" for k in ("flax", "hf")]

    def others_load(s):  # the median share of the machine's CPUs other processes used during the timed calls
        shares = [o for k in ("flax", "hf") for o in s["seconds"][k].get("others_cpu") or []]
        return f"{np.median(shares):.0%}" if shares else "-"
    for name, t in r["towers"].items():
        lines += [f"## {name}: {t['depth']} blocks x {t['hidden']} ({t['heads']} heads), full attention at "
                  f"{t['fullatt_block_indexes'] or 'none'}", ""]
        rows = [[s["side"], s["patches"], s["seconds"]["flax"]["median"] * 1e3, s["seconds"]["hf"]["median"] * 1e3,
                 s["seconds"]["hf"]["median"] / s["seconds"]["flax"]["median"], *cpu_ms(s), others_load(s),
                 mib(s["memory"]["flax_xla_temp_bytes"]),
                 mib(s["memory"].get("hf_cuda_peak_bytes") or s["memory"]["hf_rss_growth_bytes"]),
                 f"{s['relative_max_diff']:.1e}"] for s in t["sizes"]]
        lines.append(harness.markdown_table(["px", "patches", "flax ms", "hf ms", "hf/flax", "flax CPU ms",
                                             "hf CPU ms", "others' load", "flax XLA temp MiB", "hf MiB",
                                             "max diff / max"], rows))
        lines += ["", "Growth exponent k (cost ~ patches^k; least squares / first-to-last): " + "; ".join(
            f"{k} {e['least_squares']:.2f} / {e['first_to_last']:.2f}" for k, e in t["exponents"].items()), ""]
    exp = r["windowed_time_exponent"]
    lines.append(("" if exp is None else f"Windowed tower, Flax exponent of {r['windowed_exponent_of']} {exp:.2f} "
                  f"({'<=' if r['windowed_exponent_ok'] else '>'} {r['max_exponent']}); ") + "features within "
                 f"{r['features']['worst_relative_diff']:.1e} of their scale "
                 f"({'OK' if r['features']['ok'] else 'FAILED'}, rtol {r['features']['rtol']:g}).")
    lines.append("ms: wall time, median of the calls; CPU ms: this process's CPU time per call (all threads); "
                 "others' load: the median share of the machine's CPUs other processes used during the calls. "
                 "hf MiB: torch.cuda peak allocation on GPU; on CPU the resident-set growth of the first call "
                 "(coarse: memory the allocator kept from earlier calls is reused unseen).")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
