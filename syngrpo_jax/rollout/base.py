"""The interface every rollout engine implements (the native JAX sampler now, the vLLM worker later).

A trainer hands an engine prompts (token ids with image placeholders already expanded, plus the processed
pixels) and sampling parameters, and gets back n responses per prompt: token ids, text, the per-token log-probs
of the sampled tokens under the temperature-scaled policy (the `old_logp` of GRPO's ratio) and which weight
version produced them. After every update the trainer pushes weights with a new version number.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Literal, Sequence

import numpy as np

FinishReason = Literal["stop", "length"]


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    n: int = 1  # responses per prompt (GRPO's group size G)
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0  # nucleus sampling; 1 = off
    top_k: int = 0  # keep the k most likely tokens; 0 = off
    max_tokens: int = 256  # new tokens per response
    stop_token_ids: tuple[int, ...] = ()  # generation of a response ends at (and includes) any of these
    seed: int = 0

    def __post_init__(self):
        checks = [
            ("n", self.n, isinstance(self.n, int) and self.n >= 1, "must be an integer >= 1"),
            ("temperature", self.temperature, self.temperature >= 0, "must be >= 0"),
            ("top_p", self.top_p, 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("top_k", self.top_k, isinstance(self.top_k, int) and self.top_k >= 0, "must be an integer >= 0"),
            ("max_tokens", self.max_tokens, isinstance(self.max_tokens, int) and self.max_tokens >= 1,
             "must be an integer >= 1"),
        ]
        for field, value, ok, why in checks:
            if not ok:
                raise ValueError(f"SamplingParams.{field}={value!r}: {why}")
        object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in self.stop_token_ids))


@dataclasses.dataclass(frozen=True)
class RolloutRequest:
    """One prompt: token ids (image pads expanded, no padding) and the processor's pixels for its images."""

    prompt_ids: np.ndarray  # [L] int
    pixel_values: np.ndarray | None = None  # [patches, C*T*p*p] float32, all of this prompt's images
    image_grid_thw: np.ndarray | None = None  # [n_images, 3]
    request_id: str = ""


@dataclasses.dataclass(frozen=True)
class Response:
    token_ids: np.ndarray  # [T] int32, the stop token included when finish_reason == "stop"
    text: str  # decoded token_ids without the stop token
    logprobs: np.ndarray  # [T] float32, log p(token) under softmax(logits / temperature) (temperature 0 -> 1)
    finish_reason: FinishReason
    weight_version: int


class RolloutEngine(abc.ABC):
    """Generates responses for prompts with the current policy weights."""

    @abc.abstractmethod
    def generate(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Response]]:
        """params.n responses for each request, in request order."""

    @abc.abstractmethod
    def update_weights(self, params, version: int) -> None:
        """Use `params` (the policy's parameter state) from now on; responses report `version`."""

    @property
    @abc.abstractmethod
    def weight_version(self) -> int:
        """The version of the weights generate() currently uses."""

    def step_metrics(self) -> dict[str, float]:
        """Scalars about the last generate() call that the trainer adds to the step's metrics (an external
        engine reports e.g. rollout/logp_diff_mean, its log-probs against the trainer's); none by default."""
        return {}
