"""``pmd-harness experiment report DIR``: the experiment's tables with intervals, plots and a
Markdown summary (``DIR/report/summary.md``, ``summary.json``, ``plots/*.png``).

Metrics per variant, each a mean over seeds with a 95% t interval over seeds, and, where the
metric is an average over test questions, a 95% bootstrap interval over questions:

* ``test accuracy``: each question's fraction of correct samples, averaged over questions (avg@N
  of the memory-free evaluation; all requested tasks' questions pooled);
* ``test best@N`` (with several samples): questions with at least one correct sample;
* each requested task's headline metric as lm-eval reports it, and ``maj@N`` with scaling;
* ``final rollout reward`` and ``final validation accuracy``: the mean over the last 10% of steps.

Each variant is compared with the baseline: the paired difference over seeds (same seed, same data
order) with its t interval, and the bootstrap interval of the difference over questions.
Coverage (the paper's Figure 5): questions solved (any sample, any seed) by a variant and not by
the baseline, and the reverse, and questions solved by one variant only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.atomic_files import write_text_atomically

from .collect import RunResult, load_result
from .plan import Layout, plan_runs
from .spec import ExperimentConfig, load_experiment
from .stats import Interval, bootstrap_interval, mean_interval, paired_bootstrap, paired_difference

REPORT_DIR = "report"


@dataclass
class MetricRow:
    variant: str
    seeds: list[int]
    values: list[float]
    over_seeds: Interval
    over_questions: Interval | None = None
    delta: Interval | None = None            # paired over seeds, against the baseline
    delta_questions: Interval | None = None  # bootstrap over questions

    def to_dict(self) -> dict:
        def d(i):
            return None if i is None else i.to_dict()
        return {"variant": self.variant, "seeds": self.seeds, "values": self.values, "over_seeds": d(self.over_seeds),
                "over_questions": d(self.over_questions), "delta_vs_baseline": d(self.delta),
                "delta_vs_baseline_questions": d(self.delta_questions)}


@dataclass
class Metric:
    name: str
    rows: list[MetricRow] = field(default_factory=list)
    percent: bool = True


def load_experiment_folder(folder: Path) -> tuple[ExperimentConfig, dict[str, list[RunResult]]]:
    """The experiment saved in ``folder`` and every run's results, by variant (seed order)."""
    spec = folder / "experiment.yaml"
    if not spec.is_file():
        raise FileNotFoundError(f"{folder} is not an experiment folder (no experiment.yaml); "
                                "run `pmd-harness experiment run EXP.yaml` first")
    experiment = load_experiment(spec)
    experiment.output_dir = str(folder.parent)  # the folder may have moved since it was written
    layout = Layout(folder)
    results: dict[str, list[RunResult]] = {v: [] for v in experiment.variants}
    for run in plan_runs(experiment):
        results[run.variant].append(load_result(layout, run))
    return experiment, results


def _per_question_metric(name: str, results: dict[str, list[RunResult]], baseline: str, score) -> Metric | None:
    """A metric averaged over questions (``score(result) -> {question: value}``) with both intervals."""
    evaluated = {v: [r for r in runs if r.flags] for v, runs in results.items()}
    evaluated = {v: runs for v, runs in evaluated.items() if runs}
    if not evaluated:
        return None
    questions = sorted(set.intersection(*(set(r.flags) for runs in evaluated.values() for r in runs)))
    if not questions:
        return None
    # One score vector per run, over the shared questions (score() walks every sample, so it is
    # computed once here rather than once per question).
    vectors = {id(r): [score(r)[q] for q in questions] for runs in evaluated.values() for r in runs}

    def mean_of(r: RunResult) -> float:
        return sum(vectors[id(r)]) / len(questions)

    metric = Metric(name)
    base_by_seed = {r.run.seed: r for r in evaluated.get(baseline, [])}
    for variant, runs in evaluated.items():
        values = [mean_of(r) for r in runs]
        row = MetricRow(variant, [r.run.seed for r in runs], values, mean_interval(values),
                        bootstrap_interval([vectors[id(r)] for r in runs]))
        paired = [r for r in runs if r.run.seed in base_by_seed]
        if variant != baseline and paired:
            partners = [base_by_seed[r.run.seed] for r in paired]
            row.delta = paired_difference([mean_of(r) for r in paired], [mean_of(b) for b in partners])
            row.delta_questions = paired_bootstrap([vectors[id(r)] for r in paired],
                                                   [vectors[id(b)] for b in partners])
        metric.rows.append(row)
    return metric


