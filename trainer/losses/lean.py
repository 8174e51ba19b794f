"""Memory-lean forms of the SDPO and GRPO objectives: the LM head runs a chunk of positions at a
time, so no ``[B, T, V]`` logits tensor (or its float32 log-softmax, or their gradients) ever
exists. The readable reference forms stay in ``sdpo.py`` / ``grpo.py``; these compute the same
values and gradients (tests hold them within 1e-5 of the reference for any chunk size, every α,
top-K and full-vocabulary mode).

The technique is the fused linear + loss of Liger Kernel's ``FusedLinearCrossEntropy`` and
torchtune's chunked cross-entropy. With h the final hidden states of the N active response
positions (``[N, H]``) and W the LM head (``[V, H]``), the logits z = h Wᵀ are only ever formed
for C = ``chunk_tokens`` rows:

SDPO (``lean_sdpo_loss``). The loss is a sum over tokens, L = Σ_n c_n · D_α(p_s,n, p_T,n) / Z with
c_n = m_i · mask · w_n (w_n the stop-gradient importance weight) and Z the normalizer. Because L
is a scalar, its gradient can be computed *in the forward pass*, chunk by chunk, and kept:

    for each chunk of rows r:   s_r = log_softmax(h_r Wᵀ)  (float32)   [C, V]
                                ℓ_r = Σ_{n ∈ r} c_n · D_α(...)         (the reference per-token math)
                                g_z = ∂ℓ_r/∂z_r                         [C, V], in s_r's buffer
                                ∂ℓ_r/∂h_r = g_z W  → rows r of ∂L/∂h   [C, H]
                                ∂ℓ_r/∂W  += g_zᵀ h_r                   [V, H]

and the backward pass only multiplies the stored gradients by the incoming scalar
(``_StoredGradient``). The divergence itself is ``sdpo.alpha_divergence`` and ``sdpo.append_tail``
on the chunk's top-K values. LM-head matmuls: one forward and two gradient products for the
student, one forward for the teacher — the same count as the reference; the working memory is
about three float32 ``[C, V]`` buffers plus the ``[V, H]`` gradient every method produces.

GRPO (``lean_grpo_loss``). GRPO needs only log p(y_n) = z_n[y_n] − logsumexp(z_n), but its loss
is not a token sum (per-sequence means, ratios, clipping). So the log-probs are computed chunk by
chunk without a graph, the reference ``grpo_loss`` runs unchanged on them (a ``[B, T]`` leaf), and
its gradient g_n = ∂L/∂log p(y_n) is pushed through the LM head, recomputing each chunk's logits:

    g_z = g_n · (onehot(y_n) − softmax(z_n)),   ∂/∂h_r = g_z W,   ∂/∂W += g_zᵀ h_r

(``lean_token_logprobs`` is the same as an autograd function whose backward recomputes the logits;
the trainer uses it for the reference model, without gradient.)

Under ZeRO-3 the LM head's weight is a partitioned placeholder outside its module's forward;
``trainer.sequences.head_weight`` gathers it around the loss (a collective every rank joins).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from trainer.losses.grpo import grpo_loss
from trainer.losses.sdpo import _LOG_RATIO_BOUND, alpha_divergence, append_tail


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    if size < 1:
        raise ValueError(f"chunk_tokens must be at least 1, got {size}")
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _check_heads(hidden: torch.Tensor, weight: torch.Tensor, name: str) -> None:
    if hidden.dim() != 3:
        raise ValueError(f"{name} hidden states must be [B, T, H], got {tuple(hidden.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"{name} head weight must be [V, H={hidden.shape[-1]}], got {tuple(weight.shape)}")


class _StoredGradient(torch.autograd.Function):
    """A zero scalar whose backward hands (h, W) gradients computed in the forward pass, times the
    incoming gradient. Lets the LM head's weight be released before the backward pass (ZeRO-3)."""

    @staticmethod
    def forward(ctx, h, w, grad_h, grad_w):
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = w.dtype
        return torch.zeros((), dtype=torch.float32, device=h.device)

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        # In place: a second [V, H] buffer here would double the loss's peak (the Function runs once).
        return grad_h.mul_(grad_out.to(grad_h.dtype)), grad_w.mul_(grad_out.to(grad_w.dtype)), None, None


