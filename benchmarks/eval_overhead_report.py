"""The Markdown report of benchmarks/eval_overhead.py (also rewritten by its --report-only)."""
from __future__ import annotations

from pathlib import Path

from eval_overhead_bank import DOMAINS, TASK
from machine import base_machine_info

RUNS = ("plain", "no_memory", "memory")
LABELS = {"plain": "plain lm_eval", "no_memory": "pmd-harness --no-memory", "memory": "pmd-harness --memory (k=3)"}
TARGETS = {"no_memory": 1.05, "memory": 1.2}
# Both tools get the same environment: offline, so neither waits on the network for a local model.
ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

PHASES = [
    ("lm-eval task index (`TaskManager.__init__`: scans lm-eval's task YAMLs + `--include_path`)", ("TaskManager.__init__",)),
    ("model class import (`lm_eval.models` -> `HFLM`: transformers / torch modelling imports)", ("get_model (",)),
    ("model load (`HFLM.__init__`: weights, tokenizer)", ("HFLM.__init__ (", "from_pretrained (")),
    ("memory: bank, MiniLM load, BM25 + dense index, retrieval", (
        "memory_bank/", "BankMemory", "MemoryAugmentedLM._augment (", "MemoryAugmentedLM._remember (")),
    ("evaluation (`simple_evaluate`: prompts, generation, scoring)", ("simple_evaluate (",)),
    ("results files (lm-eval JSON/JSONL; pmd: summary, Markdown, plots)", (
        "save_results_", "write_summary (", "write_run (", "write_json (", "plots.py", "print_summary (")),
    ("other module imports (CLI start-up, lm_eval, pmd)", ("_find_and_load (",)),
]


NO_STACK = "no Python stack (interpreter start-up and exit, native threads)"


