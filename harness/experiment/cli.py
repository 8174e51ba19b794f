"""``pmd-harness experiment run|report``: thin commands over ``runner`` and ``report``."""
from __future__ import annotations

import shlex
from pathlib import Path

import click

from pmd.errors import UserError, reports_user_errors


def _seed_list(ctx, param, value):
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


@click.group()
def experiment() -> None:
    """Grids of training runs (variants x seeds), each evaluated memory-free, and their report.

    \b
    Examples:
      pmd-harness experiment run experiments/replication_family_rules.yaml --dry-run
      pmd-harness experiment run experiments/replication_family_rules.yaml
      pmd-harness experiment run experiments/paper_ablations_qwen3_8b_sciknoweval.yaml --only pmd --seeds 0,1
      pmd-harness experiment report results/replication-family-rules
    """


@experiment.command("run")
@click.argument("experiment_file", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one field of the experiment file, e.g. --set evaluation.limit=10 (repeatable).")
@click.option("--only", "only", multiple=True, metavar="VARIANT", help="Run only this variant (repeatable).")
@click.option("--seeds", callback=_seed_list, help="Run only these of the file's seeds, e.g. 0,2.")
@click.option("--dry-run", is_flag=True,
              help="Check every variant's training config (as pmd-train --dry-run does) and list what would run.")
@reports_user_errors
def run_command(experiment_file: str, overrides: tuple[str, ...], only: tuple[str, ...], seeds: list[int] | None,
                dry_run: bool) -> None:
    """Train every (variant, seed) with pmd-train, each in its own process, then evaluate its final
    checkpoint memory-free on the tasks' test splits; results go to <output_dir>/<name>/.

    Resumable: evaluated runs are skipped, trained ones only evaluated, interrupted ones resumed
    from their newest intact checkpoint. Several jobs may share the folder: each run is locked
    while one job works on it. The `launcher` field of the file says how pmd-train is started
    ({python} and {args} filled in), e.g. "torchrun --nproc_per_node 8 -m trainer.cli {args}".

    \b
    Examples:
      pmd-harness experiment run experiments/replication_family_rules.yaml --dry-run
      pmd-harness experiment run experiments/replication_family_rules.yaml
      pmd-harness experiment run experiments/paper_main_qwen3_8b_sciknoweval.yaml --only pmd --seeds 0
      pmd-harness experiment run my_experiment.yaml --set evaluation.limit=10 --set name=quick-check
    """
    from .plan import Layout, eval_command, plan_runs, train_command
    from .runner import RunFailed, run_experiment
    from .spec import load_experiment
    from .validate import check_variants

    exp = load_experiment(experiment_file, list(overrides))
    runs = plan_runs(exp, list(only) or None, seeds)
    notes = check_variants(exp, dry_run=dry_run)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    layout = Layout(exp.folder)
    if dry_run:
        from harness.tables import print_table

        print_table(f"experiment {exp.name}: {len(runs)} runs -> {exp.folder}",
                    ["run", "status", "training config", "variant overrides"],
                    [[run.name, layout.status(run), exp.variant_config_path(run.variant),
                      " ".join(exp.variants[run.variant].overrides) or "-"] for run in runs])
        if exp.base_overrides:
            click.echo(f"every variant: {' '.join(exp.base_overrides)}")
        if runs:
            click.echo(f"commands of {runs[0].name} (the others differ in variant and seed):")
            click.echo("  " + shlex.join(train_command(exp, runs[0], layout)))
            click.echo("  " + shlex.join(eval_command(exp, runs[0], layout)))
        return
    try:
        outcome = run_experiment(exp, runs, echo=click.echo, progress=True)
    except RunFailed as err:
        raise UserError(str(err)) from None
    click.echo(f"done: {len(outcome.done)} runs this time, {len(outcome.skipped)} already evaluated, "
               f"{len(outcome.held)} held by other jobs -> {exp.folder}")
    if not outcome.held:
        click.echo(f"report: pmd-harness experiment report {exp.folder}")


@experiment.command("report")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@reports_user_errors
def report_command(folder: Path) -> None:
    """Tables with 95% intervals over seeds and over questions, paired differences against the
    baseline, learning curves and memory growth with a band across seeds, and the coverage
    comparison, in FOLDER/report/ (summary.md, summary.json, plots/).

    \b
    Example:
      pmd-harness experiment report results/replication-family-rules
    """
    from .report import write_report

    path, data = write_report(folder)
    counts = data["counts"]
    click.echo(f"{counts['evaluated']} of {counts['planned']} runs evaluated; report: {path}")
    for plot in data["plots"]:
        click.echo(f"  plot: {path.parent / plot}")