def _log_softmax_(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """float32 log-softmax of logits / temperature over the last dim, in one buffer: ``[C, V]``.
    Takes ownership of ``logits`` (the caller passes a temporary)."""
    out = logits.float()  # a copy when logits are bf16; float32 logits are taken over (in place)
    del logits  # the bf16 logits can go before the float32 work
    if temperature != 1.0:
        out.div_(temperature)
    return out.sub_(torch.logsumexp(out, dim=-1, keepdim=True))


def _distill_chunks(h_s, w_s, h_t, w_t, ids, coef, old, alpha, top_k, is_clip, chunk_tokens, want_grad,
                    temperature=1.0):
    """Σ_n c_n · D_α over chunks of rows, and (``want_grad``) its gradient w.r.t. h_s and W_s.

    Per chunk, with s = log_softmax(z / τ), z = h_s Wᵀ, τ the temperature (``[C, V]`` float32, one
    buffer reused in place):

    1. the student's top-K ids and log-probs s_top (``[C, K]``), the teacher's t_top at the same ids
       and both tails (``sdpo.append_tail``), the per-token D_α (``sdpo.alpha_divergence``) — the
       reference math on ``[C, K+1]``; in full-vocabulary mode on ``[C, V]``;
    2. g = ∂ℓ/∂s by local autograd on those small tensors (sparse: only the top-K columns);
    3. ∂ℓ/∂z_k = (g_k − softmax(z/τ)_k · Σ_j g_j) / τ (the log-softmax Jacobian), into the buffer;
    4. ∂/∂h = g_z W and ∂/∂W += g_zᵀ h (``addmm_`` into the weight-dtype accumulator, as Liger Kernel's
       fused linear cross-entropy accumulates).

    Returns ``(total, per_token [N, 5] = (D, w, raw ratio, log p_s(y), log p_T(y)), grad_h, grad_w)``.
    """
    n, vocab = h_s.shape[0], w_s.shape[0]
    grad_h = torch.zeros_like(h_s) if want_grad else None  # [N, H]
    grad_w = torch.zeros_like(w_s) if want_grad else None  # [V, H]
    total = torch.zeros((), dtype=torch.float32, device=h_s.device)
    per_token = torch.zeros((n, 5), dtype=torch.float32, device=h_s.device)
    full = top_k is None or top_k >= vocab
    for a, b in _chunks(n, chunk_tokens):
        tok = ids[a:b].unsqueeze(-1)  # [C, 1]
        s_full = _log_softmax_(F.linear(h_s[a:b], w_s), temperature)  # [C, V]
        t_full = _log_softmax_(F.linear(h_t[a:b], w_t), temperature)  # [C, V]
        s_tok = s_full.gather(-1, tok).squeeze(-1)  # [C]
        t_tok = t_full.gather(-1, tok).squeeze(-1)  # [C]
        if old is None:
            raw = torch.ones_like(s_tok)  # [C]
        else:
            raw = (s_tok - old[a:b]).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND).exp()  # [C]
        is_w = raw if is_clip is None else raw.clamp(max=is_clip)  # [C]
        if full:
            s_leaf, t_sup, top = s_full.requires_grad_(want_grad), t_full, None  # [C, V]
            s_sup_of = lambda leaf: leaf  # noqa: E731
        else:
            top = s_full.topk(top_k, dim=-1).indices  # [C, K]
            s_leaf = s_full.gather(-1, top).requires_grad_(want_grad)  # [C, K]
            t_sup = append_tail(t_full.gather(-1, top))  # [C, K+1]
            s_sup_of = append_tail
            del t_full
        with torch.enable_grad():
            div = alpha_divergence(s_sup_of(s_leaf), t_sup, alpha)  # [C]
            part = (coef[a:b] * is_w * div).sum()
            g_s = torch.autograd.grad(part, s_leaf)[0] if want_grad else None  # [C, V] or [C, K]
        if want_grad:
            with torch.no_grad():
                if full:
                    g_z = s_full.detach().exp_().mul_(-g_s.sum(-1, keepdim=True)).add_(g_s)  # [C, V]
                else:
                    g_z = s_full.exp_().mul_(-g_s.sum(-1, keepdim=True))  # [C, V]  −softmax · Σ g
                    g_z.scatter_add_(-1, top, g_s)  # + g on the top-K columns
                if temperature != 1.0:
                    g_z.div_(temperature)
                g_z = g_z.to(w_s.dtype)
                grad_h[a:b] = g_z @ w_s
                grad_w.addmm_(g_z.transpose(0, 1), h_s[a:b])
        total += part.detach()
        per_token[a:b] = torch.stack([div.detach(), is_w, raw, s_tok, t_tok], dim=-1)
    return total, per_token, grad_h, grad_w


