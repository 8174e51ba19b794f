"""GRPO baseline objective (Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical
Reasoning in Open Language Models", arXiv 2402.03300, §4.1).

Outcome supervision: every token of sample i of a question gets the group-normalized advantage
A_i = (r_i − mean(r_group)) / (std(r_group) + eps); the policy maximizes the clipped surrogate

    J = 1/G Σ_i 1/|o_i| Σ_t [ min(ρ_it A_i, clip(ρ_it, 1−ε, 1+ε) A_i) − β KL_it ],
    ρ_it = π_θ(o_it | q, o_<t) / π_old(o_it | q, o_<t),
    KL_it = π_ref/π_θ − log(π_ref/π_θ) − 1       (k3 estimator, unbiased and ≥ 0),

i.e. each sequence's tokens are averaged first, then sequences are averaged (the paper's
per-sequence normalization, not a token-level mean over the batch).
"""
from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """A = (r − mean_group) / (std_group + eps), ``[N]`` → ``[N]``.

    ``rewards`` holds N / group_size consecutive groups of J = group_size samples of one question.
    std is the unbiased (n − 1) sample standard deviation, as TRL's GRPOTrainer computes it. A group
    whose rewards are all equal carries no signal and gets exactly 0 (also when J = 1).
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be [N], got {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    r = rewards.float().view(-1, group_size)  # [N/J, J]
    mean = r.mean(dim=1, keepdim=True)  # [N/J, 1]
    if group_size > 1:
        std = r.std(dim=1, correction=1, keepdim=True)  # [N/J, 1]
    else:
        std = torch.zeros_like(mean)
    adv = (r - mean) / (std + eps)  # [N/J, J]
    flat = (r.amax(dim=1, keepdim=True) == r.amin(dim=1, keepdim=True))  # [N/J, 1]
    adv = torch.where(flat, torch.zeros_like(adv), adv)
    return adv.view(-1)  # [N]


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    clip_eps: float = 0.2,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    token_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Negative GRPO objective with per-sequence normalization (module docstring).

    Args:
        logprobs: ``[B, T]`` log π_θ(y_t) of the sampled tokens (carries the gradient).
        old_logprobs: ``[B, T]`` log π_old(y_t) of the rollout policy (treated as a constant).
        advantages: ``[B]`` per-sequence advantages (``[B, T]`` per-token ones are accepted too).
        response_mask: ``[B, T]`` 1 on response tokens.
        clip_eps: ε of the ratio clip.
        ref_logprobs: ``[B, T]`` log π_ref(y_t) or None; constant.
        kl_coef: β, weight of the k3 KL estimate exp(ref − logp) − (ref − logp) − 1.
        token_weights: ``[B, T]`` constant per-token weights multiplying each token's term, e.g. the
            truncated importance weight min(π_θ/π_rollout, c) of rollout correction; None: 1.

    loss = −mean over sequences of (mean over that sequence's active tokens of surrogate − β·KL).
    Sequences with no active token are left out of the mean; with none at all the loss is 0,
    still attached to the graph.

    Returns:
        ``(loss, stats)``; stats (Python floats, over active tokens unless said): ``ratio_mean``,
        ``clip_frac`` (share of tokens whose clipped term is the active one, i.e. ρ > 1+ε with
        A > 0 or ρ < 1−ε with A < 0, which then get no gradient), ``kl_mean`` (0 without a
        reference), ``advantage_mean`` (normalized like the loss: per sequence, then over sequences).
    """
    if logprobs.dim() != 2 or old_logprobs.shape != logprobs.shape or response_mask.shape != logprobs.shape:
        raise ValueError(
            f"logprobs, old_logprobs and response_mask must share one [B, T] shape; got "
            f"{tuple(logprobs.shape)}, {tuple(old_logprobs.shape)}, {tuple(response_mask.shape)}"
        )
    if kl_coef and ref_logprobs is None:
        raise ValueError("kl_coef > 0 needs ref_logprobs")
    b = logprobs.shape[0]
    if advantages.shape == (b,):
        adv = advantages.float().unsqueeze(-1).expand_as(logprobs)  # [B, T]
    elif advantages.shape == logprobs.shape:
        adv = advantages.float()  # [B, T]
    else:
        raise ValueError(f"advantages must be [B] or [B, T], got {tuple(advantages.shape)}")
    adv = adv.detach()

    logp = logprobs.float()  # [B, T]
    ratio = torch.exp(logp - old_logprobs.detach().float())  # [B, T]
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)  # [B, T]
    surrogate = torch.minimum(ratio * adv, clipped * adv)  # [B, T]
    if ref_logprobs is not None:
        d = ref_logprobs.detach().float() - logp  # [B, T]
        kl = torch.exp(d) - d - 1.0  # [B, T]  k3 estimator
    else:
        kl = torch.zeros_like(logp)
    per_token = surrogate - kl_coef * kl  # [B, T]
    if token_weights is not None:
        if token_weights.shape != logp.shape:
            raise ValueError(f"token_weights must be [B, T] = {tuple(logp.shape)}, got {tuple(token_weights.shape)}")
        per_token = per_token * token_weights.detach().float()

    mask = response_mask.to(dtype=torch.float32, device=logp.device)  # [B, T]
    lengths = mask.sum(dim=1)  # [B]
    has_tokens = lengths > 0  # [B]
    safe_len = torch.where(has_tokens, lengths, torch.ones_like(lengths))  # [B]
    n_seq = has_tokens.sum()
    safe_n = torch.where(n_seq > 0, n_seq, torch.ones_like(n_seq)).float()

    def seq_mean(x: torch.Tensor) -> torch.Tensor:  # [B, T] -> scalar
        return ((x * mask).sum(dim=1) / safe_len).sum() / safe_n

    loss = -seq_mean(per_token)

    with torch.no_grad():
        active = mask > 0  # [B, T]
        n_tok = int(active.sum().item())

        def tok_mean(x: torch.Tensor) -> float:
            return float(x[active].mean().item()) if n_tok else 0.0

        is_clipped = ((ratio > 1.0 + clip_eps) & (adv > 0)) | ((ratio < 1.0 - clip_eps) & (adv < 0))
        stats = {
            "ratio_mean": tok_mean(ratio),
            "clip_frac": tok_mean(is_clipped.float()),
            "kl_mean": tok_mean(kl),
            "advantage_mean": float(seq_mean(adv).item()),
        }
    return loss, stats
