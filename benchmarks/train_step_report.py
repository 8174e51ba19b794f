"""The Markdown reports of ``benchmarks/train_step.py``: the tiny-model report (``write_report``) and
the real-shape report (``write_shape_report``, ``--shape``), rendered from a run's summary."""

from __future__ import annotations

import statistics
from pathlib import Path


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f}"


# Table rows: (label, phase). TRL's `loss` is its forward/backward plus clipping and optimizer step
# (ours times those together); its `other` is decoding, advantages, metrics and the remainder.
TABLE = [("rollout (generation)", "rollout"), ("verify (reward)", "verify"),
         ("memory: experience writes", "memory"), ("reflection + behaviors (endpoint)", "reflection"),
         ("  of which endpoint requests (generation)", "reflection_generation"),
         ("teacher context (PMD: + retrieval)", "teacher_context"), ("loss: fwd + bwd + optimizer", "loss"),
         ("EMA teacher update", "ema"), ("other (TRL: decode, advantages, metrics)", "other")]
APPLIES = {"grpo": {"rollout", "verify", "loss"}, "sdpo": {"rollout", "verify", "teacher_context", "loss", "ema"},
           "pmd": {p for _, p in TABLE} - {"other"}, "trl_sdpo": {"rollout", "verify", "teacher_context", "loss", "ema", "other"}}


TINY_COLUMNS = ("grpo", "sdpo", "pmd", "trl_sdpo")


def table_phases(name: str, phases: dict) -> dict:
    if name != "trl_sdpo":
        return phases
    return {**phases, "loss": phases.get("forward_backward", 0.0) + phases.get("clip_optimizer", 0.0),
            "other": phases.get("prepare_other", 0.0) + phases.get("other", 0.0)}


