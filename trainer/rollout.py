"""Rollouts with Hugging Face generation: J sampled answers per chat prompt, batched, KV-cached.

The student answers with no memory in its prompt; ``messages`` are chat turns that the model's own
chat template turns into text, so the same code serves Qwen3, OLMo and the tiny test models.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 16


def chat_prompt(tokenizer, messages: Sequence[dict]) -> str:
    """The model's chat template applied to ``messages``, ready for the assistant's turn."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def chat_ids(tokenizer, messages: Sequence[dict]) -> list[int]:
    """Token ids of ``chat_prompt`` (the template already holds any special tokens)."""
    return tokenizer(chat_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]


@dataclass(frozen=True)
class Rollout:
    """One sampled answer: its token ids (through the first end-of-turn token, which the student
    must learn to emit) and its decoded text (special tokens removed)."""

    response_ids: tuple[int, ...]
    text: str
    # log π_rollout(y_t) of each response token under the distribution sampled from, when the
    # engine reports it (vLLM); None from the HF engine, whose policy is the trainer's own.
    logprobs: tuple[float, ...] | None = None


def _trim(ids: list[int], stop_ids: set[int], pad_id: int | None) -> list[int]:
    for position, token in enumerate(ids):
        if token in stop_ids:
            return ids[:position + 1]
    return [t for t in ids if t != pad_id] if pad_id not in stop_ids else ids


@torch.no_grad()
def generate_rollouts(
    model, tokenizer, prompt_ids: Sequence[Sequence[int]], num_samples: int, sampling: SamplingConfig,
    seed: int = 0, synced_gpus: bool = False, prompt_seeds: Sequence[int] | None = None,
) -> list[list[Rollout]]:
    """``num_samples`` sampled completions for each tokenized prompt.

    Seeding: each generation batch starts from ``torch.manual_seed``: ``seed``, or with
    ``prompt_seeds`` (one per prompt) the seed of the batch's first prompt. Seeds that follow the
    question rather than the process make a question's samples the same on 1 or N processes when
    a batch holds one question's samples (``batch_size == num_samples``; a vLLM engine seeds every
    prompt on its own, whatever the batch).

    ``synced_gpus`` keeps ranks in lockstep until all have finished: required when ZeRO-3
    partitions the weights across processes (every forward is a collective); otherwise each
    process generates on its own.

    Prompts are left-padded so every row's new tokens start at the same position; each prompt is
    repeated ``num_samples`` times inside the batch rather than using ``num_return_sequences`` so the
    batch size bounds memory exactly.
    """
    if prompt_seeds is not None and len(prompt_seeds) != len(prompt_ids):
        raise ValueError(f"{len(prompt_seeds)} prompt seeds for {len(prompt_ids)} prompts")
    if hasattr(model, "generate_rollouts"):  # another rollout engine (trainer.vllm_engine.VLLMEngine)
        return model.generate_rollouts(prompt_ids, num_samples, sampling, seed=seed, synced_gpus=synced_gpus,
                                       prompt_seeds=prompt_seeds)
    torch.manual_seed(seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop_ids = {tokenizer.eos_token_id}
    generation_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    stop_ids.update(generation_eos if isinstance(generation_eos, list) else [generation_eos])
    stop_ids.discard(None)
    flat = [list(p) for p in prompt_ids for _ in range(num_samples)]
    rollouts: list[Rollout] = []
    with _eval_mode(model):  # a training-mode model with activation checkpointing would drop the KV cache
        for start in range(0, len(flat), sampling.batch_size):
            if prompt_seeds is not None:
                torch.manual_seed(prompt_seeds[start // num_samples])
            rollouts.extend(_generate_batch(model, tokenizer, flat[start:start + sampling.batch_size], sampling,
                                            pad_id, stop_ids, synced_gpus))
    return [rollouts[i * num_samples:(i + 1) * num_samples] for i in range(len(prompt_ids))]


@contextmanager
def _eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _generate_batch(model, tokenizer, batch, sampling: SamplingConfig, pad_id, stop_ids, synced_gpus) -> list[Rollout]:
    width = max(len(p) for p in batch)
    input_ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in batch], device=model.device)
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=model.device)
    output = model.generate(
        input_ids=input_ids, attention_mask=attention, do_sample=True, temperature=sampling.temperature,
        # top_k=0: no top-k truncation (transformers otherwise applies its default of 50), so
        # rollouts come from the policy at the configured temperature and top-p only.
        top_k=0, top_p=sampling.top_p, max_new_tokens=sampling.max_new_tokens, pad_token_id=pad_id,
        eos_token_id=sorted(stop_ids),
        synced_gpus=synced_gpus,
    )
    rollouts = []
    for row in output[:, width:].tolist():
        ids = _trim(row, stop_ids, pad_id)
        rollouts.append(Rollout(tuple(ids), tokenizer.decode(ids, skip_special_tokens=True)))
    return rollouts


def sample_responses(
    model, tokenizer, prompts: Sequence[str], num_samples: int, sampling: SamplingConfig, seed: int = 0,
    synced_gpus: bool = False,
) -> list[list[str]]:
    """Texts of ``num_samples`` sampled completions for each already-templated prompt."""
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    groups = generate_rollouts(model, tokenizer, prompt_ids, num_samples, sampling, seed, synced_gpus)
    return [[r.text for r in group] for group in groups]
