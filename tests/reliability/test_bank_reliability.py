"""Memory banks under bad input and failing storage: every ``pmd-harness memory`` command refuses a
bad bank, path or option with one ``error:`` line (or click's usage ``Error:``), a non-zero exit
code and no traceback, and leaves every file it was pointed at with the same names and bytes; a
refused merge or export creates nothing; a truncated or damaged bank is caught on open; a write
that fails for a full or read-only disk leaves the bank as it was.

Each CLI case runs the real console script in a subprocess (about the interpreter's start-up);
banks are a few kilobytes, built with ``MemoryBank`` and the hashing embedder.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from cli_checks import assert_refused_untouched, run_cli, tree_hashes
from conftest import dir_listing, file_digest
from memory_bank import BankError, Behavior, EmbeddingMismatchError, Experience, Insight, MemoryBank
from memory_bank import transfer
from memory_bank.bankfile import readonly_uri
from memory_bank.embedding import HashingEmbedder
from memory_bank.schema import migrate
from memory_bank.transfer import export_bank, merge_banks

PAGE = 4096


# ----------------------------------------------------------------------------- small banks
def _fill(bank: MemoryBank, tag: str = "a", n: int = 12) -> None:
    """A run, ``n`` questions with a success and a failure each, one insight each, one behavior."""
    bank.register_run(f"run-{tag}", "tiny", "demo")
    with bank.transaction():
        for i in range(n):
            qid = f"{tag}-q{i}"
            bank.add_experiences([
                Experience(qid, f"Which gas is noble? ({tag} {i}) " * 8, f"<answer>{r}</answer> " + "because " * 30,
                           1.0 if r == "A" else 0.0, f"feedback {r}", step=i, run_id=f"run-{tag}", model="tiny")
                for r in ("A", "B")
            ])
            bank.add_insight(Insight(qid, "strategy", f"noble gases sit in group 18 ({tag} {i})", 0.5,
                                     first_step=i, last_step=i, run_id=f"run-{tag}", model="tiny"))
        bank.add_behavior(Behavior("skill", f"recall the periodic table group first ({tag})", step=n,
                                   run_id=f"run-{tag}", model="tiny"))


def build_bank(path: Path, tag: str = "a", n: int = 12, embedder=None) -> Path:
    """A closed bank as the trainer leaves one (WAL header, no -wal beside it)."""
    with MemoryBank.open(path, create=True, embedder=embedder or HashingEmbedder(dim=32)) as bank:
        _fill(bank, tag, n)
    return path


def build_export(path: Path, tag: str = "e", n: int = 12) -> Path:
    """An exported bank (rollback-journal header): opening it for writing would switch its header
    to WAL, so any write on refusal shows in its hash."""
    work = path.with_name(f".work-{path.name}")
    build_bank(work, tag, n)
    with MemoryBank.open(work, readonly=True) as bank:
        export_bank(bank, path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    return path


def entries(path: Path) -> dict[str, list]:
    """The uids of every experience and insight, read without writing beside the bank."""
    conn = sqlite3.connect(readonly_uri(path), uri=True)
    try:
        return {t: conn.execute(f"SELECT uid, question_id FROM {t} ORDER BY uid").fetchall()
                for t in ("experiences", "insights")}
    finally:
        conn.close()


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


# ----------------------------------------------------------------------------- bad banks
def _missing(tmp: Path) -> Path:
    return tmp / "absent.db"


def _folder(tmp: Path) -> Path:
    (tmp / "folder.db").mkdir()
    return tmp / "folder.db"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "pipe.db")  # reading it would block forever
    return tmp / "pipe.db"


def _empty(tmp: Path) -> Path:
    (tmp / "empty.db").write_bytes(b"")
    return tmp / "empty.db"


def _text(tmp: Path) -> Path:
    (tmp / "notes.db").write_text("question,answer\n1,A\n")
    return tmp / "notes.db"


def _not_a_bank(tmp: Path) -> Path:
    conn = sqlite3.connect(tmp / "people.db")
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.commit()
    conn.close()
    return tmp / "people.db"


def _newer_schema(tmp: Path) -> Path:
    path = build_export(tmp / "future.db")
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO migrations VALUES (99, 'from_the_future', 'later')")
    conn.commit()
    conn.close()
    return path


def _older_schema(tmp: Path) -> Path:
    conn = sqlite3.connect(tmp / "old.db", isolation_level=None)
    migrate(conn, "2026-01-01T00:00:00", target=1)
    conn.close()
    return tmp / "old.db"


def _missing_table(tmp: Path) -> Path:
    path = build_export(tmp / "holed.db")
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE insights")
    conn.commit()
    conn.close()
    return path


def _cut(tmp: Path, name: str, keep, *, unset_count: bool = False) -> Path:
    """An exported bank cut to ``keep(size)`` bytes; ``unset_count`` makes SQLite ignore the page
    count in its header (as for a file a legacy tool wrote), so only ``quick_check`` can tell."""
    path = build_export(tmp / name)
    data = bytearray(path.read_bytes())
    if unset_count:
        data[92:96] = (int.from_bytes(data[92:96], "big") + 1).to_bytes(4, "big")
    path.write_bytes(bytes(data[:keep(len(data))]))
    return path


def _cut_half(tmp: Path) -> Path:
    return _cut(tmp, "half.db", lambda size: size // 2)


def _cut_pages(tmp: Path) -> Path:
    return _cut(tmp, "pages.db", lambda size: size - 2 * PAGE)  # whole pages: the header still parses


def _cut_pages_no_count(tmp: Path) -> Path:
    return _cut(tmp, "pages-nocount.db", lambda size: size - 2 * PAGE, unset_count=True)


def _zeroed_page(tmp: Path) -> Path:
    """Full length, intact header, one page in the middle overwritten with zeros."""
    path = build_export(tmp / "zeroed.db")
    data = bytearray(path.read_bytes())
    middle = len(data) // PAGE // 2
    data[middle * PAGE:(middle + 1) * PAGE] = bytes(PAGE)
    path.write_bytes(bytes(data))
    return path


# (factory, words the error line must hold besides the file name)
BAD_BANKS = {
    "missing": (_missing, "no memory bank"),
    "folder": (_folder, "directory"),
    "fifo": (_fifo, "not a regular file"),
    "empty": (_empty, "not a sqlite file"),
    "text": (_text, "not a sqlite file"),
    "not-a-bank": (_not_a_bank, "not a pmd memory bank"),
    "newer-schema": (_newer_schema, "newer than this pmd"),
    "older-schema": (_older_schema, "memory migrate"),
    "missing-table": (_missing_table, "missing bank tables"),
    "cut-half": (_cut_half, "truncated"),
    "cut-pages": (_cut_pages, "truncated"),
    "cut-pages-no-count": (_cut_pages_no_count, "damaged"),
    "zeroed-page": (_zeroed_page, "quick_check"),
}
DAMAGED = ["missing-table", "cut-half", "cut-pages", "cut-pages-no-count", "zeroed-page"]


def _words(kind: str, path: Path) -> tuple[str, ...]:
    """What the one error line must hold: the problem; and the file, except for click's usage
    errors (a folder given where a file is wanted), which quote it their own way."""
    problem = BAD_BANKS[kind][1]
    if kind == "folder":
        return (problem,)
    return (path.name, problem, *(("checkpoint",) if kind in DAMAGED else ()))


@pytest.fixture
def dest(tmp_path) -> Path:
    return build_export(tmp_path / "dest.db", "d", 4)


@pytest.fixture
def source(tmp_path) -> Path:
    return build_bank(tmp_path / "source.db", "s", 4)


# ----------------------------------------------------------------------------- every command, every bad bank
READ_COMMANDS = {
    "stats": lambda bank, tmp: ["stats", bank],
    "merge-into-existing": lambda bank, tmp: ["merge", tmp / "dest.db", bank],
    "merge-into-new": lambda bank, tmp: ["merge", tmp / "new" / "merged.db", bank],
}
SOME_READ_COMMANDS = {
    "show": lambda bank, tmp: ["show", bank, "--level", "insight"],
    "search": lambda bank, tmp: ["search", bank, "noble gas", "--retriever", "bm25"],
    "export": lambda bank, tmp: ["export", bank, tmp / "out" / "exported.db"],
}
SOME_KINDS = ["missing", "text", "newer-schema", "older-schema", "cut-pages", "zeroed-page"]
WRITE_COMMANDS = {  # the bad bank is the one that would be written
    "merge-dest": lambda bank, tmp: ["merge", bank, tmp / "source.db"],
    "migrate": lambda bank, tmp: ["migrate", bank],
    "reembed": lambda bank, tmp: ["reembed", bank, "--embedding-model", "hash-32"],
}
WRITE_KINDS = ["folder", "fifo", "text", "not-a-bank", "newer-schema", "cut-half", "cut-pages-no-count",
               "zeroed-page"]
CASES = ([(c, k, READ_COMMANDS[c]) for c in READ_COMMANDS for k in BAD_BANKS]
         + [(c, k, SOME_READ_COMMANDS[c]) for c in SOME_READ_COMMANDS for k in SOME_KINDS]
         + [(c, k, WRITE_COMMANDS[c]) for c in WRITE_COMMANDS for k in WRITE_KINDS])


@pytest.mark.parametrize("command, kind, args", CASES, ids=[f"{c}-{k}" for c, k, _ in CASES])
def test_bad_bank_is_refused_and_nothing_changes(tmp_path, dest, source, command, kind, args):
    bad = BAD_BANKS[kind][0](tmp_path)
    assert_refused_untouched(["pmd-harness", "memory", *map(str, args(bad, tmp_path))], touched=[tmp_path],
                             contains=_words(kind, bad))
    assert not (tmp_path / "new").exists() and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- merge: the same file, all-or-nothing
@pytest.mark.parametrize("alias", ["same", "relative", "symlink", "hardlink"])
def test_merge_of_a_bank_into_itself_is_refused_untouched(tmp_path, dest, alias):
    other = {"same": lambda: dest, "relative": lambda: Path("sub/../dest.db"),
             "symlink": lambda: _link(tmp_path / "link.db", dest, os.symlink),
             "hardlink": lambda: _link(tmp_path / "hard.db", dest, os.link)}[alias]()
    (tmp_path / "sub").mkdir()
    assert_refused_untouched(["pmd-harness", "memory", "merge", str(dest), str(other)], touched=[tmp_path],
                             contains="destination bank itself", cwd=tmp_path)


def _link(link: Path, target: Path, how) -> Path:
    how(target, link)
    return link


def test_merge_with_one_bad_source_merges_none(tmp_path, dest, source):
    """The good source named first is not merged either: every source is checked before DEST."""
    bad = _cut_pages_no_count(tmp_path)
    assert_refused_untouched(["pmd-harness", "memory", "merge", str(dest), str(source), str(bad)],
                             touched=[tmp_path], contains=(bad.name, "damaged"))


def test_merge_into_a_path_under_a_file_creates_nothing(tmp_path, source):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    target = tmp_path / "notes.txt" / "merged.db"
    assert_refused_untouched(["pmd-harness", "memory", "merge", str(target), str(source)], touched=[tmp_path],
                             contains=("notes.txt", "not a folder"))


def test_merge_into_new_file_that_fails_midway_leaves_nothing(tmp_path, source, monkeypatch):
    """A new destination is built in a temporary file: a failure after some rows were written
    leaves neither the destination, nor the temporary file, nor the folders made for it."""
    real = transfer._merge_from

    def fails_after_writing(dest_bank, source_bank):
        real(dest_bank, source_bank)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(transfer, "_merge_from", fails_after_writing)
    before = tree_hashes(tmp_path)
    with pytest.raises(sqlite3.OperationalError):
        merge_banks(tmp_path / "new" / "deeper" / "merged.db", [source])
    assert tree_hashes(tmp_path) == before


def test_merge_into_existing_bank_that_fails_on_second_source_keeps_it(tmp_path, dest, source, monkeypatch):
    """Every source goes in one transaction: a failure on the second undoes the first."""
    second = build_bank(tmp_path / "second.db", "t", 3)
    real, calls = transfer._merge_from, []

    def fails_on_second(dest_bank, source_bank):
        calls.append(source_bank.path)
        real(dest_bank, source_bank)
        if len(calls) == 2:
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(transfer, "_merge_from", fails_on_second)
    before = entries(dest)
    with pytest.raises(sqlite3.OperationalError):
        merge_banks(dest, [source, second])
    assert len(calls) == 2
    assert entries(dest) == before and integrity(dest) == "ok"


def test_merge_into_new_nested_file_succeeds_without_leftovers(tmp_path, source):
    target = tmp_path / "new" / "merged.db"
    reports = merge_banks(target, [source, source])  # a source named twice is merged once
    assert list(reports) == [str(source)] and reports[str(source)].added["experience"] == 8
    assert dir_listing(target.parent) == ["merged.db"]  # no temporary file, no -wal
    with MemoryBank.open(target, readonly=True) as merged:
        assert merged.counts()["insight"] == 4
    assert dir_listing(target.parent) == ["merged.db"]  # reading it leaves no -wal/-shm either


# ----------------------------------------------------------------------------- export siblings
def _export_case(tmp_path: Path, dest: Path, case: str) -> tuple[list[str], tuple[str, ...]]:
    if case == "onto-itself":
        return ["export", dest, dest, "--force"], ("onto itself",)
    if case == "onto-itself-by-symlink":
        return ["export", dest, _link(tmp_path / "alias.db", dest, os.symlink), "--force"], ("onto itself",)
    if case == "existing-file":
        (tmp_path / "taken.db").write_text("precious")
        return ["export", dest, tmp_path / "taken.db"], ("taken.db", "already exists", "--force")
    if case == "folder":
        (tmp_path / "out").mkdir()
        return ["export", dest, tmp_path / "out"], ("directory",)
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    return ["export", dest, tmp_path / "notes.txt" / "x.db"], ("notes.txt", "not a folder")


@pytest.mark.parametrize("case", ["onto-itself", "onto-itself-by-symlink", "existing-file", "folder", "under-a-file"])
def test_export_refusals_change_and_create_nothing(tmp_path, dest, case):
    args, words = _export_case(tmp_path, dest, case)
    assert_refused_untouched(["pmd-harness", "memory", *map(str, args)], touched=[tmp_path], contains=words)


# ----------------------------------------------------------------------------- bad options
OPTION_CASES = {
    "search-empty-query": (["search", "{bank}", ""], "query is empty"),
    "search-blank-query": (["search", "{bank}", "   "], "query is empty"),
    "search-tab-newline-query": (["search", "{bank}", "\t\n"], "query is empty"),
    "search-k-zero": (["search", "{bank}", "noble", "-k", "0"], "-k"),
    "search-k-negative": (["search", "{bank}", "noble", "-k", "-3"], "-k"),
    "search-k-not-a-number": (["search", "{bank}", "noble", "-k", "three"], "-k"),
    "search-bad-level": (["search", "{bank}", "noble", "--levels", "insight,wisdom"], "wisdom"),
    "search-no-level": (["search", "{bank}", "noble", "--levels", " , "], "not a level"),
    "search-bad-retriever": (["search", "{bank}", "noble", "--retriever", "grep"], "--retriever"),
    "search-bad-fusion": (["search", "{bank}", "noble", "--fusion", "sum"], "--fusion"),
    "search-empty-embedding-model": (["search", "{bank}", "noble", "--embedding-model", " "], "embedding model"),
    "search-missing-embedding-model": (["search", "{bank}", "noble", "--embedding-model", "./no-such-model"],
                                       "no-such-model"),
    "search-reembed-missing-model": (["search", "{bank}", "noble", "--embedding-model", "./no-such-model",
                                      "--reembed"], "no-such-model"),
    "search-no-query": (["search", "{bank}"], "query"),
    "show-bad-level": (["show", "{bank}", "--level", "wisdom"], "--level"),
    "show-bad-insight-kind": (["show", "{bank}", "--level", "insight", "--kind", "skil"], ("skil", "strategy")),
    "show-kind-of-experience": (["show", "{bank}", "--level", "experience", "--kind", "lesson"], "no kind"),
    "show-limit-zero": (["show", "{bank}", "--limit", "0"], "--limit"),
    "show-empty-question": (["show", "{bank}", "--question", ""], "question id is empty"),
    "stats-no-bank": (["stats"], "bank"),
    "merge-no-source": (["merge", "{bank}"], "sources"),
    "reembed-missing-model": (["reembed", "{bank}", "--embedding-model", "./no-such-model"], "no-such-model"),
    "reembed-empty-model": (["reembed", "{bank}", "--embedding-model", ""], "embedding model"),
    "reembed-no-model": (["reembed", "{bank}"], "--embedding-model"),
    "export-no-dest": (["export", "{bank}"], "dest"),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_bad_option_is_refused_and_bank_untouched(tmp_path, dest, case):
    """``dest`` is an exported bank: had a refused command opened it for writing, its header's
    journal mode would have changed."""
    args, words = OPTION_CASES[case]
    command = ["pmd-harness", "memory", *[str(dest) if a == "{bank}" else a for a in args]]
    assert_refused_untouched(command, touched=[tmp_path], contains=words)


@pytest.mark.slow  # imports sentence-transformers (about 5 s)
def test_unloadable_hub_model_is_one_line(tmp_path, dest):
    """A hub id that is not downloaded: the hub's several-line message becomes one line."""
    line = assert_refused_untouched(["pmd-harness", "memory", "reembed", str(dest), "--embedding-model",
                                     "no-such-org/no-such-model"], touched=[tmp_path], contains="no-such-org")
    assert "\n" not in line


