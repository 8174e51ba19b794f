"""Rollout benchmark: generation tokens/s of the ``hf`` engine and the ``vllm`` engine on the same
model, prompts and lengths, plus engine start-up and weight-sync time.

The two engines are the trainer's own: ``hf`` is ``trainer.rollout.generate_rollouts`` (Hugging
Face ``generate``, all sequences in one batch) and ``vllm`` is ``trainer.vllm_engine.VLLMEngine``
(in-process vLLM, ``max_num_seqs`` = the number of sequences, as ``rollout.engine: vllm`` builds
it). Each engine lives in its own worker process of this script (``--worker hf|vllm``), started
once per model with the same thread count (``OMP_NUM_THREADS`` and ``torch.set_num_threads``;
vLLM otherwise drops torch to one thread in its process) and driven over a pipe, so the engines
never share a process and only one of them computes at a time.

Prompts: the chat-templated ``demo_mcq`` train questions (token ids from the model's tokenizer,
sent to both workers as the same ids), 4 samples each: 16 sequences = 4 questions, 64 = 16.
Sampling: T = 1.0, top-p 1.0, no top-k, stop at EOS, the same seed on both sides. A random-weight
model rarely emits EOS, so most sequences run to ``--max-new-tokens``; the tokens each engine
really generated are counted. tokens/s = generated tokens / wall seconds of the generate call.
Every (model, sequences) cell is measured ``--repeats`` times, interleaved (the engine that goes
first alternates), after one uncounted warm-up call per engine. vLLM's prefix cache is reset before
every call, as a weight sync does before every training step's rollouts. A one-token call per
engine gives the prefill share, from which a decode time per step is estimated. Weight sync is
``VLLMEngine.sync_weights`` from a Hugging Face model of the same folder and dtype (median of
``--sync-repeats``).

    .venv-vllm/bin/python benchmarks/rollout.py                      # both models, 16 and 64 seqs, ~8 min on 2 cores
    .venv-vllm/bin/python benchmarks/rollout.py --quick              # a short smoke run (writes under /tmp)
    .venv-vllm/bin/python benchmarks/rollout.py --models tiny-large --sequences 64 --repeats 5
    .venv-vllm/bin/python benchmarks/rollout.py --report-only results/benchmarks/rollout.json --notes notes.md

Needs an environment with both transformers and vLLM (``make test-vllm`` builds ``.venv-vllm``).
Writes ``results/benchmarks/rollout.md`` and ``rollout.json`` beside it (``--out``); prints a JSON
line per measurement as it goes. ``measure_engines`` is importable (e.g. by
``benchmarks/gpu_check.py`` on CUDA); nothing heavy is imported at module import time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py

from rollout_report import (ENGINES, SAMPLES_PER_PROMPT, TARGET_RATIO, TARGET_SEQUENCES,  # noqa: E402,F401
                            _f, _spread, render_report, target_verdict, write_report)

RESULT_PREFIX = "@@rollout-bench "  # marks the worker's result lines on its (private) stdout
MODELS_ROOT = ROOT / ".demo" / "models"
# name -> (how the folder is built, dtype both engines run it in). The reduced Qwen3-0.6B keeps
# every per-layer shape and the real 151,936-token vocabulary (LM head and sampling at full width);
# it runs in bfloat16, the trainer's default dtype and the checkpoints' own: this CPU kind has
# AVX512-BF16, and bf16 was faster than float32 on both engines here (hf 128 vs 83, vllm 728 vs 453
# tokens/s at 64 sequences x 32 new tokens). Its folder holds float32 weights; both engines cast.
MODELS = {
    "tiny-large": ("tiny", "float32"),
    "Qwen3-0.6B-L2": ("qwen3-0.6b-2-layers", "bfloat16"),
}
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "TRANSFORMERS_VERBOSITY": "error"}


# ----------------------------------------------------------------- pure arithmetic (tested)
def summarize(values: Sequence[float]) -> dict:
    """Median, min, max and the values themselves (empty input: None for each statistic)."""
    values = [float(v) for v in values]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "values": values}


def paired_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Per-repeat ratios numerator[r] / denominator[r] (repeats measured back to back)."""
    if len(numerator) != len(denominator):
        raise ValueError(f"unpaired repeats: {len(numerator)} vs {len(denominator)}")
    return [float(a) / float(b) for a, b in zip(numerator, denominator)]


