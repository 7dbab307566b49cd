"""The GPU suite's steps, its device check, and how its results are summarised (see gpu_suite.py).

Each step is one benchmark script with the arguments for the accelerator and for --smoke (tiny shapes on a CPU),
a time cap, the least time worth starting it with, and the headline figures read from the script's JSON.

    python benchmarks/gpu_steps.py --device_check --out=check.json [--smoke]   # run by the suite
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    title: str
    script: str
    gpu_args: tuple[str, ...]  # may hold {attention} and {peak_tflops}
    smoke_args: tuple[str, ...] | None  # None: not run in --smoke (the same code path as another step)
    cap_s: float  # at most this long on the accelerator
    min_s: float  # not started with less than this left
    figures: Callable[[dict], dict]
    smoke_cap_s: float = 150.0
    env: tuple[tuple[str, str], ...] = ()  # extra environment on the accelerator
    gives: str = ""  # the figures, in words (the plan of what is still to be measured)

    def argv(self, context: dict, *, smoke: bool) -> list[str]:
        args = self.smoke_args if smoke else self.gpu_args
        return [str(BENCH / self.script), *(a.format(**context) for a in args)]


def _get(d: dict, *path, default=None):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def forward_figures(r: dict) -> dict:
    tps = r["tokens_per_second"]
    hf = "hf_sdpa" if "hf_sdpa" in tps else next(k for k in tps if k.startswith("hf_"))
    return {"flax_tokens_per_s": tps["flax"], f"{hf}_tokens_per_s": tps[hf],
            "flax_over_hf": tps["flax"] / tps[hf], "logits_relative_max_diff": r["logits"]["vs"][hf][
                "relative_max_diff"], "flax_attention": r.get("flax_attention"),
            "flax_compile_s": _get(r, "flax_compile", "full", "compile_s")}


def update_figures(r: dict) -> dict:
    return {"flax_tokens_per_s": r["tokens_per_s"]["flax"], "torch_tokens_per_s": r["tokens_per_s"]["transformers"],
            "flax_over_torch": r["ratio_flax_over_transformers"],
            "flax_step_s": r["seconds"]["flax"]["median"], "torch_step_s": r["seconds"]["transformers"]["median"],
            "mfu_flax": _get(r, "mfu", "flax"), "mfu_torch": _get(r, "mfu", "transformers"),
            "mfu_flax_vs_measured_matmul": _get(r, "mfu_vs_measured_matmul", "flax"),
            "flax_peak_gib": (_get(r, "peak_memory_bytes", "flax_device_peak_bytes") or 0) / 2**30 or None,
            "torch_peak_gib": (_get(r, "peak_memory_bytes", "transformers_cuda_peak_bytes") or 0) / 2**30 or None,
            "micro_batches": r["micro_batches"], "remat": r.get("remat"),
            "grad_norm_relative_diff": r["first_update_grad_norm"]["relative_difference"],
            "flax_compile_s": r["flax_compile_s"]}


def rollout_figures(r: dict) -> dict:
    return {"jax_tokens_per_s": r["tokens_per_s"]["jax"], "hf_generate_tokens_per_s": r["tokens_per_s"]["transformers"],
            "jax_over_hf": r["ratio_jax_over_transformers"], "jax_compile_s": r["jax_compile_s"],
            "greedy_tokens_agreeing_of_16": r["greedy_tokens_agreeing_of_16"]}


def synthesis_figures(r: dict) -> dict:
    b = r["backends"][0]
    s, t = b["sequential"], b["throughput"]
    return {"backend": b["backend"], "p50_latency_s": s["p50_latency_s"], "mean_backend_s": s["mean_backend_s"],
            "server_overhead_fraction": s["overhead_fraction"], "jobs_per_s_in_flight": t["jobs_per_s"],
            "in_flight": t["in_flight"]}


def vision_figures(r: dict) -> dict:
    out = {}
    for name, t in r["towers"].items():
        out[f"{name}_flax_time_exponent"] = t["exponents"]["time/flax"]["first_to_last"]
        out[f"{name}_hf_time_exponent"] = t["exponents"]["time/hf"]["first_to_last"]
        out[f"{name}_ms"] = {s["side"]: [round(s["seconds"]["flax"]["median"] * 1e3, 2),
                                         round(s["seconds"]["hf"]["median"] * 1e3, 2)] for s in t["sizes"]}
    out["features_relative_max_diff"] = r["features"]["worst_relative_diff"]
    return out


_FWD_SMOKE = ("--config=tiny", "--dtype=float32", "--batch=2", "--image_size=112", "--text_tokens=16",
              "--repeats=1", "--warmup=0", "--no-parts", "--hf_attention=sdpa")
_UPDATE_SMOKE = ("--config=tiny", "--prompts=2", "--group=2", "--response_tokens=8", "--image_size=56",
                 "--text_tokens=8", "--remat=dots", "--micro_batches=auto", "--repeats=1")


def _forward(config: str, batch: int) -> tuple[str, ...]:
    return (f"--config={config}", "--dtype=bfloat16", f"--batch={batch}", "--image_size=448", "--text_tokens=64",
            "--repeats=3", "--no-parts", "--hf_attention=sdpa", "--flax_attention={attention}")


def _update(config: str, prompts: int, *extra: str) -> tuple[str, ...]:
    return (f"--config={config}", "--dtype=bfloat16", f"--prompts={prompts}", "--group=6", "--response_tokens=512",
            "--image_size=448", "--text_tokens=64", "--remat=dots", "--micro_batches=auto", "--repeats=2",
            "--prompt_multiple=8", "--torch_rows=8", "--flax_attention={attention}", "--peak_tflops={peak_tflops}",
            *extra)


# Most valuable first (the brief's order 1, 2, 3, 4, 6, 5): a short run still gets the headline figures.
STEPS = (
    Step("forward_3b", "Qwen2.5-VL-3B forward, Flax vs transformers sdpa (bf16, 16 prompts, 448 px)",
         "model_forward.py", _forward("3b", 16), _FWD_SMOKE, cap_s=150, min_s=60, figures=forward_figures,
         gives="tokens/s of Flax and transformers sdpa, their ratio (target >= 1); logits agreement"),
    Step("grpo_update_3b", "GRPO update at the paper's shapes: 20 prompts x G 6, 512 response tokens (3B, bf16)",
         "train_step.py", _update("3b", 20), _UPDATE_SMOKE, cap_s=240, min_s=120, figures=update_figures,
         gives="tokens/s and step time of Flax and PyTorch; MFU vs 790 TFLOP/s (target >= 45%) and vs the "
               "measured matmul; peak memory; micro-batch size; gradient-norm agreement"),
    Step("rollout_3b", "Rollouts: JAX sampler vs transformers generate, 20 prompts x G 6 x 512 new tokens (3B)",
         "sampler.py",
         ("--config=3b", "--dtype=bfloat16", "--prompts=20", "--group=6", "--new_tokens=512", "--image_size=448",
          # The decode loop is weight-bound; its one-query attention stays on the xla path (the device check
          # does not cover cuDNN with a single query).
          "--text_tokens=64", "--repeats=1", "--warmup=1", "--flax_attention=xla"),
         ("--config=tiny", "--prompts=2", "--group=2", "--new_tokens=8", "--image_size=56", "--text_tokens=8",
          "--repeats=1", "--warmup=0"), cap_s=200, min_s=90, figures=rollout_figures,
         gives="generated tokens/s of the JAX sampler and of transformers generate, their ratio (target >= 1); "
               "compile time; greedy agreement"),
    Step("synthesis_sdxl", "SDXL-size ControlNet inpainting through the data server (random weights, fp16, 1024^2,"
         " 20 steps)", "synthesis.py", ("--backends=sdxl_size", "--jobs=4", "--in_flight=2", "--warmup=1"),
         ("--backends=tiny_sdxl", "--jobs=2", "--in_flight=2", "--warmup=1", "--tiny_steps=2", "--width=128",
          "--height=96", "--tiny_resolution=64"), cap_s=200, min_s=90, figures=synthesis_figures,
         gives="latency p50/p95, backend time, the server's overhead fraction, jobs/s with 2 in flight"),
    Step("vision_scaling", "Vision tower vs image size, Flax vs transformers (the 3B tower, bf16)",
         "vision_scaling.py", ("--config=3b", "--dtype=bfloat16", "--sizes=448,896,1344,1792", "--towers=mixed",
                               "--repeats=3", "--flax_attention={attention}"),
         ("--config=tiny", "--sizes=112,224", "--repeats=1"), cap_s=150, min_s=60, figures=vision_figures,
         gives="ms and memory per image size, both sides; growth exponents"),
    Step("forward_7b", "Qwen2.5-VL-7B forward (bf16, 8 prompts, 448 px)", "model_forward.py", _forward("7b", 8),
         None, cap_s=150, min_s=80, figures=forward_figures, gives="as forward_3b, at 7B"),
    # Both 7B updates' state (~70 GB each) do not fit at once: ours is timed, freed (jax's platform allocator
    # returns memory to the device), then transformers'.
    Step("grpo_update_7b", "GRPO update, 7B: 4 prompts x G 6, 512 response tokens (bf16; Flax, then torch)",
         "train_step.py", _update("7b", 4, "--sequential"), _UPDATE_SMOKE + ("--sequential",), cap_s=240,
         min_s=150, figures=update_figures, gives="as grpo_update_3b, at 7B (4 prompts)",
         env=(("XLA_PYTHON_CLIENT_ALLOCATOR", "platform"),)),
)


# --shrink: the accelerator's arguments with tiny shapes, to check them (and the bfloat16 paths) on a CPU.
SHRINK = {"--config": "tiny", "--batch": "2", "--prompts": "2", "--group": "2", "--response_tokens": "8",
          "--new_tokens": "8", "--image_size": "56", "--text_tokens": "8", "--sizes": "112,224", "--repeats": "1",
          "--backends": "tiny_sdxl", "--jobs": "2", "--torch_rows": "2"}


def shrink(argv: list[str]) -> list[str]:
    out = []
    for a in argv:
        key = a.split("=", 1)[0]
        out.append(f"{key}={SHRINK[key]}" if key in SHRINK else a)
    if "--backends=tiny_sdxl" in out:  # small images, as --smoke's
        out += ["--width=128", "--height=96", "--tiny_resolution=64", "--tiny_steps=2"]
    return out


def context_from_check(check: dict) -> dict:
    """Step arguments that depend on the device: cuDNN attention where our model ran with it, the measured
    matmul rate for MFU."""
    peak = _get(check, "matmul", "jax_tflops") or 0.0
    return {"attention": "cudnn" if _get(check, "model_check", "cudnn_ok") else "xla",
            "peak_tflops": f"{peak:.1f}" if peak else "0"}


# ---- the device check (run in its own process by the suite) -------------------------------------------------

def _versions() -> dict:
    names = ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "flax", "optax", "orbax-checkpoint",
             "torch", "transformers", "huggingface-hub", "diffusers", "accelerate", "pyzmq", "ml-collections",
             "safetensors", "tokenizers", "numpy")
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def _matmul_tflops(n: int, dtype: str, repeats: int = 10) -> dict:
    import jax
    import jax.numpy as jnp
    import torch

    out = {"n": n, "dtype": dtype}
    a = jnp.ones((n, n), dtype) * 0.01
    f = jax.jit(lambda x, y: x @ y)
    jax.block_until_ready(f(a, a))
    t0 = time.perf_counter()
    for _ in range(repeats):
        r = f(a, a)
    jax.block_until_ready(r)
    out["jax_tflops"] = 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e12
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.full((n, n), 0.01, dtype=getattr(torch, dtype), device=dev)
    x @ x
    if dev == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        y = x @ x
    if dev == "cuda":
        torch.cuda.synchronize()
    del y
    out["torch_tflops"] = 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e12
    return out


def _cudnn_probe() -> dict:
    """jax.nn.dot_product_attention with implementation="cudnn": key lengths, and a mask, forward and gradient."""
    import jax
    import jax.numpy as jnp

    q = jax.random.normal(jax.random.key(0), (2, 256, 4, 64), jnp.bfloat16)
    lengths = jnp.array([256, 100], jnp.int32)
    mask = jnp.tril(jnp.ones((256, 256), bool))[None, None].repeat(2, 0)
    out = {}
    for name, kw in (("kv_lengths", {"key_value_seq_lengths": lengths}), ("mask", {"mask": mask})):
        def loss(x, kw=kw):
            return jnp.sum(jax.nn.dot_product_attention(x, x, x, implementation="cudnn", **kw).astype(jnp.float32))
        try:
            jax.block_until_ready(jax.jit(jax.grad(loss))(q))
            out[name] = "ok"
        except Exception as err:  # noqa: BLE001 - recorded: the steps then use the xla path
            out[name] = f"{type(err).__name__}: {str(err)[:300]}"
    out["ok"] = all(v == "ok" for v in out.values())
    return out


def _model_check(smoke: bool, try_cudnn: bool) -> dict:
    """Our tiny model (vision windows + full attention + text) on this machine's jax/flax: forward finite, and
    with cuDNN attention equal to the xla path within bf16 rounding."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from model_forward import get_config, make_batch
    from syngrpo_jax.models import qwen2_5_vl

    config = get_config("tiny")
    ids, mask, pv, grid = make_batch(config, 2, 112, 16, seed=0)  # 4 windows per image + full attention
    pad = -ids.shape[1] % 8  # cuDNN's backward with a mask wants even lengths (the update pads prompts to 8)
    ids = np.pad(ids, ((0, 0), (pad, 0)), constant_values=config.pad_token_id)
    mask = np.pad(mask, ((0, 0), (pad, 0)))
    inputs = qwen2_5_vl.prepare_inputs(config, ids, mask, pv, grid)
    dtype = jnp.float32 if smoke else jnp.bfloat16
    out = {}
    ref = np.asarray(qwen2_5_vl.init_random(config, param_dtype=dtype)(ids, mask, pv, grid))
    out["ok"] = bool(np.isfinite(ref[mask > 0]).all())
    if try_cudnn:
        try:
            model = qwen2_5_vl.init_random(config, param_dtype=dtype, attention_impl="cudnn", remat="dots")
            got = np.asarray(model(ids, mask, pv, grid))
            diff = float(np.abs(got - ref)[mask > 0].max() / np.abs(ref[mask > 0]).max())
            out["cudnn_relative_max_diff"] = diff

            def loss(m):  # the training path: gradients through cuDNN attention under remat
                return jnp.sum(m.logits(m.hidden_states(inputs)).astype(jnp.float32) ** 2)

            grads = nnx.jit(nnx.grad(loss))(model)
            finite = all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
            out["cudnn_gradient_finite"] = finite
            out["cudnn_ok"] = bool(diff < 0.05 and finite)
        except Exception as err:  # noqa: BLE001
            out["cudnn_ok"] = False
            out["cudnn_error"] = f"{type(err).__name__}: {str(err)[:500]}"
    return out


