"""compare: two real (tiny) runs side by side: the table's numbers are the runs' logged ones, the figure overlays
both runs' evaluation Acc@0.5; `make compare` runs exactly these commands."""
import importlib.util
import json
import os
import subprocess

import pytest

from syngrpo_jax import compare, train
from syngrpo_jax.metrics import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(arg):
    spec = importlib.util.spec_from_file_location("tiny_cpu", os.path.join(REPO, "configs", "tiny_cpu.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config(f"scale=test,sft_steps=2,steps=2,sync,{arg}")
    c.train.eval_every = 1
    return c


@pytest.mark.slow
def test_two_runs_side_by_side(tmp_path):
    runs = {"GRPO": str(tmp_path / "grpo"), "Syn-GRPO": str(tmp_path / "syn")}
    train.train(tiny_config("method=grpo"), runs["GRPO"])
    train.train(tiny_config("method=syn_grpo"), runs["Syn-GRPO"])
    numbers = compare.compare(list(runs.values()), list(runs), str(tmp_path / "out"))

    table = (tmp_path / "out" / "compare.md").read_text()
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["GRPO"]["steps"] == 2
    for label, workdir in runs.items():
        rows = [r for r in read_metrics(workdir) if "reward/total" in r]
        n = numbers[label]
        assert n["train"]["entropy"] == (rows[0]["entropy"], rows[-1]["entropy"])
        evals = [r for r in read_metrics(workdir) if "eval/rec_val/acc@0.5" in r]
        assert [r["step"] for r in evals] == [0, 1, 2]
        assert n["eval"]["rec_val/acc@0.5"] == (evals[0]["eval/rec_val/acc@0.5"], evals[-1]["eval/rec_val/acc@0.5"])
        assert n["eval_steps"] == (0, 2)
    assert "| metric | GRPO | Syn-GRPO |" in table and "eval rec_val/acc@0.5 (step 0 -> last)" in table
    assert "train reward/diversity" in table  # Syn-GRPO's row; GRPO's cell is its own (0) reward

    from syngrpo_jax import plots

    fig = plots.plot_curves(list(runs.values()), str(tmp_path / "c.png"), labels=list(runs))
    panel = next(ax for ax in fig.axes if ax.get_title() == "Evaluation Acc@0.5 (rec_val)")
    gids = {line.get_gid() for line in panel.get_lines() if line.get_gid()}
    assert gids == {"GRPO|eval/rec_val/acc@0.5|raw", "Syn-GRPO|eval/rec_val/acc@0.5|raw"}
    assert os.path.isfile(tmp_path / "out" / "plots" / "curves.png")


def test_bad_labels_and_unfinished_runs(tmp_path):
    with pytest.raises(ValueError, match="labels"):
        compare.compare([str(tmp_path)], ["a", "b"], str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        compare.compare([str(tmp_path)], ["a"], str(tmp_path / "out"))


def test_make_compare_runs_these_commands():
    out = subprocess.run(["make", "-n", "compare", "COMPARE_DIR=/x", "VENV=/v"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert "-m syngrpo_jax.train --config=configs/tiny_cpu.py:method=grpo" in out
    assert "-m syngrpo_jax.train --config=configs/tiny_cpu.py:method=syn_grpo" in out
    assert "--workdir=/x/grpo" in out and "--workdir=/x/syn_grpo" in out
    assert "-m syngrpo_jax.compare --workdir=/x/grpo,/x/syn_grpo --labels=GRPO,Syn-GRPO" in out
