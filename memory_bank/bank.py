"""The memory bank: one SQLite file holding the three memory levels, with provenance.

Opening is careful: a path that is not a SQLite file, a SQLite file that is not a bank, a bank with
missing tables, one from a newer schema, a truncated or damaged one (``PRAGMA quick_check``) is
rejected with a one-line ``BankError`` *before* any write (see ``bankfile.py``), so the file is left
byte-for-byte untouched; so is a bank opened with an embedder other than its vectors'. Writable
banks use WAL journaling, so an evaluation can read a bank while a trainer writes it, and every
write runs inside a transaction (``with bank.transaction(): ...`` groups a whole training step),
so a crash, a full disk or a read-only mount never leaves a half-written step.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sqlite_utils

from . import consolidation
from .bankfile import (SQLITE_HEADER, inspect_bank_file, make_parents, readonly_uri, remove_bank_files,
                       remove_created, require_current)
from .bankfile import connect as _connect
from .config import BankLimits
from .embedding import Embedder, decode_vectors, encode_vectors
from .errors import BankError, EmbeddingMismatchError
from .records import LEVEL_TABLES, Behavior, Experience, Insight, entry_text, new_uid
from .schema import existing_tables, migrate, rollback, schema_version

__all__ = ["MemoryBank", "SQLITE_HEADER", "inspect_bank_file", "utc_now"]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _refuse_other_embedder(conn: sqlite3.Connection, path: Path | None, name: str) -> None:
    """EmbeddingMismatchError when the bank's vectors came from a model other than ``name``."""
    row = conn.execute("SELECT value FROM bank_meta WHERE key = 'embedding_model'").fetchone()
    stored = row[0] if row else None
    if stored is not None and stored != name:
        raise EmbeddingMismatchError(
            f"bank {path or ':memory:'} was embedded with {stored!r}, not {name!r}; use "
            f"--embedding-model {stored} or re-embed the bank (`pmd-harness memory reembed`)"
        )


def _insert_row(record: Experience | Insight | Behavior, now: str) -> dict:
    """A record's column values for INSERT: no row id (SQLite assigns it), creation time set."""
    row = record.to_row()
    row.pop("id")
    row["created_at"] = row["created_at"] or now
    return row


