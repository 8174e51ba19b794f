"""DeepSpeed behind one small module (DESIGN.md, convention 6).

    ds_config(...) -> dict                 pure, validated DeepSpeed JSON config (no deepspeed import)
    init_distributed(backend=None) -> DistInfo;  shutdown_distributed()
    load_model(name_or_path, config, dtype=None) -> nn.Module   (partitioned while loading under ZeRO-3)
    build_engine(model, config) -> DeepSpeedEngine              (the student: optimizer + ZeRO)
    build_inference_engine(model, config) -> engine | module    (a frozen teacher, same partitioning)
    enable_activation_checkpointing(model)                      recompute decoder layers in the backward
    ema_update(teacher, student, rate)                          τ ← (1 − rate)·τ + rate·θ
    gather_for_generation(engine) -> context manager yielding the HF model with full weights
    save_hf_checkpoint(engine, tokenizer, out_dir)              loadable by from_pretrained / vLLM
    save_training_state(engine, dir) / load_training_state(engine, dir)   resume (optimizer, step)

Optimizer. The config names DeepSpeed's ``AdamW`` with ``torch_adam: true``, so DeepSpeed builds a
``torch.optim.AdamW`` itself (and saves/restores it with its checkpoints): it runs on any device
with no compiled op. DeepSpeed's default, FusedAdam, is a CUDA kernel. With ``offload_optimizer``
ZeRO-Offload insists on ``DeepSpeedCPUAdam``, a C++ op that DeepSpeed JIT-compiles on first use
(ninja + a C++ compiler; about 45 s on 2 cores, cached under ``~/.cache/torch_extensions`` (or
``$TORCH_EXTENSIONS_DIR``) afterwards); it builds and runs on this CPU-only machine, so offload
is allowed, but it only pays off with a GPU: on CPU the "offloaded" states live where they already
were.

On CPU (gloo, deepspeed 0.19.8) these were run: ZeRO 0, 2 and 3 in float32 and bfloat16 in one
process, ZeRO-3 in two processes, offload with stages 1, 2 and 3. float16 is refused by DeepSpeed
itself on CPUs without mkldnn fp16 ("Type fp16 is not supported on your device"): GPUs only.

Collective (every rank must call them): load_model and the engine builders under ZeRO-3,
save_hf_checkpoint, save/load_training_state, gather_for_generation, full_state_dict.
ema_update is local, except that it gathers a student parameter while the teacher is gathered.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from trainer.distributed import (  # noqa: F401  (re-exported: the trainer imports from here)
    DistInfo,
    ema_update,
    full_state_dict,
    gather_for_generation,
    init_distributed,
    is_zero3,
    keep_hf_deepspeed_config,
    release_hf_deepspeed_config,
    shutdown_distributed,
    unwrap,
    zero3_loading_disabled,
)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Large enough that DeepSpeed never prints its own per-step log line; we log metrics ourselves.
STEPS_PER_PRINT = 2**31 - 1
_CLIENT_KEY = "pmd_client_state"


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_float(name: str, value, low: float, high: float = math.inf, *, low_open: bool = False,
                 high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < low or (low_open and value == low) or value > high or (high_open and value == high):
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must be within {lo}{low}, {high}{hi}, got {value!r}")


def ds_config(*, zero_stage: int, micro_batch_size: int, grad_accum: int = 1, lr: float,
              weight_decay: float = 0.0, grad_clip: float = 1.0,
              betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, dtype: str = "float32",
              offload_optimizer: bool = False, offload_params: bool = False,
              warmup_steps: int = 0, caller_owns_accumulation: bool = False) -> dict:
    """DeepSpeed's JSON config for one training run. Pure: no deepspeed import, no I/O.

    ``train_batch_size`` is left out on purpose: DeepSpeed derives it as micro_batch_size ×
    grad_accum × world_size, so the same config serves 1 and N processes. ``grad_clip`` 0 turns
    clipping off. ``warmup_steps`` > 0 adds a linear WarmupLR schedule from 0 to ``lr`` (saved and
    restored with the training state); 0 keeps the learning rate constant (no scheduler).
    ``caller_owns_accumulation``: DeepSpeed's unmanaged gradient accumulation
    (``managed_gradient_accumulation: false``): ``backward`` only accumulates and every ``step()`` is
    the boundary, so a step may hold any number of micro batches (token-budget packing);
    ``grad_accum`` then only enters DeepSpeed's sample counters.
    Raises ValueError naming the offending argument.
    """
    _check_int("zero_stage", zero_stage, 0)
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"zero_stage must be 0, 1, 2 or 3, got {zero_stage}")
    _check_int("micro_batch_size", micro_batch_size, 1)
    _check_int("grad_accum", grad_accum, 1)
    _check_int("warmup_steps", warmup_steps, 0)
    _check_float("lr", lr, 0.0)
    _check_float("weight_decay", weight_decay, 0.0)
    _check_float("grad_clip", grad_clip, 0.0)
    _check_float("eps", eps, 0.0, low_open=True)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        _check_float(f"betas[{i}]", beta, 0.0, 1.0, high_open=True)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    for flag, value in (("offload_optimizer", offload_optimizer), ("offload_params", offload_params),
                        ("caller_owns_accumulation", caller_owns_accumulation)):
        if not isinstance(value, bool):
            raise ValueError(f"{flag} must be true or false, got {value!r}")
    if offload_optimizer and zero_stage == 0:
        raise ValueError("offload_optimizer needs ZeRO stage 1, 2 or 3 (ZeRO-Offload partitions the "
                         "optimizer states it moves to CPU); got zero_stage 0")
    if offload_params and zero_stage != 3:
        raise ValueError(f"offload_params needs ZeRO stage 3 (only stage 3 partitions parameters); "
                         f"got zero_stage {zero_stage}")

    zero: dict = {"stage": zero_stage}
    if zero_stage >= 1:
        zero.update(contiguous_gradients=True, reduce_scatter=True, overlap_comm=False)
    if zero_stage == 3:
        # Lets engine.save_16bit_model / consolidated state dicts work; our own save gathers anyway.
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}

    config: dict = {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": grad_accum,
        "gradient_clipping": float(grad_clip),
        "steps_per_print": STEPS_PER_PRINT,
        "wall_clock_breakdown": False,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": float(lr),
                "betas": [float(betas[0]), float(betas[1])],
                "eps": float(eps),
                "weight_decay": float(weight_decay),
                # torch.optim.AdamW: no compiled op. Offload needs DeepSpeedCPUAdam (see module doc).
                "torch_adam": not offload_optimizer,
            },
        },
        "zero_optimization": zero,
        "bf16": {"enabled": dtype == "bfloat16"},
        "fp16": {"enabled": dtype == "float16"},
    }
    if caller_owns_accumulation:
        config["managed_gradient_accumulation"] = False
    if dtype == "float16":
        config["fp16"].update(loss_scale=0, initial_scale_power=16, loss_scale_window=1000,
                              hysteresis=2, min_loss_scale=1)
    if warmup_steps:
        config["scheduler"] = {"type": "WarmupLR", "params": {
            "warmup_min_lr": 0.0, "warmup_max_lr": float(lr), "warmup_num_steps": warmup_steps,
            "warmup_type": "linear"}}
    return config


def zero_stage(config: dict) -> int:
    return int(config.get("zero_optimization", {}).get("stage", 0))


def config_dtype(config: dict) -> torch.dtype:
    """The parameter dtype a DeepSpeed config trains in."""
    if config.get("bf16", {}).get("enabled"):
        return torch.bfloat16
    if config.get("fp16", {}).get("enabled"):
        return torch.float16
    return torch.float32


def load_model(name_or_path: str | os.PathLike, config: dict,
               dtype: str | torch.dtype | None = None) -> nn.Module:
    """``AutoModelForCausalLM.from_pretrained`` for training under ``config``.

    Under ZeRO-3 an ``HfDeepSpeedConfig`` is created first and kept alive (module-level and as
    ``model._pmd_hf_deepspeed_config``; ``shutdown_distributed`` releases it), so transformers
    builds the model inside ``deepspeed.zero.Init`` and each rank only ever holds its partition of
    the weights; this starts the process group if needed. Otherwise the full model is loaded on the
    CPU, with no ZeRO-3 config in effect even if another model set one. ``dtype`` defaults to the
    config's (bf16/fp16 section, else float32) and must agree with it.
    """
    from transformers import AutoModelForCausalLM

    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        dtype = DTYPES[dtype]
    wanted = config_dtype(config)
    if dtype is not None and dtype != wanted:
        raise ValueError(f"dtype {dtype} disagrees with the DeepSpeed config, which trains in {wanted}")
    if zero_stage(config) == 3:
        init_distributed()
        hf_config = keep_hf_deepspeed_config(json.loads(json.dumps(config)))
        model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=wanted)
        model._pmd_hf_deepspeed_config = hf_config
        return model
    with zero3_loading_disabled():
        return AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=wanted)


def enable_activation_checkpointing(model: nn.Module) -> nn.Module:
    """Checkpoint every decoder layer (non-reentrant ``torch.utils.checkpoint``): the forward keeps
    one hidden state per layer and token, the backward recomputes the layer. Puts the model in
    training mode, since transformers checkpoints only then; generation switches to eval mode by
    itself (``trainer.rollout``), where the KV cache works. Call before ``build_engine``."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False
    model.train()
    return model


