"""benchmarks/gpu_wheels.py: the wheel list covers what the GPU suite imports, the offline install plan, and the
download itself (`make gpu-wheels`, from PyPI)."""
import json
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_wheels  # noqa: E402

# Every module the suite's steps and the data server they start import (diffusers' pipelines load lazily).
SUITE_IMPORTS = """
import sys
sys.path[:0] = [{repo!r}, {bench!r}]
import gpu_suite, gpu_steps, model_forward, train_step, sampler, synthesis, vision_scaling
import synth_torch.server, synth_torch.tiny, synth_torch.backends.diffusers_sdxl
import syngrpo_jax.rollout.jax_sampler, syngrpo_jax.grpo.train_step, syngrpo_jax.grpo.batch
import syngrpo_jax.synthesis.client, syngrpo_jax.synthesis.local_server
from diffusers import StableDiffusionXLControlNetInpaintPipeline, StableDiffusionXLInpaintPipeline, ControlNetModel
from ml_collections import config_flags  # synth_torch.server's entry point
import runpy; runpy.run_path({repo!r} + "/configs/synth.py")  # the server's config file
print("\\n".join(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def requirement_closure(names, skip=()) -> set[str]:
    """The distributions `names` need, transitively, as installed here (markers evaluated, extras off), not
    following `skip`."""
    from packaging.requirements import Requirement

    seen, todo = set(), [gpu_wheels.canonical(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen or name in skip:
            continue
        seen.add(name)
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in reqs:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(gpu_wheels.canonical(req.name))
    return seen


def test_wheel_list_covers_what_the_suite_imports():
    out = subprocess.run([sys.executable, "-c", SUITE_IMPORTS.format(repo=str(REPO), bench=str(REPO / "benchmarks"))],
                         capture_output=True, text=True, timeout=600, check=True).stdout.split()
    dists = metadata.packages_distributions()
    used = {gpu_wheels.canonical(d) for top in out for d in dists.get(top, [])} - {"syngrpo"}
    on_machine = requirement_closure(gpu_wheels.MACHINE_HAS)
    brought = requirement_closure(gpu_wheels.SUITE_NEEDS, skip=gpu_wheels.NOT_NEEDED)
    assert used - on_machine - set(map(gpu_wheels.canonical, gpu_wheels.WHEELS)) == set()
    # Each root really is used and really is missing on the machine (the list is not stale).
    for root in gpu_wheels.SUITE_NEEDS:
        assert root in used and root not in on_machine, root
    # Every requirement of the roots is on the machine or brought along.
    assert brought - on_machine - set(map(gpu_wheels.canonical, gpu_wheels.WHEELS)) == set()


def fake_wheel(directory: Path, name: str, version: str, requires=(), tag="py3-none-any") -> Path:
    """A minimal valid wheel: a package, a module under *.data/purelib, METADATA, WHEEL and RECORD."""
    mod = name.replace("-", "_")
    info = f"{mod}-{version}.dist-info"
    path = directory / f"{mod}-{version}-{tag}.whl"
    files = {
        f"{mod}/__init__.py": f"VERSION = {version!r}\n",
        f"{mod}-{version}.data/purelib/{mod}_extra.py": "X = 1\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
            f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for n, text in files.items():
            z.writestr(n, text)
    return path


def test_plan_installs_missing_roots_and_versions_the_machine_lacks(tmp_path):
    wheels = [
        fake_wheel(tmp_path, "diffusers", "0.42.1", ["huggingface-hub>=1.32,<3", "requests", "numpy",
                                                     'importlib_metadata', 'torch; extra == "torch"']),
        fake_wheel(tmp_path, "pyzmq", "27.3.0", ['cffi; implementation_name == "pypy"']),
        fake_wheel(tmp_path, "ml-collections", "1.1.0", ["absl-py", "PyYAML"]),
        fake_wheel(tmp_path, "huggingface-hub", "1.33.0", ["click>=8.4.2"]),
        fake_wheel(tmp_path, "click", "8.5.1"),
        fake_wheel(tmp_path, "requests", "2.34.2", ["urllib3<3"]),
        fake_wheel(tmp_path, "urllib3", "2.8.0"),
        fake_wheel(tmp_path, "flax", "0.12.8"),
    ]
    machine = {"numpy": "2.0", "absl-py": "2.1", "pyyaml": "6.0", "huggingface-hub": "1.10.0", "click": "8.1.0",
               "urllib3": "2.0.0", "flax": "0.13.0"}
    plan = gpu_wheels.plan_install(wheels, machine)
    names = sorted(gpu_wheels.wheel_name_version(p)[0] for p in plan["install"])
    # hub and click are upgraded (diffusers rejects hub 1.10, hub 1.33 rejects click 8.1); urllib3 2.0 is kept.
    assert names == ["click", "diffusers", "huggingface-hub", "ml-collections", "pyzmq", "requests"]
    assert plan["unmet"] == []
    # The fallback only on request; a root the machine has is left alone.
    assert "flax" in [gpu_wheels.wheel_name_version(p)[0] for p in gpu_wheels.plan_install(
        wheels, machine, extra=("flax",))["install"]]
    assert gpu_wheels.plan_install(wheels, {**machine, "pyzmq": "26.0", "diffusers": "0.42.1",
                                            "ml-collections": "1.0", "requests": "2.0"})["install"] == []
    # A requirement nobody can satisfy is named.
    short = [w for w in wheels if "click" not in w.name]
    assert any("click>=8.4.2" in u and "8.1.0" in u for u in gpu_wheels.plan_install(short, machine)["unmet"])


def test_install_unzips_when_pip_cannot(tmp_path, monkeypatch):
    wheel = fake_wheel(tmp_path, "ml-collections", "1.1.0")
    monkeypatch.setattr(gpu_wheels.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 1, "", "No module named pip"))
    how = gpu_wheels.install([wheel], tmp_path / "target")
    assert how.startswith("unzip") and "No module named pip" in how
    assert (tmp_path / "target" / "ml_collections" / "__init__.py").read_text() == "VERSION = '1.1.0'\n"
    assert (tmp_path / "target" / "ml_collections_extra.py").exists()  # from *.data/purelib


def test_install_with_pip_puts_only_the_planned_wheels_in_the_target(tmp_path):
    wheel = fake_wheel(tmp_path, "ml-collections", "1.1.0")
    assert gpu_wheels.install([wheel], tmp_path / "target") == "pip"
    assert (tmp_path / "target" / "ml_collections" / "__init__.py").exists()
    assert (tmp_path / "target" / "ml_collections_extra.py").exists()


@pytest.mark.parametrize("name,ok", [
    ("pyzmq-27.3.0-cp312-abi3-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl", True),
    ("hf_xet-1.8.0-cp38-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", True),
    ("diffusers-0.42.1-py3-none-any.whl", True),
    ("pyzmq-27.3.0-cp311-cp311-manylinux_2_28_x86_64.whl", False),
    ("pyzmq-27.3.0-cp312-abi3-macosx_10_15_universal2.whl", False),
    ("pyzmq-27.3.0-cp312-abi3-manylinux_2_28_aarch64.whl", False),
])
def test_wheel_tags(name, ok):
    assert gpu_wheels.wheel_fits_machine(name) is ok


@pytest.mark.slow
def test_make_gpu_wheels_downloads_every_wheel_under_50_mib(tmp_path):
    """The real download from PyPI (CI has it): every pinned wheel, for cp312 x86-64, under 50 MiB in all."""
    out = subprocess.run(["make", "gpu-wheels", f"PYTHON={sys.executable}", f"GPU_WHEELS={tmp_path}"], cwd=REPO,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    files = sorted(tmp_path.glob("*.whl"))
    assert {gpu_wheels.wheel_name_version(f)[0] for f in files} == set(map(gpu_wheels.canonical, gpu_wheels.WHEELS))
    assert all(gpu_wheels.wheel_fits_machine(f) for f in files)
    total = sum(f.stat().st_size for f in files)
    assert total < gpu_wheels.MAX_TOTAL_BYTES
    assert f"{total / 2**20:.2f} MiB  total" in out.stdout
    # The plan on this interpreter: everything the suite needs is already here, so nothing is installed.
    plan = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_wheels.py"), "plan", f"--dir={tmp_path}"],
                          capture_output=True, text=True, check=True)
    assert json.loads(plan.stdout) == {"install": [], "unmet": []}
