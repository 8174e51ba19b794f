"""The memory block a model is given at evaluation time: retrieved entries, grouped by level.

The block sits in front of the question (at the start of the last user turn of a chat prompt, or
at the start of a plain-text prompt) and is fenced by ``<memory>`` / ``</memory>`` so that a
person reading a logged prompt sees at once what came from the bank, and so that a prompt that
already carries a block is never given a second one::

    <memory>
    Skills and mistakes to avoid from related questions:
    - [skill] Convert all quantities to SI units before combining them.
    Notes from earlier attempts at similar questions:
    - [lesson] Check which option matches the unit asked for, not just the number.
    </memory>

    <the question>

Levels appear in the order behaviors, insights, experiences (most abstract first); within a
level entries keep their retrieval order (most relevant first).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

BLOCK_OPEN, BLOCK_CLOSE = "<memory>", "</memory>"
LEVEL_TITLES = {
    "behavior": "Skills and mistakes to avoid from related questions:",
    "insight": "Notes from earlier attempts at similar questions:",
    "experience": "Earlier attempts at similar questions:",
}
LEVEL_ORDER = ("behavior", "insight", "experience")


class _Entry(Protocol):
    level: str
    text: str
    row: dict


def _line(entry: _Entry) -> str:
    kind = (entry.row or {}).get("kind")
    text = " ".join(entry.text.split()) if entry.level != "experience" else entry.text.strip()
    return f"- [{kind}] {text}" if kind else f"- {text}"


def render_memory_block(entries: Sequence[_Entry]) -> str:
    """The fenced block for ``entries`` (empty string when there are none)."""
    if not entries:
        return ""
    sections = []
    for level in LEVEL_ORDER:
        lines = [_line(e) for e in entries if e.level == level]
        if lines:
            sections.append("\n".join([LEVEL_TITLES[level], *lines]))
    return "\n".join([BLOCK_OPEN, *sections, BLOCK_CLOSE])


def has_memory_block(text: str) -> bool:
    return BLOCK_OPEN in text and BLOCK_CLOSE in text


def prepend_block(block: str, text: str) -> str:
    """``text`` with ``block`` and a blank line in front (``text`` unchanged for an empty block)."""
    return f"{block}\n\n{text}" if block else text
