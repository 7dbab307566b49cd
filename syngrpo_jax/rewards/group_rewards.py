"""Rewards of one training batch: B prompts x G responses -> accuracy, format, diversity and their sum.

docs/DESIGN.md ("The method") steps 2-7 over a batch, on the host:
  R_acc   task accuracy against the labels (IoU / mAP / exact match), or MM-UPT's agreement with the group's
          majority answer (no labels read)
  R_fmt   1 when the response has every tag of its format, in order
  V(q)    the accuracies' variance / 0.25; smoothed across steps by a DiversitySmoother
  R_div   1 - |v_i - V~(q)| from each response's <score> (0 when it has none)
  r       R_acc + R_fmt (+ R_div when the method uses it)
plus each response's <description> (the candidates for the data server).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from syngrpo_jax.rewards import accuracy, diversity, majority
from syngrpo_jax.rewards.format import format_reward
from syngrpo_jax.rewards.parsing import extract_tag, parse_score
from syngrpo_jax.rollout.requests import PreparedRequest

ACCURACY_MODES = ("task", "majority")


@dataclasses.dataclass
class GroupRewards:
    accuracy: np.ndarray  # [B, G]
    format: np.ndarray  # [B, G]
    diversity: np.ndarray  # [B, G] (zeros when the method has no diversity reward)
    total: np.ndarray  # [B, G]
    v: np.ndarray  # [B] ground-truth diversity V(q)
    v_smoothed: np.ndarray  # [B] V~(q) (equal to v when there is no smoother)
    pred_score: np.ndarray  # [B, G] the responses' <score> values, NaN where absent or invalid
    descriptions: list[list[str | None]]  # [B][G] the responses' <description> texts


def accuracy_matrix(prepared: Sequence[PreparedRequest], texts: Sequence[Sequence[str]], mode: str,
                    strict_qa: bool = False) -> np.ndarray:
    """R_acc [B, G]."""
    if mode not in ACCURACY_MODES:
        raise ValueError(f"reward.accuracy={mode!r} is unknown; choose one of {ACCURACY_MODES}")
    rows = []
    for p, group in zip(prepared, texts):
        s = p.sample
        if mode == "majority":
            if s.task == "rec":
                rows.append(majority.majority_rec_rewards(list(group)))
            elif s.task == "qa":
                rows.append(majority.majority_qa_rewards(list(group), strict_qa=strict_qa))
            else:
                raise ValueError(f"reward.accuracy='majority' (MM-UPT) supports tasks rec and qa, not {s.task!r}")
            continue
        rows.append(accuracy.accuracy_rewards(
            s.task, list(group), gt_boxes=[s.boxes] * len(group), gt_labels=[list(s.labels)] * len(group),
            gt_answer=[s.answer] * len(group), model_hw=[p.model_hw] * len(group),
            image_hw=[p.image_hw] * len(group), strict_qa=strict_qa))
    return np.asarray(rows, np.float64)


def score_groups(prepared: Sequence[PreparedRequest], texts: Sequence[Sequence[str]], *, response_format: str,
                 accuracy_mode: str = "task", use_diversity: bool = False,
                 smoother: diversity.DiversitySmoother | None = None, strict_qa: bool = False) -> GroupRewards:
    """All rewards of a batch; `smoother` (stateful) is advanced once when use_diversity is set."""
    if len(prepared) != len(texts):
        raise ValueError(f"{len(prepared)} prompts but {len(texts)} response groups")
    acc = accuracy_matrix(prepared, texts, accuracy_mode, strict_qa)
    fmt = np.asarray([[format_reward(t, response_format, task=p.sample.task, strict_qa=strict_qa) for t in group]
                      for p, group in zip(prepared, texts)], np.float64)
    v = diversity.ground_truth_diversity(acc)
    pred = np.asarray([[_score(t) for t in group] for group in texts], np.float64)
    descriptions = [[extract_tag(t, "description") for t in group] for group in texts]
    if use_diversity:
        if smoother is None:
            raise ValueError("use_diversity needs a DiversitySmoother")
        v_smoothed = smoother(v)
        r_div = diversity.diversity_reward(pred, v_smoothed)
    else:
        v_smoothed, r_div = v, np.zeros_like(acc)
    return GroupRewards(acc, fmt, r_div, acc + fmt + r_div, v, v_smoothed, pred, descriptions)


def _score(text: str) -> float:
    raw = extract_tag(text, "score")
    value = None if raw is None else parse_score(raw)
    return np.nan if value is None else float(value)


def choose_descriptions(rewards: GroupRewards, source: str, rng: np.random.Generator) -> list[int]:
    """Per prompt, the index of the response whose description is synthesized (-1: none usable).

    policy: argmax R_div (Syn-GRPO); random: a uniformly random response with a description (the ablation
    without the diversity reward).
    """
    if source == "policy":
        return diversity.select_descriptions(rewards.diversity, rewards.descriptions)
    if source == "random":
        out = []
        for group in rewards.descriptions:
            usable = [i for i, d in enumerate(group) if d and d.strip()]
            out.append(int(rng.choice(usable)) if usable else -1)
        return out
    raise ValueError(f"synthesis.descriptions={source!r} has no per-response choice (policy | random)")
