"""Per-GPU memory plan of a training run, for ``pmd-train --dry-run`` (pure: no torch, no deepspeed).

    memory_plan(config, shape, *, gpus, gpu_memory_gib) -> MemoryPlan   (.to_dict(), .render())
    shape_of(config) -> ModelShape                                      (ConfigError if unknown)

Notation: Ψ parameters, N = gpus (data-parallel ranks), b bytes per element of the training dtype
(bf16/fp16 2, fp32 4), L layers, H hidden, I MLP width, Q = heads·head_dim, K = kv_heads·head_dim,
V vocabulary. Everything is per GPU and in bytes until the components are reported in GiB.

Peak = persistent state + max(training transient, generation transient, optimizer-step transient).

Persistent (ZeRO paper, Rajbhandari et al. 2020, §3/§5: mixed-precision Adam keeps 2Ψ + 2Ψ + KΨ
bytes with K = 12 (fp32 master weights, momentum, variance); stage 1 partitions the K·Ψ, stage 2
also the gradients, stage 3 also the parameters: 4Ψ + KΨ/N, 2Ψ + (2+K)Ψ/N, (4+K)Ψ/N):

    parameters  bΨ, /N under ZeRO-3, 0 with offload_params (CPU)
    gradients   bΨ at stages 0-1; bΨ/N at 2-3 (0 with offload_optimizer: the partition is on CPU)
    optimizer   Adam m, v (8Ψ) + fp32 master (4Ψ; none at stage 0 in fp32, where torch.optim.AdamW
                steps the fp32 weights themselves); /N at stages ≥ 1; 0 with offload_optimizer
    DeepSpeed   the contiguous reduce bucket (reduce_bucket_size = 5e8 elements, DeepSpeed's default,
                in dtype) at stages ≥ 1
    EMA teacher a second copy of the weights in dtype, partitioned like the student (GRPO: the KL
                reference model likewise)
    reserve     CUDA context, NCCL buffers and allocator fragmentation: RESERVE_GIB

Training transient (one micro batch; tokens = padded tokens: max(budget, prompt+response) with
``loss.max_tokens_per_micro_batch``, else micro_batch_size·(prompt+response), as trainer.packing):

    activations  saved tensors of every decoder layer, per token (counted with autograd's saved-tensor
                 hooks on transformers' Qwen3 layer, and the same for OLMo-3's post-norm layer):
                 6 H-sized (2 of them the float32 upcasts of the two RMSNorms), 4 Q- and 4 K-sized
                 (1 each the float32 upcast of q_norm / k_norm), 4 I-sized:
                     a_layer = H(4b + 8) + Q(3b + 4) + K(3b + 4) + 4Ib          bytes / token
                 with a padding mask and GQA, transformers repeats K and V to Q heads for SDPA:
                 + 2b(Q − K); plus the final norm (bH), rope cos/sin, the 4D mask (n·W²·b) and the
                 backward's working memory of one layer (1.5·I·b per token, measured) and one weight
                 gradient (I·H·b). With gradient checkpointing only each layer's input (bH per token
                 and layer) is kept and one layer is recomputed at a time: L·bH + a_layer per token.
    loss         reference (logits_chunk_tokens 0), per response row: the student's logits in dtype
                 (kept by gather's backward) and float32, the teacher's float32 logits, the float32
                 log-softmax and its gradient: (20 + b)·V bytes (DESIGN.md §4 measured 0.57 GiB per
                 1,000 tokens per model and ~1.7 GiB more for forward + backward at V = 151,936).
                 Lean (chunk C): max(V·H·b + 4 float32 [C, V] buffers, 2·V·H·b) + rows·(3bH + 20):
                 the [V, H] head gradient accumulated in dtype, then handed to the optimizer.
    teacher      its no-gradient forward: one layer's working memory, (3I + 4H)·b per teacher token
                 (the SwiGLU's three I-wide tensors at once, and the residual stream; measured) (teacher sequences are up to context_budget_tokens + response long), its
                 output hidden states and its mask
    ZeRO-3       gathered parameters while a forward/backward runs: stage3_max_live_parameters
                 (1e9, DeepSpeed's default) or Ψ if fewer, plus the LM heads the lean loss gathers
    The four are summed: an upper bound (the teacher's forward and the loss run one after the
    other, both while the student's activations are held).

Generation transient (``sampling.generation_batch_size`` sequences, Hugging Face generate):

    weights      under ZeRO-3 the full model is gathered for generation (trainer.distributed.
                 gather_for_generation): bΨ on top of the partitions
    KV cache     2·K·b per token and layer, for prompt + response tokens (sliding-window layers:
                 at most the window), + 1/L for the torch.cat of a growing DynamicCache
    working      the prefill of the batch through one layer (as the teacher's forward), its mask,
                 and the sampling buffers ([batch, V] · 24 bytes)

Optimizer-step transient: the float32 gradient copy of the optimizer's partition (DeepSpeed's
stage 1-3 optimizers and FP16_Optimizer upcast the gradients; stage 3 per sub group of 1e9
elements) and the temporary of torch's foreach AdamW (``_foreach_sqrt`` of the variance), both
4 bytes per optimized element; and the EMA update's two float32 copies of the largest parameter.

Assumptions: the no-gradient forwards (teacher, reference) run with ``use_cache=False`` (else
transformers keeps a DynamicCache of 2·K·b per token and layer); teacher prompts are at most
``teacher.context_budget_tokens``; the policy's own reflection generation (short, small batches)
stays below the rollout generation; GPUs are the data-parallel ranks (no tensor parallelism).

The formulas take the layer count, dtype and token counts as arguments, so the same functions
(``activation_bytes``, ``loss_bytes``, ``state_bytes``) are checked against what can be measured
on CPU for reduced-layer models of the real widths (``trainer.memory_probe``,
``benchmarks/memory_plan_check.py``).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from dataclasses import dataclass, field

from pmd.config import ConfigError
from pmd.model_shapes import SHAPES, ModelShape, shape_for
from trainer.config import TrainConfig

GIB = 2 ** 30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
RESERVE_GIB = 2.0                 # CUDA context + NCCL + allocator fragmentation, per GPU
REDUCE_BUCKET = 5e8               # DeepSpeed reduce_bucket_size default (elements)
MAX_LIVE_PARAMETERS = 1e9         # DeepSpeed stage3_max_live_parameters default
SUB_GROUP_SIZE = 1e9              # DeepSpeed sub_group_size default (stage 3 optimizer step)
LEAN_CV_BUFFERS = 4               # float32 [C, V] buffers alive at once in the lean loss (measured)
BACKWARD_I_FACTOR = 1.5           # one layer's backward working memory, in I·b per token (measured)


# ------------------------------------------------------------------------------------------------
# Shape resolution
# ------------------------------------------------------------------------------------------------
def shape_of(config: TrainConfig) -> ModelShape:
    """The architecture of ``config.model.name_or_path``; a one-line ConfigError if unknown."""
    name = config.model.name_or_path
    shape = shape_for(name)
    if shape is None:
        known = ", ".join(SHAPES)
        if Path(name).expanduser().is_dir():
            raise ConfigError(f"memory plan: {name!r} holds no Qwen3 / OLMo-3 config.json; point model.name_or_path "
                              f"at a folder that does, or at a known model ({known})")
        raise ConfigError(f"memory plan: unknown model {name!r}: not a known hub id or shape name ({known}) nor an "
                          f"existing local folder with a Qwen3 / OLMo-3 config.json; set model.name_or_path to one "
                          f"(a local model must be built first)")
    return shape


def _dims(shape: ModelShape) -> tuple[int, int, int, int, int]:
    return (shape.hidden_size, shape.intermediate_size, shape.num_attention_heads * shape.head_dim,
            shape.num_key_value_heads * shape.head_dim, shape.vocab_size)


# ------------------------------------------------------------------------------------------------
# Formulas (bytes), parameterised so they apply to CPU float32 reduced-layer runs as well
# ------------------------------------------------------------------------------------------------
def layer_activation_bytes(shape: ModelShape, b: int, padded: bool = True) -> float:
    """Saved tensors of one decoder layer, per token (module docstring)."""
    h, i, q, k, _ = _dims(shape)
    per = h * (4 * b + 8) + q * (3 * b + 4) + k * (3 * b + 4) + 4 * i * b
    if padded and q != k:  # repeat_kv for SDPA with a mask: K and V saved at Q heads
        per += 2 * b * (q - k)
    return per


def activation_bytes(shape: ModelShape, tokens: int, b: int, *, checkpointing: bool, num_layers: int | None = None,
                     padded: bool = True, width: int | None = None, grad: bool = True) -> float:
    """Peak of the decoder's forward + backward for ``tokens`` padded tokens (``width`` the longest
    sequence, for the n·W² mask); ``grad=False``: a no-gradient forward (one layer at a time)."""
    h, i, _, _, _ = _dims(shape)
    layers = shape.num_hidden_layers if num_layers is None else num_layers
    width = tokens if width is None else min(width, tokens)
    mask = tokens * width * b * _mask_count(shape, layers) if padded else 0
    if not grad:
        return tokens * (3 * i + 4 * h) * b + mask
    layer = layer_activation_bytes(shape, b, padded)
    kept = layers * h * b + layer if checkpointing else layers * layer
    per_token = kept + h * b + 2 * shape.head_dim * b + BACKWARD_I_FACTOR * i * b
    return tokens * per_token + mask + i * h * b


def _mask_count(shape: ModelShape, layers: int) -> int:
    return 2 if "sliding_attention" in shape.layer_types_for(layers) and \
        "full_attention" in shape.layer_types_for(layers) else 1


def loss_bytes(shape: ModelShape, rows: int, b: int, *, chunk_tokens: int, grad: bool = True,
               algorithm: str = "sdpo", reference_model: bool = False) -> float:
    """Working memory of the loss for ``rows`` response positions (module docstring)."""
    h, _, _, _, v = _dims(shape)
    if chunk_tokens:  # the lean loss: chunks of C rows, the [V, H] head gradient in dtype
        chunk = min(chunk_tokens, max(rows, 1))
        if not grad:
            return (LEAN_CV_BUFFERS - 1) * 4 * chunk * v + rows * (2 * h * b + 20)
        # the head gradient (formed in the forward, scaled in place in the backward) + the chunk buffers
        return v * h * b + LEAN_CV_BUFFERS * 4 * chunk * v + rows * (3 * h * b + 20)
    if algorithm == "grpo":  # student logits (dtype + fp32), log-softmax and its gradients; ref logits
        per = (16 + b) * v + (8 * v if reference_model else 0)
        return rows * per + (v * h * b if grad else 0)
    if not grad:
        return rows * 12 * v
    return max((20 + b) * rows * v, (12 + b) * rows * v + v * h * b)


def state_bytes(parameters: int, b: int, *, zero_stage: int, gpus: int, trainable: int | None = None,
                offload_optimizer: bool = False, offload_params: bool = False) -> dict[str, float]:
    """Parameters, gradients and optimizer states per GPU (ZeRO paper's 2Ψ + 2Ψ + KΨ, partitioned)."""
    trainable = parameters if trainable is None else trainable
    n = gpus if zero_stage >= 1 else 1
    params = 0.0 if offload_params else parameters * b / (gpus if zero_stage == 3 else 1)
    if offload_optimizer and zero_stage >= 1:
        grads = 0.0
    else:
        grads = trainable * b / (gpus if zero_stage >= 2 else 1)
    master = 0 if (zero_stage == 0 and b == 4) else 4
    optimizer = 0.0 if (offload_optimizer and zero_stage >= 1) else trainable * (8 + master) / n
    return {"parameters": params, "gradients": grads, "optimizer": optimizer}


def kv_cache_bytes(shape: ModelShape, sequences: int, length: int, b: int) -> float:
    """Hugging Face DynamicCache for ``sequences`` rows of ``length`` tokens (sliding layers capped)."""
    _, _, _, k, _ = _dims(shape)
    types = shape.layer_types_for()
    window = shape.sliding_window or length
    tokens = sum(min(length, window) if t == "sliding_attention" else length for t in types)
    return 2 * k * b * sequences * tokens * (1 + 1 / len(types))


# ------------------------------------------------------------------------------------------------
# The plan
# ------------------------------------------------------------------------------------------------
@dataclass
class Component:
    name: str
    phase: str        # persistent | training | generation | step
    gib: float
    note: str = ""


@dataclass
class MemoryPlan:
    model: str
    parameters: int
    gpus: int
    device_gib: float
    settings: dict
    components: list[Component]
    phases: dict[str, float]
    per_gpu_gib: float
    fits: bool
    limiting_phase: str
    reasons: list[str] = field(default_factory=list)
    suggestions: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "model": self.model, "parameters": self.parameters, "gpus": self.gpus,
            "device_gib": self.device_gib, "per_gpu_gib": round(self.per_gpu_gib, 2), "fits": self.fits,
            "headroom_gib": round(self.device_gib - self.per_gpu_gib, 2), "limiting_phase": self.limiting_phase,
            "settings": self.settings, "phases": {k: round(v, 2) for k, v in self.phases.items()},
            "components": {c.name: {"gib": round(c.gib, 3), "phase": c.phase, "note": c.note} for c in self.components},
            "reasons": self.reasons, "suggestions": self.suggestions,
        }

    def render(self) -> str:
        s = self.settings
        lines = [f"# memory plan per GPU: {self.model} ({self.parameters / 1e9:.2f}B parameters), {self.gpus} GPU(s) x "
                 f"{self.device_gib:g} GiB, ZeRO-{s['zero_stage']}{' + offload optimizer' if s['offload_optimizer'] else ''}"
                 f"{' + offload params' if s['offload_params'] else ''}, {s['dtype']}, gradient checkpointing "
                 f"{'on' if s['gradient_checkpointing'] else 'off'}, {s['micro_batch_tokens']} tokens per micro batch, "
                 f"loss {'lean (chunk ' + str(s['logits_chunk_tokens']) + ')' if s['logits_chunk_tokens'] else 'reference (full logits)'}, "
                 f"generation batch {s['generation_batch_size']}"]
        titles = {"persistent": "persistent", "training": "training (one micro batch)",
                  "generation": "generation", "step": "optimizer step"}
        for phase, title in titles.items():
            lines.append(f"#   {title:<28} {self.phases[phase]:8.2f} GiB")
            for c in self.components:
                if c.phase == phase and c.gib >= 0.005:
                    lines.append(f"#     {c.name:<26} {c.gib:8.2f} GiB  {c.note}")
        verdict = "FITS" if self.fits else "DOES NOT FIT"
        lines.append(f"#   peak = persistent + max(training, generation, step) = {self.per_gpu_gib:.2f} GiB of "
                     f"{self.device_gib:g} GiB ({self.limiting_phase} is the largest): {verdict}")
        for reason in self.reasons:
            lines.append(f"#   why: {reason}")
        for sug in self.suggestions:
            lines.append(f"#   would fit: {sug['cli']}  ->  {sug['per_gpu_gib']:.2f} GiB")
        if not self.fits and not self.suggestions:
            lines.append("#   no combination of the settings tried fits this device")
        return "\n".join(lines)


