"""``pmd-train``'s checks before anything is loaded or written: ``preflight(config, ...)``.

A real run and ``--dry-run`` call the same function, so a dry run refuses what a real run refuses.
Every problem is one ``ConfigError`` (a ``ValueError``) whose message names the setting and the
fix; the command line prints it as ``error: ...`` and exits non-zero with nothing written. What
is only worth knowing comes back as note lines.

What is checked, in this order:

1. Contradictions: settings the run would silently ignore (see "What counts as set" below).
2. ``data.task`` names a known task.
3. Models: ``model.name_or_path``, ``reflection.model`` (``reflection.source: model``) and
   ``memory.retrieval.embedding_model`` when it is a local path (``pmd.model_check``: config,
   tokenizer with a chat template, complete weights; only small files are read).
4. Data: ``data.path`` exists, and every line of the task's train and test split files parses
   (``tasks/*/loader.py``: the file, line number and field of the first bad record).
5. ``memory.mode: frozen``: ``memory.bank`` is a readable bank that holds memory, embedded with
   ``memory.retrieval.embedding_model`` (a frozen bank cannot be re-embedded).
6. ``rollout.engine: vllm``: vLLM is installed; ``logging.wandb.project``: wandb is installed.

Local against remote: a path (model folder, data file, bank) that does not exist or is broken is
an error in both modes. What only the machine that trains needs is an error only in a real run and
a note under ``--dry-run``, which loads no weights and no data from the hub: a hub model id that is
not in the local cache (a real run needs it cached when the hub is offline, ``HF_HUB_OFFLINE=1``),
task data that comes from the hub or from ``PMD_SCIKNOWEVAL_DIR`` when ``data.path`` is null, and
vLLM being installed.

What counts as set: the shipped baselines are their PMD sibling with another ``algorithm`` line, and
``--set algorithm=sdpo`` on a PMD file is the documented way to run a baseline, so a memory section
inherited that way is not a contradiction. A setting the run ignores (memory and reflection
settings without PMD's memory, teacher settings under GRPO, ``memory.bank`` outside frozen mode,
``teacher.ema_rate`` with a live teacher, vLLM sizes with the hf engine, reflection endpoint
settings without an endpoint) is

* an error when it differs from the default and comes from the same place as the setting that
  makes it ignored: both in the config file (defaults count as the file's), or both given with
  ``--set``;
* a note when it is given with ``--set`` and the file decides that it is ignored (one override
  applied to a sweep of files), and nothing when the file wrote it and ``--set`` made it ignored
  (a PMD file run as a baseline with ``--set algorithm=sdpo``).

Settings that choose an ablation are errors wherever they come from: ``memory.mode`` other than
persistent, ``reflection.source`` other than policy or ``policy.frozen`` without PMD; a GRPO run
with teacher settings other than the defaults (``teacher.update``, ``ema_rate``, ``include_*``,
``priority``); ``loss.kl_coef`` > 0 without GRPO; frozen memory with a frozen policy or with a
reflection source. Token budgets and loss settings are not checked: the shipped baselines keep
their PMD sibling's ``teacher.context_budget_tokens``, ``loss.alpha`` and ``loss.top_k``.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pmd.config import ConfigError, read_yaml
from trainer.config import TrainConfig

# Teacher settings a GRPO run (no teacher) must leave at their defaults; a token budget is exempt.
TEACHER_BEHAVIOR = ("update", "ema_rate", "include_solution", "include_feedback", "feedback_with_solution",
                    "feedback_on_success", "dont_reprompt_on_self_success", "remove_thinking_from_demonstration",
                    "remove_reasoning_from_demonstration", "priority")
_FROZEN_IGNORES = ("memory.behavior_every", "memory.behavior_warmup", "memory.insights_per_question")


def preflight(config: TrainConfig, *, dry_run: bool = False, config_path: str | Path | None = None,
              overrides: Sequence[str] = (), bank_made_earlier: bool = False) -> list[str]:
    """Check ``config`` (built from ``config_path`` and ``overrides``) before a run or a dry run;
    raise ``ConfigError`` for the first problem, return note lines (see the module docstring).
    ``bank_made_earlier``: a frozen ``memory.bank`` that an earlier run of an experiment will
    write is not checked yet (only noted)."""
    notes: list[str] = []
    check_ablation_settings(config)
    notes += check_ignored_settings(config, config_path, overrides)
    task = check_task(config)
    notes += check_models(config, dry_run=dry_run)
    notes += check_data(config, task, dry_run=dry_run)
    if bank_made_earlier:
        notes.append(f"memory.bank {config.memory.bank} is made by an earlier run; checked when this run starts")
    else:
        check_frozen_bank(config)
    notes += check_engine(config, dry_run=dry_run)
    notes += check_logging(config, dry_run=dry_run)
    return notes


# ----------------------------------------------------------------- contradictions
def _value(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = getattr(config, part)
    return config


def _changed(config: TrainConfig, key: str, default: TrainConfig) -> bool:
    return _value(config, key) != _value(default, key)


def check_ablation_settings(config: TrainConfig) -> None:
    """Settings that choose an ablation the algorithm does not have: errors from any source."""
    algorithm, memory, default = config.algorithm, config.memory, TrainConfig()
    if algorithm != "pmd":
        if memory.mode != "persistent":
            raise ConfigError(f"memory.mode is '{memory.mode}' but algorithm '{algorithm}' has no memory; the memory "
                              "ablations are algorithm pmd: set algorithm=pmd, or remove memory.mode")
        if config.reflection.source != "policy":
            raise ConfigError(f"reflection.source is '{config.reflection.source}' but algorithm '{algorithm}' has no "
                              "memory, so nothing reflects: set algorithm=pmd, or remove the reflection settings")
        if config.policy.frozen:
            raise ConfigError(f"policy.frozen is true but algorithm '{algorithm}' would then learn nothing (no optimizer "
                              "step, no memory); the frozen-policy ablation is algorithm: pmd with policy.frozen: true")
    if algorithm == "grpo":
        for name in TEACHER_BEHAVIOR:
            if _changed(config, f"teacher.{name}", default):
                raise ConfigError(f"teacher.{name} is {_value(config, 'teacher.' + name)!r} but algorithm 'grpo' has no "
                                  "teacher; remove the teacher settings, or use algorithm sdpo or pmd")
    elif config.loss.kl_coef > 0:
        raise ConfigError(f"loss.kl_coef is {config.loss.kl_coef} but only algorithm 'grpo' has a KL term to a reference "
                          f"model ('{algorithm}' distills from its teacher); set loss.kl_coef=0 or algorithm=grpo")
    if algorithm == "pmd" and memory.mode == "frozen":
        if config.policy.frozen:
            raise ConfigError("policy.frozen is true and memory.mode is 'frozen': nothing would change (no optimizer step, "
                              "a read-only bank); unfreeze one of them")
        if config.reflection.source != "policy":
            raise ConfigError(f"reflection.source is '{config.reflection.source}' but memory.mode 'frozen' never "
                              "reflects (the bank is read-only); remove the reflection settings or use memory.mode "
                              "persistent")


def why_ignored(config: TrainConfig, key: str) -> tuple[str, tuple[str, ...], str] | None:
    """``(reason, deciding settings, fix)`` when this run ignores setting ``key``, else None."""
    section, algorithm, memory = key.split(".")[0], config.algorithm, config.memory
    if section in ("memory", "reflection") and algorithm != "pmd":
        return f"algorithm '{algorithm}' uses no memory", ("algorithm",), "use algorithm pmd for memory"
    if section == "teacher" and algorithm == "grpo" and key != "teacher.context_budget_tokens":
        return "algorithm 'grpo' has no teacher", ("algorithm",), "use algorithm sdpo or pmd for a teacher"
    if key == "memory.bank" and memory.mode != "frozen":
        run_bank = f"{config.run.output_dir}/{config.run.name}/memory.db"
        return (f"memory.mode is '{memory.mode}', which starts an empty bank in {run_bank} (a given bank is read only "
                "in frozen mode)"), ("memory.mode",), "set memory.mode frozen"
    if memory.mode == "frozen" and (key in _FROZEN_IGNORES or section == "reflection"):
        return "memory.mode is 'frozen' and the bank is never updated", ("memory.mode",), "use memory.mode persistent"
    if key == "teacher.ema_rate" and config.teacher.update == "live":
        return "teacher.update is 'live', which keeps no EMA copy", ("teacher.update",), "set teacher.update ema"
    if key in ("rollout.gpu_memory_utilization", "rollout.max_model_len") and config.rollout.engine == "hf":
        return "rollout.engine is 'hf', and this sizes the vLLM engine only", ("rollout.engine",), "set rollout.engine vllm"
    reflection = config.reflection.source
    if (key == "reflection.model" and reflection == "policy") or (
            key in ("reflection.base_url", "reflection.api_key_env", "reflection.retries") and reflection != "endpoint"):
        return (f"reflection.source is '{reflection}'", ("reflection.source",),
                "set reflection.source endpoint (or model, for reflection.model)")
    return None


def _override_keys(overrides: Sequence[str]) -> list[str]:
    return [item.split("=", 1)[0].strip() for item in overrides]


def _covered(key: str, given: Sequence[str]) -> bool:
    """Whether ``key`` was given, itself or as part of a section (``--set memory={...}``)."""
    return any(key == g or key.startswith(g + ".") for g in given)


def _file_keys(data: dict, node: Any, prefix: str = "") -> list[str]:
    """Dotted keys of the leaves a config file wrote (sections walked along the config)."""
    keys = []
    for name, value in data.items():
        key = f"{prefix}{name}"
        child = getattr(node, name, None)
        if dataclasses.is_dataclass(child) and isinstance(value, dict):
            keys += _file_keys(value, child, key + ".")
        else:
            keys.append(key)
    return keys


def check_ignored_settings(config: TrainConfig, config_path: str | Path | None, overrides: Sequence[str]) -> list[str]:
    """Ignored settings that differ from their defaults: an error when the setting and what makes it
    ignored come from the same place (file, or --set), else a note (see the module docstring)."""
    default, given = TrainConfig(), list(dict.fromkeys(_override_keys(overrides)))
    from_file = [k for k in _file_keys(read_yaml(config_path), config) if not _covered(k, given)] if config_path else []
    notes = []
    for key, on_command_line in [(k, False) for k in from_file] + [(k, True) for k in given]:
        why = why_ignored(config, key)
        if why is None or not _changed(config, key, default):
            continue
        reason, deciders, fix = why
        decided_on_command_line = any(_covered(d, given) for d in deciders)
        value = _value(config, key)
        if on_command_line and decided_on_command_line:
            decided = ", ".join(f"--set {d}={_value(config, d)}" for d in deciders)
            raise ConfigError(f"--set {key}={value} has no effect: {reason} ({decided}); drop it, or {fix}")
        if not on_command_line and not decided_on_command_line:
            raise ConfigError(f"{key} is {value!r} in {config_path} but {reason}; remove it from the file, or {fix}")
        if on_command_line:  # an override that does nothing; a file's section inherited by --set is not news
            notes.append(f"note: --set {key}={value} is ignored: {reason}")
    return notes


# ----------------------------------------------------------------- task, models, data, bank
def check_task(config: TrainConfig):
    """The registered task ``data.task`` names (unknown: the closest name or the known ones)."""
    from tasks.registry import get_task

    try:
        return get_task(config.data.task)
    except ValueError as err:
        raise ConfigError(f"data.task: {err}") from None


def _looks_local(spec: str) -> bool:
    from pmd.model_check import looks_like_hub_id

    return Path(spec).expanduser().exists() or not looks_like_hub_id(spec)


def _in_hub_cache(spec: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(spec, "config.json"), str)


def check_model(spec: str, what: str, *, dry_run: bool) -> list[str]:
    """A chat model ``spec`` (local folder or hub id) as ``pmd.model_check`` checks it; under
    ``dry_run`` a hub id that is not cached is a note (nothing is loaded)."""
    from pmd.model_check import check_model_spec

    if dry_run and not _looks_local(spec):
        if _in_hub_cache(spec):
            return []
        return [f"note: {what} {spec} is a hub id not in the local cache; --dry-run loads no weights, a real run "
                "downloads it (or stops when the hub is offline)"]
    check_model_spec(spec, what=what, chat_template=True)
    return []


def check_embedder(spec: str) -> None:
    """``memory.retrieval.embedding_model`` when it is a local folder (hub ids and ``hash-*`` are
    resolved by ``memory_bank.embedding``)."""
    from pmd.model_check import check_model_folder

    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")):
        check_model_folder(spec, what="memory.retrieval.embedding_model")


def check_models(config: TrainConfig, *, dry_run: bool) -> list[str]:
    notes = check_model(config.model.name_or_path, "model.name_or_path", dry_run=dry_run)
    if config.uses_memory and config.reflection.source == "model":
        notes += check_model(config.reflection.model, "reflection.model", dry_run=dry_run)
    if config.uses_memory:
        check_embedder(config.memory.retrieval.embedding_model)
    return notes


def hub_dataset_cached(repo: str) -> bool:
    from huggingface_hub import constants

    org, name = repo.split("/", 1)
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE") or Path(constants.HF_HOME) / "datasets")
    hub_copy = Path(constants.HF_HUB_CACHE) / f"datasets--{org}--{name}"
    return hub_copy.is_dir() or (datasets_cache / f"{org}___{name}").is_dir()


def check_data(config: TrainConfig, task, *, dry_run: bool) -> list[str]:
    """``data.path`` exists and both splits parse; hub data (``data.path`` null) is loaded by the
    run itself, so here it must only be reachable: cached when the hub is offline."""
    from pmd.model_check import hub_offline

    given = config.data.path
    path = Path(given).expanduser() if given else None
    if path is not None and not path.exists():
        raise ConfigError(f"data.path: {path} does not exist; point it at the task's split file or at a folder holding "
                          f"its train/test split files (or set data.path=null for the task's default data)")
    if path is None and task.hub is not None:
        if dry_run:
            return [f"note: data.task {task.name} loads {task.hub} from the hub; --dry-run does not load it"]
        offline = hub_offline() or os.environ.get("HF_DATASETS_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")
        if offline and not hub_dataset_cached(task.hub):
            raise ConfigError(f"data.task {task.name} loads {task.hub} from the hub, which is offline (HF_HUB_OFFLINE=1) "
                              "and has no cached copy; set data.path to local JSONL files, or run once online")
        return []
    from tasks.registry import NoDataGiven

    where = "data.path" if path is not None else f"data.task {task.name}"
    try:
        for split in ("train", "test"):
            task.split(path, split)
    except NoDataGiven as err:
        missing = (f"data.task {task.name} has no data: set data.path (a split file or a folder of them) or "
                   f"{err.variable}; `{err.build}` builds the files")
        if dry_run:
            return [f"note: {missing}; --dry-run goes on without it"]
        raise ConfigError(missing) from None
    except (FileNotFoundError, ValueError) as err:  # the loaders name the file, line and field
        message = str(err) if path is None or str(path) in str(err) else f"{path}: {err}"
        raise ConfigError(f"{where}: {message}") from None
    return []


def _embedder_name(spec: str) -> str:
    """The name a bank records for embedding model ``spec`` (aliases resolved, nothing loaded)."""
    from memory_bank.embedding import DEFAULT_EMBEDDING_MODEL, load_embedder

    if spec in ("all-MiniLM-L6-v2", DEFAULT_EMBEDDING_MODEL):
        return DEFAULT_EMBEDDING_MODEL
    return load_embedder(spec).name if spec.startswith("hash") else spec


def check_frozen_bank(config: TrainConfig) -> None:
    """Frozen memory reads ``memory.bank`` and never writes it: it must open read-only, hold some
    memory, and match the retrieval embedder when retrieval is dense."""
    if not (config.uses_memory and config.memory.mode == "frozen"):
        return
    from memory_bank import MemoryBank
    from memory_bank.errors import BankError

    path = Path(config.memory.bank).expanduser()
    try:
        with MemoryBank.open(path, readonly=True) as bank:
            counts, stored = bank.counts(), bank.embedding_model
    except BankError as err:
        raise ConfigError(f"memory.bank: {err}") from None
    if not any(counts.get(level, 0) for level in ("experience", "insight", "behavior")):
        raise ConfigError(f"memory.bank: {path} holds no memory (no experiences, insights or behaviors), so frozen memory "
                          "would add nothing; point it at the memory.db of a PMD run, or use memory.mode persistent")
    retrieval = config.memory.retrieval
    if stored is not None and retrieval.mode != "bm25" and _embedder_name(retrieval.embedding_model) != stored:
        raise ConfigError(f"memory.bank: {path} was embedded with {stored!r} but memory.retrieval.embedding_model is "
                          f"{retrieval.embedding_model!r}, and a frozen bank cannot be re-embedded; set "
                          f"memory.retrieval.embedding_model={stored}")


def check_engine(config: TrainConfig, *, dry_run: bool) -> list[str]:
    """``rollout.engine: vllm`` needs vLLM where the run happens (a note under ``dry_run``)."""
    if config.rollout.engine != "vllm" or importlib.util.find_spec("vllm") is not None:
        return []
    message = "rollout.engine 'vllm' needs vLLM, which is not installed here"
    if dry_run:
        return [f"note: {message}; the machine that trains needs it"]
    raise ConfigError(f"{message}: pip install -e '.[vllm]', or set rollout.engine=hf")


def check_logging(config: TrainConfig, *, dry_run: bool) -> list[str]:
    """``logging.wandb.project`` needs the wandb package where the run happens (a note under ``dry_run``)."""
    if not config.logging.wandb.project or importlib.util.find_spec("wandb") is not None:
        return []
    message = "logging.wandb.project is set but the wandb package is not installed here"
    if dry_run:
        return [f"note: {message}; the machine that trains needs it"]
    raise ConfigError(f"{message}: pip install wandb, or set logging.wandb.project=null")
