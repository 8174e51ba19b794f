"""A short supervised "format warm-up" for the random-weight tiny models used by ``make demo``.

A randomly initialised tiny Qwen3 never writes ``<answer>X</answer>``, so every reward and every
evaluation number on the demo would be zero. This module fine-tunes such a model for about a
hundred small steps (seconds on a CPU) on the TRAIN split of the bundled ``demo_mcq`` task, with
the target completion ``<answer>{letter}</answer><|im_end|>`` after the chat prompt, so that it
answers in the task's format. It cannot learn the science: on unseen questions its letters are
about chance, and the letter distribution stays broad (not collapsed), so sampled answers vary.
That is what the demo needs: a policy whose rewards are neither all zero nor all one.

Public API::

    warm_up_format(base_dir, out_dir, *, task="demo_mcq", steps=120, lr=1e-2, batch_size=8,
                   seed=0) -> Path
    build_demo_models(root, seed=0) -> dict[str, Path]   # {"tiny": root/"tiny-warm", ...}

Outputs are ordinary Hugging Face directories, cached like ``pmd.tiny_model``: a marker json
records the base model's digest, the training data's digest and the recipe; a second call with the
same inputs returns at once, a changed recipe or base model rebuilds (atomically, via a temporary
sibling directory and a rename).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import NamedTuple

from pmd.provenance import sha256_file
from pmd.tiny_model import build_tiny_models, publish_build, read_build_marker

# Bumped whenever the training recipe's code changes, so stale caches get rebuilt.
WARMUP_VERSION = 1
MARKER_NAME = "pmd_warmup.json"

# Tuned on the tiny sizes (2 busy CPU cores, float32, warm-up seeds 0-4): fewer steps leave some
# runs on a plateau (train loss ~0.3) where the model closes the tag right after "<answer>"; many
# more start memorising the training letters (loss < 0.1) and the letter distribution narrows.
DEFAULT_STEPS = 120
DEFAULT_LR = 1e-2
DEFAULT_BATCH_SIZE = 8
# Per size for build_demo_models: the larger model learns the format in fewer, gentler steps.
DEMO_RECIPES: dict[str, dict] = {
    "tiny": dict(steps=DEFAULT_STEPS, lr=DEFAULT_LR, batch_size=DEFAULT_BATCH_SIZE),
    "tiny-large": dict(steps=80, lr=5e-3, batch_size=8),
}

# What build_demo_models names each warmed-up size.
WARM_NAMES = {"tiny": "tiny-warm", "tiny-large": "tiny-large-warm"}


def _base_digest(base_dir: Path) -> str:
    """Hash of the base checkpoint: its weights, config and tokenizer files (whichever exist)."""
    digest = hashlib.sha256()
    for name in ("config.json", "generation_config.json", "model.safetensors",
                 "tokenizer.json", "tokenizer_config.json"):
        path = base_dir / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + sha256_file(path).encode() + b"\0")
    return digest.hexdigest()[:16]


class Example(NamedTuple):
    """One training sequence as token ids: ``prefix + rest`` is the chat prompt, then ``completion``.

    ``prefix`` is the system turn, shared verbatim by many questions; training computes it once
    per batch and reuses its key/value cache for every row that starts with it.
    """

    prefix: tuple[int, ...]
    rest: tuple[int, ...]
    completion: tuple[int, ...]


def _examples(tokenizer, items, stop_id: int) -> list[Example]:
    """Token ids per item; the completion ``<answer>X</answer>`` ends with the generation's stop id."""
    examples = []
    for item in items:
        messages = item.messages()
        prompt = tokenizer.encode(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
            add_special_tokens=False)
        prefix: list[int] = []
        if len(messages) > 1 and messages[0]["role"] == "system":
            prefix = tokenizer.encode(tokenizer.apply_chat_template(messages[:1], tokenize=False),
                                      add_special_tokens=False)
            if prompt[:len(prefix)] != prefix:  # tokenization does not split at the turn boundary
                prefix = []
        completion = tokenizer.encode(f"<answer>{item.answer}</answer>", add_special_tokens=False) + [stop_id]
        examples.append(Example(tuple(prefix), tuple(prompt[len(prefix):]), tuple(completion)))
    return examples


