"""Loss memory benchmark: peak memory and time of one SDPO loss forward + backward at the real
vocabulary, today's loss on full logits against the memory-lean one (``trainer.losses.lean``).

Both methods start from the same inputs: the student's and the teacher's final hidden states
``h_s``, ``h_t`` ``[1, T, H]`` and their LM-head weights ``W_s``, ``W_t`` ``[V, H]`` (bf16, as in
training), sampled ids ``[1, T]`` and an all-ones response mask; V = 151,936 (Qwen3), H = 4096
(Qwen3-8B), α = 0.5, top-K = 100 (the paper's SciKnowEval settings), no importance weights.

* **today**: ``z_s = h_s W_sᵀ`` (with gradient) and ``z_t = h_t W_tᵀ`` (no gradient), both
  ``[1, T, V]`` bf16, then ``trainer.losses.sdpo.sdpo_loss`` (float32 log-softmax of both), then
  ``loss.backward()`` down to ``h_s`` and ``W_s``. The logits are built inside a function that
  returns only the loss, so nothing outlives what autograd itself keeps. (The trainer's
  ``response_logits`` path holds more: a ``[B, T+1, V]`` output, a gathered copy and a float32
  copy; this is the leanest form of "today".)
* **lean**: ``trainer.losses.lean.lean_sdpo_loss(h_s, W_s, h_t, W_t, ...)`` with
  ``chunk_tokens`` C, then ``loss.backward()``; the same values and gradients (the report
  compares the losses of the two on identical inputs).

Memory. Every (method, T, repeat) runs in a fresh Python process (``--worker``), started with
``MALLOC_MMAP_THRESHOLD_=65536``: glibc's mmap threshold is then fixed (no dynamic raise), so every
allocation of 64 KiB or more is its own mmap and goes back to the OS when freed, and the resident
set follows live tensor memory. The worker builds the inputs, runs one warm-up call of the same
method on T = 32 (kernels initialised, lazily allocated pools touched), drops the gradients
(``.grad = None``), collects garbage, resets the kernel's resident high-water mark
(``echo 5 > /proc/self/clear_refs``) and reads ``VmRSS`` as the base; after the measured call
``VmHWM - base`` is the peak the call added. Pages count when touched, which is when torch writes a
tensor. Two figures are reported:

The forward and the backward are measured separately (the high-water mark is reset again
between them), and two figures are reported:

* **total above inputs**: the larger of the two peaks. It includes the gradient outputs the call
  must produce, ``W_s.grad`` ``[V, H]`` (1.16 GiB in bf16) and ``h_s.grad`` ``[1, T, H]``.
* **working memory**: each phase's peak minus the gradient outputs live in that phase, the larger
  of the two: what the loss needs beyond its inputs and its outputs. Today's loss forms its
  gradients in the backward only (forward: nothing subtracted; backward: their bytes subtracted,
  which is exact if the backward peaks when ``W_s.grad`` is formed, its last step, and understates
  today's working memory otherwise: the comparison favours today's loss). The lean loss writes
  its gradients into buffers it allocates at the start of its forward, so they are subtracted from
  both phases; anything else it holds (e.g. a copy of the ``[V, H]`` buffer) counts.

Time: wall clock of the measured forward plus backward in the same process, after the warm-up
(the reads of ``/proc`` between the two are not timed).
Runs are interleaved: every repeat visits every T, and at each T the methods in an order that
rotates with the repeat, so load from other jobs on the machine spreads over all of them. Reported:
median and min-max over repeats, and the lean / today ratio per repeat (paired runs of the same
repeat and T), its median and min-max.

Today's loss at T beyond ``--today-max-tokens`` (8192: ~23 GiB, more than this machine) is not
run: its memory and time there are extrapolated from a least-squares line in T over the measured
T's (per-token slope + intercept), marked "extrapolated" in the report.

    .venv/bin/python benchmarks/loss_memory.py                  # T 1024..8192, C 256/512/1024, 3 repeats (~1 h on 2 cores)
    .venv/bin/python benchmarks/loss_memory.py --quick          # T 256..1024, C 256, 2 repeats (~3 min)
    .venv/bin/python benchmarks/loss_memory.py --tokens 1024,2048 --chunks 512 --repeats 5

Peak memory of the full run: about 15 GiB (today's loss at T = 4096). Writes
``results/benchmarks/loss_memory.md`` and ``loss_memory.json`` beside it (``--out``);
``--report-only JSON`` rewrites the report from an earlier run's JSON. Linux only (``/proc``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py

from machine import base_machine_info  # noqa: E402
from trainer.memory_probe import process_memory, reset_peak  # noqa: E402

GIB = 1024 ** 3
WARMUP_TOKENS = 32
TARGET_MEMORY_RATIO = 1 / 8
TARGET_TIME_RATIO = 1.3
TARGET_FROM_TOKENS = 4096
ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false"}


# ----------------------------------------------------------------- the worker (one measurement)
# The resident-memory probes are the memory plan's own (trainer.memory_probe).
_status, _reset_peak = process_memory, reset_peak


def _random_head(vocab: int, hidden: int, dtype, gen, base=None, noise: float = 0.0):
    """A ``[V, H]`` weight with uniform entries of standard deviation 0.02 (or ``base`` plus uniform
    noise of standard deviation ``noise``), written in place: no float32 ``[V, H]`` temporary."""
    import torch

    half_width = (0.02 if base is None else noise) * 3 ** 0.5
    out = torch.empty(vocab, hidden, dtype=dtype).uniform_(-half_width, half_width, generator=gen)
    return out if base is None else out.add_(base)


def run_worker(spec: dict) -> dict:
    """One measured call of ``spec["method"]`` ("today" or "lean") at ``spec["tokens"]``."""
    import torch
    import torch.nn.functional as F

    from trainer.losses.sdpo import sdpo_loss

    if spec.get("lean_from"):  # a candidate change of trainer/losses/lean.py, loaded from another file
        import importlib.util

        module_spec = importlib.util.spec_from_file_location("lean_candidate", spec["lean_from"])
        candidate = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(candidate)
        lean_sdpo_loss = candidate.lean_sdpo_loss
    else:
        from trainer.losses.lean import lean_sdpo_loss

    torch.set_num_threads(int(spec["threads"]))
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[spec["dtype"]]
    vocab, hidden, tokens = spec["vocab"], spec["hidden"], spec["tokens"]
    alpha, top_k, chunk = spec["alpha"], spec["top_k"], spec.get("chunk_tokens") or 0
    gen = torch.Generator().manual_seed(int(spec.get("seed", 0)))
    w_s = _random_head(vocab, hidden, dtype, gen).requires_grad_()
    w_t = _random_head(vocab, hidden, dtype, gen, base=w_s.detach(), noise=0.01)  # an EMA-like teacher
    h_s = torch.randn(1, tokens, hidden, generator=gen).to(dtype).requires_grad_()  # [1, T, H]
    h_t = (h_s.detach().float() + 0.1 * torch.randn(1, tokens, hidden, generator=gen)).to(dtype)  # [1, T, H]
    ids = torch.randint(0, vocab, (1, tokens), generator=gen)  # [1, T]
    mask = torch.ones(1, tokens)  # [1, T]

    def today(hs, ht, i, m):
        logits = F.linear(hs, w_s)  # [1, T, V]
        with torch.no_grad():
            teacher = F.linear(ht, w_t)  # [1, T, V]
        loss, _ = sdpo_loss(logits, teacher, i, m, alpha=alpha, top_k=top_k)
        return loss

    def lean(hs, ht, i, m):
        loss, _ = lean_sdpo_loss(hs, w_s, ht, w_t, i, m, alpha=alpha, top_k=top_k, chunk_tokens=chunk)
        return loss

    method = today if spec["method"] == "today" else lean
    lean_file = Path(spec.get("lean_from") or ROOT / "trainer" / "losses" / "lean.py")
    code_sha = {"lean_sha": hashlib.sha1(lean_file.read_bytes()).hexdigest()[:12],
                "sdpo_sha": hashlib.sha1((ROOT / "trainer" / "losses" / "sdpo.py").read_bytes()).hexdigest()[:12]}
    n = min(WARMUP_TOKENS, tokens)
    method(h_s[:, :n], h_t[:, :n], ids[:, :n], mask[:, :n]).backward()  # warm-up
    w_s.grad = h_s.grad = None
    inputs = sum(t.nbytes for t in (w_s, w_t, h_s, h_t, ids, mask))
    base = _reset_peak()
    started = time.perf_counter()
    loss = method(h_s, h_t, ids, mask)
    forward_s = time.perf_counter() - started
    forward_peak = _status()["VmHWM"] - base
    Path("/proc/self/clear_refs").write_text("5")  # the backward's own high-water mark from here
    started = time.perf_counter()
    loss.backward()
    backward_s = time.perf_counter() - started
    backward_peak = _status()["VmHWM"] - base
    grads = w_s.grad.nbytes + h_s.grad.nbytes
    # The lean loss writes its gradient outputs into buffers it allocates at the start of its
    # forward (trainer/losses/lean.py), so they are live in both phases; today's loss forms them
    # in the backward only.
    forward_grads = grads if spec["method"] == "lean" else 0
    return {**spec, "seconds": forward_s + backward_s, "forward_s": forward_s, "backward_s": backward_s,
            "forward_peak_bytes": forward_peak, "backward_peak_bytes": backward_peak,
            "peak_total_bytes": max(forward_peak, backward_peak), "grad_output_bytes": grads,
            "peak_working_bytes": max(forward_peak - forward_grads, backward_peak - grads),
            "input_bytes": inputs, "base_rss_bytes": base, "loss": float(loss.detach()), **code_sha,
            "grad_w_norm": float(w_s.grad.float().norm()), "grad_h_norm": float(h_s.grad.float().norm())}


def measure(spec: dict, timeout: float) -> dict:
    """``run_worker(spec)`` in a fresh process (see the module docstring)."""
    env = {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise SystemExit(f"measurement {spec} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- summary
def line_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``(intercept, slope)`` of y = a + b·x (a single point: through the origin)."""
    if len(set(xs)) < 2:
        return 0.0, ys[0] / xs[0]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def method_name(chunk: int | None) -> str:
    return "today" if not chunk else f"lean-{chunk}"


