"""The pieces the training loop calls, so ``loop.train`` reads as the method, top to bottom.

Setup (run folder, models, memory, reflector), cross-rank plumbing (gathering samples to rank 0,
handing teacher contexts back), the memory updates of a step, metrics, validation and
checkpointing.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
from pathlib import Path

import torch

from pmd.config import save_yaml
from pmd.errors import StorageError, storage_problem
from trainer import checkpoint as ckpt
from trainer.config import TrainConfig
from trainer.rollout import chat_ids, generate_rollouts
from trainer.sequences import Sample


# ----------------------------------------------------------------- setup
def notice(message: str) -> None:
    """One line for the person running the job (stderr, so stdout stays the run's output)."""
    print(f"pmd-train: {message}", file=sys.stderr, flush=True)


def checkpoint_parts(config: TrainConfig) -> tuple[str, ...]:
    """What a resume of this run needs from a checkpoint: weights and state always, the optimizer
    state unless the policy is frozen, the bank snapshot when memory evolves, the EMA teacher."""
    return ckpt.required_parts(
        training_state=not config.policy.frozen,
        bank=config.uses_memory and config.memory.mode != "frozen",
        teacher=config.uses_teacher and config.teacher.update == "ema" and not config.policy.frozen)


def _choose_start(config: TrainConfig, run_dir: Path, resume: bool) -> Path | None:
    """Rank 0: the checkpoint to resume from (None: step 0). Writes nothing but what it discards:
    the leftovers of a run killed before its first checkpoint, which cannot be continued."""
    checkpoint, skipped = ckpt.select_checkpoint(run_dir, checkpoint_parts(config))
    published = ckpt.step_folders(run_dir)
    if not resume and published:
        raise ValueError(f"{run_dir} already holds a run; pass --resume to continue it or choose another run.name")
    if resume and checkpoint is None and published:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped)
        raise ValueError(f"--resume: no intact checkpoint under {run_dir}/checkpoints ({reasons}); "
                         "move the damaged checkpoints away to start the run over")
    if checkpoint is not None:
        for name, why in skipped:
            notice(f"{name} is damaged ({why}): not used")
        notice(f"resuming from {checkpoint.name}")
        return checkpoint
    discarded = ckpt.discard_partial_run(run_dir)
    if discarded:
        notice(f"{run_dir} holds no checkpoint yet (stopped before its first one): discarded "
               f"{', '.join(discarded)}; starting from step 0")
    elif resume:
        notice(f"nothing to resume under {run_dir}: starting from step 0")
    return None


def prepare_run_dir(config: TrainConfig, *, resume: bool, is_main: bool) -> tuple[Path, Path | None]:
    """``(results/<run>/, checkpoint to resume from or None)``. An existing run is never
    overwritten, and nothing of it is rewritten here: a resumed run's files change only once its
    checkpoint has been restored (``restore_checkpoint``). Rank 0 decides; every rank gets the
    answer (or the same error)."""
    run_dir = Path(config.run.output_dir) / config.run.name
    decision: list = [None, None]
    if is_main:
        try:
            decision[0] = _choose_start(config, run_dir, resume)
            if decision[0] is None:
                run_dir.mkdir(parents=True, exist_ok=True)
                save_yaml(config, run_dir / "config.yaml")
        except (ValueError, OSError) as err:
            decision[1] = err
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.broadcast_object_list(decision, src=0)
    if decision[1] is not None:
        raise decision[1]
    return run_dir, decision[0]


def data_path(config: TrainConfig) -> Path | None:
    return Path(config.data.path) if config.data.path else None


def unwrap(model):
    """The Hugging Face module inside a DeepSpeed engine (or the module itself)."""
    return getattr(model, "module", model)