def write_report(args, s: dict, result: dict, machine: dict, out: Path, loads: list) -> None:
    t, info = result["targets"], s.get("trl_sdpo", {}).get("info", {})
    trl = s.get("trl_sdpo", {}).get("phases_mean_s", {})
    n_step = args.questions * args.samples
    threads = info.get("torch_threads") or args.threads or machine["torch_threads"]
    lines = [
        "# Training-step benchmark: GRPO, SDPO, PMD and TRL's SDPO trainer", "",
        f"Machine: {machine['cpu']} ({machine['machine']}), {machine['cores']} cores shared with other jobs "
        f"(load average {loads[0]:.2f} before, {loads[-1]:.2f} after), torch {machine['torch']} ({threads} threads "
        f"per training process{', set by --threads' if args.threads else ''}), transformers "
        f"{machine['transformers']}, deepspeed {machine['deepspeed']}, TRL {machine['trl']}, Python {machine['python']}.",
        "", f"Command: `{' '.join(['.venv/bin/python', 'benchmarks/train_step.py', *result['argv']])}` "
        f"(total {result['total_wall_s']:.0f} s).", "", "## Settings (shared by every run)", "",
        f"- Model `{args.model_size}` from `pmd.tiny_model.build_tiny_models` (random-weight Qwen3, float32, CPU); "
        "task `demo_mcq` train split (48 questions, the same chat messages for both trainers).",
        f"- {args.questions} questions x {args.samples} samples = {n_step} rollouts a step, max response "
        f"{args.max_response_tokens} tokens, max prompt {args.max_prompt_tokens}, T = 1.0, top-p 1.0, one generation "
        f"batch of {n_step}; micro batch {args.micro_batch} ({n_step // args.micro_batch} micro batches, one "
        "optimizer step a step).",
        f"- AdamW (torch), lr {args.lr:g} constant, no weight decay, grad clip 1.0; SDPO loss alpha {args.alpha}, "
        f"student top-{args.top_k} + tail bucket, IS clip 2.0; EMA teacher, rate 0.05, updated every step.",
        "- Ours: `pmd-train` (its entry point `trainer.cli.main`, one fresh process per run, started by a small "
        "launcher in this script that also logs the time spent in the reflector's `generate` calls) on "
        "`trainer/configs/demo_cpu.yaml` with `--set` overrides (listed in the JSON), DeepSpeed ZeRO stage "
        f"{args.zero_stage} (one process, gloo, CPU), `logging.validate_every=0`. PMD reflects through a scripted "
        "OpenAI-compatible endpoint on 127.0.0.1 (this script), so insights and behaviors fill the bank; "
        "behaviors every 2 steps after step 2 (demo config).",
        "- TRL: `trl.experimental.sdpo.SDPOTrainer`, HF `generate` (no vLLM), plain PyTorch + accelerate on CPU "
        "(no DeepSpeed), `distillation_mode=topk_logits`, `distillation_topk` and `distillation_alpha` as above, "
        "`distillation_add_tail=True`, `teacher_model_kind=ema`, `bf16=False`, `gradient_checkpointing=False` "
        "(both TRL defaults turned off to match ours), reward = our `tasks.sciknoweval.verifier.verify_choice`.",
        f"- {args.warmup} warm-up steps discarded per run, then {args.steps} measured steps; {args.repeats} "
        "repeat(s) of every run, interleaved (order rotates each repeat); means pool every measured step.",
        "", "## Time per step by phase (mean, ms)", "", "| phase | GRPO | SDPO | PMD | TRL SDPO |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, phase in TABLE:
        cells = [ms(table_phases(n, s[n]["phases_mean_s"]).get(phase, 0.0)) if n in s and phase in APPLIES[n]
                 else "–" for n in TINY_COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for label, cell in [
            ("**step**", lambda v: f"**{ms(v['step_mean_s'])}**"),
            ("step median ± stdev", lambda v: f"{ms(v['step_median_s'])} ± {ms(v['step_stdev_s'])}"),
            ("step mean per repeat", lambda v: "/".join(ms(x) for x in v["per_repeat_step_mean_s"])),
            ("measured steps", lambda v: str(v["measured_steps"]))]:
        lines.append(f"| {label} | " + " | ".join(cell(s[n]) if n in s else "–" for n in TINY_COLUMNS) + " |")
    lines += ["", "## Targets", ""]
    if "sdpo_ratio_ours_over_trl" in t:
        lines.append(
            f"- **SDPO ours / TRL = {t['sdpo_ratio_ours_over_trl']:.2f}** (medians: {t['sdpo_ratio_median']:.2f}; "
            f"per repeat: {', '.join(f'{r:.2f}' for r in t['sdpo_ratio_per_repeat'])}) -> target (<= 1.00) "
            f"{'met' if t['sdpo_target_met'] else 'NOT met'} on the pooled means. Compare the spread of the "
            "per-repeat ratios with the distance from 1.00 before reading much into a verdict within a few "
            "percent; the phase rows show where the two differ.")
    if "pmd_memory_work_fraction" in t:
        lines += [
            f"- **PMD memory work = {100 * t['pmd_memory_work_fraction']:.1f}% of the step** "
            f"({ms(t['pmd_memory_work_s'])} ms: experience writes + retrieval + teacher-context building) -> target "
            f"(< 15%) {'met' if t['pmd_memory_target_met'] else 'NOT met'}. Counting only what SDPO does not also "
            f"pay (its in-batch context building): {100 * t.get('pmd_memory_work_beyond_sdpo_fraction', float('nan')):.1f}%.",
            f"- Reflection, reported separately: {ms(t['pmd_reflection_s'])} ms a step "
            f"({100 * t['pmd_reflection_fraction']:.1f}% of the step), of which {ms(t['pmd_reflection_generation_s'])} "
            "ms inside the reflector's `generate` (HTTP round trips to the scripted endpoint, which answers "
            "instantly: a real reflection model adds its generation time here). The rest of the `reflection` phase "
            "is bank work that the loop times under `reflection`, not `memory`: reflection prompts and parsing, "
            "`write_insights` (near-duplicate checks and MiniLM embeddings of new insights) and, every second step, "
            "behavior abstraction (question embeddings, KMeans, behavior writes).",
            f"- Counting that bank work as memory work too (memory + teacher context + reflection minus its "
            f"generation): {ms(t['pmd_memory_work_incl_reflection_writes_s'])} ms = "
            f"**{100 * t['pmd_memory_work_incl_reflection_writes_fraction']:.1f}%** of the step."]
    if "pmd" in s:
        extra = s["pmd"]["last_step_extra"]
        lines.append(f"- PMD bank at the end of the last run: {extra.get('memory/experience', 0)} experiences, "
                     f"{extra.get('memory/insight', 0)} insights, {extra.get('memory/behavior', 0)} behaviors; "
                     f"retrieval hits per step {extra.get('memory/retrieval_hits', 0)} of {args.questions} questions.")
    ctx = ", ".join(f"{n.upper()} {s[n]['teacher_context_tokens_mean']:.0f}" for n in ("sdpo", "pmd")
                    if "teacher_context_tokens_mean" in s.get(n, {})) or "n/a"
    signal = ", ".join(f"{n.upper()} {s[n]['teacher_with_signal_mean']:.2f}" for n in ("sdpo", "pmd")
                       if "teacher_with_signal_mean" in s.get(n, {}))
    resp = [f"{n.upper()} {s[n]['response_tokens_mean']:.1f}" for n in ("grpo", "sdpo", "pmd") if n in s]
    resp += [f"TRL {info['response_tokens_mean']:.1f}"] if info.get("response_tokens_mean") is not None else []
    nan = float("nan")
    lines += [
        "", "## How the two setups differ (read before quoting the ratio)", "",
        "- **Step boundaries.** Ours: `time/step` is the sum of the timed phases in `trainer/loop.py`; a few ms of "
        "per-step bookkeeping (batch selection, sample gathering, metrics dict, bank counts, the JSONL write) fall "
        "outside it. TRL: wall clock from `on_step_begin` to `on_step_end` (our callback runs after TRL's EMA "
        "sync); its data loading (before `on_step_begin`) and logging (after `on_step_end`) fall outside it.",
        "- **Loss row.** Ours times forward, backward and the DeepSpeed optimizer step together under `loss`; for "
        "TRL the row is forward+backward plus gradient clipping and `optimizer.step()` (here "
        f"{ms(trl.get('forward_backward', 0.0))} + {ms(trl.get('clip_optimizer', 0.0))} ms).",
        f"- **Engine.** Ours wraps the student in a DeepSpeed engine (ZeRO stage {args.zero_stage}, torch AdamW via "
        "`torch_adam`), TRL uses accelerate with plain `torch.optim.AdamW`. Our forward computes logits for every "
        "prompt and response position, then gathers the response positions; TRL passes `logits_to_keep` so the "
        "LM head only runs on the completion.",
        "- **Teacher context.** TRL takes environment feedback from a dataset column (one string per prompt); ours "
        "gives each sample the verifier's feedback on its own attempt. To give TRL's teacher the same signal, the "
        "benchmark hands the reward function's per-sample feedback to TRL's "
        "`SuccessfulRolloutTeacherContextBuilder.build` (a wrapper, no TRL code changed), with "
        "`include_environment_feedback=True`. The templates differ (ours: system prompt, memory block, question, "
        "solution/feedback sections; TRL: its `reprompt_template`); mean teacher prompt tokens "
        f"{ctx} (ours) vs TRL {info.get('teacher_prompt_tokens_mean') or nan:.0f}; student prompt tokens (TRL's "
        f"tokenization) {info.get('student_prompt_tokens_mean') or nan:.0f}. Fraction of samples whose teacher gets "
        f"a context (m_i = 1): {signal}, TRL {info.get('reprompt_sample_fraction', nan):.2f}.",
        "- **Rollouts.** Random weights: rewards are ~0, so every sample fails and gets feedback, no successful "
        "sibling exists, and responses nearly always run to the length limit (mean response tokens: "
        f"{', '.join(resp)}). Both sample with HF `generate`, {n_step} sequences in one batch, KV cache on. "
        + ("TRL passes `top_k=0` (no truncation) while `trainer/rollout.py` passes no `top_k`, so transformers "
           "applies its default `top_k=50`: ours samples from a top-50-truncated distribution and runs a "
           "`TopKLogitsWarper` at every decoding step, which shows up in the rollout row."
           if not result.get("ours_sets_top_k", True) else "Both set `top_k` explicitly."),
        "- **Tiny model.** The model has well under a million parameters: every phase is dominated by Python and "
        "framework overhead rather than arithmetic. Memory work (MiniLM embeddings of retrieval queries and of new "
        "insights and behaviors, SQLite transactions) does not depend on the policy's size, so its *fraction* of "
        "the step shrinks as the model grows (compare `--model-size tiny-large`); the absolute ms are the number "
        "that carries over to a larger model.",
        "- **Noise.** The 2 cores are shared with other jobs; repeats are interleaved so load spreads over all "
        "runs, and the per-repeat means above show how much it moved.",
        "", f"Raw per-step numbers: [`{out.with_suffix('.json').name}`]({out.with_suffix('.json').name}).",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------- the real-shape report (--shape)
SHAPE_COLUMNS = (("sdpo", "ours SDPO (lean loss)"), ("sdpo_ref", "ours SDPO (reference loss)"), ("trl_sdpo", "TRL SDPO"))
# (label, phases summed); loss sub-rows are inside `loss` (ours) / forward_backward + clip_optimizer (TRL).
SHAPE_ROWS = [
    ("generation (rollout)", ("rollout",)), ("verify (reward)", ("verify",)),
    ("teacher context", ("teacher_context",)),
    ("**loss: fwd + bwd + optimizer**", ("loss",)),
    ("  student forward", ("loss:student_forward",)), ("  teacher forward (no grad)", ("loss:teacher_forward",)),
    ("  loss on logits (ours lean: + LM head and its gradient)", ("loss:head_and_divergence",)),
    ("  backward", ("loss:backward",)), ("  optimizer step (+ clip)", ("loss:optimizer_step",)),
    ("EMA teacher update", ("ema",)), ("other (TRL: decode, advantages, metrics)", ("other",)),
]


def _s(seconds) -> str:
    return "–" if seconds is None else f"{seconds:.1f}"


def shape_ratios(s: dict, name: str = "sdpo") -> dict | None:
    """Ours / TRL: of the pooled step medians, and per repeat (repeat r of each, same load window)."""
    if name not in s or "trl_sdpo" not in s:
        return None
    per = [a / b for a, b in zip(s[name]["per_repeat_step_median_s"], s["trl_sdpo"]["per_repeat_step_median_s"])]
    mem = [a / b for a, b in zip(s[name]["per_repeat_peak_rss_gib"], s["trl_sdpo"]["per_repeat_peak_rss_gib"])
           if a and b]
    return {"pooled_median": s[name]["step_median_s"] / s["trl_sdpo"]["step_median_s"], "per_repeat": per,
            "per_repeat_median": statistics.median(per), "min": min(per), "max": max(per),
            "peak_rss": statistics.median(mem) if mem else None, "peak_rss_per_repeat": mem}


def write_shape_report(args, s: dict, result: dict, machine: dict, out: Path, loads: list) -> None:
    from pmd.model_shapes import SHAPES

    shape = SHAPES[args.shape]
    cols = [(n, label) for n, label in SHAPE_COLUMNS if n in s]
    info = s.get("trl_sdpo", {}).get("info", {})
    n_step = args.questions * args.samples
    threads = info.get("torch_threads") or args.threads or machine["torch_threads"]
    nan = float("nan")
    lines = [
        f"# Training-step benchmark at a real shape: {args.shape} widths, {args.layers} layers, the real vocabulary", "",
        f"Machine: {machine['cpu']} ({machine['machine']}), {machine['cores']} cores shared with other jobs "
        f"(load average {loads[0]:.2f} before, {loads[-1]:.2f} after, {max(loads):.2f} at most), torch "
        f"{machine['torch']} ({threads} threads per training process), transformers {machine['transformers']}, "
        f"deepspeed {machine['deepspeed']}, TRL {machine['trl']}, Python {machine['python']}.", "",
        f"Command: `flock /tmp/pmd-bench.lock {' '.join(['.venv/bin/python', 'benchmarks/train_step.py', *result['argv']])}` "
        f"(total {result['total_wall_s'] / 60:.0f} min).", "",
        "The tiny-model comparison in [`train_step.md`](train_step.md) is overhead-bound (framework and Python time, "
        "ratios moved between 0.86 and 1.42 from run to run). Here the arithmetic dominates: the LM head over "
        f"{shape.vocab_size:,} tokens and {args.layers} decoder layers of {args.shape} width.", "",
        "## Settings (identical on both sides where both expose them)", "",
        f"- Model: `pmd.model_shapes.save_random_model(SHAPES[{args.shape!r}], num_layers={args.layers})`, random "
        f"weights, float32, CPU: hidden {shape.hidden_size}, MLP {shape.intermediate_size}, {shape.num_attention_heads} "
        f"query / {shape.num_key_value_heads} KV heads of {shape.head_dim}, vocabulary {shape.vocab_size:,}, "
        f"{'tied' if shape.tie_word_embeddings else 'untied'} embeddings; {shape.parameter_count(args.layers) / 1e6:.0f}M "
        f"parameters, {shape.embedding_parameter_count() / 1e6:.0f}M of them the embedding / LM head. The real "
        "Qwen3 tokenizer (151,669 tokens) and chat template; cached under `.demo/models/`.",
        f"- Task `demo_mcq` train split (the same chat messages for both), {args.questions} questions x {args.samples} "
        f"samples = {n_step} rollouts a step, generated in one batch of {n_step}; max response {args.max_response_tokens} "
        f"tokens, T = 1.0, top-p 1.0, no top-k; micro batch {args.micro_batch} ({n_step // args.micro_batch} micro "
        "batches, one optimizer step a step).",
        f"- A random-weight model practically never samples an end-of-turn token, so every response runs to the "
        f"full {args.max_response_tokens} tokens on both sides (mean response tokens: ours "
        f"{s.get('sdpo', {}).get('response_tokens_mean', nan):.1f}, TRL {info.get('response_tokens_mean') or nan:.1f}): "
        "equal work per step, a compute-bound comparison. Rewards are 0, so every sample's teacher gets the "
        "verifier's feedback (no successful sibling exists).",
        f"- AdamW (torch), lr {args.lr:g} constant, no weight decay, grad clip 1.0; SDPO alpha {args.alpha}, student "
        f"top-{args.top_k} + tail bucket, IS clip 2.0; EMA teacher, rate 0.05, every step; no gradient checkpointing "
        "on either side (TRL's default turned off).",
        f"- Ours: `pmd-train` (`trainer.cli.main`), DeepSpeed ZeRO stage {args.zero_stage}, one process, "
        f"`loss.logits_chunk_tokens={args.logits_chunk_tokens}` (the memory-lean loss)"
        + ("; `sdpo_ref` is the same run with `loss.logits_chunk_tokens=0` (reference loss on full logits)"
           if "sdpo_ref" in s else "") + ".",
        "- TRL: `trl.experimental.sdpo.SDPOTrainer` (HF `generate`, accelerate, no DeepSpeed), "
        "`distillation_mode=topk_logits`, `distillation_add_tail=True`, `teacher_model_kind=ema`, `bf16=False`, "
        "reward = our `verify_choice`, per-sample feedback handed to its teacher-context builder (see train_step.md).",
        f"- {args.repeats} repeats of every run, interleaved (the order rotates each repeat); the first {args.warmup} "
        f"step(s) of every run discarded, then {args.steps} measured steps each "
        f"({args.repeats * args.steps} measured steps per trainer).", "",
        "## Step time and peak memory", "",
        "| | " + " | ".join(label for _, label in cols) + " |", "|---|" + "---:|" * len(cols),
    ]
    rows = [
        ("**step, median (s)**", lambda v: f"**{_s(v['step_median_s'])}**"),
        ("step, min - max (s)", lambda v: f"{_s(v['step_min_s'])} - {_s(v['step_max_s'])}"),
        ("step median per repeat (s)", lambda v: " / ".join(_s(x) for x in v["per_repeat_step_median_s"])),
        ("measured steps", lambda v: str(v["measured_steps"])),
        ("**peak RSS, median (GiB)**", lambda v: f"**{statistics.median(v['per_repeat_peak_rss_gib']):.2f}**"),
        ("peak RSS per repeat (GiB)", lambda v: " / ".join(f"{x:.2f}" for x in v["per_repeat_peak_rss_gib"])),
        ("cores the process got per repeat (CPU s / wall s)",
         lambda v: " / ".join("?" if x is None else f"{x:.2f}" for x in v.get("per_repeat_cores_used", []))),
        ("load average after each repeat", lambda v: " / ".join(f"{x:.1f}" for x in v.get("per_repeat_load_after", []))),
    ]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(s[n]) for n, _ in cols) + " |")
    lines += ["", "Peak RSS is each training process's `ru_maxrss` (from `wait4`): model, teacher copy, gradients, "
              "AdamW state, activations, logits and loaded libraries together.", ""]
    lines += ["## Targets", ""]
    for name in ("sdpo", "sdpo_ref"):
        r = shape_ratios(s, name)
        if r is None:
            continue
        which = "ours (lean loss)" if name == "sdpo" else "ours with the reference loss (diagnostic)"
        lines.append(
            f"- {which} / TRL, step time: **{r['pooled_median']:.2f}** (pooled medians); per repeat "
            f"{', '.join(f'{x:.2f}' for x in r['per_repeat'])} (median {r['per_repeat_median']:.2f}, spread "
            f"{r['min']:.2f} - {r['max']:.2f})"
            + (f" -> target (<= 0.80) **{'met' if r['max'] <= 0.8 else ('met on the median, not in every repeat' if r['per_repeat_median'] <= 0.8 else 'NOT met')}**."
               if name == "sdpo" else "."))
        if r["peak_rss"] is not None:
            below = all(x < 1 for x in r["peak_rss_per_repeat"])
            lines.append(f"- {which} / TRL, peak memory: **{r['peak_rss']:.2f}** (per repeat "
                         f"{', '.join(f'{x:.2f}' for x in r['peak_rss_per_repeat'])})"
                         + (f" -> target (below TRL's) **{'met' if below else 'NOT met'}**." if name == "sdpo" else "."))
    lines += ["", "## Where the time goes (mean seconds per measured step, share of the step)", "",
              "| phase | " + " | ".join(label for _, label in cols) + " |", "|---|" + "---:|" * len(cols)]
    for label, keys in SHAPE_ROWS:
        cells = []
        for n, _ in cols:
            ph = table_phases(n, s[n]["phases_mean_s"])
            present = [k for k in keys if k in ph]
            value = sum(ph[k] for k in present)
            cells.append(f"{value:.2f} ({100 * value / s[n]['step_mean_s']:.0f}%)" if present else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| **step (mean)** | " + " | ".join(f"**{s[n]['step_mean_s']:.2f}**" for n, _ in cols) + " |")
    lines += [
        "", "The loss sub-rows are timed inside the loss by thin wrappers (this script's launcher for ours, "
        "`trl_sdpo_worker.py` for TRL). They are not the same cut on both sides: TRL's forwards include the LM head "
        "over every completion position (`logits_to_keep`) and its backward runs back through the LM head; ours "
        "stops the forwards at the final hidden states, applies the LM head inside the lean loss a chunk of "
        f"{args.logits_chunk_tokens} positions at a time and forms the LM head's and the hidden states' gradient "
        "there, so our backward only runs through the decoder layers. Compare the `loss` totals like for like.", "",
        "## What TRL's step does differently (from `trl/experimental/sdpo/sdpo_trainer.py` 1.16.0)", "",
        "- **No extra forward passes on either side.** TRL computes old per-token log-probs "
        "(`_compute_rollout_logps`) only when `gradient_accumulation_steps % (steps_per_generation x "
        "num_iterations) != 0`; with the default `steps_per_generation = gradient_accumulation_steps` and one "
        "iteration it skips it, so its importance weight is 1, as ours is (the rollout policy is the current one). "
        "Each side runs one student forward with gradient and one teacher forward without, per micro batch.",
        "- **Logits.** TRL's student and teacher forwards return `[micro batch, T+1, V]` float32 logits for the "
        "completion (`logits_to_keep`), divide them by the temperature (a second `[B, T, V]` tensor), take "
        "logsumexp and the top-K on them and backpropagate through them. Ours never forms `[B, T, V]`: the LM head "
        "runs on the final hidden states of the active response positions a chunk at a time, with the same number "
        "of LM-head matmuls (student forward, the two gradient products, teacher forward).",
        "- **Generation** is HF `generate` on both sides with the same sampling settings, all sequences in one batch, "
        "KV cache on, stopping at `<|im_end|>` / `<|endoftext|>` (TRL: `GenerationConfig(..., disable_compile=True)`, "
        "no `min_p`, `repetition_penalty` 1.0).",
        "- **Normalisation.** TRL: a mean over each sequence's tokens, then over the micro batch, divided by the "
        "accumulation steps; ours: one token mean over the whole step. With every response the same length "
        "these agree; the arithmetic is the same.",
        "- **Padding.** TRL left-pads prompts and right-pads completions; ours left-pads prompt + response. With "
        "full-length responses both run (micro batch) x (longest prompt + 256) tokens.",
        f"- **Prompts.** TRL's sampler and ours pick different questions each step (similar lengths): student prompt "
        f"tokens {info.get('student_prompt_tokens_mean') or nan:.0f} on average over the split; teacher prompt tokens: "
        f"ours {s.get('sdpo', {}).get('teacher_context_tokens_mean', nan):.0f}, TRL "
        f"{info.get('teacher_prompt_tokens_mean') or nan:.0f} (different templates, see train_step.md).",
        "- **Engine.** Ours: a DeepSpeed engine (ZeRO stage "
        f"{args.zero_stage}, torch AdamW); TRL: accelerate with `torch.optim.AdamW`. Step boundaries as in train_step.md.",
        "",
    ]
    lines += shape_findings(s, args)
    # Written by hand after a run (the JSON's "analysis" lines), so --report-only keeps it.
    lines += ["", *result.get("analysis", [])] if result.get("analysis") else []
    lines += ["", f"Raw per-step numbers: [`{out.with_suffix('.json').name}`]({out.with_suffix('.json').name})."]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def shape_findings(s: dict, args) -> list[str]:
    """What the phase means say about the gap to the 0.8 target (numbers only; the analysis of what
    in the trainer would have to change is in the report's hand-written section)."""
    if "sdpo" not in s or "trl_sdpo" not in s:
        return []
    ours, trl = s["sdpo"], s["trl_sdpo"]
    po, pt = ours["phases_mean_s"], table_phases("trl_sdpo", trl["phases_mean_s"])
    lines = ["## Measured gap", ""]
    for label, key in (("generation", "rollout"), ("loss (fwd + bwd + optimizer)", "loss"), ("EMA", "ema")):
        a, b = po.get(key, 0.0), pt.get(key, 0.0)
        lines.append(f"- {label}: ours {a:.1f} s ({100 * a / ours['step_mean_s']:.0f}% of our step), TRL {b:.1f} s "
                     f"({100 * b / trl['step_mean_s']:.0f}% of its step): ours / TRL {a / b if b else float('nan'):.2f}.")
    need = ours["step_median_s"] - 0.8 * trl["step_median_s"]
    lines.append(f"- For ours / TRL = 0.80 at these medians our step would have to lose {need:.1f} s "
                 f"({100 * need / ours['step_median_s']:.0f}% of it)." if need > 0 else
                 "- Ours / TRL is at or below 0.80 at these medians.")
    return lines
