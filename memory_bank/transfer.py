"""Moving memory between runs and models: summary statistics, export with a manifest, and merge.

An exported bank is a single self-contained SQLite file (rollback journal, no ``-wal`` beside it)
whose ``bank_meta.manifest`` row records the schema version, source models, tasks, runs, step range
and counts. Merging copies every entry that the destination does not already hold (entries are
matched by their global ``uid``), so merging is lossless and idempotent and keeps provenance.

Both refuse bad input before writing anything: a refused export or merge changes no file and
creates none (``merge_banks`` checks every source, and the destination, first).
"""
from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .bank import MemoryBank, utc_now
from .bankfile import make_parents, remove_bank_files, remove_created, same_file
from .errors import BankError
from .records import LEVEL_TABLES, new_uid
from .schema import applied_migrations


def bank_stats(bank: MemoryBank) -> dict:
    """What a person (or ``--json``) wants to know about a bank at a glance."""
    counts = bank.counts()
    steps = bank.conn.execute(
        "SELECT MIN(s), MAX(s) FROM (SELECT step AS s FROM experiences UNION ALL "
        "SELECT first_step FROM insights UNION ALL SELECT last_step FROM insights "
        "UNION ALL SELECT step FROM behaviors)"
    ).fetchone()
    reward = bank.conn.execute("SELECT AVG(reward) FROM experiences").fetchone()[0]
    models = sorted({r["model"] for r in bank.runs() if r["model"]})
    tasks = sorted({r["task"] for r in bank.runs() if r["task"]})
    manifest = bank.meta("manifest")
    return {
        "path": str(bank.path) if bank.path else ":memory:",
        "bank_id": bank.meta("bank_id"),
        "schema_version": bank.schema_version,
        "migrations": [f"{v:03d}_{name}" for v, name, _ in applied_migrations(bank.conn)],
        "embedding_model": bank.embedding_model,
        "counts": counts,
        "runs": bank.runs(),
        "models": models,
        "tasks": tasks,
        "steps": {"first": steps[0], "last": steps[1]},
        "mean_reward": reward,
        "file_bytes": bank.path.stat().st_size if bank.path and bank.path.exists() else None,
        "manifest": json.loads(manifest) if manifest else None,
    }


def build_manifest(bank: MemoryBank, **extra: object) -> dict:
    stats = bank_stats(bank)
    manifest = {
        "format": "pmd-memory-bank",
        "schema_version": stats["schema_version"],
        "bank_id": stats["bank_id"],
        "source_models": stats["models"],
        "tasks": stats["tasks"],
        "runs": [r["run_id"] for r in stats["runs"]],
        "steps": stats["steps"],
        "counts": stats["counts"],
        "embedding_model": stats["embedding_model"],
        "exported_at": utc_now(),
    }
    manifest.update({k: v for k, v in extra.items() if v is not None})
    return manifest


def export_bank(
    bank: MemoryBank, dest: str | Path, *, overwrite: bool = False,
    source_model: str | None = None, task: str | None = None,
) -> dict:
    """Write a self-contained copy of ``bank`` to ``dest`` with a manifest; returns the manifest.

    ``source_model`` and ``task`` override what the manifest records (by default the models and
    tasks of the runs that wrote the bank).

    The copy is built in a temporary file beside ``dest`` (SQLite's online backup, so a trainer may
    keep writing the source) and renamed into place only when complete: an existing ``dest`` is
    never half-replaced, and is refused unless ``overwrite``.
    """
    dest = Path(dest)
    if bank.path is not None and same_file(dest, bank.path):
        raise BankError(f"cannot export {dest} onto itself; choose another path")
    if dest.is_dir():
        raise BankError(f"{dest} is a directory; pass the path of the .db file to write")
    if dest.exists() and not overwrite:
        raise BankError(f"{dest} already exists; choose another path or pass --force to replace it")
    created = make_parents(dest)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except BaseException:
        remove_created(created)
        raise
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        target = sqlite3.connect(tmp, isolation_level=None)
        try:
            bank.conn.backup(target)
            target.execute("PRAGMA journal_mode = DELETE")  # one file, no -wal/-shm to carry along
            manifest = build_manifest(
                bank,
                source_models=[source_model] if source_model else None,
                tasks=[task] if task else None,
            )
            target.execute(
                "INSERT OR REPLACE INTO bank_meta (key, value) VALUES ('manifest', ?)",
                (json.dumps(manifest, sort_keys=True),),
            )
            target.execute("VACUUM")
        finally:
            target.close()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an export is meant to be shared
        os.replace(tmp, dest)
    except BaseException:
        remove_bank_files(tmp)
        remove_created(created)
        raise
    return manifest


