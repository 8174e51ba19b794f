"""Process groups and ZeRO-3 parameter plumbing for the training engine (``trainer.engine``).

What lives here is everything that has to know how DeepSpeed lays parameters out:

- ``init_distributed`` / ``shutdown_distributed``: one process group per process, started from
  torchrun's environment or, for a plain ``python`` run, from single-process defaults.
- ``unwrap`` / ``is_zero3``: from a DeepSpeedEngine (or a bare module) to the HF model inside.
- ``ema_update``: the teacher's EMA, done partition by partition under ZeRO-3.
- ``gather_for_generation``: full parameters for ``model.generate`` under ZeRO-3.
- ``full_state_dict``: a gathered, CPU, rank-0 copy of the weights (for Hugging Face checkpoints).
- ``zero3_loading_disabled``: load a plain (unpartitioned) HF model while a ZeRO-3 config is live.

Under ZeRO-3 each parameter ``p`` of the module is a placeholder: ``p.data`` is empty except while
gathered, ``p.ds_tensor`` is this rank's flat slice (``ceil(numel / world)`` elements, the last
rank zero-padded), ``p.ds_shape`` the full shape, ``p.ds_status`` whether the full tensor is
currently materialised (small "persistent" parameters, below
``stage3_param_persistence_threshold`` elements, stay materialised once a training step has
gathered them; the others only while a module runs or inside a gather). deepspeed is imported
inside the functions that need it, never at module import.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

# Set when init_distributed filled in the single-process environment itself, so a later re-init in
# the same process (tests) picks a fresh port instead of reusing one that may be in TIME_WAIT.
_SELF_LAUNCHED = False
_ENV_KEYS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")
_SAVED_ENV: dict[str, str | None] = {}


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launched() -> bool:
    """True when a launcher (torchrun, deepspeed) set the rank environment for us."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and not _SELF_LAUNCHED


def _device(local_rank: int) -> torch.device:
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _info() -> DistInfo:
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, _device(local_rank))


def init_distributed(backend: str | None = None) -> DistInfo:
    """Start (or reuse) the default process group and DeepSpeed's communication layer.

    Launched by torchrun/deepspeed, the launcher's RANK/WORLD_SIZE/LOCAL_RANK/MASTER_* are used.
    Otherwise this is a single process: RANK=0, WORLD_SIZE=1, LOCAL_RANK=0, MASTER_ADDR=127.0.0.1
    and a free MASTER_PORT are set (``shutdown_distributed`` removes them again). ``backend``
    defaults to nccl when CUDA is available, gloo otherwise. On CUDA the device is cuda:LOCAL_RANK.
    Idempotent: a later call returns the same DistInfo and leaves the group alone.
    Note (CPU only): DeepSpeed's comm layer JIT-compiles its shared-memory op on first use,
    about 50 s once per machine, cached under ~/.cache/torch_extensions afterwards.
    """
    global _SELF_LAUNCHED
    import torch.distributed as dist

    if dist.is_initialized():
        backend = dist.get_backend()
    else:
        if not _launched():
            if not _SELF_LAUNCHED:
                _SAVED_ENV.update({key: os.environ.get(key) for key in _ENV_KEYS})
            _SELF_LAUNCHED = True
            os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
                              RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        # Pick the device before the group exists: nccl binds to the current CUDA device.
        _device(int(os.environ["LOCAL_RANK"]))
    try:
        import deepspeed
    except ImportError:  # torch alone still gets a working process group
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
    else:
        # Creates the torch group if needed; with one already up it only attaches DeepSpeed's
        # comm wrapper (deepspeed.initialize needs it) to that group.
        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)
    return _info()


def shutdown_distributed(*, barrier: bool = True) -> None:
    """Barrier, then destroy the process group (DeepSpeed's view of it too). Safe to call twice.
    ``barrier=False`` on the way out of an error, when other ranks may never reach the barrier.

    Also forgets the HfDeepSpeedConfig kept alive by ``load_model`` under ZeRO-3, so models loaded
    afterwards in this process are ordinary (unpartitioned) modules again, and puts back the
    environment variables ``init_distributed`` set for a single process.
    """
    global _SELF_LAUNCHED
    import torch.distributed as dist

    release_hf_deepspeed_config()
    if dist.is_initialized():
        if barrier:
            dist.barrier()
        if "deepspeed" in sys.modules:
            import deepspeed.comm as ds_comm

            if ds_comm.is_initialized():
                ds_comm.destroy_process_group()
        if dist.is_initialized():
            dist.destroy_process_group()
    if _SELF_LAUNCHED:
        for key, value in _SAVED_ENV.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _SAVED_ENV.clear()
        _SELF_LAUNCHED = False


# --------------------------------------------------------------------------------------------
# HfDeepSpeedConfig lifetime (transformers reads it through a weak reference)
# --------------------------------------------------------------------------------------------
_LIVE_HF_DS_CONFIGS: list = []


