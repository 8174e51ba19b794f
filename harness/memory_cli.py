"""``pmd-harness memory ...``: inspect, search, export and merge memory banks.

Commands are thin: parse options, call ``memory_bank``, print a table (or JSON with ``--json``).
"""
from __future__ import annotations

from pathlib import Path

import click

from pmd.errors import reports_user_errors
from .tables import print_json, print_kv, print_table

LEVEL_CHOICE = click.Choice(["experience", "insight", "behavior"])
KINDS = {"experience": (), "insight": ("strategy", "lesson"), "behavior": ("skill", "mistake-to-avoid")}


def _open(path: str, *, write: bool = False, create: bool = False):
    from memory_bank import MemoryBank

    return MemoryBank.open(path, readonly=not write, create=create)


def _check_bank(path: str) -> int:
    """Validate BANK read-only (before a slow model load or any write); returns its schema version."""
    from memory_bank.bankfile import inspect_bank_file

    return inspect_bank_file(Path(path))


def _not_blank(value: str | None, hint: str, what: str) -> None:
    """A given but empty (or all-blank) text argument is a usage error, not "match everything"."""
    if value is not None and not value.strip():
        raise click.BadParameter(f"{what} is empty; pass a non-blank value", param_hint=hint)


def _check_kind(level: str, kind: str | None) -> None:
    if kind is None or kind in KINDS[level]:
        return
    fix = (f"use one of {', '.join(KINDS[level])}" if KINDS[level]
           else "experiences have no kind; drop --kind or use --level insight or behavior")
    raise click.BadParameter(f"{kind!r} is not a kind of {level} entries; {fix}", param_hint="--kind")


def _levels(text: str) -> list[str]:
    levels = [part.strip() for part in text.split(",") if part.strip()]
    bad = [lvl for lvl in levels if lvl not in ("experience", "insight", "behavior")]
    if bad or not levels:
        raise click.BadParameter(
            f"{','.join(bad) or text!r} is not a level; use a comma list of experience,insight,behavior"
        )
    return levels


@click.group()
def memory() -> None:
    """Inspect, search, export and merge memory banks (SQLite files).

    \b
    Example:
      pmd-harness memory stats results/demo/bank.db
    """


