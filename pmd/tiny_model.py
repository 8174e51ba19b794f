"""Tiny, locally built Qwen3 models and a matching byte-level BPE tokenizer for tests.

Nothing here touches the network: the tokenizer is trained on a small corpus embedded in this
module and the model weights are random (seeded).  The output is an ordinary Hugging Face
directory, so code under test loads it exactly like a real checkpoint
(``AutoModelForCausalLM.from_pretrained(path)``, ``AutoTokenizer.from_pretrained(path)``, vLLM).

Public API::

    train_tokenizer(vocab_size=1024) -> PreTrainedTokenizerFast
    tiny_config(tokenizer, size="tiny") -> Qwen3Config
    build_tiny_model(out_dir, size="tiny", seed=0, tokenizer_dir=None) -> Path
    build_tiny_models(root, seed=0) -> dict[str, Path]     # "tiny" and "tiny-large", one tokenizer
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

# Bumped whenever the build recipe changes, so stale caches built by older code get rebuilt.
BUILD_VERSION = 1
MARKER_NAME = "pmd_tiny.json"

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
# Order fixes their ids (0, 1, 2): trainer special tokens are added before the byte alphabet.
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]

# head_dim stays 32 for every size: vLLM's attention backends only accept a few head sizes.
HEAD_DIM = 32
TINY_SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=2, num_key_value_heads=1),
    "tiny-large": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=2),
}
MAX_POSITIONS = 4096

# Qwen's ChatML layout, without Qwen's default system prompt (tests want the text they wrote).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# A few KB of mixed prose, maths, code and the tags our prompts use, so that common pieces get
# merged into single tokens and sequences in tests stay short.  Exact content matters little:
# byte-level BPE can encode any input; this only shapes which merges exist.
CORPUS = r"""
The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step.
Procedural memory stores how to do things: the steps of a method, not the facts it uses.
When a student solves a problem, they first read the question, then plan, then check the answer.
Photosynthesis converts light energy into chemical energy stored in glucose and releases oxygen.
Water boils at 100 degrees Celsius at sea level; at higher altitude it boils at a lower temperature.
The mitochondria produce ATP through cellular respiration. DNA is copied before a cell divides.
Newton's second law states that force equals mass times acceleration: F = m * a.
The speed of light is about 299,792,458 metres per second. Gravity on Earth is 9.81 m/s^2.
An atom has protons and neutrons in its nucleus, and electrons in shells around it.
Energy is conserved: it changes form but is never created or destroyed.
Question: If Tom has 3 apples and buys 5 more, how many apples does he have?
<reasoning>
Tom starts with 3 apples. He buys 5 more. 3 + 5 = 8.
</reasoning>
<answer>8</answer>
Question: A train travels 120 km in 2 hours. What is its average speed?
<reasoning>
Average speed is distance divided by time: 120 / 2 = 60 km per hour.
</reasoning>
<answer>60</answer>
Question: What is 12 * 7 - 4?
<reasoning>12 * 7 = 84, and 84 - 4 = 80.</reasoning>
<answer>80</answer>
Let x be the number of students. Then 2x + 10 = 50, so 2x = 40 and x = 20.
The answer is 42. The final answer is \boxed{42}. Therefore the result is 3.14159.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 25 50 75 100 1000 2024 65536.
Fractions and decimals: 1/2 = 0.5, 3/4 = 0.75, 2/3 is about 0.667, 10% of 250 is 25.
<memory>Step 1: restate the problem. Step 2: list known values. Step 3: compute. Step 4: verify.</memory>
<plan>Break the task into smaller parts and solve each one in order.</plan>
<tool_call>{"name": "search", "arguments": {"query": "boiling point of water"}}</tool_call>
```python
def add(a, b):
    \"\"\"Return the sum of a and b.\"\"\"
    return a + b


class Counter:
    def __init__(self, start=0):
        self.value = start

    def increment(self, step=1):
        self.value += step
        return self.value


for i in range(10):
    if i % 2 == 0:
        print(f"{i} is even")
    else:
        print(f"{i} is odd")

import json
data = {"name": "pmd", "version": "0.1.0", "items": [1, 2, 3]}
print(json.dumps(data, indent=2))
```
```python
def fibonacci(n: int) -> list[int]:
    seq = [0, 1]
    while len(seq) < n:
        seq.append(seq[-1] + seq[-2])
    return seq[:n]

assert fibonacci(5) == [0, 1, 1, 2, 3]
```
```bash
python -m pytest tests -q
pip install -e .
```
SELECT id, name FROM memories WHERE score > 0.5 ORDER BY score DESC LIMIT 10;
{"prompt": "What is the capital of France?", "completion": "Paris", "label": true}
The capital of France is Paris. The capital of Japan is Tokyo. The capital of Kenya is Nairobi.
Machine learning models are trained with gradient descent to minimise a loss function.
A language model predicts the next token given the previous tokens in the sequence.
Reinforcement learning rewards the policy when the answer is correct and penalises it otherwise.
She said, "It's fine -- really!" He replied: 'Are you sure?' (Yes; absolutely.)
Punctuation: , . ; : ! ? ' " ( ) [ ] { } < > / \ | @ # $ % ^ & * - + = _ ~ `
Unicode: café, naïve, façade, Zürich, São Paulo, Ωmega, π ≈ 3.14, ∑ x², 東京, 😀.
"""


def _settings_fingerprint(settings: dict) -> str:
    """Stable short hash of a JSON-able dict (key order does not matter)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def train_tokenizer(vocab_size: int = 1024):
    """Train the bundled byte-level BPE tokenizer and wrap it for transformers.

    Deterministic: same corpus, same trainer settings, single in-memory pass.  No normalizer is
    set (Qwen uses NFC), because tests need ``decode(encode(x)) == x`` for arbitrary bytes.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        # The full 256-byte alphabet makes every byte encodable even if the corpus lacks it.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.strip().splitlines(keepends=True), trainer=trainer)

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        # Listed so all_special_ids / skip_special_tokens cover the ChatML markers, as in Qwen.
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=MAX_POSITIONS,
        # Clean-up would rewrite " ." into "." and break byte-exact round trips.
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _load_tokenizer(tokenizer_dir: str | os.PathLike):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


def _tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the serialized backend tokenizer (vocab, merges, specials) plus its chat template."""
    blob = tokenizer.backend_tokenizer.to_str() + (tokenizer.chat_template or "")
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _rope_kwargs() -> dict:
    """Rope settings in whichever form the installed transformers understands.

    transformers 5 takes a ``rope_parameters`` dict; 4.x takes ``rope_theta`` (and would store an
    unknown ``rope_parameters`` as a stray attribute that the model ignores).
    """
    from transformers import Qwen3Config

    if "rope_parameters" in inspect.signature(Qwen3Config.__init__).parameters:
        return {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}
    return {"rope_theta": 10000.0}


