"""What a run reports at its end besides its metrics: the before/after summary table, and how synthesis went."""
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
    if rows and "synthesis" not in summary:
        summary["synthesis"] = synthesis_summary(rows)
    before = os.path.join(run.eval_step(0), EVAL_METRICS_FILE)
    if "eval_before" not in summary and os.path.isfile(before):
        with open(before) as f:
            summary["eval_before"] = scalar_metrics(json.load(f))


_SYNTHESIS_COUNTS = (  # (metric, what the summary calls it); cumulative since the trainer process started
    ("synthesis/submitted", "jobs submitted"), ("synthesis/applied", "images applied to the pool"),
    ("synthesis/dropped", "results dropped (the pool refused them)"), ("synthesis/stale", "results stale"),
    ("synthesis/failed", "jobs failed"), ("synthesis/connection_lost", "jobs lost with the server (part of failed)"),
    ("synthesis/timed_out", "jobs timed out"), ("synthesis/restarts", "data-server restarts"))


def synthesis_summary(rows: list[dict]) -> dict | None:
    """How synthesis went, from the training rows of metrics.jsonl: the steps that ran without it (its jobs could
    not go out: synthesis/unavailable) out of all steps, and the last row's job counts. None without synthesis."""
    rows = [r for r in rows if "synthesis/submitted" in r]
    if not rows:
        return None
    out = {"steps": len(rows), "steps_without": sum(r.get("synthesis/unavailable", 0.0) > 0 for r in rows)}
    return out | {key: rows[-1][key] for key, _ in _SYNTHESIS_COUNTS if key in rows[-1]}


def synthesis_table(synthesis: dict, start_step: int = 0) -> str:
    """A markdown table of `synthesis_summary`; the job counts are those of this process (from start_step)."""
    since = f" since step {start_step}" if start_step else ""
    lines = ["| synthesis | count |", "|---|---|",
             f"| steps without synthesis (data server unavailable) | {synthesis['steps_without']} of "
             f"{synthesis['steps']} |"]
    lines += [f"| {name}{since} | {synthesis[key]:g} |" for key, name in _SYNTHESIS_COUNTS if key in synthesis]
    return "\n".join(lines)


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
    if summary.get("synthesis"):
        lines += ["", synthesis_table(summary["synthesis"], summary.get("start_step", 0))]
    return "\n".join(lines)