def _per_run_metric(name: str, results: dict[str, list[RunResult]], baseline: str, value, percent: bool = True) -> Metric | None:
    """A metric with one value per run (``value(result) -> float | None``), intervals over seeds."""
    metric = Metric(name, percent=percent)
    base = {r.run.seed: value(r) for r in results.get(baseline, [])}
    for variant, runs in results.items():
        pairs = [(r.run.seed, value(r)) for r in runs]
        pairs = [(s, v) for s, v in pairs if v is not None]
        if not pairs:
            continue
        row = MetricRow(variant, [s for s, _ in pairs], [v for _, v in pairs], mean_interval([v for _, v in pairs]))
        paired = [(v, base[s]) for s, v in pairs if base.get(s) is not None]
        if variant != baseline and paired:
            row.delta = paired_difference([a for a, _ in paired], [b for _, b in paired])
        metric.rows.append(row)
    return metric if metric.rows else None


def build_metrics(experiment: ExperimentConfig, results: dict[str, list[RunResult]]) -> list[Metric]:
    baseline = experiment.baseline
    samples = experiment.evaluation.samples
    metrics = [_per_question_metric("test accuracy (avg@%d, memory-free)" % samples, results, baseline,
                                    RunResult.question_scores)]
    if samples > 1:
        metrics.append(_per_question_metric(f"test best@{samples} (memory-free)", results, baseline,
                                            lambda r: {q: float(s) for q, s in r.solved().items()}))
    tasks = sorted({t for runs in results.values() for r in runs for t in r.task_values})
    for task in tasks:
        headline = next(r.headlines[task] for runs in results.values() for r in runs if task in r.headlines)
        metrics.append(_per_run_metric(f"{task} {headline} (lm-eval)", results, baseline, lambda r, t=task: r.task_values.get(t)))
        if experiment.evaluation.scaling:
            metrics.append(_per_run_metric(f"{task} maj@{samples}", results, baseline,
                                           lambda r, t=task: (r.scaling.get(t) or [{}])[-1].get("maj")))
    metrics.append(_per_run_metric("final rollout reward (last 10% of steps)", results, baseline,
                                   lambda r: r.final("reward/mean")))
    metrics.append(_per_run_metric("final validation accuracy (last 10% of validations)", results, baseline,
                                   lambda r: r.final("validation/accuracy")))
    return [m for m in metrics if m is not None]


def coverage_rows(experiment: ExperimentConfig, results: dict[str, list[RunResult]]) -> list[dict]:
    """Per variant against the baseline: questions solved by both, by only one, by neither (any
    sample, any seed), and the questions no other variant solves."""
    solved: dict[str, dict[str, bool]] = {}
    for variant, runs in results.items():
        union: dict[str, bool] = {}
        for r in runs:
            for q, ok in r.solved().items():
                union[q] = union.get(q, False) or ok
        if union:
            solved[variant] = union
    if experiment.baseline not in solved:
        return []
    base = solved[experiment.baseline]
    rows = []
    for variant, mine in solved.items():
        questions = sorted(set(mine) & set(base))
        others = [s for v, s in solved.items() if v != variant]
        rows.append({
            "variant": variant, "questions": len(questions),
            "both": sum(mine[q] and base[q] for q in questions),
            "only_variant": sum(mine[q] and not base[q] for q in questions),
            "only_baseline": sum(base[q] and not mine[q] for q in questions),
            "neither": sum(not mine[q] and not base[q] for q in questions),
            "unique": sorted(q for q in mine if mine[q] and not any(o.get(q) for o in others)),
        })
    return rows


def memory_growth(results: dict[str, list[RunResult]]) -> dict[str, dict[str, float]]:
    """Entries per level at the last step, mean over seeds, for variants that have memory."""
    out = {}
    for variant, runs in results.items():
        last = [r.records[-1] for r in runs if r.records]
        levels = {lv: [row[f"memory/{lv}"] for row in last if f"memory/{lv}" in row]
                  for lv in ("experience", "insight", "behavior")}
        if any(levels.values()):
            out[variant] = {lv: sum(v) / len(v) for lv, v in levels.items() if v}
    return out


def _mean_of(runs: list[RunResult], key: str, portion: str = "all") -> float | None:
    """Mean of ``key`` over every logged step of ``runs`` (``portion``: "all", or the "first" /
    "last" 10% of each run's steps)."""
    values = []
    for r in runs:
        series = [row[key] for row in r.records if isinstance(row.get(key), (int, float))]
        tenth = max(1, round(len(series) * 0.1))
        values += {"all": series, "first": series[:tenth], "last": series[-tenth:]}[portion] if series else []
    return sum(values) / len(values) if values else None


