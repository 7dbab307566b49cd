"""The RL trainer: built once from the config, then a loop of steps, each a short sequence of named phases.

    trainer = Trainer(config, workdir)     # checks, run directory, data, policy, learner, host state, resume
    summary = trainer.run()                # steps until train.steps, with checkpoints, evaluation, plots

One step (`Trainer.step`): receive synthesis results -> rollout -> score -> synthesize -> update -> push
weights, each timed by `Chrono` as time/<phase>. Around the steps (`_after_step`): metrics, the gallery,
checkpoints (orbax, asynchronous, every train.checkpoint_every steps and at the end), retention of synthesized
images, evaluation. An SFT-only method never enters the RL loop. A restarted run resumes exactly from its latest
checkpoint; SIGINT/SIGTERM finish the current step, save a checkpoint and stop.

Several processes (docs/DESIGN.md, "Multi-process training") run this same program on one global mesh: every
process computes every phase on the same data; process 0 alone talks to the data server (HostState syncs what it
applied) and writes config, metrics, gallery, evaluation files and plots; checkpoints are written by all.
"""
from __future__ import annotations

import functools
import contextlib
import logging
import signal

import jax
from tqdm import tqdm

from syngrpo_jax import eval_data, plots, sft
from syngrpo_jax.atomic_write import atomic_write
from syngrpo_jax.checkpoints import Checkpointer
from syngrpo_jax.data.sources import load_samples
from syngrpo_jax.evaluator import Evaluator, scalar_metrics, write_table
from syngrpo_jax.metrics import MetricsWriter
from syngrpo_jax.parallel import multihost, shared_dir
from syngrpo_jax.parallel.mesh import make_mesh
from syngrpo_jax.policy import load_policy, resolve_model_dir, save_architecture, task_corpus
from syngrpo_jax.rollout import registry
from syngrpo_jax.rollout.base import EngineError, SamplingParams
from syngrpo_jax.run_dir import RunDir
from syngrpo_jax.synthesis.session import SynthesisServerLost
from syngrpo_jax.trainer import phases, summary as summary_lib
from syngrpo_jax.trainer.checks import total_steps, validate
from syngrpo_jax.trainer.chrono import Chrono
from syngrpo_jax.trainer.host_state import HostState
from syngrpo_jax.trainer.learner import Learner
from syngrpo_jax.trainer.overlap import RolloutAhead

log = logging.getLogger("syngrpo_jax.train")

# time/<name> of each step; every one is reported (0.0 when its phase did not run).
PHASE_TIMES = ("rollout", "rewards", "synthesis", "waiting", "update", "weight_sync")


