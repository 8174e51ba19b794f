"""A finished run's numbers, read from its folders (nothing is recomputed by a model):

* training: the step records of ``runs/<run>/metrics.jsonl`` (reward, validation accuracy,
  memory per level);
* evaluation: each requested task's headline value and scaling curve from
  ``evals/<run>/summary.json``, and every question's correctness flags (one per sample) graded
  from the logged samples by the task's own verifier (``harness.eval_summary.graded_questions``).
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .plan import Layout, Run

TRAIN_METRICS = ("reward/mean", "accuracy", "validation/accuracy", "memory/experience", "memory/insight",
                 "memory/behavior", "teacher/with_signal", "reflection/insights", "reflection/unparsed")


@dataclass
class RunResult:
    run: Run
    records: list[dict] = field(default_factory=list)        # training metrics, one per step
    task_values: dict[str, float] = field(default_factory=dict)  # requested task -> headline value
    headlines: dict[str, str] = field(default_factory=dict)      # requested task -> metric name
    scaling: dict[str, list[dict]] = field(default_factory=dict)
    flags: dict[str, list[bool]] = field(default_factory=dict)   # question key -> correct per sample

    def question_scores(self) -> dict[str, float]:
        """Fraction of samples correct, per question."""
        return {key: sum(f) / len(f) for key, f in self.flags.items() if f}

    def solved(self) -> dict[str, bool]:
        return {key: any(f) for key, f in self.flags.items()}

    def final(self, key: str, tail: float = 0.1) -> float | None:
        """Mean of ``key`` over the last ``tail`` of the logged steps that have it (at least one)."""
        values = [r[key] for r in self.records if isinstance(r.get(key), (int, float))]
        if not values:
            return None
        return statistics.fmean(values[-max(1, round(len(values) * tail)):])


def _eval_run_folder(eval_dir: Path) -> Path | None:
    runs = sorted(p for p in (eval_dir / "runs").glob("*") if p.is_dir())
    return runs[0] if runs else None


def load_result(layout: Layout, run: Run) -> RunResult:
    """What ``run`` left in the experiment folder (training records even before evaluation)."""
    from harness.eval_summary import graded_questions
    from harness.training_report import read_metrics_file

    result = RunResult(run)
    metrics = layout.train_dir(run) / "metrics.jsonl"
    if metrics.is_file():
        result.records = read_metrics_file(metrics)[0]
    summary_path = layout.eval_dir(run) / "summary.json"
    if not summary_path.is_file():
        return result
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    record = summary["runs"][0]
    for task, entry in record.get("tasks", {}).items():
        if entry.get("value") is not None:
            result.task_values[task] = float(entry["value"])
            result.headlines[task] = entry.get("headline") or "value"
    result.scaling = record.get("scaling") or {}
    folder = _eval_run_folder(layout.eval_dir(run))
    for samples_file in sorted(folder.glob("samples_*.jsonl")) if folder else ():
        task = samples_file.stem.removeprefix("samples_")
        samples = [json.loads(line) for line in samples_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        for key, (_, flags) in graded_questions(samples, task).items():
            result.flags[key] = list(flags)
    return result
