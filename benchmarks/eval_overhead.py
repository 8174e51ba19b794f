"""Evaluation-overhead benchmark: ``pmd-harness eval`` against plain ``lm_eval`` on the same work.

Three commands, each timed as a whole process exactly as a user runs it (start-up, imports, model
load, generation, writing results), interleaved A, B, C, A, B, C, ... for ``--repeats`` rounds:

* ``plain``      ``lm_eval run --model hf ... --tasks demo_mcq --include_path tasks
                 --apply_chat_template --gen_kwargs max_gen_toks=N --log_samples --output_path DIR``
* ``no_memory``  ``pmd-harness eval --model MODEL --tasks demo_mcq --no-memory --max-gen-toks N``
* ``memory``     ``pmd-harness eval ... --memory BANK.db --memory-k 3`` (hybrid BM25 + MiniLM retrieval)

Targets (the issue): median wall time of ``no_memory`` <= 1.05 x ``plain``; of ``memory`` <= 1.2 x
``plain``. The plain run does the same work as ``no_memory``: same model, task, chat template,
greedy decoding, max_gen_toks, batch size 1, seed 0, samples logged (pmd-harness always logs them);
the benchmark checks that the two produce identical generations. ``memory`` does more model work by
design (each prompt carries a block of 3 retrieved entries); its prompt lengths are reported.

The model is a random-initialised Qwen3 of realistic shape (default hidden 640, 10 layers, ~50M
parameters, the tokenizer and ChatML template of ``pmd.tiny_model``'s ``tiny``), so generation
dominates as in real use; greedy decoding of random weights does not stop at EOS, so every answer
runs to ``--max-gen-toks`` tokens. The bank holds ``--insights`` insights over ``--insights / 6``
questions and ``--behaviors`` behaviors, science-flavoured procedural texts embedded with the
default all-MiniLM-L6-v2 and written through ``MemoryBank.add_insight`` / ``add_behavior``. Model
and bank are built once and cached under ``--work-dir``.

    .venv/bin/python benchmarks/eval_overhead.py                          # defaults: ~18 min on 2 cores
    .venv/bin/python benchmarks/eval_overhead.py --repeats 1 --max-gen-toks 32 --limit 4   # smoke test
    .venv/bin/python benchmarks/eval_overhead.py --hidden 1024 --layers 12 --insights 10000

Every process gets the same ``OMP_NUM_THREADS`` (``--threads``, default 1: the 2 cores are shared
with another job, and two busy processes with a thread per core each slow decoding several-fold).
Besides wall time, each process's CPU time (rusage) is recorded: it moves much less with other load.
After the full runs, ``--fixed-repeats`` rounds of the same commands with one question and one token
measure start-up and fixed costs alone, and one py-spy record of each splits that fixed time into
phases (task index, model import and load, memory, evaluation, results files).

Writes ``results/benchmarks/eval_overhead.md`` and ``eval_overhead.json`` beside it (``--out``);
``--report-only JSON`` rewrites the report from an earlier run's JSON.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the eval_overhead_* helper modules

from eval_overhead_bank import TASK, build_bank  # noqa: E402
from eval_overhead_report import (ENV, LABELS, NO_STACK, PHASES, RUNS, TARGETS, findings,  # noqa: E402
                                  machine_info, write_report)

BIN = ROOT / ".venv" / "bin"


# ----------------------------------------------------------------- the model
def build_model(args, work: Path) -> Path:
    """A random Qwen3 with the tiny tokenizer and chat template, saved like a real checkpoint."""
    from pmd.tiny_model import _rope_kwargs, build_tiny_models

    spec = {"hidden": args.hidden, "layers": args.layers, "heads": args.heads, "kv_heads": args.kv_heads,
            "head_dim": args.head_dim, "intermediate": args.intermediate or 3 * args.hidden, "seed": 0, "v": 1}
    out = work / f"model-{hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]}"
    if (out / "model.safetensors").exists() and (out / "bench_spec.json").exists():
        return out
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    tiny = build_tiny_models(args.models_dir)["tiny"]
    tokenizer = AutoTokenizer.from_pretrained(str(tiny))
    eot, im_end = tokenizer.convert_tokens_to_ids("<|endoftext|>"), tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=spec["hidden"], intermediate_size=spec["intermediate"],
                         num_hidden_layers=spec["layers"], num_attention_heads=spec["heads"],
                         num_key_value_heads=spec["kv_heads"], head_dim=spec["head_dim"], max_position_embeddings=4096,
                         tie_word_embeddings=True, use_sliding_window=False, bos_token_id=eot, eos_token_id=im_end,
                         pad_token_id=eot, dtype="float32", **_rope_kwargs())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen3ForCausalLM(config)
    model.eval()
    model.generation_config = GenerationConfig(do_sample=False, bos_token_id=eot, eos_token_id=im_end, pad_token_id=eot)
    tmp = Path(tempfile.mkdtemp(prefix=".model-build-", dir=work))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "bench_spec.json").write_text(json.dumps({**spec, "parameters": model.num_parameters()}, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


# ----------------------------------------------------------------- the bank
def command(run: str, args, model: Path, bank: Path, out_dir: Path, name: str, fixed: bool = False) -> list[str]:
    """The command of ``run``; ``fixed``: one question, one token (start-up and fixed costs only)."""
    limit = 1 if fixed else args.limit
    tokens = 1 if fixed else args.max_gen_toks
    limit_args = ["--limit", str(limit)] if limit else []
    if run == "plain":
        return [str(BIN / "lm_eval"), "run", "--model", "hf", "--model_args", f"pretrained={model}", "--device", "cpu",
                "--tasks", TASK, "--include_path", "tasks", "--apply_chat_template",
                "--gen_kwargs", f"max_gen_toks={tokens}", "--batch_size", "1", "--seed", "0",
                "--log_samples", "--output_path", str(out_dir / name), *limit_args]
    memory = ["--no-memory"] if run == "no_memory" else ["--memory", str(bank), "--memory-k", str(args.memory_k)]
    return [str(BIN / "pmd-harness"), "eval", "--model", str(model), "--tasks", TASK, *memory,
            "--max-gen-toks", str(tokens), "--device", "cpu", "--output-dir", str(out_dir),
            "--name", name, *limit_args]


def shown(cmd: list[str]) -> str:
    """The command as a user would type it (paths shortened)."""
    text = " ".join(cmd).replace(str(BIN) + "/", ".venv/bin/")
    return text


def read_outputs(run: str, out_dir: Path, name: str) -> dict:
    """lm-eval's own time and the logged samples (prompt, generation) of one finished run."""
    folder = out_dir / name
    if run == "plain":
        results = sorted(folder.rglob("results_*.json"))
        samples_files = sorted(folder.rglob(f"samples_{TASK}_*.jsonl"))
        res = json.loads(results[-1].read_text())
        own = float(res.get("total_evaluation_time_seconds") or "nan")
        own_label = "lm_eval total_evaluation_time_seconds (model load + evaluation)"
    else:
        summary = json.loads((folder / "summary.json").read_text())
        own = float(summary["runs"][0]["seconds"])
        own_label = "summary.json runs[0].seconds (simple_evaluate, model already loaded)"
        samples_files = sorted(folder.rglob(f"samples_{TASK}.jsonl"))
    samples = [json.loads(line) for line in samples_files[0].read_text().splitlines()]
    samples.sort(key=lambda s: s["doc_id"])
    prompts = [_prompt(s) for s in samples]
    responses = [s["resps"][0][0] if isinstance(s["resps"][0], list) else s["resps"][0] for s in samples]
    return {"lm_eval_seconds": own, "lm_eval_seconds_means": own_label, "prompts": prompts, "responses": responses,
            "memory_entries": [len(s.get("memory") or []) for s in samples]}


