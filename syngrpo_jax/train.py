"""Syn-GRPO training (and every baseline method): `python -m syngrpo_jax.train`.

    python -m syngrpo_jax.train --config=configs/tiny_cpu.py --workdir=workdirs/demo
    python -m syngrpo_jax.train --config=configs/rec.py:model=qwen2_5_vl_3b,method=grpo --workdir=runs/rec3b_grpo \
        --config.model.path=/models/Qwen2.5-VL-3B-Instruct --config.data.train_path=/data/refcoco_train.jsonl

Each step (docs/DESIGN.md, "The trainer"; the code is syngrpo_jax/trainer/):
  1. draw B samples from the data pool (their current images; synthesized ones once the server delivered)
  2. the rollout engine samples G responses per prompt with the current weights
  3. rewards: accuracy (or MM-UPT's majority vote), format, diversity (R_div from the <score> tag, smoothed V);
     GRPO advantages per group
  4. the chosen descriptions (argmax R_div, a random one, or a fixed file) go to the data server with each
     sample's original image and boxes; finished images replace pool images (asynchronously, or waited for)
  5. the jitted, sharded GRPO update; the new weights go to the rollout engine
and the step's metrics are written (JSONL, TensorBoard); checkpoints are orbax, saved asynchronously every
train.checkpoint_every steps, and a restarted run resumes exactly from the latest one. Every random choice is a
function of (seed, step), so resuming needs no hidden RNG state. The run directory's layout is `run_dir`.
"""
from __future__ import annotations

import logging

import jax
from absl import app, flags
from ml_collections import config_flags

from syngrpo_jax.checkpoints import CheckpointError
from syngrpo_jax.log_setup import setup_logging
from syngrpo_jax.parallel import distributed
from syngrpo_jax.synthesis.session import SynthesisServerLost
from syngrpo_jax.trainer.summary import summary_table
from syngrpo_jax.trainer.trainer import Trainer


def train(config, workdir: str) -> dict:
    """Run (or resume) training in `workdir`; returns a summary (first/last step metrics, eval results, plots)."""
    return Trainer(config, workdir).run()


_CONFIG = config_flags.DEFINE_config_file("config", None, "Run config file (configs/*.py[:arg]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, synthesized images).")


RELAUNCH = "relaunch the same command on every process to resume from the latest checkpoint"


def main(argv):
    del argv
    setup_logging()
    m = _CONFIG.value.multiprocess
    distributed.initialize(heartbeat_timeout_s=m.heartbeat_timeout_s, shutdown_timeout_s=m.shutdown_timeout_s)
    if jax.process_count() > 1:  # one lost process ends them all, most often without a word from Python
        distributed.report_unclean_exit(
            f"process {jax.process_index()} of {jax.process_count()} was ended (killed, or stopped by JAX's "
            f"coordination service because another process was lost: see the error above); {RELAUNCH}.")
    try:
        summary = train(_CONFIG.value, _WORKDIR.value)
    except (CheckpointError, SynthesisServerLost) as e:  # the message says what and where; a traceback would not
        raise SystemExit(f"error: {e}") from None
    except jax.errors.JaxRuntimeError:
        if jax.process_count() > 1:  # most often: another process died (docs/DESIGN.md, "Multi-process training")
            logging.getLogger(__name__).error(
                "process %d: a collective with the other processes failed. If one of them was lost, JAX's "
                "coordination service names it within multiprocess.heartbeat_timeout_s=%d s and ends this process; "
                "%s.", jax.process_index(), m.heartbeat_timeout_s, RELAUNCH)
        raise
    if jax.process_index() != 0:  # process 0 reports for the run
        return
    print(f"\n{summary['method']}: {summary['steps']} steps in {summary['workdir']}\n")
    print(summary_table(summary))
    if summary.get("plots"):
        print("\nplots:\n  " + "\n  ".join(summary["plots"]))


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