def tiny_config(tokenizer, size: str = "tiny"):
    """Qwen3Config for one of ``TINY_SIZES`` whose vocab and special ids match ``tokenizer``."""
    from transformers import Qwen3Config

    if size not in TINY_SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; choose from {sorted(TINY_SIZES)}")
    eot = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    return Qwen3Config(
        vocab_size=len(tokenizer),
        head_dim=HEAD_DIM,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        use_sliding_window=False,
        # Like Qwen: <|endoftext|> doubles as bos/pad; chat turns end with <|im_end|>.
        bos_token_id=eot,
        eos_token_id=im_end,
        pad_token_id=eot,
        dtype="float32",
        **_rope_kwargs(),
        **TINY_SIZES[size],
    )


def _marker_settings(size: str, seed: int, tokenizer) -> dict:
    """What the cache marker records; any difference means the cached model is stale."""
    import transformers

    return {
        "build_version": BUILD_VERSION,
        "size": size,
        "dims": TINY_SIZES[size],
        "head_dim": HEAD_DIM,
        "seed": seed,
        "vocab_size": len(tokenizer),
        "tokenizer_fingerprint": _tokenizer_fingerprint(tokenizer),
        "transformers_major": transformers.__version__.split(".")[0],
    }


def read_build_marker(out_dir: str | os.PathLike, marker_name: str = MARKER_NAME) -> dict | None:
    """The marker json of a finished build in ``out_dir`` (marker + weights present), else None."""
    out = Path(out_dir)
    marker = out / marker_name
    if not marker.is_file() or not (out / "model.safetensors").is_file():
        return None
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def is_complete(out_dir: str | os.PathLike, settings: dict | None = None) -> bool:
    """True if ``out_dir`` holds a finished build (marker + weights), matching ``settings`` if given."""
    recorded = read_build_marker(out_dir)
    return recorded is not None and (settings is None or recorded == settings)


