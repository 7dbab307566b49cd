r"""Every GPU figure in one command: the benchmarks side by side with PyTorch, each step in its own process.

    python benchmarks/gpu_suite.py --out_dir=$OUT/gpu --deadline_s=480   # the accelerator machine (gpu_suite.sh)
    python benchmarks/gpu_suite.py --smoke                                 # CPU, tiny shapes, < 3 min (CI)
    python benchmarks/gpu_suite.py --plan                                  # the steps and the figures they give

First the wheels in --wheels (`make gpu-wheels`) that this interpreter lacks are installed offline into a
throwaway directory that is put in front of PYTHONPATH (benchmarks/gpu_wheels.py); the machine's packages stay
as they are. Then a device check (versions, the device, a big bf16 matmul in jax and torch = the measured peak,
a cuDNN attention probe, and our model on the machine's flax, with the bundled flax as a fallback). Then the
steps, most valuable first, each a benchmark script in its own subprocess with its own time cap, the caps cut
to what is left of --deadline_s; a step that cannot fit is skipped with the reason, one that fails or times out
is recorded with the tail of its output, and the rest still run. The results (`<device>.json` and `.md` in
--out_dir) are rewritten after every step, so a run cut short still leaves every figure measured so far.
--smoke runs the same steps on tiny shapes, so the suite cannot rot without a GPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

import gpu_steps  # noqa: E402


def run_process(cmd: list[str], *, env: dict, timeout_s: float, log_path: Path) -> tuple[int | None, float, str]:
    """Run cmd in its own process group with output to log_path; at the timeout, SIGABRT it first (Python's
    faulthandler then writes every thread's stack to the log: where it was stuck), then kill the group.
    Returns (exit code or None on timeout, wall seconds, the last 4,000 characters of the output)."""
    t0 = time.monotonic()
    env = {**env, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            rc = None
            proc.send_signal(signal.SIGABRT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # and whatever it started
            except ProcessLookupError:
                pass
            proc.wait()
    text = log_path.read_text(errors="replace")
    text = re.sub(r"[^\n]*\r", "", text)  # progress bars redraw with \r: keep their last state
    return rc, time.monotonic() - t0, text[-4000:]


class Suite:
    """The run's state: where results go, the environment steps run in, the clock, and what was measured."""

    def __init__(self, args):
        self.args = args
        self.t0 = time.monotonic()
        self.out_dir = Path(args.out_dir)
        self.logs = self.out_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        # jax and torch share the device in every step: jax grows its pool on demand, up to 60% of the device.
        self.env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        self.env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.6")
        self.env["TOKENIZERS_PARALLELISM"] = "false"
        self.env.setdefault("HF_HUB_OFFLINE", "1")
        self.paths = [str(REPO), str(BENCH)]
        self.report = {"suite": "syngrpo GPU suite", "smoke": args.smoke, "command": " ".join(sys.argv),
                       "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "deadline_s": args.deadline_s,
                       "steps": {}}
        self.name = "cpu_smoke" if args.smoke else "device"

    def left(self) -> float:
        return self.args.deadline_s - (time.monotonic() - self.t0)

    def step_env(self, extra=()) -> dict:
        env = dict(self.env)
        env.update(dict(extra))
        env["PYTHONPATH"] = os.pathsep.join(self.paths + [p for p in [self.env.get("PYTHONPATH")] if p])
        return env

    def python(self, argv: list[str], name: str, cap_s: float, env=()) -> dict:
        timeout = min(cap_s, self.left())
        rc, wall, tail = run_process([sys.executable, *argv], env=self.step_env(env), timeout_s=timeout,
                                     log_path=self.logs / f"{name}.log")
        status = "ok" if rc == 0 else ("timeout" if rc is None else "failed")
        entry = {"status": status, "returncode": rc, "wall_s": round(wall, 1), "cap_s": round(timeout, 1),
                 "command": " ".join(["python", *argv])}
        if status != "ok":
            entry["output_tail"] = tail
        return entry

    def install_wheels(self) -> None:
        wheels = Path(self.args.wheels)
        if not wheels.is_dir() or not any(wheels.glob("*.whl")):
            self.report["wheels"] = {"status": "skipped", "reason": f"no wheels in {wheels}"}
            return
        target = Path(self.args.overlay)
        out = self.out_dir / "wheels.json"
        entry = self.python([str(BENCH / "gpu_wheels.py"), "install", f"--dir={wheels}", f"--target={target}"]
                            + ([f"--with={self.args.with_wheels}"] if self.args.with_wheels else []),
                            "wheels", 120)
        log = (self.logs / "wheels.log").read_text(errors="replace")
        try:
            entry["plan"] = json.loads(log[log.index("{"):])
        except ValueError:
            pass
        self.paths.insert(0, str(target))
        self.report["wheels"] = entry
        out.write_text(json.dumps(entry, indent=2))

    def device_check(self) -> dict:
        out = self.out_dir / "device_check.json"
        entry = self.python([str(BENCH / "gpu_steps.py"), "--device_check", f"--out={out}"]
                            + (["--smoke"] if self.args.smoke else []), "device_check", 240)
        check = json.loads(out.read_text()) if out.exists() else {}
        if check.get("model_check", {}).get("ok") is False and not self.args.with_wheels:
            # Our model does not run on the machine's flax: retry with the bundled one in front of it.
            self.args.with_wheels = "flax"
            self.install_wheels()
            entry = self.python([str(BENCH / "gpu_steps.py"), "--device_check", f"--out={out}"]
                                + (["--smoke"] if self.args.smoke else []), "device_check_flax_fallback", 240)
            check = json.loads(out.read_text()) if out.exists() else {}
            check["flax_fallback"] = True
        entry["result"] = check
        self.report["device_check"] = entry
        device = check.get("device_name") or ("cpu" if self.args.smoke else "unknown")
        self.name = re.sub(r"[^A-Za-z0-9]+", "_", device).strip("_") + ("_smoke" if self.args.smoke else "")
        return check

    def run_step(self, step: "gpu_steps.Step", context: dict) -> None:
        if self.args.steps and step.name not in self.args.steps.split(","):
            return
        if self.args.smoke and step.smoke_args is None:
            self.report["steps"][step.name] = {"status": "skipped", "reason": "not in --smoke (same code path as "
                                                                              "an earlier step)"}
            return
        left = self.left()
        if left < step.min_s:
            self.report["steps"][step.name] = {"status": "skipped", "reason": (
                f"needs about {step.min_s:.0f} s, {max(left, 0):.0f} s of the {self.args.deadline_s:.0f} s "
                "deadline left")}
            return
        out = self.out_dir / "steps" / f"{step.name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        argv = step.argv(context, smoke=self.args.smoke) + [f"--out={out}"]
        if self.args.shrink:
            argv = gpu_steps.shrink(argv)
        entry = self.attempt(step, argv, step.name)
        cudnn = "--flax_attention=cudnn"
        if (entry["status"] == "failed" and not out.exists() and cudnn in argv
                and "cudnn" in entry.get("output_tail", "").lower() and self.left() >= step.min_s):
            # It crashed in or near cuDNN (the device check ran small shapes): the same step on the xla path.
            first = entry
            entry = self.attempt(step, [a if a != cudnn else "--flax_attention=xla" for a in argv],
                                 f"{step.name}_xla")
            entry["cudnn_attempt"] = {k: first[k] for k in ("status", "returncode", "wall_s", "output_tail")}
        self.record(step, entry, out)

    def attempt(self, step, argv: list[str], log_name: str) -> dict:
        print(f"[{time.monotonic() - self.t0:5.0f} s] {step.name}: {' '.join(argv)}", flush=True)
        return self.python(argv, log_name, step.smoke_cap_s if self.args.smoke else step.cap_s,
                           env=() if self.args.smoke else step.env)

    def record(self, step, entry: dict, out: Path) -> None:
        if out.exists():
            try:
                entry["result"] = json.loads(out.read_text())
                entry["figures"] = step.figures(entry["result"])
            except Exception as err:  # noqa: BLE001 - a figure we cannot read is reported, not fatal
                entry["figures_error"] = f"{type(err).__name__}: {err}"
        self.report["steps"][step.name] = entry
        print(f"[{time.monotonic() - self.t0:5.0f} s] {step.name}: {entry['status']} in {entry['wall_s']} s "
              f"{json.dumps(entry.get('figures', {}))}", flush=True)

    def write(self) -> tuple[Path, Path]:
        self.report["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        self.report["summary"] = gpu_steps.summary(self.report)
        json_path = self.out_dir / f"{self.name}.json"
        json_path.write_text(json.dumps(self.report, indent=2, default=str) + "\n")
        md_path = json_path.with_suffix(".md")
        md_path.write_text(gpu_steps.markdown(self.report) + "\n")
        return json_path, md_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out_dir", default=str(BENCH / "results" / "gpu"))
    ap.add_argument("--deadline_s", type=float, default=None, help="total wall time (default 480; smoke 300)")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny shapes: the same steps, in minutes")
    ap.add_argument("--plan", action="store_true", help="write the steps and their figures as 'not measured'")
    ap.add_argument("--shrink", action="store_true",
                    help="the accelerator's arguments with tiny shapes: checks them on a CPU (not --smoke's)")
    ap.add_argument("--steps", default="", help="comma list: run only these steps")
    ap.add_argument("--wheels", default=str(REPO / "gpu_wheels"))
    ap.add_argument("--overlay", default="/tmp/syngrpo_overlay", help="where the wheels are installed")
    ap.add_argument("--with_wheels", default="", help="fallback wheels to install up front (flax)")
    args = ap.parse_args(argv)
    if args.deadline_s is None:
        args.deadline_s = 300.0 if args.smoke else 480.0
    suite = Suite(args)
    if args.plan:
        suite.name = "not_measured"
        for step in gpu_steps.STEPS:
            suite.report["steps"][step.name] = {"status": "not measured", "reason": "no accelerator run yet"}
        print("written", *suite.write())
        return 0
    suite.install_wheels()
    check = suite.device_check()
    suite.write()
    context = gpu_steps.context_from_check(check)
    for step in gpu_steps.STEPS:
        suite.run_step(step, context)
        suite.write()
    json_path, md_path = suite.write()
    print(gpu_steps.markdown(suite.report, short=True))
    print(f"written to {json_path} and {md_path}")
    return 0 if all(s["status"] in ("ok", "skipped") for s in suite.report["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
