"""The experiment file: a typed config like the others (``pmd.config``), e.g.

.. code-block:: yaml

    name: ablations-qwen3-8b
    base_config: trainer/configs/qwen3_8b_sciknoweval_pmd.yaml
    base_overrides: [data.max_steps=200]
    variants:
      grpo: {config: trainer/configs/qwen3_8b_sciknoweval_grpo.yaml}
      sdpo: {overrides: [algorithm=sdpo]}
      pmd: {}
    baseline: grpo
    seeds: [0, 1, 2]
    evaluation: {tasks: [sciknoweval], samples: 4, scaling: true}

A variant is a training config (its own ``config``, else ``base_config``) plus ``base_overrides``
and its own ``overrides`` (``--set`` syntax, applied in that order), and ``run.seed`` set to each
seed. In overrides, ``{root}`` is the experiment's folder and ``{seed}`` the run's seed, so a
variant can use what an earlier one made, e.g. frozen memory from the PMD run of the same seed:
``memory.bank={root}/runs/pmd-s{seed}/memory.db`` (variants run in the order written). Paths are
relative to the working directory, like every other config path.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pmd.config import ConfigError, load_config

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class VariantSpec:
    config: str | None = None            # a training config of its own (default: base_config)
    overrides: list[str] = field(default_factory=list)


@dataclass
class EvaluationSpec:
    tasks: list[str] = field(default_factory=lambda: ["demo_mcq"])
    samples: int = 1                     # answers per question (sampled at temperature when > 1)
    scaling: bool = False                # maj@k / best@k curves (needs samples > 1)
    temperature: float = 1.0
    max_gen_toks: int | None = None
    limit: int | None = None             # first N questions of each task (quick checks)
    data_dir: str | None = None          # SciKnowEval split folder, when the task needs one
    extra_args: list[str] = field(default_factory=list)  # more `pmd-harness eval` arguments

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("evaluation.tasks must name at least one task")
        if self.samples < 1:
            raise ValueError(f"evaluation.samples must be at least 1, got {self.samples}")
        if self.scaling and self.samples < 2:
            raise ValueError("evaluation.scaling needs evaluation.samples of 2 or more")
        if self.temperature < 0:
            raise ValueError(f"evaluation.temperature must be >= 0, got {self.temperature}")
        for key in ("max_gen_toks", "limit"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"evaluation.{key} must be at least 1 (or null), got {value}")


@dataclass
class ExperimentConfig:
    name: str = ""
    output_dir: str = "results"
    base_config: str | None = None
    base_overrides: list[str] = field(default_factory=list)
    variants: dict[str, VariantSpec] = field(default_factory=dict)
    baseline: str | None = None          # paired differences against it (default: the first variant)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    # How each training run is launched: {python} and {args} are filled in; e.g.
    # "torchrun --nproc_per_node 8 -m trainer.cli {args}" or "deepspeed --num_gpus 8 --module trainer.cli {args}".
    launcher: str = "{python} -m trainer.cli {args}"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name or ""):
            raise ValueError(f"name {self.name!r} must be a plain folder name (letters, digits, '-', '_', '.')")
        if not self.variants:
            raise ValueError("variants must name at least one variant")
        for variant, spec in self.variants.items():
            if not _NAME.match(variant):
                raise ValueError(f"variant name {variant!r} must be a plain name (letters, digits, '-', '_', '.')")
            if spec.config is None and self.base_config is None:
                raise ValueError(f"variants.{variant} has no config and there is no base_config")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        if self.baseline is None:
            self.baseline = next(iter(self.variants))
        elif self.baseline not in self.variants:
            raise ValueError(f"baseline {self.baseline!r} is not a variant; choose one of {', '.join(self.variants)}")
        if "{args}" not in self.launcher:
            raise ValueError("launcher must contain {args} (where pmd-train's arguments go)")

    @property
    def folder(self) -> Path:
        return Path(self.output_dir) / self.name

    def variant_config_path(self, variant: str) -> str:
        return self.variants[variant].config or self.base_config

    def variant_overrides(self, variant: str, seed: int) -> list[str]:
        """The variant's overrides for one seed, ``{root}`` and ``{seed}`` filled in."""
        return [item.replace("{root}", str(self.folder)).replace("{seed}", str(seed))
                for item in (*self.base_overrides, *self.variants[variant].overrides)]


def load_experiment(path: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """Read and validate an experiment file; every variant's training config must exist."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"experiment file {path} not found")
    experiment = load_config(ExperimentConfig, path, list(overrides))
    for variant in experiment.variants:
        config = experiment.variant_config_path(variant)
        if not Path(config).is_file():
            raise ConfigError(f"{path}: variants.{variant}: training config {config} not found")
    return experiment
