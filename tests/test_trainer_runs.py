"""End-to-end ``pmd-train`` runs on the tiny model (CPU, DeepSpeed, gloo): PMD, SDPO, GRPO and
every ablation; weights change (or not, for a frozen policy); memory grows or resets by mode."""
from __future__ import annotations

import sqlite3

import pytest
import torch
from safetensors.torch import load_file

from memory_bank import MemoryBank
from trainer_helpers import REPO, metrics, run_training, start_reflection_server, tiny_overrides

pytestmark = pytest.mark.slow
STEPS = 3


@pytest.fixture(scope="module")
def endpoint():
    server, url = start_reflection_server()
    yield url
    server.shutdown()


@pytest.fixture(scope="module")
def pmd_run(tiny, endpoint, tmp_path_factory):
    """One PMD run shared by several tests: reflection by a scripted endpoint, so memory fills."""
    out = tmp_path_factory.mktemp("runs")
    run_training(tiny_overrides(tiny, out, "pmd", **{
        "data.max_steps": STEPS, "checkpoint.every": 1, "reflection.source": "endpoint",
        "reflection.base_url": endpoint, "reflection.model": "scripted", "memory.behavior_every": 2,
        "memory.behavior_warmup": 2, "logging.validate_every": 0,
    }))
    return out / "pmd"


def _weights(directory):
    return load_file(str(next(directory.glob("*.safetensors"))))


def test_pmd_run_writes_checkpoints_metrics_and_a_growing_bank(pmd_run, tiny):
    rows = metrics(pmd_run)
    assert [r["step"] for r in rows] == [1, 2, 3]
    experiences = [r["memory/experience"] for r in rows]
    assert experiences == sorted(experiences) and experiences[0] == 16  # 4 questions x 4 samples
    assert rows[-1]["memory/insight"] > 0 and rows[-1]["memory/behavior"] > 0  # reflection + abstraction
    assert rows[1]["behaviors/written"] > 0 and rows[-1]["memory/retrieval_hits"] > 0
    for key in ("loss", "loss/divergence", "reward/mean", "time/rollout", "time/loss", "teacher/with_signal"):
        assert key in rows[-1]
    final = pmd_run / "checkpoints" / "step-000003"
    assert (final / "COMPLETE").exists() and (final / "hf" / "config.json").exists()
    with MemoryBank.open(final / "memory.db", readonly=True) as snapshot:
        assert snapshot.counts()["experience"] == rows[-1]["memory/experience"]
    conn = sqlite3.connect(pmd_run / "memory.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # Every parameter of the student changed after training (compared with the initial weights).
    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(final / "hf")
    initial = AutoModelForCausalLM.from_pretrained(tiny)
    unchanged = [name for (name, a), (_, b) in zip(trained.named_parameters(), initial.named_parameters())
                 if torch.equal(a, b)]
    assert unchanged == []
    # The EMA teacher moved towards the student, but only by a fraction of the way.
    teacher = load_file(str(final / "teacher" / "model.safetensors"))
    name = "model.layers.0.mlp.up_proj.weight"
    moved = (teacher[name] - initial.state_dict()[name]).abs().sum()
    gap = (trained.state_dict()[name] - initial.state_dict()[name]).abs().sum()
    assert 0 < moved < gap


def test_every_step_has_one_checkpoint_kept_within_keep_last(pmd_run):
    kept = sorted(p.name for p in (pmd_run / "checkpoints").iterdir())
    assert kept == ["step-000002", "step-000003"]  # keep_last: 2, nothing half-written left


@pytest.mark.parametrize("algorithm", ["sdpo", "grpo"])
def test_baselines_run(tiny, tmp_path, algorithm):
    run_training(tiny_overrides(tiny, tmp_path, algorithm, algorithm=algorithm, **{"data.max_steps": 2,
                                                                                   "logging.validate_every": 0}))
    rows = metrics(tmp_path / algorithm)
    assert len(rows) == 2 and all("loss" in r for r in rows)
    assert not (tmp_path / algorithm / "memory.db").exists()  # no memory for the baselines
    if algorithm == "grpo":
        assert "loss/ratio_mean" in rows[0] and "teacher/with_signal" not in rows[0]
    else:
        assert rows[0]["teacher/with_signal"] > 0


def test_frozen_policy_changes_no_weight_while_memory_evolves(tiny, endpoint, tmp_path):
    run_training(tiny_overrides(tiny, tmp_path, "frozen-policy", **{
        "policy.frozen": "true", "data.max_steps": 2, "reflection.source": "endpoint",
        "reflection.base_url": endpoint, "reflection.model": "scripted", "logging.validate_every": 0}))
    run = tmp_path / "frozen-policy"
    assert not (run / "checkpoints" / "step-000002" / "ds").exists()
    assert _weights(run / "checkpoints" / "step-000002" / "hf").keys()
    for name, tensor in _weights(run / "checkpoints" / "step-000002" / "hf").items():
        assert torch.equal(tensor, _weights(tiny)[name]), name
    assert metrics(run)[-1]["memory/insight"] > 0


def test_transient_memory_is_empty_after_every_step(tiny, endpoint, tmp_path):
    run_training(tiny_overrides(tiny, tmp_path, "transient", **{
        "memory.mode": "transient", "data.max_steps": 2, "reflection.source": "endpoint",
        "reflection.base_url": endpoint, "reflection.model": "scripted", "logging.validate_every": 0}))
    rows = metrics(tmp_path / "transient")
    assert all(r["memory/experience"] == r["memory/insight"] == r["memory/behavior"] == 0 for r in rows)
    assert all(r["reflection/insights"] > 0 for r in rows)  # built within the step, then discarded


def test_frozen_memory_reads_a_given_bank_and_never_writes_it(pmd_run, tiny, tmp_path):
    bank = pmd_run / "checkpoints" / "step-000003" / "memory.db"
    before = bank.read_bytes()
    run_training(tiny_overrides(tiny, tmp_path, "frozen-memory", **{
        "memory.mode": "frozen", "memory.bank": str(bank), "data.max_steps": 2, "logging.validate_every": 0}))
    rows = metrics(tmp_path / "frozen-memory")
    assert bank.read_bytes() == before
    assert all(r["memory/retrieval_hits"] > 0 for r in rows)
    assert not (tmp_path / "frozen-memory" / "memory.db").exists()


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "trainer" / "configs").glob("qwen3_8b_sciknoweval_*.yaml")))
def test_every_shipped_ablation_config_runs_scaled_down(config, tiny, pmd_run, tmp_path):
    """Each paper-scale config, with only the model, data and sizes shrunk to the tiny setting."""
    extra = {"data.task": "demo_mcq", "data.questions_per_step": 2, "data.samples_per_question": 2,
             "data.max_response_tokens": 8, "data.max_steps": 1, "model.dtype": "float32",
             "deepspeed.zero_stage": 2, "logging.validate_every": 0, "logging.tensorboard": "false",
             "teacher.context_budget_tokens": 1024, "memory.retrieval.embedding_model": "hash-64",
             "memory.bank": str(pmd_run / "checkpoints" / "step-000003" / "memory.db")}
    if "frozen_memory" in config:
        extra["memory.retrieval.embedding_model"] = "sentence-transformers/all-MiniLM-L6-v2"
    run_training(tiny_overrides(tiny, tmp_path, "scaled", **extra), config=REPO / "trainer" / "configs" / config)
    assert len(metrics(tmp_path / "scaled")) == 1
