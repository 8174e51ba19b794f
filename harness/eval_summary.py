"""From lm-eval's results and samples to the numbers a PMD researcher reads.

Per run and task: every metric lm-eval reported (with its standard error), the task's headline
metric (``acc`` = avg@N for multiple choice, ``pass@1`` for code), the number of questions and
samples per question. With test-time scaling: the maj@k / best@k / headroom / coverage curve per
task (groups pool their tasks' questions) and the set of solved questions, from which runs'
coverage sets are compared (``coverage_differences``).
"""
from __future__ import annotations

from collections.abc import Sequence

from tasks.grading import grade_samples, question_key

from .scaling import coverage_difference, scaling_curve

HEADLINE_METRICS = ("acc", "pass@1")


def parse_metrics(task_results: dict) -> tuple[dict[str, float], dict[str, float]]:
    """lm-eval's ``{"acc,none": v, "acc_stderr,none": s, ...}`` -> ({"acc": v}, {"acc": s})."""
    values, errors = {}, {}
    for key, value in task_results.items():
        if "," not in key or not isinstance(value, (int, float)):
            continue
        metric = key.split(",", 1)[0]
        if metric.endswith("_stderr"):
            errors[metric.removesuffix("_stderr")] = float(value)
        else:
            values[metric] = float(value)
    return values, errors


def headline(metrics: dict[str, float]) -> str | None:
    return next((m for m in HEADLINE_METRICS if m in metrics), next(iter(metrics), None))


def responses_of(sample: dict) -> list[str]:
    """Every generated text of one logged document (all ``repeats``), in order."""
    texts = []
    for item in sample.get("filtered_resps") or sample.get("resps") or []:
        texts.extend(item if isinstance(item, (list, tuple)) else [item])
    return [str(text) for text in texts]


def graded_questions(samples: Sequence[dict], task: str) -> dict[str, tuple[list, list[bool]]]:
    """question key -> (answers, correctness flags) for one task's logged samples."""
    graded = {}
    for sample in samples:
        grades = grade_samples(sample["doc"], responses_of(sample))
        key = f"{task}/{question_key(sample['doc'], sample['doc_id'])}"
        graded[key] = ([g.answer for g in grades], [g.correct for g in grades])
    return graded


def task_members(results: dict, name: str) -> list[str]:
    """The leaf tasks behind a requested name (itself when it is a task)."""
    members = results.get("group_subtasks", {}).get(name)
    if not members:
        return [name]
    leaves = []
    for member in members:
        leaves += task_members(results, member)
    return leaves


def summarize_run(output, requested_tasks: Sequence[str], *, scaling_ks: Sequence[int] | None) -> dict:
    """The summary record of one run (see the module docstring)."""
    results = output.results
    tasks = {}
    for task, task_results in results.get("results", {}).items():
        values, errors = parse_metrics(task_results)
        primary = headline(values)
        n = results.get("n-samples", {}).get(task, {}).get("effective")
        repeats = results.get("configs", {}).get(task, {}).get("repeats")
        tasks[task] = {"metrics": values, "stderr": errors, "headline": primary,
                       "value": values.get(primary) if primary else None, "questions": n, "samples": repeats}
    record = {
        "label": output.spec.label, "slug": output.spec.slug, "model": output.spec.model.spec,
        "model_path": output.spec.model.path, "model_label": output.spec.model.label,
        "memory": output.spec.memory, "memory_k": output.spec.memory_k,
        "chat_template": output.chat_template, "seconds": round(output.seconds, 2), "tasks": tasks,
    }
    if scaling_ks:
        graded = {task: graded_questions(samples, task) for task, samples in output.samples.items()}
        record["scaling"], record["solved"] = {}, {}
        for name in requested_tasks:
            pooled = {}
            for leaf in task_members(results, name):
                pooled.update(graded.get(leaf, {}))
            if not pooled:
                continue
            answers = [a for a, _ in pooled.values()]
            correct = [c for _, c in pooled.values()]
            record["scaling"][name] = scaling_curve(answers, correct, scaling_ks)
            record["solved"][name] = {key: any(flags) for key, (_, flags) in pooled.items()}
    return record


def coverage_record(task: str, label_a: str, solved_a: dict, label_b: str, solved_b: dict) -> dict:
    """Which questions of ``task`` only run a, only run b, or both solve (``both`` as a count)."""
    diff = coverage_difference(solved_a, solved_b)
    return {"task": task, "a": label_a, "b": label_b, "only_a": diff["only_a"], "only_b": diff["only_b"],
            "both": len(diff["both"])}


def coverage_sentence(diff: dict, *, examples: int = 0) -> str:
    """``coverage_record`` in words, naming up to ``examples`` questions only run b solves."""
    text = (f"{diff['task']}: only `{diff['a']}` solves {len(diff['only_a'])}, only `{diff['b']}` solves "
            f"{len(diff['only_b'])}, both solve {diff['both']}.")
    if examples and diff["only_b"]:
        text += f" Only `{diff['b']}`: {', '.join(diff['only_b'][:examples])}"
    return text


def _reference(record: dict, records: Sequence[dict]) -> dict:
    """What a run's coverage is compared with: its model's no-memory run, else the first run."""
    if record["memory"] is not None:
        for other in records:
            if other["memory"] is None and other["model_label"] == record["model_label"]:
                return other
    return records[0]


def coverage_differences(records: Sequence[dict]) -> list[dict]:
    """Per task, the questions only one of two runs solves: each memory run against its model's
    no-memory run, every other run against the first."""
    out = []
    for record in records:
        reference = _reference(record, records)
        if reference is record:
            continue
        for task, solved in record.get("solved", {}).items():
            if task not in reference.get("solved", {}):
                continue
            out.append(coverage_record(task, reference["label"], reference["solved"][task], record["label"], solved))
    return out


def memory_k_series(records: Sequence[dict], task: str) -> dict[str, list[tuple[int, float]]]:
    """"model · bank" -> [(k, headline value)], k = 0 taken from the model's no-memory run."""
    baselines = {r["model_label"]: r for r in records if r["memory"] is None}
    series: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        if record["memory"] is None or task not in record["tasks"]:
            continue
        label = record["label"].rsplit(" k=", 1)[0]
        points = series.setdefault(label, [])
        base = baselines.get(record["model_label"])
        if not points and base and task in base["tasks"] and base["tasks"][task]["value"] is not None:
            points.append((0, base["tasks"][task]["value"]))
        if record["tasks"][task]["value"] is not None:
            points.append((record["memory_k"], record["tasks"][task]["value"]))
    return {label: sorted(points) for label, points in series.items()}
