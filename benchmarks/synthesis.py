r"""Data-server benchmark: throughput, latency and the server's own overhead, per backend, in one run.

    python benchmarks/synthesis.py                       # procedural + tiny random SDXL (CPU), ~1-2 min
    python benchmarks/synthesis.py --backends=sdxl_size  # SDXL-size random weights, 1024^2, 20 steps, fp16 (GPU)

Each backend runs in a real server subprocess (python -m synth_torch.server) reached over loopback ZeroMQ:
  sequential  one job in flight: latency = transport + server stages; overhead = latency - backend compute
  throughput  `--in_flight` jobs in flight: jobs/s and p50/p95 latency (queue wait included)
"Overhead" is everything but the backend's compute: PNG decode/encode, masks, compositing and the exact paste,
queueing inside the server, and the round trip through both sockets. Target: < 5% of job latency.
Writes benchmarks/results/synthesis.json (with machine info).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from syngrpo_jax.synthesis.client import SynthesisClient, SynthesisJob  # noqa: E402
from syngrpo_jax.synthesis.local_server import start_local_server  # noqa: E402
from syngrpo_jax.data.backgrounds import render_background  # noqa: E402


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "load_average": os.getloadavg()}  # a shared machine: other work running shows here
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except ImportError:
        pass
    return info


def make_jobs(n: int, width: int, height: int) -> list[SynthesisJob]:
    rng = np.random.default_rng(0)
    words = ["snowy", "street", "beach", "forest", "kitchen", "night", "red", "desert", "city", "field"]
    jobs = []
    for i in range(n):
        # photo-like content (smooth regions, edges, grain) so PNG sizes and codec times are realistic
        image = render_background(f"photo {i}", i, width, height)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG", compress_level=1)
        x0, y0 = rng.uniform(0, width * 0.5), rng.uniform(0, height * 0.5)
        box = [x0, y0, x0 + rng.uniform(0.2, 0.5) * width, y0 + rng.uniform(0.2, 0.5) * height]
        description = " ".join(rng.choice(words, 4))
        jobs.append(SynthesisJob(sample_id=i, description=f"a {description} scene", boxes=[box],
                                 image=buf.getvalue(), seed=i))
    return jobs


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run_backend(name: str, config_arg: str, overrides: dict, jobs: list[SynthesisJob], in_flight: int,
                warmup: int, timeout_s: float) -> dict:
    print(f"[{name}] starting server ({config_arg}, {overrides})", flush=True)
    with start_local_server(config_arg, overrides={"queue_size": max(64, 2 * in_flight), **overrides},
                            startup_timeout_s=1800) as server:
        with SynthesisClient(server.endpoint, max_in_flight=in_flight, timeout_s=timeout_s) as client:
            assert all(r.ok for r in client.run_batch(jobs[:warmup])), "warm-up failed"

            seq = []
            for job in jobs:  # sequential: one job at a time
                (r,) = client.run_batch([job])
                assert r.ok, r.error_message
                seq.append(r)
            t0 = time.perf_counter()
            par = client.run_batch(jobs)  # throughput: in_flight jobs at a time
            wall = time.perf_counter() - t0
            assert all(r.ok for r in par), [r.error_message for r in par if not r.ok][:3]
            stats = server.stats()

    def stage_means(results):
        keys = ["queue_wait", "decode", "mask", "backend", "paste", "encode", "total"]
        return {k: float(np.mean([r.timings[k] / (r.batch_size if k == "backend" else 1) for r in results]))
                for k in keys}

    lat = [r.latency_s for r in seq]
    backend = [r.timings["backend"] / r.batch_size for r in seq]
    overhead = [l - b for l, b in zip(lat, backend)]
    stages = stage_means(seq)
    result = {
        "backend": name, "config": config_arg, "overrides": {k: str(v) for k, v in overrides.items()},
        "jobs": len(jobs), "image": f"{jobs[0].image and Image.open(io.BytesIO(jobs[0].image)).size}",
        "sequential": {
            "jobs_per_s": len(seq) / sum(lat), "p50_latency_s": percentile(lat, 50),
            "p95_latency_s": percentile(lat, 95), "mean_latency_s": float(np.mean(lat)),
            "mean_backend_s": float(np.mean(backend)), "mean_overhead_s": float(np.mean(overhead)),
            # per job, then the median: robust to the backend stalls a shared CPU shows now and then
            "overhead_fraction": float(np.median(np.asarray(overhead) / np.asarray(lat))),
            "overhead_fraction_of_means": float(np.sum(overhead) / np.sum(lat)),
            "server_stage_means_s": stages,
            "transport_s": float(np.mean(lat) - stages["total"]),
        },
        "throughput": {
            "in_flight": in_flight, "jobs_per_s": len(par) / wall, "wall_s": wall,
            "p50_latency_s": percentile([r.latency_s for r in par], 50),
            "p95_latency_s": percentile([r.latency_s for r in par], 95),
            # the worker's time on things other than the backend, per job, over its busy time
            "worker_overhead_fraction": float(np.mean([sum(r.timings[k] for k in ("decode", "mask", "paste", "encode"))
                                                       for r in par]) /
                                              np.mean([sum(r.timings[k] for k in ("decode", "mask", "paste", "encode"))
                                                       + r.timings["backend"] / r.batch_size for r in par])),
            "mean_batch_size": float(np.mean([r.batch_size for r in par])),
        },
        "server_identity": stats["backend"] if stats else None,
    }
    s, t = result["sequential"], result["throughput"]
    print(f"[{name}] sequential: {s['jobs_per_s']:.2f} jobs/s, p50 {s['p50_latency_s'] * 1e3:.1f} ms, p95 "
          f"{s['p95_latency_s'] * 1e3:.1f} ms, overhead {100 * s['overhead_fraction']:.1f}% | throughput "
          f"({in_flight} in flight): {t['jobs_per_s']:.2f} jobs/s, p50 {t['p50_latency_s'] * 1e3:.1f} ms, "
          f"p95 {t['p95_latency_s'] * 1e3:.1f} ms", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="procedural,tiny_sdxl",
                        help="comma list of procedural, tiny_sdxl, sdxl_size")
    parser.add_argument("--jobs", type=int, default=24, help="jobs per phase")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--in_flight", type=int, default=8)
    parser.add_argument("--tiny_steps", type=int, default=4)
    parser.add_argument("--tiny_resolution", type=int, default=128, help="working_resolution of the tiny model")
    parser.add_argument("--torch_threads", type=int, default=0,
                        help="server's torch CPU threads (0 = torch default; 1 is steadier on a shared CPU)")
    parser.add_argument("--batch_size", type=int, default=1, help="server batch size for the diffusers backends")
    parser.add_argument("--warmup", type=int, default=2, help="untimed jobs first (model load, compile, caches)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "synthesis.json"))
    args = parser.parse_args()

    results = {"machine": machine_info(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(args),
               "backends": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backends.split(","):
            if name == "procedural":
                cfg, over, jobs = "procedural", {}, make_jobs(args.jobs, args.width, args.height)
            elif name in ("tiny_sdxl", "sdxl_size"):
                from synth_torch.tiny import build_random_sdxl

                size = "tiny" if name == "tiny_sdxl" else "sdxl"
                t0 = time.perf_counter()
                import torch

                # SDXL-size weights are drawn on the GPU (seconds; minutes on a CPU) and saved in float16.
                on_gpu = size == "sdxl" and torch.cuda.is_available()
                dirs = build_random_sdxl(Path(tmp) / size, size, **(
                    {"device": "cuda", "dtype": torch.float16} if on_gpu else {}))
                if on_gpu:
                    torch.cuda.empty_cache()  # the server process needs the memory, not this one
                print(f"[{name}] built random weights in {time.perf_counter() - t0:.1f} s", flush=True)
                over = {"model.base_dir": dirs.base_dir, "model.controlnet_dir": dirs.controlnet_dir,
                        "model.vae_dir": dirs.vae_dir, "batch_size": args.batch_size}
                if size == "tiny":
                    over.update({"steps": args.tiny_steps, "working_resolution": args.tiny_resolution,
                                 "device": "cpu", "torch_threads": args.torch_threads})
                    jobs = make_jobs(args.jobs, args.width, args.height)
                else:  # the accelerator setting: 1024x1024, 20 steps, fp16
                    over.update({"steps": 20, "working_resolution": 1024, "dtype": "float16"})
                    jobs = make_jobs(args.jobs, 1024, 1024)
                cfg = "sdxl"
            else:
                raise SystemExit(f"unknown backend {name!r}")
            results["backends"].append(run_backend(name, cfg, over, jobs, args.in_flight, warmup=args.warmup,
                                                   timeout_s=3600))
    results["load_average_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    print("\n| backend | seq jobs/s | seq p50 ms | seq p95 ms | overhead | tput jobs/s | tput p50 ms | tput p95 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results["backends"]:
        s, t = r["sequential"], r["throughput"]
        print(f"| {r['backend']} | {s['jobs_per_s']:.2f} | {s['p50_latency_s'] * 1e3:.1f} | "
              f"{s['p95_latency_s'] * 1e3:.1f} | {100 * s['overhead_fraction']:.1f}% | {t['jobs_per_s']:.2f} | "
              f"{t['p50_latency_s'] * 1e3:.1f} | {t['p95_latency_s'] * 1e3:.1f} |")


if __name__ == "__main__":
    main()