def diagnostics(results: dict[str, list[RunResult]]) -> dict[str, dict]:
    """What explains a result, per variant over all its seeds and steps: how many reflection
    requests yielded usable lines, how often the teacher's context held memory (and any signal at
    all), and the teacher-student divergence early and late in training."""
    out = {}
    for variant, runs in results.items():
        rows = [row for r in runs for row in r.records]
        requests = sum(row.get("reflection/requests", 0) for row in rows)
        empty = sum(row.get("reflection/unparsed", 0) + row.get("reflection/failed_requests", 0) for row in rows)
        out[variant] = {
            "reflection_requests": requests,
            "reflection_parse_rate": (requests - empty) / requests if requests else None,
            "insights_written": sum(row.get("reflection/insights", 0) for row in rows),
            # None for runs that predate the metric (not zero: nothing was counted)
            "copies_dropped": (sum(row.get("reflection/copies_dropped", 0) for row in rows)
                               if any("reflection/copies_dropped" in row for row in rows) else None),
            "teacher_with_memory": _mean_of(runs, "teacher/with_memory"),
            "teacher_with_signal": _mean_of(runs, "teacher/with_signal"),
            "divergence_first_10pct": _mean_of(runs, "loss/divergence", "first"),
            "divergence_last_10pct": _mean_of(runs, "loss/divergence", "last"),
        }
    return out


