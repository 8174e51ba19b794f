"""TRL's SDPO trainer on the benchmark's spec, in its own process (``benchmarks/train_step.py``
starts it): per-step wall time from a ``TrainerCallback`` plus a phase split; writes JSON timings.

    python benchmarks/trl_sdpo_worker.py SPEC.json
"""
from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def trl_worker(spec_path: Path) -> None:
    """Runs inside its own process: TRL SDPO on the spec's settings; writes per-step timings."""
    spec = json.loads(spec_path.read_text())
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl.experimental.sdpo import SDPOConfig, SDPOTrainer

    from tasks.registry import get_task
    from tasks.sciknoweval.verifier import verify_choice

    items = get_task("demo_mcq").split(None, "train")
    dataset = Dataset.from_list([{"prompt": item.messages(), "answer": item.answer, "letters": list(item.letters),
                                  "question_id": item.question_id} for item in items])
    feedback_box: dict = {}

    def mcq_reward(prompts, completions, answer, letters, **kwargs):
        """Our verifier as a TRL reward function; keeps each sample's feedback for the teacher."""
        rewards, feedback = [], []
        for completion, gold, options in zip(completions, answer, letters):
            text = completion[0]["content"] if isinstance(completion, list) else completion
            verdict = verify_choice(text, gold, list(options))
            rewards.append(verdict.reward)
            feedback.append(None if verdict.passed else verdict.feedback)
        feedback_box["last"] = feedback
        return rewards

    samples_per_step = spec["questions"] * spec["samples"]
    if samples_per_step % spec["micro_batch"]:
        raise SystemExit("questions * samples must be a multiple of the micro batch for TRL")
    config = SDPOConfig(
        output_dir=spec["output_dir"], max_steps=spec["warmup"] + spec["steps"], seed=0,
        per_device_train_batch_size=spec["micro_batch"],
        gradient_accumulation_steps=samples_per_step // spec["micro_batch"],
        num_generations=spec["samples"], max_prompt_length=spec["max_prompt_tokens"],
        max_completion_length=spec["max_response_tokens"], temperature=1.0, top_p=1.0, top_k=0,
        learning_rate=spec["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=1.0, optim="adamw_torch",
        bf16=False, fp16=False, gradient_checkpointing=spec.get("gradient_checkpointing", False), use_cpu=True,
        model_init_kwargs={"dtype": torch.float32},
        distillation_mode="topk_logits", distillation_topk=spec["top_k"], distillation_add_tail=True,
        distillation_alpha=spec["alpha"], distillation_is_clip=2.0, distillation_weight=1.0,
        teacher_model_kind="ema", teacher_update_rate=0.05, teacher_sync_steps=1,
        use_successful_as_teacher=True, success_reward_threshold=1.0, dont_reprompt_on_self_success=True,
        include_environment_feedback=True, remove_thinking_from_demonstration=True,
        max_reprompt_len=spec["max_prompt_tokens"],
        report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, dataloader_num_workers=0,
        use_vllm=False,
    )
    tokenizer = AutoTokenizer.from_pretrained(spec["model"], padding_side="left", truncation_side="left")
    trainer = SDPOTrainer(model=spec["model"], reward_funcs=[mcq_reward], args=config, train_dataset=dataset,
                          processing_class=tokenizer)

    # Per-sample verifier feedback: TRL reads `privileged_context` from the dataset row (one per
    # prompt); our trainer gives each sample the feedback on its own attempt. Hand the reward
    # function's per-sample feedback to the teacher-context builder so both teachers see the same.
    phases: dict[str, float] = {}
    marks: dict[str, float] = {}
    prompt_lengths: list[float] = []

    def timed(phase, fn):
        def wrapper(*a, **kw):
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - start
        return wrapper

    builder = trainer.teacher_context_builder
    original_build = builder.build

    def build_with_feedback(output, prompts, rewards, feedbacks=None):
        out = original_build(output, prompts, rewards, feedbacks=feedback_box.pop("last", feedbacks))
        width = out["teacher_input_ids"].shape[1] - output["completion_ids"].shape[1]
        prompt_lengths.append(float(out["teacher_input_ids"][:, :width].ne(tokenizer.pad_token_id).sum(1).float().mean()))
        return out

    builder.build = timed("teacher_context", build_with_feedback)
    trainer.sample_rollouts = timed("rollout", trainer.sample_rollouts)
    trainer._calculate_rewards = timed("verify", trainer._calculate_rewards)
    trainer._prepare_inputs = timed("prepare_inputs", trainer._prepare_inputs)
    original_training_step = trainer.training_step

    def training_step(*a, **kw):
        out = timed("training_step", original_training_step)(*a, **kw)
        marks["last_micro_end"] = time.perf_counter()
        return out

    trainer.training_step = training_step
    # The forward/backward split: student forward (with grad) and teacher forward (no_grad), both
    # through the LM head on the completion (`_forward_logits`, `logits_to_keep`); the top-K
    # divergence on those logits; `accelerator.backward` (through the LM head and the layers).
    original_forward = trainer._forward_logits

    def forward_logits(*a, **kw):
        label = "loss:student_forward" if torch.is_grad_enabled() else "loss:teacher_forward"
        return timed(label, original_forward)(*a, **kw)

    trainer._forward_logits = forward_logits
    trainer._compute_self_distillation_loss = timed("loss:head_and_divergence",
                                                    trainer._compute_self_distillation_loss)
    trainer.accelerator.backward = timed("loss:backward", trainer.accelerator.backward)
    for callback in trainer.callback_handler.callbacks:
        if type(callback).__name__ == "SyncTeacherModelCallback":
            callback.on_step_end = timed("ema", callback.on_step_end)
    records: list[dict] = []

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            phases.clear()
            marks.clear()
            marks["begin"] = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kwargs):
            marks["optimizer_end"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            end = time.perf_counter()  # runs after SyncTeacherModelCallback (added later): EMA included
            step_s = end - marks["begin"]
            prep = phases.get("prepare_inputs", 0.0)
            p = {
                "rollout": phases.get("rollout", 0.0),
                "verify": phases.get("verify", 0.0),
                "teacher_context": phases.get("teacher_context", 0.0),
                "prepare_other": prep - phases.get("rollout", 0.0) - phases.get("verify", 0.0)
                - phases.get("teacher_context", 0.0),
                "forward_backward": phases.get("training_step", 0.0) - prep,
                "clip_optimizer": marks["optimizer_end"] - marks["last_micro_end"],
                "ema": phases.get("ema", 0.0),
            }
            p["other"] = step_s - sum(p.values())
            # Inside forward_backward / clip_optimizer (not added to the step a second time).
            p.update({k: v for k, v in phases.items() if k.startswith("loss:")})
            p["loss:optimizer_step"] = p["clip_optimizer"]
            records.append({"step": state.global_step, "step_s": step_s, "phases": p})

    trainer.add_callback(StepClock())  # after the EMA callback, so its on_step_end runs last
    trainer.train()
    logged = [row for row in trainer.state.log_history if "completions/mean_length" in row][spec["warmup"]:]

    def logged_mean(key):
        values = [row[key] for row in logged if key in row]
        return statistics.fmean(values) if values else None

    info = {"trl_version": __import__("trl").__version__, "torch_threads": torch.get_num_threads(),
            "peak_rss_gib_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "response_tokens_mean": logged_mean("completions/mean_length"),
            "reward_mean": logged_mean("self_distillation/reward_mean"),
            "reprompt_sample_fraction": logged_mean("self_distillation/reprompt_sample_fraction"),
            "feedback_used_fraction": logged_mean("self_distillation/feedback_used_fraction"),
            "teacher_prompt_tokens_mean": statistics.fmean(prompt_lengths) if prompt_lengths else None,
            "student_prompt_tokens_mean": statistics.fmean(
                len(ids) for ids in trainer._tokenize_prompts([row["prompt"] for row in dataset]))}
    Path(spec["result"]).write_text(json.dumps({"steps": records, "info": info}))


if __name__ == "__main__":
    trl_worker(Path(sys.argv[1]))
