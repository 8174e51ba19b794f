"""The checkpoint rules on plain folders (no training): what counts as intact, which checkpoint a
resume picks, and that pruning counts intact checkpoints only and never removes the newest one."""
from __future__ import annotations

import pytest

from trainer import checkpoint as ckpt
from trainer.manifest import manifest_problem, write_manifest

PARTS = ckpt.required_parts(training_state=True, bank=True, teacher=False)


def publish_fake(run, step: int, keep_last: int = 10):
    tmp = ckpt.staging_dir(run, step)
    (tmp / "hf").mkdir()
    (tmp / "hf" / "model.safetensors").write_bytes(bytes(range(256)) * (step + 1))
    (tmp / "ds").mkdir()
    (tmp / "ds" / "optim_states.pt").write_bytes(b"optimizer" * step)
    (tmp / "memory.db").write_bytes(b"bank" * step)
    ckpt.write_state(tmp, {"step": step})
    return ckpt.publish(run, tmp, step, keep_last, PARTS)


def test_a_published_checkpoint_verifies_and_damage_is_named(tmp_path):
    folder = publish_fake(tmp_path, 2)
    assert ckpt.checkpoint_problem(folder, PARTS) is None
    assert not ckpt.staging_path(tmp_path, 2).exists()
    (folder / "ds" / "optim_states.pt").write_bytes(b"optimizer" * 3)
    assert ckpt.checkpoint_problem(folder, PARTS) == "ds/optim_states.pt has 27 bytes, 18 expected"
    (folder / "ds" / "optim_states.pt").write_bytes(b"OPTIMIZER" * 2)  # same size, other bytes
    ckpt._VERIFIED.clear()  # a new process: full verification
    assert ckpt.checkpoint_problem(folder, PARTS) == "ds/optim_states.pt does not match its checksum"


def test_a_checkpoint_without_a_needed_part_is_not_intact(tmp_path):
    folder = publish_fake(tmp_path, 2)
    assert ckpt.checkpoint_problem(folder, (*PARTS, "teacher/")) == "it holds no teacher"
    assert manifest_problem(folder, required=("hf/",), within=("hf/",)) is None


def test_resume_picks_the_newest_intact_checkpoint(tmp_path):
    for step in (2, 4, 6):
        publish_fake(tmp_path, step)
    (ckpt.checkpoint_dir(tmp_path, 6) / "memory.db").unlink()
    (ckpt.checkpoint_dir(tmp_path, 4) / ckpt.COMPLETE).unlink()
    chosen, skipped = ckpt.select_checkpoint(tmp_path, PARTS)
    assert chosen == ckpt.checkpoint_dir(tmp_path, 2)
    assert skipped == [("step-000006", "memory.db is missing"), ("step-000004", "no COMPLETE marker")]


@pytest.mark.parametrize("keep_last", [1, 2])
def test_pruning_counts_intact_checkpoints_only(tmp_path, keep_last):
    publish_fake(tmp_path, 2)
    publish_fake(tmp_path, 4)
    (ckpt.checkpoint_dir(tmp_path, 4) / "hf" / "model.safetensors").unlink()  # damaged after publishing
    publish_fake(tmp_path, 6, keep_last=keep_last)
    names = [p.name for p in ckpt.step_folders(tmp_path)]
    # step-4 is damaged: kept as evidence, not counted; step-2 counts only when keep_last allows.
    assert names == (["step-000004", "step-000006"] if keep_last == 1 else ["step-000002", "step-000004", "step-000006"])


def test_pruning_never_removes_the_newest_intact_checkpoint(tmp_path):
    publish_fake(tmp_path, 2)
    publish_fake(tmp_path, 4)
    (ckpt.checkpoint_dir(tmp_path, 4) / "manifest.json").unlink()
    assert ckpt.prune(tmp_path, 1, PARTS) == []
    assert [p.name for p in ckpt.step_folders(tmp_path)] == ["step-000002", "step-000004"]


def test_pruning_hashes_no_older_checkpoint(tmp_path, monkeypatch):
    """After a resume (a new process) the first save prunes without reading older checkpoints'
    bytes: only the checkpoint being written is hashed."""
    from trainer import manifest

    publish_fake(tmp_path, 2)
    publish_fake(tmp_path, 4)
    ckpt._VERIFIED.clear()  # a new process
    hashed = []
    real = manifest.sha256_file
    monkeypatch.setattr(manifest, "sha256_file", lambda path: hashed.append(path) or real(path))
    publish_fake(tmp_path, 6, keep_last=2)
    assert [p.name for p in ckpt.step_folders(tmp_path)] == ["step-000004", "step-000006"]
    staged = ckpt.staging_path(tmp_path, 6)
    assert hashed and all(p.is_relative_to(staged) for p in hashed)  # written there, then published


def test_republishing_a_damaged_step_replaces_it(tmp_path):
    publish_fake(tmp_path, 2)
    (ckpt.checkpoint_dir(tmp_path, 2) / "memory.db").unlink()
    publish_fake(tmp_path, 2)
    assert ckpt.checkpoint_problem(ckpt.checkpoint_dir(tmp_path, 2), PARTS) is None
    assert not list((tmp_path / "checkpoints").glob("*.old"))


def test_partial_run_files_are_listed_and_discarded(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    (tmp_path / "memory.db").write_bytes(b"x")
    (tmp_path / "memory.db-wal").write_bytes(b"x")
    ckpt.staging_dir(tmp_path, 2)
    (tmp_path / "config.yaml").write_text("algorithm: pmd\n")
    assert ckpt.discard_partial_run(tmp_path) == ["metrics.jsonl", "memory.db", "memory.db-wal",
                                                  "checkpoints/.step-000002.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "config.yaml"]


def test_restoring_the_bank_replaces_it_and_its_journal(tmp_path):
    folder = publish_fake(tmp_path, 2)
    bank = tmp_path / "memory.db"
    bank.write_bytes(b"ahead of the checkpoint")
    (tmp_path / "memory.db-wal").write_bytes(b"journal")
    ckpt.restore_bank(folder, bank)
    assert bank.read_bytes() == (folder / "memory.db").read_bytes()
    assert not (tmp_path / "memory.db-wal").exists() and not (tmp_path / "memory.db.restore").exists()


def test_manifest_lists_every_file_but_itself(tmp_path):
    (tmp_path / "a").write_text("1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_text("22")
    manifest = write_manifest(tmp_path, skip=("COMPLETE",))
    assert sorted(manifest["files"]) == ["a", "sub/b"]
    assert manifest["files"]["sub/b"]["size"] == 2