def _diagnostics_table(table: dict[str, dict]) -> str:
    def pct(v):
        return "–" if v is None else f"{100 * v:.0f}%"

    def num(v):
        return "–" if v is None else f"{v:.4g}"

    lines = ["| variant | reflection requests | parsed into insights | insights written | lines dropped as prompt copies | "
             "teacher context with memory | teacher context with any signal | divergence, first 10% of steps | "
             "divergence, last 10% |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for variant, d in table.items():
        lines.append(f"| {variant} | {d['reflection_requests']} | {pct(d['reflection_parse_rate'])} | {d['insights_written']} | "
                     f"{'–' if d['copies_dropped'] is None else d['copies_dropped']} | {pct(d['teacher_with_memory'])} | {pct(d['teacher_with_signal'])} | "
                     f"{num(d['divergence_first_10pct'])} | {num(d['divergence_last_10pct'])} |")
    return "\n".join(lines)


# ----------------------------------------------------------------- writing
def _num(value: float | None, percent: bool, signed: bool = False) -> str:
    """A value as the table shows it: percentage points with one decimal, else 3 significant digits."""
    if value is None:
        return "–"
    number = 100 * value if percent else value
    return format(number, ("+" if signed else "") + (".1f" if percent else ".3g"))


def _interval(interval: Interval | None, percent: bool, signed: bool = False) -> str:
    if interval is None or interval.low is None:
        return "–"
    return f"[{_num(interval.low, percent, signed)}, {_num(interval.high, percent, signed)}]"


def metric_table(metric: Metric, baseline: str) -> str:
    unit = " (%)" if metric.percent else ""
    lines = [f"| variant | mean{unit} | 95% CI, seeds | 95% CI, questions | seeds | Δ vs {baseline} | "
             "95% CI of Δ, paired seeds | 95% CI of Δ, questions |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in metric.rows:
        lines.append(" | ".join([
            f"| {'**' + row.variant + '**' if row.variant == baseline else row.variant}",
            _num(row.over_seeds.mean, metric.percent), _interval(row.over_seeds, metric.percent),
            _interval(row.over_questions, metric.percent), str(len(row.seeds)),
            "(baseline)" if row.variant == baseline else _num(row.delta.mean if row.delta else None, metric.percent, True),
            _interval(row.delta, metric.percent, signed=True),
            _interval(row.delta_questions, metric.percent, signed=True)]) + " |")
    return "\n".join(lines)


def _cell(row: MetricRow | None, percent: bool, baseline: str) -> str:
    """``mean [low, high]`` over seeds, and the paired Δ against the baseline beneath it."""
    if row is None:
        return "–"
    text = f"{_num(row.over_seeds.mean, percent)} {_interval(row.over_seeds, percent)}".strip()
    if row.variant != baseline and row.delta is not None:
        text += f"<br>Δ {_num(row.delta.mean, percent, True)} {_interval(row.delta, percent, True)}"
    return text


def main_table(metrics: list[Metric], baseline: str) -> str:
    """One row per variant, one column per metric: the table to paste into a paper draft."""
    variants = list(dict.fromkeys(row.variant for m in metrics for row in m.rows))
    lines = ["| variant | " + " | ".join(m.name for m in metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for variant in variants:
        cells = [_cell(next((r for r in m.rows if r.variant == variant), None), m.percent, baseline) for m in metrics]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nMean over seeds [95% CI over seeds]; Δ: minus {baseline}, paired by seed [95% CI]."


def summary_markdown(experiment: ExperimentConfig, metrics: list[Metric], coverage: list[dict],
                     growth: dict[str, dict[str, float]], counts: dict[str, int], plots: list[str],
                     diagnosis: dict[str, dict] | None = None) -> str:
    spec = experiment.evaluation
    parts = [f"# Experiment `{experiment.name}`", "",
             f"{len(experiment.variants)} variants x {len(experiment.seeds)} seeds ({', '.join(map(str, experiment.seeds))}); "
             f"{counts['evaluated']} of {counts['planned']} runs evaluated. Baseline: **{experiment.baseline}**. "
             f"Evaluation: memory-free, {', '.join(spec.tasks)}, {spec.samples} sample(s) per question"
             + (f" at temperature {spec.temperature}" if spec.samples > 1 else "")
             + (f", first {spec.limit} questions" if spec.limit else "") + ".", "",
             "Intervals are 95%: over seeds, Student's t on the per-seed values; over questions, a bootstrap "
             "(2,000 resamples of the questions). Δ is the variant minus the baseline, paired by seed.", ""]
    if metrics:
        parts += ["## Main table", "", main_table(metrics, experiment.baseline), ""]
    for metric in metrics:
        parts += [f"## {metric.name}", "", metric_table(metric, experiment.baseline), ""]
    coverage = [r for r in coverage if r["variant"] != experiment.baseline]
    if coverage:
        parts += [f"## Coverage against {experiment.baseline} (any sample, any seed)", "",
                  "| variant | questions | both | only the variant | only the baseline | neither | solved by no other variant |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        parts += [f"| {r['variant']} | {r['questions']} | {r['both']} | {r['only_variant']} | {r['only_baseline']} | "
                  f"{r['neither']} | {len(r['unique'])} |" for r in coverage]
        parts.append("")
    if growth:
        parts += ["## Memory at the last step (entries, mean over seeds)", "", "| variant | experience | insight | behavior |",
                  "|---|---:|---:|---:|"]
        parts += [f"| {v} | " + " | ".join(f"{g.get(lv, 0):.0f}" for lv in ("experience", "insight", "behavior")) + " |"
                  for v, g in growth.items()]
        parts.append("")
    if diagnosis:
        parts += ["## Training diagnostics (all seeds and steps)", "", _diagnostics_table(diagnosis), ""]
    if plots:
        parts += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    return "\n".join(parts)


def write_report(folder: Path) -> tuple[Path, dict]:
    """Write ``folder/report/`` (see the module docstring); returns the summary path and data."""
    from .figures import plot_coverage, plot_learning_curves

    experiment, results = load_experiment_folder(folder)
    counts = {"planned": sum(len(r) for r in results.values()),
              "evaluated": sum(bool(r.flags) for runs in results.values() for r in runs),
              "trained": sum(bool(r.records) for runs in results.values() for r in runs)}
    if not counts["trained"]:
        raise ValueError(f"{folder}: no run has logged a training step yet; run `pmd-harness experiment run` first")
    metrics = build_metrics(experiment, results)
    coverage = coverage_rows(experiment, results)
    growth = memory_growth(results)
    diagnosis = diagnostics(results)
    out = folder / REPORT_DIR
    plots_dir = out / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    curves = {v: [r.records for r in runs if r.records] for v, runs in results.items()}
    curves = {v: c for v, c in curves.items() if c}
    plots = [plot_learning_curves(curves, plots_dir / "learning_curves.png",
                                  [("reward/mean", "rollout reward"), ("validation/accuracy", "validation accuracy")],
                                  f"{experiment.name}: learning curves")]
    memory = {v: c for v, c in curves.items() if v in growth}
    if memory:
        plots.append(plot_learning_curves(memory, plots_dir / "memory_growth.png",
                                          [("memory/insight", "insight entries"), ("memory/behavior", "behavior entries")],
                                          f"{experiment.name}: memory growth"))
    if coverage:
        plots.append(plot_coverage([r for r in coverage if r["variant"] != experiment.baseline], experiment.baseline,
                                   plots_dir / "coverage.png", f"{experiment.name}: coverage against {experiment.baseline}"))
    relative = [str(p.relative_to(out)) for p in plots]
    data = {"experiment": experiment.name, "baseline": experiment.baseline, "counts": counts,
            "metrics": [{"name": m.name, "percent": m.percent, "rows": [r.to_dict() for r in m.rows]} for m in metrics],
            "coverage": coverage, "memory": growth, "diagnostics": diagnosis, "plots": relative}
    write_text_atomically(out / "summary.json", json.dumps(data, indent=2))
    path = write_text_atomically(out / "summary.md", summary_markdown(experiment, metrics, coverage, growth, counts, relative,
                                                                            diagnosis))
    return path, data
