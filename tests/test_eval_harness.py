"""``pmd-harness eval`` end to end on tiny models: no memory, memory transfer, test-time scaling,
the ``pmd-memory`` model from lm-eval's own command line, and clear errors for bad input."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main as harness_cli
from harness.eval_job import run_evaluation
from harness.eval_summary import responses_of
from harness.evaluation import EvalSettings
from memory_bank import Behavior, Insight, MemoryBank
from memory_bank.embedding import HashingEmbedder
from memory_bank.prompt_block import BLOCK_OPEN
from tasks.grading import grade_samples

from conftest import dir_listing, file_digest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Distinctive texts, so a test can find exactly these entries in a prompt.
INSIGHTS = [
    ("demo-001", "strategy", "Velocity is a vector quantity zebra-marker: it has magnitude and direction."),
    ("demo-002", "lesson", "Convert km/h to m/s by dividing by 3.6 before comparing options."),
]
BEHAVIORS = [("skill", "Read every option before answering and match units carefully.")]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from pmd.tiny_model import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def bank_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bank") / "trained.db"
    with MemoryBank.open(path, create=True, embedder=HashingEmbedder(dim=64)) as bank:
        for qid, kind, text in INSIGHTS:
            bank.upsert_question(qid, f"training question {qid}", task="demo_mcq")
            bank.add_insight(Insight(qid, kind, text, 0.8))
        for kind, text in BEHAVIORS:
            bank.add_behavior(Behavior(kind, text))
    return path


def settings(tmp_path: Path, built: dict, name: str, **overrides) -> EvalSettings:
    base = dict(models=[str(built["tiny"])], tasks=["demo_mcq"], name=name, output_dir=tmp_path,
                limit=3, max_gen_toks=6)
    return EvalSettings(**{**base, **overrides})


def read_samples(run_dir: Path, task: str = "demo_mcq") -> list[dict]:
    return [json.loads(line) for line in (run_dir / f"samples_{task}.jsonl").read_text().splitlines()]


def prompt_of(sample: dict) -> str:
    arguments = sample["arguments"]
    return arguments["gen_args_0"]["arg_0"] if isinstance(arguments, dict) else arguments[0][0]


# ------------------------------------------------------------------------------ memory-free
def test_no_memory_eval_writes_the_results_folder(tmp_path, models):
    path, summary = run_evaluation(settings(tmp_path, models, "plain"), echo=lambda _: None)
    assert path == tmp_path / "plain"
    assert dir_listing(path) == ["runs", "settings.json", "summary.json", "summary.md"]
    run_dir = path / "runs" / "tiny-no-memory"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["results"]["demo_mcq"]["acc,none"] == summary["runs"][0]["tasks"]["demo_mcq"]["value"]
    samples = read_samples(run_dir)
    assert len(samples) == 3
    for sample in samples:
        assert BLOCK_OPEN not in prompt_of(sample) and sample.get("memory", []) == []
        # the chat template was applied (ChatML), with the task's system prompt as a system turn
        assert prompt_of(sample).startswith("<|im_start|>system\n")
    # the metric is the verifier's verdict on the logged generations
    acc = sum(grade_samples(s["doc"], [s["resps"][0][0]])[0].correct for s in samples) / 3
    assert summary["runs"][0]["tasks"]["demo_mcq"]["value"] == pytest.approx(acc)
    resolved = json.loads((path / "settings.json").read_text())
    assert resolved["runs"][0]["model_path"] == str(models["tiny"]) and resolved["versions"]["lm_eval"] == "0.4.13"
    assert "| tiny · no memory |" in (path / "summary.md").read_text()


# ------------------------------------------------------------------------- memory transfer
def test_transfer_eval_puts_retrieved_memory_in_the_prompt_only_with_memory(tmp_path, models, bank_path):
    before = file_digest(bank_path)
    config = settings(tmp_path, models, "transfer", models=[str(models["tiny-large"])], memory=str(bank_path),
                      memory_k=[0, 2])
    path, summary = run_evaluation(config, echo=lambda _: None)
    labels = [r["label"] for r in summary["runs"]]
    assert labels == ["tiny-large · no memory", "tiny-large · trained k=2"]

    plain = read_samples(path / "runs" / "tiny-large-no-memory")
    assert all(BLOCK_OPEN not in prompt_of(s) for s in plain)
    with_memory = read_samples(path / "runs" / "tiny-large-trained-k2")
    bank_texts = {text for _, _, text in INSIGHTS} | {text for _, text in BEHAVIORS}
    for sample in with_memory:
        prompt = prompt_of(sample)
        entries = sample["memory"]
        assert len(entries) == 2 and all(e["text"] in bank_texts for e in entries)
        # the block sits in the user turn, before the question, and holds exactly the logged entries
        user_turn = prompt.split("<|im_start|>user\n", 1)[1]
        assert user_turn.startswith(BLOCK_OPEN)
        assert all(e["text"] in user_turn.split("</memory>")[0] for e in entries)
        assert sample["doc"]["prompt"] in user_turn.split("</memory>")[1]
    # the question about vectors gets the insight written for it (BM25 ranks it first)
    vector_q = next(s for s in with_memory if "vector" in s["doc"]["prompt"])
    zebra = next(e for e in vector_q["memory"] if "zebra-marker" in e["text"])
    assert zebra["bm25_rank"] == 1
    assert file_digest(bank_path) == before  # evaluation never writes to the bank
    assert dir_listing(bank_path.parent) == ["trained.db"]  # nor leaves -wal/-shm files beside it
    assert (path / "plots" / "memory_k_demo_mcq.png").stat().st_size > 5000


def test_plain_text_prompts_get_the_block_at_the_start(tmp_path, models, bank_path):
    config = settings(tmp_path, models, "plain-text", memory=str(bank_path), memory_k=[1], chat_template=False, limit=2)
    path, _ = run_evaluation(config, echo=lambda _: None)
    for sample in read_samples(path / "runs" / "tiny-trained-k1"):
        assert prompt_of(sample).startswith(BLOCK_OPEN) and len(sample["memory"]) == 1


def test_compare_memory_evaluates_both_banks(tmp_path, models, bank_path):
    frozen = tmp_path / "frozen.db"
    with MemoryBank.open(frozen, create=True, embedder=HashingEmbedder(dim=64)) as bank:
        bank.upsert_question("demo-001", "training question", task="demo_mcq")
        bank.add_insight(Insight("demo-001", "strategy", "Frozen-policy note about speeds.", 0.5))
    config = settings(tmp_path, models, "compare", memory=str(bank_path), compare_memory=str(frozen),
                      memory_k=[1], limit=2)
    _, summary = run_evaluation(config, echo=lambda _: None)
    assert [r["memory"] for r in summary["runs"]] == [str(bank_path), str(frozen)]
    assert [r["label"] for r in summary["runs"]] == ["tiny · trained k=1", "tiny · frozen k=1"]


# ------------------------------------------------------------------------ test-time scaling
def test_scaling_eval_reports_curves_that_match_the_samples(tmp_path, models):
    from harness.scaling import majority_at_k
    from tasks.livecodebench.metrics import pass_at_k

    config = settings(tmp_path, models, "scaling", samples=4, scaling=True, limit=4)
    path, summary = run_evaluation(config, echo=lambda _: None)
    record = summary["runs"][0]
    curve = record["scaling"]["demo_mcq"]
    assert [row["k"] for row in curve] == [1, 2, 4]
    samples = read_samples(path / "runs" / "tiny-no-memory")
    assert all(len(responses_of(s)) == 4 for s in samples)  # four sampled answers per question
    grades = [grade_samples(s["doc"], responses_of(s)) for s in samples]
    for row in curve:
        k = row["k"]
        maj = sum(majority_at_k([g.answer for g in gs], [g.correct for g in gs], k) for gs in grades) / 4
        best = sum(pass_at_k(4, sum(g.correct for g in gs), k) for gs in grades) / 4
        assert row["maj"] == pytest.approx(maj) and row["best"] == pytest.approx(best)
        assert row["headroom"] == pytest.approx(best - maj)
        assert row["coverage"] == pytest.approx(sum(any(g.correct for g in gs) for gs in grades) / 4)
    assert record["tasks"]["demo_mcq"]["samples"] == 4
    assert (path / "plots" / "scaling_demo_mcq.png").exists()
    assert "maj@4" in (path / "summary.md").read_text()


# ------------------------------------------------------------ lm-eval's own command line
def test_lm_eval_command_line_runs_the_memory_wrapper(tmp_path, models, bank_path):
    log = tmp_path / "memory_log.jsonl"
    out = tmp_path / "lm_eval_out"
    model_args = f"pretrained={models['tiny']},memory={bank_path},memory_k=2,retriever=bm25,memory_log={log}"
    result = subprocess.run(
        [str(BIN / "pmd-lm-eval"), "--model", "pmd-memory", "--model_args", model_args, "--tasks", "demo_mcq",
         "--apply_chat_template", "--device", "cpu", "--limit", "2", "--gen_kwargs", "max_gen_toks=4", "--output_path", str(out),
         "--log_samples"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    samples_file = next(out.rglob("samples_demo_mcq_*.jsonl"))
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(samples) == 2 and len(logged) == 2
    for sample in samples:
        assert BLOCK_OPEN in prompt_of(sample)
    assert {entry["text"] for record in logged for entry in record["entries"]} <= (
        {t for _, _, t in INSIGHTS} | {t for _, t in BEHAVIORS})


# ------------------------------------------------------------------------------- bad input
def cli(*args: str):
    return CliRunner().invoke(harness_cli, ["eval", *args])


@pytest.mark.parametrize("case", ["missing model", "missing bank", "foreign bank", "sqlite non-bank",
                                  "unknown task", "k larger than N", "scaling without samples"])
def test_bad_input_is_one_clear_line(tmp_path, models, bank_path, case):
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("just some text\n")
    other_sqlite = tmp_path / "other.db"
    sqlite3.connect(other_sqlite).execute("CREATE TABLE t (x)").connection.commit()
    tiny = str(models["tiny"])
    args, expected = {
        "missing model": (["--model", str(tmp_path / "nope"), "--tasks", "demo_mcq"], "model folder"),
        "missing bank": (["--model", tiny, "--tasks", "demo_mcq", "--memory", str(tmp_path / "none.db")], "no memory bank"),
        "foreign bank": (["--model", tiny, "--tasks", "demo_mcq", "--memory", str(not_sqlite)], "not a SQLite"),
        "sqlite non-bank": (["--model", tiny, "--tasks", "demo_mcq", "--memory", str(other_sqlite)], "not a pmd memory bank"),
        "unknown task": (["--model", tiny, "--tasks", "demo_mcqq"], "unknown task 'demo_mcqq': did you mean demo_mcq"),
        "k larger than N": (["--model", tiny, "--tasks", "demo_mcq", "--samples", "4", "--scaling", "--scaling-k", "1,8"],
                            "k = [8] is larger than --samples 4"),
        "scaling without samples": (["--model", tiny, "--tasks", "demo_mcq", "--scaling"], "--samples N"),
    }[case]
    before = {p: file_digest(p) for p in (not_sqlite, other_sqlite, bank_path)}
    result = cli(*args, "--output-dir", str(tmp_path / "results"), "--name", "bad")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and expected in lines[-1], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "results" / "bad").exists()
    assert {p: file_digest(p) for p in before} == before  # nothing written to any bank


def test_existing_results_folder_is_kept(tmp_path, models):
    existing = tmp_path / "results" / "taken"
    existing.mkdir(parents=True)
    (existing / "summary.json").write_text("{}")
    result = cli("--model", str(models["tiny"]), "--tasks", "demo_mcq", "--output-dir", str(tmp_path / "results"),
                 "--name", "taken")
    assert result.exit_code == 2 and "already exists" in result.output
    assert (existing / "summary.json").read_text() == "{}"
    assert dir_listing(tmp_path / "results") == ["taken"]


def test_no_memory_and_memory_exclude_each_other(tmp_path, models, bank_path):
    result = cli("--model", str(models["tiny"]), "--tasks", "demo_mcq", "--no-memory", "--memory", str(bank_path))
    assert result.exit_code == 2 and "exclude each other" in result.output
