"""``pmd-harness eval``: memory-free, memory-transfer and test-time-scaling evaluation."""
from __future__ import annotations

import time
from pathlib import Path

import click

from pmd.errors import UserError, reports_user_errors
from .eval_report import results_table, scaling_table
from .evaluation import EvalSettings

EPILOG = """\b
Examples:
  # the trained policy on its own (avg@16 at T = 1)
  pmd-harness eval --model results/pmd-qwen3-8b-sciknoweval --tasks sciknoweval --no-memory --samples 16
  # a bank transferred to another model, with 1, 3 and 5 entries and the no-memory baseline (k = 0)
  pmd-harness eval --model Qwen/Qwen3-1.7B --tasks sciknoweval_physics \\
      --memory results/pmd-qwen3-8b-sciknoweval/memory.db --memory-k 0,1,3,5
  # co-evolved memory against frozen-policy memory, side by side
  pmd-harness eval --model Qwen/Qwen3-1.7B --tasks sciknoweval --memory pmd.db \\
      --compare-memory frozen-policy.db --memory-k 3
  # test-time scaling: maj@k vs best@k for k = 1, 2, 4, 8
  pmd-harness eval --model .demo/models/tiny-warm --tasks demo_mcq --samples 8 --scaling
"""


def int_list(ctx, param, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 1,3,5, got {value!r}") from None


def name_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_model_args(text: str) -> dict:
    args = {}
    for part in name_list(text):
        key, sep, value = part.partition("=")
        if not sep:
            raise UserError(f"--model-args takes key=value pairs separated by commas, got {part!r}")
        args[key.strip()] = value.strip()
    return args


def default_name(model: str, settings: EvalSettings) -> str:
    from .model_paths import resolve_model

    label = resolve_model(model).label.replace("/", "-").replace("@", "-")
    mode = "scaling" if settings.scaling else "memory" if settings.memory else "no-memory"
    return f"eval-{label}-{mode}-{time.strftime('%Y%m%d-%H%M%S')}"


@click.command(epilog=EPILOG)
@click.option("--model", "models", multiple=True, required=True,
              help="Model to evaluate (repeat for several): a Hugging Face folder, a pmd checkpoint "
                   "(checkpoints/step-N), a pmd-train run folder (its latest checkpoint) or a hub id.")
@click.option("--tasks", required=True, help="Comma-separated tasks or groups, e.g. sciknoweval,livecodebench.")
@click.option("--no-memory", is_flag=True, help="Evaluate the model on its own (the default without --memory).")
@click.option("--memory", type=click.Path(dir_okay=False), help="Memory bank (.db) whose entries are retrieved into each prompt.")
@click.option("--compare-memory", type=click.Path(dir_okay=False), help="A second bank evaluated side by side (e.g. frozen-policy memory).")
@click.option("--memory-k", callback=int_list, default="3", show_default=True,
              help="Entries retrieved per question; a list (0,1,3,5) gives accuracy vs k, 0 = no memory.")
@click.option("--retriever", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid", show_default=True)
@click.option("--levels", default="insight,behavior", show_default=True, help="Memory levels to retrieve from.")
@click.option("--samples", type=int, help="Answers per question (sampled at --temperature); default: the task's own.")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Sampling temperature when --samples > 1.")
@click.option("--scaling", is_flag=True, help="Report maj@k, best@k, headroom and coverage for k = 1, 2, 4 ... N.")
@click.option("--scaling-k", callback=int_list, help="The k values for --scaling (default powers of two up to N).")
@click.option("--max-gen-toks", type=int, help="Cap on generated tokens (default: the task's).")
@click.option("--limit", type=int, help="Evaluate only the first N questions of each task.")
@click.option("--backend", type=click.Choice(["hf", "vllm"]), default="hf", show_default=True)
@click.option("--model-args", default="", help="Extra backend arguments, e.g. dtype=bfloat16,tensor_parallel_size=2.")
@click.option("--batch-size", default="1", show_default=True, help="lm-eval batch size (a number or auto).")
@click.option("--device", help="Device for the hf backend (default: cuda when available, else cpu).")
@click.option("--chat-template/--no-chat-template", default=None,
              help="Apply the model's chat template (default: when the tokenizer has one).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="SciKnowEval split folder (<domain>/{train,test}.json).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--name", help="Results folder name under --output-dir (default: eval-<model>-<mode>-<time>).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"), show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing results folder (only once the new one is complete).")
@reports_user_errors
def eval_command(models, tasks, no_memory, memory, compare_memory, memory_k, retriever, levels, samples,
                 temperature, scaling, scaling_k, max_gen_toks, limit, backend, model_args, batch_size,
                 device, chat_template, data_dir, seed, name, output_dir, overwrite) -> None:
    """Evaluate models on pmd's lm-eval tasks: alone, with a memory bank, or with many samples.

    Writes results/<name>/ with the resolved settings, lm-eval's results and samples (with the
    memory each prompt was given), summary.json, summary.md and PNG plots.
    """
    if no_memory and (memory or compare_memory):
        raise UserError("--no-memory and --memory exclude each other; use --memory-k 0,3 for both in one run")
    settings = EvalSettings(
        models=list(models), tasks=name_list(tasks), name=name or "", output_dir=output_dir, memory=memory,
        compare_memory=compare_memory, memory_k=memory_k, retriever=retriever, levels=name_list(levels),
        samples=samples, temperature=temperature, scaling=scaling, scaling_k=scaling_k, max_gen_toks=max_gen_toks,
        limit=limit, backend=backend, model_args=parse_model_args(model_args), batch_size=batch_size,
        device=device, chat_template=chat_template, seed=seed,
        task_metadata={"sciknoweval_dir": str(Path(data_dir).resolve())} if data_dir else {}, overwrite=overwrite,
    )
    settings.validate()  # cheap checks first, before default_name resolves (and checks) the model
    if not settings.name:
        settings.name = default_name(settings.models[0], settings)
    from .eval_job import run_evaluation

    path, summary = run_evaluation(settings, echo=click.echo)
    print_summary(path, summary)


def print_summary(path: Path, summary: dict) -> None:
    from .tables import print_table

    print_table("Results (%)", *results_table(summary["runs"], summary["tasks"]))
    for task in summary["tasks"]:
        header, rows = scaling_table(summary["runs"], task)
        if rows:
            print_table(f"Test-time scaling: {task} (%)", header, rows)
    click.echo(f"results: {path}/summary.md" + (f" (plots: {', '.join(summary['plots'])})" if summary["plots"] else ""))
