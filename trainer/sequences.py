"""From rollouts to the tensors the losses take: one row per sample, response positions aligned.

The student scores its own sampled tokens y given its memory-free prompt x; the teacher scores the
same tokens given its context c(x). Both run ``prefix + response`` through the model and keep the
logits at the positions that predict the response tokens, so the two are aligned token by token:

    logits at position len(prefix) - 1 + t  predict  response[t],   t = 0 .. len(response) - 1
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass
class Sample:
    """One rollout with its verdict and the ids the losses need."""

    question_id: str
    group: int                      # index of its question within the step's batch
    prompt_ids: list[int]
    response_ids: list[int]
    text: str
    reward: float = 0.0
    passed: bool = False
    feedback: str = ""
    teacher_prompt_ids: list[int] | None = None
    has_signal: bool = True
    rollout_logprobs: list[float] | None = None   # log π_rollout(y_t) from the engine (vLLM), else None


@dataclass
class _Batch:
    """Left-padded ``prefix + response`` rows and where each response token's predictor sits."""

    input_ids: torch.Tensor     # [B, W]
    attention: torch.Tensor     # [B, W]
    position_ids: torch.Tensor  # [B, W]
    positions: torch.Tensor     # [B, T] index among the last T + 1 positions that predicts token t
    targets: torch.Tensor       # [B, T] response ids, 0-padded
    mask: torch.Tensor          # [B, T] 1 on real response tokens
    keep: int                   # T + 1: positions whose outputs are needed


def _batch(prefixes: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int, device) -> _Batch:
    inputs = [list(p) + list(r) for p, r in zip(prefixes, responses)]
    width = max(len(x) for x in inputs)
    input_ids = torch.full((len(inputs), width), pad_id, dtype=torch.long, device=device)
    attention = torch.zeros((len(inputs), width), dtype=torch.long, device=device)
    for row, ids in enumerate(inputs):
        input_ids[row, width - len(ids):] = torch.tensor(ids, device=device)
        attention[row, width - len(ids):] = 1
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    t_max = max(len(r) for r in responses)
    # Response token k of a row with n response tokens sits at width-n+k and is predicted by the
    # position before it: index t_max - n + k among the last t_max + 1 positions.
    positions = torch.zeros((len(inputs), t_max), dtype=torch.long, device=device)
    mask = torch.zeros((len(inputs), t_max), dtype=torch.float32, device=device)
    targets = torch.zeros((len(inputs), t_max), dtype=torch.long, device=device)
    for row, response in enumerate(responses):
        n = len(response)
        positions[row, :n] = torch.arange(t_max - n, t_max, device=device)
        mask[row, :n] = 1.0
        targets[row, :n] = torch.tensor(list(response), device=device)
    return _Batch(input_ids, attention, position_ids, positions, targets, mask, t_max + 1)


def _at_response(kept: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``[B, T+1, D]`` outputs at the last positions -> ``[B, T, D]`` at each token's predictor."""
    return torch.gather(kept, 1, positions.unsqueeze(-1).expand(-1, -1, kept.shape[-1]))


def response_logits(model, prefixes: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int):
    """Logits over the response tokens for each (prefix, response) pair.

    Rows are left-padded so every sequence ends at the same position; then only the last
    ``T + 1`` positions need logits (``logits_to_keep``), which skips the LM head over the prompt.
    Position ids count real tokens only, so padding does not shift RoPE positions.

    Returns ``logits`` ``[B, T, V]`` (T = longest response; float32), ``targets`` ``[B, T]`` (the
    response ids, 0-padded) and ``mask`` ``[B, T]`` (1 on real response tokens).
    """
    batch = _batch(prefixes, responses, pad_id, next(model.parameters()).device)
    # use_cache=False: a scoring forward must not build a KV cache (a no-gradient teacher forward
    # would otherwise keep one for the whole micro batch).
    kept = model(input_ids=batch.input_ids, attention_mask=batch.attention, position_ids=batch.position_ids,
                 logits_to_keep=batch.keep, use_cache=False).logits  # [B, T+1, V]
    return _at_response(kept, batch.positions).float(), batch.targets, batch.mask


def response_hidden(model, prefixes: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int):
    """Like ``response_logits`` but stops before the LM head: the final (normed) hidden states.

    The memory-lean losses apply the LM head themselves, a chunk of positions at a time. The model
    is still called whole (so DeepSpeed's hooks, gradient checkpointing and any wrapper behave as
    in a normal forward) with an empty ``logits_to_keep``, so its LM head runs on zero positions;
    a forward hook on the decoder takes its output.

    Returns ``hidden`` ``[B, T, H]`` (the model's dtype), ``targets`` ``[B, T]``, ``mask`` ``[B, T]``.
    """
    batch = _batch(prefixes, responses, pad_id, next(model.parameters()).device)
    captured: list[torch.Tensor] = []

    def take(_module, _args, output):
        captured.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

    handle = _unwrap(model).get_decoder().register_forward_hook(take)
    try:
        model(input_ids=batch.input_ids, attention_mask=batch.attention, position_ids=batch.position_ids,
              logits_to_keep=torch.zeros(0, dtype=torch.long, device=batch.input_ids.device), use_cache=False)
    finally:
        handle.remove()
    kept = captured[-1][:, -batch.keep:]  # [B, T+1, H]
    return _at_response(kept, batch.positions), batch.targets, batch.mask


@contextmanager
def head_weight(model) -> Iterator[torch.Tensor]:
    """The LM head's weight ``[V, H]``, whole for the duration of the block.

    Under ZeRO-3 the parameter is a partitioned placeholder outside its module's forward, so it
    is all-gathered (a collective: every rank enters the block) and released again on exit;
    gradients computed from it inside the block reach the parameter as usual. Otherwise the
    parameter itself.
    """
    weight = _unwrap(model).get_output_embeddings().weight
    if not hasattr(weight, "ds_id"):
        yield weight
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters([weight], modifier_rank=None):
        yield weight


def _unwrap(model):
    return getattr(model, "module", model)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(target) per position under softmax(logits / temperature): ``[B, T, V]`` logits,
    ``[B, T]`` ids -> ``[B, T]``."""
    return torch.log_softmax(logits.float() / temperature, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
