"""What a run reports at its end besides its metrics: the before/after summary table."""
from __future__ import annotations

import json
import os

from syngrpo_jax.evaluator import scalar_metrics
from syngrpo_jax.metrics import read_metrics
from syngrpo_jax.run_dir import EVAL_METRICS_FILE, RunDir

_TABLE_TRAIN_KEYS = ("reward/accuracy", "reward/format", "reward/diversity", "reward/total", "entropy")
_TABLE_SKIP = ("num_samples", "num_gt", "num_predictions", "num_matched", "mean_response_tokens")


def complete_from_disk(summary: dict, run: RunDir) -> None:
    """A resumed (or already finished) run did not see its first steps: take them from metrics.jsonl, and the
    evaluation before training from eval/0."""
    rows = [r for r in read_metrics(run.root) if "reward/total" in r] if os.path.isfile(run.metrics) else []
    if rows and "first" not in summary:
        summary["first"] = rows[0]
    if rows and "last" not in summary:
        summary["last"] = rows[-1]
    before = os.path.join(run.eval_step(0), EVAL_METRICS_FILE)
    if "eval_before" not in summary and os.path.isfile(before):
        with open(before) as f:
            summary["eval_before"] = scalar_metrics(json.load(f))


def summary_table(summary: dict) -> str:
    """A markdown before/after table: training rewards (first vs last step) and evaluation (start vs end)."""
    rows = []
    first, last = summary.get("first", {}), summary.get("last", {})
    for key in _TABLE_TRAIN_KEYS:
        if key in last:
            rows.append((f"train {key} (first step -> last step)", first.get(key), last.get(key)))
    before, after = summary.get("eval_before", {}), summary.get("eval_after", {})
    for key in sorted(after):
        if not key.endswith(_TABLE_SKIP):
            rows.append((f"eval {key}", before.get(key), after.get(key)))
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["| metric | before | after |", "|---|---|---|"]
    lines += [f"| {name} | {fmt(a)} | {fmt(b)} |" for name, a, b in rows]
    return "\n".join(lines)