def cell_summary(calls: dict[str, list[dict]]) -> dict:
    """Tokens/s per engine (generated tokens / wall seconds, per call) and vllm/hf per repeat."""
    out = {}
    for engine, rows in calls.items():
        out[engine] = {"tokens_per_s": summarize([r["tokens"] / r["wall_s"] for r in rows]),
                       "wall_s": summarize([r["wall_s"] for r in rows]),
                       "tokens": summarize([r["tokens"] for r in rows])}
    if "hf" in calls and "vllm" in calls:
        ratios = paired_ratios(out["vllm"]["tokens_per_s"]["values"], out["hf"]["tokens_per_s"]["values"])
        out["ratio_vllm_hf"] = summarize(ratios)
        out["ratio_of_medians"] = out["vllm"]["tokens_per_s"]["median"] / out["hf"]["tokens_per_s"]["median"]
    return out


def decode_step_ms(generate_wall_s: float, first_token_wall_s: float, max_new_tokens: int) -> float | None:
    """Estimated milliseconds per decode step: (generate call - one-token call) / (new tokens - 1)."""
    if max_new_tokens <= 1:
        return None
    return 1000.0 * (generate_wall_s - first_token_wall_s) / (max_new_tokens - 1)


def interleaved_order(repeat: int) -> tuple[str, str]:
    """Which engine runs first in a repeat: alternates so drift and load spread over both."""
    return ENGINES if repeat % 2 == 0 else ENGINES[::-1]


def question_count(n_sequences: int, samples_per_prompt: int = SAMPLES_PER_PROMPT) -> int:
    if n_sequences % samples_per_prompt:
        raise ValueError(f"sequences ({n_sequences}) must be a multiple of {samples_per_prompt} samples per prompt")
    return n_sequences // samples_per_prompt


# ----------------------------------------------------------------- workers (one engine each)
def _reply(stream, **payload) -> None:
    stream.write(RESULT_PREFIX + json.dumps(payload) + "\n")
    stream.flush()


def worker_main(args) -> None:
    """Serve one engine over stdin/stdout: load, then answer generate / sync / quit requests."""
    results = os.fdopen(os.dup(1), "w", buffering=1)  # our replies only; library output goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import resource

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.rollout import SamplingConfig, generate_rollouts

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    args.dtype = args.dtype or "float32"
    dtype = getattr(torch, args.dtype)

    def load_hf():
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
        return model.to(args.device).eval()

    load_started = time.perf_counter()
    if args.worker == "hf":
        engine, hf_model = None, load_hf()
    else:
        if args.device == "cpu":
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(args.kv_cache_gib))
        if args.max_batched_tokens:
            _raise_batched_token_budget(args.max_batched_tokens)
        from trainer.vllm_engine import VLLMEngine

        engine = VLLMEngine(args.model, dtype=args.dtype, seed=0, max_model_len=args.max_model_len,
                            max_num_seqs=args.max_num_seqs, gpu_memory_utilization=args.gpu_memory_utilization,
                            tokenizer=tokenizer)
        hf_model = None
    load_s = time.perf_counter() - load_started
    _reply(results, ready=True, load_s=load_s, process_setup_s=time.perf_counter() - started,
           torch_threads=torch.get_num_threads(), omp_num_threads=os.environ.get("OMP_NUM_THREADS"))

    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "quit":
            peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            if engine is not None:
                engine.close()
            _reply(results, peak_rss_gib=peak_kib / 2**20)
            return
        if op == "generate":
            prompts, samples, new = request["prompts"], request["num_samples"], request["max_new_tokens"]
            sampling = SamplingConfig(max_new_tokens=new, temperature=1.0, top_p=1.0,
                                      batch_size=len(prompts) * samples)
            if engine is not None:
                engine.llm.reset_prefix_cache()  # as after a weight sync: no prompt is cached
            if args.device != "cpu":
                torch.cuda.synchronize()
            call_started = time.perf_counter()
            groups = generate_rollouts(engine if engine is not None else hf_model, tokenizer, prompts, samples,
                                       sampling, seed=request["seed"])
            if args.device != "cpu":
                torch.cuda.synchronize()
            wall = time.perf_counter() - call_started
            lengths = [len(r.response_ids) for group in groups for r in group]
            _reply(results, wall_s=wall, tokens=sum(lengths), sequences=len(lengths), min_len=min(lengths),
                   max_len=max(lengths), stopped_early=sum(n < new for n in lengths),
                   torch_threads=torch.get_num_threads())
        elif op == "sync":
            if engine is None:
                raise SystemExit("sync needs the vllm worker")
            model = load_hf()
            times = [engine.sync_weights(model) for _ in range(request["repeats"])]
            del model
            _reply(results, sync_s=times)
        else:
            raise SystemExit(f"unknown request {op!r}")


