r"""Expand a sweep of configs/sweeps.py into training runs: print the commands, run them one after another, or
submit each to SLURM.

    .venv/bin/python launch/sweep.py --sweep=configs/sweeps.py:gamma --base=configs/rec.py:model=qwen2_5_vl_3b \
        --workdir_root=/runs/gamma --print -- --config.model.path=/models/Qwen2.5-VL-3B-Instruct
    .venv/bin/python launch/sweep.py --sweep=configs/sweeps.py:methods --base=configs/tiny_cpu.py \
        --workdir_root=runs/methods --run
    .venv/bin/python launch/sweep.py --sweep=configs/sweeps.py:data_size --base=configs/rec.py \
        --workdir_root=/runs/size --slurm=launch/slurm.sbatch

--sweep is <sweeps file>:<sweep name> (a bare name reads configs/sweeps.py). Each run appends its argument to
--base's (`configs/rec.py:model=qwen2_5_vl_3b` + `method=syn_grpo,gamma=0.1`) and trains in
<workdir_root>/<run name>. Flags after `--` go to every run. --print (the default) writes one command per line;
--run runs them here in turn; --slurm=SCRIPT submits each as `sbatch SCRIPT <config> <workdir> <flags>`.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SWEEPS = "configs/sweeps.py"


def load_sweep(spec: str) -> list[dict]:
    """The runs of `<file>:<name>` (or `<name>` of configs/sweeps.py)."""
    file, sep, name = spec.rpartition(":")
    file = file if sep else DEFAULT_SWEEPS
    path = file if os.path.isabs(file) else os.path.join(REPO, file)
    if not os.path.isfile(path):
        raise SystemExit(f"--sweep={spec!r}: no sweeps file {path!r}")
    module_spec = importlib.util.spec_from_file_location("sweeps", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_sweep(name)


def commands(sweep: str, base: str, workdir_root: str, extra: list[str]) -> list[list[str]]:
    file, _, arg = base.partition(":")
    out = []
    for run in load_sweep(sweep):
        full = ",".join(a for a in (arg, run["arg"]) if a)
        out.append([sys.executable, "-m", "syngrpo_jax.train", f"--config={file}:{full}",
                    f"--workdir={os.path.join(workdir_root, run['name'])}", *extra])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", required=True, help="<sweeps file>:<name>, e.g. configs/sweeps.py:gamma")
    p.add_argument("--base", required=True, help="config file[:arg], e.g. configs/rec.py:model=qwen2_5_vl_3b")
    p.add_argument("--workdir_root", required=True, help="each run trains in <workdir_root>/<run name>")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--print", action="store_true", help="print the commands (default)")
    mode.add_argument("--run", action="store_true", help="run them here, one after another")
    mode.add_argument("--slurm", metavar="SCRIPT", help="submit each with sbatch SCRIPT, e.g. launch/slurm.sbatch")
    p.add_argument("extra", nargs="*", help="after --: flags for every run (--config.x=...)")
    a = p.parse_args(argv)
    for cmd in commands(a.sweep, a.base, a.workdir_root, a.extra):
        if a.run:
            print("+", shlex.join(cmd), flush=True)
            subprocess.run(cmd, cwd=REPO, check=True)
        elif a.slurm:
            config, workdir = cmd[3].split("=", 1)[1], cmd[4].split("=", 1)[1]
            subprocess.run(["sbatch", a.slurm, config, workdir, *cmd[5:]], cwd=REPO, check=True)
        else:
            print(shlex.join(cmd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
