"""Turning user errors into one clean line and a non-zero exit code, for every entry point
(``pmd-train``, ``pmd-harness``): it lives below ``trainer`` and ``harness`` so both use it.

Library code raises its own exceptions (``BankError``, ``ConfigError``, ...); the command line
catches the user-fixable ones here and prints ``error: <message>`` with no traceback. Anything
else is a bug and keeps its traceback.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import click

USER_ERROR_EXIT_CODE = 2


class UserError(click.ClickException):
    exit_code = USER_ERROR_EXIT_CODE

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def user_error_types() -> tuple[type[BaseException], ...]:
    from memory_bank.embedding import EmbedderLoadError
    from memory_bank.errors import BankError
    from pmd.config import ConfigError

    return (BankError, ConfigError, EmbedderLoadError, FileNotFoundError, FileExistsError, ValueError)


def reports_user_errors(func: Callable) -> Callable:
    """Decorator for click commands: user-fixable exceptions become ``UserError``."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except user_error_types() as err:
            raise UserError(str(err)) from None

    return wrapper
