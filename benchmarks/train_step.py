"""Training-step benchmark: time per step by phase for GRPO, SDPO and PMD on the tiny model,
beside TRL's SDPO trainer (``trl.experimental.sdpo``) on the same model, batch and lengths.

Targets (the issue): our SDPO step no slower than TRL's (ratio ours / TRL <= 1), and PMD's memory
work (bank writes + retrieval + teacher-context building = ``time/memory + time/teacher_context``)
under 15% of PMD's step time; reflection generation is reported on its own.

Our three algorithms run ``pmd-train`` (its entry point ``trainer.cli.main``, one fresh process
per run, through a small launcher that also times the reflector's ``generate`` calls) on
``trainer/configs/demo_cpu.yaml`` with overrides, and their phase times come from each run's
``metrics.jsonl`` (``time/*``, see ``trainer.metrics.PhaseTimer``). PMD reflects through a
scripted OpenAI-compatible endpoint served by this script on 127.0.0.1, so insights and behaviors
really accumulate without a reflection model's generation cost. TRL runs in a subprocess of this
script (``--trl-worker``) with a ``TrainerCallback`` timing ``on_step_begin`` .. ``on_step_end``
(wall clock, including its EMA teacher sync) and thin wrappers that split the step into phases.
Runs are interleaved (the order rotates each repeat) so load from other processes on the machine
spreads over all of them; the first ``--warmup`` steps of every run are discarded.

    .venv/bin/python benchmarks/train_step.py                       # defaults: ~3 min on 2 cores
    .venv/bin/python benchmarks/train_step.py --steps 6 --warmup 2 --repeats 1
    .venv/bin/python benchmarks/train_step.py --model-size tiny-large --zero-stage 2

Needs TRL (not a project dependency): ``pip install --no-deps trl==1.16.0``. Writes
``results/benchmarks/train_step.md`` and ``train_step.json`` beside it (``--out``);
``--report-only JSON`` rewrites the report from an earlier run's JSON.
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py

from machine import base_machine_info  # noqa: E402
from train_step_report import (  # noqa: E402,F401  (re-exported)
    APPLIES, SHAPE_COLUMNS, SHAPE_ROWS, TABLE, TINY_COLUMNS, _s, ms, shape_findings, shape_ratios, table_phases,
    write_report, write_shape_report,
)

DEMO_CONFIG = ROOT / "trainer" / "configs" / "demo_cpu.yaml"
OUR_PHASES = ("rollout", "verify", "memory", "reflection", "teacher_context", "loss", "ema", "validation")
RUNS = ("grpo", "sdpo", "sdpo_ref", "pmd", "trl_sdpo")
OUR_ALGORITHM = {"grpo": "grpo", "sdpo": "sdpo", "sdpo_ref": "sdpo", "pmd": "pmd"}
ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TRL_EXPERIMENTAL_SILENCE": "1",
       "TRANSFORMERS_VERBOSITY": "error"}


# ----------------------------------------------------------------- scripted reflection endpoint
_SKILLS = [
    ("Write the governing formula before substituting any numbers.", "Stopping the reasoning without an answer letter in the tag."),
    ("Convert every quantity to SI units before combining them.", "Mixing units such as km/h and m/s in one expression."),
    ("Eliminate options that contradict a known definition first.", "Choosing an option because it repeats words from the question."),
    ("Estimate the order of magnitude and compare it with each option.", "Accepting an answer that is off by a factor of ten."),
    ("Name the law or principle the question tests before answering.", "Answering from memory of a similar question without checking."),
    ("Check the sign and direction of every change before concluding.", "Confusing an increase with a decrease in the final step."),
]


def _scripted_reply(prompt: str) -> str:
    digest = int(hashlib.sha1(prompt.encode()).hexdigest(), 16)
    if "SKILL:" in prompt:  # behavior abstraction: a few distinct skills so behaviors accumulate
        lines = []
        for offset in range(2):
            skill, avoid = _SKILLS[(digest + offset) % len(_SKILLS)]
            lines += [f"SKILL: {skill}", f"AVOID: {avoid}"]
        return "\n".join(lines)
    question = prompt.split("QUESTION:", 1)[-1].strip().splitlines()[0] if "QUESTION:" in prompt else "the question"
    topic = " ".join(question.split()[:8]).rstrip("?.,:;")
    skill, avoid = _SKILLS[digest % len(_SKILLS)]
    return (f"STRATEGY: For '{topic}', {skill[0].lower()}{skill[1:]}\n"
            f"LESSON: On '{topic}', avoid {avoid[0].lower()}{avoid[1:]} Always finish with one option letter "
            "inside the answer tag.")


def start_reflection_server():
    """The scripted endpoint (``pmd.scripted_endpoint``) answering with ``_scripted_reply``."""
    from pmd.scripted_endpoint import start_scripted_endpoint

    return start_scripted_endpoint(_scripted_reply)


# ----------------------------------------------------------------- our trainer (pmd-train)
def our_overrides(run: str, args, model_dir: Path, out_dir: Path, name: str, url: str) -> list[str]:
    algorithm = OUR_ALGORITHM[run]
    settings = {
        "algorithm": algorithm, "model.name_or_path": model_dir, "model.dtype": "float32",
        "model.gradient_checkpointing": False,  # TRL's default (True) is turned off on its side too
        # The memory-lean loss (LM head a chunk of positions at a time); sdpo_ref: the reference loss
        # on full [B, T, V] logits, for comparison.
        "loss.logits_chunk_tokens": 0 if run == "sdpo_ref" else args.logits_chunk_tokens,
        "run.output_dir": out_dir, "run.name": name, "run.seed": 0,
        "data.task": "demo_mcq", "data.questions_per_step": args.questions, "data.samples_per_question": args.samples,
        "data.max_prompt_tokens": args.max_prompt_tokens, "data.max_response_tokens": args.max_response_tokens,
        "data.max_steps": args.warmup + args.steps,
        "sampling.temperature": 1.0, "sampling.top_p": 1.0, "sampling.generation_batch_size": args.questions * args.samples,
        "loss.micro_batch_size": args.micro_batch, "loss.alpha": args.alpha, "loss.top_k": args.top_k, "loss.rollout_is_clip": 2.0,
        "optim.lr": args.lr, "optim.weight_decay": 0.0, "optim.grad_clip": 1.0, "deepspeed.zero_stage": args.zero_stage,
        "teacher.update": "ema", "teacher.ema_rate": 0.05, "teacher.context_budget_tokens": args.max_prompt_tokens,
        "logging.validate_every": 0,
        "checkpoint.every": 1_000_000,  # one checkpoint at the end only, outside the timed steps
    }
    if algorithm == "pmd":
        settings.update({"reflection.source": "endpoint", "reflection.base_url": url,
                         "reflection.model": "scripted-reflector"})
    return [f"{key}={value}" for key, value in settings.items()]


# pmd-train's own entry point (trainer.cli.main) with one addition: the time spent inside the
# reflector's generate calls (safe_generate, for insights and for behaviors) is logged per step, so
# the `reflection` phase splits into generation (the endpoint's round trips) and the memory work
# around it (prompt building, parsing, insight/behavior writes with their embeddings, clustering).
LAUNCHER = r"""
import json, sys, time
log_path = sys.argv.pop(1)
sys.argv[0] = "pmd-train"
import trainer.behaviors, trainer.components, trainer.reflection
state = {"step": 0}

