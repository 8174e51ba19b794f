"""``training_report`` on a real (tiny, 2-step) pmd-train run folder: curves, memory growth,
report.md / report.json whose numbers match metrics.jsonl and memory.db; the run folder is left as
it was apart from report/; clear errors for folders that are not runs."""
from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from conftest import dir_listing, file_digest
from trainer_helpers import metrics, run_training, start_reflection_server, tiny_overrides

from harness.training_report import summarize_run, training_report

pytestmark = pytest.mark.slow
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real 2-step PMD run: validation every step, reflections from a scripted endpoint so
    insights and (at step 2) behaviors are written."""
    from pmd.tiny_model import build_tiny_models

    tiny = build_tiny_models(tmp_path_factory.mktemp("models"))["tiny"]
    server, url = start_reflection_server()
    out = tmp_path_factory.mktemp("runs")
    try:
        run_training(tiny_overrides(tiny, out, "report-run", **{
            "data.max_steps": 2, "data.questions_per_step": 2, "data.samples_per_question": 2,
            "data.max_response_tokens": 8, "checkpoint.every": 2, "reflection.source": "endpoint",
            "reflection.base_url": url, "reflection.model": "scripted", "memory.behavior_every": 2,
            "memory.behavior_warmup": 2, "logging.validate_every": 1, "logging.validation_questions": 2,
        }))
    finally:
        server.shutdown()
    return out / "report-run"


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): file_digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def bank_counts(path):
    """Entries per level, read straight from SQLite (immutable: no -wal/-shm files appear)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return {level: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for level, table in (("experience", "experiences"), ("insight", "insights"), ("behavior", "behaviors"))}
    finally:
        conn.close()