class StopFlag:
    """SIGINT/SIGTERM end the run after the current step, with a checkpoint (nothing trained is lost)."""

    def __init__(self):
        self.stop = False
        self._old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a test harness): no handler
                pass

    def _handle(self, signum, frame):
        log.warning("signal %d: finishing this step, saving a checkpoint, then stopping", signum)
        self.stop = True

    def restore(self):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    def __init__(self, config, workdir: str):
        self.method = validate(config)  # before anything is written or compiled
        self.config, self.run_dir = config, RunDir(workdir)
        self.primary = multihost.is_primary()  # process 0 (the only one in a single-process run)
        shared_dir.check_shared(self.run_dir.root, timeout_s=config.multiprocess.shared_fs_timeout_s)
        if self.primary:
            atomic_write(self.run_dir.config, config.to_json_best_effort(indent=2))
        self.mesh = make_mesh(**config.mesh) if jax.device_count() > 1 else None
        with multihost.primary_first("data"):  # process 0 generates engine data (and a tiny model), others read
            samples = load_samples(config.data, self.run_dir.data)
            corpus = task_corpus(samples, config.reward.response_format)
            resolve_model_dir(config.model, self.run_dir.root, config.seed, corpus)
        self.policy = load_policy(config.model, self.run_dir.root, seed=config.seed, mesh=self.mesh, corpus=corpus)
        if self.primary:
            save_architecture(self.policy, self.run_dir.policy)
        self.tokenizer = self.policy.tokenizer
        self.steps = total_steps(config, len(samples))
        self.learner = Learner(config, self.policy.model, steps=self.steps, mesh=self.mesh,
                               use_ref=self.method.rl and config.loss.kl_coef > 0)
        self.host = HostState.build(config, samples, self.run_dir)
        self.checkpointer = Checkpointer(self.run_dir.checkpoints, max_to_keep=config.train.keep_checkpoints)
        self.ahead = RolloutAhead() if config.rollout.overlap else None
        self._resumed_ahead = None  # {"step", "sample_ids"}: the batch a checkpoint says was drawn ahead
        self._step_start = (-1, None)  # (step, host state when it began): saved if the engine fails in it
        self._updated = -1  # the last step whose update was applied
        self.start_step = self._restore_or_warm_start(samples)
        self.engine = registry.make_engine(config.rollout.engine, registry.EngineContext(
            model=self.policy.model, tokenizer=self.tokenizer, model_dir=self.policy.model_dir, config=config,
            workdir=self.run_dir.root))
        phases.push_weights(self.engine, self.learner.params, self.start_step)
        self.evaluator = None
        if config.eval.splits:
            with multihost.primary_first("eval-data"):
                splits = eval_data.build_splits(config, self.run_dir.eval_data)
            self.evaluator = Evaluator(self.engine, self.tokenizer, config, splits, progress=self.primary)
        r = config.rollout
        self.sampling = SamplingParams(n=r.group_size, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                                       max_tokens=r.max_tokens, stop_token_ids=tuple(self.tokenizer.stop_ids))
        self.chrono = Chrono(PHASE_TIMES)

    def _restore_or_warm_start(self, samples) -> int:
        """The step to start from: the latest checkpoint's, or 0 after the warm start (an SFT-only method: the
        number of steps, all of them supervised)."""
        if self.checkpointer.latest_step() is not None:
            host_state = self.learner.restore(self.checkpointer)
            self.host.load_state_dict(host_state)
            self._resumed_ahead = host_state.get("ahead")
            log.info("resumed from step %d in %s", host_state["step"], self.checkpointer.directory)
            return int(host_state["step"])
        rl = self.method.rl
        warm = self.config.sft.steps if rl else self.steps
        if warm:
            with MetricsWriter(self.run_dir.sft) if self.primary else contextlib.nullcontext() as writer:
                pool = sft.warm_start_pool(self.config, samples, self.run_dir.data) if rl else samples
                self.learner.warm_start(pool, self.tokenizer, steps=warm, rl=rl, writer=writer)
        self.learner.freeze_reference()
        return 0 if rl else self.steps

    # ------------------------------------------------------------------ one step

    def step(self, step: int) -> dict[str, float]:
        """One RL step (0-based); returns its metrics. The phases are in `phases`."""
        c, host, chrono = self.config, self.host, self.chrono
        chrono.start_step()
        self._step_start = (step, self._host_state())
        with chrono("synthesis"):
            host.receive(step)
        with chrono("rollout"):
            result = (self.ahead.take(step) if self.ahead is not None else None) or self._rollout(
                step, self._batch(step))
        if result.metrics["rollout/staleness"] > c.rollout.max_staleness:
            raise RuntimeError(f"step {step} was sampled with weights {result.metrics['rollout/staleness']:.0f} "
                               f"updates old (rollout.max_staleness={c.rollout.max_staleness})")
        with chrono("rewards"):
            scored = phases.score(result, c, host, step)
        phases.synthesize(host, result, scored, c, step, chrono)
        with chrono("synthesis"):
            host.sync()  # what process 0 applied in this step (sync mode's wait) reaches every process
        with chrono("update"):
            if self.ahead is not None and step + 1 < self.steps:  # step + 1's batch, sampled meanwhile
                self.ahead.start(step + 1, self._batch(step + 1), functools.partial(self._rollout, step + 1))
            update = self.learner.update(result, scored.advantages, step, pad_id=self.tokenizer.pad_id)
            self._updated = step
        with chrono("weight_sync"):
            if self.ahead is not None:
                self.ahead.wait()
            phases.push_weights(self.engine, self.learner.params, step + 1)
        return phases.step_metrics(result, scored, update, host, lr=float(self.learner.lr_at(step)),
                                   use_diversity=c.reward.diversity, times=chrono.metrics())

    def _batch(self, step: int):
        """The step's samples: the pool's next batch, or (resuming with overlap) the one drawn ahead before."""
        resumed, self._resumed_ahead = self._resumed_ahead, None
        if resumed is not None and resumed["step"] == step:
            return [self.host.pool.current(sample_id) for sample_id in resumed["sample_ids"]]
        self.host.refresh(step)  # adaptive difficulty: this step's fresh samples join the pool before the draw
        return self.host.pool.next_batch(self.config.train.batch_size)

    def _rollout(self, step: int, samples) -> phases.RolloutResult:
        return phases.rollout(self.engine, samples, self.sampling, tokenizer=self.tokenizer, config=self.config,
                              step=step)

    # ------------------------------------------------------------------ bookkeeping

    def _host_state(self) -> dict:
        """What a checkpoint holds besides the arrays: the host state, and the batch drawn ahead (overlap)."""
        ahead = self.ahead.pending_ids() if self.ahead is not None else None
        return {**self.host.state_dict(), **({"ahead": ahead} if ahead else {})}

    def checkpoint(self, step: int, host_state: dict | None = None) -> None:
        """Save (asynchronously) the arrays and the host state (default: the current one) at `step`, then apply
        image retention."""
        self.learner.save(self.checkpointer, step, {
            "step": step, "rng": {"seed": self.config.seed, "step": step}, "method": self.config.method,
            **(host_state or self._host_state())})
        pool = self.host.pool
        if pool.keep_versions and self.primary:  # files only: the pool's state is the same either way
            deleted = pool.prune_versions(keep_ids=pool.tracked_ids(self.config.train.track_samples),
                                          checkpoint_steps=[*self.checkpointer.all_steps(), step])
            if deleted:
                log.info("retention: deleted %d synthesized images (data.keep_versions=%d)", deleted,
                         pool.keep_versions)

    def evaluate(self, step: int, writer: MetricsWriter | None = None) -> dict[str, float]:
        """Evaluate the engine's current weights into eval/<step>/, rebuild the table (files: process 0); the
        scalars also go to metrics.jsonl as eval/<split>/<metric> when a writer is given."""
        result = self.evaluator.evaluate(self.run_dir.eval_step(step), step=step)
        write_table(self.run_dir.eval)
        scalars = scalar_metrics(result)
        if writer is not None:
            writer.write(step, {f"eval/{k}": v for k, v in scalars.items() if v is not None})
        return scalars

    def _after_step(self, done: int, metrics: dict, writer: MetricsWriter | None, summary: dict,
                    stop: StopFlag) -> None:
        """Metrics and gallery (process 0), a checkpoint, evaluation. writer: None on other processes."""
        t = self.config.train
        summary.setdefault("first", metrics)
        summary["last"] = metrics
        if multihost.process_count() > 1:
            log.info("step %d: pool/state_hash %s (process %d)", done, self.host.state_hash(),
                     multihost.process_index())
            stop.stop = multihost.any_process(stop.stop)  # a signal that reached one process stops them all
        if writer is not None:
            writer.write(done, metrics)
            plots.write_gallery(self.run_dir, self.host.pool, t.track_samples)
        if self.primary and t.log_every and done % t.log_every == 0:
            log.info("step %d/%d: reward %.3f (accuracy %.3f, format %.3f), loss %.4f, %.1f s", done, self.steps,
                     metrics["reward/total"], metrics["reward/accuracy"], metrics["reward/format"], metrics["loss"],
                     metrics["time/step"])
        if done % t.checkpoint_every == 0 or done == self.steps or stop.stop:
            self.checkpoint(done)
        if stop.stop:
            return
        if self.evaluator is not None and (done == self.steps or (t.eval_every and done % t.eval_every == 0)):
            summary["eval_after"] = self.evaluate(done, writer)

    def _save_after_engine_failure(self, step: int, error: EngineError) -> None:
        """The engine failed for good during `step`: keep what was trained. After the step's update (only the
        weight push failed) the state is step + 1's; before it, the parameters are step's and the host state is
        the one the step began with (synthesis results it had received are dropped)."""
        if self._updated == step:
            done, host_state = step + 1, None
        else:
            done, host_state = step, self._step_start[1]
        if done not in self.checkpointer.all_steps():
            self.checkpoint(done, host_state)
        log.error("stopping: the rollout engine failed during step %d; checkpoint %d holds the training so far "
                  "(rerun the same command to resume). %s", step + 1, done, str(error).splitlines()[0])

    # ------------------------------------------------------------------ the run

    def run(self) -> dict:
        """Train from start_step to the end (or a stop signal); returns the summary (first/last step metrics,
        evaluation before/after, plots). Closes the trainer."""
        summary: dict = {"method": self.config.method, "workdir": self.run_dir.root, "steps": self.steps,
                         "start_step": self.start_step}
        if not self.method.rl:
            return self._finish_supervised(summary)
        if self.start_step < self.steps:
            self.host.start_synthesis()
        writer = MetricsWriter(self.run_dir.root, resume_step=self.start_step) if self.primary else None
        if self.evaluator is not None and self.start_step == 0:
            summary["eval_before"] = self.evaluate(0, writer)
        stop = StopFlag()
        try:
            for step in tqdm(range(self.start_step, self.steps), desc=self.config.method, unit="step",
                             initial=self.start_step, total=self.steps, disable=not self.primary):
                try:
                    metrics = self.step(step)
                except SynthesisServerLost:  # raised at the step's start, before anything changed: keep it all
                    self.checkpointer.wait()  # a save of this very step may still be in flight
                    if step not in self.checkpointer.all_steps():
                        self.checkpoint(step)
                    raise
                except EngineError as e:
                    self._save_after_engine_failure(step, e)
                    raise
                self._after_step(step + 1, metrics, writer, summary, stop)
                if stop.stop:
                    break
        finally:
            stop.restore()
            if writer is not None:
                writer.close()
            self.close()
        if self.primary:
            summary_lib.complete_from_disk(summary, self.run_dir)
            summary["plots"] = plots.plot_all([self.run_dir.root])
        return summary

    def _finish_supervised(self, summary: dict) -> dict:
        """An SFT-only method: its steps ran in the warm start; checkpoint, evaluate, plot."""
        try:
            self.checkpoint(self.steps)
            if self.evaluator is not None:
                summary["eval_after"] = self.evaluate(self.steps)
        finally:
            self.close()
        if self.primary:
            summary["plots"] = plots.plot_all([self.run_dir.root])
        return summary

    def close(self) -> None:
        """Stop the synthesis session and the rollout engine's worker, if it has one, and wait for pending
        checkpoint saves (idempotent)."""
        self.host.close()
        if getattr(self, "ahead", None) is not None:
            self.ahead.close()
        close_engine = getattr(getattr(self, "engine", None), "close", None)
        if close_engine is not None:
            close_engine()
        if self.checkpointer is not None:
            self.checkpointer.close()
            self.checkpointer = None