def summarize(runs: list[dict], tokens: list[int], chunks: list[int], today_max: int, paired: bool = True) -> dict:
    """Per (method, T): medians and ranges; today's extrapolations; ratios lean / today (time: paired
    per repeat when both ran in this run, else each lean run over today's median)."""
    by = {}
    for run in runs:
        by.setdefault((method_name(run.get("chunk_tokens")), run["tokens"]), []).append(run)
    methods = ["today"] + [method_name(c) for c in chunks]
    cells: dict = {}
    for m in methods:
        for t in tokens:
            rs = by.get((m, t))
            if not rs:
                continue
            cells[f"{m}@{t}"] = {"method": m, "tokens": t, "measured": True,
                                 "seconds": _stats([r["seconds"] for r in rs]),
                                 "total_gib": _stats([r["peak_total_bytes"] / GIB for r in rs]),
                                 "working_gib": _stats([r["peak_working_bytes"] / GIB for r in rs]),
                                 "forward_gib": _stats([r["forward_peak_bytes"] / GIB for r in rs]),
                                 "backward_gib": _stats([r["backward_peak_bytes"] / GIB for r in rs]),
                                 "forward_s": _stats([r["forward_s"] for r in rs]),
                                 "backward_s": _stats([r["backward_s"] for r in rs]),
                                 "loss": statistics.fmean(r["loss"] for r in rs),
                                 "grad_w_norm": statistics.fmean(r["grad_w_norm"] for r in rs)}
    measured_t = [t for t in tokens if f"today@{t}" in cells]
    fits = {}
    if measured_t:
        for key in ("seconds", "total_gib", "working_gib"):
            a, b = line_fit(measured_t, [cells[f"today@{t}"][key]["median"] for t in measured_t])
            fits[key] = {"intercept": a, "per_1k_tokens": 1000 * b, "fit_tokens": measured_t}
        for t in tokens:
            if f"today@{t}" not in cells and t > max(measured_t):
                cells[f"today@{t}"] = {"method": "today", "tokens": t, "measured": False, **{
                    key: {"median": fits[key]["intercept"] + fits[key]["per_1k_tokens"] * t / 1000}
                    for key in fits}}
    ratios: dict = {}
    for m in methods[1:]:
        for t in tokens:
            lean, today = cells.get(f"{m}@{t}"), cells.get(f"today@{t}")
            if not lean or not today:
                continue
            entry = {"method": m, "tokens": t, "today_measured": today["measured"]}
            for key in ("total_gib", "working_gib"):
                entry[key] = lean[key]["median"] / today[key]["median"]
            if today["measured"] and paired:  # paired per repeat
                pairs = [lr["seconds"] / tr["seconds"] for lr in by[(m, t)] for tr in by[("today", t)]
                         if lr["repeat"] == tr["repeat"]]
                entry["time"] = _stats(pairs)
            else:
                per = [r["seconds"] / today["seconds"]["median"] for r in by[(m, t)]]
                entry["time"] = {**_stats(per), "median": lean["seconds"]["median"] / today["seconds"]["median"]}
            ratios[f"{m}@{t}"] = entry
    loss_diff = [abs(cells[f"{m}@{t}"]["loss"] - cells[f"today@{t}"]["loss"]) for m in methods[1:]
                 for t in measured_t if f"{m}@{t}" in cells]
    gradw_rel = [abs(cells[f"{m}@{t}"]["grad_w_norm"] / cells[f"today@{t}"]["grad_w_norm"] - 1) for m in methods[1:]
                 for t in measured_t if f"{m}@{t}" in cells]
    shas = {key: sorted({r[key] for r in runs if key in r and (key != "lean_sha" or r["method"] == "lean")})
            for key in ("lean_sha", "sdpo_sha")}
    grad_outputs = [{"method": method_name(r.get("chunk_tokens")), "tokens": r["tokens"],
                     "grad_output_bytes": r["grad_output_bytes"]} for r in runs if r["method"] == "lean"]
    return {"cells": cells, "fits": fits, "ratios": ratios, "code": shas, "grad_outputs": grad_outputs,
            "max_abs_loss_diff": max(loss_diff, default=None), "max_rel_grad_w_norm_diff": max(gradw_rel, default=None)}


