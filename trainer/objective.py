"""One micro batch's share of the step's loss, for SDPO/PMD and GRPO, lean or reference.

Normalisation. The gradient of a step is that of ONE mean over the whole step, however the step
is split into micro batches and processes:

    SDPO / PMD:  L = Σ_{all samples i of the step, all ranks} Σ_t m_i·mask_it·w_it·D_α,it  /  Z,
                 Z = Σ_i m_i · |y_i|       (active tokens of the step)
    GRPO:        L = −Σ_i mean_t(surrogate_it − β·KL_it)  /  S,
                 S = number of samples of the step with at least one response token

(``step_denominator`` computes Z or S, all-reduced over ranks.) A micro batch contributes its
partial sum over Z (or S). DeepSpeed then averages gradients over the R data-parallel ranks, so
each micro batch's loss is multiplied by R before ``engine.backward(..., scale_wrt_gas=False)``
and the caller owns the accumulation boundary (one ``engine.step()`` per step). The result equals
the gradient of L computed on one process with all samples in one micro batch (tested).

Lean or reference (``loss.logits_chunk_tokens``): > 0 runs the model to its final hidden states
and applies the LM head chunk by chunk inside ``trainer.losses.lean``; 0 forms the full
``[B, T, V]`` logits and calls the reference losses. Both give the same values and gradients.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch

from trainer.config import LossConfig
from trainer.losses.grpo import grpo_loss
from trainer.losses.lean import lean_grpo_loss, lean_sdpo_loss, lean_token_logprobs
from trainer.losses.sdpo import sdpo_loss
from trainer.sequences import Sample, head_weight, response_hidden, response_logits, token_logprobs


def step_denominator(samples: Sequence[Sample], algorithm: str, world_size: int = 1) -> float:
    """Z (active tokens, SDPO/PMD) or S (samples with a response, GRPO) over all ranks' samples."""
    if algorithm == "grpo":
        local = sum(1.0 for s in samples if s.response_ids)
    else:
        local = sum(float(len(s.response_ids)) for s in samples if s.has_signal)
    if world_size > 1:
        total = torch.tensor([local], dtype=torch.float64)
        torch.distributed.all_reduce(total)
        local = float(total.item())
    return local


def micro_batch_loss(
    student, teacher, reference, chunk: Sequence[Sample], advantages: torch.Tensor | None, *,
    algorithm: str, loss: LossConfig, pad_id: int, denominator: float, world_size: int = 1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``(loss for engine.backward, stats)`` of one micro batch (module docstring).

    ``advantages`` ``[len(chunk)]`` for GRPO; ``teacher`` for SDPO/PMD (no gradient); ``reference``
    optional (GRPO's KL). Stats carry ``loss``: the micro batch's own mean, as the reference
    functions define it, for logging.
    """
    prompts, responses = [s.prompt_ids for s in chunk], [s.response_ids for s in chunk]
    # Z / R: the micro batch's partial sum over this makes the step mean after DeepSpeed's
    # average over ranks (module docstring).
    share = max(denominator, 1e-12) / world_size
    lean = loss.logits_chunk_tokens > 0
    if algorithm == "grpo":
        ref_logp = None
        if lean:
            hidden, targets, mask = response_hidden(student, prompts, responses, pad_id)
            if reference is not None:
                ref_logp = _reference_logprobs(reference, prompts, responses, pad_id, targets, mask, loss)
            with head_weight(student) as head:
                own, stats = lean_grpo_loss(hidden, head, targets, mask, advantages.to(hidden.device),
                                            clip_eps=loss.clip_eps, ref_logprobs=ref_logp, kl_coef=loss.kl_coef,
                                            chunk_tokens=loss.logits_chunk_tokens)
        else:
            logits, targets, mask = response_logits(student, prompts, responses, pad_id)
            if reference is not None:
                ref_logp = _reference_logprobs(reference, prompts, responses, pad_id, targets, mask, loss)
            logp = token_logprobs(logits, targets)
            own, stats = grpo_loss(logp, logp.detach(), advantages.to(logp.device), mask, clip_eps=loss.clip_eps,
                                   ref_logprobs=ref_logp, kl_coef=loss.kl_coef)
        sequences = float((mask.sum(dim=1) > 0).sum())
        return own * (sequences / share), {"loss": float(own.detach()), **stats}

    teacher_prompts = [s.teacher_prompt_ids or s.prompt_ids for s in chunk]
    weights = torch.tensor([float(s.has_signal) for s in chunk])
    if lean:
        hidden, targets, mask = response_hidden(student, prompts, responses, pad_id)
        with torch.no_grad():
            teacher_hidden, _, _ = response_hidden(teacher, teacher_prompts, responses, pad_id)
        with head_weight(student) as head, (nullcontext(head) if teacher is student else head_weight(teacher)) as teacher_head:
            scaled, stats = lean_sdpo_loss(hidden, head, teacher_hidden, teacher_head, targets, mask,
                                           alpha=loss.alpha, top_k=loss.top_k, sample_weights=weights.to(hidden.device),
                                           is_clip=loss.is_clip, chunk_tokens=loss.logits_chunk_tokens,
                                           normalizer=share)
        own_mean = float(scaled.detach()) * share / max(stats["active_tokens"], 1.0)
        return scaled, {"loss": own_mean, **stats}
    logits, targets, mask = response_logits(student, prompts, responses, pad_id)
    with torch.no_grad():
        teacher_logits, _, _ = response_logits(teacher, teacher_prompts, responses, pad_id)
    own, stats = sdpo_loss(logits, teacher_logits, targets, mask, alpha=loss.alpha, top_k=loss.top_k,
                           sample_weights=weights.to(logits.device), is_clip=loss.is_clip)
    return own * (stats["active_tokens"] / share), {"loss": float(own.detach()), **stats}


def _reference_logprobs(reference, prompts, responses, pad_id, targets, mask, loss: LossConfig) -> torch.Tensor:
    """log π_ref(y_t) of GRPO's frozen reference model, no gradient, lean when the loss is."""
    with torch.no_grad():
        if loss.logits_chunk_tokens > 0:
            hidden, _, _ = response_hidden(reference, prompts, responses, pad_id)
            with head_weight(reference) as head:
                return lean_token_logprobs(hidden, head, targets, mask, chunk_tokens=loss.logits_chunk_tokens)
        logits, _, _ = response_logits(reference, prompts, responses, pad_id)
        return token_logprobs(logits, targets)
