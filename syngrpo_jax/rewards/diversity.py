"""Diversity: how spread a prompt's G accuracy rewards are, its smoothing over steps, the reward for predicting
it, and the choice of the description sent to the data server (docs/DESIGN.md, "The method", steps 4-6 and 8).

  V(q)       = Var_i R_acc(o_i) / (1/4)            population variance over the G responses, in [0, 1]
  V_b        = mean_q V(q)                          over the batch
  V_g        <- gamma * V_g + (1 - gamma) * V_b     EMA across steps; V_g = V_b at the first step
  Ṽ(q)       = clip(V(q) * V_g / V_b, 0, 1)         rescales this batch to the running level
  R_div(o_i) = 1 - |v_i - Ṽ(q)|                     v_i = the response's own <score>
  i*         = argmax_i R_div(o_i)                  its <description> goes to the data server
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

VARIANCE_BOUND = 0.25  # Var of a [0, 1]-valued variable is at most 1/4 (half the mass at 0, half at 1).


def _array(x: Any, ndim: int, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a {ndim}-D array of numbers, got {x!r}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return arr


def ground_truth_diversity(acc: Any) -> np.ndarray:
    """V(q) [B] = population variance over G of acc [B, G] (accuracy rewards in [0, 1]) / 0.25, clipped to [0, 1].

    Raises ValueError for acc that is not 2-D with G >= 1, or not finite.
    """
    acc = _array(acc, 2, "acc")
    if acc.shape[1] < 1:
        raise ValueError(f"acc must have at least one response per prompt, got shape {acc.shape}")
    if not np.isfinite(acc).all():
        raise ValueError(f"acc must be finite, got {acc.tolist()}")
    return np.clip(np.var(acc, axis=1) / VARIANCE_BOUND, 0.0, 1.0)


class DiversitySmoother:
    """Ṽ(q) = clip(V(q) * V_g / V_b, 0, 1) with V_g an EMA of the batch means V_b (see the module docstring).

    V_b = 0 means every V(q) in the batch is 0 (V >= 0): the smoothed values are all 0 (not 0/0), and V_g is still
    updated with V_b = 0 (it is the first value of V_g if this is the first step). State is `v_g` and whether it
    has been set; `state_dict()` is plain JSON-able Python, and restoring it continues the sequence exactly.
    """

    def __init__(self, gamma: float = 0.7):
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0.0 <= gamma < 1.0:
            raise ValueError(f"gamma must be a number in [0, 1), got {gamma!r}")
        self.gamma = float(gamma)
        self.v_g = 0.0
        self.initialized = False
        self.steps = 0

    def __call__(self, v: Any) -> np.ndarray:
        """Update V_g with this batch's V [B] and return Ṽ [B]. Raises ValueError for V not 1-D, empty or not
        finite and >= 0."""
        v = _array(v, 1, "v")
        if v.size == 0 or not np.isfinite(v).all() or (v < 0).any():
            raise ValueError(f"v must be a non-empty 1-D array of finite values >= 0, got {v.tolist()}")
        v_b = float(np.mean(v))
        if self.initialized:
            self.v_g = self.gamma * self.v_g + (1.0 - self.gamma) * v_b
        else:
            self.v_g, self.initialized = v_b, True
        self.steps += 1
        if v_b == 0.0:
            return np.zeros_like(v)
        # (V * V_g) / V_b rather than V * (V_g / V_b): V <= 1 and V_g <= 1 keep the product finite, and a tiny
        # V_b then gives +inf (clipped to 1), never 0 * inf.
        with np.errstate(over="ignore"):
            return np.clip(v * self.v_g / v_b, 0.0, 1.0)

    def state_dict(self) -> dict:
        """{"gamma": float, "v_g": float, "initialized": bool, "steps": int}, JSON-serialisable."""
        return {"gamma": self.gamma, "v_g": float(self.v_g), "initialized": bool(self.initialized), "steps": int(self.steps)}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict()` returned. Raises ValueError for missing or extra keys, bad values, or a
        gamma that differs from this smoother's (the config and the checkpoint disagree)."""
        expected = {"gamma", "v_g", "initialized", "steps"}
        if not isinstance(state, dict) or set(state) != expected:
            raise ValueError(f"state must be a dict with keys {sorted(expected)}, got {state!r}")
        if state["gamma"] != self.gamma:
            raise ValueError(f"state['gamma'] = {state['gamma']!r} differs from this smoother's gamma {self.gamma!r}")
        v_g, initialized, steps = state["v_g"], state["initialized"], state["steps"]
        if isinstance(v_g, bool) or not isinstance(v_g, (int, float)) or not math.isfinite(v_g) or v_g < 0:
            raise ValueError(f"state['v_g'] must be a finite number >= 0, got {v_g!r}")
        if not isinstance(initialized, bool):
            raise ValueError(f"state['initialized'] must be a bool, got {initialized!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"state['steps'] must be an int >= 0, got {steps!r}")
        self.v_g, self.initialized, self.steps = float(v_g), initialized, steps


def diversity_reward(pred_v: Any, smoothed: Any) -> np.ndarray:
    """R_div [B, G] = 1 - |pred_v - smoothed[:, None]|, and 0 where pred_v is NaN (the score did not parse).

    pred_v [B, G]: the responses' scores in [0, 1] (NaN = none); smoothed [B]: Ṽ in [0, 1]. Raises ValueError
    for mismatched shapes or values outside [0, 1].
    """
    pred_v = _array(pred_v, 2, "pred_v")
    smoothed = _array(smoothed, 1, "smoothed")
    if smoothed.shape[0] != pred_v.shape[0]:
        raise ValueError(f"smoothed must have one value per prompt: pred_v {pred_v.shape} vs smoothed {smoothed.shape}")
    parsed = ~np.isnan(pred_v)
    if ((pred_v[parsed] < 0) | (pred_v[parsed] > 1)).any():
        raise ValueError(f"pred_v must be in [0, 1] or NaN, got {pred_v.tolist()}")
    if not np.isfinite(smoothed).all() or ((smoothed < 0) | (smoothed > 1)).any():
        raise ValueError(f"smoothed must be in [0, 1], got {smoothed.tolist()}")
    r = 1.0 - np.abs(np.where(parsed, pred_v, 0.0) - smoothed[:, None])
    return np.where(parsed, r, 0.0)


def select_descriptions(r_div: Any, descriptions: Sequence[Sequence[str | None]]) -> list[int]:
    """Per prompt, i* = argmax_i R_div[b, i] over responses with a usable description, else -1.

    Usable: a string that is not empty after stripping whitespace. Ties go to the lowest index. Raises
    ValueError when `descriptions` is not [B][G] like r_div [B, G], or r_div is not finite.
    """
    r_div = _array(r_div, 2, "r_div")
    if not np.isfinite(r_div).all():
        raise ValueError(f"r_div must be finite, got {r_div.tolist()}")
    shape = [len(row) for row in descriptions]
    if len(descriptions) != r_div.shape[0] or any(n != r_div.shape[1] for n in shape):
        raise ValueError(f"descriptions must be [B][G] = {list(r_div.shape)}, got {len(descriptions)} rows of lengths {shape}")
    chosen = []
    for row_r, row_d in zip(r_div, descriptions):
        usable = np.array([isinstance(d, str) and bool(d.strip()) for d in row_d], bool)
        if not usable.any():
            chosen.append(-1)
            continue
        chosen.append(int(np.argmax(np.where(usable, row_r, -np.inf))))
    return chosen
