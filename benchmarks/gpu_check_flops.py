"""FLOPs and MFU arithmetic of ``benchmarks/gpu_check.py`` (pure; see that module's docstring)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


# ----------------------------------------------------------------- FLOPs and MFU (pure)
@dataclass(frozen=True)
class Dims:
    """What the FLOPs count needs of a model shape."""

    non_embedding: int   # N: parameters of the decoder layers and final norm
    vocab: int           # V
    hidden: int          # H
    layers: int          # L
    attn_width: int      # heads · head_dim

    @classmethod
    def of(cls, shape, num_layers: int | None = None) -> "Dims":
        n = num_layers or shape.num_hidden_layers
        return cls(shape.non_embedding_parameter_count(n), shape.vocab_size, shape.hidden_size, n,
                   shape.num_attention_heads * shape.head_dim)


def attention_flops(dims: Dims, seq_len: int) -> int:
    """Causal attention matmuls (QKᵀ and AV) of one forward of a ``seq_len``-token sequence:
    position i attends to i + 1 keys, so each is 2·head_dim·S(S+1)/2 per head: 2·L·Q·S(S+1) in all."""
    return 2 * dims.layers * dims.attn_width * seq_len * (seq_len + 1)


def sample_flops(dims: Dims, prompt: int, response: int, teacher_prompt: int | None, active: bool) -> dict:
    """Model FLOPs one sample costs in a PMD/SDPO loss phase (module docstring), by part."""
    head = dims.vocab * dims.hidden * response * (1 if active else 0)
    out = {"student": 6 * dims.non_embedding * (prompt + response) + 6 * head,
           "student_attention": 3 * attention_flops(dims, prompt + response),
           "teacher": 0, "teacher_attention": 0}
    if teacher_prompt is not None:
        out["teacher"] = 2 * dims.non_embedding * (teacher_prompt + response) + 2 * head
        out["teacher_attention"] = attention_flops(dims, teacher_prompt + response)
    return out


def step_flops(dims: Dims, records: list[dict]) -> dict:
    """Sum of ``sample_flops`` over ``records`` (dicts with prompt, response, teacher_prompt,
    active); ``total`` without attention, ``total_with_attention`` with it."""
    parts = {"student": 0, "student_attention": 0, "teacher": 0, "teacher_attention": 0}
    for r in records:
        for key, value in sample_flops(dims, r["prompt"], r["response"], r.get("teacher_prompt"),
                                       r.get("active", True)).items():
            parts[key] += value
    parts["total"] = parts["student"] + parts["teacher"]
    parts["total_with_attention"] = parts["total"] + parts["student_attention"] + parts["teacher_attention"]
    return parts


def mfu(flops: float, seconds: float, peak_flops_per_s: float | None) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s over the measured peak (None without a peak)."""
    if not peak_flops_per_s or seconds <= 0:
        return None
    return flops / seconds / peak_flops_per_s


def matmul_flops(n: int) -> int:
    return 2 * n ** 3



def summarize_stage(rows: list[dict], records: list[dict], dims: Dims, warmup: int, peak_flops: float | None) -> dict:
    """Throughput and MFU over the measured steps (step > warmup) of one training stage."""
    measured = [r for r in rows if r["step"] > warmup] or rows[-1:]
    steps = [r["step"] for r in measured]
    mine = [r for r in records if r["step"] in steps]
    flops = step_flops(dims, mine)
    loss_s = sum(float(r.get("time/loss", 0.0)) for r in measured)
    step_s = sum(float(r.get("time/step", 0.0)) for r in measured)
    rollout_s = sum(float(r.get("time/rollout", 0.0)) for r in measured)
    response = sum(r["response"] for r in mine)
    student_tokens = sum(r["prompt"] + r["response"] for r in mine)
    teacher_tokens = sum((r["teacher_prompt"] or 0) + r["response"] for r in mine if r.get("teacher_prompt") is not None)
    phases = sorted({k for r in measured for k in r if k.startswith("time/")})
    return {
        "measured_steps": steps, "first_step_s": float(rows[0].get("time/step", 0.0)) if rows else None,
        "step_s": step_s / len(measured), "loss_s": loss_s / len(measured), "rollout_s": rollout_s / len(measured),
        "phases_mean_s": {p.removeprefix("time/"): statistics.fmean(float(r.get(p, 0.0)) for r in measured) for p in phases},
        "response_tokens": response, "student_tokens": student_tokens, "teacher_tokens": teacher_tokens,
        "samples": len(mine), "rl_tokens_per_s": response / step_s if step_s else None,
        "rollout_tokens_per_s": response / rollout_s if rollout_s else None,
        "train_tokens_per_s": student_tokens / loss_s if loss_s else None,
        "flops": flops, "model_flops_per_s": flops["total"] / loss_s if loss_s else None,
        "mfu": mfu(flops["total"], loss_s, peak_flops),
        "mfu_with_attention": mfu(flops["total_with_attention"], loss_s, peak_flops),
        "reward_mean": statistics.fmean(float(r.get("reward/mean", 0.0)) for r in measured),
        "memory_counts": {k: measured[-1][k] for k in ("memory/experience", "memory/insight", "memory/behavior")
                          if k in measured[-1]},
    }
