"""Writing files so that a reader never sees half of one: write a hidden sibling, then rename.

The rename (``os.replace``) is atomic within one folder, so ``path`` holds either its old content
or the complete new one, even if the writer is killed midway.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

_counter = itertools.count()


def temporary_name(path: Path) -> Path:
    """A hidden sibling of ``path`` to write first and rename over it (same folder, same device)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{next(_counter)}.tmp")


def write_atomically(path: str | Path, write: Callable[[IO], None], *, binary: bool = False) -> Path:
    """Call ``write(handle)`` on a temporary sibling of ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: str | Path, text: str) -> Path:
    return write_atomically(path, lambda handle: handle.write(text))


def check_writable(path: str | Path, what: str) -> None:
    """Raise ``ValueError`` (one line with the fix) when ``path``, a file or folder about to be
    written, could not be: its closest existing folder must be writable and on a writable file
    system, and nothing on the way may be a file. Checked before any work, so a long evaluation
    or scoring run does not fail only at its last step."""
    path = Path(path).expanduser()
    existing = path
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if existing != path and not existing.is_dir():
        raise ValueError(f"{what} {path} cannot be created: {existing} is a file, not a folder; "
                         "choose another location")
    folder = existing if existing.is_dir() else existing.parent
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise ValueError(f"{what} {path} cannot be written: {folder} is on a read-only file system; "
                         "choose a writable location (or remount it read-write)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path} cannot be written: no write permission on {folder}; "
                         "choose a writable location or fix its permissions")
