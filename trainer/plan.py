"""A human-readable plan of a run, for ``pmd-train --dry-run`` (no weights, no data loaded)."""
from __future__ import annotations

from trainer.config import TrainConfig


def describe_plan(config: TrainConfig) -> str:
    data, memory = config.data, config.memory
    samples = data.questions_per_step * data.samples_per_question
    lines = [
        f"# plan: {config.algorithm} on {data.task} with {config.model.name_or_path}",
        f"#   {data.questions_per_step} questions x {data.samples_per_question} samples = {samples} rollouts per step, "
        f"up to {data.max_response_tokens} response tokens, T={config.sampling.temperature}, top-p={config.sampling.top_p}",
        f"#   steps: {data.max_steps or f'{data.epochs} epochs'}; checkpoint every {config.checkpoint.every}; "
        f"validation every {config.logging.validate_every}",
        f"#   DeepSpeed ZeRO-{config.deepspeed.zero_stage}, {config.model.dtype}, lr {config.optim.lr}"
        + (" (policy frozen: no optimizer step)" if config.policy.frozen else ""),
    ]
    if config.algorithm == "grpo":
        lines.append(f"#   loss: GRPO clipped surrogate (eps {config.loss.clip_eps}), KL coef {config.loss.kl_coef}; no memory, no teacher")
    else:
        lines.append(f"#   loss: SDPO alpha={config.loss.alpha}, top-K {config.loss.top_k} + tail, IS clip {config.loss.rollout_is_clip}; "
                     f"teacher {config.teacher.update}" + (f" (rate {config.teacher.ema_rate})" if config.teacher.update == "ema" else ""))
    if config.uses_memory:
        bank = f"frozen bank {memory.bank}" if memory.mode == "frozen" else f"{memory.mode} bank results/{config.run.name}/memory.db"
        lines.append(f"#   memory: {bank}; reflection by {config.reflection.source}; behaviors every {memory.behavior_every} "
                     f"steps from step {memory.behavior_warmup}; top-{memory.retrieve_k} behaviors in the teacher context")
    elif config.algorithm == "sdpo":
        lines.append("#   memory: none (in-batch context only: a successful sibling and the attempt's feedback)")
    return "\n".join(lines)
