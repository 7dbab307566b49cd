"""Rollout engines by name: `config.rollout.engine` resolves here, for training and evaluation alike.

An engine is built from an `EngineContext` (the policy, its tokenizer, the HF directory its weights came from,
the run config and directory). Factories are registered as "module:function" strings and imported only when
chosen, so naming an engine never imports what another engine needs (the vLLM client needs no JAX model code,
the JAX sampler no ZeroMQ).
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

from syngrpo_jax.rollout.base import RolloutEngine


@dataclasses.dataclass(frozen=True)
class EngineContext:
    model: Any  # the policy (models.qwen2_5_vl.Qwen25VL); the JAX sampler samples with it
    tokenizer: Any  # processing.tokenizer.Tokenizer
    model_dir: str  # the HF directory of the initial weights (what an external worker loads)
    config: Any  # the run config (ml_collections.ConfigDict): rollout.*, data.min_pixels / max_pixels, ...
    workdir: str = ""  # the run directory ("" outside a run: an engine keeps its files in a temporary directory)


_ENGINES: dict[str, str] = {
    "jax": "syngrpo_jax.rollout.jax_sampler:from_context",
    "vllm": "syngrpo_jax.rollout.vllm_engine:from_context",
}


def register_engine(name: str, factory: str | Callable[[EngineContext], RolloutEngine]) -> None:
    """Make `name` selectable as rollout.engine; factory: a callable or a lazily imported "module:function"."""
    _ENGINES[name] = factory


def engine_names() -> list[str]:
    return sorted(_ENGINES)


def check_engine(name: str) -> None:
    if name not in _ENGINES:
        raise ValueError(f"rollout.engine={name!r} is unknown; known engines: {engine_names()}")


def make_engine(name: str, context: EngineContext) -> RolloutEngine:
    """The engine registered as `name`, built from `context`."""
    check_engine(name)
    factory = _ENGINES[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(context)