def step_marker(fn):
    def wrapper(*args, **kwargs):
        state["step"] = args[4] + 1  # (bank, reflector, ..., config, step): metrics number steps from 1
        return fn(*args, **kwargs)
    return wrapper

def timed(fn, label):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with open(log_path, "a") as handle:
                handle.write(json.dumps({"step": state["step"], "fn": label, "s": time.perf_counter() - start}) + "\n")
    return wrapper

trainer.components.reflect_and_store = step_marker(trainer.components.reflect_and_store)
trainer.components.abstract_behaviors = step_marker(trainer.components.abstract_behaviors)
trainer.reflection.safe_generate = timed(trainer.reflection.safe_generate, "insight_generation")
trainer.behaviors.safe_generate = timed(trainer.behaviors.safe_generate, "behavior_generation")

# The `loss` phase split: the student's and the teacher's forward (to final hidden states, or to
# logits for the reference loss; the teacher runs under no_grad), the loss with the LM head (lean:
# its matmuls and the gradient formed in the forward pass), the engine's backward and its step.
import torch, deepspeed, trainer.loop, trainer.objective
from deepspeed.runtime.engine import DeepSpeedEngine

def rollout_marker(fn):
    def wrapper(*args, **kwargs):
        state["step"] = state.get("rollouts", 0) + 1  # one rollout call per training step
        state["rollouts"] = state["step"]
        return fn(*args, **kwargs)
    return wrapper