def test_report_writes_every_file_with_the_metrics_numbers(run_dir, tmp_path):
    rows = metrics(run_dir)
    work = tmp_path / "run"
    shutil.copytree(run_dir, work)  # the shared fixture stays pristine
    before = snapshot(work)
    counts = bank_counts(work / "memory.db")
    before_listing = dir_listing(work)

    report = training_report(work)

    out = work / "report"
    assert sorted(p.name for p in out.iterdir()) == ["memory_growth.png", "report.json", "report.md",
                                                     "training_curves.png"]
    for name in ("training_curves.png", "memory_growth.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
    # the run folder itself is untouched: same files, same bytes, no -wal/-shm left by reading the bank
    assert dir_listing(work) == sorted([*before_listing, "report"])
    assert {k: v for k, v in snapshot(work).items() if not k.startswith("report/")} == before

    saved = json.loads((out / "report.json").read_text())
    assert saved["run"] == "report-run" and saved["algorithm"] == "pmd" and saved["memory_mode"] == "persistent"
    assert saved["steps"] == rows[-1]["step"] == 2
    assert saved["reward"]["final"] == pytest.approx(rows[-1]["reward/mean"])
    assert saved["reward"]["best"] == pytest.approx(max(r["reward/mean"] for r in rows))
    assert saved["accuracy"]["final"] == pytest.approx(rows[-1]["accuracy"])
    assert saved["validation_accuracy"]["final"] == pytest.approx(rows[-1]["validation/accuracy"])
    assert saved["validation_accuracy"]["points"] == 2
    assert saved["loss"]["final"] == pytest.approx(rows[-1]["loss"])
    assert saved["memory"]["entries"] == counts
    assert counts["experience"] > 0 and counts["insight"] > 0
    assert saved["memory_growth_source"] == "metrics"
    assert saved["memory_growth"] == {level: [[r["step"], r[f"memory/{level}"]] for r in rows]
                                      for level in ("experience", "insight", "behavior")}
    assert {k: report[k] for k in saved} == saved  # the returned dict holds the same numbers
    assert report["paths"]["training_curves"] == str(out / "training_curves.png")

    markdown = (out / "report.md").read_text()
    assert "# Training report: report-run" in markdown
    assert "![Training curves](training_curves.png)" in markdown
    assert "![Memory growth](memory_growth.png)" in markdown
    assert f"| experience | {counts['experience']:,} |" in markdown
    assert f"final {100 * rows[-1]['validation/accuracy']:.1f}% (step 2)" in markdown


def test_summarize_run_gives_the_headline_numbers(run_dir):
    rows = metrics(run_dir)
    summary = summarize_run(run_dir)
    assert summary["algorithm"] == "pmd" and summary["memory_mode"] == "persistent"
    assert summary["steps"] == 2
    assert summary["final_reward"] == pytest.approx(rows[-1]["reward/mean"])
    assert summary["final_validation_accuracy"] == pytest.approx(rows[-1]["validation/accuracy"])
    assert summary["entries"] == bank_counts(run_dir / "memory.db")
    assert not (run_dir / "report").exists()  # summarizing writes nothing


def test_report_into_another_folder_leaves_the_run_folder_alone(run_dir, tmp_path):
    before = snapshot(run_dir)
    report = training_report(run_dir, tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "report.md").is_file()
    assert report["out_dir"] == str(tmp_path / "elsewhere")
    assert snapshot(run_dir) == before


def test_memory_growth_is_rebuilt_from_the_bank_when_metrics_lack_counts(run_dir, tmp_path):
    work = tmp_path / "old-run"
    work.mkdir()
    shutil.copy(run_dir / "config.yaml", work)
    shutil.copy(run_dir / "memory.db", work)
    rows = [{k: v for k, v in r.items() if not k.startswith("memory/")} for r in metrics(run_dir)]
    (work / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    report = training_report(work)

    assert report["memory_growth_source"] == "memory.db"
    counts = bank_counts(work / "memory.db")
    growth = report["memory_growth"]
    assert [step for step, _ in growth["experience"]] == [1, 2]
    assert {level: points[-1][1] for level, points in growth.items()} == counts
    assert growth["experience"][0][1] < growth["experience"][1][1]  # step 1 wrote fewer than both steps
    assert (work / "report" / "memory_growth.png").is_file()


def test_a_run_without_a_bank_still_gets_its_curves(run_dir, tmp_path):
    work = tmp_path / "grpo-run"
    work.mkdir()
    (work / "config.yaml").write_text((run_dir / "config.yaml").read_text().replace("algorithm: pmd", "algorithm: grpo"))
    rows = [{k: v for k, v in r.items() if not k.startswith(("memory/", "teacher/", "reflection/", "behaviors/"))}
            for r in metrics(run_dir)]
    (work / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    report = training_report(work)

    assert sorted(p.name for p in (work / "report").iterdir()) == ["report.json", "report.md", "training_curves.png"]
    assert report["files"]["memory_growth"] is None
    assert report["memory"]["entries"] is None and report["memory_mode"] == "none"
    assert "No memory: grpo trains without a memory bank." in (work / "report" / "report.md").read_text()
    assert summarize_run(work)["entries"] is None


def test_a_missing_run_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; RUN_DIR must be a pmd-train output folder"):
        training_report(tmp_path / "no-such-run")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        summarize_run(tmp_path / "no-such-run")


def test_a_folder_without_metrics_is_a_clear_error(tmp_path, run_dir):
    with pytest.raises(FileNotFoundError, match="has no metrics.jsonl nor memory.db; RUN_DIR must be a pmd-train"):
        training_report(tmp_path)
    bank_only = tmp_path / "bank-only"
    bank_only.mkdir()
    shutil.copy(run_dir / "memory.db", bank_only)
    with pytest.raises(FileNotFoundError, match=r"has no metrics.jsonl; RUN_DIR"):
        training_report(bank_only)
    assert not (bank_only / "report").exists()
    empty = tmp_path / "empty-metrics"
    empty.mkdir()
    (empty / "metrics.jsonl").write_text('{"step": 1, "reward/m')  # a torn first line
    with pytest.raises(ValueError, match="holds no complete step record"):
        training_report(empty)
    a_file = tmp_path / "metrics.jsonl"
    a_file.write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        training_report(a_file)


def test_report_command_compares_runs_in_one_table(run_dir, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main as harness_cli

    pmd_run, grpo_run = tmp_path / "pmd", tmp_path / "grpo"
    shutil.copytree(run_dir, pmd_run)
    grpo_run.mkdir()
    (grpo_run / "config.yaml").write_text((run_dir / "config.yaml").read_text().replace("algorithm: pmd", "algorithm: grpo"))
    (grpo_run / "metrics.jsonl").write_text((run_dir / "metrics.jsonl").read_text())
    out = tmp_path / "comparison.md"

    result = CliRunner().invoke(harness_cli, ["report", str(pmd_run), str(grpo_run), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert (pmd_run / "report" / "training_curves.png").exists() and (grpo_run / "report" / "report.md").exists()
    table = out.read_text()
    counts = bank_counts(run_dir / "memory.db")
    assert ("| pmd | pmd | persistent | 2 |" in table and f"| {counts['experience']} | {counts['insight']} | "
            f"{counts['behavior']} |" in table)
    assert "| grpo | grpo | none | 2 |" in table
    assert json.loads(out.with_suffix(".json").read_text())["training"][1]["algorithm"] == "grpo"


def test_report_command_rejects_a_folder_that_is_no_run(tmp_path):
    from click.testing import CliRunner

    from harness.cli import main as harness_cli

    result = CliRunner().invoke(harness_cli, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "neither a pmd-train run" in result.output