def test_migrate_of_an_up_to_date_bank_writes_nothing(tmp_path, dest):
    before = tree_hashes(tmp_path)
    proc = run_cli(["pmd-harness", "memory", "migrate", str(dest)])
    assert proc.returncode == 0 and "latest v3" in proc.stdout, proc.stderr
    assert tree_hashes(tmp_path) == before


# ----------------------------------------------------------------------------- opening: damage, debris
@pytest.mark.parametrize("kind", DAMAGED)
@pytest.mark.parametrize("readonly", [True, False], ids=["readonly", "writable"])
def test_damaged_bank_is_refused_on_open_naming_file_and_fix(tmp_path, kind, readonly):
    path = BAD_BANKS[kind][0](tmp_path)
    before = tree_hashes(tmp_path)
    with pytest.raises(BankError) as err:
        MemoryBank.open(path, readonly=readonly)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "damaged" in message
    assert "checkpoints/step-*/memory.db" in message
    assert tree_hashes(tmp_path) == before


def test_reading_a_finished_bank_leaves_no_wal_or_shm(tmp_path):
    path = build_bank(tmp_path / "done.db")
    assert path.read_bytes()[18:20] == b"\x02\x02"  # a WAL bank, with no -wal beside it
    before = tree_hashes(tmp_path)
    with MemoryBank.open(path, readonly=True) as bank:
        assert bank.counts()["insight"] == 12
        assert dir_listing(tmp_path) == ["done.db"]
    proc = run_cli(["pmd-harness", "memory", "stats", str(path)])
    assert proc.returncode == 0, proc.stderr
    assert tree_hashes(tmp_path) == before