def by_grad(fn, with_grad, without_grad):
    def wrapper(*args, **kwargs):
        return timed(fn, with_grad if torch.is_grad_enabled() else without_grad)(*args, **kwargs)
    return wrapper

trainer.loop.generate_rollouts = rollout_marker(trainer.loop.generate_rollouts)
for name in ("response_hidden", "response_logits"):
    setattr(trainer.objective, name, by_grad(getattr(trainer.objective, name), "loss:student_forward",
                                             "loss:teacher_forward"))
for name in ("lean_sdpo_loss", "sdpo_loss", "lean_grpo_loss", "grpo_loss"):
    setattr(trainer.objective, name, timed(getattr(trainer.objective, name), "loss:head_and_divergence"))
DeepSpeedEngine.backward = timed(DeepSpeedEngine.backward, "loss:backward")
DeepSpeedEngine.step = timed(DeepSpeedEngine.step, "loss:optimizer_step")
from trainer.cli import main
main()
"""


def our_command(overrides: list[str], log_path: Path) -> list[str]:
    command = [sys.executable, "-c", LAUNCHER, str(log_path), "--config", str(DEMO_CONFIG)]
    for item in overrides:
        command += ["--set", item]
    return command


def run_process(command: list[str], timeout: int, what: str) -> tuple[float, float, float]:
    """Run one training process; ``(wall seconds, peak resident memory in GiB, CPU seconds)``.

    The peak is the process's own ``ru_maxrss`` as the kernel reports it to ``wait4`` (the largest
    resident set it ever had: weights, optimizer state, activations, logits, libraries). CPU
    seconds (user + system) over wall seconds and threads says how much of the cores the process
    got: well below 1 means other jobs on the machine took them (a contended run)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **ENV}, stdout=out, stderr=err, text=True)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            out.seek(0)
            err.seek(0)
            raise SystemExit(f"{what} failed (exit {proc.returncode}):\n{out.read()[-2000:]}\n{err.read()[-4000:]}")
    return wall, usage.ru_maxrss / 2**20, usage.ru_utime + usage.ru_stime  # ru_maxrss: KiB on Linux


def run_ours(algorithm: str, args, model_dir: Path, work: Path, rep: int, url: str) -> dict:
    name = f"{algorithm}-r{rep}"
    log_path = work / f"{name}.generation.jsonl"
    command = our_command(our_overrides(algorithm, args, model_dir, work, name, url), log_path)
    wall, peak_gib, cpu_s = run_process(command, args.run_timeout, f"pmd-train {algorithm}")
    rows = [json.loads(line) for line in (work / name / "metrics.jsonl").read_text().splitlines()]
    calls: dict[int, dict[str, float]] = {}  # step -> launcher label -> seconds
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            call = json.loads(line)
            mine = calls.setdefault(call["step"], {})
            mine[call["fn"]] = mine.get(call["fn"], 0.0) + call["s"]
    steps = []
    for row in rows:
        phases = {p: float(row.get(f"time/{p}", 0.0)) for p in OUR_PHASES}
        timed_calls = calls.get(row["step"], {})
        # Inside `reflection` and `loss`, not added to the step a second time.
        phases["reflection_generation"] = timed_calls.get("insight_generation", 0.0) + \
            timed_calls.get("behavior_generation", 0.0)
        phases.update({k: v for k, v in timed_calls.items() if k.startswith("loss:")})
        steps.append({"step": row["step"], "step_s": float(row["time/step"]), "phases": phases,
                      "extra": {k: row[k] for k in row if k.startswith(("memory/", "teacher/", "reflection/",
                                                                      "behaviors/", "tokens/")) or k == "reward/mean"}})
    shown = our_command(our_overrides(algorithm, args, model_dir, Path("RUNS"), name, "URL"), Path("LOG"))
    return {"run": algorithm, "repeat": rep, "process_wall_s": wall, "peak_rss_gib": peak_gib, "cpu_s": cpu_s,
            "steps": steps,
            "command": " ".join(["python", "-c", "LAUNCHER", *shown[3:]])}


