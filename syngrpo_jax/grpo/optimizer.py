"""The optimizer of the policy update: AdamW with warmup and a decay schedule, global-norm clipping.

Weight decay applies to matrices (kernels, embeddings), not to norms and biases. Parameter groups can be frozen
(e.g. the vision tower): their updates are exactly zero.
"""
from __future__ import annotations

import jax
import optax
from flax import traverse_util

SCHEDULES = ("constant", "cosine", "linear")


def learning_rate_schedule(learning_rate: float, *, total_steps: int, warmup_steps: int = 0,
                           schedule: str = "constant") -> optax.Schedule:
    """Linear warmup from 0 over warmup_steps, then constant, cosine or linear decay to 0 at total_steps."""
    if schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule={schedule!r} is unknown; choose one of {SCHEDULES}")
    if learning_rate <= 0:
        raise ValueError(f"optim.learning_rate={learning_rate!r} must be > 0")
    if warmup_steps < 0 or total_steps < 1 or warmup_steps > total_steps:
        raise ValueError(f"optim.warmup_steps={warmup_steps!r} must be in [0, total_steps={total_steps}]")
    decay_steps = max(1, total_steps - warmup_steps)
    if schedule == "constant":
        after = optax.constant_schedule(learning_rate)
    elif schedule == "cosine":
        after = optax.cosine_decay_schedule(learning_rate, decay_steps)
    else:
        after = optax.linear_schedule(learning_rate, 0.0, decay_steps)
    if warmup_steps == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, learning_rate, warmup_steps), after], [warmup_steps])


def _decays(path: tuple[str, ...]) -> bool:
    name = path[-1]
    return name.endswith("kernel") or name in ("embed", "lm_head", "patch_embed")


def make_optimizer(*, learning_rate: float, total_steps: int, warmup_steps: int = 0, schedule: str = "constant",
                   b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
                   max_grad_norm: float | None = 1.0, frozen: tuple[str, ...] = ()) -> optax.GradientTransformation:
    """AdamW over a pure-dict parameter tree; `frozen` lists top-level groups ("vision", "text") not trained."""
    if max_grad_norm is not None and max_grad_norm <= 0:
        raise ValueError(f"optim.max_grad_norm={max_grad_norm!r} must be > 0 or None")
    for group in frozen:
        if group not in ("vision", "text"):
            raise ValueError(f"optim.frozen contains {group!r}; groups are 'vision' and 'text'")
    lr = learning_rate_schedule(learning_rate, total_steps=total_steps, warmup_steps=warmup_steps,
                                schedule=schedule)

    def decay_mask(params):
        flat = traverse_util.flatten_dict(params)
        return traverse_util.unflatten_dict({k: _decays(tuple(map(str, k))) for k in flat})

    adam = optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=decay_mask)
    tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), adam) if max_grad_norm else adam
    if not frozen:
        return tx

    def labels(params):
        return {g: jax.tree.map(lambda _: "frozen" if g in frozen else "train", sub) for g, sub in params.items()}

    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


def optimizer_from_config(optim, total_steps: int) -> optax.GradientTransformation:
    """`make_optimizer` with the fields of a run config's `optim` section."""
    return make_optimizer(learning_rate=optim.learning_rate, total_steps=total_steps, warmup_steps=optim.warmup_steps,
                          schedule=optim.schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps,
                          weight_decay=optim.weight_decay, max_grad_norm=optim.max_grad_norm,
                          frozen=tuple(optim.frozen))
