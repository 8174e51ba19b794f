"""``pmd-train``'s configuration: one dataclass, grouped by concern, validated on construction.

A YAML file is the saved form of ``TrainConfig`` (see ``pmd.config``); ``--set a.b=c`` overrides
any field with type checking. Defaults are the paper's settings (DESIGN.md section 1) where the
paper gives one; the shipped configs in ``trainer/configs/`` scale them down or change them.

Algorithms and ablations are configuration, never code forks:

| run | algorithm | memory.mode | policy.frozen |
|---|---|---|---|
| PMD | pmd | persistent | false |
| PMD-Transient | pmd | transient | false |
| frozen memory + evolving policy | pmd | frozen (memory.bank = a bank file) | false |
| evolving memory + frozen policy | pmd | persistent | true |
| SDPO | sdpo | (no memory) | false |
| GRPO | grpo | (no memory, no teacher) | false |
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from memory_bank.config import BankLimits, RetrievalConfig
from trainer.teacher_context import DEFAULT_PRIORITY, LAYOUT


def _at_least(section: str, obj, names: tuple[str, ...], low: float) -> None:
    for name in names:
        value = getattr(obj, name)
        if value < low:
            raise ValueError(f"{section}.{name} must be at least {low}, got {value}")


def _optional_at_least(section: str, obj, name: str, low: int) -> None:
    value = getattr(obj, name)
    if value is not None and value < low:
        raise ValueError(f"{section}.{name} must be at least {low} or null, got {value}")


def _not_blank(section: str, obj, name: str, fix: str) -> None:
    value = getattr(obj, name)
    if value is not None and not value.strip():
        raise ValueError(f"{section}.{name} is empty; {fix}")


@dataclass
class RunConfig:
    name: str = "pmd-run"
    output_dir: str = "results"
    seed: int = 0

    def __post_init__(self) -> None:
        # The run folder is <output_dir>/<name>: a name with a separator, "." or ".." would put it
        # (and its config.yaml, memory.db and checkpoints) somewhere else.
        if not self.name.strip() or self.name.strip() in (".", "..") or "/" in self.name or "\\" in self.name:
            raise ValueError(f"run.name {self.name!r} must be a plain folder name (no '/', not '.' or '..'), "
                             "e.g. --set run.name=pmd-chemistry; put the parent folder in run.output_dir")
        _not_blank("run", self, "output_dir", "set the folder runs go under, e.g. --set run.output_dir=results")
        _at_least("run", self, ("seed",), 0)


@dataclass
class ModelConfig:
    name_or_path: str = "Qwen/Qwen3-8B"
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    # Activation (gradient) checkpointing of the student's decoder layers: keep one hidden state per
    # layer and recompute the layer in the backward pass. The teacher and the GRPO reference run
    # without gradient and need none.
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        _not_blank("model", self, "name_or_path", "give a local model folder or a hub id such as Qwen/Qwen3-8B")


@dataclass
class DataConfig:
    task: str = "sciknoweval_chemistry"
    path: str | None = None
    questions_per_step: int = 32
    samples_per_question: int = 8
    max_prompt_tokens: int = 2048
    max_response_tokens: int = 8192
    epochs: int = 20
    max_steps: int | None = None  # stop earlier than `epochs` worth of steps

    def __post_init__(self) -> None:
        _at_least("data", self, ("questions_per_step", "samples_per_question", "max_prompt_tokens",
                                 "max_response_tokens", "epochs"), 1)
        _optional_at_least("data", self, "max_steps", 1)
        _not_blank("data", self, "task", "name a task, e.g. --set data.task=demo_mcq (pmd-harness tasks lists them)")
        _not_blank("data", self, "path", "give a split file or folder, or null for the task's default data")


@dataclass
class SamplingConfig:
    temperature: float = 1.0
    top_p: float = 1.0
    generation_batch_size: int = 32

    def __post_init__(self) -> None:
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError("sampling.temperature must be > 0 and sampling.top_p within (0, 1]")
        _at_least("sampling", self, ("generation_batch_size",), 1)


@dataclass
class RolloutConfig:
    """Which engine generates rollouts, the policy's reflections and validation answers."""

    engine: Literal["hf", "vllm"] = "hf"   # vllm: colocated, weights synced after every optimizer step
    gpu_memory_utilization: float = 0.5    # vllm on CUDA: the engine's share of the device
    max_model_len: int | None = None       # vllm: longest prompt + completion (None: the model's own)

    def __post_init__(self) -> None:
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"rollout.gpu_memory_utilization must be within (0, 1], got {self.gpu_memory_utilization}")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError(f"rollout.max_model_len must be at least 1 or null, got {self.max_model_len}")


