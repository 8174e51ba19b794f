"""``pmd-train``: resolve a training configuration and run it."""
from __future__ import annotations

import json
import os

import click

from pmd.errors import reports_user_errors


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML file with a TrainConfig.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one field, type-checked, e.g. --set optim.lr=1e-6 (repeatable).")
@click.option("--dry-run", is_flag=True,
              help="Print the resolved configuration, the plan and the per-GPU memory plan; load no weights, and stop.")
@click.option("--gpus", type=click.IntRange(min=1), default=None,
              help="With --dry-run: GPUs (data-parallel ranks) to plan memory for. Default: hardware.gpus of the config.")
@click.option("--gpu-memory-gib", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --dry-run: memory of one GPU in GiB. Default: hardware.gpu_memory_gib of the config.")
@click.option("--json", "as_json", is_flag=True,
              help="With --dry-run: print one JSON object with config, plan and memory_plan instead of text.")
@click.option("--resume", is_flag=True,
              help="Continue results/<run.name> from its newest intact checkpoint (one that verifies against "
                   "its manifest); a run with no checkpoint yet starts from step 0.")
# The deepspeed launcher passes --local_rank=N; the rank is read from the environment instead.
@click.option("--local_rank", "--local-rank", "local_rank", type=int, default=None, hidden=True)
@reports_user_errors
def main(config_path: str | None, overrides: tuple[str, ...], dry_run: bool, gpus: int | None,
         gpu_memory_gib: float | None, as_json: bool, resume: bool, local_rank: int | None) -> None:
    """Run PMD policy-memory co-evolution training (or a GRPO / SDPO baseline, or an ablation).

    Writes results/<run.name>/: config.yaml, metrics.jsonl, memory.db and checkpoints/step-N/
    (Hugging Face weights, DeepSpeed state, bank snapshot). Multi-process: launch with torchrun or
    deepspeed, e.g. `torchrun --nproc_per_node 8 -m trainer.cli --config ...` or
    `deepspeed --num_gpus 8 --module trainer.cli --config ...`.

    Before anything is loaded or written, the configuration is checked (trainer/preflight.py), by
    a real run and by --dry-run alike: contradictory settings (e.g. memory settings with algorithm
    grpo, frozen memory without a bank that holds memory), the task name, the model folders, every
    record of the data files, the frozen bank. A problem is one `error:` line, exit code 2.
    Local paths that are missing or broken are errors in both modes. What only the machine that
    trains needs is an error in a real run but a `note:` line under --dry-run, which loads no
    weights: a hub model id that is not in the local cache (a real run needs it cached when the hub
    is offline, HF_HUB_OFFLINE=1), task data from the hub or PMD_SCIKNOWEVAL_DIR when data.path is
    null, and vLLM for rollout.engine vllm.

    A setting the run would ignore (memory settings without algorithm pmd, teacher settings under
    grpo, memory.bank outside memory.mode frozen, ...) is an error when it comes from the same
    place as what makes it ignored (both in the file, or both --set), and a note when it is --set
    on a file that ignores it; a PMD file run with --set algorithm=sdpo is fine. Choosing an
    ablation the algorithm lacks (memory.mode, reflection.source, policy.frozen without pmd) is
    always an error.

    --dry-run also prints a per-GPU memory plan (parameters, gradients and optimizer states for
    the ZeRO stage and offload settings, activations, the loss, the EMA teacher, generation's KV
    cache) against the GPUs the config was written for (its hardware section, or --gpus and
    --gpu-memory-gib), with a verdict and, when it does not fit, settings that would make it fit.
    A plan that does not fit is still a report: the exit code is 0.

    \b
    Examples:
      pmd-train --config trainer/configs/demo_cpu.yaml
      pmd-train --config trainer/configs/demo_cpu.yaml --set algorithm=sdpo --set run.name=demo-sdpo
      pmd-train --config trainer/configs/qwen3_8b_sciknoweval_pmd.yaml --dry-run
      pmd-train --config trainer/configs/qwen3_8b_sciknoweval_pmd.yaml --dry-run --gpus 1 --set deepspeed.zero_stage=0
      pmd-train --config trainer/configs/olmo3_7b_lcb_pmd.yaml --dry-run --gpu-memory-gib 40 --json
      pmd-train --config trainer/configs/demo_cpu.yaml --resume
    """
    from pmd.config import dump_yaml, load_config
    from trainer.config import TrainConfig
    from trainer.plan import describe_plan
    from trainer.preflight import preflight

    if not dry_run and (gpus is not None or gpu_memory_gib is not None or as_json):
        raise click.UsageError("--gpus, --gpu-memory-gib and --json go with --dry-run")
    config = load_config(TrainConfig, config_path, overrides)
    notes = preflight(config, dry_run=dry_run, config_path=config_path, overrides=overrides)
    if os.environ.get("RANK", "0") == "0":  # one copy of the notes under torchrun / deepspeed
        for note in notes:
            click.echo(note, err=True)
    if dry_run:
        from pmd.config import to_dict
        from trainer.memory_plan import memory_plan

        if not as_json:
            click.echo(dump_yaml(config), nl=False)
            click.echo(describe_plan(config))
        memory = memory_plan(config, gpus=gpus, gpu_memory_gib=gpu_memory_gib)
        if as_json:
            click.echo(json.dumps({"config": to_dict(config), "plan": describe_plan(config),
                                   "memory_plan": memory.to_dict()}, indent=2))
        else:
            click.echo(memory.render())
        return
    from trainer.loop import train

    last = train(config, resume=resume)
    if last:
        click.echo(f"done: {config.run.output_dir}/{config.run.name} (last step: reward {last.get('reward/mean', 0):.3f})")


if __name__ == "__main__":
    main()