def keep_hf_deepspeed_config(ds_config: dict, model: nn.Module | None = None):
    """Create an ``HfDeepSpeedConfig`` and keep it alive (module-level and, later, on the model).

    transformers holds it only by weak reference; while it lives, ``from_pretrained`` builds the
    model inside ``deepspeed.zero.Init`` (weights partitioned as they load) when the config is
    ZeRO-3, and ``generate`` defaults to ``synced_gpus`` with several ranks.
    """
    from transformers.integrations import HfDeepSpeedConfig

    hf_config = HfDeepSpeedConfig(ds_config)
    _LIVE_HF_DS_CONFIGS.append(hf_config)
    if model is not None:
        model._pmd_hf_deepspeed_config = hf_config
    return hf_config


def release_hf_deepspeed_config() -> None:
    """Forget every HfDeepSpeedConfig kept alive here and clear transformers' global reference."""
    _LIVE_HF_DS_CONFIGS.clear()
    if "transformers" in sys.modules:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()


@contextlib.contextmanager
def zero3_loading_disabled() -> Iterator[None]:
    """Within the block, ``from_pretrained`` loads ordinary full modules even under a live ZeRO-3
    HfDeepSpeedConfig (e.g. to open a saved checkpoint for comparison); restored on exit."""
    import transformers.integrations.deepspeed as hf_ds

    saved = hf_ds._hf_deepspeed_config_weak_ref
    hf_ds._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_ds._hf_deepspeed_config_weak_ref = saved


# --------------------------------------------------------------------------------------------
# Engines and ZeRO-3 parameters
# --------------------------------------------------------------------------------------------
def _is_engine(obj) -> bool:
    if "deepspeed" not in sys.modules:
        return False
    from deepspeed import DeepSpeedEngine

    return isinstance(obj, DeepSpeedEngine)


def unwrap(model: nn.Module) -> nn.Module:
    """The Hugging Face model inside a DeepSpeedEngine; a plain module is returned as is."""
    return model.module if _is_engine(model) else model


def is_zero3_param(param: torch.Tensor) -> bool:
    return hasattr(param, "ds_tensor") and hasattr(param, "ds_status")


def is_zero3(model: nn.Module) -> bool:
    """True when the model's parameters are ZeRO-3 partitioned."""
    return any(is_zero3_param(p) for p in unwrap(model).parameters())


def _available(param) -> bool:
    from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

    return param.ds_status == ZeroParamStatus.AVAILABLE


def _ema_(target: torch.Tensor, source: torch.Tensor, rate: float) -> None:
    """target ← (1 − rate)·target + rate·source, in place; low-precision targets use fp32 math."""
    source = source.to(device=target.device)
    if target.dtype in (torch.float16, torch.bfloat16):
        target.copy_(target.float().mul_(1.0 - rate).add_(source.float(), alpha=rate))
    else:
        target.mul_(1.0 - rate).add_(source.to(target.dtype), alpha=rate)


def _refresh_partition_(param) -> None:
    """Copy this rank's slice of a materialised ZeRO-3 parameter into its ``ds_tensor``.

    Slice r of the flattened parameter is elements [r·P, r·P + P) with P = ds_tensor.numel()
    (DeepSpeed's layout). Skipped when the partition already is that slice of the full tensor
    (one rank: DeepSpeed gathers in place and the two share storage)."""
    import torch.distributed as dist

    part = param.ds_tensor.data.view(-1)
    full = param.data.view(-1)
    rank = getattr(param, "ds_zero_partition_rank", None)
    if rank is None:
        rank = dist.get_rank(group=param.ds_process_group)
    start = part.numel() * rank
    count = max(0, min(part.numel(), full.numel() - start))
    if count == 0:
        return
    src = full.narrow(0, start, count)
    if src.device == part.device and src.data_ptr() == part.data_ptr():
        return
    part.narrow(0, 0, count).copy_(src)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, rate: float) -> None:
    """Move the teacher towards the student: τ ← (1 − rate)·τ + rate·θ, for every parameter.

    ``rate`` is the weight of the new student (the paper's 0.05: τ ← 0.95 τ + 0.05 θ); 0 leaves
    the teacher unchanged, 1 copies the student. The update is elementwise, so it commutes with
    ZeRO-3 partitioning: each rank updates only its own slice, ``τ.ds_tensor ← (1 − rate)·τ.ds_tensor
    + rate·θ.ds_tensor`` (no communication), which requires both models to be partitioned the same
    way — same architecture, same ZeRO config, same world size; checked parameter by parameter.
    Where a teacher parameter is currently materialised in full (ZeRO-3 "persistent" small
    parameters after they were fetched, or inside a gather) the update is applied to the full
    tensor (gathering the student's parameter if needed) and this rank's slice is copied back into
    ``ds_tensor``, so the full copy and the partition stay bit-identical. (With one rank the
    partition and the gathered tensor share storage: updating both would apply the EMA twice.)
    Under stage 0/1/2 both modules hold full parameters and the update is applied to them directly.
    Only parameters move (buffers such as rotary ``inv_freq`` are not learned). With a bf16/fp16
    teacher the arithmetic is fp32 but the result is rounded to the teacher's dtype, so changes
    below half an ulp are lost; keep the teacher in fp32 where that matters.
    Both arguments may be DeepSpeedEngines or bare modules.
    """
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"ema rate must be within [0, 1], got {rate}")
    t_named = list(unwrap(teacher).named_parameters())
    s_named = list(unwrap(student).named_parameters())
    if [n for n, _ in t_named] != [n for n, _ in s_named]:
        raise ValueError("teacher and student have different parameter names; "
                         "EMA needs the same architecture")
    for (name, tp), (_, sp) in zip(t_named, s_named):
        if is_zero3_param(tp) != is_zero3_param(sp):
            raise ValueError(f"{name}: one model is ZeRO-3 partitioned and the other is not")
        if not is_zero3_param(tp):
            if tp.shape != sp.shape:
                raise ValueError(f"{name}: shape {tuple(tp.shape)} != {tuple(sp.shape)}")
            _ema_(tp.data, sp.data, rate)
            continue
        if tuple(tp.ds_shape) != tuple(sp.ds_shape) or tp.ds_tensor.shape != sp.ds_tensor.shape:
            raise ValueError(f"{name}: teacher and student are partitioned differently "
                             f"({tuple(tp.ds_shape)}/{tuple(tp.ds_tensor.shape)} vs "
                             f"{tuple(sp.ds_shape)}/{tuple(sp.ds_tensor.shape)})")
        if not _available(tp):
            _ema_(tp.ds_tensor.data, sp.ds_tensor.data, rate)
            continue
        # Materialised teacher: update the full tensor, then refresh this rank's slice from it.
        if _available(sp):
            _ema_(tp.data, sp.data, rate)
        else:  # the same on every rank, so this collective is matched everywhere
            import deepspeed

            with deepspeed.zero.GatheredParameters([sp]):
                _ema_(tp.data, sp.data, rate)
        _refresh_partition_(tp)


