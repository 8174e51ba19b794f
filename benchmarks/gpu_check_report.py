"""Markdown report of ``benchmarks/gpu_check.py`` (tables and number formatting)."""

from __future__ import annotations

from pathlib import Path


# ----------------------------------------------------------------- report
def _f(value, fmt: str = ".1f", none: str = "–") -> str:
    return none if value is None else format(value, fmt)


def _pct(value) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}%" if value >= 0.001 else f"{100 * value:.2g}%"


def _count(n: float) -> str:
    """2_031_739_904 -> '2.03B', 74_240 -> '74.2k'."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(int(n))


def _si(value: float, unit: str) -> str:
    """1.23e14 -> '123 T<unit>' (three significant digits, k/M/G/T/P)."""
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def write_report(result: dict, out: Path) -> str:
    """The Markdown report (also returned); see the module docstring for what each column means."""
    info, settings = result["device"], result["settings"]
    peak = result.get("matmul")
    gen = result.get("generation")
    is_gpu = info["device"] == "cuda"
    lines = [f"# GPU check: PMD steps on a random {settings['model']} (bf16), DeepSpeed ZeRO "
             + " and ".join(str(s) for s in settings["stages"]), ""]
    if not is_gpu:
        lines += ["> **Not a GPU measurement.** This table comes from the CPU path of the script "
                  f"(`--device cpu{' --tiny' if settings.get('tiny') else ''}`), which runs the same pipeline to test "
                  "it; its numbers say nothing about GPU speed. Run `python benchmarks/gpu_check.py` on a CUDA machine "
                  "for the real table.", ""]
    lines += [
        f"Device: {info['name']}, {info['memory_gib']:.1f} GiB" + (f", compute capability {info.get('capability')}, "
                                                                   f"{info.get('multiprocessors')} SMs" if is_gpu else ""),
        f"Software: driver {info.get('driver') or 'n/a'}, CUDA {info.get('cuda') or 'n/a'}, torch {info['torch']}, "
        f"deepspeed {info.get('deepspeed')}, transformers {info.get('transformers')}, Python {info['python']}; "
        f"host {info['cpu']} ({info['cores']} cores).",
        "", f"Command: `{' '.join(['python', 'benchmarks/gpu_check.py', *result.get('argv', [])])}` (total "
        f"{result.get('total_wall_s', 0) / 60:.1f} min; budget {settings['max_minutes']:g} min).", "",
        "## Settings", "",
        f"- Model: `{settings['model']}` shape, random weights (`pmd.model_shapes.save_random_model`, seed 0), bf16, "
        f"{_count(settings['parameters'])} parameters ({_count(settings['non_embedding'])} non-embedding), "
        "real Qwen3 tokenizer.",
        f"- PMD on `demo_mcq`: {settings['questions']} questions x {settings['samples']} samples = "
        f"{settings['questions'] * settings['samples']} rollouts a step (one generation batch), up to "
        f"{settings['response_tokens']} response tokens, micro batch {settings['micro_batch']}, gradient checkpointing, "
        f"lean loss (chunk {settings['chunk_tokens']}), alpha 0.5, top-100, EMA teacher 0.05, AdamW (torch) lr 1e-5; "
        f"reflection by a scripted in-process endpoint, `{settings['embedder']}` embedder; {settings['steps']} steps "
        f"per stage, the first {settings['warmup_steps']} discarded; final checkpoint "
        f"{'kept' if settings.get('checkpoint') else 'skipped'}.",
    ]
    if peak:
        lines.append(f"- Measured bf16 matmul peak: **{_si(peak['flops_per_s'], 'FLOP/s')}** ({peak['n']}³, best of "
                     f"{peak['iters']}; median {_si(peak['median_flops_per_s'], 'FLOP/s')}): the MFU denominator.")
    lines += ["", "## Training steps", "",
              "| ZeRO | step s | rollout s | loss s | RL tok/s | rollout tok/s | train tok/s | model TFLOP/s | MFU | "
              "MFU +attn | peak alloc GiB | peak reserved GiB | plan GiB | plan fits |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for st in result.get("stages", []):
        if st.get("skipped"):
            lines.append(f"| {st['stage']} | skipped: {st['skipped']} |" + " |" * 13)
            continue
        s, mem, plan = st["summary"], st["memory"], st.get("plan") or {}
        plan_gib = plan.get("per_gpu_gib")
        lines.append(
            f"| {st['stage']} | {_f(s['step_s'], '.2f')} | {_f(s['rollout_s'], '.2f')} | {_f(s['loss_s'], '.2f')} | "
            f"{_f(s['rl_tokens_per_s'], '.0f')} | {_f(s['rollout_tokens_per_s'], '.0f')} | "
            f"{_f(s['train_tokens_per_s'], '.0f')} | "
            f"{_f(None if s['model_flops_per_s'] is None else s['model_flops_per_s'] / 1e12, '.3g')} | "
            f"{_pct(s['mfu'])} | {_pct(s['mfu_with_attention'])} | {_f(mem['peak_gib'], '.2f')} | "
            f"{_f(mem.get('reserved_gib'), '.2f')} | {_f(plan_gib, '.2f')} | "
            f"{'n/a' if 'fits' not in plan else ('yes' if plan['fits'] else 'no')} |")
    lines += ["", "Per stage: tokens counted over the measured steps, memory and plan details.", ""]
    for st in result.get("stages", []):
        if st.get("skipped"):
            continue
        s, mem, plan = st["summary"], st["memory"], st.get("plan") or {}
        f = s["flops"]
        line = (f"- ZeRO-{st['stage']}: steps {s['measured_steps']} (first step {_f(s['first_step_s'], '.1f')} s, "
                f"stage wall {st['wall_s']:.0f} s); {s['samples']} samples, {s['response_tokens']} response, "
                f"{s['student_tokens']} student and {s['teacher_tokens']} teacher tokens; counted "
                f"{_si(f['total'], 'FLOP')} (+{_si(f['total_with_attention'] - f['total'], 'FLOP')} attention); "
                f"phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in s["phases_mean_s"].items() if k != "step")
                + f"; memory at stage start {mem['start_gib']:.2f} GiB")
        if "error" in plan:
            line += f"; plan: {plan['error']}"
        elif plan:
            line += (f"; plan {plan['per_gpu_gib']:.2f} GiB (" + ", ".join(f"{k} {v:.2f}" for k, v in plan["phases"].items())
                     + f"; limiting: {plan['limiting_phase']}); measured peak / plan = "
                     f"{mem['peak_gib'] / plan['per_gpu_gib']:.2f}")
        lines.append(line + ".")
    if gen:
        lines += ["", "## Hugging Face generation", "",
                  "| batch | prompt tokens (max / mean) | new tokens each | s | tokens/s | peak alloc GiB |",
                  "|---:|---:|---:|---:|---:|---:|",
                  f"| {gen['batch']} | {gen['prompt_tokens_max']} / {gen['prompt_tokens_mean']:.0f} | {gen['new_tokens']} | "
                  f"{gen['seconds']:.2f} | {gen['tokens_per_s']:.0f} | {_f(gen['memory']['peak_gib'], '.2f')} |"]
    lines += [
        "", "## What is counted", "",
        "- Model FLOPs per sample, real tokens only (N non-embedding parameters, V·H the LM head, p / r / c prompt / "
        "response / teacher-context tokens, m_i = 1 when the teacher has a signal): student forward + backward "
        "6·N·(p+r) + 6·V·H·r·m_i; teacher forward 2·N·(c+r) + 2·V·H·r·m_i; attention (+attn column) "
        "2·L·heads·head_dim·S(S+1) per causal forward, x3 for the student's forward + backward. Not counted: "
        "padding, gradient checkpointing's recomputed forward (+2·N per student token of hardware work), the "
        "loss's element-wise work, the optimizer.",
        "- MFU = counted FLOPs / (loss-phase seconds x measured bf16 matmul peak). The loss phase (`time/loss`) holds "
        "the student's and teacher's forwards, the loss, the backward and the optimizer step.",
        "- RL tok/s: response tokens generated per second of the whole step; rollout tok/s: per second of the rollout "
        "phase (HF generate inside the trainer, batch as above); train tok/s: student tokens (prompt + response) per "
        "loss-phase second.",
        "- Peak memory: `torch.cuda.max_memory_allocated` (and `_reserved`), reset before each stage; it includes "
        "loading both models, generation, the loss and the optimizer step. The plan (`trainer.memory_plan`) adds a "
        "fixed reserve for the CUDA context and fragmentation that the allocator's counters do not see."
        if is_gpu else
        "- Peak memory on CPU: the process's resident high-water mark (`VmHWM`, reset through `/proc/self/clear_refs` "
        "before each stage) — it includes the Python process itself, so it is not comparable with the plan's GPU "
        "figure.",
        "", f"Raw numbers (per-step metrics, per-sample lengths, the configs): [`{out.with_suffix('.json').name}`]"
        f"({out.with_suffix('.json').name}).",
    ]
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return text