def _write_model(tmp: Path, size: str, seed: int, tokenizer, settings: dict) -> None:
    """Save config, weights, generation config, tokenizer and (last) the marker into ``tmp``."""
    import torch
    from transformers import GenerationConfig, Qwen3ForCausalLM

    config = tiny_config(tokenizer, size)
    # fork_rng keeps the caller's global RNG untouched while making init depend only on seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    model.eval()
    model.generation_config = GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    # Written last: its presence is what marks the directory as complete.
    (tmp / MARKER_NAME).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def _build(out_dir: str | os.PathLike, size: str, seed: int, tokenizer) -> Path:
    """Build into a sibling temp dir, then rename into place (atomic on one filesystem)."""
    if size not in TINY_SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; choose from {sorted(TINY_SIZES)}")
    out = Path(out_dir).resolve()
    settings = _marker_settings(size, seed, tokenizer)
    if is_complete(out, settings):
        return out

    return publish_build(out, lambda tmp: _write_model(tmp, size, seed, tokenizer, settings),
                         lambda: is_complete(out, settings))


def publish_build(out: Path, write: Callable[[Path], None], already_built: Callable[[], bool]) -> Path:
    """Run ``write(tmp)`` into a sibling temp dir, then rename it to ``out`` (atomic on one
    filesystem). An existing ``out`` (incomplete, or built with other settings) is moved aside
    first rather than deleted, so there is never a moment where a half-written dir sits at
    ``out``; if a concurrent builder wins the rename and ``already_built()``, its result is used."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    stale = None
    try:
        write(tmp)
        if out.exists():
            stale = Path(tempfile.mkdtemp(prefix=f".{out.name}.stale-", dir=out.parent))
            os.replace(out, stale / "old")
        try:
            os.rename(tmp, out)
        except OSError:
            if already_built():
                return out
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if stale is not None:
            shutil.rmtree(stale, ignore_errors=True)
    return out


def build_tiny_model(out_dir: str | os.PathLike, size: str = "tiny", seed: int = 0,
                     tokenizer_dir: str | os.PathLike | None = None) -> Path:
    """Build (or reuse) a random-init tiny Qwen3 model in Hugging Face format at ``out_dir``.

    ``tokenizer_dir`` reuses a saved tokenizer (e.g. from another tiny model) so several models
    share one vocabulary; otherwise the bundled tokenizer is trained (milliseconds).  Returns the
    resolved output path.  A previous complete build with identical settings is reused as-is.
    """
    tokenizer = _load_tokenizer(tokenizer_dir) if tokenizer_dir is not None else train_tokenizer()
    return _build(out_dir, size, seed, tokenizer)


def build_tiny_models(root: str | os.PathLike, seed: int = 0) -> dict[str, Path]:
    """Build every size in ``TINY_SIZES`` under ``root/<size>``, all sharing one tokenizer."""
    tokenizer = train_tokenizer()
    return {size: _build(Path(root) / size, size, seed, tokenizer) for size in TINY_SIZES}