def device_check(out_path: Path, smoke: bool) -> int:
    result: dict = {"python": platform.python_version(), "platform": platform.platform(),
                    "cpu_count": os.cpu_count(), "versions": _versions()}

    def save():
        out_path.write_text(json.dumps(result, indent=2, default=str))

    def part(name, fn):
        t0 = time.perf_counter()
        try:
            result[name] = fn()
        except Exception as err:  # noqa: BLE001 - every part is recorded, none stops the others
            result[name] = {"ok": False, "error": f"{type(err).__name__}: {err}",
                            "traceback": traceback.format_exc()[-2000:]}
        if isinstance(result[name], dict):
            result[name]["seconds"] = round(time.perf_counter() - t0, 2)
        save()

    save()
    import jax
    import torch

    result["jax_backend"] = jax.default_backend()
    result["jax_devices"] = [f"{d.platform}:{d.device_kind}" for d in jax.devices()]
    result["device_name"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else jax.devices()[0].device_kind
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        result["device_memory_bytes"] = {"free": free, "total": total}
        result["torch_cuda"] = torch.version.cuda
        result["cudnn"] = torch.backends.cudnn.version()
    gpu = jax.default_backend() == "gpu"
    part("matmul", lambda: _matmul_tflops(8192 if gpu else 512, "bfloat16" if gpu else "float32"))
    if gpu:
        part("cudnn_attention", _cudnn_probe)
    part("model_check", lambda: _model_check(smoke, gpu and result.get("cudnn_attention", {}).get("ok", False)))
    for mod in ("zmq", "ml_collections", "diffusers"):
        try:
            __import__(mod)
            result.setdefault("imports", {})[mod] = "ok"
        except Exception as err:  # noqa: BLE001
            result.setdefault("imports", {})[mod] = f"{type(err).__name__}: {err}"
    save()
    return 0 if result["model_check"].get("ok") else 1


# ---- results ---------------------------------------------------------------------------------------------------

def summary(report: dict) -> dict:
    """The headline figures of every step, each with the status it came from."""
    check = _get(report, "device_check", "result", default={})
    out = {"device": check.get("device_name"), "smoke": report.get("smoke"),
           "matmul_tflops_measured": _get(check, "matmul", "jax_tflops"),
           "matmul_tflops_torch": _get(check, "matmul", "torch_tflops"),
           "mfu_reference_tflops": 790.0, "attention": context_from_check(check)["attention"]}
    for name, s in report["steps"].items():
        out[name] = {"status": s["status"], **s.get("figures", {})}
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


def markdown(report: dict, short: bool = False) -> str:
    s = report["summary"]
    check = _get(report, "device_check", "result", default={})
    lines = [f"# GPU suite: {s.get('device') or 'no device yet'}" + (" (SMOKE: tiny shapes on CPU, not GPU figures)"
                                                                    if s.get("smoke") else ""), ""]
    if not short:
        lines += [f"`{report['command']}` — started {report['started']}, {report.get('elapsed_s', 0):.0f} s of "
                  f"{report['deadline_s']:.0f} s. Versions: " + ", ".join(
                      f"{k} {v}" for k, v in check.get("versions", {}).items() if v), ""]
    mm = check.get("matmul") or {}
    measured = (f"Measured matmul ({mm['dtype']} {mm['n']}^3): jax {_fmt(s['matmul_tflops_measured'])} / torch "
                f"{_fmt(s['matmul_tflops_torch'])} TFLOP/s" if "n" in mm else "Matmul not measured")
    lines += [f"{measured}; MFU is against {s['mfu_reference_tflops']:.0f} TFLOP/s (H200 bf16 dense, measured) and "
              f"the jax figure. Flax attention: {s['attention']}.", ""]
    titles = {st.name: st.title for st in STEPS}
    rows = []
    for name, step in report["steps"].items():
        figs = s.get(name, {})
        text = "; ".join(f"{k} {_fmt(v)}" for k, v in figs.items() if k != "status" and v is not None)
        why = step.get("reason") or ("" if step["status"] in ("ok", "skipped") else f"rc {step.get('returncode')}")
        if step["status"] == "not measured":
            text = "to measure: " + next(st.gives for st in STEPS if st.name == name)
        rows.append(f"| {name} | {step['status']} {why} | {step.get('wall_s', '-')} | {text or '-'} |")
    lines += ["| step | status | s | figures |", "|---|---|---|---|", *rows]
    if not short:
        lines += ["", "Steps: " + "; ".join(f"**{k}** {v}" for k, v in titles.items()) + "."]
        for name, step in report["steps"].items():
            if step.get("output_tail"):
                lines += ["", f"## {name}: {step['status']} — last output", "", "```",
                          step["output_tail"][-2500:], "```"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device_check", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(BENCH.parent))
    sys.path.insert(0, str(BENCH))
    return device_check(Path(args.out), args.smoke)


if __name__ == "__main__":
    sys.exit(main())
