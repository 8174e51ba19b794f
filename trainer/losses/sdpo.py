"""SDPO self-distillation loss (Hübotter et al., "Reinforcement Learning via Self-Distillation",
arXiv 2601.20802), the objective PMD trains with (see DESIGN.md §1 "The loss").

For every sampled response token y_t of rollout y for prompt x::

    p_s = π_θ(· | x, y_<t)           student (gets the gradient)
    p_T = π_τ(· | c(x), y_<t)        self-teacher with context c(x), no gradient

    loss = Σ_i Σ_t m_i · mask_it · w_it · D_α(p_s, p_T)  /  Σ_i Σ_t m_i · mask_it

with D_α the α-divergence below, m_i = 1 when the teacher context carries any signal for sample i,
and w_t = sg(min(p_s(y_t) / p_old(y_t), is_clip)) the clipped importance weight when the rollout
policy differs from the current one. The top-K approximation (student's top-K ids, both
distributions gathered there, plus one tail bucket each) follows SDPO's reference code
(lasgroup/SDPO, ``compute_self_distillation_loss``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# The top-K mass is clamped to at most exp(-1e-7) before taking log(1 - mass), as SDPO's reference
# code does: the tail log-prob is then >= log(1 - exp(-1e-7)) ≈ -16.12, never -inf or NaN, and its
# gradient stays finite even when the top-K ids hold (numerically) all of the probability mass.
TAIL_LOGSUMEXP_MAX = -1e-7
# log(p_s / p_old) is clamped to [-20, 20] before exp so the weight cannot overflow (then min'd).
_LOG_RATIO_BOUND = 20.0


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of -log 2 (Mächler, 2012)."""
    return torch.where(
        x > -math.log(2.0),
        torch.log(-torch.expm1(x)),
        torch.log1p(-torch.exp(x)),
    )


