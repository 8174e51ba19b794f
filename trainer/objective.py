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
from trainer.losses.lean import lean_grpo_loss, lean_sdpo_loss, lean_token_logprobs, rollout_is_weights
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


def train_micro_batch(
    student, teacher, reference, chunk: Sequence[Sample], advantages: torch.Tensor | None, *,
    algorithm: str, loss: LossConfig, pad_id: int, denominator: float, world_size: int = 1, update: bool = True,
    temperature: float = 1.0,
) -> dict[str, float]:
    """Forward and (``update``) ``engine.backward`` of one micro batch; returns its stats.

    ``advantages`` ``[len(chunk)]`` for GRPO; ``teacher`` for SDPO/PMD (no gradient); ``reference``
    optional (GRPO's KL). Stats carry ``loss``: the micro batch's own mean, as the reference
    functions define it, for logging. ``temperature``: the sampling temperature, dividing the
    logits of every model in the loss. Samples carrying ``rollout_logprobs`` (another engine
    sampled them) get the truncated importance weight min(π_θ/π_rollout, ``loss.rollout_is_clip``).

    Lean loss: the models run to their final hidden states first; then the student's LM-head
    weight is taken whole (``head_weight``: gathered under ZeRO-3) for the loss AND the backward,
    because its gradient comes from the loss, not from the head module's own (empty) forward, so
    DeepSpeed's module hooks would not gather the weight when that gradient arrives.
    """
    # Z / R: the micro batch's partial sum over this makes the step mean after DeepSpeed's
    # average over ranks (module docstring).
    share = max(denominator, 1e-12) / world_size
    if loss.logits_chunk_tokens > 0:
        forward = _lean_forward(student, teacher, reference, chunk, algorithm, loss, pad_id, temperature)
        with head_weight(student) as head:
            scaled, stats = _lean_loss(forward, head, student, teacher, advantages, algorithm, loss, share, temperature)
            if update:
                student.backward(scaled, scale_wrt_gas=False)
        return stats
    scaled, stats = _reference_loss(student, teacher, reference, chunk, advantages, algorithm, loss, pad_id, share,
                                    temperature)
    if update:
        student.backward(scaled, scale_wrt_gas=False)
    return stats


def _rollout_logprobs(chunk, like: torch.Tensor) -> torch.Tensor | None:
    """``[B, T]`` log π_rollout(y_t), aligned with the response tokens; None when no sample has them."""
    if all(s.rollout_logprobs is None for s in chunk):
        return None
    out = torch.zeros(like.shape, dtype=torch.float32, device=like.device)
    for row, sample in enumerate(chunk):
        if sample.rollout_logprobs is None or len(sample.rollout_logprobs) != len(sample.response_ids):
            raise ValueError(f"sample of {sample.question_id}: rollout log-probs do not match its response tokens")
        out[row, :len(sample.rollout_logprobs)] = torch.tensor(sample.rollout_logprobs, device=like.device)
    return out


def _lean_forward(student, teacher, reference, chunk, algorithm: str, loss: LossConfig, pad_id: int,
                  temperature: float) -> dict:
    """The models' part of the lean loss: the student's final hidden states (with graph), and the
    teacher's hidden states or the GRPO reference's log-probs (no graph)."""
    prompts, responses = [s.prompt_ids for s in chunk], [s.response_ids for s in chunk]
    hidden, targets, mask = response_hidden(student, prompts, responses, pad_id)
    out = {"hidden": hidden, "targets": targets, "mask": mask, "teacher_hidden": None, "ref_logp": None,
           "weights": torch.tensor([float(s.has_signal) for s in chunk], device=hidden.device),
           "rollout_logp": _rollout_logprobs(chunk, targets)}
    if algorithm == "grpo":
        if reference is not None:
            out["ref_logp"] = _reference_logprobs(reference, prompts, responses, pad_id, targets, mask, loss, temperature)
    else:
        with torch.no_grad():
            out["teacher_hidden"], _, _ = response_hidden(
                teacher, [s.teacher_prompt_ids or s.prompt_ids for s in chunk], responses, pad_id)
    return out


