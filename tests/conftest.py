"""Shared fixtures: tiny things only (the tiny model folder, in-memory banks, a deterministic toy embedder)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

# Nothing may be downloaded in tests: every model comes from local files or a package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    """The tiny random-weight Qwen3 (``pmd.tiny_model``) as a model folder, built once per session;
    tests read it, and copy it before changing anything."""
    from pmd.tiny_model import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("models"))["tiny"]


@pytest.fixture
def hash_embedder():
    from memory_bank.embedding import HashingEmbedder

    return HashingEmbedder(dim=64, seed=0)


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dir_listing(path: Path) -> list[str]:
    return sorted(p.name for p in Path(path).iterdir())
