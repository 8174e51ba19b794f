"""The training loop: policy-memory co-evolution, read top to bottom (DESIGN.md convention 3).

Each step: rollout -> verify -> experience memory -> reflection -> behaviors (every K steps) ->
teacher context -> loss -> optimizer step -> EMA teacher update -> weight sync into the rollout
engine (vLLM) -> metrics -> checkpoint.
GRPO skips memory and teacher; SDPO keeps only the in-batch teacher context; the ablations are
configuration (see ``trainer.config``). Memory work happens once, on rank 0, and the teacher
contexts it produces are broadcast to every rank.
"""
from __future__ import annotations

import random
from contextlib import nullcontext

import torch
from tqdm import tqdm

from tasks.registry import get_task
from trainer import components
from trainer.config import TrainConfig
from trainer.collective import serve_generation
from trainer.engine import (
    ds_config, ema_update, gather_for_generation, init_distributed, is_zero3, shutdown_distributed,
    zero3_loading_disabled,
)
from trainer.losses.grpo import group_advantages
from trainer.memory_step import MemoryView, attempt_groups, record_experiences, teacher_contexts
from trainer.metrics import PhaseTimer
from trainer.reflectors import PolicyReflector
from trainer.rollout import SamplingConfig, chat_ids, generate_rollouts
from trainer.objective import step_denominator, train_micro_batch
from trainer.packing import rank_micro_batches
from trainer.sequences import Sample
from trainer.teacher_context import chat_token_counter


def question_order(n_items: int, seed: int, epoch: int) -> list[int]:
    """The data order of one epoch: a seeded shuffle, identical after a resume."""
    order = list(range(n_items))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return order


def batch_indices(n_items: int, per_step: int, seed: int, step: int) -> list[int]:
    """Question indices of ``step``: consecutive slices of the epoch orders, wrapping epochs."""
    start = step * per_step
    out = []
    while len(out) < per_step:
        epoch, offset = divmod(start + len(out), n_items)
        out.append(question_order(n_items, seed, epoch)[offset])
    return out


def train(config: TrainConfig, *, resume: bool = False) -> dict:
    """Run (or resume) the configured training; returns the last step's metrics."""
    init_distributed()
    try:
        last = co_evolve(config, resume=resume)
    except BaseException:
        # A process group left open aborts the interpreter at exit ("terminate called without an
        # active exception"), which would turn a clean one-line error into a crash.
        shutdown_distributed(barrier=False)
        raise
    shutdown_distributed()
    return last


