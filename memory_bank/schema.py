"""The bank's SQLite schema, changed only through named, ordered migrations.

Each migration is a ``(version, name, sql)`` triple applied once, in order, inside a transaction,
and recorded in the ``migrations`` table; the bank's schema version is the highest recorded
version. Never edit a released migration: add a new one at the end.

Tables (all plain text, numbers and JSON, so any SQLite tool shows them):

* ``bank_meta``   key/value facts about the bank (bank id, embedding model, write generation).
* ``runs``        one row per training run that wrote into the bank (model, task, config).
* ``questions``   the questions memory is about; ``cluster_id`` links to ``clusters``.
* ``clusters``    groups of related questions that behaviors are abstracted over.
* ``experiences`` level 0: sampled answers with reward and verifier feedback.
* ``insights``    level 1: per-question strategies and lessons with confidence and support.
* ``behaviors``   level 2: cross-question skills and mistakes to avoid, with source insights.
* ``embeddings``  one vector per (entry uid, embedding model), float16 little-endian.

Every entry row carries provenance: ``run_id``, ``step`` (or first/last step) and ``model``, plus a
global ``uid`` that survives export and merge.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "create_core_tables",
        """
        CREATE TABLE bank_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY, model TEXT, task TEXT, started_at TEXT, config TEXT
        );
        CREATE TABLE questions (
            question_id TEXT PRIMARY KEY, task TEXT, prompt TEXT NOT NULL, cluster_id INTEGER,
            first_step INTEGER, last_step INTEGER, run_id TEXT, model TEXT, created_at TEXT
        );
        CREATE TABLE clusters (
            cluster_id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, label TEXT,
            size INTEGER NOT NULL DEFAULT 0, step INTEGER, run_id TEXT, model TEXT, created_at TEXT
        );
        CREATE TABLE experiences (
            id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE,
            question_id TEXT NOT NULL REFERENCES questions(question_id),
            prompt TEXT NOT NULL, response TEXT NOT NULL, reward REAL NOT NULL, feedback TEXT,
            step INTEGER NOT NULL, policy_version INTEGER, run_id TEXT, model TEXT, created_at TEXT
        );
        CREATE TABLE insights (
            id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE,
            question_id TEXT NOT NULL REFERENCES questions(question_id),
            kind TEXT NOT NULL CHECK (kind IN ('strategy', 'lesson')),
            text TEXT NOT NULL, confidence REAL NOT NULL, support INTEGER NOT NULL DEFAULT 1,
            first_step INTEGER, last_step INTEGER, run_id TEXT, model TEXT, created_at TEXT
        );
        CREATE TABLE behaviors (
            id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('skill', 'mistake-to-avoid')),
            text TEXT NOT NULL, cluster_id INTEGER, source_insights TEXT NOT NULL DEFAULT '[]',
            support INTEGER NOT NULL DEFAULT 1, step INTEGER, run_id TEXT, model TEXT,
            created_at TEXT
        );
        """,
    ),
    Migration(
        2,
        "add_embeddings",
        """
        CREATE TABLE embeddings (
            entry_uid TEXT NOT NULL, level TEXT NOT NULL, model TEXT NOT NULL,
            dim INTEGER NOT NULL, vector BLOB NOT NULL,
            PRIMARY KEY (entry_uid, model)
        );
        """,
    ),
    Migration(
        3,
        "add_lookup_indexes",
        """
        CREATE INDEX idx_experiences_question ON experiences(question_id);
        CREATE INDEX idx_insights_question ON insights(question_id, kind);
        CREATE INDEX idx_behaviors_kind ON behaviors(kind);
        CREATE INDEX idx_embeddings_model_level ON embeddings(model, level);
        """,
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

def required_tables(version: int) -> set[str]:
    """Tables a bank of schema ``version`` must have (the migrations table included)."""
    tables = {"migrations"}
    for migration in MIGRATIONS[:version]:
        for line in migration.sql.splitlines():
            words = line.split()
            if words[:2] == ["CREATE", "TABLE"]:
                tables.add(words[2])
    return tables


MIGRATIONS_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL
)
"""


def existing_tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row[0] for row in rows}


def schema_version(conn: sqlite3.Connection) -> int:
    """Highest applied migration, 0 for a database with no migrations table."""
    if "migrations" not in existing_tables(conn):
        return 0
    row = conn.execute("SELECT MAX(version) FROM migrations").fetchone()
    return int(row[0] or 0)


def applied_migrations(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
    return conn.execute("SELECT version, name, applied_at FROM migrations ORDER BY version").fetchall()


def migrate(conn: sqlite3.Connection, now: str, target: int = LATEST_VERSION) -> list[Migration]:
    """Apply every migration above the current version up to ``target``, one transaction each.

    ``conn`` must be in autocommit mode (``isolation_level=None``) so each BEGIN/COMMIT here is
    the real transaction boundary; a failure rolls back that migration and leaves the earlier
    ones applied and recorded.
    """
    conn.execute(MIGRATIONS_TABLE_SQL)
    current = schema_version(conn)
    applied = []
    for migration in MIGRATIONS:
        if migration.version <= current or migration.version > target:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migration.sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, now),
            )
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        applied.append(migration)
    return applied


def rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already (it rolls back by itself after a full
    disk or an I/O error, and a second ROLLBACK would hide that error behind its own)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")
