"""Reading the JSON Lines files tasks are stored in, with errors a user can act on.

Every task loader (``tasks/sciknoweval/loader.py``, ``tasks/livecodebench/loader.py``) reads its
files through :func:`read_json_lines` and raises :class:`RecordError` for a record it cannot use,
so a bad data file stops ``pmd-train`` and ``pmd-harness`` with one line naming the file, the line
number and the field, whichever command read it.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


class RecordError(ValueError):
    """A record of a task data file that cannot be used; the message names the field and the fix."""


def json_kind(value) -> str:
    """What a parsed JSON value is, in JSON's words (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    kinds = {dict: "object", list: "array", str: "string", int: "number", float: "number"}
    return kinds.get(type(value), type(value).__name__)


def read_json_lines(path: Path) -> Iterator[tuple[int, object]]:
    """``(line number, parsed value)`` for every non-blank line of a JSON Lines file; an invalid
    line raises ``RecordError`` naming ``path`` and the line."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise RecordError(f"{path}:{number}: not UTF-8 text; save the file as UTF-8 JSON Lines") from None
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                hint = ("the file looks like one JSON array: it must be JSON Lines, one object per line"
                        if number == 1 and line.lstrip().startswith("[") else "each line must be one complete JSON object")
                raise RecordError(f"{path}:{number}: invalid JSON ({err.msg}, column {err.colno}); {hint}") from None
