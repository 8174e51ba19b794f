"""``pmd-harness data ...``: build a benchmark's split files from its source dataset."""
from __future__ import annotations

from pathlib import Path

import click

from pmd.errors import reports_user_errors


@click.group()
def data() -> None:
    """Prepare benchmark data files.

    \b
    Example:
      pmd-harness data sciknoweval --out data/sciknoweval
    """


@data.command()
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write <domain>/{train,test}.json into.")
@click.option("--source", default="hicai-zju/SciKnowEval", show_default=True,
              help="Hub dataset id, or a local file/folder in the hub's record format.")
@click.option("--domain", "domains", multiple=True, type=click.Choice(["biology", "chemistry", "material", "physics"]),
              help="Domains to build (repeatable; default: all four).")
@click.option("--revision", default=None, help="Hub revision (branch, tag or commit) to pin.")
@reports_user_errors
def sciknoweval(out: Path, source: str, domains: tuple[str, ...], revision: str | None) -> None:
    """Build the SciKnowEval L3 90/10 split (seed 42) that SDPO and PMD train and test on.

    \b
    Example:
      pmd-harness data sciknoweval --out data/sciknoweval --domain biology
    """
    from tasks.sciknoweval.hub import DOMAINS, write_split_files

    from .atomic_files import check_writable

    check_writable(out, "--out")  # before the download, not after it

    sizes = write_split_files(out, domains or DOMAINS, source, revision=revision)
    for domain, (train, test) in sizes.items():
        click.echo(f"{domain}: {train} train / {test} test -> {out / domain}")