def co_evolve(config: TrainConfig, *, resume: bool) -> dict:
    """The policy-memory co-evolution loop (or a baseline's), from set-up to the last checkpoint."""
    dist = init_distributed()
    main = dist.rank == 0
    run_dir, resume_from = components.prepare_run_dir(config, resume=resume, is_main=main)
    task = get_task(config.data.task)
    data_path = components.data_path(config)
    train_items = task.split(data_path, "train")
    test_items = task.split(data_path, "test")
    items = {item.question_id: item for item in train_items + test_items}
    if config.data.questions_per_step % dist.world_size:
        raise ValueError(f"data.questions_per_step ({config.data.questions_per_step}) must divide evenly "
                         f"over {dist.world_size} processes")
    deepspeed_cfg = ds_config(
        zero_stage=config.deepspeed.zero_stage, micro_batch_size=config.loss.micro_batch_size,
        lr=config.optim.lr, weight_decay=config.optim.weight_decay, grad_clip=config.optim.grad_clip,
        dtype=config.model.dtype, offload_optimizer=config.deepspeed.offload_optimizer,
        offload_params=config.deepspeed.offload_params, caller_owns_accumulation=True,
    )
    tokenizer, student, teacher, reference = components.build_models(config, deepspeed_cfg)
    policy = components.unwrap(student)
    start_step = 0
    if resume_from is not None:  # the engines' state, then the bank snapshot and metrics
        start_step = components.restore_checkpoint(config, run_dir, resume_from, student, teacher)
    # The generator of rollouts, policy reflections and validation answers: the student itself
    # (HF generate) or a colocated vLLM engine holding a copy of its weights, synced every step.
    engine = components.build_rollout_engine(config, tokenizer)
    generator = engine if engine is not None else policy
    # Rank 0 alone loads the embedder (and a reflector model): keep ZeRO-3 from partitioning them,
    # which would wait forever on ranks that never load them.
    # Under ZeRO-3 over several processes every HF forward is a collective: all ranks generate in
    # lockstep (synced_gpus), including the policy's reflections that rank 0 asks for.
    lockstep = engine is None and is_zero3(policy) and dist.world_size > 1
    generation = (lambda: nullcontext()) if lockstep or engine is not None else (lambda: gather_for_generation(student))
    policy_reflects = config.uses_memory and config.memory.mode != "frozen" and config.reflection.source == "policy"
    with zero3_loading_disabled():
        bank, retriever = components.open_memory(config, run_dir) if main else (None, None)
        reflector = components.build_reflector(config, generator, tokenizer, collective=lockstep) \
            if main and config.uses_memory else None
    mirror = PolicyReflector(policy, tokenizer, temperature=config.reflection.temperature, seed=config.run.seed,
                             synced_gpus=True) if lockstep and policy_reflects and not main else None
    embedder = retriever.embedder if retriever is not None else None
    steps_per_epoch = max(1, len(train_items) // config.data.questions_per_step)
    total_steps = config.data.max_steps or steps_per_epoch * config.data.epochs
    metrics = components.metrics_writer(config, run_dir) if main else None
    sampling = SamplingConfig(max_new_tokens=config.data.max_response_tokens, temperature=config.sampling.temperature,
                              top_p=config.sampling.top_p, batch_size=config.sampling.generation_batch_size)
    count_tokens = chat_token_counter(tokenizer)
    last: dict = {}
    progress = tqdm(range(start_step, total_steps), desc=f"{config.algorithm} {config.run.name}", disable=not main,
                    initial=start_step, total=total_steps)
    for step in progress:
        timer = PhaseTimer()
        batch = [train_items[i] for i in batch_indices(len(train_items), config.data.questions_per_step, config.run.seed, step)]
        mine = batch[dist.rank::dist.world_size]

        # 1. Rollout: J samples per question from the memory-free student.
        with timer("rollout"), generation():
            prompts = [chat_ids(tokenizer, item.messages())[-config.data.max_prompt_tokens:] for item in mine]
            # One seed per question of the step (not per process): the same samples on 1 or N processes.
            seeds = [config.run.seed * 1_000_003 + step * 101 + dist.rank + j * dist.world_size for j in range(len(mine))]
            groups = generate_rollouts(generator, tokenizer, prompts, config.data.samples_per_question, sampling,
                                       seed=seeds[0], synced_gpus=lockstep, prompt_seeds=seeds)
        samples = [Sample(item.question_id, g, prompt, list(r.response_ids), r.text,
                          rollout_logprobs=None if r.logprobs is None else list(r.logprobs))
                   for g, (item, prompt, group) in enumerate(zip(mine, prompts, groups)) for r in group]

        # 2. Verify: the task's own scorer gives reward and feedback.
        with timer("verify"):
            for sample in samples:
                verdict = task.reward(sample.text, items[sample.question_id])
                sample.reward, sample.passed, sample.feedback = verdict.reward, verdict.passed, verdict.feedback
        everyone = components.gather_samples(samples, dist)

        # 3-5. Memory (rank 0): experiences, reflection into insights, behaviors every K steps.
        memory_stats: dict = {}
        if main and bank is not None and config.memory.mode != "frozen":
            with timer("memory"):
                record_experiences(bank, everyone, items, step=step, run_id=config.run.name, model_name=config.model.name_or_path)
        with timer("reflection"), (generation() if policy_reflects else nullcontext()):
            for seeded in (reflector, mirror):  # this step's sampling seeds, the same after a resume
                if hasattr(seeded, "at_step"):
                    seeded.at_step(step)
            if main and reflector is not None and config.memory.mode != "frozen":
                memory_stats.update(components.reflect_and_store(bank, reflector, attempt_groups(everyone, items), config, step))
                if components.behaviors_due(config, step):
                    memory_stats.update(components.abstract_behaviors(bank, reflector, embedder, config, step))
            if lockstep and policy_reflects:  # the other ranks serve rank 0's generation requests
                if main:
                    reflector.finish()
                else:
                    serve_generation(mirror)

        # 6. Teacher context (rank 0 builds, every rank receives its own samples' contexts).
        with timer("teacher_context"):
            contexts = None
            if main and config.uses_teacher:
                view = MemoryView(bank, retriever, config, step)
                contexts = teacher_contexts(everyone, items, view, config, count_tokens)
                memory_stats["memory/retrieval_hits"] = view.hits
                memory_stats["teacher/context_tokens"] = sum(c.tokens for c in contexts) / max(1, len(contexts))
                memory_stats["teacher/with_signal"] = sum(c.has_signal for c in contexts) / max(1, len(contexts))
                memory_stats["teacher/with_memory"] = sum(c.has_memory for c in contexts) / max(1, len(contexts))
                components.log_teacher_example(run_dir, step, everyone, contexts)
            components.attach_contexts(samples, contexts, dist, tokenizer)

        # 7-8. Loss and one optimizer step (skipped for a frozen policy), then the EMA teacher update.
        # Micro batches are packed by token count; the gradient is one mean over the whole step
        # (trainer.objective), however the step is split over micro batches and processes.
        loss_stats = []
        advantages = group_advantages(torch.tensor([s.reward for s in samples]), config.data.samples_per_question) \
            if config.algorithm == "grpo" else None
        with timer("loss"):
            if engine is not None:
                engine.sleep()  # CUDA: the engine's memory goes back to the trainer until the next generation
            denominator = step_denominator(samples, config.algorithm, dist.world_size)
            # A micro batch's cost is its longest sequence, the student's or the teacher's (whose
            # prompt carries the context): both forwards must fit the token budget.
            lengths = [max(len(s.prompt_ids), len(s.teacher_prompt_ids or ())) + len(s.response_ids) for s in samples]
            for chunk_ids in rank_micro_batches(lengths, config.loss.micro_batch_size,
                                                config.loss.max_tokens_per_micro_batch, dist.world_size):
                with torch.set_grad_enabled(not config.policy.frozen):
                    loss_stats.append(train_micro_batch(
                        student, teacher, reference, [samples[i] for i in chunk_ids],
                        None if advantages is None else advantages[chunk_ids], algorithm=config.algorithm,
                        loss=config.loss, pad_id=tokenizer.pad_token_id, denominator=denominator,
                        world_size=dist.world_size, update=not config.policy.frozen,
                        temperature=config.sampling.temperature))  # forward + backward
            if not config.policy.frozen:
                student.step()
        with timer("ema"):
            if config.uses_teacher and config.teacher.update == "ema" and not config.policy.frozen:
                ema_update(components.unwrap(teacher), policy, config.teacher.ema_rate)

        with timer("weight_sync"):  # the next rollouts come from the updated policy
            if engine is not None and not config.policy.frozen:
                engine.sync_weights(student)

        with timer("memory"):
            if main and bank is not None and config.memory.mode == "transient":
                bank.clear(["experience", "insight", "behavior"])

        # 9. Metrics and validation.
        last = components.step_metrics(everyone, loss_stats, memory_stats, bank)
        if config.logging.validate_every and (step + 1) % config.logging.validate_every == 0:
            with timer("validation"), generation():
                last.update(components.validate(generator, tokenizer, task, test_items, config, sampling, dist, lockstep))
        last.update(timer.as_metrics())
        if main:
            metrics.write(step + 1, last)
            progress.set_postfix(reward=f"{last['reward/mean']:.3f}", loss=f"{last.get('loss', 0.0):.4f}")

        # 10. Checkpoint: HF weights, DeepSpeed state and a bank snapshot for the same step.
        if (step + 1) % config.checkpoint.every == 0 or step + 1 == total_steps:
            components.save_checkpoint(config, run_dir, step + 1, student, teacher, tokenizer, bank, dist)

    if main:
        metrics.close()
        if bank is not None:
            bank.close()
    if engine is not None:
        engine.close()  # before the process group goes (vLLM's own teardown uses it)
    return last

