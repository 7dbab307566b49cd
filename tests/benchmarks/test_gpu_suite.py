"""benchmarks/gpu_suite.py: isolated, time-capped steps under a deadline, partial results after every step, and
the whole suite in --smoke on this CPU (the same steps as on the accelerator, tiny shapes)."""
import json
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_steps  # noqa: E402
import gpu_suite  # noqa: E402

SCRIPT = """
import argparse, json, sys, time
ap = argparse.ArgumentParser(); ap.add_argument("--mode"); ap.add_argument("--out")
a = ap.parse_args()
if a.mode == "sleep":
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # e.g. a server it started
    open(a.out + ".child", "w").write(str(child.pid))
    print("sleeping", flush=True); time.sleep(60)
if a.mode == "fail":
    print("Traceback: something broke on the device", file=sys.stderr); sys.exit(3)
json.dump({"value": 42, "mode": a.mode}, open(a.out, "w"))
"""


def fake_step(script: Path, name: str, mode: str, cap_s=20.0, min_s=0.0):
    return gpu_steps.Step(name, name, str(script), (f"--mode={mode}",), (f"--mode={mode}",), cap_s=cap_s,
                          min_s=min_s, figures=lambda r: {"value": r["value"]}, smoke_cap_s=cap_s)


def test_steps_are_isolated_capped_and_recorded(tmp_path):
    script = tmp_path / "step.py"
    script.write_text(SCRIPT)
    args = types.SimpleNamespace(out_dir=str(tmp_path / "out"), deadline_s=30.0, smoke=True, steps="", shrink=False,
                                 wheels=str(tmp_path / "none"), overlay=str(tmp_path / "ov"), with_wheels="")
    suite = gpu_suite.Suite(args)
    suite.install_wheels()
    steps = [fake_step(script, "good", "ok"), fake_step(script, "broken", "fail"),
             fake_step(script, "hangs", "sleep", cap_s=3.0), fake_step(script, "too_big", "ok", min_s=1e6)]
    for step in steps:
        suite.run_step(step, {})
        json_path, md_path = suite.write()
        written = json.loads(json_path.read_text())  # rewritten after every step
        assert step.name in written["steps"]
    s = written["steps"]
    assert s["good"]["status"] == "ok" and s["good"]["figures"] == {"value": 42}
    assert s["broken"]["status"] == "failed" and s["broken"]["returncode"] == 3
    assert "something broke on the device" in s["broken"]["output_tail"]
    assert s["hangs"]["status"] == "timeout" and s["hangs"]["wall_s"] < 20 and "sleeping" in s["hangs"]["output_tail"]
    assert 'step.py", line 9' in s["hangs"]["output_tail"]  # where it hung: faulthandler's stack on SIGABRT
    child = int((tmp_path / "out" / "steps" / "hangs.json.child").read_text())
    time.sleep(0.5)
    assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
    assert s["too_big"]["status"] == "skipped" and "deadline" in s["too_big"]["reason"]
    assert written["wheels"]["status"] == "skipped"
    md = md_path.read_text()
    assert "| broken | failed rc 3 |" in md and "something broke on the device" in md
    assert written["summary"]["good"] == {"status": "ok", "value": 42}


def test_plan_lists_every_step_as_not_measured(tmp_path):
    assert gpu_suite.main(["--plan", f"--out_dir={tmp_path}"]) == 0
    report = json.loads((tmp_path / "not_measured.json").read_text())
    assert list(report["steps"]) == [s.name for s in gpu_steps.STEPS]
    assert all(s["status"] == "not measured" for s in report["steps"].values())


def test_gpu_arguments_are_the_briefs_shapes():
    context = {"attention": "cudnn", "peak_tflops": "780.0"}
    update = dict(a.split("=", 1) for a in next(s for s in gpu_steps.STEPS if s.name == "grpo_update_3b")
                  .argv(context, smoke=False)[1:])
    assert (update["--prompts"], update["--group"], update["--response_tokens"]) == ("20", "6", "512")
    assert update["--remat"] != "none" and update["--micro_batches"] == "auto"
    assert update["--flax_attention"] == "cudnn" and update["--peak_tflops"] == "780.0"
    rollout = dict(a.split("=", 1) for a in next(s for s in gpu_steps.STEPS if s.name == "rollout_3b")
                   .argv(context, smoke=False)[1:])
    assert (rollout["--group"], rollout["--new_tokens"]) == ("6", "512")
    assert [s.name for s in gpu_steps.STEPS][:5] == ["forward_3b", "grpo_update_3b", "rollout_3b", "synthesis_sdxl",
                                                     "vision_scaling"]


@pytest.mark.slow
def test_smoke_suite_runs_every_step(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "--smoke",
                          f"--out_dir={tmp_path}", "--deadline_s=1200", f"--wheels={tmp_path / 'no_wheels'}"],
                         cwd=REPO, capture_output=True, text=True, timeout=1500)
    report = json.loads((tmp_path / "cpu_smoke.json").read_text())
    failed = {k: v.get("output_tail", "")[-1500:] for k, v in report["steps"].items() if v["status"] != "ok"}
    assert out.returncode == 0 and set(failed) == {"forward_7b"}, (out.stdout[-3000:], failed)
    assert report["device_check"]["result"]["model_check"]["ok"]
    s = report["summary"]
    assert s["forward_3b"]["logits_relative_max_diff"] < 1e-4
    assert s["grpo_update_3b"]["grad_norm_relative_diff"] < 1e-3
    assert s["rollout_3b"]["greedy_tokens_agreeing_of_16"] == 16
    assert s["synthesis_sdxl"]["p50_latency_s"] > 0
    assert s["vision_scaling"]["features_relative_max_diff"] < 1e-4
    assert report["steps"]["grpo_update_7b"]["result"]["sequential"] is True
    assert "SMOKE" in (tmp_path / "cpu_smoke.md").read_text()


def test_a_step_that_crashes_in_cudnn_is_run_again_on_the_xla_path(tmp_path):
    script = tmp_path / "step.py"
    script.write_text("""
import argparse, json, sys
ap = argparse.ArgumentParser(); ap.add_argument("--flax_attention"); ap.add_argument("--out")
a = ap.parse_args()
if a.flax_attention == "cudnn":
    sys.exit("RuntimeError: cuDNN does not support these shapes")
json.dump({"value": 7}, open(a.out, "w"))
""")
    args = types.SimpleNamespace(out_dir=str(tmp_path / "out"), deadline_s=60.0, smoke=False, steps="", shrink=False,
                                 wheels=str(tmp_path / "none"), overlay=str(tmp_path / "ov"), with_wheels="")
    suite = gpu_suite.Suite(args)
    step = gpu_steps.Step("fwd", "fwd", str(script), ("--flax_attention={attention}",), None, cap_s=20, min_s=0,
                          figures=lambda r: {"value": r["value"]})
    suite.run_step(step, {"attention": "cudnn"})
    entry = suite.report["steps"]["fwd"]
    assert entry["status"] == "ok" and entry["figures"] == {"value": 7}
    assert "--flax_attention=xla" in entry["command"]
    assert entry["cudnn_attempt"]["status"] == "failed" and "cuDNN does not support" in entry["cudnn_attempt"][
        "output_tail"]