def targets(summary: dict, chunks: list[int], default_chunk: int) -> dict:
    """Per chunk size: is peak <= 1/8 of today's (total; working) and time <= 1.3x at every T >= 4096?"""
    out = {}
    for c in chunks:
        m = method_name(c)
        rows = [r for r in summary["ratios"].values() if r["method"] == m and r["tokens"] >= TARGET_FROM_TOKENS]
        if not rows:
            continue
        grads = [g["grad_output_bytes"] / GIB for g in summary.get("grad_outputs", []) if g["method"] == m]
        floor = max((statistics.median(grads) / summary["cells"][f"today@{r['tokens']}"]["total_gib"]["median"]
                     for r in rows), default=None) if grads else None
        out[m] = {"tokens": [r["tokens"] for r in rows], "gradient_floor_ratio": floor,
                  "total_met": all(r["total_gib"] <= TARGET_MEMORY_RATIO for r in rows),
                  "working_met": all(r["working_gib"] <= TARGET_MEMORY_RATIO for r in rows),
                  "time_met": all(r["time"]["median"] <= TARGET_TIME_RATIO for r in rows),
                  "worst_total_ratio": max(r["total_gib"] for r in rows),
                  "worst_working_ratio": max(r["working_gib"] for r in rows),
                  "worst_time_ratio": max(r["time"]["median"] for r in rows),
                  "is_default": c == default_chunk}
    return out