def _raise_batched_token_budget(tokens: int) -> None:
    """Make ``VLLMEngine``'s ``LLM(...)`` schedule up to ``tokens`` tokens per step.

    vLLM 0.32's CPU build fails with "CPU Generator does not use offset" when a seeded request's
    prompt is prefilled over more than one step (chunked prefill, default budget 4,096 tokens a
    step): the model runner rewinds the request's generator, which CPU generators cannot do. With a
    budget of every sequence's whole length no prefill is split. ``VLLMEngine`` imports ``LLM``
    inside its constructor, so replacing the module attribute first is enough.
    """
    import vllm

    base = vllm.LLM

    class BudgetLLM(base):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("max_num_batched_tokens", tokens)
            super().__init__(*args, **kwargs)

    vllm.LLM = BudgetLLM


class Worker:
    """A worker process of this script driving one engine; ``request`` sends one JSON request and
    waits for its reply. The worker's logs go to a file (shown when it fails)."""

    def __init__(self, engine: str, model_dir: Path, *, dtype: str, device: str, threads: int | None,
                 max_model_len: int, max_num_seqs: int, kv_cache_gib: int, gpu_memory_utilization: float,
                 max_batched_tokens: int, log_dir: Path) -> None:
        self.engine = engine
        self.log_path = log_dir / f"{engine}-{Path(model_dir).name}.log"
        env = {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)  # vLLM keeps torch at this count instead of 1
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", engine, "--model", str(model_dir),
                   "--dtype", dtype, "--device", device, "--threads", str(threads or 0),
                   "--max-model-len", str(max_model_len), "--max-num-seqs", str(max_num_seqs),
                   "--kv-cache-gib", str(kv_cache_gib), "--gpu-memory-utilization", str(gpu_memory_utilization),
                   "--max-batched-tokens", str(max_batched_tokens)]
        self.log = open(self.log_path, "w")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        text=True, cwd=ROOT, env=env)
        self.ready = self._read()
        self.ready["process_ready_s"] = time.perf_counter() - self.started

    def _read(self) -> dict:
        while True:
            line = self.process.stdout.readline()
            if not line:
                self.process.wait()
                self.log.flush()
                tail = self.log_path.read_text(errors="replace").splitlines()[-30:]
                raise RuntimeError(f"{self.engine} worker exited ({self.process.returncode}); log {self.log_path}:\n"
                                   + "\n".join(tail))
            if line.startswith(RESULT_PREFIX):
                return json.loads(line[len(RESULT_PREFIX):])

    def request(self, **payload) -> dict:
        self.process.stdin.write(json.dumps(payload) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> dict:
        try:
            reply = self.request(op="quit")
            self.process.wait(timeout=120)
        except (RuntimeError, BrokenPipeError, OSError, subprocess.TimeoutExpired):
            self.process.kill()
            reply = {}
        finally:
            self.log.close()
        return reply


# ----------------------------------------------------------------- measurement
def demo_prompts(model_dir: str | os.PathLike, n_questions: int) -> list[list[int]]:
    """Token ids of the first ``n_questions`` demo_mcq train questions, chat-templated by the model's tokenizer."""
    from transformers import AutoTokenizer

    from tasks.registry import get_task
    from trainer.rollout import chat_ids

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    items = get_task("demo_mcq").split(None, "train")
    if n_questions > len(items):
        raise ValueError(f"demo_mcq has {len(items)} train questions; {n_questions} asked")
    return [chat_ids(tokenizer, item.messages()) for item in items[:n_questions]]


def measure_engines(model_dir: str | os.PathLike, n_sequences: int | Sequence[int] = (16, 64),
                    max_new_tokens: int = 128, repeats: int = 3, device: str = "cpu", *, dtype: str = "float32",
                    threads: int | None = None, engines: Sequence[str] = ENGINES, sync_repeats: int = 5,
                    kv_cache_gib: int = 2, gpu_memory_utilization: float = 0.5, max_batched_tokens: int | None = None,
                    label: str | None = None,
                    progress: Callable[[dict], None] | None = None, log_dir: str | os.PathLike | None = None) -> dict:
    """Tokens/s of each engine on ``model_dir`` at each sequence count, start-up and weight-sync time.

    ``n_sequences``: one count or several (multiples of 4: that many / 4 demo_mcq questions x 4
    samples). ``threads``: torch / OpenMP threads of both workers (default: every CPU this process
    may use on CPU, the libraries' defaults on CUDA). ``max_batched_tokens``: vLLM's token budget
    per step (default on CPU: every sequence's whole length, see ``_raise_batched_token_budget``;
    on CUDA: vLLM's own; 0 forces vLLM's own). ``progress`` gets one dict per measurement.
    Returns a JSON-serialisable dict; ``cells[str(n)]`` holds the per-call rows and
    ``cell_summary`` of each sequence count, ``startup`` and ``sync_s`` the engine costs.
    """
    counts = [n_sequences] if isinstance(n_sequences, int) else list(n_sequences)
    if threads is None and device == "cpu":
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    report = progress or (lambda row: print(json.dumps(row), flush=True))
    label = label or Path(model_dir).name
    prompts = demo_prompts(model_dir, question_count(max(counts)))
    by_count = {n: prompts[:question_count(n)] for n in counts}
    max_model_len = max(len(p) for p in prompts) + max_new_tokens + 16
    if max_batched_tokens is None:
        max_batched_tokens = max(counts) * max_model_len if device == "cpu" else 0
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="pmd-rollout-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    workers: dict[str, Worker] = {}
    result: dict = {"label": label, "model_dir": str(model_dir), "dtype": dtype, "device": device,
                    "threads": threads, "max_new_tokens": max_new_tokens, "repeats": repeats,
                    "samples_per_prompt": SAMPLES_PER_PROMPT, "engines": list(engines),
                    "prompt_tokens": {str(n): [len(p) for p in by_count[n]] for n in counts},
                    "max_model_len": max_model_len, "max_batched_tokens": max_batched_tokens or None,
                    "log_dir": str(log_dir)}
    try:
        for engine in engines:  # one at a time: their start-up times do not overlap
            workers[engine] = Worker(engine, Path(model_dir), dtype=dtype, device=device, threads=threads,
                                     max_model_len=max_model_len, max_num_seqs=max(counts),
                                     kv_cache_gib=kv_cache_gib, gpu_memory_utilization=gpu_memory_utilization,
                                     max_batched_tokens=max_batched_tokens, log_dir=log_dir)
            report({"model": label, "engine": engine, "startup": workers[engine].ready})
        result["startup"] = {e: w.ready for e, w in workers.items()}

        warm = by_count[min(counts)]
        for engine, worker in workers.items():
            worker.request(op="generate", prompts=warm, num_samples=SAMPLES_PER_PROMPT, max_new_tokens=4, seed=10**6)
        first_token = {}
        for n in counts:
            for engine, worker in workers.items():
                row = worker.request(op="generate", prompts=by_count[n], num_samples=SAMPLES_PER_PROMPT,
                                     max_new_tokens=1, seed=10**6 + 1)
                first_token.setdefault(str(n), {})[engine] = row
                report({"model": label, "sequences": n, "engine": engine, "first_token_call_s": row["wall_s"]})
        result["first_token"] = first_token

        calls = {str(n): {e: [] for e in workers} for n in counts}
        for repeat in range(repeats):
            for n in counts:
                for engine in interleaved_order(repeat):
                    if engine not in workers:
                        continue
                    row = workers[engine].request(op="generate", prompts=by_count[n], num_samples=SAMPLES_PER_PROMPT,
                                                  max_new_tokens=max_new_tokens, seed=repeat)
                    row["repeat"] = repeat
                    calls[str(n)][engine].append(row)
                    report({"model": label, "sequences": n, "engine": engine, "repeat": repeat,
                            "tokens": row["tokens"], "wall_s": round(row["wall_s"], 3),
                            "tokens_per_s": round(row["tokens"] / row["wall_s"], 1),
                            "torch_threads": row["torch_threads"]})
        result["cells"] = {}
        for n in counts:
            summary = cell_summary(calls[str(n)])
            for engine in workers:
                summary[engine]["decode_step_ms"] = decode_step_ms(
                    summary[engine]["wall_s"]["median"], first_token[str(n)][engine]["wall_s"], max_new_tokens)
            result["cells"][str(n)] = {"calls": calls[str(n)], "summary": summary}

        if "vllm" in workers and sync_repeats:
            sync = workers["vllm"].request(op="sync", repeats=sync_repeats)["sync_s"]
            result["sync_s"] = summarize(sync)
            report({"model": label, "weight_sync_s": [round(s, 3) for s in sync]})
    finally:
        result["peak_rss_gib"] = {e: w.close().get("peak_rss_gib") for e, w in workers.items()}
    return result


# ----------------------------------------------------------------- models
def build_model(name: str) -> Path:
    """The benchmark's model folder under .demo/models (built once, reused)."""
    kind, _ = MODELS[name]
    if kind == "tiny":
        from pmd.tiny_model import build_tiny_models

        return build_tiny_models(MODELS_ROOT)[name]
    import torch

    from pmd.model_shapes import SHAPES, save_random_model

    return save_random_model(SHAPES["Qwen3-0.6B"], MODELS_ROOT / name, num_layers=2, dtype=torch.float32)


def model_facts(model_dir: str | os.PathLike) -> dict:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "head_dim", "vocab_size", "tie_word_embeddings")
    facts = {k: config.get(k) for k in keys}
    h, v = facts["hidden_size"], facts["vocab_size"]
    head_dim = facts["head_dim"] or h // facts["num_attention_heads"]
    q, kv = facts["num_attention_heads"] * head_dim, facts["num_key_value_heads"] * head_dim
    per_layer = 2 * h * q + 2 * h * kv + 3 * h * facts["intermediate_size"]
    facts["parameters"] = facts["num_hidden_layers"] * per_layer + v * h * (1 if facts["tie_word_embeddings"] else 2)
    return facts


