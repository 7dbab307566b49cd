"""GRPO policy loss: the clipped surrogate and its variants, KL to a reference, entropy bonus, Clip-Cov / KL-Cov.

Shapes: N sequences (responses) of T response tokens. Per-token arrays (``logp``, ``old_logp``, ``mask``,
``ref_logp``, ``entropy``) are ``[N, T]``; ``advantages`` is ``[N]`` (one per response, broadcast over its
tokens) or ``[N, T]`` (per token, e.g. ``advantages.entropy_shaped_advantages``). ``mask`` is nonzero at the
response tokens that count and zero at padding; a row with no valid token is a padding row and contributes to
nothing, not even to a denominator.

Exact gradient accumulation. ``policy_loss`` returns a ``PolicyLoss(loss_sum, denominator, metrics)`` rather
than a mean: every aggregation is ``loss = loss_sum / denominator`` with both parts *sums over the rows of the
batch*, and ``denominator`` depends on the mask only, never on the parameters. So a step that splits its batch
into micro-batches sums ``loss_sum`` (and its gradient) and ``denominator`` over them and divides once, and gets
exactly the full-batch loss and gradient (``combine`` does the sums):

  * ``"token-mean"``: loss_sum = sum of all valid token losses, denominator = number of valid tokens. Every token
    of the global batch weighs the same, whichever micro-batch it landed in. (Dividing each micro-batch by its
    own token count and averaging the micro-batch losses, as some trainers do, is *not* this.)
  * ``"seq-mean-token-mean"``: loss_sum = sum over sequences of the sequence's token mean, denominator = number of
    (non-empty) sequences. Exact because a sequence never straddles micro-batches.
  * ``"seq-mean-token-sum"``: loss_sum = sum over sequences of the token sum (divided by ``norm_constant`` if
    given; Dr.GRPO divides by a constant such as the maximum response length instead of by each length),
    denominator = number of sequences. Exact for the same reason.

What is *not* exact under micro-batching: Clip-Cov and KL-Cov select tokens from covariances, means and counts
of the batch they are given, so selecting per micro-batch differs from selecting over the full batch (the loss
and gradient are exact *given* the selection). Metrics are ``MetricSum(total, count)`` pairs and accumulate
exactly like the loss.

The settings are one ``LossConfig`` (every field spelled once, passed whole): static Python values checked on the host (so under ``jax.jit`` they must be static
arguments or closed over); bad values raise ``ValueError`` naming the field and the value. The coefficients
``kl_coef`` and ``entropy_coef`` may also be traced scalars (schedules); then they are not range-checked and
their term is always computed.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp

from syngrpo_jax.grpo.cov_selection import COV_MODES, clip_cov_select, kl_cov_select, token_covariance
from syngrpo_jax.grpo.loss_types import MetricSum, PolicyLoss, safe_div, upcast

# The log-ratio is clamped before exp so that a stale old_logp at a padded or degenerate token cannot make the
# ratio inf (and the gradient NaN); |log r| > 20 means r > 4.8e8, far outside any clip range, so the clamp only
# changes tokens whose surrogate is already clipped or dual-clipped.
LOG_RATIO_CLAMP = 20.0


# ----------------------------------------------------------------------------------------------------------------
# Aggregations: (per_token [N, T], weights [N, T] in {0, 1}) -> (sum, denominator)
# ----------------------------------------------------------------------------------------------------------------

Aggregation = Callable[..., tuple[jax.Array, jax.Array]]
AGGREGATIONS: dict[str, Aggregation] = {}


def _register(table: dict, name: str):
    def register(fn):
        if name in table:
            raise ValueError(f"{name!r} is already registered")
        table[name] = fn
        return fn

    return register


@_register(AGGREGATIONS, "token-mean")
def token_mean(per_token: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """loss = sum_{i,t} m_it l_it / sum_{i,t} m_it; returns (sum_{i,t} m_it l_it, sum_{i,t} m_it)."""
    return jnp.sum(per_token * weights), jnp.sum(weights)


@_register(AGGREGATIONS, "seq-mean-token-mean")
def seq_mean_token_mean(per_token: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """loss = (1/N') sum_i [sum_t m_it l_it / sum_t m_it] over the N' rows with sum_t m_it > 0.

    Returns (sum_i of the row means, N').
    """
    n_tok = jnp.sum(weights, axis=-1)
    row_mean = safe_div(jnp.sum(per_token * weights, axis=-1), n_tok)
    return jnp.sum(row_mean), jnp.sum((n_tok > 0).astype(jnp.float32))


@_register(AGGREGATIONS, "seq-mean-token-sum")
def seq_mean_token_sum(
    per_token: jax.Array, weights: jax.Array, norm_constant: float | None = None
) -> tuple[jax.Array, jax.Array]:
    """loss = (1/N') sum_i [sum_t m_it l_it / C] over the N' rows with sum_t m_it > 0; C = norm_constant or 1.

    With C a constant (Dr.GRPO: e.g. the maximum response length) every token weighs the same whatever the
    length of its response. Returns (sum_i sum_t m_it l_it / C, N').
    """
    row_sum = jnp.sum(per_token * weights, axis=-1)
    if norm_constant is not None:
        row_sum = row_sum / norm_constant
    n_rows = jnp.sum((jnp.sum(weights, axis=-1) > 0).astype(jnp.float32))
    return jnp.sum(row_sum), n_rows


def aggregate(
    per_token: jax.Array, mask: jax.Array, agg: str, *, norm_constant: float | None = None
) -> tuple[jax.Array, jax.Array]:
    """(sum, denominator) of ``per_token`` [N, T] under aggregation ``agg``; ``mask`` nonzero = valid token."""
    fn = _lookup(AGGREGATIONS, "agg", agg)
    _check_norm_constant(agg, norm_constant)
    weights = (mask != 0).astype(jnp.float32)
    if norm_constant is not None:
        return fn(per_token, weights, norm_constant)
    return fn(per_token, weights)


def _check_norm_constant(agg: str, norm_constant: float | None) -> None:
    if norm_constant is None:
        return
    if agg != "seq-mean-token-sum":
        raise ValueError(f"norm_constant={norm_constant!r} only applies to agg='seq-mean-token-sum', not agg={agg!r}")
    if not (_is_number(norm_constant) and norm_constant > 0 and math.isfinite(norm_constant)):
        raise ValueError(f"norm_constant must be a finite number > 0, got {norm_constant!r}")


# ----------------------------------------------------------------------------------------------------------------
# KL estimators to the reference policy, per token; d = logp - ref_logp
# ----------------------------------------------------------------------------------------------------------------

KL_ESTIMATORS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {}


@_register(KL_ESTIMATORS, "k1")
def kl_k1(logp: jax.Array, ref_logp: jax.Array) -> jax.Array:
    """k1 = logp - ref_logp (unbiased for KL(pi || ref) under samples of pi, can be negative per token)."""
    return logp - ref_logp


@_register(KL_ESTIMATORS, "k2")
def kl_k2(logp: jax.Array, ref_logp: jax.Array) -> jax.Array:
    """k2 = (logp - ref_logp)^2 / 2 (biased, low variance, >= 0)."""
    return 0.5 * jnp.square(logp - ref_logp)


@_register(KL_ESTIMATORS, "k3")
def kl_k3(logp: jax.Array, ref_logp: jax.Array) -> jax.Array:
    """k3 = exp(ref_logp - logp) - (ref_logp - logp) - 1 (Schulman 2020; unbiased for KL(pi || ref), >= 0)."""
    log_r = ref_logp - logp
    return jnp.exp(log_r) - log_r - 1.0


def kl_divergence(
    logp: jax.Array, ref_logp: jax.Array, estimator: str = "k3", *, straight_through: bool = False
) -> jax.Array:
    """Per-token KL estimate kX(logp, ref_logp), X = ``estimator``.

    ``straight_through=True`` returns sg(kX) + k2 - sg(k2): the value of kX with the gradient of k2,
    d/dlogp = logp - ref_logp. Under samples of pi that is an unbiased estimate of the gradient of
    KL(pi || ref) with respect to the sampled log-probabilities, which the gradients of k1 (a constant 1) and
    of k3 (1 - ref/pi) are not.
    """
    value = _lookup(KL_ESTIMATORS, "kl_estimator", estimator)(logp, ref_logp)
    if not straight_through:
        return value
    k2 = kl_k2(logp, ref_logp)
    return jax.lax.stop_gradient(value) + k2 - jax.lax.stop_gradient(k2)


# ----------------------------------------------------------------------------------------------------------------
# The clipped surrogate
# ----------------------------------------------------------------------------------------------------------------


def clipped_surrogate(
    logp: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
) -> jax.Array:
    """Per-token PPO/GRPO clipped surrogate loss, [N, T] (advantages already broadcast to [N, T]).

        r = exp(logp - old_logp)
        l = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))          (= -min(r A, clip(r) A))

    Clip-Higher (DAPO) is clip_high > clip_low: a token with A > 0 may raise its probability further before the
    upper clip stops its gradient. Dual clip (Ye et al. 2020), for A < 0 only:

        l = min(max(-A r, -A clip(r)), -dual_clip * A)  = |A| min(max(r, clip(r)), dual_clip)

    so a negative-advantage token whose ratio has grown past dual_clip contributes at most dual_clip * |A| and no
    gradient. (The log-ratio is clamped to +-LOG_RATIO_CLAMP before exp.)
    """
    log_ratio = jnp.clip(logp - old_logp, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = jnp.exp(log_ratio)
    loss = jnp.maximum(-advantages * ratio, -advantages * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high))
    if dual_clip is not None:
        loss = jnp.where(advantages < 0, jnp.minimum(loss, -dual_clip * advantages), loss)
    return loss


# ----------------------------------------------------------------------------------------------------------------
# The loss
# ----------------------------------------------------------------------------------------------------------------


def _lookup(table: dict, field: str, name: str):
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ValueError(f"{field}={name!r} is unknown; known: {sorted(table)}") from None


def _is_number(x) -> bool:
    """A static real number (Python or NumPy scalar), not a bool and not a traced array."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _static_zero(x) -> bool:
    return _is_number(x) and x == 0


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Every setting of the policy loss, spelled once; passed whole to `policy_loss` and the train step.

    `policy_loss` documents each term. temperature and logprob_chunk are read where log-probs are computed (the
    train step): log-probs are of softmax(logits / temperature), in chunks of logprob_chunk response tokens.
    kl_coef and entropy_coef may be traced scalars (schedules); then they are not range-checked and their term is
    always computed.
    """

    clip_low: float = 0.2
    clip_high: float = 0.2  # != clip_low: Clip-Higher (DAPO)
    dual_clip: float | None = None
    agg: str = "token-mean"
    norm_constant: float | None = None
    kl_coef: float = 0.0  # 0: no reference model is run
    kl_estimator: str = "k3"
    kl_straight_through: bool = False
    entropy_coef: float = 0.0  # > 0: entropy bonus (GRPO + entropy loss)
    entropy_adv_alpha: float | None = None  # set: entropy-shaped advantage (GRPO + entropy advantage)
    entropy_adv_kappa: float = 2.0
    cov_mode: str | None = None  # "clip_cov" | "kl_cov"
    clip_cov_ratio: float = 2e-4
    clip_cov_lb: float = 1.0
    clip_cov_ub: float = 5.0
    kl_cov_ratio: float = 2e-3
    kl_cov_coef: float = 1.0
    temperature: float = 1.0  # the sampling temperature; log-probs are of softmax(logits / temperature)
    logprob_chunk: int = 128  # response tokens per logits chunk

    @classmethod
    def from_config(cls, config) -> "LossConfig":
        """The run config's `loss.*` fields, at the rollout temperature (0, greedy, trains at 1)."""
        return cls(**{k: config.loss[k] for k in config.loss}, temperature=config.rollout.temperature or 1.0)

    def validate(self) -> "LossConfig":
        """Raise ValueError naming the field and value for a setting `policy_loss` cannot run (host-side, so a
        whole config is checked before anything is compiled); returns self."""
        c = self
        if not (_is_number(c.clip_low) and 0.0 <= c.clip_low < 1.0):
            raise ValueError(f"clip_low must be in [0, 1), got {c.clip_low!r}")
        if not (_is_number(c.clip_high) and c.clip_high >= 0.0):
            raise ValueError(f"clip_high must be >= 0, got {c.clip_high!r}")
        if c.dual_clip is not None and not (_is_number(c.dual_clip) and c.dual_clip > 1.0):
            raise ValueError(f"dual_clip must be None or > 1, got {c.dual_clip!r}")
        _lookup(AGGREGATIONS, "agg", c.agg)
        _check_norm_constant(c.agg, c.norm_constant)
        _lookup(KL_ESTIMATORS, "kl_estimator", c.kl_estimator)
        if not isinstance(c.kl_straight_through, bool):
            raise ValueError(f"kl_straight_through must be a bool, got {c.kl_straight_through!r}")
        if _is_number(c.kl_coef) and not c.kl_coef >= 0.0:
            raise ValueError(f"kl_coef must be >= 0, got {c.kl_coef!r}")
        if _is_number(c.entropy_coef) and not math.isfinite(c.entropy_coef):
            raise ValueError(f"entropy_coef must be finite, got {c.entropy_coef!r}")
        if c.cov_mode is not None and c.cov_mode not in COV_MODES:
            raise ValueError(f"cov_mode={c.cov_mode!r} is unknown; known: None, {', '.join(map(repr, COV_MODES))}")
        if c.cov_mode == "clip_cov":
            if not (_is_number(c.clip_cov_ratio) and 0.0 < c.clip_cov_ratio <= 1.0):
                raise ValueError(f"clip_cov_ratio must be in (0, 1], got {c.clip_cov_ratio!r}")
            if not (_is_number(c.clip_cov_lb) and _is_number(c.clip_cov_ub) and c.clip_cov_lb < c.clip_cov_ub):
                raise ValueError(f"clip_cov_lb must be < clip_cov_ub, got clip_cov_lb={c.clip_cov_lb!r}, "
                                 f"clip_cov_ub={c.clip_cov_ub!r}")
        if c.cov_mode == "kl_cov":
            if not (_is_number(c.kl_cov_ratio) and 0.0 < c.kl_cov_ratio <= 1.0):
                raise ValueError(f"kl_cov_ratio must be in (0, 1], got {c.kl_cov_ratio!r}")
            if not (_is_number(c.kl_cov_coef) and c.kl_cov_coef >= 0.0):
                raise ValueError(f"kl_cov_coef must be >= 0, got {c.kl_cov_coef!r}")
        if c.entropy_adv_alpha is not None and not (c.entropy_adv_alpha >= 0 and c.entropy_adv_kappa > 1):
            raise ValueError(f"entropy_adv_alpha={c.entropy_adv_alpha!r} / entropy_adv_kappa="
                             f"{c.entropy_adv_kappa!r}: need alpha >= 0 and kappa > 1")
        if not c.temperature > 0:
            raise ValueError(f"temperature={c.temperature!r} must be > 0 (greedy rollouts train at 1.0)")
        if not (isinstance(c.logprob_chunk, int) and c.logprob_chunk >= 1):
            raise ValueError(f"logprob_chunk={c.logprob_chunk!r} must be a positive integer")
        return self


def _check_shapes(logp, old_logp, advantages, mask, ref_logp, entropy) -> tuple[int, ...]:
    if jnp.ndim(logp) != 2:
        raise ValueError(f"logp must be [N, T], got shape {jnp.shape(logp)}")
    shape = jnp.shape(logp)
    for name, x in (("old_logp", old_logp), ("mask", mask), ("ref_logp", ref_logp), ("entropy", entropy)):
        if x is not None and jnp.shape(x) != shape:
            raise ValueError(f"{name} must have the shape of logp {shape}, got shape {jnp.shape(x)}")
    if jnp.shape(advantages) not in (shape[:1], shape):
        raise ValueError(f"advantages must be [N]={shape[:1]} or [N, T]={shape}, got shape {jnp.shape(advantages)}")
    return shape


def policy_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    config: LossConfig = LossConfig(),
    *,
    ref_logp: jax.Array | None = None,
    entropy: jax.Array | None = None,
    rng: jax.Array | None = None,
    **settings,
) -> PolicyLoss:
    """The GRPO policy loss of one (micro-)batch, as ``PolicyLoss(loss_sum, denominator, metrics)``.

    Per valid token (i, t), with r = exp(logp - old_logp) and A the (broadcast) advantage:

        l_it = s_it                                   clipped surrogate (``clipped_surrogate``; Clip-Higher when
                                                      clip_high != clip_low, dual clip when dual_clip is set)
             + kl_coef * kX(logp, ref_logp)_it        KL to the reference (``kl_divergence``); skipped entirely
                                                      when kl_coef is a literal 0 or ref_logp is None
             - entropy_coef * H_it                    entropy bonus; H is the true token entropy from the logits
                                                      (``entropy.token_entropy``), differentiable
             + [KL-Cov only] kl_cov_coef * |logp - old_logp|_it * 1[it selected]

    and loss = agg(l) = loss_sum / denominator (see the module docstring for each ``agg`` and for what is exact
    under micro-batching). Every term goes through the same aggregation, so loss = agg(s) + kl_coef agg(kX)
    - entropy_coef agg(H) [+ KL-Cov term].

    Covariance modes (Cui et al. 2025, arXiv 2505.22617), cov_it = (logp_it - mean logp)(A_it - mean A) over the
    valid tokens of this batch (``token_covariance``):

      * ``"clip_cov"``: candidates are tokens whose surrogate still has a gradient (neither PPO clip nor dual
        clip binds) with clip_cov_lb < cov < clip_cov_ub (paper: 1 and 5); a random subset of
        max(1, floor(clip_cov_ratio * n_valid)) of them (paper: 2e-4) is drawn with ``rng`` and their surrogate
        is detached: s_it -> sg(s_it). Its value still counts (the reported loss is the plain one); its gradient
        is zero. Only the surrogate is detached; their KL / entropy terms keep their gradients.
      * ``"kl_cov"``: the max(1, floor(kl_cov_ratio * n_valid)) valid tokens of largest cov (paper: 2e-3 for
        7B, 2e-4 for 32B) get the extra penalty kl_cov_coef * |logp - old_logp| (paper: beta = 1).

    Note that the reference KL-Cov code (PRIME-RL) drops PPO clipping altogether (surrogate -r A); here the
    penalty is added to whatever surrogate the clip arguments define, so KL-Cov composes with Clip-Higher and
    dual clip. Use a large clip_high for an (upper-side) unclipped surrogate.

    Args:
      logp: [N, T] log-probabilities of the sampled tokens under the current policy (the gradient flows here).
      old_logp: [N, T] the same under the policy that sampled them (constant).
      advantages: [N] or [N, T] (constant).
      mask: [N, T], nonzero at valid response tokens.
      config: the settings (``LossConfig``); ``**settings`` overrides fields of it by name (e.g.
        ``policy_loss(..., clip_high=0.28)``), a convenience for tests and one-off calls.
      ref_logp, entropy: optional [N, T].
      rng: a jax PRNG key, required by ``cov_mode="clip_cov"``; with micro-batches give each its own key
        (e.g. ``jax.random.fold_in(step_key, micro_batch_index)``) so that they do not draw the same pattern.
    Returns:
      ``PolicyLoss``; ``.loss`` is the scalar to minimise for a single batch.
    """
    cfg = (dataclasses.replace(config, **settings) if settings else config).validate()
    if cfg.cov_mode == "clip_cov" and rng is None:
        raise ValueError("rng=None: cov_mode='clip_cov' draws its random subset from an explicit rng key")
    clip_low, clip_high, dual_clip, agg, norm_constant = cfg.clip_low, cfg.clip_high, cfg.dual_clip, cfg.agg, \
        cfg.norm_constant
    shape = _check_shapes(logp, old_logp, advantages, mask, ref_logp, entropy)

    valid = mask != 0
    w = valid.astype(jnp.float32)
    n_valid = jnp.sum(w)

    # Padding positions may hold anything (stale or -inf log-probs): zero them before any arithmetic so that
    # neither the value nor the gradient can pick up a NaN from them.
    def clean(x):
        return jnp.where(valid, upcast(x), 0.0)

    logp = clean(logp)
    old_logp = jax.lax.stop_gradient(clean(old_logp))
    adv = upcast(advantages)
    adv = jax.lax.stop_gradient(clean(jnp.broadcast_to(adv[:, None] if adv.ndim == 1 else adv, shape)))

    surrogate = clipped_surrogate(
        logp, old_logp, adv, clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip
    )
    sg = jax.lax.stop_gradient
    log_ratio = jnp.clip(sg(logp - old_logp), -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = jnp.exp(log_ratio)
    low_clipped = (adv < 0) & (ratio < 1.0 - clip_low) & valid
    high_clipped = (adv > 0) & (ratio > 1.0 + clip_high) & valid
    dual_clipped = (adv < 0) & (ratio > dual_clip) & valid if dual_clip is not None else None

    def token_metric(x):
        return MetricSum(jnp.sum(sg(x) * w), n_valid)

    metrics: dict[str, MetricSum] = {}
    per_token = surrogate
    if cfg.cov_mode is not None:
        cov = token_covariance(logp, adv, w)
        if cfg.cov_mode == "clip_cov":
            eligible = ~(low_clipped | high_clipped)
            if dual_clipped is not None:
                eligible &= ~dual_clipped
            selected = clip_cov_select(
                cov, w, eligible, ratio=cfg.clip_cov_ratio, cov_low=cfg.clip_cov_lb, cov_high=cfg.clip_cov_ub, rng=rng
            )
            per_token = jnp.where(selected, sg(surrogate), surrogate)
        else:
            selected = kl_cov_select(cov, w, ratio=cfg.kl_cov_ratio)
            per_token = per_token + jnp.where(selected, cfg.kl_cov_coef * jnp.abs(logp - old_logp), 0.0)
        metrics["cov_selected_frac"] = token_metric(selected.astype(jnp.float32))

    pg_sum, denominator = aggregate(sg(per_token), w, agg, norm_constant=norm_constant)
    metrics["pg_loss"] = MetricSum(pg_sum, denominator)

    if ref_logp is not None and not _static_zero(cfg.kl_coef):
        kl = kl_divergence(logp, sg(clean(ref_logp)), cfg.kl_estimator, straight_through=cfg.kl_straight_through)
        per_token = per_token + cfg.kl_coef * kl
        metrics["kl_ref"] = token_metric(kl)
    if entropy is not None:
        ent = clean(entropy)
        if not _static_zero(cfg.entropy_coef):
            per_token = per_token - cfg.entropy_coef * ent
        metrics["entropy"] = token_metric(ent)

    loss_sum, denominator = aggregate(per_token, w, agg, norm_constant=norm_constant)

    metrics["ratio_mean"] = token_metric(ratio)
    metrics["approx_kl_old"] = token_metric(ratio - 1.0 - log_ratio)
    metrics["clip_frac_low"] = token_metric(low_clipped.astype(jnp.float32))
    metrics["clip_frac_high"] = token_metric(high_clipped.astype(jnp.float32))
    if dual_clipped is not None:
        metrics["dual_clip_frac"] = token_metric(dual_clipped.astype(jnp.float32))
    return PolicyLoss(loss_sum, denominator, metrics)
