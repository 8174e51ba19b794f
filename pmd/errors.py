"""Turning user errors into one clean line and a non-zero exit code, for every entry point
(``pmd-train``, ``pmd-harness``, ``pmd-lm-eval``): it lives below ``trainer`` and ``harness`` so
all use it.

Library code raises its own exceptions (``BankError``, ``ConfigError``, ...); the command line
catches the user-fixable ones here and prints ``error: <message>`` with no traceback. A place
that cannot be written (read-only mount, full disk, no permission) is the user's to fix too:
``OSError`` with one of those errnos, and SQLite's own words for them, become one line naming the
file. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import errno
import functools
import sqlite3
from collections.abc import Callable

import click

USER_ERROR_EXIT_CODE = 2

# A location the user has to fix (free space, mount it writable, fix its permissions).
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})
_SQLITE_STORAGE_WORDS = ("database or disk is full", "attempt to write a readonly database", "disk i/o error",
                         "unable to open database file")


class StorageError(Exception):
    """A write failed because of where it went (full disk, read-only mount): the user's to fix."""


class UserError(click.ClickException):
    exit_code = USER_ERROR_EXIT_CODE

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def user_error_types() -> tuple[type[BaseException], ...]:
    from memory_bank.embedding import EmbedderLoadError
    from memory_bank.errors import BankError
    from pmd.config import ConfigError

    return (BankError, ConfigError, EmbedderLoadError, FileNotFoundError, FileExistsError, ValueError, StorageError)


def storage_error_message(err: BaseException) -> str | None:
    """One line for a write that failed because of where it went, else None (walks the chain,
    since libraries often re-raise an ``OSError`` as their own type)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in STORAGE_ERRNOS:
            where = err.filename or "a file"
            return (f"cannot write {where}: {err.strerror or errno.errorcode.get(err.errno, 'error')}; free space "
                    "or make the location writable, then run again (with --resume for a training run)")
        if isinstance(err, sqlite3.OperationalError) and any(w in str(err).lower() for w in _SQLITE_STORAGE_WORDS):
            return (f"cannot write the memory bank: {err}; free space or make its folder writable, "
                    "then run again (with --resume for a training run)")
        err = _reason(err)
    return None


def _reason(err: BaseException) -> BaseException | None:
    """The exception ``err`` was raised from (explicitly, or while handling), unless hidden by ``from None``."""
    return err.__cause__ or (None if err.__suppress_context__ else err.__context__)


_FULL_BYTES = 16 << 20  # below this much free space a failed write is taken for a full disk
_STORAGE_WORDS = ("no space left on device", "os error 28", "read-only file system", "os error 30",
                  "disk quota exceeded")


def storage_problem(path, err: BaseException | None = None) -> str | None:
    """Why writes under ``path`` fail, if the file system says so: "the file system is read-only"
    or "the disk is full (N MiB free)"; also recognises those words in ``err``'s chain (torch and
    safetensors report ENOSPC as their own errors, without an errno). None when neither applies."""
    import os

    try:
        stats = os.statvfs(path)
    except OSError:
        stats = None
    if stats is not None and stats.f_flag & os.ST_RDONLY:
        return "the file system is read-only"
    if stats is not None and stats.f_bavail * stats.f_frsize < _FULL_BYTES:
        return f"the disk is full ({stats.f_bavail * stats.f_frsize / 2**20:.1f} MiB free)"
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if storage_error_message(err) or any(w in str(err).lower() for w in _STORAGE_WORDS):
            return f"the write failed ({str(err).splitlines()[0][:200]})"
        err = _reason(err)
    return None


def reports_user_errors(func: Callable) -> Callable:
    """Decorator for click commands: user-fixable exceptions become ``UserError``."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except StorageError as err:  # already says what and where
            raise UserError(str(err)) from None
        except user_error_types() as err:
            storage = storage_error_message(err)
            raise UserError(storage or str(err)) from None
        except (OSError, sqlite3.OperationalError) as err:
            storage = storage_error_message(err)
            if storage is None:
                raise
            raise UserError(storage) from None

    return wrapper
