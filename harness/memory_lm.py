"""``pmd-memory``: an lm-eval model that gives any other lm-eval model retrieved memory.

For every evaluation prompt the wrapper retrieves the top-``memory_k`` entries of a memory bank
for the question (the bank's hybrid BM25 + dense retrieval, or one ranker alone) and puts a
fenced memory block (``memory_bank.prompt_block``) in front of the question; the wrapped model
(``backend``: ``hf``, ``vllm`` or any registered lm-eval model) then generates as usual. With a
chat template the block goes at the start of the last user turn, before the template is
applied; without one, at the start of the plain-text prompt. The retrieved entries of every
prompt are kept (``given``) and optionally appended to a JSON Lines log (``memory_log``), so a
person can see exactly what the model was given.

From the ``lm_eval`` command line (``pmd-lm-eval`` imports this module first, which registers
the model, then runs lm-eval's own CLI)::

    pmd-lm-eval --model pmd-memory --tasks demo_mcq --apply_chat_template \\
        --model_args pretrained=.demo/models/tiny-large,memory=results/demo/bank.db,memory_k=3

Model arguments: ``memory`` (bank path, required), ``memory_k`` (default 3), ``retriever``
(hybrid | bm25 | dense), ``levels`` (``insight+behavior``; ``+`` separates levels because
lm-eval splits model_args at commas), ``embedding_model`` (default: the one the bank was
embedded with), ``memory_log`` (JSONL path), ``backend`` (default ``hf``); every other argument
goes to the backend (``pretrained=...``, ``dtype=...``, ...).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from lm_eval.api.model import LM
from lm_eval.api.registry import get_model, register_model

from memory_bank.prompt_block import has_memory_block, prepend_block, render_memory_block

MODEL_NAME = "pmd-memory"
DEFAULT_LEVELS = ("insight", "behavior")


def parse_levels(levels: str | Sequence[str]) -> list[str]:
    """``"insight+behavior"``, ``"insight,behavior"`` or a sequence -> ``["insight", "behavior"]``."""
    if isinstance(levels, str):
        levels = levels.replace("+", ",").split(",")
    parsed = [level.strip() for level in levels if level.strip()]
    unknown = sorted(set(parsed) - {"experience", "insight", "behavior"})
    if unknown or not parsed:
        raise ValueError(f"unknown memory level(s) {', '.join(unknown) or '(none given)'}: "
                         "choose from experience, insight, behavior (e.g. insight+behavior)")
    return parsed


def parse_memory_k(value) -> int:
    """``memory_k`` as lm-eval hands it over (``3``, ``"3"``, ``3.0``) -> 3; anything that is not
    a whole number >= 1 is an error with the fix."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    if number is None:
        raise ValueError(f"memory_k must be a whole number of entries, got {value!r}; e.g. memory_k=3")
    if number < 1:
        raise ValueError(f"memory_k must be at least 1, got {number} (use the plain model for no memory)")
    return number


def check_levels_hold_entries(bank, path: Path, levels: Sequence[str], option: str = "--levels") -> None:
    """A bank with nothing at ``levels`` would give every prompt an empty memory block and still be
    reported as "k=N": refuse it, saying what the bank does hold."""
    counts = bank.counts()
    if any(counts.get(level, 0) for level in levels):
        return
    held = {level: counts.get(level, 0) for level in ("experience", "insight", "behavior")}
    if not any(held.values()):
        raise ValueError(f"memory bank {path} is empty (no experience, insight or behavior entries); "
                         "pass a bank written by a pmd-train run")
    has = ", ".join(f"{n} {level}" for level, n in held.items() if n)
    joined = ("+" if option.endswith("=") else ",").join(level for level, n in held.items() if n)
    setting = f"{option}{joined}" if option.endswith("=") else f"{option} {joined}"
    raise ValueError(f"memory bank {path} holds no {' or '.join(levels)} entries (it holds {has}); "
                     f"retrieve from the levels it has ({setting}) or pass another bank")


def entry_record(entry) -> dict:
    """A retrieved entry as logged with the samples."""
    return {
        "level": entry.level, "kind": (entry.row or {}).get("kind"), "uid": entry.uid, "text": entry.text,
        "score": round(entry.score, 6), "bm25_rank": entry.bm25_rank, "dense_rank": entry.dense_rank,
    }


class BankMemory:
    """A read-only bank, its retriever, and the settings one evaluation retrieves with."""

    def __init__(self, path: str | Path, *, retriever: str = "hybrid",
                 levels: str | Sequence[str] = DEFAULT_LEVELS, embedding_model: str | None = None,
                 levels_option: str = "--levels") -> None:
        from memory_bank import MemoryBank, RetrievalConfig
        from memory_bank.retrieval import BankRetriever

        if retriever not in ("hybrid", "bm25", "dense"):
            raise ValueError(f"unknown retriever {retriever!r}: choose hybrid, bm25 or dense")
        self.path = Path(path)
        self.levels = parse_levels(levels)
        self.bank = MemoryBank.open(self.path, readonly=True)
        try:
            check_levels_hold_entries(self.bank, self.path, self.levels, levels_option)
        except BaseException:
            self.bank.close()
            raise
        self.mode = retriever
        model = embedding_model or self.bank.embedding_model
        config = RetrievalConfig(mode=retriever, levels=self.levels,
                                 **({"embedding_model": model} if model else {}))
        self.retriever = BankRetriever(self.bank, config)
        self._cache: dict[tuple[str, int], list] = {}

    def retrieve(self, query: str, k: int) -> list:
        key = (query, k)
        if key not in self._cache:
            self._cache[key] = self.retriever.search(query, k, levels=self.levels, mode=self.mode)
        return self._cache[key]

    def fingerprint(self) -> str:
        """Identifies bank contents and retrieval settings (for lm-eval's request cache)."""
        facts = [str(self.path.resolve()), self.bank.meta("bank_id") or "", str(self.bank.generation()),
                 self.mode, "+".join(self.levels)]
        return hashlib.sha1("|".join(facts).encode()).hexdigest()[:12]

    def close(self) -> None:
        self.bank.close()


