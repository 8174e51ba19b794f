"""The main job: ``python -m harness.demo`` end to end (scaled down): the tiny policy trained with
reflections written by SmolLM2-135M-Instruct, and SmolLM2 answering with the exported memory."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import dir_listing
from harness.demo import main as demo_main
from memory_bank import MemoryBank

pytestmark = pytest.mark.slow
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_demo_trains_evaluates_and_reports(tmp_path):
    out, cache = tmp_path / "demo", tmp_path / "cache"
    args = ["--out", str(out), "--cache", str(cache), "--steps", "2", "--limit", "3", "--samples", "4",
            "--max-gen-toks", "10", "--transfer-gen-toks", "24"]
    result = CliRunner().invoke(demo_main, args)
    assert result.exit_code == 0, result.output
    for step in range(1, 8):
        assert f"[{step}/7]" in result.output

    assert dir_listing(out) == ["bank.db", "eval-memory-free", "eval-scaling", "eval-transfer", "summary.json",
                                "summary.md", "train"]
    # training: two PMD steps, a final checkpoint, and the report with its plots
    metrics = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2]
    assert (out / "train" / "checkpoints" / "step-000002" / "COMPLETE").exists()
    for png in ("training_curves.png", "memory_growth.png"):
        assert (out / "train" / "report" / png).read_bytes()[:8] == PNG_SIGNATURE
    # the exported bank holds the run's experiences (2 steps x 4 questions x 4 samples) and the
    # insights SmolLM2 wrote about them
    with MemoryBank.open(out / "bank.db", readonly=True) as bank:
        counts = bank.counts()
        assert counts["experience"] == 32 and counts["insight"] >= 1
        assert json.loads(bank.meta("manifest"))["tasks"] == ["demo_mcq"]
    summary = json.loads((out / "summary.json").read_text())
    assert " ".join(summary["bank_examples"]["insight"]["text"].split())[:80] in result.output
    assert "teacher prompt of step" in result.output

    free = summary["evaluations"]["eval-memory-free"]["runs"]
    assert [r["label"] for r in free] == ["train@step-000002 · no memory"]
    transfer = summary["evaluations"]["eval-transfer"]["runs"]
    assert [r["label"] for r in transfer] == ["smollm2-135m-instruct · no memory", "smollm2-135m-instruct · bank k=1",
                                             "smollm2-135m-instruct · bank k=3"]
    given = [json.loads(line)["memory"]
             for line in (out / "eval-transfer" / "runs" / "smollm2-135m-instruct-bank-k3" / "samples_demo_mcq.jsonl")
             .read_text().splitlines()]
    assert all(1 <= len(entries) <= 3 and {e["level"] for e in entries} <= {"insight", "behavior"} for entries in given)
    scaling = summary["evaluations"]["eval-scaling"]["runs"][0]["scaling"]["demo_mcq"]
    assert [row["k"] for row in scaling] == [1, 2, 4]
    assert all(row["best"] >= row["maj"] - 1e-9 for row in scaling)  # a correct majority needs a correct sample
    for png in ("eval-scaling/plots/scaling_demo_mcq.png", "eval-transfer/plots/memory_k_demo_mcq.png"):
        assert (out / png).read_bytes()[:8] == PNG_SIGNATURE
    assert "| eval-transfer: smollm2-135m-instruct · bank k=3 |" in (out / "summary.md").read_text()
    assert "Summary (%)" in result.output

    # A failing run (here: the model cache is a file) restores the earlier results untouched.
    before = (out / "summary.json").read_text()
    broken = tmp_path / "not-a-folder"
    broken.write_text("")
    failed = CliRunner().invoke(demo_main, ["--out", str(out), "--cache", str(broken)])
    assert failed.exit_code != 0
    assert (out / "summary.json").read_text() == before
    assert dir_listing(tmp_path) == ["cache", "demo", "not-a-folder"]