@dataclass
class MergeReport:
    added: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    vectors_skipped: int = 0

    def summary(self) -> str:
        parts = [f"{lvl} +{n}" for lvl, n in self.added.items()]
        text = "merged: " + ", ".join(parts)
        dup = sum(self.skipped.values())
        if dup:
            text += f" ({dup} already present, skipped)"
        if self.vectors_skipped:
            text += f"; {self.vectors_skipped} vectors from another embedding model not copied"
        return text


def merge_banks(dest_path: str | Path, source_paths: Sequence[str | Path]) -> dict[str, MergeReport]:
    """Merge the banks at ``source_paths`` into the bank at ``dest_path`` (created if missing),
    all or nothing; returns one report per source.

    Everything is checked before the destination is opened for writing: each source opens
    (readable, a bank, current schema, passes ``quick_check``) and is not the destination itself
    (same resolved path or inode), and an existing destination is a bank this pmd can write. A
    refused merge therefore changes no file and creates none. An existing destination takes every
    source in one transaction; a new one is built in a temporary file beside it and renamed into
    place when complete, so a merge that fails part-way leaves no destination behind.
    """
    dest_path = Path(dest_path)
    if not source_paths:
        raise BankError("no source banks to merge; name at least one bank after the destination")
    sources: dict[str, MemoryBank] = {}
    try:
        for name in map(str, source_paths):
            if same_file(name, dest_path):
                raise BankError(f"{name} is the destination bank itself; nothing to merge")
            if not any(same_file(name, other) for other in sources):  # a source named twice
                sources[name] = MemoryBank.open(name, readonly=True)
        if dest_path.exists():  # checked read-only by open before anything is written
            with MemoryBank.open(dest_path) as dest:
                return _merge_all(dest, sources)
        return _merge_into_new(dest_path, sources)
    finally:
        for source in sources.values():
            source.close()


def _merge_all(dest: MemoryBank, sources: dict[str, MemoryBank]) -> dict[str, MergeReport]:
    with dest.transaction():  # the per-source transactions join this one
        return {name: _merge_from(dest, source) for name, source in sources.items()}


def _merge_into_new(dest_path: Path, sources: dict[str, MemoryBank]) -> dict[str, MergeReport]:
    """Build the merged bank in a temporary file beside ``dest_path``; rename it when complete."""
    created = make_parents(dest_path)
    tmp = dest_path.with_name(f".{dest_path.name}.{new_uid()[:12]}.merge.tmp")
    try:
        with MemoryBank.open(tmp, create=True) as dest:
            reports = _merge_all(dest, sources)
            _single_file(dest.conn, tmp)
        os.replace(tmp, dest_path)
    except BaseException:
        remove_bank_files(tmp)
        remove_created(created)
        raise
    return reports


def _single_file(conn: sqlite3.Connection, path: Path) -> None:
    """Fold the -wal into ``path`` (rollback journal from now on), so one rename moves it all."""
    mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
    if str(mode).lower() != "delete":
        raise BankError(f"could not finish {path} (journal mode stays {mode}); run the merge again")