@register_model(MODEL_NAME)
class MemoryAugmentedLM(LM):
    """Wraps ``inner`` (or a ``backend`` model built from the remaining arguments) with memory."""

    def __init__(
        self,
        memory: str | Path | BankMemory | None = None,
        memory_k: int | str = 3,
        retriever: str = "hybrid",
        levels: str | Sequence[str] = DEFAULT_LEVELS,
        embedding_model: str | None = None,
        memory_log: str | Path | None = None,
        backend: str = "hf",
        inner: LM | None = None,
        **backend_args,
    ) -> None:
        super().__init__()
        if memory is None:
            raise ValueError(f"{MODEL_NAME} needs a bank: add memory=PATH/TO/BANK.db to --model_args")
        self.memory_k = parse_memory_k(memory_k)
        self.memory = memory if isinstance(memory, BankMemory) else BankMemory(
            str(memory), retriever=retriever, levels=levels, embedding_model=embedding_model, levels_option="levels=")
        if inner is None:
            import lm_eval.models  # noqa: F401  (registers lm-eval's own models: hf, vllm, ...)

            backend_args = {key: value for key, value in backend_args.items() if value is not None}
            if backend == "vllm":
                from harness.vllm_compat import load_lm_eval_vllm

                load_lm_eval_vllm()
            inner = get_model(backend).create_from_arg_obj(backend_args)
        self._inner = inner
        self.memory_log = Path(memory_log) if memory_log else None
        #: final prompt -> {"query": ..., "entries": [...]} for every prompt that was augmented
        self.given: dict[str, dict] = {}

    # ------------------------------------------------------------------- memory in the prompt
    def _augment(self, question: str) -> tuple[str, list]:
        entries = self.memory.retrieve(question, self.memory_k)
        return prepend_block(render_memory_block(entries), question), entries

    def _remember(self, prompt: str, query: str, entries: list) -> None:
        record = {"query": query, "entries": [entry_record(e) for e in entries]}
        self.given[prompt] = record
        if self.memory_log is not None:
            self.memory_log.parent.mkdir(parents=True, exist_ok=True)
            with self.memory_log.open("a", encoding="utf-8") as log:
                log.write(json.dumps({"prompt_sha1": hashlib.sha1(prompt.encode()).hexdigest(), **record}) + "\n")

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The block goes at the start of the last user turn, then the model's own template."""
        messages = [dict(message) for message in chat_history]
        users = [i for i, message in enumerate(messages) if message.get("role") == "user"]
        if not users or has_memory_block(messages[users[-1]]["content"]):
            return self._inner.apply_chat_template(messages, add_generation_prompt)
        query = messages[users[-1]]["content"]
        messages[users[-1]]["content"], entries = self._augment(query)
        prompt = self._inner.apply_chat_template(messages, add_generation_prompt)
        self._remember(prompt, query, entries)
        return prompt

    def _with_memory(self, request):
        """``request`` with its context starting with the block (plain-text prompts). Changed in
        place, so that lm-eval's logged samples show the prompt the model was really given."""
        context, *rest = request.arguments
        if has_memory_block(context):  # built under a chat template, or served from lm-eval's cache
            return request
        prompt, entries = self._augment(context)
        self._remember(prompt, context, entries)
        request.arguments = (prompt, *rest)
        return request

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        return self._inner.generate_until([self._with_memory(r) for r in requests])

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return self._inner.loglikelihood([self._with_memory(r) for r in requests])

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        # Perplexity of a text on its own: there is no question to retrieve for.
        return self._inner.loglikelihood_rolling(requests)

    # -------------------------------------------------------------- everything else: the model's
    @property
    def inner(self) -> LM:
        return self._inner

    @property
    def rank(self) -> int:
        return self._inner.rank

    @property
    def world_size(self) -> int:
        return self._inner.world_size

    @property
    def device(self):
        return self._inner.device

    def all_gather(self, tensor):
        return self._inner.all_gather(tensor)

    def gather_object(self, obj, dst=0):
        return self._inner.gather_object(obj, dst)

    def barrier(self) -> None:
        self._inner.barrier()

    @property
    def tokenizer_name(self) -> str:
        return f"{self._inner.tokenizer_name}__memory-{self.memory.fingerprint()}-k{self.memory_k}"

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self._inner.chat_template(chat_template)

    def set_cache_hook(self, cache_hook) -> None:
        super().set_cache_hook(cache_hook)
        self._inner.set_cache_hook(cache_hook)

    def get_model_info(self) -> dict:
        info = dict(self._inner.get_model_info()) if hasattr(self._inner, "get_model_info") else {}
        info.update(memory_bank=str(self.memory.path), memory_k=self.memory_k,
                    retriever=self.memory.mode, memory_levels="+".join(self.memory.levels))
        return info

    def __getattr__(self, name: str):
        # Only reached for attributes not found normally (e.g. HFLM's batch_sizes, tokenizer).
        if name.startswith("__") or name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)
