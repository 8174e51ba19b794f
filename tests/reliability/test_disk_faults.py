"""A full or read-only disk during a checkpoint save: one clear error, the previous checkpoint and
the bank intact, no partial checkpoint left, and ``--resume`` works once the disk is writable.
The disks are real: small tmpfs mounts (root only; the test is skipped, saying why, elsewhere)."""
from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from fault_run import assert_finished_run, experiences_per_step, launch, run_overrides, start
from trainer.checkpoint import checkpoint_dir, checkpoint_problem

pytestmark = [pytest.mark.slow]


@contextmanager
def tmpfs(path: Path, size_mib: int):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(folder: Path) -> Path:
    """Write zeros into ``folder`` until the file system has no space left."""
    filler = folder / "filler"
    block = b"\0" * (1 << 20)
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError:
            pass
    try:  # and the last partial block
        with open(folder / "filler-tail", "wb") as handle:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
    except OSError:
        pass
    return filler


def _save_fails_after(proc, signal_dir: Path, change_disk) -> subprocess.CompletedProcess:
    """Wait for the paused save, change the disk, let the save go on, collect the result."""
    deadline = time.time() + 240
    while not (signal_dir / "ready").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    change_disk()
    (signal_dir / "go").touch()
    out, err = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _assert_one_error(done: subprocess.CompletedProcess, *words: str) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-6000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and done.stderr.strip().splitlines()[-1] == errors[0], done.stderr[-3000:]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def _assert_intact_after_failure(run: Path) -> None:
    assert checkpoint_problem(checkpoint_dir(run, 2), ("hf/", "state.json", "ds/", "memory.db", "teacher/")) is None
    assert not checkpoint_dir(run, 4).exists()
    assert not list((run / "checkpoints").glob(".step-*")), "a partial checkpoint was left behind"
    assert set(experiences_per_step(run / "memory.db")) == {0, 1, 2, 3}  # the live bank: intact, steps 0-3


def test_full_disk_during_a_save(tiny, tmp_path):
    with tmpfs(tmp_path / "disk", 48) as disk:
        overrides = run_overrides(tiny, disk, "run", 2)
        assert launch(overrides, resume=False).returncode == 0
        signals = tmp_path / "signals"
        signals.mkdir()
        proc = start(run_overrides(tiny, disk, "run", 4), resume=True, fault=f"pause_before_save:1:{signals}")
        done = _save_fails_after(proc, signals, lambda: _fill(disk))
        _assert_one_error(done, "checkpoint step-000004 could not be written", "the disk is full",
                          "step-000002 is intact", "--resume")
        _assert_intact_after_failure(disk / "run")
        for filler in disk.glob("filler*"):
            filler.unlink()
        again = launch(run_overrides(tiny, disk, "run", 4), resume=True)
        assert again.returncode == 0, again.stderr[-3000:]
        assert_finished_run(disk / "run", 4)


def test_read_only_disk_during_a_save(tiny, tmp_path):
    run = tmp_path / "run"
    with tmpfs(run / "checkpoints", 48) as checkpoints:
        assert launch(run_overrides(tiny, tmp_path, "run", 2), resume=False).returncode == 0
        signals = tmp_path / "signals"
        signals.mkdir()
        proc = start(run_overrides(tiny, tmp_path, "run", 4), resume=True, fault=f"pause_before_save:1:{signals}")
        remount = ["mount", "-o", "remount,ro", str(checkpoints)]
        done = _save_fails_after(proc, signals, lambda: subprocess.run(remount, check=True))
        _assert_one_error(done, "checkpoint step-000004 could not be written", "read-only", "step-000002 is intact")
        subprocess.run(["mount", "-o", "remount,rw", str(checkpoints)], check=True)
        _assert_intact_after_failure(run)
        again = launch(run_overrides(tiny, tmp_path, "run", 4), resume=True)
        assert again.returncode == 0, again.stderr[-3000:]
        assert_finished_run(run, 4)


def test_full_disk_when_resuming(tiny, tmp_path):
    """The restore itself needs space (the bank snapshot is copied back): one line, nothing left
    half-written, and the resume works once there is room."""
    with tmpfs(tmp_path / "disk", 48) as disk:
        assert launch(run_overrides(tiny, disk, "run", 2), resume=False).returncode == 0
        _fill(disk)
        done = launch(run_overrides(tiny, disk, "run", 4), resume=True)
        _assert_one_error(done, "cannot write", "No space left on device")
        assert not (disk / "run" / "memory.db.restore").exists()
        for filler in disk.glob("filler*"):
            filler.unlink()
        again = launch(run_overrides(tiny, disk, "run", 4), resume=True)
        assert again.returncode == 0, again.stderr[-3000:]
        assert_finished_run(disk / "run", 4)
