"""``pmd-harness report``: training curves and memory growth of runs, and comparison tables."""
from __future__ import annotations

import json
from pathlib import Path

import click

from pmd.errors import reports_user_errors


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
    training, evals = [], {}
    for folder, kind in kinds.items():
        if kind == "training":
            result = training_report(folder)
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
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(comparison_markdown(training, evals, coverage), encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps(
            {"training": training, "evaluations": evals, "coverage_difference": coverage}, indent=2, default=str) + "\n")
        click.echo(f"comparison: {out}")