def _prompt(sample: dict) -> str:
    args = sample.get("arguments")
    if isinstance(args, dict):
        return args.get("gen_args_0", {}).get("arg_0", "")
    return args[0][0] if args else ""


def child_env(args) -> dict:
    env = {**os.environ, **ENV}
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    return env


def run_once(run: str, args, model: Path, bank: Path, out_dir: Path, rep: int, logs: Path, fixed: bool = False) -> dict:
    """One process, timed: wall clock, and CPU time (user + system, from the child's rusage), which
    moves much less than wall time when another job takes CPU away."""
    name = f"{'fixed-' if fixed else ''}{run}-r{rep}"
    cmd = command(run, args, model, bank, out_dir, name, fixed=fixed)
    log = logs / f"{name}.log"
    load_before = os.getloadavg()[0]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.open("w") as handle:
        proc = subprocess.run(cmd, cwd=ROOT, env=child_env(args), stdout=handle, stderr=subprocess.STDOUT,
                              timeout=args.run_timeout)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{run} failed (exit {proc.returncode}); log {log}:\n{log.read_text()[-4000:]}")
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return {"run": run, "repeat": rep, "fixed": fixed, "wall_s": wall, "cpu_s": cpu, "load_before": load_before,
            "load_after": os.getloadavg()[0], **read_outputs(run, out_dir, name)}


