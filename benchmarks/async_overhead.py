"""What synthesis costs training: the same tiny run with synthesis off, asynchronous and synchronous, with the
wall-time ratios from one process run (the paper measured +5.7% for asynchronous synthesis at 3B).

    python benchmarks/async_overhead.py                 # about 8 minutes on 2 CPU cores
    python benchmarks/async_overhead.py --steps=20 --max_load=2

The three runs share everything except synthesis (configs/tiny_cpu.py with its demo model, no warm start, so
every response runs to max_tokens and steps cost the same; each run is its own `python -m syngrpo_jax.train`
process in a fresh workdir, as real runs are: several runs in one process slow down as they go):
  off    method=grpo: no data server
  async  method=grpo_offline_generation, synthesis.mode=async: jobs go out, results are applied when ready
  sync   method=grpo_offline_generation, synthesis.mode=sync: each step waits for its own batch's images
(grpo and grpo_offline_generation have the same response format, rewards and loss.) The data server's procedural
backend sleeps `delay` per job so one step's jobs take about as long as one training step, a GPU backend's
latency emulated: delay = the `off` run's median step time / batch size, measured first in this process. Its
real per-job CPU work (decode, masks, the procedural painting, paste, PNG encode: ~60 ms) shares the trainer's
cores, so the server runs at niceness `--server_nice` (10, as configs/tiny_cpu.py sets it) and yields to training.

The no-synthesis run is done first and again last (off, async, sync, off again) and its baseline is the mean
of the two, so a drift in machine load during the benchmark shows up as a gap between them instead of as
overhead. Reported: median step time of each run (steps after the first two, which compile), async overhead =
async / off - 1 and sync / off. Targets: async overhead <= 3%, sync >= 1.8x.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile

import harness

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def run(workdir: str, arg: str, a, server_overrides: str = "") -> None:
    """One training run in its own process (the configs/tiny_cpu.py arg plus benchmark settings)."""
    cmd = [sys.executable, "-m", "syngrpo_jax.train",
           f"--config={os.path.join(REPO, 'configs', 'tiny_cpu.py')}:scale={a.scale},sft_steps=0,steps={a.steps},"
           f"num_samples={4 * a.batch},{arg}",
           f"--workdir={workdir}", f"--config.train.batch_size={a.batch}",
           "--config.train.checkpoint_every=1000000",  # only the final save: this measures steps, not checkpoints
           f"--config.synthesis.server_overrides={server_overrides}"]
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"run failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")


PHASES = ("rollout", "rewards", "synthesis", "waiting", "update", "weight_sync", "step")


def step_times(workdir: str, skip: int) -> list[float]:
    from syngrpo_jax.metrics import read_metrics

    return [r["time/step"] for r in read_metrics(workdir) if "time/step" in r][skip:]


def phase_medians(workdir: str, skip: int) -> dict[str, float]:
    """Median seconds per step of each phase: trainer-side synthesis work is `synthesis` (submitting jobs and
    applying results); sharing CPUs with the server shows as slower `rollout` and `update`."""
    from syngrpo_jax.metrics import read_metrics

    rows = [r for r in read_metrics(workdir) if "time/step" in r][skip:]
    return {p: statistics.median(r[f"time/{p}"] for r in rows) for p in PHASES}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=14)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--scale", default="demo", help="configs/tiny_cpu.py scale: demo (steps of ~2-3 s) or test")
    p.add_argument("--skip", type=int, default=2, help="leading steps left out (compilation)")
    p.add_argument("--server_nice", type=int, default=10,
                   help="the data server's niceness (configs/tiny_cpu.py's default): it shares the trainer's CPUs")
    p.add_argument("--max_load", type=float, default=0.0, help="first wait (up to 10 min) for a quieter machine")
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "async_overhead.json"))
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load_before = harness.wait_for_quiet(a.max_load, timeout_s=600) if a.max_load else harness.load_average()
    root = tempfile.mkdtemp(prefix="async_overhead-")
    runs = {}
    run(os.path.join(root, "off"), "method=grpo", a)
    runs["off"] = step_times(os.path.join(root, "off"), a.skip)
    delay = statistics.median(runs["off"]) / a.batch
    for mode in ("async", "sync"):
        run(os.path.join(root, mode), "method=grpo_offline_generation" + (",sync" if mode == "sync" else ""), a,
            server_overrides=f"nice={a.server_nice},procedural_delay_s={delay:.4f}")
        runs[mode] = step_times(os.path.join(root, mode), a.skip)
    run(os.path.join(root, "off_again"), "method=grpo", a)
    runs["off_again"] = step_times(os.path.join(root, "off_again"), a.skip)

    phases = {k: phase_medians(os.path.join(root, k), a.skip) for k in runs}
    median = {k: statistics.median(v) for k, v in runs.items()}
    median["off_first"], median["off"] = median["off"], (median["off"] + median["off_again"]) / 2
    result = {
        "benchmark": "async_overhead", "command": harness.command_line(), "machine": harness.machine_info(),
        "load_average_before": load_before, "load_average_after": harness.load_average(),
        "steps": a.steps, "batch_size": a.batch, "server_nice": a.server_nice, "skipped_steps": a.skip,
        "delay_per_job_s": delay,
        "step_seconds": {k: {"median": median[k], "all": [round(x, 4) for x in v]} for k, v in runs.items()},
        "off_baseline_s": median["off"],
        "phase_medians_s": phases,
        "async_overhead": median["async"] / median["off"] - 1.0,
        "sync_ratio": median["sync"] / median["off"],
        "targets": {"async_overhead_max": 0.03, "sync_ratio_min": 1.8},
    }
    result["meets_targets"] = result["async_overhead"] <= 0.03 and result["sync_ratio"] >= 1.8
    markdown = "\n".join([
        "# Synthesis overhead on training (tiny run, procedural backend with emulated latency)", "",
        f"Machine: {result['machine']['processor']}, {result['machine']['cpu_count']} CPUs, load "
        f"{load_before} -> {result['load_average_after']}. Command: `{result['command']}`", "",
        harness.markdown_table(["synthesis", "median step (s)", "vs off"],
                               [[k, median[k], median[k] / median["off"]]
                                for k in ("off_first", "async", "sync", "off_again", "off")]), "",
        "(off = mean of off_first and off_again, the same run before and after the others.)", "",
        "Median seconds per step of each phase:", "",
        harness.markdown_table(["run", *PHASES], [[k, *(phases[k][p] for p in PHASES)]
                                                  for k in ("off", "async", "sync", "off_again")]), "",
        f"Emulated backend latency: {delay:.3f} s per job, {a.batch} jobs per step; server niceness "
        f"{a.server_nice}. Async overhead "
        f"{100 * result['async_overhead']:+.1f}% (target <= 3%), sync {result['sync_ratio']:.2f}x (target >= 1.8x).",
    ])
    json_path, _ = harness.write_results(a.out, result, markdown)
    print(markdown)
    print(f"\nwrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
