"""The wheels the GPU machine lacks and the GPU suite needs: their download here, their offline install there.

    python benchmarks/gpu_wheels.py download --dir=gpu_wheels     # `make gpu-wheels` (needs PyPI): < 50 MiB
    python benchmarks/gpu_wheels.py install --dir=gpu_wheels --target=/tmp/overlay    # on the machine, offline

The accelerator machine has a fixed Python 3.12 environment (shared/ENVIRONMENT.md: torch, jax, flax, optax,
orbax-checkpoint, transformers 5.17, accelerate, ... and their dependencies) and no package index; wheels travel
with the working tree. Measured by importing every module the suite's steps load (tests/benchmarks/
test_gpu_wheels.py checks it): the steps need `pyzmq` (the data server's sockets), `diffusers` (the SDXL-size
backend) and `ml-collections` (the server's config flags) beyond the machine's packages; tensorboardX,
pycocotools and vLLM are not used by any step. Next to those three come what they need that the machine may
lack: `requests` and its dependencies (diffusers checks for it when imported), and a huggingface-hub 1.x new
enough for diffusers 0.42 (>= 1.32) yet inside transformers 5.17's range (< 2.0), with the click and hf-xet it
needs. `flax` is a fallback, installed only when the machine's own flax fails the suite's model check.

`install` puts into --target only the wheels whose distribution is missing on this interpreter, or installed at
a version another installed wheel rejects; the suite then prepends --target to PYTHONPATH, so the machine's
packages stay underneath, untouched. Standard library only (+ `packaging`, which pip and transformers bring).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

MIB = 2**20
MAX_TOTAL_BYTES = 50 * MIB
PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")

# What the machine is documented to have (its packages' own dependencies come with them).
MACHINE_HAS = ("torch", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "transformers", "absl-py", "msgpack",
               "safetensors", "tokenizers", "matplotlib", "tqdm", "pytest", "accelerate", "opencv-python-headless")
# Distributions the suite's steps import that the machine lacks: the roots of what must be installed.
SUITE_NEEDS = ("pyzmq", "diffusers", "ml-collections")
# Installed only on request (--with), when the machine's own copy does not work with this code.
FALLBACKS = ("flax",)
# Declared requirements the steps never use on Python 3.12 (diffusers imports importlib.metadata from the
# standard library on Python >= 3.8).
NOT_NEEDED = ("importlib-metadata",)
# Pinned: the versions the tests run with here, or the newest inside the machine's constraints.
WHEELS = {
    "pyzmq": "27.3.0",
    "diffusers": "0.42.1",
    "ml-collections": "1.1.0",
    "requests": "2.34.2", "urllib3": "2.8.0", "idna": "3.20", "certifi": "2026.10.19.post1",
    "charset-normalizer": "3.5.3",
    "huggingface-hub": "1.33.0", "click": "8.5.1", "hf-xet": "1.8.0",
    "flax": "0.12.8",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name_version(path: str | Path) -> tuple[str, str]:
    """(canonical distribution name, version) from a wheel's file name."""
    parts = Path(path).name.split("-")
    if len(parts) < 5 or not str(path).endswith(".whl"):
        raise ValueError(f"{path}: not a wheel file name (name-version-python-abi-platform.whl)")
    return canonical(parts[0]), parts[1]


def wheel_fits_machine(path: str | Path) -> bool:
    """A cp312 (or abi3 / pure Python) wheel for Linux x86-64."""
    _, _, py, abi, plat = Path(path).name[:-4].split("-")[-5:]
    py_ok = any(t in ("py3", "cp312") or (t.startswith("cp3") and abi == "abi3") for t in py.split("."))
    plat_ok = plat == "any" or all(p.endswith("x86_64") and p.startswith("manylinux") for p in plat.split("."))
    return py_ok and plat_ok