# ----------------------------------------------------------------- where the fixed time goes (py-spy)
# A sample belongs to the first phase (in this order) any of whose markers appears in its stack.
def profile(run: str, args, model: Path, bank: Path, work: Path) -> dict:
    """py-spy (sampling, 100 Hz) of one fixed-cost run of ``run``: seconds per phase."""
    raw = work / f"profile-{run}.txt"
    cmd = command(run, args, model, bank, work / "profile-runs", f"profile-{run}", fixed=True)
    cmd = [str(BIN / "py-spy"), "record", "-r", "100", "-f", "raw", "-o", str(raw), "--", sys.executable, *cmd]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=child_env(args), capture_output=True, text=True, timeout=args.run_timeout)
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not raw.exists():
        return {"error": (proc.stdout + proc.stderr)[-1000:]}
    seconds: dict[str, float] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        phase = next((name for name, markers in PHASES if any(m in stack for m in markers)), "other") \
            if stack.strip() else NO_STACK
        seconds[phase] = seconds.get(phase, 0.0) + int(count) / 100
    return {"wall_s_under_py_spy": wall, "sampled_s": total / 100, "phases_s": seconds}


# ----------------------------------------------------------------- where the memory run's extra time goes
def user_turn(prompt: str) -> str:
    """The last user turn of a ChatML prompt: the text ``pmd-harness`` retrieves memory for."""
    return prompt.rsplit("<|im_start|>user\n", 1)[-1].split("<|im_end|>", 1)[0]


def decompose_worker(spec_path: Path) -> None:
    """(In a child process, same thread settings as the runs.) Time the model alone on the plain and
    the memory prompts (same generated length), and the retrieval alone on the same questions."""
    spec = json.loads(spec_path.read_text())
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"]).eval()
    n = spec["max_gen_toks"]

    def generate_all(prompts: list[str]) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            for prompt in prompts:
                ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
                model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                               do_sample=False)
        return time.perf_counter() - started

    times: dict[str, list[float]] = {"plain": [], "memory": []}
    for _ in range(spec["rounds"]):
        for key in ("plain", "memory"):
            times[key].append(generate_all(spec["prompts"][key]))
    result = {"generate_s": times, "prompts": len(spec["prompts"]["plain"])}
    from harness.memory_lm import BankMemory

    queries = [user_turn(p) for p in spec["prompts"]["plain"]]
    t0 = time.perf_counter()
    memory = BankMemory(spec["bank"])
    t1 = time.perf_counter()
    memory.retrieve(queries[0], spec["k"])
    t2 = time.perf_counter()
    for query in queries[1:]:
        memory.retrieve(query, spec["k"])
    t3 = time.perf_counter()
    memory.close()
    result["retrieval"] = {"open_s": t1 - t0, "first_query_s": t2 - t1, "other_queries_s": t3 - t2,
                           "queries": len(queries)}
    Path(spec["result"]).write_text(json.dumps(result))


def decompose(args, model: Path, bank: Path, runs: list[dict], work: Path) -> dict:
    plain = next(r for r in runs if r["run"] == "plain")
    memory = next(r for r in runs if r["run"] == "memory")
    spec = {"model": str(model), "bank": str(bank), "k": args.memory_k, "max_gen_toks": args.max_gen_toks,
            "rounds": args.decompose_rounds, "result": str(work / "decompose.json"),
            "prompts": {"plain": plain["prompts"], "memory": memory["prompts"]}}
    (work / "decompose-spec.json").write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, __file__, "--decompose-worker", str(work / "decompose-spec.json")], cwd=ROOT,
                          env=child_env(args), capture_output=True, text=True, timeout=args.run_timeout)
    if proc.returncode != 0:
        return {"error": (proc.stdout + proc.stderr)[-2000:]}
    result = json.loads((work / "decompose.json").read_text())
    gen = result["generate_s"]
    result["generate_median_s"] = {k: statistics.median(v) for k, v in gen.items()}
    result["longer_prompts_extra_s"] = result["generate_median_s"]["memory"] - result["generate_median_s"]["plain"]
    r = result["retrieval"]
    result["retrieval_total_s"] = r["open_s"] + r["first_query_s"] + r["other_queries_s"]
    return result