# ----------------------------------------------------------------- report
def _cell_mem(cell: dict | None, key: str) -> str:
    if cell is None:
        return "–"
    s = cell[key]
    if not cell["measured"]:
        return f"*{s['median']:.2f}* (extrap.)"
    spread = f" ({s['min']:.2f}-{s['max']:.2f})" if s["n"] > 1 and s["max"] - s["min"] >= 0.005 else ""
    return f"{s['median']:.2f}{spread}"


def _cell_time(cell: dict | None) -> str:
    if cell is None:
        return "–"
    s = cell["seconds"]
    if not cell["measured"]:
        return f"*{s['median']:.1f}* (extrap.)"
    return f"{s['median']:.1f} ({s['min']:.1f}-{s['max']:.1f})"


def write_report(result: dict, out: Path) -> None:
    settings, summary, machine = result["settings"], result["summary"], result["machine"]
    tokens, chunks, cells = settings["tokens"], settings["chunks"], summary["cells"]
    methods = ["today"] + [method_name(c) for c in chunks]
    t_ok = targets(summary, chunks, settings["default_chunk"])
    label = {"today": "today (full logits + `sdpo_loss`)",
             **{method_name(c): f"lean, C = {c}" + (" (default)" if c == settings["default_chunk"] else "")
                for c in chunks}}
    loads = result["load_averages"]
    gib_w = settings["vocab"] * settings["hidden"] * (2 if settings["dtype"] == "bfloat16" else 4) / GIB
    lines = [
        "# Loss memory benchmark: today's SDPO loss against the memory-lean one", "",
        f"Machine: {machine['cpu']} ({machine['machine']}), {machine['cores']} cores shared with other jobs "
        f"(load average {loads[0]:.2f} before, {loads[-1]:.2f} after), {machine.get('memory_gib', 0):.0f} GiB RAM, "
        f"torch {machine['torch']} ({settings['threads']} threads per measurement), Python {machine['python']}.", "",
        f"Command: `{' '.join(['.venv/bin/python', 'benchmarks/loss_memory.py', *result['argv']])}` "
        f"(total {result['total_wall_s'] / 60:.0f} min).", "",
        "## Settings", "",
        f"- One loss forward + backward from the final hidden states: student and teacher `h` `[1, T, "
        f"{settings['hidden']}]`, LM heads `W_s`, `W_t` `[{settings['vocab']:,}, {settings['hidden']}]`, all "
        f"{settings['dtype']}; B = 1, every position active; alpha {settings['alpha']}, student top-{settings['top_k']} "
        "+ tail bucket, no importance weights.",
        "- **today**: `z = h Wᵀ` for the student (with gradient) and the teacher (no gradient), `[1, T, V]`, then "
        "`trainer.losses.sdpo.sdpo_loss`, then backward to `h_s` and `W_s`. **lean**: "
        "`trainer.losses.lean.lean_sdpo_loss` with `chunk_tokens` = C, then backward. Default "
        f"`loss.logits_chunk_tokens` in `trainer/config.py`: {settings['default_chunk']}."
        + (f" **The lean loss here is a candidate version loaded from `{settings['lean_from']}`, not the "
           "repository's `trainer/losses/lean.py`.**" if settings.get("lean_from") else ""),
        f"- bf16 on this CPU: it has AVX512-BF16, and a timed `[512, 4096] x [4096, 37984]` matmul ran at "
        f"{machine.get('bf16_matmul_gflops', float('nan')):.0f} GFLOP/s in bf16 against "
        f"{machine.get('fp32_matmul_gflops', float('nan')):.0f} in float32, so the training dtype is used as is.",
        "- Memory: each (method, T, repeat) in a fresh process with `MALLOC_MMAP_THRESHOLD_=65536` (freed tensors go "
        "back to the OS), a warm-up call at T = 32, then the kernel's resident high-water mark reset "
        "(`/proc/self/clear_refs`) before the forward and again before the backward; a phase's peak = `VmHWM` after "
        "it minus `VmRSS` before the forward. **total** = the larger phase peak, above the inputs, including the "
        f"gradient outputs every method must produce (`W_s.grad`: {gib_w:.2f} GiB; `h_s.grad`). **working** = each "
        "phase's peak minus the gradient outputs live in it (today's: in its backward only; lean: from the start of "
        "its forward, where it allocates them), the larger of the two. If today's backward peaks before `W_s.grad` "
        "is formed, its working figure is understated (in today's favour).",
        f"- Time: wall clock of the measured call; {settings['repeats']} repeats, interleaved (every repeat visits "
        "every T, methods in a rotating order); median (min-max). Ratios lean / today are paired per repeat.",
        f"- Today's loss is run up to T = {settings['today_max_tokens']}; beyond, its numbers are *extrapolated* from a "
        "least-squares line over the measured T's (fits below)."
        + (f" Today's runs are reused from `{settings['today_from']}` (time ratios: each lean run over today's median)."
           if settings.get("today_from") else ""),
        "- Code measured (sha1, first 12): `trainer/losses/lean.py` "
        + ", ".join(summary.get("code", {}).get("lean_sha", []) or ["?"])
        + "; `trainer/losses/sdpo.py` " + ", ".join(summary.get("code", {}).get("sdpo_sha", []) or ["?"])
        + (" — **more than one version of lean.py was measured**" if len(summary.get("code", {}).get("lean_sha", [])) > 1
           else "") + ".", "",
        "## Peak memory (GiB): total above inputs (includes the LM-head gradient)", "",
        "| method | " + " | ".join(f"T = {t}" for t in tokens) + " |", "|---|" + "---:|" * len(tokens)]
    for m in methods:
        lines.append(f"| {label[m]} | " + " | ".join(_cell_mem(cells.get(f"{m}@{t}"), "total_gib") for t in tokens) + " |")
    lines += ["", "## Working memory of the loss (GiB): total minus the gradient outputs", "",
              "| method | " + " | ".join(f"T = {t}" for t in tokens) + " |", "|---|" + "---:|" * len(tokens)]
    for m in methods:
        lines.append(f"| {label[m]} | " + " | ".join(_cell_mem(cells.get(f"{m}@{t}"), "working_gib") for t in tokens) + " |")
    lines += ["", "Peak of each phase (GiB above the inputs, medians): forward / backward", "",
              "| method | " + " | ".join(f"T = {t}" for t in tokens) + " |", "|---|" + "---:|" * len(tokens)]
    for m in methods:
        row = [(f"{c['forward_gib']['median']:.2f} / {c['backward_gib']['median']:.2f}"
                if (c := cells.get(f"{m}@{t}")) and c["measured"] else "–") for t in tokens]
        lines.append(f"| {label[m]} | " + " | ".join(row) + " |")
    lines += ["", "## Time of forward + backward (s): median (min-max)", "",
              "| method | " + " | ".join(f"T = {t}" for t in tokens) + " |", "|---|" + "---:|" * len(tokens)]
    for m in methods:
        lines.append(f"| {label[m]} | " + " | ".join(_cell_time(cells.get(f"{m}@{t}")) for t in tokens) + " |")
    lines += ["", "Time split (s, medians): forward / backward", "",
              "| method | " + " | ".join(f"T = {t}" for t in tokens) + " |", "|---|" + "---:|" * len(tokens)]
    for m in methods:
        row = [(f"{c['forward_s']['median']:.1f} / {c['backward_s']['median']:.1f}"
                if (c := cells.get(f"{m}@{t}")) and c["measured"] else "–") for t in tokens]
        lines.append(f"| {label[m]} | " + " | ".join(row) + " |")
    lines += ["", "## Lean / today ratios", "",
              "| method | T | total memory | working memory | time: median (min-max) |", "|---|---:|---:|---:|---:|"]
    for r in summary["ratios"].values():
        ext = "" if r["today_measured"] else " (vs extrap.)"
        tm = r["time"]
        lines.append(f"| {label[r['method']]} | {r['tokens']}{ext} | {r['total_gib']:.3f} | {r['working_gib']:.3f} | "
                     f"{tm['median']:.2f} ({tm['min']:.2f}-{tm['max']:.2f}) |")
    fits = summary["fits"]
    if fits:
        lines += ["", "Today's extrapolation lines (least squares over T = "
                  f"{', '.join(map(str, fits['seconds']['fit_tokens']))}): "
                  f"total {fits['total_gib']['intercept']:.2f} + {fits['total_gib']['per_1k_tokens']:.3f} GiB per 1k tokens, "
                  f"working {fits['working_gib']['intercept']:.2f} + {fits['working_gib']['per_1k_tokens']:.3f} GiB per 1k, "
                  f"time {fits['seconds']['intercept']:.1f} + {fits['seconds']['per_1k_tokens']:.2f} s per 1k tokens."]
    if summary.get("max_abs_loss_diff") is not None:
        lines += ["", f"Same inputs, same values: the largest |loss_lean − loss_today| over the measured cells is "
                  f"{summary['max_abs_loss_diff']:.2e}; the largest relative difference of ‖∂L/∂W_s‖ "
                  f"{summary['max_rel_grad_w_norm_diff']:.2e} (bf16 gradients)."]
    lines += ["", f"## Targets (T >= {TARGET_FROM_TOKENS}: peak <= 1/8 of today's, time <= {TARGET_TIME_RATIO}x)", ""]
    for m, v in t_ok.items():
        lines.append(
            f"- {label[m]} at T = {', '.join(map(str, v['tokens']))}: total peak ratio <= {v['worst_total_ratio']:.3f} "
            f"-> {'met' if v['total_met'] else '**NOT met**'}; working-memory ratio <= {v['worst_working_ratio']:.3f} "
            f"-> {'met' if v['working_met'] else '**NOT met**'}; time ratio (median) <= {v['worst_time_ratio']:.2f} "
            f"-> {'met' if v['time_met'] else '**NOT met**'}."
            + (f" (The gradient outputs alone are {v['gradient_floor_ratio']:.3f} of today's total at the smallest of "
               "these T: no loss that returns a bf16 [V, H] gradient can meet the total-peak reading there.)"
               if v.get("gradient_floor_ratio") and v["gradient_floor_ratio"] > TARGET_MEMORY_RATIO else ""))
    lines += result.get("notes", [])
    lines += ["", f"Raw per-run numbers: [`{out.with_suffix('.json').name}`]({out.with_suffix('.json').name})."]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------- main