def topk_with_tail(
    student_logprobs: torch.Tensor, teacher_logprobs: torch.Tensor, k: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-K distillation support: the student's top-k ids plus one tail bucket.

    Inputs are log-probabilities (log_softmax of logits), ``[B, T, V]``. At each position the
    student's k most likely token ids are taken; both distributions are gathered there and a last
    bucket log(1 − Σ_topk p) is appended to each, so each output is again a distribution over k + 1
    outcomes: ``[B, T, k+1]``. The tail is computed as log1mexp(min(logsumexp(topk), −1e-7)); see
    ``TAIL_LOGSUMEXP_MAX``. ``k=None`` or ``k >= V`` returns the full distributions unchanged.
    Gradients flow through the gathered values and the tail, not through the choice of ids.
    """
    if student_logprobs.shape != teacher_logprobs.shape:
        raise ValueError(
            f"student and teacher log-probs differ in shape: "
            f"{tuple(student_logprobs.shape)} vs {tuple(teacher_logprobs.shape)}"
        )
    vocab = student_logprobs.shape[-1]
    if k is None or k >= vocab:
        return student_logprobs, teacher_logprobs
    if k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {k}")
    ids = student_logprobs.detach().topk(k, dim=-1).indices  # [B, T, k]
    s_top = student_logprobs.gather(-1, ids)  # [B, T, k]
    t_top = teacher_logprobs.gather(-1, ids)  # [B, T, k]
    return append_tail(s_top), append_tail(t_top)


def append_tail(top: torch.Tensor) -> torch.Tensor:
    """``[..., k]`` log-probs of k outcomes -> ``[..., k+1]`` with the tail log(1 − Σ p) appended,
    computed as log1mexp(min(logsumexp(top), −1e-7)) (see ``TAIL_LOGSUMEXP_MAX``)."""
    mass = torch.logsumexp(top, dim=-1, keepdim=True).clamp(max=TAIL_LOGSUMEXP_MAX)  # [..., 1]
    return torch.cat([top, _log1mexp(mass)], dim=-1)  # [..., k+1]


def _kl(p_logp: torch.Tensor, q_logp: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) = Σ p (log p − log q) over the last dim; terms with p = 0 count 0."""
    p = p_logp.exp()
    terms = torch.where(p > 0, p * (p_logp - q_logp), torch.zeros_like(p))
    return terms.sum(-1)


def alpha_divergence(s_logp: torch.Tensor, t_logp: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-token D_α between student p_s and teacher p_T, given log-probs over the same support.

    As DESIGN.md §1 (and SDPO's reference code) define it, literally, including at the edges::

        α = 0        forward KL   KL(p_T ‖ p_s)
        α = 1        reverse KL   KL(p_s ‖ p_T)
        0 < α < 1    generalized JSD  (1−α)·KL(p_s ‖ M) + α·KL(p_T ‖ M),  M = (1−α)·p_s + α·p_T

    (the JSD tends to 0, not to a KL, as α → 0 or 1; the edges are the named KLs by definition).
    log M = logsumexp(log(1−α) + log p_s, log α + log p_T) for stability.
    ``s_logp``, ``t_logp``: ``[B, T, K]`` → ``[B, T]``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if alpha == 0.0:
        return _kl(t_logp, s_logp)  # [B, T]
    if alpha == 1.0:
        return _kl(s_logp, t_logp)  # [B, T]
    log_m = torch.logsumexp(
        torch.stack([s_logp + math.log(1.0 - alpha), t_logp + math.log(alpha)]), dim=0
    )  # [B, T, K]
    return (1.0 - alpha) * _kl(s_logp, log_m) + alpha * _kl(t_logp, log_m)  # [B, T]


def sdpo_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    sampled_ids: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    alpha: float = 0.5,
    top_k: int | None = 100,
    old_logprobs: torch.Tensor | None = None,
    sample_weights: torch.Tensor | None = None,
    is_clip: float | None = 2.0,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SDPO loss Σ m_i·mask·w_t·D_α / Σ m_i·mask (module docstring; arXiv 2601.20802).

    Args:
        student_logits: ``[B, T, V]``; ``student_logits[:, t]`` predicts ``sampled_ids[:, t]``.
        teacher_logits: ``[B, T, V]``, same positions; detached here (the teacher gets no gradient).
        sampled_ids: ``[B, T]`` the rollout tokens y_t.
        response_mask: ``[B, T]`` 1 on the student's own response tokens.
        alpha: divergence (0 forward KL, 1 reverse KL, else generalized JSD); see alpha_divergence.
        top_k: student top-K ids plus a tail bucket; None (or >= V) distils the full distributions.
        old_logprobs: ``[B, T]`` log p_old(y_t) of the rollout policy, or None (then w_t = 1).
        sample_weights: ``[B]`` m_i, default all ones.
        is_clip: upper clip of the importance weight; None leaves it unclipped.
        temperature: both models' logits are divided by it before the log-softmax (the sampling
            temperature, as SDPO's reference does), so p_s is the distribution sampled from.

    Log-softmax runs in float32 whatever the input dtype. When Σ m_i·mask = 0 the loss is 0 and
    still attached to the student's graph (its gradient is zero, never NaN).

    Returns:
        ``(loss, stats)``; stats are Python floats over active tokens (m_i·mask > 0):
        ``divergence`` (mean D_α), ``active_tokens``, ``is_weight_mean``, ``is_clip_frac``,
        ``teacher_logprob`` and ``student_logprob`` (mean log-prob of y_t).
    """
    if student_logits.dim() != 3 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student/teacher logits must both be [B, T, V]; got {tuple(student_logits.shape)} "
            f"and {tuple(teacher_logits.shape)}"
        )
    bt = student_logits.shape[:2]
    if sampled_ids.shape != bt or response_mask.shape != bt:
        raise ValueError(
            f"sampled_ids {tuple(sampled_ids.shape)} and response_mask "
            f"{tuple(response_mask.shape)} must be [B, T] = {tuple(bt)}"
        )
    if old_logprobs is not None and old_logprobs.shape != bt:
        raise ValueError(f"old_logprobs must be [B, T] = {tuple(bt)}, got {tuple(old_logprobs.shape)}")

    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    s_full = F.log_softmax(student_logits.float() / temperature, dim=-1)  # [B, T, V]
    t_full = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)  # [B, T, V]
    ids = sampled_ids.long().unsqueeze(-1)  # [B, T, 1]
    s_tok = s_full.gather(-1, ids).squeeze(-1)  # [B, T]  log p_s(y_t)
    t_tok = t_full.gather(-1, ids).squeeze(-1)  # [B, T]  log p_T(y_t)

    s_sup, t_sup = topk_with_tail(s_full, t_full, top_k)  # [B, T, K(+1)]
    div = alpha_divergence(s_sup, t_sup, alpha)  # [B, T]

    mask = response_mask.to(device=div.device, dtype=torch.float32)  # [B, T]
    if sample_weights is None:
        m = torch.ones(bt[0], device=div.device, dtype=torch.float32)  # [B]
    else:
        if sample_weights.shape != bt[:1]:
            raise ValueError(f"sample_weights must be [B] = [{bt[0]}], got {tuple(sample_weights.shape)}")
        m = sample_weights.to(device=div.device, dtype=torch.float32)  # [B]
    weight = m.unsqueeze(-1) * mask  # [B, T]

    with torch.no_grad():
        if old_logprobs is None:
            raw_ratio = torch.ones_like(s_tok)  # [B, T]
        else:
            log_ratio = (s_tok - old_logprobs.float()).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND)
            raw_ratio = log_ratio.exp()  # [B, T]
        is_w = raw_ratio if is_clip is None else raw_ratio.clamp(max=is_clip)  # [B, T] stop-grad

    denom = weight.sum()
    num = (weight * is_w * div).sum()
    loss = num / torch.where(denom > 0, denom, torch.ones_like(denom))  # 0 (num = 0) when empty

    with torch.no_grad():
        active = weight > 0  # [B, T]
        n = int(active.sum().item())

        def mean(x: torch.Tensor) -> float:
            return float(x[active].mean().item()) if n else 0.0

        stats = {
            "divergence": mean(div),
            "active_tokens": float(n),
            "is_weight_mean": mean(is_w),
            "is_clip_frac": mean((raw_ratio > is_clip).float()) if is_clip is not None else 0.0,
            "teacher_logprob": mean(t_tok),
            "student_logprob": mean(s_tok),
        }
    return loss, stats