# ----------------------------------------------------------------- TRL's SDPO trainer
def run_trl(args, model_dir: Path, work: Path, rep: int) -> dict:
    out_dir = work / f"trl-r{rep}"
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = {"model": str(model_dir), "output_dir": str(out_dir), "result": str(out_dir / "timings.json"),
            "questions": args.questions, "samples": args.samples, "micro_batch": args.micro_batch,
            "max_prompt_tokens": args.max_prompt_tokens, "max_response_tokens": args.max_response_tokens,
            "lr": args.lr, "alpha": args.alpha, "top_k": args.top_k, "warmup": args.warmup, "steps": args.steps}
    (out_dir / "spec.json").write_text(json.dumps(spec))
    command = [sys.executable, str(Path(__file__).with_name("trl_sdpo_worker.py")), str(out_dir / "spec.json")]
    wall, peak_gib, cpu_s = run_process(command, args.run_timeout, "TRL SDPO")
    result = json.loads((out_dir / "timings.json").read_text())
    return {"run": "trl_sdpo", "repeat": rep, "process_wall_s": wall, "peak_rss_gib": peak_gib, "cpu_s": cpu_s,
            "steps": result["steps"], "info": result["info"], "command": " ".join(command[:2]) + " SPEC"}


# ----------------------------------------------------------------- summary and report
def summarize(runs: list[dict], warmup: int) -> dict:
    """Mean per phase and per step over the measured steps (step > warmup) of every repeat."""
    out = {}
    for name in RUNS:
        mine = [r for r in runs if r["run"] == name]
        if not mine:
            continue
        measured = [s for r in mine for s in r["steps"] if s["step"] > warmup]
        phase_names = list(dict.fromkeys(p for s in measured for p in s["phases"]))
        step_times = [s["step_s"] for s in measured]
        out[name] = {
            "measured_steps": len(measured),
            "step_mean_s": statistics.fmean(step_times),
            "step_median_s": statistics.median(step_times),
            "step_stdev_s": statistics.stdev(step_times) if len(step_times) > 1 else 0.0,
            "phases_mean_s": {p: statistics.fmean(s["phases"].get(p, 0.0) for s in measured) for p in phase_names},
            "step_min_s": min(step_times),
            "step_max_s": max(step_times),
            "per_repeat_step_mean_s": [statistics.fmean(s["step_s"] for s in r["steps"] if s["step"] > warmup)
                                       for r in mine],
            "per_repeat_step_median_s": [statistics.median(s["step_s"] for s in r["steps"] if s["step"] > warmup)
                                         for r in mine],
            "phases_median_s": {p: statistics.median(s["phases"].get(p, 0.0) for s in measured) for p in phase_names},
            "per_repeat_peak_rss_gib": [r.get("peak_rss_gib") for r in mine],
            "per_repeat_load_after": [r.get("load_after") for r in mine],
            "per_repeat_cores_used": [r["cpu_s"] / r["process_wall_s"] if r.get("cpu_s") else None for r in mine],
        }
        if name != "trl_sdpo":
            last = mine[-1]["steps"][-1]["extra"]
            out[name]["last_step_extra"] = last
            ctx = [s["extra"].get("teacher/context_tokens") for s in measured if "teacher/context_tokens" in s["extra"]]
            if ctx:
                out[name]["teacher_context_tokens_mean"] = statistics.fmean(ctx)
                out[name]["teacher_with_signal_mean"] = statistics.fmean(s["extra"].get("teacher/with_signal", 0.0)
                                                                        for s in measured)
            out[name]["response_tokens_mean"] = statistics.fmean(s["extra"]["tokens/response_mean"] for s in measured)
        else:
            out[name]["info"] = mine[-1]["info"]
    return out