def test_new_bank_that_fails_while_being_made_is_removed(tmp_path, monkeypatch):
    import memory_bank.bank as bank_module

    def full_disk(conn, now):
        conn.execute("CREATE TABLE half_made (x)")
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(bank_module, "migrate", full_disk)
    with pytest.raises(sqlite3.OperationalError):
        MemoryBank.open(tmp_path / "a" / "b" / "new.db", create=True)
    assert dir_listing(tmp_path) == []


def test_other_embedding_model_is_refused_before_any_write(tmp_path, dest):
    before = file_digest(dest)
    with pytest.raises(EmbeddingMismatchError, match="hash-32-seed0"):
        MemoryBank.open(dest, embedder=HashingEmbedder(dim=64))
    assert file_digest(dest) == before and dir_listing(tmp_path) == ["dest.db"]


# ----------------------------------------------------------------------------- full and read-only disks
@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs at ``tmp_path / "disk"`` (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _big_source(tmp_path: Path) -> Path:
    """A bank of about 2 MiB of text: more than the small disk holds."""
    path = tmp_path / "big.db"
    with MemoryBank.open(path, create=True) as bank:
        with bank.transaction():
            for i in range(50):
                bank.upsert_question(f"big-{i}", "p")
        bank.bulk_insert([Experience(f"big-{i}", "p", os.urandom(20_000).hex(), 0.0, step=i) for i in range(50)])
    return path


def test_write_on_a_full_disk_leaves_the_bank_intact(small_disk):
    path = build_bank(small_disk / "bank.db", n=4)
    before = entries(path)
    with MemoryBank.open(path) as bank:
        generation = bank.generation()
        with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
            bank.add_experiences([Experience(f"x{i}", "p", os.urandom(20_000).hex(), 0.0) for i in range(60)])
        assert bank.generation() == generation and bank.counts()["experience"] == 8
        bank.add_experiences([Experience("small", "p", "r", 1.0)])  # the bank still takes small writes
    assert integrity(path) == "ok"
    after = entries(path)
    assert set(before["experiences"]) < set(after["experiences"]) and after["insights"] == before["insights"]
    assert len(after["experiences"]) == 9


def test_merge_onto_a_full_disk_is_one_line_and_keeps_the_bank(tmp_path, small_disk):
    path = build_bank(small_disk / "bank.db", n=4)
    big = _big_source(tmp_path)
    before = entries(path)
    line = assert_refused_untouched(["pmd-harness", "memory", "merge", str(path), str(big)],
                                    touched=[path, big], contains="disk is full")
    assert "free space" in line
    assert integrity(path) == "ok" and entries(path) == before


@pytest.mark.parametrize("command", ["export", "merge-into-new"])
def test_new_file_on_a_full_disk_leaves_no_debris(tmp_path, small_disk, command):
    big = _big_source(tmp_path)
    target = small_disk / "out.db"
    args = ["export", big, target] if command == "export" else ["merge", target, big]
    assert_refused_untouched(["pmd-harness", "memory", *map(str, args)], touched=[small_disk, big],
                             contains="disk is full")
    assert dir_listing(small_disk) == []


def test_merge_into_a_bank_on_a_read_only_disk_is_one_line(tmp_path, small_disk, source):
    build_bank(small_disk / "bank.db", n=4)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True, capture_output=True)
    assert_refused_untouched(["pmd-harness", "memory", "merge", str(small_disk / "bank.db"), str(source)],
                             touched=[small_disk, source], contains="cannot write")
    proc = run_cli(["pmd-harness", "memory", "stats", str(small_disk / "bank.db")])  # reading still works
    assert proc.returncode == 0 and "insight" in proc.stdout, proc.stderr