@dataclass
class ReflectionConfig:
    source: Literal["policy", "model", "endpoint"] = "policy"
    model: str | None = None          # a local model (source: model) or the endpoint's model name
    base_url: str | None = None       # OpenAI-compatible endpoint, e.g. http://localhost:8000/v1
    api_key_env: str = "OPENAI_API_KEY"
    max_new_tokens: int = 256
    temperature: float = 0.7
    retries: int = 3
    max_per_kind: int = 3

    def __post_init__(self) -> None:
        if self.source == "model" and not self.model:
            raise ValueError("reflection.source 'model' needs reflection.model (a local path or hub id)")
        if self.source == "endpoint" and not (self.base_url and self.model):
            raise ValueError("reflection.source 'endpoint' needs reflection.base_url and reflection.model")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"reflection.base_url {self.base_url!r} must start with http:// or https://, "
                             "e.g. http://localhost:8000/v1")
        _at_least("reflection", self, ("max_new_tokens", "max_per_kind"), 1)
        _at_least("reflection", self, ("temperature", "retries"), 0)
        if self.temperature == 0 and self.source != "endpoint":  # local models sample: T must be > 0
            raise ValueError(f"reflection.temperature must be positive with reflection.source '{self.source}' "
                             "(the model samples its reflections), e.g. 0.7")


@dataclass
class MemoryConfig:
    mode: Literal["persistent", "transient", "frozen"] = "persistent"
    bank: str | None = None             # the bank to load in frozen mode
    behavior_every: int = 5             # abstract behaviors every K steps ...
    behavior_warmup: int = 5            # ... starting at this step
    retrieve_k: int = 3                 # behaviors retrieved per question (the paper's K)
    insights_per_question: int = 3
    limits: BankLimits = field(default_factory=BankLimits)
    retrieval: RetrievalConfig = field(default_factory=lambda: RetrievalConfig(levels=["behavior"]))

    def __post_init__(self) -> None:
        if self.mode == "frozen" and not self.bank:
            raise ValueError("memory.mode 'frozen' needs memory.bank, the path of the bank to load")
        _at_least("memory", self, ("behavior_every",), 1)
        _at_least("memory", self, ("behavior_warmup", "retrieve_k", "insights_per_question"), 0)


@dataclass
class TeacherConfig:
    update: Literal["ema", "live"] = "ema"
    ema_rate: float = 0.05
    context_budget_tokens: int = 4096
    # The in-batch context. The defaults give the SDPO reference's teacher prompt byte for byte
    # (lasgroup/SDPO, verl/trainer/config/actor/actor.yaml, section self_distillation; the names in
    # parentheses are its settings); trainer.teacher_context has the template.
    # A successful sibling's response as "Correct solution:", the first in batch order (the
    # reference always does this; false: feedback and memory only).
    include_solution: bool = True
    # The verifier's feedback on the sample's own attempt, when non-empty (include_environment_feedback).
    include_feedback: bool = True
    # false: feedback only when no solution is given (environment_feedback_only_without_solution:
    # True); true: both, the feedback after the solution.
    feedback_with_solution: bool = False
    # true: the feedback of a successful attempt too, as the reference does; false: only when the
    # attempt failed (reward below memory.limits.success_threshold).
    feedback_on_success: bool = True
    # A sample's own success is never its solution (dont_reprompt_on_self_success).
    dont_reprompt_on_self_success: bool = True
    # <think>...</think> blocks are removed from the sibling's and the past solution
    # (remove_thinking_from_demonstration).
    remove_thinking_from_demonstration: bool = True
    # Also <reasoning>...</reasoning> blocks (the SciKnowEval answer format's); the reference keeps them.
    remove_reasoning_from_demonstration: bool = False
    priority: list[str] = field(default_factory=lambda: list(DEFAULT_PRIORITY))

    def __post_init__(self) -> None:
        if not 0 < self.ema_rate <= 1:
            raise ValueError(f"teacher.ema_rate must be within (0, 1], got {self.ema_rate}")
        if self.feedback_with_solution and not (self.include_solution and self.include_feedback):
            raise ValueError("teacher.feedback_with_solution: true needs teacher.include_solution and "
                             "teacher.include_feedback both true (it adds the feedback next to the solution)")
        if not self.feedback_on_success and not self.include_feedback:
            raise ValueError("teacher.feedback_on_success: false has no effect with teacher.include_feedback: "
                             "false; leave it true")
        if sorted(self.priority) != sorted(LAYOUT):
            raise ValueError(f"teacher.priority must order exactly {', '.join(LAYOUT)}")
        _at_least("teacher", self, ("context_budget_tokens",), 1)