def build_engine(model: nn.Module, config: dict):
    """``deepspeed.initialize`` on the model's trainable parameters; returns the DeepSpeedEngine.

    The optimizer (and scheduler, if any) come from ``config`` (see the module docstring); the
    engine's ``backward``/``step`` honour gradient accumulation and clipping.
    """
    import deepspeed

    init_distributed()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    # A deep copy: DeepSpeed fills in derived keys (train_batch_size) in the dict it is given.
    engine, *_ = deepspeed.initialize(model=model, model_parameters=params,
                                      config=json.loads(json.dumps(config)))
    return engine


def build_inference_engine(model: nn.Module, config: dict):
    """A frozen copy for the teacher: no optimizer, no gradients, eval mode.

    Under ZeRO-3 a DeepSpeedEngine partitioned exactly like the student built from the same
    architecture and config (so ``ema_update`` can work slice by slice); call it like the model
    (``teacher(input_ids=...)``) and use ``unwrap`` for the HF module. Below stage 3 the plain
    module, on this rank's device.
    """
    model.requires_grad_(False)
    model.eval()
    info = init_distributed()
    if zero_stage(config) < 3:
        return model.to(info.device)
    import deepspeed

    cfg = json.loads(json.dumps(config))
    for key in ("optimizer", "scheduler"):
        cfg.pop(key, None)
    cfg["zero_optimization"].pop("offload_optimizer", None)
    engine, *_ = deepspeed.initialize(model=model, config=cfg)
    engine.eval()
    return engine


