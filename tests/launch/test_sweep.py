"""launch/sweep.py accepts every invocation that configs/sweeps.py, README.md and its own docstring show, and
each command it makes names a config that loads."""
import importlib.util
import os
import re
import shlex
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented_commands():
    """Every `.venv/bin/python launch/sweep.py ...` in the docs, continuation lines joined."""
    found = []
    for doc in ("configs/sweeps.py", "launch/sweep.py"):
        text = open(os.path.join(REPO, doc)).read().replace("\\\n", " ")
        found += [(doc, m) for m in re.findall(r"\.venv/bin/python launch/sweep\.py[^\n#]*", text)]
    readme = open(os.path.join(REPO, "README.md")).read()
    found += [("README.md", " ".join(m.split())) for m in re.findall(r"`(\.venv/bin/python launch/sweep\.py[^`]*)`",
                                                                     readme)]
    return found


COMMANDS = documented_commands()


def test_the_docs_show_sweep_commands():
    assert {doc for doc, _ in COMMANDS} == {"configs/sweeps.py", "launch/sweep.py", "README.md"}
    assert all("..." not in cmd for _, cmd in COMMANDS)  # each example is complete as written


@pytest.mark.parametrize("doc,command", COMMANDS)
def test_documented_invocation(doc, command, monkeypatch, capsys):
    sweep = load("launch/sweep.py", "sweep")
    sweeps = load("configs/sweeps.py", "sweeps")
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    argv = shlex.split(command)[2:]
    assert sweep.main(argv) == 0
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a and not a.startswith("--config."))
    name = opts["sweep"].rpartition(":")[2]
    runs = sweeps.get_sweep(name)
    base_file, _, base_arg = opts["base"].partition(":")
    if "--run" in argv:
        made = calls
    elif "slurm" in opts:
        assert os.path.isfile(os.path.join(REPO, opts["slurm"]))
        assert all(c[:2] == ["sbatch", opts["slurm"]] for c in calls)
        made = [["python", "-m", "syngrpo_jax.train", f"--config={c[2]}", f"--workdir={c[3]}", *c[4:]] for c in calls]
    else:
        assert not calls
        made = [shlex.split(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(made) == len(runs)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    for cmd, run in zip(made, runs):
        assert cmd[1:3] == ["-m", "syngrpo_jax.train"] and cmd[5:] == extra
        config = cmd[3].removeprefix("--config=")
        assert config == f"{base_file}:{','.join(a for a in (base_arg, run['arg']) if a)}"
        assert cmd[4] == f"--workdir={os.path.join(opts['workdir_root'], run['name'])}"
        file, _, arg = config.partition(":")
        c = load(file, "base").get_config(arg)  # the base config accepts the run's arguments
        assert c.method == dict(kv.split("=") for kv in run["arg"].split(","))["method"]


def test_undocumented_forms_are_rejected(capsys):
    sweep = load("launch/sweep.py", "sweep")
    base = ["--sweep=configs/sweeps.py:gamma", "--base=configs/tiny_cpu.py", "--workdir_root=runs/x"]
    for bad in (["--sbatch"], ["--slurm=launch/slurm.sbatch", "--run"]):
        with pytest.raises(SystemExit):
            sweep.main(base + bad)
    with pytest.raises(ValueError, match="sweep 'nope' is unknown"):
        sweep.main(["--sweep=configs/sweeps.py:nope", "--base=configs/tiny_cpu.py", "--workdir_root=runs/x"])