# ----------------------------------------------------------------- summary and report
def summarize(runs: list[dict], tokenizer_dir: str | None = None) -> dict:
    """Medians per command and ratios to plain lm_eval (wall and CPU time)."""
    out: dict = {}
    tok = None
    if tokenizer_dir:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    for name in RUNS:
        mine = [r for r in runs if r["run"] == name]
        if not mine:
            continue
        walls, cpus, own = [r["wall_s"] for r in mine], [r["cpu_s"] for r in mine], [r["lm_eval_seconds"] for r in mine]
        out[name] = {"wall_s": walls, "wall_median_s": statistics.median(walls), "wall_min_s": min(walls),
                     "cpu_s": cpus, "cpu_median_s": statistics.median(cpus),
                     "lm_eval_seconds": own, "lm_eval_seconds_median": statistics.median(own),
                     "outside_lm_eval_median_s": statistics.median(w - o for w, o in zip(walls, own)),
                     "questions": len(mine[0]["responses"]),
                     "memory_entries_mean": statistics.fmean(mine[0]["memory_entries"]) if mine[0]["memory_entries"] else 0}
        if tok is not None and mine[0].get("prompts"):
            out[name]["prompt_tokens_mean"] = statistics.fmean(len(tok(p, add_special_tokens=False)["input_ids"])
                                                               for p in mine[0]["prompts"])
            out[name]["response_tokens_retokenized_mean"] = statistics.fmean(
                len(tok(p, add_special_tokens=False)["input_ids"]) for p in mine[0]["responses"])
    if "plain" in out:
        base = out["plain"]
        plain_runs = [r for r in runs if r["run"] == "plain"]
        for name, limit in TARGETS.items():
            if name not in out:
                continue
            mine = [r for r in runs if r["run"] == name]
            row = out[name]
            row["ratio_median"] = row["wall_median_s"] / base["wall_median_s"]
            row["ratio_min"] = row["wall_min_s"] / base["wall_min_s"]
            row["ratio_per_repeat"] = [m["wall_s"] / p["wall_s"] for m, p in zip(mine, plain_runs)]
            row["cpu_ratio_median"] = row["cpu_median_s"] / base["cpu_median_s"]
            row["target"] = limit
            row["target_met"] = row["ratio_median"] <= limit
            row["extra_median_s"] = row["wall_median_s"] - base["wall_median_s"]
            row["extra_cpu_median_s"] = row["cpu_median_s"] - base["cpu_median_s"]
        if "no_memory" in out and plain_runs[0].get("prompts") is not None:
            a, b = plain_runs[0], next(r for r in runs if r["run"] == "no_memory")
            out["same_work"] = {"prompts_identical": a["prompts"] == b["prompts"],
                                "responses_identical": a["responses"] == b["responses"]}
    return out