def save_hf_checkpoint(engine, tokenizer, out_dir: str | os.PathLike) -> Path:
    """Write a Hugging Face checkpoint (safetensors, config.json, generation_config.json,
    tokenizer files) that ``AutoModelForCausalLM.from_pretrained(out_dir)`` and vLLM load directly.

    Weights are gathered parameter by parameter to rank 0's CPU (ZeRO-3: a collective; every rank
    calls this) in the training dtype; tied embeddings are stored once, as transformers does.
    Rank 0 writes into a temporary sibling directory and renames it over ``out_dir``, so a reader
    never sees a half-written checkpoint; all ranks wait for it before returning.
    """
    import torch.distributed as dist

    out = Path(out_dir).resolve()
    module = unwrap(engine)
    state = full_state_dict(engine, rank0_only=True)
    rank = dist.get_rank() if dist.is_initialized() else 0
    if rank == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            # The weights are already whole: keep transformers from treating the module as ZeRO-3.
            with zero3_loading_disabled():
                module.save_pretrained(tmp, state_dict=state, safe_serialization=True)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if dist.is_initialized():
        dist.barrier()
    return out


def save_training_state(engine, directory: str | os.PathLike, client_state: dict | None = None,
                        tag: str | None = None) -> None:
    """``engine.save_checkpoint``: module, optimizer and scheduler states, step counters, and
    ``client_state`` (anything picklable the trainer wants back). Collective. Under ZeRO each rank
    writes its own partition, so resume with the same world size and ZeRO stage."""
    engine.save_checkpoint(str(directory), tag=tag,
                           client_state={_CLIENT_KEY: dict(client_state or {})})


def load_training_state(engine, directory: str | os.PathLike, tag: str | None = None) -> dict:
    """Restore what ``save_training_state`` wrote (the latest tag by default) into an engine built
    with the same config; returns the saved ``client_state``. Raises FileNotFoundError if nothing
    is there."""
    path, client_state = engine.load_checkpoint(str(directory), tag=tag, load_optimizer_states=True,
                                                load_lr_scheduler_states=True)
    if path is None:
        raise FileNotFoundError(f"no DeepSpeed training state under {directory} (tag {tag!r})")
    # DeepSpeed hands back every unrecognised key of its state file (at stage 0 the optimizer's
    # too), so ours travel under one key of their own.
    return dict((client_state or {}).get(_CLIENT_KEY, {}))