def merge_into(dest: MemoryBank, source_path: str | Path) -> MergeReport:
    """Copy every entry of the bank at ``source_path`` that ``dest`` lacks, in one transaction.

    The source is checked (``MemoryBank.open(readonly=True)``) and must not be ``dest`` itself
    before anything is written. See ``_merge_from`` for what is copied.
    """
    if dest.path is not None and same_file(source_path, dest.path):
        raise BankError(f"{source_path} is the destination bank itself; nothing to merge")
    with MemoryBank.open(source_path, readonly=True) as source:
        return _merge_from(dest, source)


def _merge_from(dest: MemoryBank, source: MemoryBank) -> MergeReport:
    """Copy what ``dest`` lacks from the open ``source``, in one transaction.

    Entries match by ``uid``; clusters are re-numbered and the behaviors' and questions' cluster
    links follow them; questions union their step ranges. Caps are not applied: a merge never
    drops an entry. Vectors are copied when both banks use the same embedding model (or the
    destination has none yet); otherwise they are left to be recomputed.
    """
    report = MergeReport()
    with dest.transaction():
        for run in source._rows("SELECT * FROM runs"):
            dest.db["runs"].insert(run, ignore=True)
        cluster_map = _merge_clusters(dest, source)
        for q in source.questions():
            q["cluster_id"] = cluster_map.get(q["cluster_id"]) if q["cluster_id"] is not None else None
            dest.conn.execute(
                "INSERT INTO questions (question_id, task, prompt, cluster_id, first_step, last_step,"
                " run_id, model, created_at) VALUES (:question_id, :task, :prompt, :cluster_id,"
                " :first_step, :last_step, :run_id, :model, :created_at)"
                " ON CONFLICT(question_id) DO UPDATE SET"
                " first_step = MIN(first_step, excluded.first_step),"
                " last_step = MAX(last_step, excluded.last_step),"
                " cluster_id = COALESCE(cluster_id, excluded.cluster_id)",
                q,
            )
        for level, table in LEVEL_TABLES.items():
            have = {r[0] for r in dest.conn.execute(f"SELECT uid FROM {table}")}
            rows = source._rows(f"SELECT * FROM {table} ORDER BY id")
            new_rows = [r for r in rows if r["uid"] not in have]
            for row in new_rows:
                row.pop("id")
                if level == "behavior" and row["cluster_id"] is not None:
                    row["cluster_id"] = cluster_map.get(row["cluster_id"])
            dest.db[table].insert_all(new_rows, batch_size=1000)
            report.added[level] = len(new_rows)
            report.skipped[level] = len(rows) - len(new_rows)
        report.vectors_skipped = _merge_vectors(dest, source)
    return report


def _merge_clusters(dest: MemoryBank, source: MemoryBank) -> dict[int, int]:
    """Insert the source's clusters the destination lacks; map source cluster id -> dest id."""
    existing = {r["uid"]: r["cluster_id"] for r in dest.clusters()}
    mapping = {}
    for cluster in source.clusters():
        if cluster["uid"] in existing:
            mapping[cluster["cluster_id"]] = existing[cluster["uid"]]
            continue
        old_id = cluster.pop("cluster_id")
        mapping[old_id] = dest.db["clusters"].insert(cluster).last_pk
    return mapping


def _merge_vectors(dest: MemoryBank, source: MemoryBank) -> int:
    """Copy the source's vectors when the embedding models agree; returns how many were not."""
    model = source.embedding_model
    count = source.conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    if model is None or count == 0:
        return 0
    if dest.embedding_model not in (None, model):
        return count
    rows = source.conn.execute("SELECT entry_uid, level, model, dim, vector FROM embeddings WHERE model = ?", (model,))
    dest.conn.executemany(
        "INSERT OR IGNORE INTO embeddings (entry_uid, level, model, dim, vector) VALUES (?, ?, ?, ?, ?)",
        [tuple(r) for r in rows],
    )
    dest._set_meta_raw("embedding_model", model)
    return 0