def build_models(config: TrainConfig, ds_cfg: dict):
    """(tokenizer, student, teacher, reference). The student is a DeepSpeed engine unless the
    policy is frozen; the teacher is an EMA copy, the live student, or None (GRPO); the reference
    model exists only for GRPO with a KL term."""
    from transformers import AutoTokenizer

    from trainer.engine import build_engine, build_inference_engine, enable_activation_checkpointing, load_model

    tokenizer = AutoTokenizer.from_pretrained(config.model.name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_model(config.model.name_or_path, ds_cfg, config.model.dtype)
    if config.model.gradient_checkpointing and not config.policy.frozen:
        enable_activation_checkpointing(model)  # the teacher and reference need no gradient: no checkpointing
    student = build_inference_engine(model, ds_cfg) if config.policy.frozen else build_engine(model, ds_cfg)
    teacher = reference = None
    if config.uses_teacher:
        if config.teacher.update == "ema" and not config.policy.frozen:
            teacher = build_inference_engine(load_model(config.model.name_or_path, ds_cfg, config.model.dtype), ds_cfg)
        else:
            teacher = student  # the live student, scored without gradient
    elif config.loss.kl_coef > 0:
        reference = build_inference_engine(load_model(config.model.name_or_path, ds_cfg, config.model.dtype), ds_cfg)
    return tokenizer, student, teacher, reference


def build_rollout_engine(config: TrainConfig, tokenizer):
    """The colocated vLLM engine for ``rollout.engine: vllm`` (on this rank's device), else None."""
    if config.rollout.engine != "vllm":
        return None
    from trainer.vllm_engine import VLLMEngine

    return VLLMEngine(config.model.name_or_path, dtype=config.model.dtype, seed=config.run.seed,
                      max_model_len=config.rollout.max_model_len, max_num_seqs=config.sampling.generation_batch_size,
                      gpu_memory_utilization=config.rollout.gpu_memory_utilization, tokenizer=tokenizer)


def open_memory(config: TrainConfig, run_dir: Path):
    """(bank, retriever) for PMD runs, (None, None) otherwise. Frozen memory is read-only."""
    if not config.uses_memory:
        return None, None
    from memory_bank import MemoryBank
    from memory_bank.embedding import CachingEmbedder, load_embedder
    from memory_bank.retrieval import BankRetriever

    embedder = CachingEmbedder(load_embedder(config.memory.retrieval.embedding_model))
    if config.memory.mode == "frozen":
        bank = MemoryBank.open(config.memory.bank, readonly=True, limits=config.memory.limits)
    else:
        bank = MemoryBank.open(run_dir / "memory.db", create=True, limits=config.memory.limits, embedder=embedder)
        bank.register_run(config.run.name, config.model.name_or_path, config.data.task)
    return bank, BankRetriever(bank, config.memory.retrieval, embedder=embedder)


def build_reflector(config: TrainConfig, policy, tokenizer, *, collective: bool = False):
    """The reflector rank 0 uses. ``collective``: the policy is partitioned over several ranks
    (ZeRO-3), so its generation requests are broadcast and served by every rank."""
    from trainer.collective import CollectiveReflector
    from trainer.reflectors import EndpointReflector, LocalModelReflector, PolicyReflector

    source = config.reflection
    if source.source == "policy":
        reflector = PolicyReflector(policy, tokenizer, temperature=source.temperature, seed=config.run.seed,
                                    synced_gpus=collective)
        return CollectiveReflector(reflector) if collective else reflector
    if source.source == "model":
        return LocalModelReflector.from_pretrained(source.model, temperature=source.temperature, seed=config.run.seed)
    return EndpointReflector(source.base_url, source.model, api_key=os.environ.get(source.api_key_env),
                             retries=source.retries)


# ----------------------------------------------------------------- cross-rank plumbing
def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def gather_samples(samples: list[Sample], dist) -> list[Sample]:
    """Every rank's samples on every rank (rank 0 needs them all for memory), in rank order."""
    if dist.world_size == 1:
        return list(samples)
    shards: list = [None] * dist.world_size
    torch.distributed.all_gather_object(shards, samples)
    return [s for shard in shards for s in shard]


def attach_contexts(samples: list[Sample], contexts, dist, tokenizer) -> None:
    """Give each local sample its teacher prompt ids and m_i, from rank 0's contexts."""
    if dist.world_size > 1:
        box = [contexts]
        torch.distributed.broadcast_object_list(box, src=0)
        contexts = box[0]
    if contexts is None:
        return
    # Rank r's samples follow ranks 0..r-1 in the gathered order.
    sizes = [len(samples)] * dist.world_size
    start = sum(sizes[:dist.rank])
    for sample, context in zip(samples, contexts[start:start + len(samples)]):
        sample.teacher_prompt_ids = chat_ids(tokenizer, context.messages)
        sample.has_signal = context.has_signal


# ----------------------------------------------------------------- memory updates
def reflect_and_store(bank, reflector, groups, config: TrainConfig, step: int) -> dict:
    from trainer.reflection import reflect, write_insights

    result = reflect(reflector, groups, step=step, run_id=config.run.name, model_name=config.model.name_or_path,
                     max_new_tokens=config.reflection.max_new_tokens, max_per_kind=config.reflection.max_per_kind)
    written = write_insights(bank, result.insights)
    return {"reflection/insights": written, "reflection/requests": result.requests,
            "reflection/failed_requests": result.failed_requests, "reflection/unparsed": result.parsed_empty,
            "reflection/copies_dropped": result.copies_dropped}


def behaviors_due(config: TrainConfig, step: int) -> bool:
    memory = config.memory
    return step + 1 >= memory.behavior_warmup and (step + 1) % memory.behavior_every == 0


def abstract_behaviors(bank, reflector, embedder, config: TrainConfig, step: int) -> dict:
    from trainer.behaviors import update_behaviors

    update = update_behaviors(bank, reflector, embedder, step=step, run_id=config.run.name,
                              model_name=config.model.name_or_path, max_new_tokens=config.reflection.max_new_tokens,
                              seed=config.run.seed)
    return {"behaviors/clusters": len(update.clusters), "behaviors/written": update.behaviors_written,
            "behaviors/failed_requests": update.failed_requests}


# ----------------------------------------------------------------- metrics and validation
TEACHER_EXAMPLES = "teacher_examples.jsonl"


def log_teacher_example(run_dir: Path, step: int, samples: list[Sample], contexts) -> None:
    """One teacher prompt per step into ``teacher_examples.jsonl``, so a person can read what the
    teacher saw: the first context holding memory (else the first with any signal), its sections
    and the prompt text itself."""
    chosen = next((p for p in zip(samples, contexts) if p[1].has_memory), None) \
        or next((p for p in zip(samples, contexts) if p[1].has_signal), None)
    if chosen is None:
        return
    sample, context = chosen
    row = {"step": step + 1, "question_id": sample.question_id, "reward": sample.reward,
           "included": context.included, "tokens": context.tokens, "prompt": context.messages[-1]["content"]}
    with open(run_dir / TEACHER_EXAMPLES, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def metrics_writer(config: TrainConfig, run_dir: Path):
    """metrics.jsonl, with TensorBoard (``logging.tensorboard``) and W&B (``logging.wandb.project``)."""
    from pmd.config import to_dict
    from trainer.metrics import MetricsWriter, WandbSink

    sinks = []
    if config.logging.wandb.project:
        sinks.append(WandbSink(config.logging.wandb, run_dir, config.run.name, to_dict(config)))
    return MetricsWriter(run_dir / "metrics.jsonl", run_dir / "tensorboard" if config.logging.tensorboard else None,
                         sinks=tuple(sinks))


def step_metrics(samples: list[Sample], loss_stats: list[dict], memory_stats: dict, bank) -> dict:
    rewards = [s.reward for s in samples]
    out = {
        "reward/mean": statistics.fmean(rewards),
        "accuracy": statistics.fmean(float(s.passed) for s in samples),
        "tokens/response_mean": statistics.fmean(len(s.response_ids) for s in samples),
        "tokens/total": sum(len(s.response_ids) for s in samples),
    }
    for key in sorted({k for row in loss_stats for k in row}):
        values = [row[key] for row in loss_stats if isinstance(row.get(key), (int, float))]
        if values:
            out[key if key == "loss" else f"loss/{key}"] = statistics.fmean(values)
    out.update(memory_stats)
    if bank is not None:
        out.update({f"memory/{level}": n for level, n in bank.counts().items() if level in ("experience", "insight", "behavior")})
    return out


def validate(policy, tokenizer, task, test_items, config: TrainConfig, sampling, dist, synced_gpus: bool = False) -> dict:
    """Accuracy of one memory-free sample per held-out question (rank 0's share is all of it on
    one process; with several, each rank scores a slice and the means are averaged)."""
    chosen = test_items[: config.logging.validation_questions or len(test_items)]
    chosen = chosen[: max(dist.world_size, len(chosen) - len(chosen) % dist.world_size)]  # equal shares
    mine = chosen[dist.rank::dist.world_size]
    prompts = [chat_ids(tokenizer, item.messages()) for item in mine]
    groups = generate_rollouts(policy, tokenizer, prompts, 1, sampling, seed=config.run.seed + 7, synced_gpus=synced_gpus)
    passed = [task.score(group[0].text, item).passed for item, group in zip(mine, groups)]
    total = torch.tensor([float(sum(passed)), float(len(passed))])
    if dist.world_size > 1:
        torch.distributed.all_reduce(total)
    return {"validation/accuracy": float(total[0] / max(total[1], 1.0))}


# ----------------------------------------------------------------- checkpoints
def save_checkpoint(config: TrainConfig, run_dir: Path, step: int, student, teacher, tokenizer, bank, dist) -> None:
    """Write and publish the checkpoint of ``step`` (collective). A failed write leaves the
    previous checkpoints as they were and removes its own partial folder; a full or read-only disk
    becomes one ``StorageError`` line saying so."""
    tmp = ckpt.staging_path(run_dir, step)
    try:
        _write_checkpoint(config, run_dir, tmp, step, student, teacher, tokenizer, bank, dist)
    except Exception as err:
        problem = storage_problem(tmp.parent if tmp.parent.exists() else run_dir, err)
        if dist.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        if problem is None:
            raise
        previous = ckpt.latest_checkpoint(run_dir, checkpoint_parts(config))
        kept = f"{previous.name} is intact" if previous is not None else "no earlier checkpoint exists"
        raise StorageError(f"checkpoint step-{step:06d} could not be written under {run_dir}: {problem}; {kept}. "
                           "Free space or make the folder writable, then run again with --resume") from None
    _barrier()


def _write_checkpoint(config: TrainConfig, run_dir: Path, tmp: Path, step: int, student, teacher, tokenizer,
                      bank, dist) -> None:
    from trainer.engine import save_hf_checkpoint, save_training_state

    if dist.rank == 0:
        ckpt.staging_dir(run_dir, step)
    _barrier()
    save_hf_checkpoint(student, tokenizer, tmp / "hf")
    if not config.policy.frozen:
        save_training_state(student, tmp / "ds")
    separate_teacher = teacher is not None and teacher is not student
    if separate_teacher:
        if dist.rank == 0:
            (tmp / "teacher").mkdir(exist_ok=True)
        _barrier()
        ckpt.save_module_weights(unwrap(teacher), tmp / "teacher" / "model.safetensors")
    _barrier()  # every rank's shards are on disk before rank 0 lists them in the manifest
    if dist.rank == 0:
        if bank is not None and bank.path is not None and not bank.readonly:
            from memory_bank.transfer import export_bank

            export_bank(bank, tmp / "memory.db", task=config.data.task, source_model=config.model.name_or_path)
        ckpt.write_state(tmp, {"step": step, "seed": config.run.seed, "algorithm": config.algorithm})
        ckpt.publish(run_dir, tmp, step, config.checkpoint.keep_last, checkpoint_parts(config))


def restore_checkpoint(config: TrainConfig, run_dir: Path, checkpoint: Path, student, teacher) -> int:
    """Resume from ``checkpoint``: the engines' state first (it only reads), then, once that has
    worked, the run's files: the bank from the checkpoint's snapshot, metrics.jsonl cut to its
    step, the resolved config and ``resumed_from.json``. Returns the step (on every rank)."""
    from trainer.engine import load_training_state

    state = ckpt.read_state(checkpoint)
    try:
        if not config.policy.frozen:
            load_training_state(student, checkpoint / "ds")
        if teacher is not None and teacher is not student and (checkpoint / "teacher" / "model.safetensors").exists():
            ckpt.load_module_weights(unwrap(teacher), checkpoint / "teacher" / "model.safetensors")
    except Exception as err:  # noqa: BLE001 - whatever DeepSpeed raises, the run folder is untouched
        reason = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
        raise ValueError(f"cannot restore {checkpoint}: {type(err).__name__}: {reason} (nothing under {run_dir} "
                         "was changed; a resume needs the same world size and ZeRO stage as the run)") from None
    if torch.distributed.get_rank() == 0:
        if config.uses_memory and config.memory.mode != "frozen":
            ckpt.restore_bank(checkpoint, run_dir / "memory.db")
        ckpt.truncate_step_log(run_dir / "metrics.jsonl", state["step"])
        ckpt.truncate_step_log(run_dir / TEACHER_EXAMPLES, state["step"])
        save_yaml(config, run_dir / "config.yaml")
        (run_dir / "resumed_from.json").write_text(json.dumps({"checkpoint": checkpoint.name, **state}), encoding="utf-8")
    _barrier()
    return int(state["step"])
