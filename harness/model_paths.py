"""What ``--model`` names: a Hugging Face folder, a pmd checkpoint, a pmd-train run, or a hub id.

* a folder with ``config.json``: that model;
* a pmd checkpoint folder (``checkpoints/step-N``, holding ``hf/``): its memory-free policy;
* a pmd-train run folder (holding ``checkpoints/``): its latest complete checkpoint;
* anything else that looks like ``org/name`` and is not a local path: a hub id, checked with
  ``transformers.AutoConfig`` (the local hub cache first, then the network).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ResolvedModel:
    spec: str     # what the user wrote
    path: str     # what transformers / vLLM load
    label: str    # short name for tables and plots
    local: bool


def _latest_checkpoint(run_dir: Path) -> Path | None:
    steps = []
    for folder in (run_dir / "checkpoints").glob("step-*"):
        suffix = folder.name.removeprefix("step-")
        if suffix.isdigit() and (folder / "COMPLETE").exists() and (folder / "hf" / "config.json").is_file():
            steps.append((int(suffix), folder))
    return max(steps)[1] if steps else None


def _resolve_local(spec: str, folder: Path) -> ResolvedModel:
    if (folder / "config.json").is_file():
        label = f"{folder.parent.parent.name}@{folder.parent.name}" if folder.name == "hf" else folder.name
        return ResolvedModel(spec, str(folder), label, True)
    if (folder / "hf" / "config.json").is_file():
        return ResolvedModel(spec, str(folder / "hf"), f"{folder.parent.parent.name}@{folder.name}", True)
    if (folder / "checkpoints").is_dir():
        checkpoint = _latest_checkpoint(folder)
        if checkpoint is None:
            raise FileNotFoundError(f"training run {folder} has no complete checkpoint yet; "
                                    "point --model at a checkpoints/step-N folder once one is written")
        return ResolvedModel(spec, str(checkpoint / "hf"), f"{folder.name}@{checkpoint.name}", True)
    raise FileNotFoundError(
        f"{folder} is not a model folder: expected config.json (a Hugging Face model), hf/ (a pmd "
        "checkpoint) or checkpoints/ (a pmd-train run)")


def resolve_model(spec: str) -> ResolvedModel:
    """Resolve ``spec`` (see the module docstring); errors name the problem and the fix."""
    folder = Path(spec).expanduser()
    if folder.exists():
        return _resolve_local(spec, folder)
    if not _HUB_ID.match(spec) or spec.startswith((".", "/", "~")):
        raise FileNotFoundError(f"model folder {spec} not found; check the path (or give a hub id like Qwen/Qwen3-8B)")
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(spec)
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FileNotFoundError(
            f"model {spec!r} is not a local folder and could not be loaded from the Hugging Face hub "
            f"({reason}); check the id, or download it first (huggingface-cli download {spec})") from None
    return ResolvedModel(spec, spec, spec.split("/")[-1], False)
