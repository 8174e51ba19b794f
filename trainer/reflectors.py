"""Text generation backends for reflection (insights) and abstraction (behaviors).

PMD's memory is written by a model: by default the training policy itself (steps 4 and 5 of the
method, DESIGN.md §1), optionally another local model or an OpenAI-compatible server. All three sit
behind the small :class:`Reflector` protocol, so ``trainer.reflection`` and ``trainer.behaviors``
never know which one runs.

A backend never raises for a failed request: it returns ``None`` in that request's slot and logs a
warning, because a missing reflection only means the step goes on without new insights.
"""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, runtime_checkable

logger = logging.getLogger(__name__)

Conversation = list[dict]

# HTTP statuses worth retrying: timeouts, conflicts, rate limits and server errors. Other 4xx
# (bad request, auth, unknown model) fail the same way every time, so retrying only adds delay.
_RETRYABLE_STATUS = {408, 409, 425, 429}


@runtime_checkable
class Reflector(Protocol):
    """Anything that turns chat conversations into one completion each."""

    name: str  # recorded in logs; the trainer records the writing model in provenance

    def generate(self, conversations: Sequence[Conversation], max_new_tokens: int) -> list[str | None]:
        """One completion per conversation, in order; ``None`` where that request failed."""
        ...


# A backend whose class sets ``supports_prefill = True`` continues a conversation that ends with an
# assistant message (a prefilled start of the answer such as "STRATEGY:") and returns that message
# followed by its continuation, so the caller parses the whole reply. Callers add such a message only
# when the backend says so (OpenAI-compatible servers differ in what they do with one).
def split_prefill(conversation: Conversation) -> tuple[Conversation, str | None]:
    """(the conversation without a trailing assistant message, that message's text or None)."""
    conversation = list(conversation)
    if conversation and conversation[-1].get("role") == "assistant" and isinstance(conversation[-1].get("content"), str):
        return conversation[:-1], conversation[-1]["content"]
    return conversation, None


CALLS_PER_STEP = 1000  # reflector calls a training step may make before its seeds overlap the next step's


class PolicyReflector:
    """The training policy writes its own memory (the method's default).

    Generation is batched through :func:`trainer.rollout.sample_responses` with one sample per
    conversation. The global torch RNG is forked around generation so reflecting does not shift
    the random stream of the training step, and each call uses ``seed + call index`` so successive
    steps do not replay the same sampling noise. ``enable_thinking=False`` is passed to the chat
    template (Qwen3 honours it, other templates ignore it): a thinking model would otherwise spend
    the whole token budget inside ``<think>``.
    """

    supports_prefill = True

    def __init__(self, model, tokenizer, temperature: float = 0.7, top_p: float = 1.0, seed: int = 0,
                 batch_size: int = 16, enable_thinking: bool | None = False, name: str = "policy",
                 synced_gpus: bool = False) -> None:
        self.model = model
        self.synced_gpus = synced_gpus  # every rank generates together (ZeRO-3 over several processes)
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.batch_size = batch_size
        self.enable_thinking = enable_thinking
        self.name = name
        self._calls = 0

    def at_step(self, step: int) -> None:
        """Seed the calls of training step ``step`` from the step itself (``seed + 1000·step + call``),
        so a resumed run writes the same memory as one that was never interrupted."""
        self._calls = CALLS_PER_STEP * step

    def _prompt(self, conversation: Conversation) -> tuple[str, str]:
        """(templated prompt, prefilled start of the reply). A trailing assistant message is
        continued (``continue_final_message``) where the chat template allows it, else dropped."""
        kwargs = {} if self.enable_thinking is None else {"enable_thinking": self.enable_thinking}
        head, prefill = split_prefill(conversation)
        if prefill is not None:
            try:
                return self.tokenizer.apply_chat_template(
                    list(conversation), tokenize=False, continue_final_message=True, **kwargs), prefill
            except (ValueError, TypeError) as err:  # a template that cannot render a partial answer
                logger.debug("%s: chat template cannot continue a prefilled answer (%s); asking without it",
                             self.name, err)
        return self.tokenizer.apply_chat_template(head, tokenize=False, add_generation_prompt=True, **kwargs), ""

    def generate(self, conversations: Sequence[Conversation], max_new_tokens: int) -> list[str | None]:
        import torch

        from .rollout import SamplingConfig, sample_responses

        if not conversations:
            return []
        seed = self.seed + self._calls
        self._calls += 1
        sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=self.temperature,
                                  top_p=self.top_p, batch_size=self.batch_size)
        device = getattr(self.model, "device", torch.device("cpu"))
        cuda_devices = [device.index or 0] if device.type == "cuda" else []
        was_training = getattr(self.model, "training", False)
        try:
            prompts, prefills = zip(*(self._prompt(conv) for conv in conversations))
            # Dropout off while writing memory; the caller's train/eval mode is restored below.
            # (A rollout engine such as vLLM is no module and has no mode.)
            if isinstance(self.model, torch.nn.Module):
                self.model.eval()
            with torch.random.fork_rng(devices=cuda_devices):
                samples = sample_responses(self.model, self.tokenizer, prompts, 1, sampling, seed=seed,
                                           synced_gpus=self.synced_gpus)
            return [prefill + group[0] for prefill, group in zip(prefills, samples)]
        except Exception as err:  # reflection is auxiliary: the training step must go on
            logger.warning("%s reflector failed on %d conversations (%s: %s); the step goes on "
                           "without new insights", self.name, len(conversations), type(err).__name__, err)
            return [None] * len(conversations)
        finally:
            if was_training:
                self.model.train()


