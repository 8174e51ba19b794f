"""SIGKILL at 12 moments of one PMD run — during bank writes, during checkpoint saves, before the
first checkpoint, and at random times — each followed by ``--resume``: the run still ends with
every step recorded once, an intact bank holding each step's experiences once, and a final
checkpoint that loads and equals the one of an uninterrupted run."""
from __future__ import annotations

import os
import random
import signal
import time

import pytest

from fault_run import assert_finished_run, hf_weights_digest, launch, run_overrides, start
from trainer.checkpoint import checkpoint_dir

pytestmark = [pytest.mark.slow]

STEPS = 40
# Injected at exact moments (the rest of the 14 kills are at random times).
PLANNED = ["kill_in_bank_write:2",  # step 1's bank write: before the first checkpoint
           "kill_in_save:1",        # in the middle of the first checkpoint's save
           "kill_in_bank_write:22",  # a later bank write (one call per question: step 5's)
           "kill_in_save:1"]        # in the middle of a later save (the first of that process)
RANDOM_KILLS = 8


def _lines(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _kill_when(proc, ready, delay: float) -> bool:
    """SIGKILL ``proc``'s process group ``delay`` s after ``ready()`` holds; False if it ended first."""
    while not ready():
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    deadline = time.time() + delay
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    return True


@pytest.mark.timeout(2400)  # 14 launches of pmd-train: minutes on an idle machine, more on a busy one
def test_twelve_kills_then_the_same_result(tiny, tmp_path):
    reference = run_overrides(tiny, tmp_path, "uninterrupted", STEPS)
    assert launch(reference, resume=False, timeout=1200).returncode == 0

    overrides = run_overrides(tiny, tmp_path, "killed", STEPS)
    run = tmp_path / "killed"
    rng = random.Random(11)
    kills = 0
    moments = []
    for fault in PLANNED:
        done = launch(overrides, resume=kills > 0, fault=fault, timeout=1200)
        assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
        kills += 1
        moments.append(fault)
        if fault == "kill_in_bank_write:2":
            assert not list((run / "checkpoints").glob("step-*")), "the first kill came after a checkpoint"
    metrics = run / "metrics.jsonl"
    while kills < len(PLANNED) + RANDOM_KILLS:
        proc = start(overrides, resume=True)
        if rng.random() < 0.3:  # during start-up: loading models, restoring the checkpoint
            delay, ready, moment = rng.uniform(0.5, 5.0), (lambda: True), "start-up"
        else:  # during steps and saves: once the resumed run has written a few steps' metrics
            begin = _lines(metrics)
            grown = rng.randint(2, 3)
            delay, ready, moment = rng.uniform(0.0, 0.5), (lambda: _lines(metrics) >= begin + grown), f"after {grown} steps"
        if not _kill_when(proc, ready, delay):
            break  # it finished before the kill: nothing left to interrupt
        kills += 1
        moments.append(f"random, {moment} +{delay:.2f}s")
    assert kills >= 12, moments
    print("kills:", moments)
    finished = launch(overrides, resume=True, timeout=1200)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert_finished_run(run, STEPS)
    # Deterministic seeds per step: the interrupted run ends where the uninterrupted one did.
    assert hf_weights_digest(checkpoint_dir(run, STEPS)) == hf_weights_digest(checkpoint_dir(tmp_path / "uninterrupted", STEPS))
