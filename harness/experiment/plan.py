"""The runs of an experiment, where each one lives, what state it is in, and its commands.

``results/<experiment>/``::

    experiment.yaml          the resolved experiment file
    runs/<variant>-s<seed>/  the pmd-train run folder (checkpoints, metrics.jsonl, memory.db)
    evals/<variant>-s<seed>/ the memory-free pmd-harness eval folder of its final checkpoint
    state/<run>.json         what is done (trained, evaluated) and how long it took
    logs/<run>.{train,eval}.log
    locks/<run>.lock         held (flock) by the job working on the run
    report/                  ``pmd-harness experiment report``
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from .spec import ExperimentConfig


@dataclass(frozen=True)
class Run:
    variant: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.variant}-s{self.seed}"


def plan_runs(experiment: ExperimentConfig, only: list[str] | None = None, seeds: list[int] | None = None) -> list[Run]:
    """Every (variant, seed), variant-major, narrowed by ``only`` and ``seeds``."""
    for variant in only or ():
        if variant not in experiment.variants:
            raise ValueError(f"--only {variant}: not a variant of {experiment.name} ({', '.join(experiment.variants)})")
    for seed in seeds or ():
        if seed not in experiment.seeds:
            raise ValueError(f"--seeds {seed}: not a seed of {experiment.name} ({', '.join(map(str, experiment.seeds))})")
    return [Run(variant, seed) for variant in experiment.variants if not only or variant in only
            for seed in experiment.seeds if not seeds or seed in seeds]


@dataclass(frozen=True)
class Layout:
    root: Path

    def train_dir(self, run: Run) -> Path:
        return self.root / "runs" / run.name

    def eval_dir(self, run: Run) -> Path:
        return self.root / "evals" / run.name

    def log(self, run: Run, phase: str) -> Path:
        return self.root / "logs" / f"{run.name}.{phase}.log"

    def lock(self, run: Run) -> Path:
        return self.root / "locks" / f"{run.name}.lock"

    def state_file(self, run: Run) -> Path:
        return self.root / "state" / f"{run.name}.json"

    def state(self, run: Run) -> dict:
        try:
            return json.loads(self.state_file(run).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def mark(self, run: Run, **facts) -> None:
        """Record facts about ``run`` (atomically: a reader never sees half a file)."""
        path = self.state_file(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps({**self.state(run), **facts}, indent=2), encoding="utf-8")
        os.replace(tmp, path)

    def status(self, run: Run) -> str:
        """``evaluated``, ``trained`` (evaluation to do), ``started`` (to resume) or ``to do``."""
        if (self.eval_dir(run) / "summary.json").is_file():
            return "evaluated"
        if self.state(run).get("trained"):
            return "trained"
        if self.train_dir(run).exists():
            return "started"
        return "to do"


def train_overrides(experiment: ExperimentConfig, run: Run, layout: Layout) -> list[str]:
    """The variant's overrides, then where the run goes, its seed and its W&B group (these always
    win; the group only matters when the config logs to W&B, whose run name is then the run's)."""
    return [*experiment.variant_overrides(run.variant, run.seed), f"run.output_dir={layout.root / 'runs'}",
            f"run.name={run.name}", f"run.seed={run.seed}", f"logging.wandb.group={experiment.name}"]


def train_command(experiment: ExperimentConfig, run: Run, layout: Layout) -> list[str]:
    """``pmd-train`` through the experiment's launcher, always with ``--resume`` (a run that has
    not started starts from step 0; an interrupted one continues from its newest intact checkpoint)."""
    args = ["--config", experiment.variant_config_path(run.variant)]
    for item in train_overrides(experiment, run, layout):
        args += ["--set", item]
    args.append("--resume")
    line = experiment.launcher.format(python=shlex.quote(sys.executable), args=shlex.join(args))
    return shlex.split(line)


def eval_command(experiment: ExperimentConfig, run: Run, layout: Layout) -> list[str]:
    """Memory-free evaluation of the run's final checkpoint on the tasks' test splits."""
    spec = experiment.evaluation
    command = [sys.executable, "-m", "harness.cli", "eval", "--model", str(layout.train_dir(run)),
               "--tasks", ",".join(spec.tasks), "--no-memory", "--samples", str(spec.samples),
               "--temperature", str(spec.temperature), "--seed", str(run.seed), "--name", run.name,
               "--output-dir", str(layout.root / "evals")]
    if spec.scaling:
        command.append("--scaling")
    for flag, value in (("--max-gen-toks", spec.max_gen_toks), ("--limit", spec.limit), ("--data-dir", spec.data_dir)):
        if value is not None:
            command += [flag, str(value)]
    return command + list(spec.extra_args)