class LocalModelReflector:
    """Another local Hugging Face model writes the memory (e.g. a larger teacher, or SmolLM2 from
    :mod:`pmd.smollm2`). Generation as in :class:`PolicyReflector`, prefilled answers included."""

    supports_prefill = True

    def __init__(self, model, tokenizer, name: str, temperature: float = 0.7, top_p: float = 1.0,
                 seed: int = 0, batch_size: int = 16) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self._policy = PolicyReflector(model, tokenizer, temperature=temperature, top_p=top_p,
                                       seed=seed, batch_size=batch_size, name=name)

    @classmethod
    def from_pretrained(cls, name_or_path: str, dtype: str = "float32", device: str = "cpu",
                        **kwargs) -> "LocalModelReflector":
        """Load ``name_or_path`` (a local directory or a cached hub id) for generation only."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
        model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=torch_dtype).to(device)
        model.eval().requires_grad_(False)
        return cls(model, tokenizer, name=f"local:{name_or_path}", **kwargs)

    def generate(self, conversations: Sequence[Conversation], max_new_tokens: int) -> list[str | None]:
        return self._policy.generate(conversations, max_new_tokens)

    def at_step(self, step: int) -> None:
        self._policy.at_step(step)


def chat_completions_url(base_url: str) -> str:
    """``http://host:8000`` or ``http://host:8000/v1`` → ``.../v1/chat/completions``."""
    url = base_url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


class EndpointReflector:
    """An OpenAI-compatible ``/v1/chat/completions`` server (vLLM, SGLang, TGI, a hosted API).

    Standard library only (urllib). Requests run concurrently on ``max_workers`` threads. A failed
    request (connection error, timeout, retryable HTTP status, unreadable reply) is tried again up
    to ``retries`` times, waiting ``backoff_s * 2**attempt`` seconds before each retry, then yields
    ``None``. ``extra_body`` is merged into every request, e.g.
    ``{"chat_template_kwargs": {"enable_thinking": False}}`` for a Qwen3 server.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60,
                 retries: int = 3, backoff_s: float = 1.0, temperature: float = 0.7,
                 max_workers: int = 4, extra_body: dict | None = None) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.url = chat_completions_url(base_url)
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.temperature = temperature
        self.max_workers = max(1, max_workers)
        self.extra_body = dict(extra_body or {})
        self.name = f"endpoint:{model}@{self.url}"

    def _post(self, conversation: Conversation, max_new_tokens: int) -> str:
        body = {"model": self.model, "messages": list(conversation), "max_tokens": max_new_tokens,
                "temperature": self.temperature, **self.extra_body}
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers,
                                         method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            reply = json.loads(response.read().decode("utf-8"))
        choice = reply["choices"][0]
        content = choice["message"]["content"] if "message" in choice else choice["text"]
        if not isinstance(content, str):
            raise ValueError(f"reply content is {type(content).__name__}, not text")
        return content

    def _request(self, conversation: Conversation, max_new_tokens: int) -> tuple[str | None, str]:
        """(completion or None, last error) after at most ``1 + retries`` attempts."""
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                return self._post(conversation, max_new_tokens), ""
            except urllib.error.HTTPError as err:
                error = f"HTTP {err.code} {err.reason}"
                if 400 <= err.code < 500 and err.code not in _RETRYABLE_STATUS:
                    break
            except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
                # OSError covers URLError, refused connections and timeouts; the rest a bad reply.
                error = f"{type(err).__name__}: {err}"
            logger.debug("request to %s failed (attempt %d): %s", self.url, attempt + 1, error)
        return None, error

    def generate(self, conversations: Sequence[Conversation], max_new_tokens: int) -> list[str | None]:
        if not conversations:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(conversations))) as pool:
            results = list(pool.map(lambda conv: self._request(conv, max_new_tokens), conversations))
        failures = [error for text, error in results if text is None]
        if failures:
            logger.warning("%d of %d requests to %s failed (retried up to %d times; last error: %s); "
                           "the step goes on without new insights from them", len(failures),
                           len(conversations), self.url, self.retries, failures[-1])
        return [text for text, _ in results]
