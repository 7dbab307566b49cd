r"""The memory plan against a real device: the plan's per-device peak, XLA's compiled sizes on this backend, and
the peak that one real GRPO step allocates, side by side (random weights, nothing downloaded).

    python benchmarks/memory_plan.py                                   # Qwen2.5-VL-3B, paper setting, all devices
    python benchmarks/memory_plan.py --model=qwen2_5_vl_7b --dtype=bfloat16 --remat=full
    python benchmarks/memory_plan.py --model=qwen2_5_vl_3b --remat=none --micro_batches=10

What runs: `syngrpo_jax.parallel.plan.make_plan` for configs/rec.py (the paper setting) on a (1, fsdp, 1) mesh of
this machine's devices. The trainer's jitted step is compiled first, on abstract inputs, so XLA's autotuning
scratch is gone before anything else is allocated; then parameters (`init_random`), AdamW state, the reference
copy and a batch shaped as the plan assumes are placed, the step runs once, and the device's peak_bytes_in_use
is read. Reported per device: plan (persistent + update phase), XLA (arguments + temporaries) and measured peak,
and the ratios plan / measured and XLA / measured. Needs an accelerator: the CPU backend keeps no memory stats.
Results: benchmarks/results/memory_plan.json and .md (--out).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

from syngrpo_jax.grpo.optimizer import optimizer_from_config  # noqa: E402
from syngrpo_jax.models import qwen2_5_vl  # noqa: E402
from syngrpo_jax.parallel import plan as plan_lib  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GIB = 1024**3


def rec_config(model: str):
    spec = importlib.util.spec_from_file_location("rec_config", REPO / "configs" / "rec.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(f"model={model}")


def measured_peak(config, sizes, assumptions, model_cfg) -> tuple[int, int, float]:
    """(bytes in use before the step, peak bytes after one step, step seconds) on device 0."""
    compiled, args = plan_lib.lower_step(config, sizes, assumptions, model_cfg)
    param_sh = jax.tree.map(lambda x: x.sharding, args[0])
    mesh = jax.tree.leaves(param_sh)[0].mesh
    model = qwen2_5_vl.init_random(model_cfg, seed=0, param_dtype=jnp.dtype(config.model.dtype), mesh=mesh,
                                   attention_impl=config.model.attention_impl, remat=config.model.remat)
    params = jax.device_put(nnx.to_pure_dict(nnx.state(model)), param_sh)
    del model
    tx = optimizer_from_config(config.optim, total_steps=1)
    opt_state = jax.jit(tx.init, out_shardings=jax.tree.map(lambda x: x.sharding, args[1]))(params)
    ref = None if args[2] is None else jax.tree.map(jnp.copy, params)
    one = plan_lib.example_micro_batch(config, model_cfg, assumptions)
    batch = jax.tree.map(lambda x: np.repeat(x, config.train.micro_batches, axis=0), one)
    batch = jax.device_put(batch, jax.tree.map(lambda x: x.sharding, args[3]))
    device = jax.devices()[0]
    before = device.memory_stats()["bytes_in_use"]
    t0 = time.perf_counter()
    out = compiled(params, opt_state, ref, batch, jax.random.key(0))
    jax.block_until_ready(out)
    return before, device.memory_stats()["peak_bytes_in_use"], time.perf_counter() - t0


def render_markdown(r: dict) -> str:
    g = lambda n: f"{n / GIB:.2f}"  # noqa: E731
    s = r["setting"]
    lines = [f"# Memory plan vs {r['machine'].get('jax_devices', ['?'])[0]}", "",
             f"{s['model']}, {s['dtype']}, remat={s['remat']}, attention={s['attention']}, mesh fsdp={s['fsdp']}, "
             f"{s['micro_batches']} micro-batches", "",
             "| per device (GiB) | plan | XLA compiled | measured |", "|---|---|---|---|",
             f"| state in use before the step | {g(r['plan']['persistent'] + r['plan']['batch'])} | "
             f"{g(r['xla']['arguments'])} | {g(r['measured']['before'])} |",
             f"| peak of the step | {g(r['plan']['peak'])} | {g(r['xla']['arguments'] + r['xla']['temporaries'])} | "
             f"{g(r['measured']['peak'])} |", "",
             f"plan / measured peak: {r['ratios']['plan_over_measured']:.2f}; XLA / measured peak: "
             f"{r['ratios']['xla_over_measured']:.2f}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="qwen2_5_vl_3b", choices=("qwen2_5_vl_3b", "qwen2_5_vl_7b"))
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    p.add_argument("--remat", default="full", choices=("none", "dots", "full"))
    p.add_argument("--attention", default="jax_nn", choices=("xla", "jax_nn", "cudnn"))
    p.add_argument("--micro_batches", type=int, default=5)
    p.add_argument("--devices", type=int, default=0, help="fsdp size (default: every device)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "memory_plan.json"))
    a = p.parse_args()
    if jax.default_backend() == "cpu":
        raise SystemExit("benchmarks/memory_plan.py needs an accelerator (the CPU backend keeps no memory stats)")
    config = rec_config(a.model)
    config.model.dtype, config.model.remat, config.model.attention_impl = a.dtype, a.remat, a.attention
    config.train.micro_batches = a.micro_batches
    sizes = dict(data=1, fsdp=a.devices or jax.device_count(), tensor=1)
    assumptions = plan_lib.Assumptions()
    model_cfg = plan_lib.model_config_of(config)
    plan = plan_lib.make_plan(config, sizes, assumptions, model_cfg)
    xla = plan_lib.compile_step(config, sizes, assumptions, model_cfg)
    before, peak, seconds = measured_peak(config, sizes, assumptions, model_cfg)
    update_peak = plan.persistent + plan.update  # the step alone (the rollout phase is not run here)
    result = dict(
        setting=dict(model=a.model, dtype=a.dtype, remat=a.remat, attention=a.attention, fsdp=sizes["fsdp"],
                     micro_batches=a.micro_batches),
        plan=dict(persistent=plan.persistent, batch=plan.state["batch"], gradients=plan.state["gradients"],
                  activations=plan.activations, peak=update_peak),
        xla=xla, measured=dict(before=before, peak=peak, step_seconds=seconds),
        ratios=dict(plan_over_measured=update_peak / peak, xla_over_measured=(xla["arguments"] +
                                                                            xla["temporaries"]) / peak),
        machine=harness.machine_info())
    markdown = render_markdown(result)
    harness.write_results(a.out, result, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