def _lean_loss(forward: dict, head: torch.Tensor, student, teacher, advantages, algorithm: str, loss: LossConfig,
               share: float, temperature: float) -> tuple[torch.Tensor, dict[str, float]]:
    hidden, targets, mask = forward["hidden"], forward["targets"], forward["mask"]
    if algorithm == "grpo":
        own, stats = lean_grpo_loss(hidden, head, targets, mask, advantages.to(hidden.device), clip_eps=loss.clip_eps,
                                    ref_logprobs=forward["ref_logp"], kl_coef=loss.kl_coef,
                                    chunk_tokens=loss.logits_chunk_tokens, temperature=temperature,
                                    rollout_logprobs=forward["rollout_logp"], rollout_is_clip=loss.rollout_is_clip)
        sequences = float((mask.sum(dim=1) > 0).sum())
        return own * (sequences / share), {"loss": float(own.detach()), **stats}
    # The teacher's head is needed in the forward only: released before the backward.
    with nullcontext(head) if teacher is student else head_weight(teacher) as teacher_head:
        scaled, stats = lean_sdpo_loss(hidden, head, forward["teacher_hidden"], teacher_head, targets, mask,
                                       alpha=loss.alpha, top_k=loss.top_k, sample_weights=forward["weights"],
                                       old_logprobs=forward["rollout_logp"], is_clip=loss.rollout_is_clip,
                                       chunk_tokens=loss.logits_chunk_tokens, normalizer=share, temperature=temperature)
    own_mean = float(scaled.detach()) * share / max(stats["active_tokens"], 1.0)
    return scaled, {"loss": own_mean, **stats}


def _reference_loss(student, teacher, reference, chunk, advantages, algorithm: str, loss: LossConfig, pad_id: int,
                    share: float, temperature: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The readable path: full ``[B, T, V]`` logits and the reference loss functions."""
    prompts, responses = [s.prompt_ids for s in chunk], [s.response_ids for s in chunk]
    logits, targets, mask = response_logits(student, prompts, responses, pad_id)
    rollout_logp = _rollout_logprobs(chunk, targets)
    if algorithm == "grpo":
        ref_logp = None if reference is None else \
            _reference_logprobs(reference, prompts, responses, pad_id, targets, mask, loss, temperature)
        logp = token_logprobs(logits, targets, temperature)
        weights = None if rollout_logp is None else rollout_is_weights(logp, rollout_logp, loss.rollout_is_clip)
        own, stats = grpo_loss(logp, logp.detach(), advantages.to(logp.device), mask, clip_eps=loss.clip_eps,
                               ref_logprobs=ref_logp, kl_coef=loss.kl_coef, token_weights=weights)
        sequences = float((mask.sum(dim=1) > 0).sum())
        return own * (sequences / share), {"loss": float(own.detach()), **stats}
    with torch.no_grad():
        teacher_logits, _, _ = response_logits(teacher, [s.teacher_prompt_ids or s.prompt_ids for s in chunk],
                                               responses, pad_id)
    weights = torch.tensor([float(s.has_signal) for s in chunk], device=logits.device)
    own, stats = sdpo_loss(logits, teacher_logits, targets, mask, alpha=loss.alpha, top_k=loss.top_k,
                           old_logprobs=rollout_logp, sample_weights=weights, is_clip=loss.rollout_is_clip,
                           temperature=temperature)
    return own * (stats["active_tokens"] / share), {"loss": float(own.detach()), **stats}


def _reference_logprobs(reference, prompts, responses, pad_id, targets, mask, loss: LossConfig,
                        temperature: float) -> torch.Tensor:
    """log π_ref(y_t) of GRPO's frozen reference model, no gradient, lean when the loss is."""
    with torch.no_grad():
        if loss.logits_chunk_tokens > 0:
            hidden, _, _ = response_hidden(reference, prompts, responses, pad_id)
            with head_weight(reference) as head:
                return lean_token_logprobs(hidden, head, targets, mask, chunk_tokens=loss.logits_chunk_tokens,
                                           temperature=temperature)
        logits, _, _ = response_logits(reference, prompts, responses, pad_id)
        return token_logprobs(logits, targets, temperature)
