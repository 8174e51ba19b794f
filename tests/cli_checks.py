"""Shared checks of the reliability suites: a command given bad input is refused with one line on
stderr (``error: ...``), a non-zero exit code, no traceback, and every file it was pointed at is
left exactly as it was (same names, same bytes)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tree_hashes(*paths: Path) -> dict[str, str]:
    """sha256 of every file under ``paths`` (a file, a folder, or a path that does not exist),
    keyed by path: a file created, removed or changed shows up as a difference."""
    out: dict[str, str] = {}
    for root in map(Path, paths):
        if root.is_file():
            out[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
        elif root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                elif path.is_dir():
                    out[str(path)] = "<dir>"
        else:
            out[str(root)] = "<absent>"
    return out


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def run_cli(command: list[str], *, cwd: Path = REPO, env: dict | None = None, timeout: int = 300,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run a console script of this venv (``pmd-train``, ``pmd-harness``, ``pmd-lm-eval``) or any
    command, capturing its output."""
    if (BIN / command[0]).exists():
        command = [str(BIN / command[0]), *command[1:]]
    return subprocess.run(command, cwd=cwd, env=env or cli_env(), capture_output=True, text=True,
                          timeout=timeout, input=stdin)


def assert_refused(proc: subprocess.CompletedProcess, *, contains: str | tuple[str, ...] = ()) -> str:
    """Exit code != 0, no traceback anywhere, exactly one line on stderr starting ``error:`` (or
    click's usage error, whose last line is ``Error: ...``); returns that line. ``contains``: words
    the line must hold (case-insensitive), e.g. the field or file it names."""
    both = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"exit code 0 for bad input:\n{both[-3000:]}"
    assert "Traceback" not in both, both[-6000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if lines and lines[-1].startswith("Error: "):  # click's usage errors: "Usage: ...", "Try ...", "Error: ..."
        line = lines[-1]
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one 'error:' line, got:\n{proc.stderr[-3000:]}"
        line = lines[0]
    for word in ([contains] if isinstance(contains, str) else contains):
        assert word.lower() in line.lower(), f"{word!r} not in: {line}"
    return line


def assert_refused_untouched(command: list[str], touched: list[Path], *, contains: str | tuple[str, ...] = (),
                             **run_kwargs) -> str:
    """``assert_refused`` for ``command``, and every file under ``touched`` unchanged by it."""
    before = tree_hashes(*touched)
    proc = run_cli(command, **run_kwargs)
    line = assert_refused(proc, contains=contains)
    assert tree_hashes(*touched) == before, f"files changed by a refused command: {command}"
    return line