class MemoryBank:
    """Read and write one bank. Use ``MemoryBank.open`` or ``MemoryBank.in_memory``."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path | None,
        *,
        readonly: bool = False,
        limits: BankLimits | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self.path = path
        self.readonly = readonly
        self.limits = limits or BankLimits()
        self.embedder = embedder
        self._depth = 0
        if embedder is not None:
            self._check_embedding_model(embedder.name)

    # ----------------------------------------------------------------- opening and closing
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        create: bool = False,
        readonly: bool = False,
        limits: BankLimits | None = None,
        embedder: Embedder | None = None,
    ) -> "MemoryBank":
        """Open the bank at ``path``; ``create`` makes a new one when the path does not exist.

        An existing file is checked read-only first (``bankfile.inspect_bank_file``: header,
        length, tables, schema version, ``PRAGMA quick_check``), so a refused file is untouched.
        """
        path = Path(path)
        if not path.exists():
            if not create or readonly:
                raise BankError(f"no memory bank at {path}; check the path")
            return cls._create(path, limits=limits, embedder=embedder)
        version = inspect_bank_file(path)
        if readonly:
            require_current(path, version)
            conn = _connect(readonly_uri(path), uri=True)
            try:
                return cls(conn, path, readonly=True, limits=limits, embedder=embedder)
            except BaseException:
                conn.close()
                raise
        return cls._initialize(_connect(str(path)), path, limits=limits, embedder=embedder)

    @classmethod
    def _create(cls, path: Path, *, limits, embedder) -> "MemoryBank":
        """A new bank file; if making it fails (full disk, ...) the file and new folders go again."""
        created = make_parents(path)
        try:
            return cls._initialize(_connect(str(path)), path, limits=limits, embedder=embedder)
        except BaseException:
            remove_bank_files(path)
            remove_created(created)
            raise

    @classmethod
    def in_memory(cls, *, limits: BankLimits | None = None, embedder: Embedder | None = None) -> "MemoryBank":
        return cls._initialize(_connect(":memory:"), None, limits=limits, embedder=embedder)

    @classmethod
    def _initialize(cls, conn, path, *, limits, embedder) -> "MemoryBank":
        """Make ``conn`` a writable bank: refuse another embedding model before any write, then
        WAL journaling and the pending migrations. ``conn`` is closed if this fails."""
        try:
            if embedder is not None and "bank_meta" in existing_tables(conn):
                _refuse_other_embedder(conn, path, embedder.name)
            if path is not None:
                conn.execute("PRAGMA journal_mode = WAL")
                # NORMAL is atomic and consistent under WAL; only an OS crash can lose the last commit.
                conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn, utc_now())
            bank = cls(conn, path, limits=limits, embedder=embedder)
            if bank.meta("bank_id") is None:
                with bank.transaction():
                    bank._set_meta_raw("bank_id", new_uid())
                    bank._set_meta_raw("created_at", utc_now())
            return bank
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "MemoryBank":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return schema_version(self.conn)

    # ----------------------------------------------------------------- transactions and meta
    @contextlib.contextmanager
    def transaction(self) -> Iterator["MemoryBank"]:
        """All writes inside commit together or not at all; nested blocks join the outer one."""
        self._require_writable()
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
            self._set_meta_raw("generation", str(self.generation() + 1))
            self.conn.execute("COMMIT")
        except BaseException:
            rollback(self.conn)
            raise
        finally:
            self._depth = 0

    def _require_writable(self) -> None:
        if self.readonly:
            raise BankError(f"{self.path} was opened read-only; open it for writing to change it")

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM bank_meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def _set_meta_raw(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO bank_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._set_meta_raw(key, value)

    def generation(self) -> int:
        """Number of committed write transactions; retrieval indexes rebuild when it changes."""
        return int(self.meta("generation", "0"))

    # ----------------------------------------------------------------- runs, questions, clusters
    def register_run(self, run_id: str, model: str, task: str = "", config: dict | None = None) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO runs (run_id, model, task, started_at, config) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(run_id) DO UPDATE SET model = excluded.model, task = excluded.task",
                (run_id, model, task, utc_now(), json.dumps(config or {})),
            )

    def upsert_question(
        self, question_id: str, prompt: str, *, task: str = "", step: int = 0, run_id: str = "", model: str = ""
    ) -> None:
        """Add a question, or widen its step range if it is already known."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO questions (question_id, task, prompt, first_step, last_step, run_id, model,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(question_id) DO UPDATE SET"
                " first_step = MIN(first_step, excluded.first_step),"
                " last_step = MAX(last_step, excluded.last_step)",
                (question_id, task, prompt, step, step, run_id, model, utc_now()),
            )

    def add_cluster(
        self, question_ids: Sequence[str], *, label: str = "", step: int = 0, run_id: str = "",
        model: str = "", uid: str | None = None,
    ) -> int:
        """Record a cluster of questions and point each question at it; returns the cluster id."""
        with self.transaction():
            cluster_id = self.db["clusters"].insert({
                "uid": uid or new_uid(), "label": label, "size": len(question_ids), "step": step,
                "run_id": run_id, "model": model, "created_at": utc_now(),
            }).last_pk
            self.conn.executemany(
                "UPDATE questions SET cluster_id = ? WHERE question_id = ?",
                [(cluster_id, qid) for qid in question_ids],
            )
        return int(cluster_id)

    # ----------------------------------------------------------------- level 0: experiences
    def add_experiences(self, experiences: Iterable[Experience]) -> list[int]:
        """Store sampled answers, then trim each touched question to its experience cap.

        Returns the ids of the new rows that survived the cap.
        """
        experiences = list(experiences)
        with self.transaction():
            # One upsert per distinct (question, step), not one per sampled answer.
            for exp in {(e.question_id, e.step): e for e in experiences}.values():
                self.upsert_question(exp.question_id, exp.prompt, step=exp.step, run_id=exp.run_id, model=exp.model)
            new_ids = [self._insert("experience", exp) for exp in experiences]
            kept: set[int] = set()
            for question_id in {exp.question_id for exp in experiences}:
                kept.update(self._trim_experiences(question_id))
        return [i for i in new_ids if i in kept]

    def _trim_experiences(self, question_id: str) -> set[int]:
        rows = self._rows("SELECT id, reward, step FROM experiences WHERE question_id = ?", (question_id,))
        keep = consolidation.experiences_to_keep(
            rows, self.limits.max_experiences_per_question, self.limits.success_threshold
        )
        return self._keep_only("experiences", rows, keep)

    # ----------------------------------------------------------------- level 1: insights
    def add_insight(self, insight: Insight, vector: np.ndarray | None = None) -> int | None:
        """Store an insight, merging it into a near-duplicate of the same question and kind.

        Returns the id of the row that now holds it (the merged-into row for a duplicate), or None
        when the per-question cap evicted it at once (its confidence ranked last). ``vector``: its
        embedding ``[1, dim]`` when the caller embedded a batch at once (faster than one by one).
        """
        with self.transaction():
            if not self.conn.execute(
                "SELECT 1 FROM questions WHERE question_id = ?", (insight.question_id,)
            ).fetchone():
                raise BankError(f"insight for unknown question {insight.question_id!r}; add the question first")
            vector = self._embed_one(insight.text) if vector is None else vector
            candidates = self._rows(
                "SELECT id, uid, text, confidence, support, first_step, last_step FROM insights"
                " WHERE question_id = ? AND kind = ?", (insight.question_id, insight.kind),
            )
            duplicate = self._find_duplicate(insight.text, vector, candidates, "insight")
            if duplicate is not None:
                existing = next(r for r in candidates if r["id"] == duplicate)
                updates = consolidation.merged_insight_fields(
                    existing, insight.confidence, insight.support, insight.last_step
                )
                self.db["insights"].update(duplicate, updates)
                return duplicate
            new_id = self._insert("insight", insight, vector)
            rows = self._rows(
                "SELECT id, confidence, support, last_step FROM insights WHERE question_id = ?",
                (insight.question_id,),
            )
            keep = self._keep_only("insights", rows, consolidation.insights_to_keep(rows, self.limits.max_insights_per_question))
            return new_id if new_id in keep else None

    # ----------------------------------------------------------------- level 2: behaviors
    def add_behavior(self, behavior: Behavior, vector: np.ndarray | None = None) -> int | None:
        """Store a behavior, merging it into a near-duplicate of the same kind (support added,
        source insights united). Returns its row id, or None if the bank cap evicted it.
        ``vector``: its embedding ``[1, dim]`` when the caller embedded a batch at once."""
        with self.transaction():
            vector = self._embed_one(behavior.text) if vector is None else vector
            candidates = self._rows(
                "SELECT id, uid, text, support, source_insights, step FROM behaviors WHERE kind = ?",
                (behavior.kind,),
            )
            duplicate = self._find_duplicate(behavior.text, vector, candidates, "behavior")
            if duplicate is not None:
                existing = next(r for r in candidates if r["id"] == duplicate)
                sources = list(dict.fromkeys(json.loads(existing["source_insights"]) + behavior.source_insights))
                self.db["behaviors"].update(duplicate, {
                    "support": existing["support"] + behavior.support,
                    "source_insights": json.dumps(sources),
                    "step": max(existing["step"], behavior.step),
                })
                return duplicate
            new_id = self._insert("behavior", behavior, vector)
            rows = self._rows("SELECT id, support, step FROM behaviors")
            keep = self._keep_only("behaviors", rows, consolidation.behaviors_to_keep(rows, self.limits.max_behaviors))
            return new_id if new_id in keep else None

    def _insert(self, level: str, record: Experience | Insight | Behavior, vector: np.ndarray | None = None) -> int:
        """Insert one record (and its vector); returns the new row id."""
        new_id = self.db[LEVEL_TABLES[level]].insert(_insert_row(record, utc_now())).last_rowid
        self._store_vectors(level, [record.uid], vector)
        return new_id

    def _keep_only(self, table: str, rows: list[dict], keep_ids: Sequence[int]) -> set[int]:
        """Delete the ``rows`` not in ``keep_ids`` (a cap decision); returns the kept ids."""
        keep = set(keep_ids)
        self._delete(table, [r["id"] for r in rows if r["id"] not in keep])
        return keep

    def _find_duplicate(self, text: str, vector, candidates: list[dict], level: str) -> int | None:
        if not candidates:
            return None
        stored = {}
        if vector is not None:
            uids = [c["uid"] for c in candidates]
            stored = dict(zip(*self.vectors(level, self.embedder.name, uids=uids)))
        triples = [(c["id"], c["text"], stored.get(c["uid"])) for c in candidates]
        return consolidation.most_similar(
            text, None if vector is None else vector[0], triples,
            self.limits.dedup_threshold, self.limits.lexical_dedup_threshold,
        )

    # ----------------------------------------------------------------- bulk import
    def bulk_insert(
        self, records: Sequence[Experience | Insight | Behavior], vectors: np.ndarray | None = None,
        model: str | None = None, batch_size: int = 10_000,
    ) -> None:
        """Insert many records of one level as they are: no caps, no duplicate merging.

        For importing banks and building large synthetic ones; questions referenced by the records
        must exist (``upsert_question``). ``vectors`` ([N, dim], optional) are stored under ``model``.
        """
        if not records:
            return
        level = {Experience: "experience", Insight: "insight", Behavior: "behavior"}[type(records[0])]
        now = utc_now()
        rows = [_insert_row(record, now) for record in records]
        with self.transaction():
            self.db[LEVEL_TABLES[level]].insert_all(rows, batch_size=batch_size)
            if vectors is not None:
                self._store_vectors(level, [r.uid for r in records], vectors, model)

    # ----------------------------------------------------------------- deletion
    def _delete(self, table: str, ids: Sequence[int]) -> None:
        """Delete rows and their embeddings (embeddings are keyed by uid)."""
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        self.conn.execute(
            f"DELETE FROM embeddings WHERE entry_uid IN (SELECT uid FROM {table} WHERE id IN ({marks}))", ids
        )
        self.conn.execute(f"DELETE FROM {table} WHERE id IN ({marks})", ids)

    def clear(self, levels: Iterable[str]) -> None:
        """Remove every entry of ``levels`` (transient memory ends each step this way)."""
        with self.transaction():
            for level in levels:
                table = LEVEL_TABLES[level]
                self.conn.execute(
                    f"DELETE FROM embeddings WHERE entry_uid IN (SELECT uid FROM {table})"
                )
                self.conn.execute(f"DELETE FROM {table}")

    # ----------------------------------------------------------------- embeddings
    @property
    def embedding_model(self) -> str | None:
        """The embedding model the bank's stored vectors came from (None before any)."""
        return self.meta("embedding_model")

    def _check_embedding_model(self, name: str) -> None:
        _refuse_other_embedder(self.conn, self.path, name)

    def _embed_one(self, text: str) -> np.ndarray | None:
        return None if self.embedder is None else self.embedder.encode([text])

    def embed_batch(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        """One ``[1, dim]`` vector per text from a single encoder call (None without an embedder)."""
        if self.embedder is None or not texts:
            return [None] * len(texts)
        vectors = self.embedder.encode(list(texts))
        return [vectors[i:i + 1] for i in range(len(texts))]

    def _store_vectors(self, level: str, uids: Sequence[str], vectors: np.ndarray | None, model: str | None = None) -> None:
        if vectors is None or not len(uids):
            return
        model = model or self.embedder.name
        self._check_embedding_model(model)
        if self.embedding_model is None:
            self._set_meta_raw("embedding_model", model)
        dim = int(vectors.shape[1])
        self.conn.executemany(
            "INSERT OR REPLACE INTO embeddings (entry_uid, level, model, dim, vector) VALUES (?, ?, ?, ?, ?)",
            [(uid, level, model, dim, encode_vectors(vec)) for uid, vec in zip(uids, vectors)],
        )

    def store_vectors(self, level: str, uids: Sequence[str], vectors: np.ndarray, model: str) -> None:
        """Store precomputed vectors for entries of ``level`` under embedding model ``model``."""
        with self.transaction():
            self._store_vectors(level, uids, vectors, model)

    def texts_and_vectors(self, level: str, model: str | None) -> tuple[list[tuple[str, int, str]], list[str], list]:
        """Every entry of ``level`` in id order: keys (level, id, uid), texts for retrieval, and the
        stored float16 vector blob for ``model`` (None where missing, or for every entry when
        ``model`` is None). One query, so 1M-entry banks load in seconds."""
        text_cols = "t.prompt, t.response, t.feedback" if level == "experience" else "t.text"
        cursor = self.conn.execute(
            f"SELECT t.id, t.uid, e.vector, {text_cols} FROM {LEVEL_TABLES[level]} t "
            "LEFT JOIN embeddings e ON e.entry_uid = t.uid AND e.model = ? ORDER BY t.id",
            (model or "",),
        )
        cursor.row_factory = None  # plain tuples: much faster than sqlite3.Row at this scale
        keys, texts, blobs = [], [], []
        for row in cursor:
            keys.append((level, row[0], row[1]))
            blobs.append(row[2])
            fields = dict(zip(("prompt", "response", "feedback"), row[3:])) if level == "experience" else {"text": row[3]}
            texts.append(entry_text(level, fields))
        return keys, texts, blobs

    def vectors(self, level: str, model: str, uids: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
        """Stored vectors of ``level`` for ``model``: (uids, [N, dim] float32)."""
        query = "SELECT entry_uid, dim, vector FROM embeddings WHERE model = ? AND level = ?"
        params: list = [model, level]
        if uids is not None:
            query += f" AND entry_uid IN ({','.join('?' * len(uids))})"
            params += list(uids)
        rows = self.conn.execute(query, params).fetchall()
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [r[0] for r in rows], decode_vectors([r[2] for r in rows], rows[0][1])

    def reembed(self, embedder: Embedder, levels: Iterable[str] = LEVEL_TABLES) -> int:
        """Replace every stored vector with ``embedder``'s; returns how many were computed."""
        with self.transaction():
            self.conn.execute("DELETE FROM embeddings")
            self.conn.execute("DELETE FROM bank_meta WHERE key = 'embedding_model'")
            total = 0
            for level in levels:
                rows = self.entries(level)
                if rows:
                    vecs = embedder.encode([entry_text(level, r) for r in rows])
                    self._store_vectors(level, [r["uid"] for r in rows], vecs, embedder.name)
                    total += len(rows)
            self._set_meta_raw("embedding_model", embedder.name)
        self.embedder = embedder
        return total

    # ----------------------------------------------------------------- reading
    def _rows(self, sql: str, params: Sequence = ()) -> list[dict]:
        return [dict(r) for r in self.conn.execute(sql, params).fetchall()]

    def entries(self, level: str, where: str = "", params: Sequence = ()) -> list[dict]:
        """All rows of ``level`` (experience, insight or behavior), oldest first."""
        table = LEVEL_TABLES[level]
        rows = self._rows(f"SELECT * FROM {table} {where} ORDER BY id", params)
        if level == "behavior":
            for row in rows:
                row["source_insights"] = json.loads(row["source_insights"])
        return rows

    def experiences(self, question_id: str) -> list[dict]:
        return self.entries("experience", "WHERE question_id = ?", (question_id,))

    def insights(self, question_id: str | None = None, kind: str | None = None) -> list[dict]:
        clauses, params = [], []
        if question_id is not None:
            clauses.append("question_id = ?")
            params.append(question_id)
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        return self.entries("insight", ("WHERE " + " AND ".join(clauses)) if clauses else "", params)

    def behaviors(self, kind: str | None = None) -> list[dict]:
        if kind is None:
            return self.entries("behavior")
        return self.entries("behavior", "WHERE kind = ?", (kind,))

    def questions(self) -> list[dict]:
        return self._rows("SELECT * FROM questions ORDER BY question_id")

    def clusters(self) -> list[dict]:
        return self._rows("SELECT * FROM clusters ORDER BY cluster_id")

    def runs(self) -> list[dict]:
        return self._rows("SELECT run_id, model, task, started_at FROM runs ORDER BY started_at")

    def counts(self) -> dict[str, int]:
        tables = {"question": "questions", "cluster": "clusters", **LEVEL_TABLES, "embedding": "embeddings"}
        return {
            name: self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for name, table in tables.items()
        }