def wheel_requirements(path: str | Path) -> list[str]:
    """The Requires-Dist lines of a wheel's METADATA."""
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode("utf-8", "replace")
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def installed_versions() -> dict[str, str]:
    from importlib import metadata

    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def plan_install(wheels: list[Path], installed: dict[str, str], roots=SUITE_NEEDS, extra=()) -> dict:
    """Which wheels to install so that `roots` (+ `extra`) import: every root missing on the machine, then,
    repeatedly, every requirement of a chosen wheel that the machine lacks or holds at a rejected version and
    that a wheel here satisfies. Returns {"install": [paths], "unmet": [messages]}."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    by_name = {wheel_name_version(w)[0]: w for w in wheels}
    chosen: dict[str, Path] = {}
    unmet: list[str] = []
    todo = [canonical(r) for r in (*roots, *extra)]
    forced = {canonical(e) for e in extra}
    while todo:
        name = todo.pop()
        if name in chosen or (name in installed and name not in forced):
            continue
        if name not in by_name:
            unmet.append(f"{name}: needed, not installed and no wheel for it")
            continue
        chosen[name] = by_name[name]
        for line in wheel_requirements(by_name[name]):
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            dep = canonical(req.name)
            if dep in NOT_NEEDED:
                continue
            have = installed.get(dep)
            if dep in chosen or (have is not None and Version(have) in req.specifier):
                continue
            brought = by_name.get(dep)
            if brought is not None and Version(wheel_name_version(brought)[1]) in req.specifier:
                todo.append(dep)
                forced.add(dep)
            else:
                unmet.append(f"{name} needs {req}: the machine has {have or 'none'}"
                             + (f", the wheel here is {wheel_name_version(brought)[1]}" if brought else ""))
    return {"install": sorted(chosen.values()), "unmet": unmet}


def install(wheels: list[Path], target: Path) -> str:
    """pip install --no-index --no-deps --target; unzipping the wheels where pip is unavailable."""
    target.mkdir(parents=True, exist_ok=True)
    if not wheels:
        return "nothing to install"
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--upgrade", "--quiet",
           "--disable-pip-version-check", "--target", str(target), *map(str, wheels)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode == 0:
        return "pip"
    for w in wheels:  # a wheel is a zip of the site-packages tree (+ *.data/{purelib,platlib})
        with zipfile.ZipFile(w) as z:
            for info in z.infolist():
                parts = Path(info.filename).parts
                if len(parts) > 2 and parts[0].endswith(".data") and parts[1] in ("purelib", "platlib"):
                    info.filename = str(Path(*parts[2:]))
                elif parts and parts[0].endswith(".data"):
                    continue
                z.extract(info, target)
    return f"unzip (pip failed: {done.stderr.strip()[-300:]})"


def download(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.whl"):
        old.unlink()
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps", "--disable-pip-version-check",
           "--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", "cp312", "--abi", "abi3",
           "--abi", "none", *[a for p in PLATFORMS for a in ("--platform", p)], "--platform", "any",
           "-d", str(directory), *[f"{n}=={v}" for n, v in WHEELS.items()]]
    subprocess.run(cmd, check=True)
    files = sorted(directory.glob("*.whl"))
    got = {wheel_name_version(f)[0] for f in files}
    missing = sorted(set(map(canonical, WHEELS)) - got)
    wrong = [f.name for f in files if not wheel_fits_machine(f)]
    total = sum(f.stat().st_size for f in files)
    for f in files:
        print(f"{f.stat().st_size / MIB:7.2f} MiB  {f.name}")
    print(f"{total / MIB:7.2f} MiB  total in {directory} ({len(files)} wheels; limit {MAX_TOTAL_BYTES / MIB:.0f} MiB)")
    if missing or wrong or total >= MAX_TOTAL_BYTES:
        print(f"FAILED: missing {missing}, not cp312 x86-64 {wrong}, total {total / MIB:.1f} MiB", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("download", "plan", "install"))
    ap.add_argument("--dir", default="gpu_wheels")
    ap.add_argument("--target", default="/tmp/syngrpo_overlay")
    ap.add_argument("--with", dest="extra", default="", help="comma list of fallbacks to install too (flax)")
    args = ap.parse_args(argv)
    directory = Path(args.dir)
    if args.action == "download":
        return download(directory)
    extra = tuple(x for x in args.extra.split(",") if x)
    plan = plan_install(sorted(directory.glob("*.whl")), installed_versions(), extra=extra)
    report = {"install": [p.name for p in plan["install"]], "unmet": plan["unmet"]}
    if args.action == "install":
        report["method"] = install(plan["install"], Path(args.target))
        report["target"] = args.target
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