@dataclass
class LossConfig:
    alpha: float = 0.5                 # 0 forward KL, 1 reverse KL, else generalized JSD
    top_k: int | None = 100            # distill on the student's top-K tokens + a tail bucket
    # Rollout correction: each token's term is weighted by min(π_θ(y_t) / π_rollout(y_t), this),
    # stop-gradient (SDPO reference: rollout_is: token, threshold 2.0), for SDPO/PMD and GRPO.
    rollout_is_clip: float = 2.0
    clip_eps: float = 0.2              # GRPO
    kl_coef: float = 0.0               # GRPO: KL to the initial policy (0: no reference model)
    micro_batch_size: int = 4          # sequences per forward/backward (at most)
    # Token budget of one micro batch (prompt + response tokens of its sequences, as verl's
    # ppo_max_token_len_per_gpu): samples are packed by length so a few long responses never exceed
    # memory. null: micro batches of micro_batch_size sequences, whatever their length.
    max_tokens_per_micro_batch: int | None = None
    # The LM head runs on this many response positions at a time inside the memory-lean loss, so no
    # [B, T, V] logits tensor ever exists; 0 uses the readable reference losses on full logits.
    # 256: about four float32 [256, V] buffers (0.6 GiB at V = 151,936) and no slower than larger
    # chunks (results/benchmarks/loss_memory.md).
    logits_chunk_tokens: int = 256

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"loss.alpha must be within [0, 1], got {self.alpha}")
        _optional_at_least("loss", self, "top_k", 1)
        _at_least("loss", self, ("micro_batch_size",), 1)
        _at_least("loss", self, ("logits_chunk_tokens",), 0)
        _optional_at_least("loss", self, "max_tokens_per_micro_batch", 1)
        if self.rollout_is_clip <= 0:
            raise ValueError(f"loss.rollout_is_clip must be positive (the paper's 2.0), got {self.rollout_is_clip}")
        if not 0 < self.clip_eps < 1:
            raise ValueError(f"loss.clip_eps must be within (0, 1) (GRPO's 0.2), got {self.clip_eps}")
        _at_least("loss", self, ("kl_coef",), 0)


@dataclass
class PolicyConfig:
    frozen: bool = False               # no optimizer step: the "evolving memory + frozen policy" ablation


@dataclass
class OptimConfig:
    lr: float = 1e-5
    weight_decay: float = 0.0
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be positive, got {self.lr}")
        _at_least("optim", self, ("weight_decay", "grad_clip"), 0)  # grad_clip 0: no clipping


@dataclass
class DeepSpeedConfig:
    zero_stage: int = 2
    offload_optimizer: bool = False
    offload_params: bool = False

    def __post_init__(self) -> None:
        if self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"deepspeed.zero_stage must be 0, 1, 2 or 3, got {self.zero_stage}")


@dataclass
class CheckpointConfig:
    every: int = 50                    # steps between checkpoints (one is always written at the end)
    keep_last: int = 2

    def __post_init__(self) -> None:
        _at_least("checkpoint", self, ("every", "keep_last"), 1)


@dataclass
class HardwareConfig:
    """The hardware a config was written for: the defaults of ``pmd-train --dry-run``'s memory plan
    (``--gpus`` and ``--gpu-memory-gib`` override them)."""

    gpus: int = 1
    gpu_memory_gib: float = 80.0

    def __post_init__(self) -> None:
        _at_least("hardware", self, ("gpus",), 1)
        if self.gpu_memory_gib <= 0:
            raise ValueError(f"hardware.gpu_memory_gib must be positive, got {self.gpu_memory_gib}")


@dataclass
class WandbConfig:
    """Weights & Biases: every metric of metrics.jsonl and the resolved config, when ``project``
    is set (needs the ``wandb`` package). W&B's own settings apply otherwise (WANDB_MODE=offline
    for a machine without network, WANDB_DIR, WANDB_API_KEY)."""
    project: str | None = None         # null: no W&B logging
    entity: str | None = None
    name: str | None = None            # default: run.name (an experiment's runs: <variant>-s<seed>)
    group: str | None = None           # an experiment sets its name here
    tags: list[str] = field(default_factory=list)
    mode: Literal["online", "offline", "disabled"] | None = None  # null: W&B's default (WANDB_MODE)


@dataclass
class LoggingConfig:
    validate_every: int = 5
    validation_questions: int | None = 64   # None: the whole test split
    tensorboard: bool = False
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def __post_init__(self) -> None:
        _at_least("logging", self, ("validate_every",), 0)  # 0: no validation
        _optional_at_least("logging", self, "validation_questions", 1)


@dataclass
class TrainConfig:
    algorithm: Literal["grpo", "sdpo", "pmd"] = "pmd"
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reflection: ReflectionConfig = field(default_factory=ReflectionConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)

    @property
    def uses_memory(self) -> bool:
        return self.algorithm == "pmd"

    @property
    def uses_teacher(self) -> bool:
        return self.algorithm in ("sdpo", "pmd")
