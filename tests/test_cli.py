"""Command line: every command documents itself with an example; memory commands work end to end."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from harness.cli import main as harness_main
from memory_bank import Behavior, Experience, Insight, MemoryBank
from trainer.cli import main as train_main


def _walk(command: click.Command, path: tuple[str, ...]):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, path + (name,))


ALL_COMMANDS = list(_walk(harness_main, ("pmd-harness",))) + list(_walk(train_main, ("pmd-train",)))


@pytest.mark.parametrize("path, command", ALL_COMMANDS, ids=[" ".join(p) for p, _ in ALL_COMMANDS])
def test_every_command_has_help_with_an_example(path, command):
    root = harness_main if path[0] == "pmd-harness" else train_main
    result = CliRunner().invoke(root, [*path[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"{' '.join(path)} --help shows no example"
    example_lines = [line.strip() for line in result.output.splitlines() if line.strip().startswith(path[0])]
    assert any(line.startswith(" ".join(path)) for line in example_lines), f"no runnable example of {' '.join(path)}"


@pytest.fixture
def bank_path(tmp_path):
    path = tmp_path / "memory.db"
    with MemoryBank.open(path, create=True) as bank:
        bank.register_run("run-1", "tiny", "demo_mcq")
        bank.add_experiences([
            Experience("q1", "Which gas is noble? A: argon B: oxygen", "<answer>A</answer>", 1.0, "correct", step=1, run_id="run-1", model="tiny"),
            Experience("q1", "Which gas is noble? A: argon B: oxygen", "<answer>B</answer>", 0.0, "wrong letter B", step=1, run_id="run-1", model="tiny"),
        ])
        bank.add_insight(Insight("q1", "strategy", "Noble gases sit in group 18: helium, neon, argon", 0.5, 1, 1, 1, "run-1", "tiny"))
        bank.add_insight(Insight("q1", "lesson", "Oxygen is reactive, never a noble gas", 0.5, 1, 1, 1, "run-1", "tiny"))
        bank.add_behavior(Behavior("skill", "Recall the periodic table group before choosing", step=2, run_id="run-1", model="tiny"))
    return path


def _run(*args):
    return CliRunner().invoke(harness_main, ["memory", *map(str, args)])


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # progress bars from model loading go to stderr


def test_stats_table_and_json(bank_path):
    result = _run("stats", bank_path)
    assert result.exit_code == 0, result.output
    assert "schema" in result.output and "insight" in result.output and "tiny" in result.output
    info = _json(_run("stats", bank_path, "--json"))
    assert info["counts"]["insight"] == 2 and info["counts"]["experience"] == 2
    assert info["schema_version"] == 3 and info["models"] == ["tiny"]


def test_show_filters_by_level_question_and_kind(bank_path):
    rows = _json(_run("show", bank_path, "--level", "insight", "--kind", "lesson", "--json"))
    assert [r["text"] for r in rows] == ["Oxygen is reactive, never a noble gas"]
    rows = _json(_run("show", bank_path, "--level", "experience", "--question", "q1", "--json"))
    assert sorted(r["reward"] for r in rows) == [0.0, 1.0]
    table = _run("show", bank_path, "--level", "behavior")
    assert table.exit_code == 0 and "periodic table" in table.output


def test_search_with_the_default_embedding_model(bank_path):
    result = _run("search", bank_path, "noble gases of group 18 such as helium", "-k", "2", "--json")
    assert result.exit_code == 0, result.output
    hits = _json(result)
    assert hits[0]["text"].startswith("Noble gases sit in group 18")
    assert hits[0]["bm25_rank"] == 1 and hits[0]["dense_rank"] == 1
    # A read-only search computes vectors in memory and leaves the bank as it was.
    assert _json(_run("stats", bank_path, "--json"))["embedding_model"] is None
    bm25_only = _json(_run("search", bank_path, "oxygen reactive", "--retriever", "bm25", "--json"))
    assert bm25_only[0]["text"].startswith("Oxygen") and bm25_only[0]["dense_rank"] is None


def test_search_refuses_a_different_embedding_model_unless_reembedding(bank_path):
    MemoryBank.open(bank_path).reembed(__import__("memory_bank.embedding", fromlist=["x"]).HashingEmbedder(dim=32))
    result = _run("search", bank_path, "noble gas", "--embedding-model", "hash-64")
    assert result.exit_code == 2
    assert result.output.startswith("error: bank") and "hash-32-seed0" in result.output
    assert "Traceback" not in result.output
    ok = _run("search", bank_path, "noble gas", "--embedding-model", "hash-64", "--reembed", "--json")
    assert ok.exit_code == 0, ok.output
    assert _json(_run("stats", bank_path, "--json"))["embedding_model"] == "hash-64-seed0"


def test_export_and_merge_commands(bank_path, tmp_path):
    dest = tmp_path / "exported.db"
    manifest = _json(_run("export", bank_path, dest, "--task", "demo_mcq", "--json"))
    assert manifest["tasks"] == ["demo_mcq"] and dest.exists()
    again = _run("export", bank_path, dest)
    assert again.exit_code == 2 and "already exists" in again.output
    combined = tmp_path / "combined.db"
    result = _run("merge", combined, dest, "--json")
    assert result.exit_code == 0, result.output
    report = _json(result)[str(dest)]
    assert report["added"] == {"experience": 2, "insight": 2, "behavior": 1}
    second = _run("merge", combined, dest)
    assert "already present" in second.output


@pytest.mark.parametrize("content", [b"plain text, not a bank", b""])
def test_foreign_file_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    result = _run("stats", path)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {path} is not a memory bank (not a SQLite file); "
                                                  "pass a .db written by pmd-train or `pmd-harness memory export`"]
    assert path.read_bytes() == content


def test_console_scripts_are_installed_and_exit_non_zero_without_traceback(tmp_path):
    exe = shutil.which("pmd-harness") or str(__import__("pathlib").Path(sys.executable).parent / "pmd-harness")
    proc = subprocess.run([exe, "memory", "stats", str(tmp_path / "missing.db")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: no memory bank at {tmp_path / 'missing.db'}; check the path"
    train = subprocess.run([str(__import__("pathlib").Path(exe).parent / "pmd-train"), "--set", "optim.lr=-1", "--dry-run"],
                           capture_output=True, text=True)
    assert train.returncode == 2 and "optim.lr must be positive" in train.stderr and "Traceback" not in train.stderr


def test_vllm_engine_without_vllm_is_a_one_line_error(tmp_path):
    """In an environment without vLLM, rollout.engine=vllm stops with one clear line."""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    from trainer.vllm_engine import VLLMEngine
    from pmd.config import ConfigError

    with pytest.raises(ConfigError, match="rollout.engine 'vllm' needs vLLM"):
        VLLMEngine(str(tmp_path))
