"""Checkpoints that are either intact or not used, and resuming from the newest intact one.

Layout of ``<run>/checkpoints/step-000010/``:

* ``hf/``           the student in Hugging Face format (16-bit gathered under ZeRO-3): what
                    ``from_pretrained`` and vLLM load, and what evaluation uses;
* ``teacher/``      the EMA teacher's weights (safetensors), when the teacher is a separate copy;
* ``ds/``           DeepSpeed's training state (optimizer, scheduler, step) for resuming;
* ``memory.db``     a consistent snapshot of the bank at this step (SQLite online backup);
* ``state.json``    the step and the data order;
* ``manifest.json`` every file above with its size and sha256 (``trainer.manifest``);
* ``COMPLETE``      written last.

Everything is written into ``.step-000010.tmp`` and renamed into place only when complete, so an
interrupted save never replaces or corrupts a good checkpoint. A checkpoint is *intact* when it is
complete and verifies against its manifest, holding every part the run needs. Resuming takes the
newest intact checkpoint (saying which it skipped and why), restores the bank from its snapshot
and cuts ``metrics.jsonl`` back to its step, so no step is done twice and no step's memory is lost
or doubled. Pruning (``keep_last``) counts intact checkpoints only and never removes the newest
intact one.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from trainer.manifest import manifest_problem, write_manifest

COMPLETE = "COMPLETE"
STATE = "state.json"
# Files a run writes as it goes; a run with no intact checkpoint cannot continue from them.
PARTIAL_RUN_FILES = ("metrics.jsonl", "teacher_examples.jsonl", "memory.db", "memory.db-wal", "memory.db-shm",
                     "memory.db.restore", "resumed_from.json", "tensorboard")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:06d}"


def step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[1])


def step_folders(run_dir: Path) -> list[Path]:
    """Every published ``step-N`` folder, oldest first (intact or not)."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir()
             if p.is_dir() and p.name.startswith("step-") and p.name.removeprefix("step-").isdigit()]
    return sorted(found, key=step_of)


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Step folders carrying the ``COMPLETE`` marker, oldest first (not yet verified)."""
    return [p for p in step_folders(run_dir) if (p / COMPLETE).exists()]


def required_parts(*, training_state: bool, bank: bool, teacher: bool) -> tuple[str, ...]:
    """The parts a resume of this run needs from a checkpoint (manifest path prefixes)."""
    parts = ["hf/", STATE]
    if training_state:
        parts.append("ds/")
    if bank:
        parts.append("memory.db")
    if teacher:
        parts.append("teacher/")
    return tuple(parts)


# Full (checksum) verification of a published checkpoint is done once per process; later checks of
# the same unchanged files only compare sizes. Keyed by folder, valued by its files' signature.
_VERIFIED: dict[Path, tuple] = {}


def _signature(folder: Path) -> tuple:
    return tuple(sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                        for p in folder.rglob("*") if p.is_file()))


def checkpoint_problem(checkpoint: Path, required: tuple[str, ...] = ("hf/", STATE),
                       within: tuple[str, ...] | None = None, quick: bool = False) -> str | None:
    """Why ``checkpoint`` is not intact (a short phrase), or None when it is. ``within``: verify
    only the files under these prefixes (see ``manifest_problem``). ``quick``: compare sizes
    only, never hash (for pruning, see ``prune``)."""
    if not (checkpoint / COMPLETE).exists():
        return f"no {COMPLETE} marker"
    if within is not None:
        return manifest_problem(checkpoint, required=required, within=within)
    try:
        signature = _signature(checkpoint)
    except OSError as err:
        return f"unreadable ({err.strerror})"
    full = not quick and _VERIFIED.get(checkpoint.resolve()) != signature
    problem = manifest_problem(checkpoint, required=required, sizes_only=not full)
    if problem is None and full:
        _VERIFIED[checkpoint.resolve()] = signature
    return problem


def select_checkpoint(run_dir: Path, required: tuple[str, ...]) -> tuple[Path | None, list[tuple[str, str]]]:
    """The newest intact checkpoint, and the newer ones passed over as ``(name, reason)``."""
    skipped = []
    for checkpoint in reversed(step_folders(run_dir)):
        problem = checkpoint_problem(checkpoint, required)
        if problem is None:
            return checkpoint, skipped
        skipped.append((checkpoint.name, problem))
    return None, skipped


def latest_checkpoint(run_dir: Path, required: tuple[str, ...] = ("hf/", STATE)) -> Path | None:
    """The newest intact checkpoint holding ``required`` (default: weights and state), or None."""
    return select_checkpoint(run_dir, required)[0]


def latest_model_checkpoint(run_dir: Path) -> tuple[Path | None, list[tuple[str, str]]]:
    """For evaluation: the newest checkpoint whose ``hf/`` weights verify (nothing else is read),
    and the newer ones passed over as ``(name, reason)``."""
    skipped = []
    for checkpoint in reversed(step_folders(run_dir)):
        problem = checkpoint_problem(checkpoint, ("hf/",), within=("hf/",))
        if problem is None:
            return checkpoint, skipped
        skipped.append((checkpoint.name, problem))
    return None, skipped


def staging_path(run_dir: Path, step: int) -> Path:
    """Where the checkpoint of ``step`` is assembled before it is published."""
    return run_dir / "checkpoints" / f".step-{step:06d}.tmp"


def staging_dir(run_dir: Path, step: int) -> Path:
    """A fresh temporary folder for the checkpoint of ``step`` (leftovers of a crash removed)."""
    tmp = staging_path(run_dir, step)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def write_state(tmp: Path, state: dict) -> None:
    (tmp / STATE).write_text(json.dumps(state, indent=2), encoding="utf-8")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(run_dir: Path, tmp: Path, step: int, keep_last: int, required: tuple[str, ...]) -> Path:
    """Write the manifest, mark ``tmp`` complete, move it into place, and prune old checkpoints."""
    write_manifest(tmp, skip=(COMPLETE,))
    with open(tmp / COMPLETE, "w", encoding="utf-8") as marker:
        marker.write(str(step))
        marker.flush()
        os.fsync(marker.fileno())
    final = checkpoint_dir(run_dir, step)
    if final.exists():  # a checkpoint of the same step (a re-run, or a damaged one): replace it atomically
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync_dir(final.parent)
    _VERIFIED[final.resolve()] = _signature(final)  # just hashed by write_manifest
    prune(run_dir, keep_last, required)
    return final


def prune(run_dir: Path, keep_last: int, required: tuple[str, ...]) -> list[Path]:
    """Remove intact checkpoints beyond the newest ``keep_last`` intact ones; damaged ones neither
    count nor are removed (they are evidence, and a later save of their step replaces them).
    Returns the removed folders.

    Older checkpoints are checked by sizes only: after a resume they were never hashed in this
    process, and hashing each (optimizer state included, ~100 GB for an 8B model) at the first
    save would stall the run for minutes. The checkpoint just published was hashed as it was
    written, and a resume hashes the one it picks, so the newest intact one is always known."""
    intact = [c for c in reversed(complete_checkpoints(run_dir)) if checkpoint_problem(c, required, quick=True) is None]
    removed = intact[max(1, keep_last):]
    for stale in removed:
        shutil.rmtree(stale)
        _VERIFIED.pop(stale.resolve(), None)
    return removed


def read_state(checkpoint: Path) -> dict:
    return json.loads((checkpoint / STATE).read_text(encoding="utf-8"))


def restore_bank(checkpoint: Path, bank_path: Path) -> None:
    """Put the checkpoint's bank snapshot back as the run's bank (drops the steps after it).

    The copy goes to a temporary file first and replaces the bank in one rename; a crash in
    between leaves the snapshot in the checkpoint, and the next resume restores it again."""
    staged = Path(f"{bank_path}.restore")
    try:
        shutil.copyfile(checkpoint / "memory.db", staged)
    except BaseException:
        staged.unlink(missing_ok=True)  # a full disk: leave no partial copy beside the bank
        raise
    for suffix in ("-wal", "-shm"):  # the old bank's journal must not be replayed onto the snapshot
        Path(f"{bank_path}{suffix}").unlink(missing_ok=True)
    os.replace(staged, bank_path)


def truncate_step_log(path: Path, last_step: int) -> None:
    """Keep only rows of steps <= ``last_step`` of a JSON Lines log (metrics.jsonl,
    teacher_examples.jsonl): the resumed run writes the rest again."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= last_step:
                kept.append(line + "\n")
        except json.JSONDecodeError:
            continue  # a line torn by the crash
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)


