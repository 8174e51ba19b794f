"""Shared pieces of the fault suites: a small PMD run on the tiny model launched as a real
``pmd-train`` process, optionally with a fault injected (``fault_hooks/sitecustomize.py``), and
the checks of a finished run's record (metrics once per step, bank intact, same experiences per
step, final checkpoint loadable and intact)."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

from trainer_helpers import REPO, tiny_overrides, train_command

HOOKS = Path(__file__).resolve().parent / "fault_hooks"
QUESTIONS_PER_STEP, SAMPLES = 4, 4


def run_overrides(model: Path, out: Path, name: str, steps: int, **extra) -> list[str]:
    """Checkpoint every 2 steps, keep 2, no validation, and no per-question cap on experiences
    (so every step's experiences stay countable)."""
    return tiny_overrides(model, out, name, **{
        "data.max_steps": steps, "checkpoint.every": 2, "checkpoint.keep_last": 2, "logging.validate_every": 0,
        "memory.limits.max_experiences_per_question": 10_000, **extra})


def fault_env(fault: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(HOOKS))
    if fault:
        env["PMD_FAULT"] = fault
    return env


def start(overrides: list[str], *, resume: bool, fault: str = "") -> subprocess.Popen:
    return subprocess.Popen(train_command(overrides, resume=resume), cwd=REPO, env=fault_env(fault),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def launch(overrides: list[str], *, resume: bool, fault: str = "", timeout: int = 300) -> subprocess.CompletedProcess:
    proc = start(overrides, resume=resume, fault=fault)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def metric_steps(run: Path) -> list[int]:
    rows = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rows.append(json.loads(line)["step"])
    return rows


def experiences_per_step(bank: Path) -> Counter:
    conn = sqlite3.connect(f"file:{bank}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return Counter(step for (step,) in conn.execute("SELECT step FROM experiences"))
    finally:
        conn.close()


def assert_finished_run(run: Path, steps: int) -> None:
    """The record of a run that reached ``steps``: each step's metrics once, the bank intact with
    the same number of experiences for every step, the final checkpoint intact and loadable."""
    from transformers import AutoModelForCausalLM

    from trainer.checkpoint import checkpoint_dir, checkpoint_problem

    assert metric_steps(run) == list(range(1, steps + 1))
    assert experiences_per_step(run / "memory.db") == {s: QUESTIONS_PER_STEP * SAMPLES for s in range(steps)}
    final = checkpoint_dir(run, steps)
    assert checkpoint_problem(final, ("hf/", "state.json", "ds/", "memory.db", "teacher/")) is None
    assert sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(final / "hf").parameters()) > 0
    assert experiences_per_step(final / "memory.db") == {s: QUESTIONS_PER_STEP * SAMPLES for s in range(steps)}
    assert not list((run / "checkpoints").glob(".step-*")), "a staging folder was left behind"


def hf_weights_digest(checkpoint: Path) -> str:
    import hashlib

    return hashlib.sha256((checkpoint / "hf" / "model.safetensors").read_bytes()).hexdigest()