@memory.command()
@click.argument("bank", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@reports_user_errors
def stats(bank: str, as_json: bool) -> None:
    """Counts per level, runs, steps, schema and embedding model of BANK.

    \b
    Example:
      pmd-harness memory stats results/demo/bank.db --json
    """
    from memory_bank.transfer import bank_stats

    with _open(bank) as opened:
        info = bank_stats(opened)
    if as_json:
        print_json(info)
        return
    print_kv(f"memory bank {info['path']}", {
        "schema": f"v{info['schema_version']} ({', '.join(info['migrations'])})",
        "embedding model": info["embedding_model"] or "none yet",
        "models": ", ".join(info["models"]) or "-",
        "tasks": ", ".join(info["tasks"]) or "-",
        "runs": len(info["runs"]),
        "steps": f"{info['steps']['first']} .. {info['steps']['last']}",
        "mean reward": "-" if info["mean_reward"] is None else f"{info['mean_reward']:.3f}",
        "file size": f"{(info['file_bytes'] or 0) / 1024:.1f} KiB",
    })
    print_table("entries", ["level", "count"], [[k, v] for k, v in info["counts"].items()])


@memory.command()
@click.argument("bank", type=click.Path(dir_okay=False))
@click.option("--level", type=LEVEL_CHOICE, default="insight", show_default=True, help="Which level to list.")
@click.option("--question", help="Only entries about this question id.")
@click.option("--kind", help="Only this kind (strategy, lesson, skill, mistake-to-avoid).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON (all columns).")
@reports_user_errors
def show(bank: str, level: str, question: str | None, kind: str | None, limit: int, as_json: bool) -> None:
    """List entries of one level of BANK, newest first.

    \b
    Examples:
      pmd-harness memory show results/demo/bank.db --level behavior
      pmd-harness memory show results/demo/bank.db --level experience --question demo-mcq-3
    """
    _not_blank(question, "--question", "the question id")
    _check_kind(level, kind)
    clauses, params = [], []
    if question:
        clauses.append("question_id = ?")
        params.append(question)
    if kind:
        clauses.append("kind = ?")
        params.append(kind)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    with _open(bank) as opened:
        rows = opened.entries(level, where, params)[::-1][:limit]
    if as_json:
        print_json(rows)
        return
    columns = {
        "experience": ["id", "question_id", "reward", "step", "model", "response", "feedback"],
        "insight": ["id", "question_id", "kind", "confidence", "support", "last_step", "text"],
        "behavior": ["id", "kind", "support", "cluster_id", "step", "text"],
    }[level]
    print_table(f"{level} entries ({len(rows)} shown)", columns, [[r[c] for c in columns] for r in rows])


@memory.command()
@click.argument("bank", type=click.Path(dir_okay=False))
@click.argument("query")
@click.option("-k", "--top-k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="Entries to return.")
@click.option("--levels", default="insight,behavior", show_default=True, help="Comma list of levels to search.")
@click.option("--retriever", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid", show_default=True,
              help="Ranking: BM25 + dense fused, or one alone.")
@click.option("--fusion", type=click.Choice(["rrf", "weighted"]), default="rrf", show_default=True,
              help="How hybrid rankings combine: reciprocal rank fusion (k=60) or weighted scores.")
@click.option("--embedding-model", default=None,
              help="sentence-transformers model name or path (default: the bank's, else all-MiniLM-L6-v2).")
@click.option("--reembed", is_flag=True, help="Re-embed the bank when its embedding model differs (writes BANK).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@reports_user_errors
def search(bank: str, query: str, k: int, levels: str, retriever: str, fusion: str,
           embedding_model: str | None, reembed: bool, as_json: bool) -> None:
    """Hybrid search of BANK for QUERY (a question or any text).

    \b
    Example:
      pmd-harness memory search results/demo/bank.db "balance the redox equation" -k 3
    """
    from memory_bank.config import RetrievalConfig
    from memory_bank.embedding import load_embedder
    from memory_bank.retrieval import BankRetriever

    _not_blank(query, "QUERY", "the query")
    _not_blank(embedding_model, "--embedding-model", "the embedding model name")
    level_list = _levels(levels)
    with _open(bank) as opened:
        model = embedding_model or opened.embedding_model or RetrievalConfig().embedding_model
        config = RetrievalConfig(embedding_model=model, mode=retriever, fusion=fusion, levels=level_list)
        if not reembed:
            results = BankRetriever(opened, config).search(query, k)
    if reembed:
        embedder = load_embedder(model)  # before BANK is opened for writing: a bad model changes nothing
        with _open(bank, write=True) as opened:
            results = BankRetriever(opened, config, embedder=embedder, reembed=True).search(query, k)
    if as_json:
        print_json([{key: getattr(r, key) for key in ("level", "id", "uid", "score", "bm25_rank", "dense_rank", "text")}
                    for r in results])
        return
    rows = [[i + 1, r.level, r.id, f"{r.score:.4f}", r.bm25_rank or "-", r.dense_rank or "-", r.text]
            for i, r in enumerate(results)]
    print_table(f"top {k} for {query!r} ({retriever})", ["#", "level", "id", "score", "bm25", "dense", "text"], rows)


@memory.command()
@click.argument("bank", type=click.Path(dir_okay=False))
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace DEST if it exists (only after the copy is complete).")
@click.option("--source-model", help="Record this model in the manifest (default: the runs' models).")
@click.option("--task", help="Record this task in the manifest (default: the runs' tasks).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@reports_user_errors
def export(bank: str, dest: str, force: bool, source_model: str | None, task: str | None, as_json: bool) -> None:
    """Write a self-contained copy of BANK to DEST with a manifest.

    \b
    Example:
      pmd-harness memory export results/run1/memory.db banks/qwen3-8b-sciknoweval.db
    """
    from memory_bank.transfer import export_bank

    with _open(bank) as opened:
        manifest = export_bank(opened, dest, overwrite=force, source_model=source_model, task=task)
    if as_json:
        print_json(manifest)
        return
    counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
    click.echo(f"exported {bank} -> {dest} (schema v{manifest['schema_version']}; {counts})")


@memory.command()
@click.argument("dest", type=click.Path(dir_okay=False))
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print what was added as JSON.")
@reports_user_errors
def merge(dest: str, sources: tuple[str, ...], as_json: bool) -> None:
    """Merge SOURCES into DEST (created if missing), keeping every entry and its provenance.

    Entries already in DEST (same uid) are skipped, so merging twice adds nothing.

    \b
    Example:
      pmd-harness memory merge combined.db run1/memory.db run2/memory.db
    """
    from memory_bank.transfer import merge_banks

    reports = merge_banks(dest, sources)  # checks every bank before DEST is written or created
    if as_json:
        print_json({src: {"added": r.added, "skipped": r.skipped, "vectors_skipped": r.vectors_skipped}
                    for src, r in reports.items()})
        return
    for source, report in reports.items():
        click.echo(f"{source}: {report.summary()}")


@memory.command()
@click.argument("bank", type=click.Path(dir_okay=False))
@reports_user_errors
def migrate(bank: str) -> None:
    """Upgrade BANK to this pmd's schema version (applies pending migrations in order).

    \b
    Example:
      pmd-harness memory migrate old-run/memory.db
    """
    from memory_bank.schema import LATEST_VERSION

    version = _check_bank(bank)
    if version < LATEST_VERSION:  # an up-to-date bank is not opened for writing at all
        with _open(bank, write=True) as opened:
            version = opened.schema_version
    click.echo(f"{bank}: schema v{version} (latest v{LATEST_VERSION})")


@memory.command()
@click.argument("bank", type=click.Path(dir_okay=False))
@click.option("--embedding-model", required=True, help="sentence-transformers model name or path.")
@reports_user_errors
def reembed(bank: str, embedding_model: str) -> None:
    """Recompute every stored vector of BANK with another embedding model.

    \b
    Example:
      pmd-harness memory reembed results/demo/bank.db --embedding-model all-MiniLM-L6-v2
    """
    from memory_bank.embedding import load_embedder

    _not_blank(embedding_model, "--embedding-model", "the embedding model name")
    _check_bank(bank)
    embedder = load_embedder(embedding_model)  # before BANK is opened for writing
    with _open(bank, write=True) as opened:
        total = opened.reembed(embedder)
    click.echo(f"{bank}: re-embedded {total} entries with {embedding_model}")