def lean_sdpo_loss(
    student_hidden: torch.Tensor,
    student_head: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_head: torch.Tensor,
    sampled_ids: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    alpha: float = 0.5,
    top_k: int | None = 100,
    old_logprobs: torch.Tensor | None = None,
    sample_weights: torch.Tensor | None = None,
    is_clip: float | None = 2.0,
    chunk_tokens: int = 1024,
    normalizer: float | torch.Tensor | None = None,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``sdpo.sdpo_loss`` from final hidden states and LM heads, a chunk of positions at a time.

    Args:
        student_hidden: ``[B, T, H]``; row t is the hidden state that predicts ``sampled_ids[:, t]``.
        student_head: ``[V, H]`` the student's LM-head weight (logits = h Wᵀ); gets a gradient.
        teacher_hidden, teacher_head: the same for the teacher; detached (no gradient).
        sampled_ids, response_mask, alpha, top_k, old_logprobs, sample_weights, is_clip,
            temperature: as in ``sdpo_loss``.
        chunk_tokens: active positions per LM-head chunk; memory ∝ chunk_tokens · V.
        normalizer: Z in Σ c·D / Z; default Σ m_i·mask of this call (then equal to ``sdpo_loss``).
            The training loop passes the active-token count of the whole step, across micro batches
            and processes, so the step's gradient is one token mean however it is split.

    Returns ``(loss, stats)`` with ``sdpo_loss``'s stats keys. Only active positions
    (m_i·mask > 0) reach the LM head; the others contribute nothing, as in the reference.
    """
    _check_heads(student_hidden, student_head, "student")
    _check_heads(teacher_hidden, teacher_head, "teacher")
    bt = student_hidden.shape[:2]
    if teacher_hidden.shape[:2] != bt or sampled_ids.shape != bt or response_mask.shape != bt:
        raise ValueError(f"teacher_hidden {tuple(teacher_hidden.shape)}, sampled_ids {tuple(sampled_ids.shape)} and "
                         f"response_mask {tuple(response_mask.shape)} must match [B, T] = {tuple(bt)}")
    if student_head.shape[0] != teacher_head.shape[0]:
        raise ValueError(f"student and teacher vocabularies differ: {student_head.shape[0]} vs {teacher_head.shape[0]}")
    if old_logprobs is not None and old_logprobs.shape != bt:
        raise ValueError(f"old_logprobs must be [B, T] = {tuple(bt)}, got {tuple(old_logprobs.shape)}")
    device = student_hidden.device
    mask = response_mask.to(device=device, dtype=torch.float32)  # [B, T]
    if sample_weights is None:
        m = torch.ones(bt[0], device=device, dtype=torch.float32)  # [B]
    else:
        if sample_weights.shape != bt[:1]:
            raise ValueError(f"sample_weights must be [B] = [{bt[0]}], got {tuple(sample_weights.shape)}")
        m = sample_weights.to(device=device, dtype=torch.float32)  # [B]
    weight = m.unsqueeze(-1) * mask  # [B, T]
    active = weight > 0  # [B, T]
    want_grad = torch.is_grad_enabled() and (student_hidden.requires_grad or student_head.requires_grad)

    h_s = student_hidden[active]  # [N, H]
    total, per_token, grad_h, grad_w = _distill_chunks(
        h_s.detach(), student_head.detach(), teacher_hidden.detach()[active], teacher_head.detach(),
        sampled_ids[active].long(), weight[active], None if old_logprobs is None else old_logprobs[active].float(),
        alpha, top_k, is_clip, chunk_tokens, want_grad, temperature,
    )  # scalar, [N, 5]
    if want_grad:
        total = total + _StoredGradient.apply(h_s, student_head, grad_h, grad_w)
    denom = weight.sum() if normalizer is None else torch.as_tensor(normalizer, dtype=torch.float32, device=device)
    loss = total / torch.where(denom > 0, denom, torch.ones_like(denom))

    n = per_token.shape[0]
    means = per_token.mean(0).tolist() if n else [0.0] * 5
    clip_frac = float((per_token[:, 2] > is_clip).float().mean()) if n and is_clip is not None else 0.0
    stats = {
        "divergence": means[0],
        "active_tokens": float(n),
        "is_weight_mean": means[1],
        "is_clip_frac": clip_frac,
        "teacher_logprob": means[4],
        "student_logprob": means[3],
    }
    return loss, stats


def _chunked_logprobs(h: torch.Tensor, w: torch.Tensor, ids: torch.Tensor, chunk_tokens: int,
                      temperature: float = 1.0):
    """log p(y_n) and logsumexp(u_n), u = h Wᵀ / τ, of rows ``[N, H]``, a chunk at a time (no graph)."""
    n = h.shape[0]
    lse = torch.empty(n, dtype=torch.float32, device=h.device)  # [N]
    logp = torch.empty(n, dtype=torch.float32, device=h.device)  # [N]
    with torch.no_grad():
        for a, b in _chunks(n, chunk_tokens):
            z = F.linear(h[a:b], w).float() / temperature  # [C, V]
            lse[a:b] = torch.logsumexp(z, dim=-1)
            logp[a:b] = z.gather(-1, ids[a:b].unsqueeze(-1)).squeeze(-1) - lse[a:b]
    return logp, lse


def _logprob_backward(h, w, ids, lse, grad_logp, chunk_tokens: int, need_h: bool = True, need_w: bool = True,
                      temperature: float = 1.0):
    """∂/∂h and ∂/∂W of Σ_n g_n · log p(y_n), p = softmax(z / τ), recomputing each chunk's logits::

        g_z = g_n · (onehot(y_n) − softmax(z_n / τ)) / τ,   ∂/∂h_r = g_z W,   ∂/∂W = Σ_r g_zᵀ h_r
    """
    grad_h = torch.zeros_like(h) if need_h else None  # [N, H]
    grad_w = torch.zeros_like(w) if need_w else None  # [V, H]
    with torch.no_grad():
        for a, b in _chunks(h.shape[0], chunk_tokens):
            g = grad_logp[a:b].float()  # [C]
            z = F.linear(h[a:b], w).float() / temperature  # [C, V]
            g_z = -g.unsqueeze(-1) * torch.exp(z - lse[a:b].unsqueeze(-1))  # [C, V]  −g · softmax
            g_z.scatter_add_(-1, ids[a:b].unsqueeze(-1), g.unsqueeze(-1))  # + g · onehot(y)
            g_z = (g_z / temperature if temperature != 1.0 else g_z).to(w.dtype)
            if grad_h is not None:
                grad_h[a:b] = g_z @ w
            if grad_w is not None:
                grad_w.addmm_(g_z.transpose(0, 1), h[a:b])
    return grad_h, grad_w


class _ChunkedTokenLogprob(torch.autograd.Function):
    """log p(y_n) over chunks; the backward recomputes the logits (needs W in the backward)."""

    @staticmethod
    def forward(ctx, h, w, ids, chunk_tokens, temperature):
        logp, lse = _chunked_logprobs(h, w, ids, chunk_tokens, temperature)
        ctx.save_for_backward(h, w, ids, lse)
        ctx.chunk_tokens, ctx.temperature = chunk_tokens, temperature
        return logp

    @staticmethod
    def backward(ctx, grad_logp):
        h, w, ids, lse = ctx.saved_tensors
        grad_h, grad_w = _logprob_backward(h, w, ids, lse, grad_logp, ctx.chunk_tokens,
                                           ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.temperature)
        return grad_h, grad_w, None, None, None


def _rows(ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return torch.ones_like(ids, dtype=torch.bool) if mask is None else mask > 0  # [B, T]


def lean_token_logprobs(
    hidden: torch.Tensor, head: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor | None = None,
    *, chunk_tokens: int = 1024, temperature: float = 1.0,
) -> torch.Tensor:
    """``sequences.token_logprobs(h Wᵀ, ids)`` without the ``[B, T, V]`` logits.

    ``hidden`` ``[B, T, H]``, ``head`` ``[V, H]``, ``ids`` ``[B, T]``; with ``mask`` ``[B, T]`` only
    its positions reach the LM head (the others are 0). Returns float32 ``[B, T]``, differentiable
    w.r.t. ``hidden`` and ``head`` (the backward recomputes the logits, so ``head`` must still be
    whole then: use it for the no-gradient reference model, or outside ZeRO-3).
    """
    _check_heads(hidden, head, "policy")
    if ids.shape != hidden.shape[:2] or (mask is not None and mask.shape != ids.shape):
        raise ValueError(f"ids {tuple(ids.shape)} (and mask) must be [B, T] = {tuple(hidden.shape[:2])}")
    keep = _rows(ids, mask)
    rows = _ChunkedTokenLogprob.apply(hidden[keep], head, ids[keep].long(), chunk_tokens, temperature)  # [N]
    out = torch.zeros(ids.shape, dtype=torch.float32, device=hidden.device)  # [B, T]
    return out.masked_scatter(keep, rows)


def lean_grpo_loss(
    hidden: torch.Tensor,
    head: torch.Tensor,
    sampled_ids: torch.Tensor,
    response_mask: torch.Tensor,
    advantages: torch.Tensor,
    *,
    old_logprobs: torch.Tensor | None = None,
    clip_eps: float = 0.2,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    chunk_tokens: int = 1024,
    temperature: float = 1.0,
    rollout_logprobs: torch.Tensor | None = None,
    rollout_is_clip: float | None = 2.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``grpo.grpo_loss`` on the policy's log-probs, from hidden states and the LM head.

    The reference ``grpo_loss`` runs unchanged on the ``[B, T]`` log-probs (a detached leaf); its
    gradient g = ∂L/∂log p is then pushed through the LM head chunk by chunk inside the forward
    pass (``_logprob_backward``), so the backward needs neither the logits nor the head's weight.
    ``old_logprobs`` None: the rollout policy is the current one (ratio 1, on-policy).
    ``rollout_logprobs`` ``[B, T]``: log π_rollout(y_t) of another engine; each token's term is
    then weighted by ``rollout_is_weights`` (rollout correction). ``temperature``: as in SDPO.
    """
    _check_heads(hidden, head, "policy")
    bt = hidden.shape[:2]
    if sampled_ids.shape != bt or response_mask.shape != bt:
        raise ValueError(f"sampled_ids {tuple(sampled_ids.shape)} and response_mask {tuple(response_mask.shape)} "
                         f"must be [B, T] = {tuple(bt)}")
    keep = _rows(sampled_ids, response_mask)
    h, ids = hidden[keep], sampled_ids[keep].long()  # [N, H], [N]
    rows, lse = _chunked_logprobs(h.detach(), head.detach(), ids, chunk_tokens, temperature)  # [N]
    logp = torch.zeros(bt, dtype=torch.float32, device=hidden.device).masked_scatter(keep, rows)  # [B, T]
    leaf = logp.requires_grad_()
    old = logp.detach() if old_logprobs is None else old_logprobs
    with torch.enable_grad():
        weights = None if rollout_logprobs is None else rollout_is_weights(logp, rollout_logprobs, rollout_is_clip)
        loss, stats = grpo_loss(leaf, old, advantages, response_mask, clip_eps=clip_eps,
                                ref_logprobs=ref_logprobs, kl_coef=kl_coef, token_weights=weights)
    want_grad = torch.is_grad_enabled() and (hidden.requires_grad or head.requires_grad)
    if not want_grad:
        return loss.detach(), stats
    (g,) = torch.autograd.grad(loss, leaf)  # [B, T]
    grad_h, grad_w = _logprob_backward(h.detach(), head.detach(), ids, lse, g[keep], chunk_tokens,
                                       temperature=temperature)
    return loss.detach() + _StoredGradient.apply(h, head, grad_h, grad_w), stats


def rollout_is_weights(logprobs: torch.Tensor, rollout_logprobs: torch.Tensor, clip: float | None = 2.0) -> torch.Tensor:
    """Token-level truncated importance weight of rollout correction (SDPO reference, ``rollout_is:
    token``): w_t = min(π_θ(y_t) / π_rollout(y_t), clip), stop-gradient, ``[B, T]``. log-ratios are
    bounded to ±20 before exp, as in ``sdpo_loss``."""
    with torch.no_grad():
        ratio = (logprobs.float() - rollout_logprobs.float()).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND).exp()
        return ratio if clip is None else ratio.clamp(max=clip)