def partial_run_files(run_dir: Path) -> list[Path]:
    """What a run left before it had any checkpoint: progress files and unpublished staging folders."""
    found = [run_dir / name for name in PARTIAL_RUN_FILES if (run_dir / name).exists()]
    root = run_dir / "checkpoints"
    if root.is_dir():
        found += sorted(p for p in root.iterdir() if p.name.startswith(".step-"))
    return found


def discard_partial_run(run_dir: Path) -> list[str]:
    """Remove what ``partial_run_files`` finds; returns the names removed."""
    removed = []
    for path in partial_run_files(run_dir):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(str(path.relative_to(run_dir)))
    return removed


def save_module_weights(module, path: Path) -> None:
    """A full copy of ``module``'s weights as safetensors (gathered when ZeRO-3 partitions them)."""
    import torch
    from safetensors.torch import save_file

    params = list(module.parameters())
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            state = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    else:
        state = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    # Tied weights share storage; safetensors refuses shared tensors, clone() above separates them.
    save_file({k: v.to(torch.float32) if v.dtype == torch.float64 else v for k, v in state.items()}, str(path))


def load_module_weights(module, path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    state = load_file(str(path))
    params = list(module.parameters())
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        with deepspeed.zero.GatheredParameters(params, modifier_rank=0):
            module.load_state_dict(state, strict=False)
    else:
        with torch.no_grad():
            module.load_state_dict(state, strict=False)
