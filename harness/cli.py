"""``pmd-harness``: evaluation and memory-bank tools for PMD."""
from __future__ import annotations

import click

from .data_cli import data
from .eval_cli import eval_command
from .experiment.cli import experiment
from .memory_cli import memory
from .report_cli import report
from .score_cli import score


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pmd")
def main() -> None:
    """PMD evaluation harness and memory-bank tools.

    \b
    Examples:
      pmd-harness eval --model results/demo-pmd --tasks demo_mcq --no-memory
      pmd-harness report results/demo-pmd
      pmd-harness memory stats results/demo/bank.db
      pmd-harness memory search results/demo/bank.db "which option is a noble gas?"
      pmd-harness score --task demo_mcq --responses answers.jsonl
      pmd-harness experiment run experiments/replication_family_rules.yaml --dry-run
    """


main.add_command(data)
main.add_command(eval_command, name="eval")
main.add_command(experiment)
main.add_command(memory)
main.add_command(report)
main.add_command(score)

if __name__ == "__main__":
    main()
