"""Micro batches packed by token count (``loss.max_tokens_per_micro_batch``), as verl's
``ppo_max_token_len_per_gpu`` does, so a few long responses never exceed memory.

A micro batch runs as one left-padded tensor, so its cost is what the model actually sees:

    tokens(micro batch) = (number of sequences) × (longest prompt + response among them)

Samples are sorted by length (longest first) and filled greedily: a micro batch takes the next
sample while ``tokens`` stays within the budget and it holds fewer than ``loss.micro_batch_size``
sequences. Sorting keeps similar lengths together, so little of the budget goes to padding. A
single sequence longer than the budget gets a micro batch of its own (it cannot be split).

Under several processes every rank must run the same number of forward/backward passes (each
backward is a collective under ZeRO-2/3), so ``equalize`` splits the largest micro batches of the
ranks that have fewer until all have the maximum count; splitting never raises memory.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def padded_tokens(lengths: Sequence[int], members: Sequence[int]) -> int:
    """Tokens of the padded tensor a micro batch runs: sequences × longest sequence."""
    return len(members) * max((lengths[i] for i in members), default=0)


def pack_micro_batches(lengths: Sequence[int], max_sequences: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices of ``lengths`` grouped into micro batches.

    ``max_tokens`` None: consecutive groups of ``max_sequences`` in the given order (the old
    behaviour). Otherwise the length-sorted greedy packing of the module docstring; the order
    inside the result is deterministic (by length, then index).
    """
    if max_sequences < 1:
        raise ValueError(f"max_sequences must be at least 1, got {max_sequences}")
    order = list(range(len(lengths)))
    if max_tokens is None:
        return [order[i:i + max_sequences] for i in range(0, len(order), max_sequences)]
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1 or None, got {max_tokens}")
    order.sort(key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        if current is not None and len(current) < max_sequences and padded_tokens(lengths, current + [index]) <= max_tokens:
            current.append(index)
        else:
            batches.append([index])
    return batches


def equalize(batches: list[list[int]], count: int, lengths: Sequence[int]) -> list[list[int]]:
    """Split the micro batches with the most padded tokens in two until there are ``count``."""
    batches = [list(b) for b in batches]
    if count < len(batches):
        raise ValueError(f"cannot merge {len(batches)} micro batches into {count}")
    if count > sum(len(b) for b in batches):
        raise ValueError(f"{sum(len(b) for b in batches)} samples cannot fill {count} micro batches")
    while len(batches) < count:
        splittable = [i for i, b in enumerate(batches) if len(b) > 1]
        widest = max(splittable, key=lambda i: (padded_tokens(lengths, batches[i]), -i))
        batch = batches.pop(widest)
        half = len(batch) // 2
        batches[widest:widest] = [batch[:half], batch[half:]]
    return batches


def rank_micro_batches(lengths: Sequence[int], max_sequences: int, max_tokens: int | None,
                       world_size: int = 1) -> list[list[int]]:
    """This rank's micro batches, padded (by splitting) to the largest count over all ranks."""
    batches = pack_micro_batches(lengths, max_sequences, max_tokens)
    if world_size > 1:
        count = torch.tensor([len(batches)], dtype=torch.long)
        torch.distributed.all_reduce(count, op=torch.distributed.ReduceOp.MAX)
        batches = equalize(batches, int(count.item()), lengths)
    return batches
