r"""Evaluate a policy on the config's eval splits: one HF model, one checkpoint step, or every step of a run.

    python -m syngrpo_jax.evaluate --config=configs/tiny_cpu.py --checkpoint=workdirs/demo            # every step
    python -m syngrpo_jax.evaluate --config=configs/tiny_cpu.py --checkpoint=workdirs/demo/checkpoints/40
    python -m syngrpo_jax.evaluate --config=configs/rec.py --checkpoint=/models/Qwen2.5-VL-3B-Instruct \
        --workdir=/results/qwen3b_base --config.eval.batch_size=32

--checkpoint is a run directory, a step directory of one, or an HF model directory (`checkpoint_sources`).
Outputs go under --workdir (default: `<run>/eval/` for the first two, `<hf_dir>/eval/` for the third):
  <root>/<step>/metrics.json      (HF dir: <root>/metrics.json)  per split, the metrics of `eval_scoring`
  <root>/<step>/predictions.jsonl one line per sample: split, sample_id, response, parsed answer, scores, gt
  <root>/table.md, table.json     one row per evaluated step found under <root>, columns `<split>/<metric>`
Engine splits are generated under `<root>/data/` (see eval_data). The rollout engine is `rollout.engine`, built
through `rollout.registry` as in training; decoding is greedy (`evaluator.Evaluator`). Each step's line of
scalar metrics is also printed as JSON.
"""
from __future__ import annotations

import json
import logging
import os

import jax
import ml_collections

from syngrpo_jax import eval_data, run_dir
from syngrpo_jax.checkpoint_sources import KINDS_HELP, OrbaxParams, resolve_checkpoint
from syngrpo_jax.evaluator import Evaluator, scalar_metrics, write_table
from syngrpo_jax.parallel.mesh import make_mesh
from syngrpo_jax.policy import dtype_of, load_policy
from syngrpo_jax.processing.tokenizer import Tokenizer
from syngrpo_jax.rollout import registry

log = logging.getLogger(__name__)


def evaluate_checkpoint(config, checkpoint: str, out_root: str | None = None, *, progress: bool = True) -> dict:
    """What the command line does: evaluate `checkpoint` (any of the three kinds) on config.eval.splits.

    Returns {step: metrics} (the HF kind: {None: metrics}). Writes under `out_root` (default: the source's
    eval root): `<step>/metrics.json` + predictions and the table (the HF kind: metrics and predictions only).
    """
    source = resolve_checkpoint(checkpoint)
    registry.check_engine(config.rollout.engine)
    root = os.path.abspath(out_root or source.eval_root)
    splits = eval_data.build_splits(config, os.path.join(root, run_dir.EVAL_DATA))
    mesh = make_mesh(**config.mesh) if jax.device_count() > 1 else None

    def engine_for(model, tokenizer):
        return registry.make_engine(config.rollout.engine, registry.EngineContext(
            model=model, tokenizer=tokenizer, model_dir=source.model_dir, config=config, workdir=root))

    if source.kind == "hf":
        model_cfg = ml_collections.ConfigDict(config.model.to_dict())
        model_cfg.path = source.model_dir
        policy = load_policy(model_cfg, root, seed=config.seed, mesh=mesh)
        evaluator = Evaluator(engine_for(policy.model, policy.tokenizer), policy.tokenizer, config, splits,
                              progress=progress)
        return {None: evaluator.evaluate(root, source=source.path)}
    orbax = OrbaxParams(source, param_dtype=dtype_of(config.model.dtype),
                        compute_dtype=dtype_of(config.model.get("compute_dtype")),
                        attention_impl=config.model.attention_impl, mesh=mesh)
    tokenizer = Tokenizer.from_dir(config.model.get("tokenizer_path") or source.model_dir)
    evaluator, results = None, {}
    for step in source.steps:
        log.info("evaluating step %d of %s", step, source.checkpoints_dir)
        params = orbax.restore(step)
        if evaluator is None:
            evaluator = Evaluator(engine_for(orbax.model(params), tokenizer), tokenizer, config, splits,
                                  progress=progress)
        results[step] = evaluator.evaluate(run_dir.eval_step_dir(root, step), params=params, step=step,
                                           source=os.path.join(source.checkpoints_dir, str(step)))
    orbax.close()
    write_table(root)
    return results


def _cli() -> None:
    # Flags are defined only when this module runs as a program, so importing it defines none.
    from absl import app, flags
    from ml_collections import config_flags

    from syngrpo_jax.log_setup import setup_logging

    config = config_flags.DEFINE_config_file("config", None, "Run config file (configs/*.py[:arg]).",
                                             lock_config=True)
    checkpoint = flags.DEFINE_string("checkpoint", None, f"What to evaluate: {KINDS_HELP}.", required=True)
    workdir = flags.DEFINE_string("workdir", None, "Output root (default: <run>/eval or <hf_dir>/eval).")

    def main(argv) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if config.value is None:
            raise app.UsageError("--config is required (configs/<file>.py[:arg])")
        setup_logging()
        try:
            resolve_checkpoint(checkpoint.value)
        except (ValueError, FileNotFoundError) as e:  # a bad --checkpoint: its message, no traceback
            raise SystemExit(f"evaluate: {e}") from None
        for step, metrics in evaluate_checkpoint(config.value, checkpoint.value, workdir.value).items():
            print(json.dumps({"step": step, **scalar_metrics(metrics)}))

    app.run(main)


if __name__ == "__main__":
    _cli()
