"""The bank as a file: checking one before it is opened, and creating one without leaving debris.

Every check here reads only, so a file that is refused is left byte-for-byte as it was (no
``-wal``/``-shm`` beside it either):

1. the path exists, is a regular file, starts with the SQLite header;
2. the file is as long as its header says (a cut file is caught at once, without reading it);
3. it is a bank (a ``migrations`` table), of a schema this pmd knows, with every table;
4. ``PRAGMA quick_check`` finds every page readable and every b-tree well formed, which catches
   damage in the middle of a file whose header is intact. It reads the whole file once: about
   1 ms per MiB from the page cache (10 ms for an 11 MiB bank of 4,000 entries with vectors,
   0.15 s for 284 MiB / 100,000 entries), once per open.

Creating a bank makes its missing parent folders; ``remove_created`` takes them away again when the
write that needed them fails.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .errors import BankError
from .schema import LATEST_VERSION, existing_tables, required_tables, schema_version

SQLITE_HEADER = b"SQLite format 3\x00"
HEADER_BYTES = 100
RESTORE_HINT = ("restore it from a checkpoint's snapshot (<run>/checkpoints/step-*/memory.db; "
                "`pmd-train --resume` does this) or from an export")


def connect(target: str, *, uri: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN/COMMIT; sqlite-utils nests savepoints)."""
    conn = sqlite3.connect(target, uri=uri, isolation_level=None, timeout=30, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def readonly_uri(path: Path) -> str:
    """URI for reading ``path`` without writing beside it: immutable when no ``-wal`` is there
    (nobody is writing it, and a plain read-only open of a WAL bank would leave -wal/-shm files),
    a plain read-only WAL reader while a writer is active."""
    flags = "mode=ro" if Path(f"{path}-wal").exists() else "mode=ro&immutable=1"
    return f"{path.resolve().as_uri()}?{flags}"


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name one file (relative paths, symlinks and hard links too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return Path(a).resolve() == Path(b).resolve()


def damaged(path: Path, problem: str) -> BankError:
    return BankError(f"{path} is damaged ({problem}); {RESTORE_HINT}")


def read_header(path: Path) -> bytes:
    """The first 100 bytes of ``path``, after checking it is a regular file."""
    if not path.exists():
        raise BankError(f"no memory bank at {path}; check the path")
    if path.is_dir():
        raise BankError(f"{path} is a directory; pass the bank's .db file")
    if not path.is_file():
        raise BankError(f"{path} is not a regular file; pass the bank's .db file")
    with open(path, "rb") as handle:
        return handle.read(HEADER_BYTES)


def check_header(path: Path, header: bytes) -> None:
    """A SQLite file, and not shorter than its header says (its page count times page size)."""
    if header[:len(SQLITE_HEADER)] != SQLITE_HEADER:
        raise BankError(
            f"{path} is not a memory bank (not a SQLite file); pass a .db written by pmd-train "
            "or `pmd-harness memory export`"
        )
    if len(header) < HEADER_BYTES:
        raise damaged(path, f"only {len(header)} bytes, shorter than a SQLite header")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise damaged(path, f"its header gives an impossible page size {page_size}")
    pages = int.from_bytes(header[28:32], "big")
    count_valid = header[24:28] == header[92:96]  # SQLite trusts the count only then
    # With a -wal beside it the file may lag its header (a checkpoint in progress); SQLite repairs
    # that from the -wal, so only a bank nobody is writing is held to its header.
    if count_valid and pages and not Path(f"{path}-wal").exists():
        size, want = path.stat().st_size, pages * page_size
        if size < want:
            raise damaged(path, f"truncated: {size} bytes of the {want} its header records")


def check_tables(path: Path, tables: set[str], version: int) -> None:
    """A bank (migrations table), of a schema this pmd supports, with every table it needs."""
    if "migrations" not in tables:
        raise BankError(f"{path} is a SQLite database but not a pmd memory bank (no migrations table)")
    if version > LATEST_VERSION:
        raise BankError(
            f"{path} has bank schema version {version}, newer than this pmd supports "
            f"({LATEST_VERSION}); upgrade pmd to read it"
        )
    missing = sorted(required_tables(version) - tables)
    if missing:
        raise damaged(path, f"missing bank tables ({', '.join(missing)})")


def quick_check(conn: sqlite3.Connection) -> str | None:
    """The first problem ``PRAGMA quick_check`` finds (every page read once), or None."""
    first = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    if first == "ok":
        return None
    return " ".join(str(first).replace("*** in database main ***", "").split())


def inspect_bank_file(path: Path) -> int:
    """Validate ``path`` read-only and return its schema version; raise BankError otherwise."""
    path = Path(path)
    check_header(path, read_header(path))
    try:
        conn = connect(readonly_uri(path), uri=True)
        try:
            tables = existing_tables(conn)
            version = schema_version(conn)
            check_tables(path, tables, version)
            problem = quick_check(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        if isinstance(err, sqlite3.OperationalError) and "unable to open" in str(err):
            raise  # the location, not the file: the storage error line names the fix
        raise damaged(path, f"SQLite cannot read it: {err}") from None
    if problem is not None:
        raise damaged(path, f"quick_check: {problem}")
    return version


def require_current(path: Path, version: int) -> None:
    """Reading a bank needs the current schema; migrating is a write, so it is left to the user."""
    if version < LATEST_VERSION:
        raise BankError(
            f"{path} has schema version {version} (current {LATEST_VERSION}); "
            f"upgrade it once with `pmd-harness memory migrate {path}`"
        )


def check_creatable(path: Path) -> None:
    """``path`` can be made: nothing there yet that is not a bank file, parents are folders."""
    if path.is_dir():
        raise BankError(f"{path} is a directory; pass the path of a .db file")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BankError(f"cannot create {path}: {parent} is a file, not a folder; choose another path")
            return


def make_parents(path: Path) -> list[Path]:
    """Create the missing folders above ``path``; returns them, outermost first."""
    check_creatable(path)
    missing = [p for p in reversed(path.parents) if not p.exists()]
    for folder in missing:
        folder.mkdir()
    return missing


def remove_bank_files(path: Path) -> None:
    """Delete a bank file and its ``-wal``/``-shm``/``-journal`` companions, if there."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def remove_created(folders: list[Path]) -> None:
    """Remove folders ``make_parents`` created (innermost first), where they are still empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return