def _data_digest(examples: list[Example]) -> str:
    blob = json.dumps([[list(e.prefix) + list(e.rest), list(e.completion)] for e in examples])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _stop_id(base_dir: Path, tokenizer) -> int:
    """The token generation stops at: generation_config's eos (the first, if a list), else config's,
    else the tokenizer's."""
    for name in ("generation_config.json", "config.json"):
        path = base_dir / name
        eos = json.loads(path.read_text()).get("eos_token_id") if path.is_file() else None
        if isinstance(eos, list):
            eos = eos[0] if eos else None
        if eos is not None:
            return int(eos)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"{base_dir}: no eos token anywhere, so nothing marks where an answer ends")
    return int(tokenizer.eos_token_id)


def completion_loss(logits, labels):
    """Mean token cross-entropy over completion tokens.

    loss = - Σ_{i,t} mask_{i,t} · log p_θ(y_{i,t} | x_i, y_{i,<t}) / Σ_{i,t} mask_{i,t}

    where ``mask`` is 1 on completion tokens (``<answer>X</answer><|im_end|>``) and 0 on prompt
    and padding positions (``labels == -100``). ``logits`` [B, T, V] and ``labels`` [B, T] are
    aligned with the input sequence: position t predicts token t + 1.
    """
    import torch.nn.functional as F

    shift_logits = logits[:, :-1, :]                           # [B, T-1, V]
    shift_labels = labels[:, 1:]                               # [B, T-1]
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)).float(),
                           shift_labels.reshape(-1), ignore_index=-100, reduction="mean")


def _collate(rows: list[Example], pad_id: int, offset: int):
    """Left-padded ``rest + completion`` ids, attention mask, position ids (starting at ``offset``,
    the shared prefix's length) and labels, -100 outside the completion.

    Left padding puts every completion at the end of its row, so only the last ``keep`` positions
    need logits (``logits_to_keep``): on the tiny models the output projection over a whole prompt
    costs about as much as the transformer layers.
    """
    import torch

    width = max(len(r.rest) + len(r.completion) for r in rows)
    keep = max(len(r.completion) for r in rows) + 1
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)         # [B, S]
    mask = torch.zeros((len(rows), width), dtype=torch.long)               # [B, S]
    labels = torch.full((len(rows), width), -100, dtype=torch.long)        # [B, S]
    for i, row in enumerate(rows):
        seq = row.rest + row.completion
        ids[i, width - len(seq):] = torch.tensor(seq)
        mask[i, width - len(seq):] = 1
        labels[i, width - len(row.completion):] = torch.tensor(row.completion)
    positions = offset + (mask.cumsum(-1) - 1).clamp(min=0)                # [B, S]
    return ids, mask, positions, labels[:, -keep:], keep                   # labels [B, keep]


def batch_loss(model, rows: list[Example], pad_id: int):
    """``completion_loss`` over ``rows``, computed group by group of rows sharing a prefix.

    Each distinct prefix goes through the model once (batch 1, with gradient); its key/value cache
    is repeated over the group's rows and the rest of each sequence attends to it. This gives the
    same logits as running every full sequence, at a fraction of the cost when the prefix (the
    system prompt) is most of the prompt. Group means are weighted by their completion-token counts,
    so the result is the mean over all completion tokens of the batch.
    """
    import torch

    groups: dict[tuple[int, ...], list[Example]] = {}
    for row in rows:
        groups.setdefault(row.prefix, []).append(row)
    total = sum(len(r.completion) for r in rows)
    loss = torch.zeros(())
    for prefix, group in groups.items():
        ids, mask, positions, labels, keep = _collate(group, pad_id, len(prefix))
        cache = None
        if prefix:
            cache = model(input_ids=torch.tensor([prefix]), use_cache=True).past_key_values
            cache.batch_repeat_interleave(len(group))
            mask = torch.cat([torch.ones((len(group), len(prefix)), dtype=mask.dtype), mask], dim=1)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                       use_cache=cache is not None, logits_to_keep=keep).logits   # [B, keep, V]
        loss = loss + completion_loss(logits, labels) * (sum(len(r.completion) for r in group) / total)
    return loss