def matmul_speed(threads: int) -> dict:
    """GFLOP/s of one ``[512, 4096] x [4096, 37984]`` matmul in float32 and bf16 (after a warm-up)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, w = torch.randn(512, 4096).to(dtype), torch.randn(37984, 4096).to(dtype)
        F.linear(a[:16], w)
        started = time.perf_counter()
        F.linear(a, w)
        out[f"{name}_matmul_gflops"] = 2 * 512 * 4096 * 37984 / (time.perf_counter() - started) / 1e9
    return out


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=_ints, default=[1024, 2048, 4096, 8192], help="response lengths T")
    parser.add_argument("--chunks", type=_ints, default=[256, 512, 1024], help="lean chunk_tokens values C")
    parser.add_argument("--today-max-tokens", type=int, default=4096,
                        help="largest T today's loss runs at; beyond it, extrapolated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocab", type=int, default=151_936)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads per measurement (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="T 256,512,1024 (today up to 512), C 256, 2 repeats")
    parser.add_argument("--lean-from", type=Path, metavar="FILE",
                        help="take lean_sdpo_loss from FILE instead of trainer/losses/lean.py (to measure a candidate change)")
    parser.add_argument("--run-timeout", type=int, default=1800, help="seconds allowed per measurement process")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "loss_memory.md")
    parser.add_argument("--report-only", type=Path, metavar="JSON", help="rewrite the report from an earlier JSON")
    parser.add_argument("--today-from", type=Path, metavar="JSON",
                        help="reuse today's runs from an earlier run's JSON (same V, H, dtype, alpha, top-K) "
                             "instead of measuring them again; only the lean runs are measured")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return
    if args.report_only:
        result = json.loads(args.report_only.read_text())
        s = result["settings"]
        result["summary"] = summarize(result["runs"], s["tokens"], s["chunks"], s["today_max_tokens"],
                                      paired=not s.get("today_from"))
        result["targets"] = targets(result["summary"], s["chunks"], s["default_chunk"])
        write_report(result, args.out)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out} and {args.out.with_suffix('.json').name}")
        return
    if args.quick:
        args.tokens, args.chunks, args.today_max_tokens, args.repeats = [256, 512, 1024], [256], 512, 2
    from tqdm import tqdm

    from trainer.config import LossConfig

    threads = args.threads or os.cpu_count() or 1
    settings = {"tokens": args.tokens, "chunks": args.chunks, "today_max_tokens": args.today_max_tokens,
                "repeats": args.repeats, "vocab": args.vocab, "hidden": args.hidden, "alpha": args.alpha,
                "top_k": args.top_k, "dtype": args.dtype, "threads": threads,
                "default_chunk": LossConfig().logits_chunk_tokens,
                "lean_from": str(args.lean_from.resolve()) if args.lean_from else None,
                "today_from": str(args.today_from) if args.today_from else None}
    reused = []
    if args.today_from:
        earlier = json.loads(args.today_from.read_text())
        same = ("vocab", "hidden", "dtype", "alpha", "top_k", "threads")
        if any(earlier["settings"][k] != settings[k] for k in same):
            parser.error(f"--today-from: {args.today_from} was measured with other settings ({same})")
        reused = [r for r in earlier["runs"] if r["method"] == "today" and r["tokens"] in args.tokens]
    machine = {**base_machine_info(), **matmul_speed(threads),
               "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB}
    plan = []
    for rep in range(args.repeats):
        for t in args.tokens:
            here = ([None] if t <= args.today_max_tokens and not args.today_from else []) + list(args.chunks)
            shift = rep % len(here)
            plan += [(rep, t, c) for c in here[shift:] + here[:shift]]
    runs, loads, started = [], [os.getloadavg()[0]], time.perf_counter()
    progress = tqdm(plan, desc="loss fwd+bwd", unit="run")
    for rep, t, chunk in progress:
        progress.set_postfix_str(f"repeat {rep} T={t} {method_name(chunk)}")
        spec = {"method": "lean" if chunk else "today", "chunk_tokens": chunk, "tokens": t, "repeat": rep,
                "vocab": args.vocab, "hidden": args.hidden, "alpha": args.alpha, "top_k": args.top_k,
                "dtype": args.dtype, "threads": threads, "seed": 0, "lean_from": settings["lean_from"]}
        run = measure(spec, args.run_timeout)
        run["load_after"] = os.getloadavg()[0]
        loads.append(run["load_after"])
        runs.append(run)
        tqdm.write(json.dumps({"repeat": rep, "T": t, "method": method_name(chunk), "s": round(run["seconds"], 2),
                               "total_gib": round(run["peak_total_bytes"] / GIB, 3),
                               "working_gib": round(run["peak_working_bytes"] / GIB, 3),
                               "loss": round(run["loss"], 6), "load": run["load_after"]}))
    runs += reused
    summary = summarize(runs, args.tokens, args.chunks, args.today_max_tokens, paired=not args.today_from)
    result = {"settings": settings, "argv": sys.argv[1:], "machine": machine,
              "total_wall_s": time.perf_counter() - started, "load_averages": loads, "summary": summary,
              "targets": targets(summary, args.chunks, settings["default_chunk"]), "runs": runs}
    write_report(result, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({"targets": result["targets"]}))
    print(f"wrote {args.out} and {args.out.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
