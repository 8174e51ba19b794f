"""``pmd-harness experiment``: the experiment file's validation, a tiny 2-variant x 2-seed
experiment killed mid-way and resumed, its report (numbers recomputed from the eval samples),
locks shared between jobs, and the paper's experiment files checked with --dry-run."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cli_checks import assert_refused_untouched, cli_env, run_cli
from harness.experiment.plan import Layout, Run, plan_runs
from harness.experiment.runner import run_experiment
from harness.experiment.spec import load_experiment
from pmd.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
PAPER_FILES = sorted((REPO / "experiments").glob("paper_*.yaml"))


def write_experiment(path: Path, **fields) -> Path:
    data = {"name": "exp", "output_dir": str(path.parent / "results"), "base_config": "trainer/configs/demo_cpu.yaml",
            "variants": {"grpo": {"overrides": ["algorithm=grpo"]}, "pmd": {}}, "seeds": [0, 1], **fields}
    path.write_text(yaml.safe_dump(data))
    return path


BAD_FILES = {
    "name with a slash": ({"name": "a/b"}, "plain folder name"),
    "no variants": ({"variants": {}}, "at least one variant"),
    "unknown baseline": ({"baseline": "sft"}, "baseline 'sft' is not a variant"),
    "repeated seed": ({"seeds": [0, 0]}, "distinct"),
    "negative seed": ({"seeds": [-1]}, "non-negative"),
    "scaling with one sample": ({"evaluation": {"samples": 1, "scaling": True}}, "scaling needs"),
    "no tasks": ({"evaluation": {"tasks": []}}, "at least one task"),
    "zero samples": ({"evaluation": {"samples": 0}}, "samples must be at least 1"),
    "limit zero": ({"evaluation": {"limit": 0}}, "limit must be at least 1"),
    "launcher without args": ({"launcher": "torchrun -m trainer.cli"}, "{args}"),
    "missing training config": ({"variants": {"pmd": {"config": "trainer/configs/nope.yaml"}}}, "nope.yaml not found"),
    "unknown key": ({"seed": [1]}, "did you mean 'seeds'"),
    "variant without config": ({"base_config": None}, "no config and there is no base_config"),
    "bad variant name": ({"variants": {"p m d": {}}}, "plain name"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_experiment_files_are_refused(tmp_path, case):
    fields, words = BAD_FILES[case]
    path = write_experiment(tmp_path / "exp.yaml", **fields)
    with pytest.raises((ConfigError, ValueError, FileNotFoundError), match=None) as err:
        load_experiment(path)
    assert words in str(err.value)
    assert_refused_untouched(["pmd-harness", "experiment", "run", str(path)], [tmp_path], contains=words)


def test_bad_variant_config_is_found_before_any_run(tmp_path):
    path = write_experiment(tmp_path / "exp.yaml", base_overrides=["model.name_or_path=/no/such/model"])
    assert_refused_untouched(["pmd-harness", "experiment", "run", str(path), "--dry-run"], [tmp_path],
                             contains=("variant grpo", "/no/such/model"))
    assert_refused_untouched(["pmd-harness", "experiment", "run", str(path)], [tmp_path], contains="variant grpo")


def test_only_and_seeds_narrow_the_plan(tmp_path):
    experiment = load_experiment(write_experiment(tmp_path / "exp.yaml", seeds=[0, 1, 2]))
    assert [r.name for r in plan_runs(experiment)] == ["grpo-s0", "grpo-s1", "grpo-s2", "pmd-s0", "pmd-s1", "pmd-s2"]
    assert [r.name for r in plan_runs(experiment, ["pmd"], [0, 2])] == ["pmd-s0", "pmd-s2"]
    with pytest.raises(ValueError, match="not a variant"):
        plan_runs(experiment, ["sft"])
    with pytest.raises(ValueError, match="not a seed"):
        plan_runs(experiment, None, [7])


def test_root_and_seed_placeholders(tmp_path):
    experiment = load_experiment(write_experiment(
        tmp_path / "exp.yaml", variants={"pmd": {}, "frozen": {"overrides": ["memory.bank={root}/runs/pmd-s{seed}/memory.db"]}}))
    assert experiment.variant_overrides("frozen", 1) == [f"memory.bank={tmp_path}/results/exp/runs/pmd-s1/memory.db"]


@pytest.mark.parametrize("path", PAPER_FILES, ids=lambda p: p.stem)
def test_paper_experiments_pass_dry_run(path):
    done = run_cli(["pmd-harness", "experiment", "run", str(path), "--dry-run"])
    assert done.returncode == 0, done.stderr[-3000:]
    experiment = load_experiment(path)
    assert f"{len(experiment.variants) * len(experiment.seeds)} runs" in done.stdout
    assert len(experiment.seeds) >= 3 and experiment.evaluation.samples == 16


@pytest.mark.slow
@pytest.mark.parametrize("name", ["replication_family_rules", "replication_family_rules_smollm2"])
def test_replication_experiments_pass_dry_run(name, warm_tiny, tmp_path_factory):
    """The replication files name the models `make demo` builds under .demo/models/; a fresh clone
    has none, so they are checked from a folder holding the repository's files and those models."""
    from pmd.smollm2 import convert_packaged

    work = tmp_path_factory.mktemp("replication-dry-run")
    for part in ("trainer", "experiments", "tasks"):
        (work / part).symlink_to(REPO / part)
    models = work / ".demo" / "models"
    models.mkdir(parents=True)
    (models / "tiny-warm").symlink_to(warm_tiny)
    (models / "smollm2-135m-instruct").symlink_to(
        convert_packaged(tmp_path_factory.getbasetemp() / "smollm2-135m-instruct"))
    done = run_cli(["pmd-harness", "experiment", "run", f"experiments/{name}.yaml", "--dry-run"], cwd=work, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "18 runs" in done.stdout and not (work / "results").exists()


def test_paper_experiments_cover_the_paper():
    names = {p.stem for p in PAPER_FILES}
    assert {f"paper_main_{m}_{t}" for m in ("qwen3_8b", "olmo3_7b") for t in ("sciknoweval", "lcb")} <= names
    ablations = load_experiment(REPO / "experiments" / "paper_ablations_qwen3_8b_sciknoweval.yaml")
    assert set(ablations.variants) == {"pmd", "pmd_transient", "frozen_memory", "frozen_policy", "sdpo"}


# ----------------------------------------------------------------- a real tiny experiment
@pytest.fixture(scope="module")
def warm_tiny(tmp_path_factory):
    from pmd.warmup import build_demo_models

    return build_demo_models(tmp_path_factory.mktemp("models"))["tiny"]


@pytest.fixture(scope="module")
def tiny_experiment(warm_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    path = write_experiment(root / "tiny.yaml", name="tiny", base_overrides=[
        f"model.name_or_path={warm_tiny}", "data.max_steps=4", "checkpoint.every=2", "logging.validate_every=2",
        "logging.validation_questions=4"], evaluation={"tasks": ["demo_mcq"], "samples": 2, "scaling": True, "limit": 6,
                                                      "max_gen_toks": 24})
    return path, load_experiment(path)


def _experiment_command(path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "experiment", "run", str(path), *extra]


@pytest.mark.slow
def test_killed_experiment_resumes_and_reports(tiny_experiment):
    path, experiment = tiny_experiment
    layout = Layout(experiment.folder)
    first, second = Run("grpo", 0), Run("grpo", 1)
    proc = subprocess.Popen(_experiment_command(path), cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 400
    # Kill it once the first run is evaluated and the second has its first checkpoint.
    while not (layout.status(first) == "evaluated"
               and (layout.train_dir(second) / "checkpoints" / "step-000002" / "COMPLETE").exists()):
        assert proc.poll() is None and time.time() < deadline, "the experiment ended before it could be killed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert layout.status(second) == "started"

    done = run_cli(_experiment_command(path), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 of 4 runs already evaluated: skipped" in done.stdout + done.stderr
    assert "grpo-s1: resuming" in done.stdout + done.stderr
    assert "pmd-train: resuming from step-000002" in layout.log(second, "train").read_text()
    assert all(layout.status(r) == "evaluated" for r in plan_runs(experiment))
    metrics = [json.loads(line)["step"] for line in (layout.train_dir(second) / "metrics.jsonl").read_text().splitlines()]
    assert metrics == [1, 2, 3, 4]

    again = run_cli(_experiment_command(path))
    assert again.returncode == 0 and "4 of 4 runs already evaluated" in again.stdout + again.stderr

    report = run_cli(["pmd-harness", "experiment", "report", str(experiment.folder)])
    assert report.returncode == 0, report.stderr[-3000:]
    data = json.loads((experiment.folder / "report" / "summary.json").read_text())
    assert data["counts"] == {"planned": 4, "evaluated": 4, "trained": 4}
    _check_report_numbers(layout, experiment, data)
    for plot in data["plots"]:
        assert (experiment.folder / "report" / plot).stat().st_size > 10_000
    text = (experiment.folder / "report" / "summary.md").read_text()
    assert "## Main table" in text and "95% CI, seeds" in text and "Coverage against grpo" in text
    _check_replication_write_up(layout, experiment, path)


def _check_replication_write_up(layout: Layout, experiment, path: Path) -> None:
    """benchmarks/replication.py on the finished runs: the untrained starting model is evaluated
    like the runs (its number recomputed here), weights moved, plots copied, a reading kept."""
    out = layout.root / "write-up" / "replication.md"
    command = [sys.executable, "benchmarks/replication.py", "--experiment", str(path), "--out", str(out), "--no-run"]
    done = run_cli(command, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    start = Run("start", experiment.seeds[0])
    start_folder = next((layout.root / "reference" / "evals" / start.name / "runs").iterdir())
    from harness.eval_summary import graded_questions
    samples = [json.loads(line) for line in (start_folder / "samples_demo_mcq.jsonl").read_text().splitlines()]
    assert len(samples) == experiment.evaluation.limit
    data = json.loads(out.with_suffix(".json").read_text())
    flags = [f for _, f in graded_questions(samples, "demo_mcq").values()]
    assert statistics.fmean(data["start"][str(start.seed)].values()) == pytest.approx(
        statistics.fmean(sum(f) / len(f) for f in flags))
    assert all(change > 0 for change in data["weight_change"]["grpo"]) and len(data["weight_change"]["pmd"]) == 2
    assert "| start (untrained) |" in text and "| GRPO < PMD |" in text
    assert all((out.with_suffix("") / Path(p).name).stat().st_size > 10_000 for p in data["summary"]["plots"])
    out.write_text(text.replace("(no reading written yet)", "PMD and GRPO are within noise here."))
    assert run_cli(command, timeout=600).returncode == 0
    assert "PMD and GRPO are within noise here." in out.read_text()


def _check_report_numbers(layout: Layout, experiment, data: dict) -> None:
    """The report's numbers, recomputed from the logged eval samples with the task's own grader."""
    from harness.eval_summary import graded_questions

    def accuracy(run: Run) -> float:
        folder = next((layout.eval_dir(run) / "runs").iterdir())
        samples = [json.loads(line) for line in (folder / "samples_demo_mcq.jsonl").read_text().splitlines()]
        flags = [f for _, f in graded_questions(samples, "demo_mcq").values()]
        return statistics.fmean(sum(f) / len(f) for f in flags)

    rows = {row["variant"]: row for row in data["metrics"][0]["rows"]}
    assert data["metrics"][0]["name"].startswith("test accuracy")
    per_seed = {v: [accuracy(Run(v, s)) for s in experiment.seeds] for v in experiment.variants}
    for variant, values in per_seed.items():
        assert rows[variant]["values"] == pytest.approx(values)
        # lm-eval's own acc of the same samples agrees.
        for seed, value in zip(experiment.seeds, values):
            summary = json.loads((layout.eval_dir(Run(variant, seed)) / "summary.json").read_text())
            assert summary["runs"][0]["tasks"]["demo_mcq"]["value"] == pytest.approx(value)
    diffs = [a - b for a, b in zip(per_seed["pmd"], per_seed["grpo"])]
    assert rows["pmd"]["delta_vs_baseline"]["mean"] == pytest.approx(statistics.fmean(diffs))
    assert rows["grpo"]["delta_vs_baseline"] is None
    # Training diagnostics: sums of the runs' own metrics.
    steps = [json.loads(line) for seed in experiment.seeds
             for line in (layout.train_dir(Run("pmd", seed)) / "metrics.jsonl").read_text().splitlines()]
    pmd = data["diagnostics"]["pmd"]
    assert pmd["reflection_requests"] == sum(r["reflection/requests"] for r in steps) > 0
    assert pmd["copies_dropped"] == sum(r["reflection/copies_dropped"] for r in steps)
    assert pmd["insights_written"] == sum(r["reflection/insights"] for r in steps)
    assert data["diagnostics"]["grpo"]["reflection_requests"] == 0


def test_a_run_locked_by_another_job_is_left_to_it(tmp_path):
    path = write_experiment(tmp_path / "locked.yaml", name="locked",
                            base_overrides=["model.name_or_path=/no/model/needed/when/every/run/is/held"])
    experiment = load_experiment(path)
    lock = Layout(experiment.folder).lock(Run("pmd", 1))
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = run_experiment(experiment, plan_runs(experiment, ["pmd"], [1]), echo=lambda line: None, progress=False)
    assert held.held == ["pmd-s1"] and not held.done
    assert not Layout(experiment.folder).train_dir(Run("pmd", 1)).exists()
