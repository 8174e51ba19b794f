"""Checking a model before anything is loaded or written: a local Hugging Face folder, or a hub id.

Loading a broken model folder fails late and far away (a reshape error deep in lm-eval, "Cannot
use chat template functions ...", a ``safetensors`` header error after outputs were created), so
every entry point checks ``--model`` first with a few cheap file reads, no model code:

* ``check_model_folder(path)``: the folder exists; ``config.json`` is valid JSON with a
  ``model_type``; tokenizer files are there (``tokenizer.json``, or a vocabulary file such as
  ``vocab.json`` + ``merges.txt`` / ``tokenizer.model`` / ``vocab.txt``); a weights file is there
  (``model.safetensors``, ``pytorch_model.bin``, or a ``*.index.json`` whose shards all exist),
  and a ``.safetensors`` file is not truncated;
* ``check_model_spec(spec)``: a local path is checked as above; a hub id must be loadable: from
  the local Hugging Face cache when the hub is offline (``HF_HUB_OFFLINE=1``), else through
  ``transformers.AutoConfig``.

Every failure is one ``ModelFolderError`` (a ``ValueError``, so ``pmd.errors.reports_user_errors``
prints it as one line) naming the file and the fix.
"""
from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

# ``org/name`` (hub ids); a local path that exists always wins over this.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# Files a tokenizer can be built from when there is no ``tokenizer.json`` (slow tokenizers).
_VOCAB_FILES = ("vocab.json", "vocab.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
                "vocab.model", "tiktoken.model", "qwen.tiktoken")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


class ModelFolderError(ValueError):
    """A model folder or hub id that cannot be loaded; the message names the file and the fix."""


def _read_json(path: Path, what: str) -> dict:
    """``path`` parsed as a JSON object, or one line saying what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelFolderError(f"{what}: {path} is not text (expected JSON); restore it from the "
                               "original model or save the model again") from None
    except json.JSONDecodeError as err:
        raise ModelFolderError(f"{what}: {path} is not valid JSON (line {err.lineno}: {err.msg}); "
                               "restore it from the original model or save the model again") from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{what}: {path} holds a JSON {type(data).__name__}, not an object; "
                               "restore it from the original model or save the model again")
    return data


def _check_config(folder: Path, what: str) -> dict:
    config_path = folder / "config.json"
    if not config_path.is_file():
        if (folder / "hf").is_dir():
            hint = f"; it looks like a pmd checkpoint: point at {folder / 'hf'}"
        elif (folder / "checkpoints").is_dir():
            hint = f"; it looks like a pmd-train run: point at {folder / 'checkpoints'}/step-N/hf"
        else:
            hint = "; point at a folder saved with save_pretrained"
        raise ModelFolderError(f"{what}: {folder} has no config.json, so it is not a Hugging Face model folder{hint}")
    config = _read_json(config_path, what)
    if not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise ModelFolderError(f"{what}: {config_path} has no model_type; restore it from the original "
                               "model or save the model again")
    return config


def _check_tokenizer(folder: Path, what: str, *, chat_template: bool) -> None:
    tokenizer_json = folder / "tokenizer.json"
    config_path = folder / "tokenizer_config.json"
    if tokenizer_json.is_file():
        if tokenizer_json.stat().st_size == 0:
            raise ModelFolderError(f"{what}: {tokenizer_json} is empty; copy the tokenizer files from the "
                                   "original model (tokenizer.save_pretrained)")
    elif not any((folder / name).is_file() for name in _VOCAB_FILES):
        raise ModelFolderError(
            f"{what}: {folder} has no tokenizer files (tokenizer.json, or tokenizer_config.json with "
            "vocab.json/merges.txt or tokenizer.model); copy them from the base model (tokenizer.save_pretrained)")
    elif (folder / "vocab.json").is_file() and not (folder / "merges.txt").is_file():
        raise ModelFolderError(f"{what}: {folder} has vocab.json but no merges.txt (and no tokenizer.json); "
                               "copy the tokenizer files from the base model")
    tok_config = _read_json(config_path, what) if config_path.is_file() else {}
    if chat_template and not tok_config.get("chat_template") and not any(
            (folder / name).is_file() for name in _CHAT_TEMPLATE_FILES):
        raise ModelFolderError(
            f"{what}: {folder} has no chat template (chat_template.jinja, or chat_template in "
            "tokenizer_config.json); copy the tokenizer files from the base model (tokenizer.save_pretrained)")


def _check_safetensors(path: Path, what: str) -> None:
    """A ``.safetensors`` file holds an 8-byte header length, a JSON header, then its tensors: a
    file cut short (a copy or a save that did not finish) fails here, not half-way through a load."""
    fix = "copy or save the model again"
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            (header_len,) = struct.unpack("<Q", head) if len(head) == 8 else (None,)
            if header_len is None or header_len > size - 8:
                raise ModelFolderError(f"{what}: {path} is truncated or not a safetensors file; {fix}")
            header = json.loads(handle.read(header_len))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFolderError(f"{what}: {path} has a broken safetensors header; {fix}") from None
    ends = [entry["data_offsets"][1] for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict) and len(entry.get("data_offsets", ())) == 2]
    if ends and 8 + header_len + max(ends) > size:
        raise ModelFolderError(f"{what}: {path} is truncated ({size} bytes, its header needs "
                               f"{8 + header_len + max(ends)}); {fix}")


def _check_weights(folder: Path, what: str) -> None:
    for name in _WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            if path.suffix == ".safetensors":
                _check_safetensors(path, what)
            elif path.stat().st_size == 0:
                raise ModelFolderError(f"{what}: {path} is empty; copy or save the model again")
            return
    for name in _WEIGHT_INDEXES:
        index_path = folder / name
        if index_path.is_file():
            weight_map = _read_json(index_path, what).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise ModelFolderError(f"{what}: {index_path} has no weight_map; copy or save the model again")
            missing = sorted({shard for shard in map(str, weight_map.values()) if not (folder / shard).is_file()})
            if missing:
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                raise ModelFolderError(f"{what}: {folder} lacks weight shard {missing[0]}{more} listed in {name}; "
                                       "copy the missing shards or save the model again")
            return
    hint = " (a pmd checkpoint whose weights were removed?)" if folder.name == "hf" else ""
    raise ModelFolderError(
        f"{what}: {folder} has no weights file (model.safetensors, pytorch_model.bin or a *.index.json with "
        f"its shards){hint}; copy the weights in or point at a complete model")


def check_model_folder(path: str | os.PathLike, *, what: str = "model", chat_template: bool = False,
                       tokenizer: bool = True) -> None:
    """Check that ``path`` is a loadable Hugging Face model folder (see the module docstring);
    ``chat_template``: also require a chat template; ``tokenizer=False``: the tokenizer comes from
    elsewhere. Raises ``ModelFolderError`` naming the file and the fix. Reads only small files and
    the safetensors headers."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ModelFolderError(f"{what}: model folder {folder} not found; check the path")
    if not folder.is_dir():
        raise ModelFolderError(f"{what}: {folder} is a file, not a model folder; point at the folder "
                               "holding config.json")
    _check_config(folder, what)
    if tokenizer:
        _check_tokenizer(folder, what, chat_template=chat_template)
    _check_weights(folder, what)


