"""One comparison table across result folders: training runs (GRPO vs SDPO vs PMD vs ablations)
and evaluation folders (every run of every folder, one column per task)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .eval_report import markdown_table, pct
from .eval_summary import coverage_record, coverage_sentence

TRAINING_HEADER = ["run", "algorithm", "memory", "steps", "final reward", "final val. acc.", "best val. acc.",
                   "experiences", "insights", "behaviors"]


def kind_of(folder: Path) -> str:
    """``"eval"`` (has summary.json), ``"training"`` (has metrics.jsonl), else an error."""
    if (folder / "summary.json").is_file():
        return "eval"
    if (folder / "metrics.jsonl").is_file():
        return "training"
    if not folder.exists():
        raise FileNotFoundError(f"{folder} not found; check the path")
    raise ValueError(f"{folder} is neither a pmd-train run (metrics.jsonl) nor a pmd-harness eval folder "
                     "(summary.json)")


def load_eval_summary(folder: Path) -> dict:
    """An eval folder's summary.json; a damaged one is an error naming the file."""
    path = folder / "summary.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); run pmd-harness eval again to rewrite it") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not isinstance(data.get("tasks"), list):
        raise ValueError(f"{path} is not a pmd-harness eval summary (no runs); run pmd-harness eval again to rewrite it")
    return data


def training_rows(summaries: Sequence[dict]) -> list[list[str]]:
    rows = []
    for s in summaries:
        entries = s.get("entries") or {}
        # a run folder without config.yaml has no algorithm or memory mode
        memory = (s["memory_mode"] or "–") + (" (frozen policy)" if s.get("policy_frozen") else "")
        rows.append([s["run"], s["algorithm"] or "–", memory, str(s["steps"]),
                     "–" if s["final_reward"] is None else f"{s['final_reward']:.3f}",
                     pct(s["final_validation_accuracy"]), pct(s["best_validation_accuracy"]),
                     *(str(entries.get(level, "–")) if entries else "–" for level in ("experience", "insight", "behavior"))])
    return rows


def eval_table(summaries: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """Rows: ``folder: run``; columns: the union of tasks (headline metric, %)."""
    tasks: list[str] = []
    for summary in summaries.values():
        tasks += [t for t in summary["tasks"] if t not in tasks]
    rows = []
    for name, summary in summaries.items():
        for run in summary["runs"]:
            rows.append([f"{name}: {run['label']}", *(pct(run["tasks"].get(t, {}).get("value")) for t in tasks)])
    return ["run", *tasks], rows


def eval_coverage(summaries: dict[str, dict]) -> list[dict]:
    """With exactly two evaluation folders: questions only one folder's first run solves, per task."""
    if len(summaries) != 2:
        return []
    (name_a, a), (name_b, b) = summaries.items()
    first_a, first_b = a["runs"][0], b["runs"][0]
    out = []
    for task in first_a.get("solved", {}):
        if task in first_b.get("solved", {}):
            out.append(coverage_record(task, f"{name_a}: {first_a['label']}", first_a["solved"][task],
                                       f"{name_b}: {first_b['label']}", first_b["solved"][task]))
    return out


def comparison_markdown(training: Sequence[dict], evals: dict[str, dict], coverage: Sequence[dict]) -> str:
    parts = ["# Comparison", ""]
    if training:
        parts += ["## Training runs", "", markdown_table(TRAINING_HEADER, training_rows(training)), ""]
    if evals:
        parts += ["## Evaluations (%)", "", markdown_table(*eval_table(evals)), ""]
    for diff in coverage:
        parts.append(f"- {coverage_sentence(diff)}")
    return "\n".join(parts).rstrip() + "\n"