def targets(summary: dict) -> dict:
    res = {}
    if "sdpo" in summary and "trl_sdpo" in summary:
        ratio = summary["sdpo"]["step_mean_s"] / summary["trl_sdpo"]["step_mean_s"]
        res["sdpo_ratio_ours_over_trl"] = ratio
        res["sdpo_ratio_median"] = summary["sdpo"]["step_median_s"] / summary["trl_sdpo"]["step_median_s"]
        res["sdpo_target_met"] = ratio <= 1.0
        res["sdpo_ratio_per_repeat"] = [a / b for a, b in zip(summary["sdpo"]["per_repeat_step_mean_s"],
                                                                summary["trl_sdpo"]["per_repeat_step_mean_s"])]
    if "pmd" in summary:
        ph, step = summary["pmd"]["phases_mean_s"], summary["pmd"]["step_mean_s"]
        work = ph.get("memory", 0.0) + ph.get("teacher_context", 0.0)
        res["pmd_memory_work_s"] = work
        res["pmd_memory_work_fraction"] = work / step
        res["pmd_memory_target_met"] = work / step < 0.15
        res["pmd_reflection_s"] = ph.get("reflection", 0.0)
        res["pmd_reflection_fraction"] = ph.get("reflection", 0.0) / step
        res["pmd_reflection_generation_s"] = ph.get("reflection_generation", 0.0)
        # Stricter: the reflection phase's own bank work (insight/behavior writes, embeddings,
        # clustering, prompt building, parsing) counted as memory work too.
        strict = work + ph.get("reflection", 0.0) - ph.get("reflection_generation", 0.0)
        res["pmd_memory_work_incl_reflection_writes_s"] = strict
        res["pmd_memory_work_incl_reflection_writes_fraction"] = strict / step
        if "sdpo" in summary:  # the part of teacher_context that SDPO also pays (in-batch context)
            extra = work - summary["sdpo"]["phases_mean_s"].get("teacher_context", 0.0)
            res["pmd_memory_work_beyond_sdpo_fraction"] = extra / step
    return res


def machine_info() -> dict:
    import deepspeed
    import transformers

    try:
        import trl
        trl_version = trl.__version__
    except ImportError:
        trl_version = None
    return {**base_machine_info(), "transformers": transformers.__version__, "deepspeed": deepspeed.__version__,
            "trl": trl_version}


# Defaults of the two setups: the tiny model (overhead-bound), and a real shape at reduced depth
# (--shape), where the LM head over the real vocabulary and the layers' arithmetic dominate.
TINY_DEFAULTS = dict(steps=16, warmup=2, repeats=3, runs="grpo,sdpo,pmd,trl_sdpo", questions=4, samples=4,
                     max_response_tokens=64, micro_batch=8, lr=1e-4, out=ROOT / "results" / "benchmarks" / "train_step.md")
SHAPE_DEFAULTS = dict(steps=2, warmup=1, repeats=5, runs="sdpo,trl_sdpo", questions=2, samples=4,
                      max_response_tokens=256, micro_batch=8, lr=1e-5,
                      out=ROOT / "results" / "benchmarks" / "train_step_real_shape.md")


