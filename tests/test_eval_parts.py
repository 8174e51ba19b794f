"""The pieces of ``pmd-harness eval``: the memory block, run planning, model resolution (local
folders, pmd checkpoints and runs, hub ids from a local hub cache), and settings checks."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.eval_summary import coverage_differences, memory_k_series, parse_metrics
from harness.evaluation import EvalSettings, plan_runs
from harness.memory_lm import parse_levels
from harness.model_paths import ResolvedModel, resolve_model
from memory_bank.prompt_block import BLOCK_CLOSE, BLOCK_OPEN, has_memory_block, prepend_block, render_memory_block
from memory_bank.retrieval import RetrievedEntry

BIN = Path(sys.executable).parent


def entry(level: str, text: str, kind: str | None = None) -> RetrievedEntry:
    return RetrievedEntry(level=level, id=1, uid="u", text=text, score=1.0, row={"kind": kind} if kind else {})


# ----------------------------------------------------------------------------- memory block
def test_memory_block_groups_levels_most_abstract_first_and_keeps_retrieval_order():
    block = render_memory_block([
        entry("insight", "first   insight\nwrapped", "lesson"),
        entry("behavior", "a skill", "skill"),
        entry("insight", "second insight", "strategy"),
    ])
    assert block == "\n".join([
        BLOCK_OPEN,
        "Skills and mistakes to avoid from related questions:",
        "- [skill] a skill",
        "Notes from earlier attempts at similar questions:",
        "- [lesson] first insight wrapped",
        "- [strategy] second insight",
        BLOCK_CLOSE,
    ])
    assert has_memory_block(prepend_block(block, "Q?")) and prepend_block(block, "Q?").endswith("\n\nQ?")


def test_no_entries_means_no_block():
    assert render_memory_block([]) == "" and prepend_block("", "Q?") == "Q?"


def test_levels_parse_from_plus_or_comma_and_reject_unknown_ones():
    assert parse_levels("insight+behavior") == parse_levels("insight,behavior") == ["insight", "behavior"]
    with pytest.raises(ValueError, match="unknown memory level"):
        parse_levels("insights")


# ------------------------------------------------------------------------------ planning
def model(label: str) -> ResolvedModel:
    return ResolvedModel(label, f"/m/{label}", label, True)


def test_plan_runs_every_model_with_each_bank_and_k_and_one_baseline_for_k_zero():
    settings = EvalSettings(models=["a", "b"], tasks=["demo_mcq"], name="x", memory="/banks/pmd.db",
                            compare_memory="/other/frozen.db", memory_k=[3, 0, 1])
    runs = plan_runs(settings, [model("a"), model("b")])
    assert [r.label for r in runs] == [
        "a · no memory", "a · pmd k=1", "a · pmd k=3", "a · frozen k=1", "a · frozen k=3",
        "b · no memory", "b · pmd k=1", "b · pmd k=3", "b · frozen k=1", "b · frozen k=3",
    ]
    assert len({r.slug for r in runs}) == len(runs)


def test_same_bank_names_get_their_folder_and_same_models_their_own_run_folders():
    settings = EvalSettings(models=["a", "a"], tasks=["t"], name="x", memory="/x/memory.db",
                            compare_memory="/y/memory.db", memory_k=[2])
    runs = plan_runs(settings, [model("a"), model("a")])
    assert [r.label for r in runs[:2]] == ["a · x/memory k=2", "a · y/memory k=2"]
    assert len({r.slug for r in runs}) == 4


@pytest.mark.parametrize("overrides, message", [
    (dict(compare_memory="b.db"), "--compare-memory needs --memory"),
    (dict(memory="a.db", memory_k=[-1]), "--memory-k takes entry counts >= 0"),
    (dict(samples=0), "--samples must be at least 1"),
    (dict(scaling=True, samples=1), "--samples N (N >= 2)"),
    (dict(scaling=True, samples=4, scaling_k=[2, 5]), "k = [5] is larger than --samples 4"),
    (dict(backend="tgi"), "unknown backend"),
])
def test_inconsistent_settings_are_refused_before_anything_loads(overrides, message):
    settings = EvalSettings(models=["m"], tasks=["demo_mcq"], name="x", **overrides)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        settings.validate()


def test_vllm_backend_without_vllm_is_a_clear_error():
    pytest.importorskip("lm_eval")
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(ValueError, match=r"pip install -e '\.\[vllm\]'"):
        EvalSettings(models=["m"], tasks=["demo_mcq"], name="x", backend="vllm").validate()


def test_sampling_settings_reach_the_generation_kwargs():
    assert EvalSettings(models=["m"], tasks=["t"], name="x").gen_kwargs() is None
    assert EvalSettings(models=["m"], tasks=["t"], name="x", samples=8, temperature=0.7, max_gen_toks=32).gen_kwargs() == {
        "max_gen_toks": 32, "do_sample": True, "temperature": 0.7, "top_p": 1.0}
    assert EvalSettings(models=["m"], tasks=["t"], name="x", samples=6).ks() == [1, 2, 4, 6]


# --------------------------------------------------------------------------- summaries
def test_lm_eval_metric_keys_are_split_into_values_and_errors():
    values, errors = parse_metrics({"alias": "demo", "acc,none": 0.5, "acc_stderr,none": 0.1, "pass@1,all_samples": 1})
    assert values == {"acc": 0.5, "pass@1": 1.0} and errors == {"acc": 0.1}


def record(label, model_label, memory, k, value, solved=None):
    out = {"label": label, "model_label": model_label, "memory": memory, "memory_k": k,
           "tasks": {"t": {"value": value}}}
    if solved is not None:
        out["solved"] = {"t": solved}
    return out


def test_memory_runs_are_compared_with_their_models_baseline():
    records = [
        record("a · no memory", "a", None, 0, 0.2, {"q1": True, "q2": False, "q3": False}),
        record("a · bank k=1", "a", "bank.db", 1, 0.3, {"q1": True, "q2": True, "q3": False}),
        record("b · no memory", "b", None, 0, 0.1, {"q1": False, "q2": False, "q3": True}),
        record("b · bank k=1", "b", "bank.db", 1, 0.4, {"q1": False, "q2": True, "q3": True}),
    ]
    diffs = {(d["a"], d["b"]): (d["only_a"], d["only_b"], d["both"]) for d in coverage_differences(records)}
    assert diffs == {
        ("a · no memory", "a · bank k=1"): ([], ["q2"], 1),
        ("a · no memory", "b · no memory"): (["q1"], ["q3"], 0),
        ("b · no memory", "b · bank k=1"): ([], ["q2"], 1),
    }
    assert memory_k_series(records, "t") == {"a · bank": [(0, 0.2), (1, 0.3)], "b · bank": [(0, 0.1), (1, 0.4)]}


# ---------------------------------------------------------------------- model resolution
def fake_checkpoint(run: Path, step: int, tiny: Path, complete: bool = True) -> Path:
    folder = run / "checkpoints" / f"step-{step:06d}"
    shutil.copytree(tiny, folder / "hf")
    if complete:  # as trainer.checkpoint.publish does: the manifest, then the marker
        from trainer.manifest import write_manifest

        write_manifest(folder)
        (folder / "COMPLETE").write_text("")
    return folder


def test_models_resolve_from_folders_checkpoints_and_runs(tmp_path, tiny):
    assert resolve_model(str(tiny)).path == str(tiny)
    run = tmp_path / "pmd-run"
    fake_checkpoint(run, 3, tiny)
    fake_checkpoint(run, 6, tiny)
    fake_checkpoint(run, 9, tiny, complete=False)  # being written: never picked
    latest = resolve_model(str(run))
    assert latest.path == str(run / "checkpoints" / "step-000006" / "hf") and latest.label == "pmd-run@step-000006"
    step3 = resolve_model(str(run / "checkpoints" / "step-000003"))
    assert step3.path.endswith("step-000003/hf") and step3.label == "pmd-run@step-000003"


def test_bad_model_specs_name_the_fix(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="model folder ./nowhere not found"):
        resolve_model("./nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a model folder: expected config.json"):
        resolve_model(str(tmp_path / "empty"))
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="has no checkpoint with intact weights yet"):
        resolve_model(str(tmp_path / "run"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="not in the local Hugging Face cache and the hub is offline"):
        resolve_model("pmd-no-such-org/no-such-model")


def test_a_hub_id_loads_from_the_local_hub_cache(tmp_path, tiny):
    """A hub id goes through the real hub code path: a model laid out as the Hugging Face cache
    lays it out (models--org--name/snapshots/<revision>, refs/main) loads offline."""
    cache = tmp_path / "hub"
    repo = cache / "models--pmd-test--tiny-qwen3"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [str(BIN / "pmd-harness"), "eval", "--model", "pmd-test/tiny-qwen3", "--tasks", "demo_mcq", "--no-memory",
         "--limit", "1", "--max-gen-toks", "4", "--output-dir", str(tmp_path / "results"), "--name", "hub"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "results" / "hub" / "summary.json").read_text())
    assert summary["runs"][0]["label"] == "tiny-qwen3 · no memory"
    assert summary["runs"][0]["model_path"] == "pmd-test/tiny-qwen3"
