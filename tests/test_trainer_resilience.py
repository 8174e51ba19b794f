"""A run killed mid-way resumes from its last complete checkpoint with the bank intact and no
step done twice; a 2-process ZeRO-3 run completes; refusing to clobber an existing run."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest

from trainer_helpers import REPO, metrics, run_training, tiny_overrides, train_command

pytestmark = [pytest.mark.slow]


def test_killed_run_resumes_without_duplicating_steps(tiny, tmp_path):
    overrides = tiny_overrides(tiny, tmp_path, "crash", **{"data.max_steps": 6, "checkpoint.every": 2,
                                                           "logging.validate_every": 0})
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(train_command(overrides), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    run = tmp_path / "crash"
    deadline = time.time() + 240
    # Kill it hard once step 2 is checkpointed and step 3 has been written (so work past the
    # checkpoint exists and must be rolled back on resume).
    while time.time() < deadline:
        done = (run / "checkpoints" / "step-000002" / "COMPLETE").exists()
        if done and (run / "metrics.jsonl").exists() and len(metrics(run)) >= 3:
            break
        assert proc.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(metrics(run)) >= 3

    again = subprocess.run(train_command(overrides), cwd=REPO, env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "already holds a run; pass --resume" in again.stderr

    run_training(overrides, resume=True)
    rows = metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    conn = sqlite3.connect(run / "memory.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    per_step = Counter(step for (step,) in conn.execute("SELECT step FROM experiences"))
    # 4 questions x 4 samples per step, each step exactly once (steps are 0-based in the bank).
    assert per_step == {step: 16 for step in range(6)}
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000004", "step-000006"]


@pytest.mark.multiprocess
def test_two_process_zero3_run(tiny, tmp_path):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    run_training(tiny_overrides(tiny, tmp_path, "zero3", **{
        "deepspeed.zero_stage": 3, "data.max_steps": 2, "data.questions_per_step": 4, "checkpoint.every": 2,
        "logging.validate_every": 2}), launcher=launcher, timeout=400)
    rows = metrics(tmp_path / "zero3")
    assert [r["step"] for r in rows] == [1, 2] and "validation/accuracy" in rows[-1]
    assert rows[0]["memory/experience"] == 16  # both ranks' rollouts reached rank 0's bank
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "zero3" / "checkpoints" / "step-000002" / "hf")
    assert sum(p.numel() for p in model.parameters()) > 0