def machine_info() -> dict:
    from machine import base_machine_info

    from pmd.provenance import installed_version

    info = base_machine_info()
    import transformers

    info["transformers"] = transformers.__version__
    info["vllm"] = installed_version("vllm") or installed_version("vllm-cpu")  # the CPU build's distribution name
    return info


# ----------------------------------------------------------------- entry point
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--sequences", default="16,64", help="comma-separated sequence counts (multiples of 4)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats per (model, sequences)")
    parser.add_argument("--sync-repeats", type=int, default=5, help="weight syncs timed per model")
    parser.add_argument("--threads", type=int, default=None, help="torch/OpenMP threads of both workers (default: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--kv-cache-gib", type=int, default=2, help="VLLM_CPU_KVCACHE_SPACE of the vllm worker")
    parser.add_argument("--quick", action="store_true",
                        help="short run: 16 sequences, 16 new tokens, 1 repeat, 2 syncs; writes under /tmp by default")
    parser.add_argument("--out", type=Path, default=None, help="report path (default results/benchmarks/rollout.md)")
    parser.add_argument("--notes", type=Path, default=None, help="Markdown file appended to the report as Notes")
    parser.add_argument("--report-only", type=Path, default=None, help="rewrite the report from this run's JSON")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)  # worker mode (internal)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default=None,
                        help="dtype of both engines for every model (default: each model's, float32)")
    parser.add_argument("--max-model-len", type=int, default=1024, help=argparse.SUPPRESS)
    parser.add_argument("--max-num-seqs", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5, help=argparse.SUPPRESS)
    parser.add_argument("--max-batched-tokens", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
        return
    out = args.out or (Path(tempfile.gettempdir()) / "rollout_quick.md" if args.quick
                       else ROOT / "results" / "benchmarks" / "rollout.md")
    notes = args.notes.read_text(encoding="utf-8") if args.notes else None
    if args.report_only:
        data = json.loads(args.report_only.read_text(encoding="utf-8"))
        if notes is not None:
            data["notes"] = notes
        write_report(data, out)
        return
    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    if args.quick:
        args.sequences, args.max_new_tokens, args.repeats, args.sync_repeats = "16", 16, 1, 2
    counts = [int(n) for n in args.sequences.split(",")]
    data = {"machine": machine_info(),
            "settings": {"command": " ".join(["python benchmarks/rollout.py", *(sys.argv[1:] if argv is None
                                                                                else argv)]),
                         "quick": args.quick, "sequences": counts, "max_new_tokens": args.max_new_tokens,
                         "repeats": args.repeats, "sync_repeats": args.sync_repeats, "device": args.device,
                         "kv_cache_gib": args.kv_cache_gib},
            "models": [], "notes": notes}
    started = time.perf_counter()
    for name in args.models.split(","):
        model_dir = build_model(name)
        result = measure_engines(model_dir, counts, args.max_new_tokens, args.repeats, args.device,
                                 dtype=args.dtype or MODELS[name][1], threads=args.threads,
                                 sync_repeats=args.sync_repeats,
                                 kv_cache_gib=args.kv_cache_gib, label=name)
        result["facts"] = model_facts(model_dir)
        data["models"].append(result)
        write_report(data, out)  # after every model, so an interrupted run keeps what it measured
    data["settings"]["total_s"] = time.perf_counter() - started
    write_report(data, out)


if __name__ == "__main__":
    main()