def micro_batch_tokens(config: TrainConfig) -> int:
    """Padded tokens of the largest micro batch (trainer.packing's rule)."""
    longest = config.data.max_prompt_tokens + config.data.max_response_tokens
    budget = config.loss.max_tokens_per_micro_batch
    return config.loss.micro_batch_size * longest if budget is None else max(budget, longest)


def _components(config: TrainConfig, shape: ModelShape, gpus: int,
                device_gib: float | None = None) -> tuple[list[Component], dict]:
    device_gib = config.hardware.gpu_memory_gib if device_gib is None else device_gib
    ds, data, loss = config.deepspeed, config.data, config.loss
    b = DTYPE_BYTES[config.model.dtype]
    h, i, _, _, v = _dims(shape)
    psi = shape.parameter_count()
    frozen = config.policy.frozen
    stage = ds.zero_stage
    train = not frozen
    longest = data.max_prompt_tokens + data.max_response_tokens
    tokens = micro_batch_tokens(config)
    rows = min(tokens, loss.micro_batch_size * data.max_response_tokens)
    comps: list[Component] = []

    def add(name, phase, nbytes, note=""):
        comps.append(Component(name, phase, nbytes / GIB, note))

    # -- persistent
    states = state_bytes(psi, b, zero_stage=stage, gpus=gpus, offload_optimizer=ds.offload_optimizer,
                         offload_params=ds.offload_params)
    where = "on CPU (offload_params)" if ds.offload_params else ("1/N" if stage == 3 else "full copy")
    add("parameters", "persistent", states["parameters"], f"{config.model.dtype}, {where}")
    if train:
        add("gradients", "persistent", states["gradients"],
            "on CPU (offload_optimizer)" if ds.offload_optimizer and stage >= 1 else
            ("1/N (ZeRO-2/3)" if stage >= 2 else "full copy"))
        add("optimizer states", "persistent", states["optimizer"],
            "on CPU (offload_optimizer)" if ds.offload_optimizer and stage >= 1 else
            f"Adam m, v{' + fp32 master' if not (stage == 0 and b == 4) else ''}{', 1/N' if stage >= 1 else ', full copy'}")
        if stage >= 1:
            add("DeepSpeed reduce bucket", "persistent", REDUCE_BUCKET * b, "reduce_bucket_size 5e8 elements")
    copy_bytes = 0.0 if ds.offload_params else psi * b / (gpus if stage == 3 else 1)
    ema = config.uses_teacher and config.teacher.update == "ema" and not frozen
    reference = config.algorithm == "grpo" and loss.kl_coef > 0
    if ema:
        add("EMA teacher", "persistent", copy_bytes, "a second copy of the weights, partitioned like the student")
    if reference:
        add("GRPO reference model", "persistent", copy_bytes, "the initial policy, for the KL term")
    add("runtime reserve", "persistent", RESERVE_GIB * GIB, "CUDA context, NCCL, allocator fragmentation")

    # -- training: one micro batch
    ckpt = config.model.gradient_checkpointing and train
    add("activations", "training",
        activation_bytes(shape, tokens, b, checkpointing=ckpt, width=longest, grad=train),
        f"{tokens} tokens, checkpointing {'on' if ckpt else 'off'}" + ("" if train else ", no gradient"))
    add("loss working memory", "training",
        loss_bytes(shape, rows, b, chunk_tokens=loss.logits_chunk_tokens, grad=train,
                   algorithm="grpo" if config.algorithm == "grpo" else "sdpo", reference_model=reference),
        f"{rows} response rows, " + (f"lean, chunks of {loss.logits_chunk_tokens}" if loss.logits_chunk_tokens
                                     else "reference loss on full [B, T, V] logits"))
    forward_note = ""
    if config.uses_teacher or reference:
        if config.uses_teacher:
            t_width = config.teacher.context_budget_tokens + data.max_response_tokens
            if loss.max_tokens_per_micro_batch:  # trainer.loop packs by the longer of student and teacher
                t_tokens = max(loss.max_tokens_per_micro_batch, t_width)
            else:
                t_tokens = min(loss.micro_batch_size * t_width,
                               loss.micro_batch_size * config.teacher.context_budget_tokens + tokens)
            forward_note = f"{t_tokens} teacher tokens (context up to {config.teacher.context_budget_tokens})"
        else:
            t_width, t_tokens = longest, tokens
            forward_note = f"{t_tokens} tokens"
        teacher = activation_bytes(shape, t_tokens, b, checkpointing=False, width=t_width, grad=False)
        teacher += (t_tokens * h * b) if loss.logits_chunk_tokens else 0  # its final hidden states, kept
        add("teacher forward" if config.uses_teacher else "reference forward", "training", teacher,
            forward_note + ", no gradient")
    if stage == 3:
        heads = (2 if (config.uses_teacher or reference) else 1) * v * h * b if loss.logits_chunk_tokens else 0
        add("ZeRO-3 gathered parameters", "training", min(psi, MAX_LIVE_PARAMETERS) * b + heads,
            "stage3_max_live_parameters 1e9" + (" + the LM heads the lean loss gathers" if heads else ""))

    # -- generation
    gen = config.sampling.generation_batch_size
    if config.rollout.engine == "vllm":
        # vLLM takes a fixed share of the device (its weights + KV cache pool) and, in sleep mode,
        # gives it back while the loss runs: a generation-phase cost only.
        add("vLLM engine", "generation", config.rollout.gpu_memory_utilization * device_gib * GIB,
            f"rollout.gpu_memory_utilization {config.rollout.gpu_memory_utilization} of the device, "
            "released in sleep mode during the loss")
    else:
        if stage == 3:
            add("generation weights", "generation", psi * b, "ZeRO-3: the full model gathered for generate()")
        add("KV cache", "generation", kv_cache_bytes(shape, gen, longest, b),
            f"{gen} sequences x {longest} tokens")
        prefill = activation_bytes(shape, gen * data.max_prompt_tokens, b, checkpointing=False,
                                   width=data.max_prompt_tokens, grad=False)
        add("generation working", "generation", prefill + gen * v * 24, "prefill of one layer, mask, sampling buffers")

    # -- optimizer step
    if train:
        local = psi / (gpus if stage >= 1 else 1)
        optimized = min(local, SUB_GROUP_SIZE) if stage == 3 else local
        upcast = 0 if (ds.offload_optimizer and stage >= 1) or (stage == 0 and b == 4) else 4 * optimized
        foreach = 0 if (ds.offload_optimizer and stage >= 1) else 4 * optimized
        add("optimizer step", "step", upcast + foreach, "fp32 gradient copy + foreach AdamW temporary")
        if ema:
            largest = v * h / (gpus if stage == 3 else 1)
            add("EMA update", "step", 0 if ds.offload_params else 8 * largest, "fp32 copies of the largest parameter")
    settings = {"zero_stage": stage, "offload_optimizer": ds.offload_optimizer, "offload_params": ds.offload_params,
                "dtype": config.model.dtype, "gradient_checkpointing": ckpt, "micro_batch_tokens": tokens,
                "response_rows": rows, "logits_chunk_tokens": loss.logits_chunk_tokens,
                "generation_batch_size": gen, "generation_tokens": longest}
    return comps, settings


