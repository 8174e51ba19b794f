"""Generation that rank 0 asks for but every rank must run: policy reflection under ZeRO-3.

When ZeRO-3 partitions the policy across processes, every forward pass is a collective, so rank 0
cannot generate alone. ``CollectiveReflector`` (rank 0) broadcasts each generation request before
serving it; the other ranks sit in ``serve_generation`` during the memory phase, run the same
request in lockstep (``synced_gpus``), discard the text, and return when rank 0 says ``done``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def _broadcast(message):
    box = [message]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


class CollectiveReflector:
    """Rank 0's side: wraps a ``PolicyReflector`` whose model is partitioned across ranks."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.supports_prefill = getattr(inner, "supports_prefill", False)

    def generate(self, conversations: Sequence[list[dict]], max_new_tokens: int) -> list[str | None]:
        _broadcast(("generate", list(conversations), max_new_tokens))
        return self.inner.generate(conversations, max_new_tokens)

    def at_step(self, step: int) -> None:
        self.inner.at_step(step)  # the other ranks' mirrors are set by the loop itself

    def finish(self) -> None:
        """End the memory phase: releases the ranks waiting in ``serve_generation``."""
        _broadcast(("done", None, 0))


def serve_generation(inner) -> int:
    """Other ranks' side: run rank 0's generation requests until ``done``; returns how many."""
    served = 0
    while True:
        kind, conversations, max_new_tokens = _broadcast(None)
        if kind == "done":
            return served
        inner.generate(conversations, max_new_tokens)
        served += 1