def hub_offline() -> bool:
    """Whether the Hugging Face hub may not be reached (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def looks_like_hub_id(spec: str) -> bool:
    """``org/name`` that is not written as a path (``./x``, ``/x``, ``~/x``)."""
    return bool(HUB_ID.match(spec)) and not spec.startswith((".", "/", "~"))


def _cached_snapshot(spec: str) -> Path | None:
    """The local cache's snapshot folder of hub model ``spec`` (holding its config.json), or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(spec, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def check_model_spec(spec: str, *, what: str = "model", chat_template: bool = False, tokenizer: bool = True) -> None:
    """Check ``spec`` before anything is loaded: a local path with ``check_model_folder``; a hub
    id in the local cache when the hub is offline (config, tokenizer and weights all cached), else
    with ``transformers.AutoConfig`` (cache first, then the network). Keywords: as for
    ``check_model_folder``."""
    spec = str(spec)
    if Path(spec).expanduser().exists() or not looks_like_hub_id(spec):
        check_model_folder(spec, what=what, chat_template=chat_template, tokenizer=tokenizer)
        return
    download = f"download it first (huggingface-cli download {spec}) or point at a local model folder"
    if hub_offline():
        snapshot = _cached_snapshot(spec)
        if snapshot is None:
            raise ModelFolderError(f"{what}: model {spec} is not in the local Hugging Face cache and the hub is "
                                   f"offline (HF_HUB_OFFLINE=1); {download}")
        try:
            check_model_folder(snapshot, what=what, chat_template=chat_template, tokenizer=tokenizer)
        except ModelFolderError as err:
            reason = str(err).removeprefix(f"{what}: ").split(";")[0]
            raise ModelFolderError(f"{what}: model {spec} is only partly in the local Hugging Face cache ({reason}) "
                                   f"and the hub is offline (HF_HUB_OFFLINE=1); {download}") from None
        return
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(spec)
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelFolderError(f"{what}: model {spec!r} is not a local folder and could not be loaded from the "
                               f"Hugging Face hub ({reason}); check the id, or {download}") from None