def _total(comps: list[Component]) -> tuple[dict[str, float], float, str]:
    phases = {p: sum(c.gib for c in comps if c.phase == p) for p in ("persistent", "training", "generation", "step")}
    limiting = max(("training", "generation", "step"), key=lambda p: phases[p])
    return phases, phases["persistent"] + phases[limiting], limiting


def _peak(config: TrainConfig, shape: ModelShape, gpus: int) -> float:
    return _total(_components(config, shape, gpus)[0])[1]


def _changed(config: TrainConfig, changes: dict) -> TrainConfig:
    new = copy.deepcopy(config)
    for key, value in changes.items():
        section, name = key.split(".")
        setattr(getattr(new, section), name, value)
    return new


def _levers(config: TrainConfig) -> list[dict]:
    """Setting changes that lower memory, cheapest in throughput first (generation batch: below)."""
    ds, out = config.deepspeed, []
    longest = config.data.max_prompt_tokens + config.data.max_response_tokens
    if not config.model.gradient_checkpointing and not config.policy.frozen:
        out.append({"model.gradient_checkpointing": True})
    if config.loss.logits_chunk_tokens == 0:
        out.append({"loss.logits_chunk_tokens": 1024})
    budget = config.loss.max_tokens_per_micro_batch
    if budget is None or budget > longest:
        out.append({"loss.max_tokens_per_micro_batch": longest})
    if ds.zero_stage < 3:
        out.append({"deepspeed.zero_stage": 3})
    out.append({"sampling.generation_batch_size": None})  # resolved against the plan
    if not ds.offload_optimizer:
        out.append({"deepspeed.offload_optimizer": True, "deepspeed.zero_stage": max(ds.zero_stage, 1)})
    if not ds.offload_params:
        out.append({"deepspeed.offload_params": True, "deepspeed.zero_stage": 3})
    return out


