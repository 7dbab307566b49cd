"""Runs side by side: one table and one set of figures for several finished runs (GRPO vs Syn-GRPO).

    python -m syngrpo_jax.compare --workdir=workdirs/compare/grpo,workdirs/compare/syn_grpo \
        --labels=GRPO,Syn-GRPO --out=workdirs/compare

writes into `--out`:
  compare.md     per run: training rewards and token entropy at the first and the last step, and every
                 evaluation metric (see `evaluator.scalar_metrics`) before training (step 0) and at the last
                 evaluated step
  compare.json   the same numbers
  plots/         `plots.plot_all` over the runs (curves.png overlays them: entropy, answer diversity, rewards,
                 evaluation Acc@0.5 over steps, the training images' complexity)

`make compare` trains GRPO and Syn-GRPO on the embedded default (same seed, data, warm-start recipe and step
budget; each warm start is in its own method's response format) and then runs this.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Sequence

from syngrpo_jax import plots
from syngrpo_jax.atomic_write import atomic_write
from syngrpo_jax.evaluator import write_table
from syngrpo_jax.metrics import read_metrics
from syngrpo_jax.run_dir import RunDir

TRAIN_KEYS = ("reward/accuracy", "reward/format", "reward/diversity", "reward/total", "entropy",
              "diversity/V_batch", "data/bytes_per_pixel", "data/edge_density")
_SKIP = ("num_samples", "num_gt", "num_predictions", "num_matched", "mean_response_tokens")


def run_numbers(workdir: str) -> dict:
    """{"steps", "train": {key: (first, last)}, "eval": {key: (step 0, last step)}, "eval_steps": (0, last)} of a
    finished run, read from its metrics.jsonl and eval/<step>/metrics.json."""
    run = RunDir(workdir)
    rows = [r for r in read_metrics(run.root) if "reward/total" in r] if os.path.isfile(run.metrics) else []
    if not rows:
        raise FileNotFoundError(f"{run.metrics}: no training steps logged (is {workdir!r} a finished run?)")
    train = {k: (rows[0].get(k), rows[-1].get(k)) for k in TRAIN_KEYS if k in rows[-1]}
    table = write_table(run.eval)
    first = next((r for r in table if r["step"] == 0), {})
    last = table[-1] if table else {}
    keys = [k for k in last if k != "step" and not k.endswith(_SKIP)]
    return {"steps": rows[-1]["step"], "train": train, "eval": {k: (first.get(k), last.get(k)) for k in keys},
            "eval_steps": (0 if first else None, last.get("step"))}


def compare_table(numbers: dict[str, dict]) -> str:
    """Markdown: one row per metric, one "before -> after" column per run."""
    labels = list(numbers)

    def cell(pair):
        a, b = pair if pair else (None, None)
        f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        return f"{f(a)} -> {f(b)}"

    lines = ["| metric | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for section, name in (("train", "train {} (first -> last step)"), ("eval", "eval {} (step 0 -> last)")):
        keys = list(dict.fromkeys(k for n in numbers.values() for k in n[section]))
        lines += [f"| {name.format(k)} | " + " | ".join(cell(numbers[lab][section].get(k)) for lab in labels) + " |"
                  for k in keys]
    lines.append("| steps | " + " | ".join(str(numbers[lab]["steps"]) for lab in labels) + " |")
    return "\n".join(lines) + "\n"


def compare(workdirs: Sequence[str], labels: Sequence[str], out_dir: str) -> dict:
    """Write compare.md, compare.json and plots/ for the runs into out_dir; returns the numbers by label."""
    if len(labels) != len(workdirs) or len(set(labels)) != len(labels):
        raise ValueError(f"labels={list(labels)!r}: need one distinct label per workdir ({len(workdirs)})")
    numbers = {label: run_numbers(w) for label, w in zip(labels, workdirs)}
    os.makedirs(out_dir, exist_ok=True)
    atomic_write(os.path.join(out_dir, "compare.md"), compare_table(numbers))
    atomic_write(os.path.join(out_dir, "compare.json"), json.dumps(numbers, indent=2))
    plots.plot_all(list(workdirs), os.path.join(out_dir, "plots"), labels=list(labels))
    return numbers


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m syngrpo_jax.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="finished run directories, separated by commas")
    parser.add_argument("--labels", required=True, help="one label per workdir, separated by commas")
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args(argv)
    workdirs = [w for w in args.workdir.split(",") if w]
    compare(workdirs, args.labels.split(","), args.out)
    print(open(os.path.join(args.out, "compare.md")).read())


if __name__ == "__main__":
    main()
