"""distributed.report_unclean_exit: the advice appears on the process's stderr when it dies without Python's
shutdown (SIGKILL, abort: what JAX's coordination service does to the survivors of a lost process), and never
after a normal exit, an uncaught exception or SystemExit."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADVICE = "relaunch the same command on every process"
ENDINGS = {
    "returns": "pass",
    "raises": "raise ValueError('a bug')",
    "exits": "raise SystemExit('error: a config value')",
    "is killed": "os.kill(os.getpid(), signal.SIGKILL)",
    "aborts": "os.abort()",
}


def run(ending: str, log: Path) -> int:
    code = ("import os, signal\nfrom syngrpo_jax.parallel import distributed\n"
            f"distributed.report_unclean_exit({ADVICE!r})\n{ENDINGS[ending]}\n")
    with open(log, "w") as out:  # one file for stdout and stderr, as the launchers write a process's log
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}, timeout=120)
    return proc.returncode


def text_after(log: Path, settle_s: float) -> str:
    """The log once the watcher, which outlives the process, has had `settle_s` to write."""
    deadline = time.monotonic() + settle_s
    while ADVICE not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    return log.read_text()


@pytest.mark.parametrize("ending", ["is killed", "aborts"])
def test_a_process_ended_from_outside_leaves_the_advice(ending, tmp_path):
    code = run(ending, tmp_path / "log")
    assert code < 0  # ended by a signal
    assert text_after(tmp_path / "log", 10).rstrip().endswith(ADVICE)


@pytest.mark.parametrize("ending", ["returns", "raises", "exits"])
def test_a_process_that_shuts_down_says_nothing_more(ending, tmp_path):
    code = run(ending, tmp_path / "log")
    assert code == (0 if ending == "returns" else 1)
    text = text_after(tmp_path / "log", 2)
    assert ADVICE not in text
    if ending != "returns":  # Python's own report of the error is there
        assert ("ValueError: a bug" if ending == "raises" else "error: a config value") in text
