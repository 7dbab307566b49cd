"""The Evaluator: greedy answers of one rollout engine on fixed splits, scored per task, written per step.

    splits = eval_data.build_splits(config, run.eval_data)
    engine = registry.make_engine(config.rollout.engine, context)   # or the trainer's own engine
    evaluator = Evaluator(engine, tokenizer, config, splits)
    metrics = evaluator.evaluate(run.eval_step(step), step=step)     # pushes params first when given
    write_table(run.eval)
    writer.write(step, {f"eval/{k}": v for k, v in scalar_metrics(metrics).items()})

Decoding is greedy (eval.batch_size prompts per engine call, eval.max_tokens new tokens), prompted in the run's
response format (reward.response_format); scoring is `eval_scoring.score_split`. The engine (and so, for the JAX
sampler, its compiled prefill/decode) is reused by every call. Outputs are written by process 0 only; generation
runs on every process. Output files (names in `run_dir`): `<out_dir>/metrics.json` ({"step", "source",
"response_format", "splits": {name: metrics}}) and `predictions.jsonl` (one line per sample); `write_table`
gathers every `<eval_root>/<step>/metrics.json` into `table.md` and `table.json`.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Mapping, Sequence

import jax
from tqdm import tqdm

from syngrpo_jax import run_dir
from syngrpo_jax.atomic_write import atomic_write
from syngrpo_jax.data.sample import Sample
from syngrpo_jax.eval_scoring import score_split
from syngrpo_jax.rewards.response_format import response_tags
from syngrpo_jax.rollout.base import RolloutEngine, SamplingParams
from syngrpo_jax.rollout.requests import prepare_request

log = logging.getLogger(__name__)


class Evaluator:
    """Greedy evaluation of one engine on fixed splits: build once, call `evaluate` per checkpoint.

    engine: any `RolloutEngine` (from `rollout.registry.make_engine`, or the trainer's, holding the live weights).
    splits: {name: samples}, e.g. `eval_data.build_splits(config, data_dir)`; each split holds one task.
    Reads config.eval (batch_size, max_tokens), reward.response_format, reward.strict_qa, data.min/max_pixels.
    """

    def __init__(self, engine: RolloutEngine, tokenizer, config, splits: Mapping[str, Sequence[Sample]], *,
                 progress: bool = True):
        if not isinstance(engine, RolloutEngine):
            raise TypeError(f"Evaluator needs a RolloutEngine (rollout.registry.make_engine), got "
                            f"{type(engine).__name__}")
        self.engine = engine
        self.tokenizer = tokenizer
        self.fmt = config.reward.response_format
        response_tags(self.fmt)  # unknown format -> ValueError naming it
        self.strict_qa = bool(config.reward.strict_qa)
        self.min_pixels, self.max_pixels = config.data.min_pixels, config.data.max_pixels
        self.batch_size = config.eval.batch_size
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"eval.batch_size={self.batch_size!r}: must be an int >= 1")
        try:
            self.sampling = SamplingParams(n=1, temperature=0.0, max_tokens=config.eval.max_tokens,
                                           stop_token_ids=tuple(tokenizer.stop_ids))
        except ValueError as e:
            raise ValueError(f"eval.max_tokens={config.eval.max_tokens!r}: {e}") from None
        self.splits: dict[str, tuple[str, list[Sample]]] = {}
        for name, samples in splits.items():
            tasks = sorted({s.task for s in samples})
            if len(tasks) != 1:
                raise ValueError(f"eval split {name!r} must hold samples of one task, got tasks {tasks} "
                                 f"({len(samples)} samples)")
            self.splits[name] = (tasks[0], list(samples))
        self.progress = progress

    def _generate(self, name: str, samples: list[Sample]):
        """(prepared requests, responses) in sample order. Images are processed one batch at a time (never the
        whole split in memory); a short last batch is padded with copies of its last request so that every call
        has the same batch size and the sampler compiles nothing new for it."""
        prepared, responses = [], []
        with tqdm(total=len(samples), desc=f"eval {name}", unit="sample", disable=not self.progress) as bar:
            for start in range(0, len(samples), self.batch_size):
                batch = [prepare_request(s, self.tokenizer, self.fmt, min_pixels=self.min_pixels,
                                         max_pixels=self.max_pixels) for s in samples[start:start + self.batch_size]]
                requests = [p.request for p in batch]
                requests += [requests[-1]] * (self.batch_size - len(requests))
                out = self.engine.generate(requests, self.sampling)
                prepared += batch
                responses += [group[0] for group in out[:len(batch)]]
                bar.update(len(batch))
        return prepared, responses

    def evaluate(self, out_dir: str | None, *, params=None, step: int | None = None, source: str = "") -> dict:
        """Metrics of every split ({"step", "source", "response_format", "splits": {name: metrics}}), written with
        the predictions to `out_dir` (None: nothing written). params: new weights for the engine (an nnx.State or
        its pure dict, e.g. the trainer's live parameters); None keeps the ones it has."""
        if params is not None:
            self.engine.update_weights(params, step or 0)
        results: dict[str, dict] = {}
        records: list[dict] = []
        for name, (task, samples) in self.splits.items():
            prepared, responses = self._generate(name, samples)
            metrics, rows = score_split(task, samples, responses, model_hw=[p.model_hw for p in prepared],
                                        image_hw=[p.image_hw for p in prepared], response_format=self.fmt,
                                        strict_qa=self.strict_qa)
            results[name] = metrics
            records += [{"split": name, **row} for row in rows]
            log.info("eval %s (step %s): %s", name, step, json.dumps(
                {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()
                 if not isinstance(v, dict)}))
        out = {"step": step, "source": source, "response_format": self.fmt, "splits": results}
        if out_dir is not None and jax.process_index() == 0:
            atomic_write(os.path.join(out_dir, run_dir.EVAL_METRICS_FILE), json.dumps(out, indent=2) + "\n")
            atomic_write(os.path.join(out_dir, run_dir.EVAL_PREDICTIONS_FILE),
                         "".join(json.dumps(r) + "\n" for r in records))
        return out


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """{"<split>/<metric>": value} of the numeric top-level metrics of each split (the table's columns; what a
    trainer logs). Per-category breakdowns stay in metrics.json."""
    return {f"{split}/{k}": v for split, m in metrics["splits"].items() for k, v in m.items()
            if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}


def write_table(eval_root: str) -> list[dict]:
    """Rebuild `<eval_root>/table.md` and `table.json` from every `<eval_root>/<step>/metrics.json`; returns the
    rows ({"step": s, "<split>/<metric>": v, ...}, by step)."""
    rows = []
    for entry in os.listdir(eval_root) if os.path.isdir(eval_root) else ():
        path = os.path.join(eval_root, entry, run_dir.EVAL_METRICS_FILE)
        if entry.isdigit() and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                rows.append({"step": int(entry), **scalar_metrics(json.load(f))})
    rows.sort(key=lambda r: r["step"])
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if jax.process_index() == 0 and rows:
        atomic_write(os.path.join(eval_root, run_dir.EVAL_TABLE_JSON),
                     json.dumps({"columns": columns, "rows": rows}, indent=2))

        def cell(v):
            return "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))

        lines = ["| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
        lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
        atomic_write(os.path.join(eval_root, run_dir.EVAL_TABLE_MD), "\n".join(lines) + "\n")
    return rows
