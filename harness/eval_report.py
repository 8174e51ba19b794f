"""Writing one evaluation's results folder, ``results/<name>/``, without ever half-writing it.

Layout::

    settings.json                 resolved settings: models, banks (with their manifests), lm-eval
                                  and pmd versions, chat template, generation settings
    runs/<run>/results.json       lm-eval's results for one run (model x bank x k)
    runs/<run>/samples_<task>.jsonl   every generation, with the memory entries it was given
    summary.json                  the numbers (``eval_summary``), scaling curves, coverage diffs
    summary.md                    the same as Markdown tables, with the plots
    plots/*.png                   scaling curves (maj@k vs best@k), accuracy vs memory-k

Everything is written into ``.<name>.partial-<pid>`` beside the final folder and renamed into
place at the end, so a failed or interrupted evaluation never leaves a half-written or
clobbered ``results/<name>``; an existing folder is replaced only with ``overwrite`` and only
after the new one is complete.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from .eval_summary import coverage_differences, coverage_sentence, memory_k_series


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


class ResultsFolder:
    """Stage files for ``output_dir/name`` and move them into place on ``commit``."""

    def __init__(self, output_dir: Path, name: str, overwrite: bool = False) -> None:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"--name {name!r} must be a plain folder name (no '/', not starting with '.')")
        self.final = Path(output_dir) / name
        if self.final.exists() and not overwrite:
            raise FileExistsError(f"{self.final} already exists; choose another --name or pass --overwrite")
        self.stage = Path(output_dir) / f".{name}.partial-{os.getpid()}"
        if self.stage.exists():
            shutil.rmtree(self.stage)
        self.stage.mkdir(parents=True)

    def path(self, *parts: str) -> Path:
        return self.stage.joinpath(*parts)

    def commit(self) -> Path:
        old = None
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
            self.final.rename(old)
        self.stage.rename(self.final)
        if old is not None:
            shutil.rmtree(old)
        return self.final


def write_run(folder: ResultsFolder, output) -> None:
    """lm-eval's results and the logged samples of one run."""
    run_dir = folder.path("runs", output.spec.slug)
    write_json(run_dir / "results.json", output.results)
    for task, samples in output.samples.items():
        with (run_dir / f"samples_{task}.jsonl").open("w", encoding="utf-8") as out:
            for sample in samples:
                out.write(json.dumps(sample, default=str) + "\n")


# --------------------------------------------------------------------------------- tables
def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def results_table(records: Sequence[dict], tasks: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Rows: runs; columns: each requested task's headline metric (%), and seconds."""
    header = ["run", *[f"{t} ({_headline_name(records, t)})" for t in tasks], "seconds"]
    rows = []
    for record in records:
        cells = [pct(record["tasks"].get(t, {}).get("value")) for t in tasks]
        rows.append([record["label"], *cells, f"{record['seconds']:.0f}"])
    return header, rows


def _headline_name(records: Sequence[dict], task: str) -> str:
    for record in records:
        info = record["tasks"].get(task)
        if info and info.get("headline"):
            samples = info.get("samples")
            name = info["headline"]
            return f"{name}@{samples}" if name == "acc" and samples and samples > 1 else name
    return "–"


def _axis_label(metric: str) -> str:
    """``acc@8`` -> ``accuracy (acc@8)``; code tasks' ``pass@1`` stays as it is."""
    return f"accuracy ({metric})" if metric.startswith("acc") else metric


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def scaling_table(records: Sequence[dict], task: str) -> tuple[list[str], list[list[str]]]:
    """One row per run: maj@k for every k, best@k for every k, then coverage (%)."""
    curves = [(r["label"], r["scaling"][task]) for r in records if task in r.get("scaling", {})]
    if not curves:
        return [], []
    ks = [row["k"] for row in curves[0][1]]
    header = ["run", *[f"maj@{k}" for k in ks], *[f"best@{k}" for k in ks], "coverage"]
    rows = [[label, *[pct(row["maj"]) for row in curve], *[pct(row["best"]) for row in curve], pct(curve[-1]["coverage"])]
            for label, curve in curves]
    return header, rows


# ---------------------------------------------------------------------------------- plots
def make_plots(folder: ResultsFolder, records: Sequence[dict], tasks: Sequence[str]) -> list[str]:
    """PNG files under plots/: scaling curves per task, accuracy vs memory-k per task."""
    from .plots import plot_memory_k, plot_scaling

    made = []
    for task in tasks:
        curves = {r["label"]: r["scaling"][task] for r in records if task in r.get("scaling", {})}
        if curves:
            path = folder.path("plots", f"scaling_{task}.png")
            plot_scaling(curves, path, title=f"Test-time scaling on {task}: best@k (solid) vs maj@k (dashed)")
            made.append(f"plots/{path.name}")
        series = memory_k_series(records, task)
        if any(len(points) > 1 for points in series.values()):
            path = folder.path("plots", f"memory_k_{task}.png")
            plot_memory_k(series, path, title=f"{task}: accuracy vs retrieved memory entries",
                          metric_name=_axis_label(_headline_name(records, task)))
            made.append(f"plots/{path.name}")
    return made


def render_markdown(name: str, settings: dict, records: Sequence[dict], tasks: Sequence[str],
                    coverage: Sequence[dict], plots: Sequence[str]) -> str:
    parts = [f"# Evaluation `{name}`", ""]
    samples = settings.get("samples")
    parts.append(f"Models: {', '.join(settings['models'])}. Tasks: {', '.join(tasks)}. "
                 f"Samples per question: {samples or 'task default'}"
                 + (f" (T = {settings['temperature']})" if samples and samples > 1 else "") + ".")
    if settings.get("memory"):
        banks = [b for b in (settings["memory"], settings.get("compare_memory")) if b]
        parts.append(f"Memory: {', '.join(banks)}; k = {settings['memory_k']}; retriever {settings['retriever']}; "
                     f"levels {'+'.join(settings['levels'])}.")
    parts += ["", "## Results (%)", "", markdown_table(*results_table(records, tasks)), ""]
    for task in tasks:
        header, rows = scaling_table(records, task)
        if rows:
            parts += [f"## Test-time scaling: {task} (%)", "",
                      "maj@k: majority vote over k samples; best@k: any of k samples correct (pass@k, unbiased); "
                      "headroom = best@k - maj@k; coverage: solved by at least one of all samples.", "",
                      markdown_table(header, rows), ""]
    if coverage:
        parts += ["## Coverage difference (questions solved by at least one sample)", ""]
        for diff in coverage:
            parts.append(f"- {coverage_sentence(diff, examples=10)}")
        parts.append("")
    if plots:
        parts += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    parts += ["Generations with the memory each prompt was given: `runs/<run>/samples_<task>.jsonl`.", ""]
    return "\n".join(parts)


def write_summary(folder: ResultsFolder, name: str, settings: dict, records: list[dict], tasks: Sequence[str]) -> dict:
    """summary.json, summary.md and the plots; returns the summary."""
    coverage = coverage_differences(records)
    plots = make_plots(folder, records, tasks)
    summary = {"name": name, "tasks": list(tasks), "runs": records, "coverage_difference": coverage, "plots": plots}
    write_json(folder.path("summary.json"), summary)
    folder.path("summary.md").write_text(render_markdown(name, settings, records, tasks, coverage, plots),
                                         encoding="utf-8")
    return summary
