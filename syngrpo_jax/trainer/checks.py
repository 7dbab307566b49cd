"""Every check of a run config that needs neither the model nor the data, so a bad config fails before anything
compiles or a file is written."""
from __future__ import annotations

import os

from syngrpo_jax import eval_data, methods
from syngrpo_jax.grpo.losses import LossConfig
from syngrpo_jax.grpo.optimizer import make_optimizer
from syngrpo_jax.rollout import registry
from syngrpo_jax.synthesis.session import MODES as SYNTHESIS_MODES

OLD_LOGP_SOURCES = ("rollout", "recompute")
DESCRIPTION_SOURCES = ("policy", "random", "file")


def total_steps(config, num_samples: int) -> int:
    """train.steps, or epochs * num_samples / batch_size (at least 1)."""
    if config.train.steps:
        return int(config.train.steps)
    return max(1, int(round(config.train.epochs * num_samples / config.train.batch_size)))


def _field_checks(config, method) -> list[tuple[str, object, bool, str]]:
    t, r, s = config.train, config.rollout, config.synthesis
    return [
        ("rollout.group_size", r.group_size, not method.rl or r.group_size >= 2,
         "must be >= 2: GRPO's advantages compare responses within a group"),
        ("train.batch_size", t.batch_size, t.batch_size >= 1, "must be >= 1"),
        ("train.micro_batches", t.micro_batches, t.micro_batches >= 1 and t.batch_size % t.micro_batches == 0,
         f"must divide train.batch_size={t.batch_size}"),
        ("train.old_logp", t.old_logp, t.old_logp in OLD_LOGP_SOURCES, f"choose one of {OLD_LOGP_SOURCES}"),
        ("train.log_every", t.log_every, isinstance(t.log_every, int) and t.log_every >= 0, "must be an int >= 0"),
        ("rollout.max_tokens", r.max_tokens, r.max_tokens >= 1, "must be >= 1"),
        ("synthesis.mode", s.mode, s.mode in SYNTHESIS_MODES, f"choose one of {SYNTHESIS_MODES}"),
        ("synthesis.descriptions", s.descriptions, s.descriptions in DESCRIPTION_SOURCES,
         f"choose one of {DESCRIPTION_SOURCES}"),
        ("diversity.gamma", config.diversity.gamma, 0 <= config.diversity.gamma < 1, "must be in [0, 1)"),
        ("data.source", config.data.source, config.data.source in ("engine", "files"), "choose engine or files"),
        ("data.keep_versions", config.data.keep_versions,
         isinstance(config.data.keep_versions, int) and config.data.keep_versions >= 0,
         "must be an int >= 0 (0 keeps every synthesized image)"),
    ]


def validate(config) -> methods.Method:
    """The config's method, after every check that does not need the model or data."""
    method = methods.check(config)
    for field, value, ok, why in _field_checks(config, method):
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
    LossConfig.from_config(config).validate()
    for name, split in config.eval.splits.items():
        eval_data.split_fields(name, split)
    steps = max(1, config.train.steps or 1)
    make_optimizer(learning_rate=config.optim.learning_rate, total_steps=steps,
                   warmup_steps=min(config.optim.warmup_steps, steps), schedule=config.optim.schedule,
                   max_grad_norm=config.optim.max_grad_norm, frozen=tuple(config.optim.frozen))
    return method
