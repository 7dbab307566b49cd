"""Syn-GRPO training (and every baseline method), one step at a time as DESIGN.md lays it out.

    python -m syngrpo_jax.train --config=configs/tiny_cpu.py --workdir=workdirs/demo
    python -m syngrpo_jax.train --config=configs/rec.py:qwen2_5_vl_3b,method=grpo --workdir=... \
        --config.model.path=/models/Qwen2.5-VL-3B-Instruct --config.data.train_path=/data/refcoco_train.jsonl

Each step:
  1. draw B samples from the data pool (their current images; synthesized ones once the server delivered)
  2. the rollout engine samples G responses per prompt with the current weights
  3. rewards: accuracy (or MM-UPT's majority vote), format, diversity (R_div from the <score> tag, smoothed V)
  4. GRPO advantages per group
  5. the chosen descriptions (argmax R_div, a random one, or a fixed file) go to the data server with each
     sample's original image and boxes; finished images replace pool images (asynchronously, or waited for)
  6. the jitted, sharded GRPO update; the new weights go to the rollout engine
and the step's metrics are written (JSONL, TensorBoard); checkpoints are orbax, saved asynchronously every
train.checkpoint_every steps, and a restarted run resumes exactly from the latest one. Every random choice is a
function of (seed, step), so resuming needs no hidden RNG state.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx
from ml_collections import config_flags
from tqdm import tqdm

from syngrpo_jax import eval_data, methods, plots, policy as policy_lib, sft
from syngrpo_jax.atomic_write import atomic_write_json
from syngrpo_jax.checkpoints import Checkpointer
from syngrpo_jax.evaluator import Evaluator, scalar_metrics, write_table
from syngrpo_jax.data.pool import DataPool
from syngrpo_jax.data.sources import load_samples
from syngrpo_jax.grpo import train_step as ts
from syngrpo_jax.grpo.advantages import group_advantages
from syngrpo_jax.grpo.batch import build_train_batch
from syngrpo_jax.grpo.optimizer import learning_rate_schedule, make_optimizer
from syngrpo_jax.log_setup import setup_logging
from syngrpo_jax.metrics import MetricsWriter, read_metrics
from syngrpo_jax.parallel import distributed, sharding
from syngrpo_jax.parallel.mesh import make_mesh
from syngrpo_jax.rewards.diversity import DiversitySmoother
from syngrpo_jax.rewards.group_rewards import choose_descriptions, score_groups
from syngrpo_jax.rollout.base import SamplingParams
from syngrpo_jax.rollout import registry
from syngrpo_jax.rollout.requests import prepare_request
from syngrpo_jax.synthesis.session import MODES as SYNTHESIS_MODES, SynthesisSession

log = logging.getLogger("syngrpo_jax.train")

OLD_LOGP_SOURCES = ("rollout", "recompute")
DESCRIPTION_SOURCES = ("policy", "random", "file")


# ---- configuration ---------------------------------------------------------------------------------------------

def loss_config(config) -> ts.LossConfig:
    return ts.LossConfig.from_config(config)


def total_steps(config, num_samples: int) -> int:
    if config.train.steps:
        return int(config.train.steps)
    return max(1, int(round(config.train.epochs * num_samples / config.train.batch_size)))


def validate(config) -> methods.Method:
    """Every check that does not need the model or data, so a bad config fails before anything compiles."""
    method = methods.check(config)
    checks = [
        ("rollout.group_size", config.rollout.group_size, not method.rl or config.rollout.group_size >= 2,
         "must be >= 2: GRPO's advantages compare responses within a group"),
        ("train.batch_size", config.train.batch_size, config.train.batch_size >= 1, "must be >= 1"),
        ("train.micro_batches", config.train.micro_batches,
         config.train.micro_batches >= 1 and config.train.batch_size % config.train.micro_batches == 0,
         f"must divide train.batch_size={config.train.batch_size}"),
        ("train.old_logp", config.train.old_logp, config.train.old_logp in OLD_LOGP_SOURCES,
         f"choose one of {OLD_LOGP_SOURCES}"),
        ("rollout.max_tokens", config.rollout.max_tokens, config.rollout.max_tokens >= 1, "must be >= 1"),
        ("synthesis.mode", config.synthesis.mode, config.synthesis.mode in SYNTHESIS_MODES,
         f"choose one of {SYNTHESIS_MODES}"),
        ("synthesis.descriptions", config.synthesis.descriptions,
         config.synthesis.descriptions in DESCRIPTION_SOURCES, f"choose one of {DESCRIPTION_SOURCES}"),
        ("diversity.gamma", config.diversity.gamma, 0 <= config.diversity.gamma < 1, "must be in [0, 1)"),
        ("data.source", config.data.source, config.data.source in ("engine", "files"), "choose engine or files"),
    ]
    for field, value, ok, why in checks:
        if not ok:
            raise ValueError(f"{field}={value!r}: {why}")
    if config.synthesis.enabled and config.synthesis.descriptions == "file" and not os.path.isfile(
            config.synthesis.descriptions_file):
        raise FileNotFoundError(f"synthesis.descriptions_file={config.synthesis.descriptions_file!r} does not exist")
    if config.data.source == "files" and not os.path.exists(os.path.expanduser(config.data.train_path)):
        raise FileNotFoundError(f"data.train_path={config.data.train_path!r} does not exist")
    if not config.model.path and config.model.get("tiny") is None:
        raise ValueError("model.path is empty and model.tiny is not set")
    if config.model.path and not os.path.isfile(os.path.join(os.path.expanduser(config.model.path), "config.json")):
        raise FileNotFoundError(f"model.path={config.model.path!r}: no config.json there (a local HF checkpoint "
                                f"directory is needed; nothing is downloaded)")
    registry.check_engine(config.rollout.engine)
    loss_config(config).validate()
    for name, split in config.eval.splits.items():
        eval_data.split_fields(name, split)
    make_optimizer(learning_rate=config.optim.learning_rate, total_steps=max(1, config.train.steps or 1),
                   warmup_steps=min(config.optim.warmup_steps, max(1, config.train.steps or 1)),
                   schedule=config.optim.schedule, max_grad_norm=config.optim.max_grad_norm,
                   frozen=tuple(config.optim.frozen))
    return method


def _step_seed(seed: int, step: int, salt: int) -> int:
    return int(np.random.SeedSequence([seed, step, salt]).generate_state(1)[0])


def _load_descriptions(path: str):
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, (list, dict)) or not data:
        raise ValueError(f"synthesis.descriptions_file={path!r}: expected a non-empty JSON list or object")
    return data


# ---- the run ---------------------------------------------------------------------------------------------------

class _StopFlag:
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


def train(config, workdir: str) -> dict:
    """Run (or resume) training in `workdir`; returns a summary (first/last step metrics, eval results)."""
    method = validate(config)
    if jax.process_count() > 1:
        raise NotImplementedError(
            f"{jax.process_count()} JAX processes: multi-process training is not supported yet (each process would "
            "apply synthesis results to its own data pool, and the pools must stay identical). Run one process per "
            "host with all its local devices in the mesh.")
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))

    mesh = make_mesh(**config.mesh) if jax.device_count() > 1 else None
    fmt = config.reward.response_format
    samples = load_samples(config.data, os.path.join(workdir, "data"))
    pol = policy_lib.load_policy(config.model, workdir, seed=config.seed, mesh=mesh,
                                 corpus=policy_lib.task_corpus(samples, fmt))
    policy_lib.save_architecture(pol, os.path.join(workdir, "policy"))
    tokenizer, model_config = pol.tokenizer, pol.model.config
    pool = DataPool(samples, workdir, seed=config.seed, sampling=config.data.sampling)
    steps = total_steps(config, len(samples))

    graphdef, state = nnx.split(pol.model)
    params = nnx.to_pure_dict(state)
    del state
    tx = make_optimizer(learning_rate=config.optim.learning_rate, total_steps=steps,
                        warmup_steps=config.optim.warmup_steps, schedule=config.optim.schedule, b1=config.optim.b1,
                        b2=config.optim.b2, eps=config.optim.eps, weight_decay=config.optim.weight_decay,
                        max_grad_norm=config.optim.max_grad_norm, frozen=tuple(config.optim.frozen))
    lr_at = learning_rate_schedule(config.optim.learning_rate, total_steps=steps,
                                   warmup_steps=config.optim.warmup_steps, schedule=config.optim.schedule)
    param_sh = opt_sh = None
    if mesh is not None:
        param_sh = nnx.to_pure_dict(sharding.state_shardings(nnx.state(pol.model), mesh))
        opt_sh = ts.optimizer_shardings(tx, params, param_sh, mesh)
    opt_state = jax.jit(tx.init, out_shardings=opt_sh)(params)

    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=config.train.keep_checkpoints)
    smoother = DiversitySmoother(config.diversity.gamma)
    start_step = 0
    use_ref = method.rl and config.loss.kl_coef > 0
    if ckpt.latest_step() is not None:
        params, opt_state, ref, host = ckpt.restore(params_like=params, opt_state_like=opt_state,
                                                    ref_params_like=params if use_ref else None)
        start_step = int(host["step"])
        smoother.load_state_dict(host["smoother"])
        pool.load_state_dict(host["pool"])
        log.info("resumed from step %d in %s", start_step, ckpt.directory)
    else:
        ref = None
        warm = config.sft.steps if method.rl else steps
        if warm:
            with MetricsWriter(os.path.join(workdir, "sft")) as sft_writer:
                params, _ = sft.warm_start(
                    config, model_config, graphdef, params, samples, tokenizer, steps=warm,
                    batch_size=config.sft.batch_size if method.rl else config.train.batch_size,
                    learning_rate=config.sft.learning_rate if method.rl else config.optim.learning_rate,
                    warmup_steps=config.sft.warmup_steps, seed=config.seed, writer=sft_writer)
        if not method.rl:
            start_step = steps
    if use_ref and ref is None:
        ref = jax.tree.map(jnp.copy, params)  # the frozen reference: the policy RL starts from

    def checkpoint(step: int):
        ckpt.save(step, params=params, opt_state=opt_state, ref_params=ref,
                  state={"step": step, "rng": {"seed": config.seed, "step": step}, "smoother": smoother.state_dict(),
                         "pool": pool.state_dict(), "method": config.method})

    summary: dict = {"method": config.method, "workdir": workdir, "steps": steps, "start_step": start_step}
    sampler = registry.make_engine(config.rollout.engine, registry.EngineContext(
        model=pol.model, tokenizer=tokenizer, model_dir=pol.model_dir, config=config, workdir=workdir))
    sampler.update_weights(params, start_step)
    evaluator = None
    if config.eval.splits:
        evaluator = Evaluator(sampler, tokenizer, config,
                              eval_data.build_splits(config, os.path.join(workdir, "eval", "data")))

    def evaluate(step: int) -> dict:
        result = evaluator.evaluate(os.path.join(workdir, "eval", str(step)), step=step)
        write_table(os.path.join(workdir, "eval"))
        return scalar_metrics(result)

    if not method.rl:
        checkpoint(steps)
        ckpt.close()
        if evaluator is not None:
            summary["eval_after"] = evaluate(steps)
        summary["plots"] = plots.plot_all([workdir])
        return summary
    step_fn = ts.make_train_step(graphdef, tx, loss_config(config), mesh=mesh, param_shardings=param_sh,
                                 opt_shardings=opt_sh)
    logprob_fn = ts.make_logprob_fn(graphdef, loss_config(config)) if config.train.old_logp == "recompute" else None
    session = SynthesisSession(config.synthesis, pool) if config.synthesis.enabled else None
    fixed = _load_descriptions(config.synthesis.descriptions_file) if (
        session and config.synthesis.descriptions == "file") else None
    sampling = SamplingParams(n=config.rollout.group_size, temperature=config.rollout.temperature,
                              top_p=config.rollout.top_p, top_k=config.rollout.top_k,
                              max_tokens=config.rollout.max_tokens, stop_token_ids=tuple(tokenizer.stop_ids))
    writer = MetricsWriter(workdir, resume_step=start_step)
    if evaluator is not None and start_step == 0:
        summary["eval_before"] = evaluate(0)
        writer.write(0, {f"eval/{k}": v for k, v in summary["eval_before"].items() if v is not None})
    stop = _StopFlag()
    group = config.rollout.group_size
    step = start_step
    try:
        for step in tqdm(range(start_step, steps), desc=f"{config.method}", unit="step", initial=start_step,
                         total=steps):
            t0 = time.perf_counter()
            if session:
                session.poll(step)
            t_poll = time.perf_counter() - t0
            batch_samples = pool.next_batch(config.train.batch_size)
            prepared = [prepare_request(s, tokenizer, fmt, min_pixels=config.data.min_pixels,
                                        max_pixels=config.data.max_pixels) for s in batch_samples]
            out = sampler.generate([p.request for p in prepared],
                                   SamplingParams(**{**sampling.__dict__, "seed": _step_seed(config.seed, step, 1)}))
            t1 = time.perf_counter()

            rewards = score_groups(prepared, [[r.text for r in g] for g in out], response_format=fmt,
                                   accuracy_mode=config.reward.accuracy, use_diversity=config.reward.diversity,
                                   smoother=smoother, strict_qa=config.reward.strict_qa)
            advantages = np.asarray(group_advantages(jnp.asarray(rewards.total.reshape(-1), jnp.float32), group))
            pool.update_pass_rates({p.sample.sample_id: float(a.mean()) for p, a in zip(prepared, rewards.accuracy)},
                                   step)
            t2 = time.perf_counter()

            waited = 0.0
            if session:
                rng = np.random.default_rng(_step_seed(config.seed, step, 2))
                jobs = []
                if fixed is not None:
                    for b, p in enumerate(prepared):
                        choices = fixed if isinstance(fixed, list) else fixed.get(p.sample.sample_id) or []
                        if choices:
                            jobs.append((p.sample.sample_id, str(choices[int(rng.integers(len(choices)))]), b))
                else:
                    for b, (p, i) in enumerate(zip(prepared, choose_descriptions(rewards, config.synthesis.descriptions,
                                                                                 rng))):
                        if i >= 0:
                            jobs.append((p.sample.sample_id, rewards.descriptions[b][i], b))
                ids = session.submit([(sid, d, _step_seed(config.seed, step, 100 + b) % 2**31)
                                      for sid, d, b in jobs], step)
                if config.synthesis.mode == "sync":
                    waited = session.wait(ids, step)
            t3 = time.perf_counter()

            batch = build_train_batch(model_config, [p.request for p in prepared],
                                      [[r.token_ids for r in g] for g in out], advantages,
                                      micro_batches=config.train.micro_batches,
                                      old_logp=[[r.logprobs for r in g] for g in out], pad_id=tokenizer.pad_id,
                                      prompt_multiple=config.rollout.prompt_multiple,
                                      response_multiple=config.rollout.response_multiple or config.rollout.max_tokens,
                                      max_response_len=config.rollout.max_tokens)
            if mesh is not None:
                batch = jax.device_put(batch, ts.batch_shardings(batch, mesh))
            if logprob_fn is not None:
                batch = batch._replace(old_logp=logprob_fn(params, batch))
            params, opt_state, update = step_fn(params, opt_state, ref, batch, jax.random.key(
                _step_seed(config.seed, step, 3) % 2**31))
            update = jax.device_get(update)
            t4 = time.perf_counter()
            sampler.update_weights(params, step + 1)
            t5 = time.perf_counter()

            metrics = {
                "epoch": pool.epoch, "lr": float(lr_at(step)),
                "reward/accuracy": rewards.accuracy.mean(), "reward/format": rewards.format.mean(),
                "reward/diversity": rewards.diversity.mean(), "reward/total": rewards.total.mean(),
                "diversity/V_batch": rewards.v.mean(),
                "diversity/V_global": smoother.v_g if config.reward.diversity else None,
                "diversity/pred_score": float(np.nanmean(rewards.pred_score)) if np.isfinite(
                    rewards.pred_score).any() else None,
                "entropy": update.pop("token_entropy"), **update,
                "pool/synthesized_samples": pool.stats()["num_synthesized"],
                "time/rollout": t1 - t0 - t_poll, "time/rewards": t2 - t1, "time/synthesis": t3 - t2 - waited + t_poll,
                "time/waiting": waited, "time/update": t4 - t3, "time/weight_sync": t5 - t4, "time/step": t5 - t0,
                **(session.metrics() if session else {}),
            }
            metrics = {k: v for k, v in metrics.items() if v is not None}
            writer.write(step + 1, metrics)
            if step == start_step:
                summary["first"] = metrics
            summary["last"] = metrics
            _write_gallery(workdir, pool, config.train.track_samples)
            done = step + 1
            if done % config.train.checkpoint_every == 0 or done == steps or stop.stop:
                checkpoint(done)
            if stop.stop:
                break
            if evaluator is not None and (done == steps or (config.train.eval_every and
                                                            done % config.train.eval_every == 0)):
                scalars = evaluate(done)
                writer.write(done, {f"eval/{k}": v for k, v in scalars.items() if v is not None})
                summary["eval_after"] = scalars
    finally:
        stop.restore()
        writer.close()
        if session:
            session.close()
        ckpt.close()
    _complete_from_disk(summary, workdir)
    summary["plots"] = plots.plot_all([workdir])
    return summary


def _complete_from_disk(summary: dict, workdir: str) -> None:
    """A resumed (or already finished) run did not see its first steps: take them from metrics.jsonl, and the
    evaluation before training from eval/0."""
    rows = [r for r in read_metrics(workdir) if "reward/total" in r]
    if rows and "first" not in summary:
        summary["first"] = rows[0]
    if rows and "last" not in summary:
        summary["last"] = rows[-1]
    before = os.path.join(workdir, "eval", "0", "metrics.json")
    if "eval_before" not in summary and os.path.isfile(before):
        with open(before) as f:
            summary["eval_before"] = scalar_metrics(json.load(f))


def summary_table(summary: dict) -> str:
    """A markdown before/after table: training rewards (first vs last step) and evaluation (start vs end)."""
    rows = []
    first, last = summary.get("first", {}), summary.get("last", {})
    for key in ("reward/accuracy", "reward/format", "reward/diversity", "reward/total", "entropy"):
        if key in last:
            rows.append((f"train {key} (first step -> last step)", first.get(key), last.get(key)))
    before, after = summary.get("eval_before", {}), summary.get("eval_after", {})
    for key in sorted(after):
        if not key.endswith(("num_samples", "num_gt", "num_predictions", "num_matched", "mean_response_tokens")):
            rows.append((f"eval {key}", before.get(key), after.get(key)))
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["| metric | before | after |", "|---|---|---|"]
    lines += [f"| {name} | {fmt(a)} | {fmt(b)} |" for name, a, b in rows]
    return "\n".join(lines)


def _write_gallery(workdir: str, pool: DataPool, n: int) -> None:
    """gallery.json: each tracked sample's image versions (what plots.py draws across epochs)."""
    tracked = []
    for sid in pool.tracked_ids(n):
        tracked.append({"sample_id": sid, "original": pool.original(sid).image_path, "history": [
            {"version": v.version, "epoch": v.epoch or 0, "step": v.applied_step or 0, "path": v.image_path,
             "description": v.description or ""} for v in pool.history(sid)]})
    atomic_write_json(os.path.join(workdir, "gallery.json"), {"tracked": tracked}, indent=1)


_CONFIG = config_flags.DEFINE_config_file("config", None, "Run config file (configs/*.py[:arg]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, synthesized images).")


def main(argv):
    del argv
    setup_logging()
    distributed.initialize()
    summary = train(_CONFIG.value, _WORKDIR.value)
    print(f"\n{summary['method']}: {summary['steps']} steps in {summary['workdir']}\n")
    print(summary_table(summary))
    if summary.get("plots"):
        print("\nplots:\n  " + "\n  ".join(summary["plots"]))


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
