"""A damaged newest checkpoint costs nothing that is intact: resume verifies the manifest, falls
back to the newest intact checkpoint with one line saying which and why, restores the bank from
that checkpoint's snapshot (no step's memory lost or doubled), and ``keep_last`` never deletes it.
Also: a run stopped before its first checkpoint starts again from step 0 (with ``--resume`` or
without), and a resume that cannot work changes nothing in the run folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cli_checks import tree_hashes
from fault_run import assert_finished_run, launch, run_overrides
from trainer.checkpoint import checkpoint_dir

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def four_steps(tiny, tmp_path_factory):
    """A finished 4-step run: checkpoints step-2 and step-4, the live bank at step 4."""
    out = tmp_path_factory.mktemp("base")
    done = launch(run_overrides(tiny, out, "base", 4), resume=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "base"


def _optimizer_shard(ckpt: Path) -> Path:
    return next(ckpt.glob("ds/*/*optim_states.pt"))


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "weights file missing": (lambda c: (c / "hf" / "model.safetensors").unlink(), "hf/model.safetensors is missing"),
    "weights file cut": (lambda c: _cut(c / "hf" / "model.safetensors"), "hf/model.safetensors has"),
    "optimizer shard missing": (lambda c: _optimizer_shard(c).unlink(), "optim_states.pt is missing"),
    "optimizer shard cut": (lambda c: _cut(_optimizer_shard(c)), "optim_states.pt has"),
    "bank snapshot missing": (lambda c: (c / "memory.db").unlink(), "memory.db is missing"),
    "bank snapshot cut": (lambda c: _cut(c / "memory.db"), "memory.db has"),
    "a byte flipped in the weights": (lambda c: _flip_byte(c / "hf" / "model.safetensors"), "does not match its checksum"),
}
# The other kinds of damage (teacher weights gone, no manifest, no COMPLETE marker, a part never
# written) go through the same selection and are checked on plain folders in test_checkpoint_rules.py.


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_falls_back_from_a_damaged_latest_checkpoint(four_steps, tiny, tmp_path, damage):
    run = tmp_path / "base"
    shutil.copytree(four_steps, run)
    break_it, reason = DAMAGE[damage]
    break_it(checkpoint_dir(run, 4))
    # keep_last 1 would have deleted step-2 after the next save under the old rule.
    done = launch(run_overrides(tiny, tmp_path, "base", 6, **{"checkpoint.keep_last": 1}), resume=True)
    assert done.returncode == 0, done.stderr[-3000:]
    notes = [line for line in done.stderr.splitlines() if line.startswith("pmd-train:")]
    assert notes[0].startswith("pmd-train: step-000004 is damaged (") and reason in notes[0], notes
    assert notes[1] == "pmd-train: resuming from step-000002", notes
    assert (run / "resumed_from.json").read_text().startswith('{"checkpoint": "step-000002"')
    # Steps 3-4 were replayed from step 2's bank snapshot: every step's experiences once.
    assert_finished_run(run, 6)


def test_all_checkpoints_damaged_is_an_error_that_changes_nothing(four_steps, tiny, tmp_path):
    run = tmp_path / "base"
    shutil.copytree(four_steps, run)
    (checkpoint_dir(run, 4) / "hf" / "model.safetensors").unlink()
    _cut(_optimizer_shard(checkpoint_dir(run, 2)))
    before = tree_hashes(run)
    done = launch(run_overrides(tiny, tmp_path, "base", 6), resume=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --resume: no intact checkpoint") and "step-000004: hf/model.safetensors is missing" in last
    assert "step-000002: ds/" in last and tree_hashes(run) == before


def test_a_fresh_start_on_a_run_with_checkpoints_is_refused(four_steps, tiny, tmp_path):
    run = tmp_path / "base"
    shutil.copytree(four_steps, run)
    before = tree_hashes(run)
    done = launch(run_overrides(tiny, tmp_path, "base", 6), resume=False)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].endswith(
        "already holds a run; pass --resume to continue it or choose another run.name")
    assert tree_hashes(run) == before


@pytest.mark.parametrize("resume", [True, False], ids=["with --resume", "fresh start"])
def test_a_run_killed_before_its_first_checkpoint_starts_again(tiny, tmp_path, resume):
    overrides = run_overrides(tiny, tmp_path, "early", 4)
    killed = launch(overrides, resume=False, fault="kill_in_bank_write:6")  # in step 2, before step-2's save
    assert killed.returncode == -9 and not list((tmp_path / "early" / "checkpoints").glob("step-*"))
    done = launch(overrides, resume=resume)
    assert done.returncode == 0, done.stderr[-3000:]
    assert any(line.startswith("pmd-train: ") and "holds no checkpoint yet" in line and "starting from step 0" in line
               for line in done.stderr.splitlines()), done.stderr[-2000:]
    assert_finished_run(tmp_path / "early", 4)


def test_resume_of_a_run_that_never_started_starts_it(tiny, tmp_path):
    done = launch(run_overrides(tiny, tmp_path, "new", 2), resume=True)
    assert done.returncode == 0 and "pmd-train: nothing to resume under" in done.stderr
    assert_finished_run(tmp_path / "new", 2)