def _param_offload(engine):
    """DeepSpeed's ZeRO-3 parameter coordinator object (owner of the module hooks)."""
    opt = engine.optimizer
    return getattr(opt, "parameter_offload", opt)


@contextlib.contextmanager
def gather_for_generation(engine: nn.Module) -> Iterator[nn.Module]:
    """Yield the Hugging Face model with its full parameters, ready for ``model.generate``.

    Under ZeRO-3 every parameter is all-gathered for the duration of the block (writes to the
    full tensors are discarded on exit; ``ema_update`` inside the block is kept, since it also
    writes the partitions) and DeepSpeed's per-module fetch/release hooks are taken
    off, so each forward is a plain local forward: no collective per layer per token, and ranks may
    generate different numbers of tokens. Memory cost: a full copy of the model (in its training
    dtype: 2 bytes/parameter in bf16, 16 GB for an 8B model) on every rank on top of the partitions
    and optimizer state, for as long as the block lasts. Collective on entry and exit: every rank
    must enter it. With several ranks pass ``synced_gpus=False`` to ``generate``: transformers
    would otherwise keep ranks in lockstep (its default while a ZeRO-3 HfDeepSpeedConfig is alive),
    which the hook-free forward no longer needs. Without ZeRO-3 it only unwraps the engine (no
    copy, no communication).
    """
    module = unwrap(engine)
    if not is_zero3(module):
        yield module
        return
    import deepspeed

    offload = _param_offload(engine) if _is_engine(engine) else None
    with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
        if offload is not None:
            for p in module.parameters():
                p.ds_active_sub_modules.clear()
            for hook in offload.forward_hooks + offload.backward_hooks:
                hook.remove()
            offload.forward_hooks, offload.backward_hooks = [], []
        try:
            yield module
        finally:
            if offload is not None:
                offload._register_deepspeed_module(offload.module)


@torch.no_grad()
def full_state_dict(model: nn.Module, rank0_only: bool = True) -> dict[str, torch.Tensor]:
    """Full weights as CPU tensors (parameters in their own dtype, plus persistent buffers).

    Under ZeRO-3 parameters are gathered one at a time (a collective every rank must join), so
    peak extra memory is one full parameter per rank plus the growing CPU copy on rank 0. Tied
    parameters appear once, under their first name (as ``named_parameters`` lists them). With
    ``rank0_only`` other ranks get an empty dict.
    """
    import torch.distributed as dist

    module = unwrap(model)
    keep = not rank0_only or not dist.is_initialized() or dist.get_rank() == 0
    out: dict[str, torch.Tensor] = {}
    zero3 = is_zero3(module)
    if zero3:
        import deepspeed
    for name, p in module.named_parameters():
        ctx = deepspeed.zero.GatheredParameters([p]) if zero3 else contextlib.nullcontext()
        with ctx:
            if keep:
                out[name] = p.data.detach().to("cpu", copy=True).contiguous()
    persistent = set(module.state_dict().keys())
    for name, b in module.named_buffers():
        if keep and name in persistent:
            out[name] = b.detach().to("cpu", copy=True).contiguous()
    return out
