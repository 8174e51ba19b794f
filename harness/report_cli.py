"""``pmd-harness report``: training curves and memory growth of runs, and comparison tables."""
from __future__ import annotations

import json
from pathlib import Path

import click

from pmd.errors import reports_user_errors

from .atomic_files import write_text_atomically


def check_outputs(kinds: dict[Path, str], out: Path | None) -> None:
    """Every place the command writes (each training run's report/ folder, ``--out`` and the .json
    beside it) can be written, checked before anything is."""
    from .atomic_files import check_writable
    from .comparison import load_eval_summary
    from .training_report import REPORT_DIR, load_run

    for folder, kind in kinds.items():
        if kind == "training":
            load_run(folder)  # a metrics file with no valid line is an error before any report is written
            check_writable(folder / REPORT_DIR, "report folder")
        else:
            load_eval_summary(folder)
    if out is not None:
        if out.suffix == ".json":
            raise ValueError(f"--out {out} is where the .json goes beside the table; give the table's .md path")
        check_writable(out, "--out")


@click.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the comparison table here (.md, with a .json beside it).")
@reports_user_errors
def report(folders: tuple[Path, ...], out: Path | None) -> None:
    """Report on training runs and evaluation folders; several folders make one comparison table.

    For a pmd-train run folder this writes RUN_DIR/report/ (training_curves.png, memory_growth.png,
    report.md, report.json). For a pmd-harness eval folder it shows its summary.

    \b
    Examples:
      pmd-harness report results/demo-pmd
      pmd-harness report results/grpo results/sdpo results/pmd results/pmd-transient --out results/ablations.md
      pmd-harness report results/eval-pmd results/eval-sdpo
    """
    from .comparison import (TRAINING_HEADER, comparison_markdown, eval_coverage, eval_table, kind_of,
                             load_eval_summary, training_rows)
    from .eval_summary import coverage_sentence
    from .tables import print_table
    from .training_report import summarize_run, training_report

    kinds = {folder: kind_of(folder) for folder in folders}  # every path checked before any writing
    check_outputs(kinds, out)
    training, evals = [], {}
    for folder, kind in kinds.items():
        if kind == "training":
            result = training_report(folder)
            if result.get("metrics_lines_skipped"):
                click.echo(f"warning: {folder / 'metrics.jsonl'}: skipped {result['metrics_lines_skipped']} lines that "
                           "are not a JSON step record (a torn or damaged line); the report uses the rest", err=True)
            # rows are named by folder: two runs may share a run.name in their configs
            training.append(summarize_run(folder) | {"run": folder.name})
            click.echo(f"{folder}: report in {result['out_dir']}")
        else:
            evals[folder.name] = load_eval_summary(folder)
            click.echo(f"{folder}: summary in {folder / 'summary.md'}")
    if training:
        print_table("Training runs", TRAINING_HEADER, training_rows(training))
    if evals:
        print_table("Evaluations (%)", *eval_table(evals))
    coverage = eval_coverage(evals)
    for diff in coverage:
        click.echo(coverage_sentence(diff))
    if out is not None:
        write_text_atomically(out, comparison_markdown(training, evals, coverage))
        write_text_atomically(out.with_suffix(".json"), json.dumps(
            {"training": training, "evaluations": evals, "coverage_difference": coverage}, indent=2, default=str) + "\n")
        click.echo(f"comparison: {out}")