def _generation_batch(config: TrainConfig, shape: ModelShape, gpus: int, device: float) -> int:
    """The largest generation batch (halving) that fits; else the largest that stops generation
    from being the limiting phase; else the current one."""
    size = config.sampling.generation_batch_size
    while size > 1:
        size //= 2
        trial = _changed(config, {"sampling.generation_batch_size": size})
        phases, peak, limiting = _total(_components(trial, shape, gpus, device)[0])
        if peak <= device or limiting != "generation":
            return size
    return config.sampling.generation_batch_size


def _resolve(config, shape, gpus, device, lever: dict) -> dict:
    if "sampling.generation_batch_size" in lever:
        size = _generation_batch(config, shape, gpus, device)
        return {} if size == config.sampling.generation_batch_size else {"sampling.generation_batch_size": size}
    return lever


def _suggest(config: TrainConfig, shape: ModelShape, gpus: int, device: float) -> list[dict]:
    """Settings that make the plan fit: each single change that does, then the cumulative
    combination of the levers in order (cheapest first), then more GPUs (ZeRO >= 1)."""
    found: list[dict] = []

    def record(changes: dict, n: int) -> bool:
        peak = _peak(_changed(config, changes), shape, n)
        if peak > device or any(f["set"] == changes and f["gpus"] == n for f in found):
            return peak <= device
        parts = [f"--gpus {n}"] if n != gpus else []
        parts += [f"--set {k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in changes.items()]
        found.append({"set": changes, "gpus": n, "per_gpu_gib": round(peak, 2), "fits": True, "cli": " ".join(parts)})
        return True

    for lever in _levers(config):
        change = _resolve(config, shape, gpus, device, lever)
        if change:
            record(change, gpus)
    if not found:
        current: dict = {}
        for lever in _levers(config):
            base = _changed(config, current)
            change = _resolve(base, shape, gpus, device, lever)
            if not change or _peak(_changed(config, {**current, **change}), shape, gpus) >= _peak(base, shape, gpus):
                continue
            current = {**current, **change}
            if record(current, gpus):
                break
    n = gpus * 2
    while n <= 64:
        if config.deepspeed.zero_stage >= 1 and record({}, n):
            break
        n *= 2
    return found


def _reasons(comps: list[Component], phases: dict, limiting: str, peak: float, device: float, stage: int) -> list[str]:
    if peak <= device:
        return []
    top = sorted((c for c in comps if c.phase in ("persistent", limiting)), key=lambda c: -c.gib)[:3]
    parts = ", ".join(f"{c.name} {c.gib:.1f} GiB" for c in top)
    out = [f"peak {peak:.1f} GiB > {device:g} GiB: persistent {phases['persistent']:.1f} GiB + {limiting} "
           f"{phases[limiting]:.1f} GiB; largest: {parts}"]
    states = sum(c.gib for c in comps if c.name in ("parameters", "gradients", "optimizer states"))
    if states > device:
        out.append(f"parameters + gradients + optimizer states alone need {states:.1f} GiB"
                   + (" (ZeRO-0 keeps all of them on every GPU)" if stage == 0 else ""))
    return out


def memory_plan(config: TrainConfig, shape: ModelShape | None = None, *, gpus: int | None = None,
                gpu_memory_gib: float | None = None, suggest: bool = True) -> MemoryPlan:
    """The per-GPU plan of ``config`` on ``gpus`` devices of ``gpu_memory_gib`` GiB each
    (defaults: ``config.hardware``); ``shape`` defaults to the shape of ``config.model.name_or_path``."""
    shape = shape_of(config) if shape is None else shape
    gpus = config.hardware.gpus if gpus is None else int(gpus)
    device = config.hardware.gpu_memory_gib if gpu_memory_gib is None else float(gpu_memory_gib)
    if gpus < 1 or not device > 0 or math.isinf(device):
        raise ConfigError(f"memory plan: --gpus must be >= 1 and --gpu-memory-gib positive, got {gpus} / {device}")
    if config.deepspeed.offload_params and config.deepspeed.zero_stage != 3:
        raise ConfigError("deepspeed.offload_params needs deepspeed.zero_stage=3")
    if config.deepspeed.offload_optimizer and config.deepspeed.zero_stage == 0:
        raise ConfigError("deepspeed.offload_optimizer needs deepspeed.zero_stage 1, 2 or 3")
    comps, settings = _components(config, shape, gpus, device)
    phases, peak, limiting = _total(comps)
    fits = peak <= device
    return MemoryPlan(
        model=shape.name, parameters=shape.parameter_count(), gpus=gpus, device_gib=device, settings=settings,
        components=comps, phases=phases, per_gpu_gib=peak, fits=fits, limiting_phase=limiting,
        reasons=_reasons(comps, phases, limiting, peak, device, config.deepspeed.zero_stage),
        suggestions=[] if fits or not suggest else _suggest(config, shape, gpus, device),
    )