def main() -> None:
    from pmd.model_shapes import SHAPES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, help="measured steps per run (after warm-up); tiny 16, --shape 2")
    parser.add_argument("--warmup", type=int, help="steps discarded at the start of every run; tiny 2, --shape 1")
    parser.add_argument("--repeats", type=int, help="runs of each trainer, interleaved; tiny 3, --shape 5")
    parser.add_argument("--runs", help=f"comma-separated subset of {','.join(RUNS)} (sdpo_ref: ours with the reference "
                        "loss on full logits); tiny: grpo,sdpo,pmd,trl_sdpo; --shape: sdpo,trl_sdpo")
    parser.add_argument("--model-size", default="tiny", choices=("tiny", "tiny-large"))
    parser.add_argument("--shape", choices=sorted(SHAPES), help="a published shape at reduced depth "
                        "(pmd.model_shapes.save_random_model, random weights, the real tokenizer) instead of --model-size")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers of the --shape model")
    parser.add_argument("--models-dir", type=Path, default=ROOT / ".demo" / "models",
                        help="where the tiny models and the --shape models are built once and cached")
    parser.add_argument("--questions", type=int, help="questions a step; tiny 4, --shape 2")
    parser.add_argument("--samples", type=int, help="samples per question; 4")
    parser.add_argument("--max-response-tokens", type=int, help="tiny 64, --shape 256")
    parser.add_argument("--max-prompt-tokens", type=int, default=1024)
    parser.add_argument("--micro-batch", type=int, help="sequences per forward/backward; 8")
    parser.add_argument("--lr", type=float, help="tiny 1e-4, --shape 1e-5")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--logits-chunk-tokens", type=int, default=1024,
                        help="ours: loss.logits_chunk_tokens (the memory-lean loss; 0 = reference loss)")
    parser.add_argument("--zero-stage", type=int, default=0, choices=(0, 1, 2))
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP/MKL threads for every training process (default: torch's own choice)")
    parser.add_argument("--run-timeout", type=int, default=900, help="seconds allowed per training process")
    parser.add_argument("--keep-runs", action="store_true", help="keep the run folders (printed) instead of deleting them")
    parser.add_argument("--out", type=Path, help="the Markdown report (JSON beside it); tiny: "
                        "results/benchmarks/train_step.md, --shape: results/benchmarks/train_step_real_shape.md")
    parser.add_argument("--report-only", type=Path, metavar="JSON",
                        help="rewrite the Markdown report (--out) from an earlier run's JSON without running anything")
    args = parser.parse_args()
    if args.report_only:
        result = json.loads(args.report_only.read_text())
        saved = argparse.Namespace(**{**vars(args), **result["settings"]})
        saved.out = args.out or args.report_only.with_suffix(".md")
        result["summary"] = summarize(result["runs"], saved.warmup)  # recomputed: the summary code may be newer
        result["targets"] = targets(result["summary"])
        writer = write_shape_report if saved.shape else write_report
        writer(saved, result["summary"], result, result["machine"], saved.out, result["load_averages"])
        saved.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {saved.out} and {saved.out.with_suffix('.json').name}")
        return
    for key, value in (SHAPE_DEFAULTS if args.shape else TINY_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.threads:
        ENV.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    chosen = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = sorted(set(chosen) - set(RUNS))
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
    if "trl_sdpo" in chosen:
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
        try:
            import trl.experimental.sdpo  # noqa: F401
        except ImportError:
            parser.error("TRL SDPO needs trl with trl.experimental.sdpo: pip install --no-deps trl==1.16.0")

    if args.shape:
        import torch

        from pmd.model_shapes import save_random_model

        print(f"building (or reusing) {args.shape} with {args.layers} layers under {args.models_dir}", flush=True)
        model_dir = save_random_model(SHAPES[args.shape], args.models_dir / f"{args.shape}-L{args.layers}",
                                      num_layers=args.layers, dtype=torch.float32)
    else:
        from pmd.tiny_model import build_tiny_models

        model_dir = build_tiny_models(args.models_dir)[args.model_size]
    server, url = start_reflection_server()
    work = Path(tempfile.mkdtemp(prefix="pmd-train-step-"))
    machine = machine_info()
    runs: list[dict] = []
    loads = [os.getloadavg()[0]]
    started = time.perf_counter()
    try:
        for rep in range(args.repeats):
            order = chosen[rep % len(chosen):] + chosen[:rep % len(chosen)]
            for name in order:
                t0 = time.perf_counter()
                print(f"[{time.perf_counter() - started:6.0f} s] repeat {rep + 1}/{args.repeats}: {name} ...", flush=True)
                run = run_trl(args, model_dir, work, rep) if name == "trl_sdpo" else \
                    run_ours(name, args, model_dir, work, rep, url)
                run["load_after"] = os.getloadavg()[0]
                runs.append(run)
                measured = [s["step_s"] for s in run["steps"] if s["step"] > args.warmup]
                print(json.dumps({"run": name, "repeat": rep, "step_mean_ms": round(1000 * statistics.fmean(measured), 1),
                                  "step_ms": [round(1000 * x) for x in measured],
                                  "process_wall_s": round(time.perf_counter() - t0, 1),
                                  "peak_rss_gib": round(run["peak_rss_gib"], 2),
                                  "cores_used": round(run["cpu_s"] / run["process_wall_s"], 2),
                                  "load": run["load_after"]}), flush=True)
                loads.append(run["load_after"])
    finally:
        server.shutdown()
        if args.keep_runs:
            print(f"run folders kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    summary = summarize(runs, args.warmup)
    import trainer.rollout
    result = {"ours_sets_top_k": "top_k=0" in inspect.getsource(trainer.rollout),
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                           if k != "report_only"},
              "argv": sys.argv[1:], "machine": machine, "model_dir": str(model_dir),
              "total_wall_s": time.perf_counter() - started, "summary": summary, "targets": targets(summary),
              "load_averages": loads, "runs": runs}
    (write_shape_report if args.shape else write_report)(args, summary, result, machine, args.out, loads)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({"targets": result["targets"],
                      "step_mean_ms": {n: round(1000 * v["step_mean_s"], 1) for n, v in summary.items()}}))
    print(f"wrote {args.out} and {args.out.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