def save(args, result: dict) -> None:
    slim = {**result, **{key: [{k: v for k, v in r.items() if k not in ("prompts", "responses")} for r in result[key]]
                         for key in ("runs", "fixed_runs") if key in result}}
    write_report(args, result, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(slim, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the three commands, interleaved")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {','.join(RUNS)}")
    parser.add_argument("--max-gen-toks", type=int, default=128, help="tokens generated per question (greedy, no EOS)")
    parser.add_argument("--limit", type=int, default=None, help="first N of the 12 test questions (default all)")
    parser.add_argument("--hidden", type=int, default=640)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--heads", type=int, default=10)
    parser.add_argument("--kv-heads", type=int, default=5)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--intermediate", type=int, default=None, help="MLP width (default 3 x hidden)")
    parser.add_argument("--insights", type=int, default=3000, help="insights in the bank (6 per question)")
    parser.add_argument("--behaviors", type=int, default=120, help="behaviors in the bank")
    parser.add_argument("--memory-k", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="OMP/MKL threads per process, the same for all three (default 1: with torch's default of "
                             "one thread per core, a second busy process on the machine slows decoding ~5x; 0 = "
                             "torch's default)")
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".demo" / "eval_overhead",
                        help="cache for the built model and bank")
    parser.add_argument("--models-dir", type=Path, default=ROOT / ".demo" / "models",
                        help="where build_tiny_models caches the tiny models (for the tokenizer)")
    parser.add_argument("--fixed-repeats", type=int, default=3,
                        help="rounds of the fixed-cost runs (one question, one token; 0 = skip)")
    parser.add_argument("--decompose-rounds", type=int, default=2,
                        help="rounds of the in-process split of the memory run's extra time: the model alone on the "
                             "plain vs the memory prompts, and retrieval alone (0 = skip)")
    parser.add_argument("--decompose-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="skip the py-spy breakdown of one fixed-cost run of each command")
    parser.add_argument("--run-timeout", type=int, default=1800, help="seconds allowed per process")
    parser.add_argument("--keep-runs", action="store_true", help="keep the run folders and logs (printed)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "eval_overhead.md")
    parser.add_argument("--report-only", type=Path, metavar="JSON",
                        help="rewrite the Markdown report (--out) from an earlier run's JSON without running anything")
    args = parser.parse_args()
    if args.decompose_worker:
        decompose_worker(args.decompose_worker)
        return
    if args.report_only:
        result = json.loads(args.report_only.read_text())
        saved = argparse.Namespace(**{**vars(args), **result["settings"], "out": args.out})
        result["findings"] = findings(result)
        write_report(saved, result, args.out)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out} and {args.out.with_suffix('.json').name}")
        return
    chosen = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = sorted(set(chosen) - set(RUNS))
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")

    started = time.perf_counter()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    model_dir = build_model(args, args.work_dir)
    spec = json.loads((model_dir / "bench_spec.json").read_text())
    spec["vocab"] = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    print(f"model {model_dir.name}: {spec['parameters'] / 1e6:.1f} M parameters", flush=True)
    bank_path, bank_info = build_bank(args, args.work_dir) if "memory" in chosen else (Path("-"), {})
    if bank_info:
        print(f"bank {bank_path.name}: {bank_info['counts']}", flush=True)
    prepare_s = time.perf_counter() - started
    machine = machine_info()

    work = Path(tempfile.mkdtemp(prefix="pmd-eval-overhead-"))
    out_dir, logs = work / "runs", work / "logs"
    out_dir.mkdir()
    logs.mkdir()
    runs: list[dict] = []
    fixed_runs: list[dict] = []
    profiles: dict = {}
    decomposition: dict = {}
    order = [n for n in RUNS if n in chosen]
    total = (args.repeats + args.fixed_repeats) * len(order)
    try:
        for fixed, repeats in ((False, args.repeats), (True, args.fixed_repeats)):
            for rep in range(repeats):
                for name in order:
                    run = run_once(name, args, model_dir, bank_path, out_dir, rep, logs, fixed=fixed)
                    (fixed_runs if fixed else runs).append(run)
                    print(json.dumps({"done": f"{len(runs) + len(fixed_runs)}/{total}", "run": name, "fixed_cost": fixed,
                                      "repeat": rep, "wall_s": round(run["wall_s"], 1), "cpu_s": round(run["cpu_s"], 1),
                                      "lm_eval_s": round(run["lm_eval_seconds"], 1),
                                      "load": round(run["load_after"], 2)}), flush=True)
        if args.decompose_rounds and {"plain", "memory"} <= set(order):
            print("splitting the memory run's extra time (model alone on both prompt sets, retrieval alone) ...",
                  flush=True)
            decomposition = decompose(args, model_dir, bank_path, runs, work)
            print(json.dumps({k: v for k, v in decomposition.items() if k != "generate_s"}), flush=True)
        if args.profile:
            for name in order:
                profiles[name] = profile(name, args, model_dir, bank_path, work)
                print(json.dumps({"profiled": name, **{k: v for k, v in profiles[name].items() if k != "phases_s"}}),
                      flush=True)
    finally:
        if args.keep_runs:
            print(f"run folders and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    summary = summarize(runs, str(model_dir))
    fixed_summary = summarize(fixed_runs) if fixed_runs else {}
    commands = {n: shown(command(n, args, Path("MODEL"), Path("BANK.db"), Path("RUNS"), f"{n}-rN")) for n in order}
    result = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "report_only"},
              "argv": sys.argv[1:], "machine": machine, "model": spec, "bank": bank_info, "order": [LABELS[n] for n in order],
              "commands": commands, "env": ENV, "prepare_s": prepare_s, "total_wall_s": time.perf_counter() - started,
              "summary": summary, "fixed_summary": fixed_summary, "profiles": profiles, "decomposition": decomposition, "runs": runs,
              "fixed_runs": fixed_runs}
    result["findings"] = findings(result)
    save(args, result)
    print(json.dumps({n: {k: round(v, 3) for k, v in summary[n].items()
                          if k in ("wall_median_s", "ratio_median", "cpu_ratio_median")} for n in order}))
    print(f"wrote {args.out} and {args.out.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
