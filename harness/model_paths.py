"""What ``--model`` names: a Hugging Face folder, a pmd checkpoint, a pmd-train run, or a hub id.

* a folder with ``config.json``: that model;
* a pmd checkpoint folder (``checkpoints/step-N``, holding ``hf/``): its memory-free policy;
* a pmd-train run folder (holding ``checkpoints/``): its latest complete checkpoint;
* anything else that looks like ``org/name`` and is not a local path: a hub id, checked with
  ``pmd.model_check.check_model_spec`` (offline: config, tokenizer and weights in the local hub
  cache; online: ``transformers.AutoConfig``).

The folder a spec resolves to is checked with ``pmd.model_check.check_model_folder`` (valid
config.json, tokenizer files, weights), so a broken model is refused before anything loads or is
written.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from pmd.model_check import check_model_folder, check_model_spec, looks_like_hub_id


@dataclass(frozen=True)
class ResolvedModel:
    spec: str     # what the user wrote
    path: str     # what transformers / vLLM load
    label: str    # short name for tables and plots
    local: bool


def _latest_checkpoint(run_dir: Path) -> Path:
    """The run's newest checkpoint whose weights verify against its manifest; a newer damaged
    one is named on stderr and not used. An error with the reasons when there is none."""
    from trainer.checkpoint import latest_model_checkpoint

    checkpoint, skipped = latest_model_checkpoint(run_dir)
    if checkpoint is None:
        reasons = "".join(f"; {name}: {why}" for name, why in skipped)
        raise FileNotFoundError(f"training run {run_dir} has no checkpoint with intact weights yet{reasons}; "
                                "point --model at a checkpoints/step-N folder once one is written")
    for name, why in skipped:
        print(f"note: {run_dir.name}/checkpoints/{name} is damaged ({why}): not used", file=sys.stderr)
    return checkpoint


def _resolve_local(spec: str, folder: Path) -> ResolvedModel:
    if (folder / "config.json").is_file():
        label = f"{folder.parent.parent.name}@{folder.parent.name}" if folder.name == "hf" else folder.name
        return ResolvedModel(spec, str(folder), label, True)
    if (folder / "hf" / "config.json").is_file():
        return ResolvedModel(spec, str(folder / "hf"), f"{folder.parent.parent.name}@{folder.name}", True)
    if (folder / "checkpoints").is_dir():
        checkpoint = _latest_checkpoint(folder)
        return ResolvedModel(spec, str(checkpoint / "hf"), f"{folder.name}@{checkpoint.name}", True)
    raise FileNotFoundError(
        f"{folder} is not a model folder: expected config.json (a Hugging Face model), hf/ (a pmd "
        "checkpoint) or checkpoints/ (a pmd-train run)")


def resolve_model(spec: str, *, what: str = "--model", chat_template: bool = False) -> ResolvedModel:
    """Resolve ``spec`` (see the module docstring) and check the model it names; errors
    (``FileNotFoundError``, ``pmd.model_check.ModelFolderError``) name the problem and the fix.
    ``chat_template``: the model must also have a chat template."""
    folder = Path(spec).expanduser()
    if folder.exists():
        resolved = _resolve_local(spec, folder)
        check_model_folder(resolved.path, what=what, chat_template=chat_template)
        return resolved
    if not looks_like_hub_id(spec):
        raise FileNotFoundError(f"model folder {spec} not found; check the path (or give a hub id like Qwen/Qwen3-8B)")
    check_model_spec(spec, what=what, chat_template=chat_template)
    return ResolvedModel(spec, spec, spec.split("/")[-1], False)
