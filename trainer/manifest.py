"""File manifests: what a checkpoint held when it was published, so a damaged one is recognised.

``manifest.json`` lists every file of the folder (relative path -> size in bytes and sha256) and is
written after all of them and before the ``COMPLETE`` marker. A folder *verifies* when every
listed file is there with its size and checksum, and the parts a resume needs are listed at all.

Cost: sha256 runs at about 1-2 GB/s per core and releases the GIL, so files are hashed on
``HASH_THREADS`` threads; a 16 GB checkpoint takes seconds to tens of seconds, once at save and
once when a resume picks it. ``sizes_only`` checks (used when pruning) read no file content.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pmd.provenance import sha256_file

MANIFEST = "manifest.json"
HASH_THREADS = max(1, min(8, os.cpu_count() or 1))


def _listed_files(folder: Path, skip: set[str]) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name not in skip)


def write_manifest(folder: Path, *, skip: tuple[str, ...] = ()) -> dict:
    """Write ``folder/manifest.json`` for every file below ``folder`` (except ``skip`` names) and
    return it. The file is fsynced: it is the proof the rest was complete."""
    names = _listed_files(folder, {MANIFEST, *skip})
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        digests = list(pool.map(lambda name: sha256_file(folder / name), names))
    manifest = {"version": 1, "files": {name: {"size": (folder / name).stat().st_size, "sha256": digest}
                                        for name, digest in zip(names, digests)}}
    path = folder / MANIFEST
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    return manifest


def read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) else None


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix) for prefix in prefixes)


def manifest_problem(folder: Path, *, required: tuple[str, ...] = (), sizes_only: bool = False,
                     within: tuple[str, ...] | None = None) -> str | None:
    """Why ``folder`` does not verify against its manifest (a short phrase), or None when it does.

    ``required``: path prefixes (``"hf/"``, ``"memory.db"``) of which the manifest must list at
    least one file each, so a checkpoint that never held a needed part does not pass either.
    ``within``: check only the listed files under these prefixes (an evaluation needs ``hf/``
    alone, and need not hash the optimizer state).
    """
    manifest = read_manifest(folder)
    if manifest is None:
        return f"{MANIFEST} missing or unreadable"
    files: dict = manifest["files"]
    for prefix in required:
        if not any(_under(name, (prefix,)) for name in files):
            return f"it holds no {prefix.rstrip('/')}"
    if within is not None:
        files = {name: entry for name, entry in files.items() if _under(name, within)}
    for name, entry in sorted(files.items()):
        path = folder / name
        try:
            size = path.stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != entry.get("size"):
            return f"{name} has {size} bytes, {entry.get('size')} expected"
    if sizes_only:
        return None
    names = sorted(files)
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        digests = list(pool.map(lambda name: sha256_file(folder / name), names))
    for name, digest in zip(names, digests):
        if digest != files[name].get("sha256"):
            return f"{name} does not match its checksum"
    return None