def _train(model, examples: list[Example], *, steps: int, lr: float, batch_size: int, seed: int,
           pad_id: int) -> list[float]:
    """Plain AdamW on CPU, float32; batches drawn as seeded shuffled passes over the examples."""
    import torch

    losses = []
    threads = torch.get_num_threads()
    # One intra-op thread: these models are too small to gain from more, and on a few shared cores
    # competing threads slow each step down several-fold (measured 4-5x on 2 busy cores).
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            model.float().train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
            # Linear decay to zero: the last steps only polish, so the result does not hinge on
            # which answer letters the final batch happened to hold.
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / steps)
            order: list[int] = []
            for _ in range(steps):
                if len(order) < batch_size:
                    order += torch.randperm(len(examples), generator=generator).tolist()
                picked, order = order[:batch_size], order[batch_size:]
                loss = batch_loss(model, [examples[i] for i in picked], pad_id)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                losses.append(float(loss.detach()))
            model.eval()
    finally:
        torch.set_num_threads(threads)
    return losses


def _is_complete(out: Path, settings: dict) -> bool:
    recorded = read_build_marker(out, MARKER_NAME)
    return recorded is not None and recorded.get("settings") == settings


def warm_up_format(base_dir: str | os.PathLike, out_dir: str | os.PathLike, *, task: str = "demo_mcq",
                   steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR, batch_size: int = DEFAULT_BATCH_SIZE,
                   seed: int = 0) -> Path:
    """Fine-tune the model at ``base_dir`` to answer ``task``'s questions as ``<answer>X</answer>``.

    Supervised, on the task's TRAIN split: prompt = the chat template of ``item.messages()`` with
    the generation prompt; target = ``<answer>{item.answer}</answer>`` then the generation's stop
    token (``<|im_end|>`` for the tiny models). Objective (see ``completion_loss``): mean token
    cross-entropy over completion tokens only,
    ``L = -Σ mask·log p_θ(y_t | x, y_<t) / Σ mask``; ``steps`` AdamW steps of ``batch_size``
    examples, float32 on CPU, seeded. Saves model, tokenizer and generation config to ``out_dir``
    (atomically) with a marker json holding the base digest, data digest, recipe and the loss
    curve; returns the resolved ``out_dir``, reusing a matching previous build as-is.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tasks.registry import TASKS

    if steps < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"steps, batch_size and lr must be positive (got {steps}, {batch_size}, {lr})")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
    base, out = Path(base_dir).resolve(), Path(out_dir).resolve()
    if not (base / "config.json").is_file():
        raise FileNotFoundError(f"no Hugging Face model at {base}")

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    items = TASKS[task].split(None, "train")
    stop_id = _stop_id(base, tokenizer)
    examples = _examples(tokenizer, items, stop_id)
    settings = {
        "warmup_version": WARMUP_VERSION,
        "schedule": "linear-decay",
        "base_digest": _base_digest(base),
        "task": task,
        "data_digest": _data_digest(examples),
        "steps": steps,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
    }
    if _is_complete(out, settings):
        return out

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype="float32")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_id
    losses = _train(model, examples, steps=steps, lr=lr, batch_size=batch_size, seed=seed, pad_id=pad_id)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        marker = {"settings": settings, "base_dir": str(base), "final_loss": losses[-1], "losses": losses}
        # Written last: its presence is what marks the directory as complete.
        (tmp / MARKER_NAME).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")

    return publish_build(out, write, lambda: _is_complete(out, settings))


def build_demo_models(root: str | os.PathLike, seed: int = 0) -> dict[str, Path]:
    """Build the tiny models under ``root`` (``build_tiny_models``) and their format-warmed copies:
    ``{"tiny": root/"tiny-warm", "tiny-large": root/"tiny-large-warm"}``."""
    root = Path(root)
    bases = build_tiny_models(root, seed=seed)
    return {size: warm_up_format(bases[size], root / WARM_NAMES[size], seed=seed, **DEMO_RECIPES[size])
            for size in WARM_NAMES}