def machine_info() -> dict:
    from importlib import metadata

    import sentence_transformers
    import transformers

    return {**base_machine_info(), "transformers": transformers.__version__, "lm_eval": metadata.version("lm_eval"),
            "sentence_transformers": sentence_transformers.__version__}


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def write_report(args, result: dict, out: Path) -> None:
    s, m, model, bank = result["summary"], result["machine"], result["model"], result["bank"]
    fixed, prof = result.get("fixed_summary", {}), result.get("profiles", {})
    loads = [r["load_before"] for r in result["runs"]] + [result["runs"][-1]["load_after"]]
    c = bank.get("counts", {})
    plain = s.get("plain", {})
    lines = [
        "# Evaluation overhead: `pmd-harness eval` vs plain `lm_eval`", "",
        f"Machine: {m['cpu']} ({m['machine']}), {m['cores']} cores shared with another agent's jobs (load average "
        f"{min(loads):.2f} .. {max(loads):.2f} at run starts), torch {m['torch']} ("
        + (f"{args.threads} thread(s) per process, `OMP_NUM_THREADS`/`MKL_NUM_THREADS` set by `--threads`, the same "
           "for all three" if args.threads else f"{m['torch_threads']} threads, torch's default")
        + f"), transformers {m['transformers']}, lm_eval {m['lm_eval']}, sentence-transformers "
        f"{m['sentence_transformers']}, Python {m['python']}.", "",
        f"Command: `{' '.join(['.venv/bin/python', 'benchmarks/eval_overhead.py', *result['argv']])}` "
        f"(total {result['total_wall_s'] / 60:.1f} min, of which {result['prepare_s']:.0f} s building or loading the "
        "cached model and bank).", "",
        "## Settings", "",
        f"- Model: random-initialised Qwen3, hidden {model['hidden']}, {model['layers']} layers, {model['heads']} "
        f"heads ({model['kv_heads']} KV) x head_dim {model['head_dim']}, MLP {model['intermediate']}, "
        f"{model['parameters'] / 1e6:.1f} M parameters, float32 on CPU, with the byte-level BPE tokenizer (vocab "
        f"{model.get('vocab', '?')}) and ChatML template of `pmd.tiny_model`'s `tiny`, saved with `save_pretrained` "
        "(weights, tokenizer, chat template, generation config).",
        f"- Task `{TASK}` test split, {plain.get('questions', '?')} questions, chat template applied, greedy "
        f"(the task's `do_sample: false`), max_gen_toks {args.max_gen_toks} (random weights do not stop at EOS; the "
        f"generated texts re-tokenize to {plain.get('response_tokens_retokenized_mean', float('nan')):.0f} tokens on "
        "average), batch size 1, seed 0, samples logged by all three.",
        f"- Bank (`--memory` only): {c.get('insight', '?')} insights over {bank.get('questions', '?')} questions and "
        f"{c.get('behavior', '?')} behaviors (procedural science-flavoured strategies, lessons, skills and mistakes "
        f"over {sum(len(v) for v in DOMAINS.values())} concepts in 4 domains), {bank.get('embedding_model')} vectors, "
        f"written through `add_insight` / `add_behavior` (duplicate merging on; {bank.get('file_mb', 0):.1f} MB; built "
        f"once in {bank.get('build_s', 0):.0f} s and cached). Retrieval: pmd-harness defaults, hybrid BM25 + dense, "
        f"k = {args.memory_k}, levels insight + behavior; {s.get('memory', {}).get('memory_entries_mean', 0):.0f} "
        "entries given per prompt.",
        "- Mean prompt tokens: " + ", ".join(f"{LABELS[n]} {s[n]['prompt_tokens_mean']:.0f}" for n in RUNS
                                             if n in s and 'prompt_tokens_mean' in s[n])
        + " (the memory block makes the memory run's prompts longer: more prefill and attention work by design).",
        f"- {args.repeats} repeat(s), interleaved in the order {', '.join(result['order'])}; every run is a fresh "
        f"process with `{' '.join(f'{k}={v}' for k, v in ENV.items())}` for all three. CPU time = user + system "
        "time of the process (its rusage): with one thread per process it moves much less than wall time when the "
        "other agent takes a core.", "",
        "Commands (as timed; `RUNS` is a temporary output folder, `N` the repeat):", "",
    ]
    for name in RUNS:
        if name in result["commands"]:
            lines += [f"- {LABELS[name]}: `{result['commands'][name]}`"]
    lines += ["", "## Wall time per process (s)", "",
              "| run | " + " | ".join(f"r{i + 1}" for i in range(args.repeats))
              + " | median | ratio to plain | target | CPU s (median) | CPU ratio |",
              "|---|" + "---:|" * args.repeats + "---:|---:|---|---:|---:|"]
    for name in RUNS:
        if name not in s:
            continue
        row = s[name]
        ratio = f"**{row['ratio_median']:.3f}**" if "ratio_median" in row else "1"
        target = (f"<= {row['target']}: **{'met' if row['target_met'] else 'MISSED'}**" if "target" in row else "baseline")
        cpu_ratio = f"{row['cpu_ratio_median']:.3f}" if "cpu_ratio_median" in row else "1"
        lines.append(f"| {LABELS[name]} | " + " | ".join(f"{v:.1f}" for v in row["wall_s"])
                     + f" | **{row['wall_median_s']:.1f}** | {ratio} | {target} | {row['cpu_median_s']:.1f} | {cpu_ratio} |")
    lines += ["", "Per-repeat wall ratios (each run against the plain run of the same round): " + "; ".join(
        f"{LABELS[n]}: {' / '.join(f'{v:.3f}' for v in s[n]['ratio_per_repeat'])}" for n in TARGETS if n in s) + ". "
        "Ratios of the fastest runs (least disturbed by the other agent's load): " + "; ".join(
        f"{LABELS[n]} {s[n]['ratio_min']:.3f}" for n in TARGETS if n in s) + ".", "",
        "lm-eval's own part (s) of each run, and the rest of the process (start-up, imports, and for pmd-harness the "
        "task index, model load, bank, results folder):", "",
        "| run | lm-eval part per repeat | median | wall minus it (median) | what the lm-eval part covers |",
        "|---|---|---:|---:|---|"]
    for name in RUNS:
        if name in s:
            covers = next(r["lm_eval_seconds_means"] for r in result["runs"] if r["run"] == name)
            lines.append(f"| {LABELS[name]} | {fmt(s[name]['lm_eval_seconds'])} | {s[name]['lm_eval_seconds_median']:.1f} | "
                         f"{s[name]['outside_lm_eval_median_s']:.1f} | {covers} |")
    if fixed:
        lines += ["", "## Start-up and fixed costs: one question, one token (s)", "",
                  f"The same three commands with `--limit 1` and max_gen_toks 1, {args.fixed_repeats} interleaved "
                  "repeat(s): what a run costs besides generation.", "",
                  "| run | wall per repeat | median | extra vs plain | CPU s (median) | extra CPU vs plain |",
                  "|---|---|---:|---:|---:|---:|"]
        for name in RUNS:
            if name in fixed:
                row = fixed[name]
                extra = f"{row['extra_median_s']:+.1f}" if "extra_median_s" in row else "–"
                extra_cpu = f"{row['extra_cpu_median_s']:+.1f}" if "extra_cpu_median_s" in row else "–"
                lines.append(f"| {LABELS[name]} | {fmt(row['wall_s'])} | {row['wall_median_s']:.1f} | {extra} | "
                             f"{row['cpu_median_s']:.1f} | {extra_cpu} |")
    if prof:
        names = [n for n in RUNS if n in prof and "phases_s" in prof[n]]
        phases = [p for p, _ in PHASES] + [NO_STACK, "other"]
        lines += ["", "Where that fixed time goes (py-spy, 100 Hz, one fixed-cost run each; py-spy itself slows the "
                  "process, so the sum exceeds the wall times above; a sample counts in the first matching row; an import is "
                  "counted in the phase that first triggers it, so compare totals rather than single import rows "
                  "across tools):", "",
                  "| phase | " + " | ".join(LABELS[n] for n in names) + " |", "|---|" + "---:|" * len(names)]
        for phase in phases:
            if any(prof[n]["phases_s"].get(phase) for n in names):
                lines.append(f"| {phase} | " + " | ".join(f"{prof[n]['phases_s'].get(phase, 0.0):.2f}" for n in names) + " |")
        lines.append("| **sampled total** | " + " | ".join(f"**{prof[n]['sampled_s']:.2f}**" for n in names) + " |")
    same = s.get("same_work", {})
    lines += ["", "## Conclusion", ""]
    for name in TARGETS:
        if name in s:
            row = s[name]
            lines.append(f"- **{LABELS[name]}: {row['ratio_median']:.3f} x plain lm_eval** (median wall "
                         f"{row['wall_median_s']:.1f} s vs {plain['wall_median_s']:.1f} s, {row['extra_median_s']:+.1f} s; "
                         f"CPU time {row['cpu_ratio_median']:.3f} x) -> target <= {row['target']} "
                         f"**{'met' if row['target_met'] else 'MISSED'}**.")
    if same:
        lines.append(f"- Same work (plain vs --no-memory, first repeat): prompts identical: "
                     f"{same['prompts_identical']}, generations identical: {same['responses_identical']}.")
    lines += [f"- {line}" for line in result.get("findings", [])]
    lines += ["", f"Raw numbers: [`{out.with_suffix('.json').name}`]({out.with_suffix('.json').name})."]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def findings(result: dict) -> list[str]:
    """Observations computed from the numbers (also rewritten by --report-only)."""
    s, fixed, prof = result["summary"], result.get("fixed_summary", {}), result.get("profiles", {})
    notes = []
    if "plain" in s and "plain" in fixed:
        gen = s["plain"]["wall_median_s"] - fixed["plain"]["wall_median_s"]
        notes.append(f"Of plain lm_eval's {s['plain']['wall_median_s']:.1f} s, about {fixed['plain']['wall_median_s']:.1f} s "
                     f"are fixed (start-up, task index, model load, results files) and {gen:.1f} s depend on the "
                     f"generated tokens; a fixed extra of 5% of the plain run is "
                     f"{0.05 * s['plain']['wall_median_s']:.1f} s.")
    for name in TARGETS:
        if name in fixed and "plain" in fixed:
            row = fixed[name]
            notes.append(f"Fixed costs, {LABELS[name]}: {row['extra_median_s']:+.1f} s wall / "
                         f"{row['extra_cpu_median_s']:+.1f} s CPU against plain lm_eval (one question, one token).")
    for name in TARGETS:
        if name in s and "plain" in s and name in fixed:
            var = s[name]["extra_median_s"] - fixed[name]["extra_median_s"]
            notes.append(f"{LABELS[name]}: of its {s[name]['extra_median_s']:+.1f} s median difference to plain, "
                         f"{fixed[name]['extra_median_s']:+.1f} s are fixed costs and {var:+.1f} s scale with the "
                         "questions and tokens" + (" (longer prompts with the memory block, retrieval per question)"
                                                   if name == "memory" else " (noise from the other agent's load)") + ".")
    dec = result.get("decomposition", {})
    if "longer_prompts_extra_s" in dec and "memory" in s:
        r = dec["retrieval"]
        g = dec["generate_median_s"]
        notes.append(f"The memory run's extra time, split in isolation (one process, same threads; model alone: "
                     f"`generate` of exactly {result['settings']['max_gen_toks']} tokens for each of the {dec.get('prompts', 12)} "
                     "prompts; "
                     f"median of {len(dec['generate_s']['plain'])}): the longer prompts with the memory block cost "
                     f"{dec['longer_prompts_extra_s']:+.1f} s of model time ({g['plain']:.1f} s -> {g['memory']:.1f} s, "
                     f"{100 * dec['longer_prompts_extra_s'] / g['plain']:+.0f}%); retrieval costs "
                     f"{dec['retrieval_total_s']:.1f} s in all (open the bank {r['open_s']:.2f} s, first query with "
                     f"MiniLM load and BM25 + dense index build {r['first_query_s']:.2f} s, the other "
                     f"{r['queries'] - 1} queries {r['other_queries_s']:.2f} s): together "
                     f"{dec['longer_prompts_extra_s'] + dec['retrieval_total_s']:.1f} s of the measured "
                     f"{s['memory']['extra_median_s']:+.1f} s; the remaining "
                     f"{s['memory']['extra_median_s'] - dec['longer_prompts_extra_s'] - dec['retrieval_total_s']:+.1f} s "
                     "are other costs and noise.")
    if prof and all("phases_s" in p for p in prof.values()):
        big = max((p for p, _ in PHASES), key=lambda ph: min(v["phases_s"].get(ph, 0.0) for v in prof.values()))
        notes.append("Largest fixed cost shared by all three: " + big.split(" (")[0] + " ("
                     + ", ".join(f"{LABELS[n]} {v['phases_s'].get(big, 0.0):.1f} s" for n, v in prof.items())
                     + " under py-spy)" + (": every process indexes all of lm-eval's built-in task configs although "
                                           f"`{TASK}` comes from pmd's `tasks/`" if big == PHASES[0][0] else "") + ".")
        if "memory" in prof:
            mem = prof["memory"]["phases_s"].get(PHASES[3][0], 0.0)
            notes.append(f"Memory work in the fixed-cost memory run (open the bank, load MiniLM, build the BM25 and "
                         f"dense indexes over {result['bank'].get('counts', {}).get('insight', '?')} + "
                         f"{result['bank'].get('counts', {}).get('behavior', '?')} entries, one retrieval): {mem:.1f} s "
                         "under py-spy.")
    return notes
