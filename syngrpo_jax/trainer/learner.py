"""The learner: the arrays a run trains (parameters, optimizer state, the frozen KL reference) and its update.

    learner = Learner(config, model, steps=steps, mesh=mesh, use_ref=True)
    metrics = learner.update(result, advantages, step)          # one jitted, sharded GRPO step
    learner.save(checkpointer, step, host_state) / host_state = learner.restore(checkpointer)

Parameters are a pure dict (`nnx.merge(learner.graphdef, learner.params)` is the model). The train step is
compiled on the first update, so a run that never updates (SFT only) compiles none.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from syngrpo_jax import sft
from syngrpo_jax.checkpoints import Checkpointer
from syngrpo_jax.grpo import train_step as ts
from syngrpo_jax.grpo.batch import build_train_batch
from syngrpo_jax.grpo.losses import LossConfig
from syngrpo_jax.grpo.optimizer import learning_rate_schedule, optimizer_from_config
from syngrpo_jax.metrics import MetricsWriter
from syngrpo_jax.parallel import sharding
from syngrpo_jax.trainer.phases import SALT_UPDATE, RolloutResult, step_seed


class Learner:
    def __init__(self, config, model, *, steps: int, mesh=None, use_ref: bool = False):
        self.config, self.mesh, self.use_ref = config, mesh, use_ref
        self.model_config = model.config
        self.graphdef, state = nnx.split(model)
        self.params = nnx.to_pure_dict(state)
        o = config.optim
        self.tx = optimizer_from_config(o, steps)
        self.lr_at = learning_rate_schedule(o.learning_rate, total_steps=steps, warmup_steps=o.warmup_steps,
                                            schedule=o.schedule)
        self.param_shardings = self.opt_shardings = None
        if mesh is not None:
            self.param_shardings = nnx.to_pure_dict(sharding.state_shardings(state, mesh))
            self.opt_shardings = ts.optimizer_shardings(self.tx, self.params, self.param_shardings, mesh)
        del state
        self.opt_state = jax.jit(self.tx.init, out_shardings=self.opt_shardings)(self.params)
        self.ref = None
        self.loss = LossConfig.from_config(config)
        self._step_fn = self._logprob_fn = None

    # ------------------------------------------------------------------ state

    def freeze_reference(self) -> None:
        """The frozen KL reference is the policy RL starts from (after the warm start); restored on resume."""
        if self.use_ref and self.ref is None:
            self.ref = jax.tree.map(jnp.copy, self.params)

    def save(self, checkpointer: Checkpointer, step: int, host_state: dict) -> None:
        checkpointer.save(step, params=self.params, opt_state=self.opt_state, ref_params=self.ref, state=host_state)

    def restore(self, checkpointer: Checkpointer, step: int | None = None) -> dict:
        """Arrays of checkpoint `step` (default: the latest), in this learner's shardings; returns the host state
        saved with them."""
        self.params, self.opt_state, self.ref, host = checkpointer.restore(
            step, params_like=self.params, opt_state_like=self.opt_state,
            ref_params_like=self.params if self.use_ref else None)
        return host

    def warm_start(self, samples, tokenizer, *, steps: int, rl: bool, writer: MetricsWriter) -> None:
        """Supervised steps on ground-truth answers (the SFT baseline, or the warm start before RL)."""
        c = self.config
        self.params, _ = sft.warm_start(
            c, self.model_config, self.graphdef, self.params, samples, tokenizer, steps=steps,
            batch_size=c.sft.batch_size if rl else c.train.batch_size,
            learning_rate=c.sft.learning_rate if rl else c.optim.learning_rate, warmup_steps=c.sft.warmup_steps,
            seed=c.seed, writer=writer)

    # ------------------------------------------------------------------ the update

    def _compile(self) -> None:
        self._step_fn = ts.make_train_step(self.graphdef, self.tx, self.loss, mesh=self.mesh,
                                           param_shardings=self.param_shardings, opt_shardings=self.opt_shardings)
        if self.config.train.old_logp == "recompute":
            self._logprob_fn = ts.make_logprob_fn(self.graphdef, self.loss)

    def update(self, result: RolloutResult, advantages, step: int, *, pad_id: int) -> dict:
        """One GRPO step on the rollout's responses; returns the step's metrics as host scalars."""
        if self._step_fn is None:
            self._compile()
        c = self.config
        batch = build_train_batch(self.model_config, [p.request for p in result.prepared],
                                  [[r.token_ids for r in g] for g in result.responses], advantages,
                                  micro_batches=c.train.micro_batches,
                                  old_logp=[[r.logprobs for r in g] for g in result.responses], pad_id=pad_id,
                                  prompt_multiple=c.rollout.prompt_multiple,
                                  response_multiple=c.rollout.response_multiple or c.rollout.max_tokens,
                                  max_response_len=c.rollout.max_tokens)
        if self.mesh is not None:
            batch = jax.device_put(batch, ts.batch_shardings(batch, self.mesh))
        if self._logprob_fn is not None:
            batch = batch._replace(old_logp=self._logprob_fn(self.params, batch))
        key = jax.random.key(step_seed(c.seed, step, SALT_UPDATE) % 2**31)
        self.params, self.opt_state, metrics = self._step_fn(self.params, self.opt_state, self.ref, batch, key)
        return jax.device_get(metrics)
