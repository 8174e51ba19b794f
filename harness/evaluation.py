"""``pmd-harness eval`` as a library: plan the runs, evaluate each through lm-eval, collect results.

One evaluation is a grid of *runs*: every ``--model`` with no memory, or with each bank
(``--memory`` and ``--compare-memory``) at each ``--memory-k`` (k = 0 in the list means the same
model without memory, the baseline of the paper's "more entries" curve). A model is loaded once
and shared by all its runs; memory runs wrap it in ``MemoryAugmentedLM``. Each run goes through
``lm_eval.simple_evaluate`` with samples logged, so every number can be traced to the
generations and, for memory runs, to the entries each prompt was given.

With ``samples = N`` every question is answered N times at ``temperature`` (avg@N); with
``scaling`` the samples are graded one by one (``tasks.grading``) into maj@k / best@k / coverage
curves (``harness.scaling``).
"""
from __future__ import annotations

import difflib
import importlib.util
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .model_paths import ResolvedModel, resolve_model

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"
BACKENDS = ("hf", "vllm")
_BATCH_SIZE = re.compile(r"^(\d+|auto(:\d+)?)$")
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")


@dataclass
class EvalSettings:
    models: list[str]
    tasks: list[str]
    name: str
    output_dir: Path = Path("results")
    memory: str | None = None
    compare_memory: str | None = None
    memory_k: list[int] = field(default_factory=lambda: [3])
    retriever: str = "hybrid"
    levels: list[str] = field(default_factory=lambda: ["insight", "behavior"])
    samples: int | None = None          # None: each task's own number of samples (repeats)
    temperature: float = 1.0            # used when samples > 1
    top_p: float = 1.0
    scaling: bool = False
    scaling_k: list[int] | None = None  # default: 1, 2, 4, ..., samples
    max_gen_toks: int | None = None     # None: each task's own limit
    limit: int | None = None
    backend: str = "hf"
    model_args: dict = field(default_factory=dict)
    batch_size: str = "1"
    device: str | None = None           # hf backend; None: cuda when available, else cpu
    chat_template: bool | None = None   # None: apply the model's chat template when it has one
    seed: int = 0
    task_metadata: dict = field(default_factory=dict)
    overwrite: bool = False

    def validate(self) -> None:
        """Raise ``ValueError`` with the fix for inconsistent settings (before anything loads)."""
        if not self.models:
            raise ValueError("give at least one --model")
        if not self.tasks:
            raise ValueError("give at least one task with --tasks")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}: choose {' or '.join(BACKENDS)}")
        if self.backend == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ValueError("--backend vllm needs vLLM: pip install -e '.[vllm]' (on a CUDA machine)")
        if self.compare_memory and not self.memory:
            raise ValueError("--compare-memory needs --memory (the bank to compare it with)")
        if any(k < 0 for k in self.memory_k) or not self.memory_k:
            raise ValueError(f"--memory-k takes entry counts >= 0 (0 = no memory), got {self.memory_k}")
        if self.samples is not None and self.samples < 1:
            raise ValueError(f"--samples must be at least 1, got {self.samples}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be at least 1 question per task, got {self.limit} "
                             "(leave it out to evaluate every question)")
        if self.max_gen_toks is not None and self.max_gen_toks < 1:
            raise ValueError(f"--max-gen-toks must be at least 1, got {self.max_gen_toks}")
        if self.temperature < 0:
            raise ValueError(f"--temperature must be >= 0, got {self.temperature}")
        if not _BATCH_SIZE.match(str(self.batch_size)) or re.fullmatch(r"(auto:)?0+", str(self.batch_size)):
            raise ValueError(f"--batch-size takes a number >= 1, auto or auto:N, got {self.batch_size!r}")
        if self.device is not None and not _DEVICE.match(self.device):
            raise ValueError(f"unknown --device {self.device!r}: use cpu, cuda or cuda:N")
        if self.memory or self.compare_memory:
            from .memory_lm import parse_levels

            parse_levels(self.levels)
        if self.scaling:
            if not self.samples or self.samples < 2:
                raise ValueError("--scaling needs several samples per question: add --samples N (N >= 2)")
            too_big = [k for k in self.ks() if k > self.samples]
            if too_big:
                raise ValueError(f"k = {too_big} is larger than --samples {self.samples}: "
                                 f"choose --scaling-k values <= {self.samples} or sample more")
            if any(k < 1 for k in self.ks()):
                raise ValueError(f"--scaling-k values must be at least 1, got {self.scaling_k}")

    def ks(self) -> list[int]:
        from .scaling import powers_of_two

        return list(self.scaling_k) if self.scaling_k else powers_of_two(self.samples or 1)

    def gen_kwargs(self) -> dict | None:
        kwargs: dict = {}
        if self.max_gen_toks is not None:
            kwargs["max_gen_toks"] = self.max_gen_toks
        if self.samples is not None and self.samples > 1:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        return kwargs or None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["output_dir"] = str(self.output_dir)
        return data


@dataclass
class RunSpec:
    """One cell of the grid: a model, and a bank with k entries (or no memory)."""

    model: ResolvedModel
    memory: str | None
    memory_k: int
    label: str
    slug: str


def bank_label(path: str, other: str | None = None) -> str:
    """The bank's file stem, with its folder when the two compared banks share a stem."""
    this = Path(path)
    if other and Path(other).stem == this.stem:
        return f"{this.parent.name}/{this.stem}"
    return this.stem


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-")


def plan_runs(settings: EvalSettings, models: list[ResolvedModel]) -> list[RunSpec]:
    """Every model x (no memory | each bank x each k), in a stable order; k = 0 runs once per model."""
    banks = [b for b in (settings.memory, settings.compare_memory) if b]
    runs = []
    for model in models:
        if not banks or 0 in settings.memory_k:
            runs.append(RunSpec(model, None, 0, f"{model.label} · no memory", _slug(f"{model.label}-no-memory")))
        for bank in banks:
            other = settings.compare_memory if bank == settings.memory else settings.memory
            name = bank_label(bank, other)
            for k in sorted(k for k in set(settings.memory_k) if k > 0):
                runs.append(RunSpec(model, bank, k, f"{model.label} · {name} k={k}", _slug(f"{model.label}-{name}-k{k}")))
    seen: dict[str, int] = {}
    for run in runs:  # two models with the same label still get their own folders
        seen[run.slug] = seen.get(run.slug, 0) + 1
        if seen[run.slug] > 1:
            run.slug = f"{run.slug}-{seen[run.slug]}"
    return runs


def _pmd_task_manager(metadata: dict | None = None):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=metadata or None)


def task_manager(names: list[str], metadata: dict):
    """lm-eval's task index over pmd's tasks/ only when every name is one of them: indexing all of
    lm-eval's ~15k task files costs about 6 s per process; other names get the full index."""
    from lm_eval.tasks import TaskManager

    ours = _pmd_task_manager(metadata)
    if all(name in ours.all_tasks for name in names):
        return ours
    return TaskManager(include_path=str(TASKS_DIR), metadata=metadata or None)


def check_tasks(names: list[str], manager) -> None:
    """Unknown task names are an error that lists the closest known ones."""
    known = set(manager.all_tasks)
    for name in names:
        if name not in known:
            ours = sorted(_pmd_task_manager().all_tasks)
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ValueError(f"unknown task {name!r}: {hint}pmd's tasks are {', '.join(ours)} "
                             "(all of lm-eval's: pmd-lm-eval ls tasks)")


def load_tasks(names: list[str], manager, samples: int | None) -> list:
    """Fresh task objects for one run, each leaf task sampling ``samples`` times when given."""
    loaded = manager.load(names)
    if samples is not None:
        for task in loaded["tasks"].values():
            task.config.repeats = samples
    children = {child for kids in loaded["group_map"].values() for child in kids}
    top = [obj for name, obj in {**loaded["groups"], **loaded["tasks"]}.items() if name not in children]
    return top


def build_backend(settings: EvalSettings, model: ResolvedModel):
    """The lm-eval model (``hf`` or ``vllm``) for one resolved model; shared by its runs."""
    import lm_eval.models  # noqa: F401  (registers lm-eval's models)
    from lm_eval.api.registry import get_model

    args = {"pretrained": model.path, **settings.model_args}
    if settings.backend == "vllm":
        from harness.vllm_compat import load_lm_eval_vllm

        load_lm_eval_vllm()
        args.setdefault("seed", settings.seed)
    else:  # lm-eval's HFLM defaults to cuda even on a machine without one
        args.setdefault("device", settings.device or default_device())
    return get_model(settings.backend).create_from_arg_obj(args, {"batch_size": settings.batch_size})


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def uses_chat_template(settings: EvalSettings, lm) -> bool:
    if settings.chat_template is not None:
        return settings.chat_template
    tokenizer = getattr(lm, "tokenizer", None)
    return bool(getattr(tokenizer, "chat_template", None))


@dataclass
class RunOutput:
    spec: RunSpec
    results: dict           # lm-eval's results dict, samples removed
    samples: dict           # task -> logged samples (with the memory each prompt was given)
    chat_template: bool
    seconds: float


def sample_prompt(sample: dict) -> str | None:
    """The prompt of a logged sample: lm-eval keeps ``[(context, gen_kwargs), ...]`` in memory and
    ``{"gen_args_0": {"arg_0": context, ...}}`` in its saved files."""
    arguments = sample.get("arguments")
    if isinstance(arguments, dict):
        return arguments.get("gen_args_0", {}).get("arg_0")
    if arguments and isinstance(arguments[0], (list, tuple)) and arguments[0]:
        return arguments[0][0]
    return None


def _attach_memory(samples: dict, given: dict[str, dict]) -> None:
    for task_samples in samples.values():
        for sample in task_samples:
            sample["memory"] = given.get(sample_prompt(sample), {}).get("entries", [])


def run_one(settings: EvalSettings, spec: RunSpec, backend, bank_memory, manager) -> RunOutput:
    from lm_eval import simple_evaluate

    from .memory_lm import MemoryAugmentedLM

    lm = backend
    if spec.memory is not None:
        lm = MemoryAugmentedLM(memory=bank_memory, memory_k=spec.memory_k, inner=backend)
    chat = uses_chat_template(settings, backend)
    started = time.perf_counter()
    results = simple_evaluate(
        model=lm, tasks=load_tasks(settings.tasks, manager, settings.samples), task_manager=manager,
        limit=settings.limit, log_samples=True, apply_chat_template=chat, gen_kwargs=settings.gen_kwargs(),
        confirm_run_unsafe_code=True, random_seed=settings.seed, numpy_random_seed=settings.seed,
        torch_random_seed=settings.seed, fewshot_random_seed=settings.seed,
    )
    seconds = time.perf_counter() - started
    samples = results.pop("samples", {})
    if spec.memory is not None:
        _attach_memory(samples, lm.given)
    return RunOutput(spec, results, samples, chat, seconds)


@dataclass
class Prepared:
    """What an evaluation needs, checked before anything is written: lm-eval's task index, the
    resolved (and checked) models, and the open banks."""

    manager: object
    models: list[ResolvedModel]
    banks: dict[str, object]

    def close(self) -> None:
        for bank in self.banks.values():
            bank.close()


def prepare(settings: EvalSettings) -> Prepared:
    """Validate the settings and check every input (models, banks, tasks), cheapest first, before
    any model loads or any file is written; errors name the problem and the fix."""
    from .memory_lm import BankMemory

    settings.validate()
    if settings.task_metadata.get("sciknoweval_dir") and not Path(settings.task_metadata["sciknoweval_dir"]).is_dir():
        raise FileNotFoundError(f"--data-dir {settings.task_metadata['sciknoweval_dir']} is not a folder; "
                                "point it at the SciKnowEval split folder (<domain>/{train,test}.json)")
    chat = bool(settings.chat_template)  # --chat-template given: the model must have one
    models = [resolve_model(spec, chat_template=chat) for spec in settings.models]
    banks: dict[str, object] = {}
    try:
        for path in (settings.memory, settings.compare_memory):
            if path and any(k > 0 for k in settings.memory_k):
                banks[path] = BankMemory(path, retriever=settings.retriever, levels=settings.levels)
            elif path:  # k = 0 only: not retrieved from, but its facts go into settings.json
                from memory_bank import MemoryBank

                MemoryBank.open(path, readonly=True).close()
        manager = task_manager(settings.tasks, settings.task_metadata)
        check_tasks(settings.tasks, manager)
    except BaseException:
        for bank in banks.values():
            bank.close()
        raise
    return Prepared(manager, models, banks)


def evaluate_grid(settings: EvalSettings, on_run: Callable[[int, int, RunSpec], None] | None = None,
                  on_done: Callable[[RunOutput], None] | None = None,
                  prepared: Prepared | None = None) -> tuple[list[RunSpec], list[RunOutput]]:
    """Validate, resolve and evaluate every run (``prepared``: from ``prepare``, else prepared
    here; its banks are closed at the end). ``on_run`` reports progress; with ``on_done`` each
    finished run goes to it (and is not returned), else all outputs are returned."""
    prepared = prepared or prepare(settings)
    models, banks, manager = prepared.models, prepared.banks, prepared.manager
    runs = plan_runs(settings, models)
    outputs = []
    try:
        for model in models:
            backend = build_backend(settings, model)
            for spec in (r for r in runs if r.model is model):
                if on_run:
                    on_run(runs.index(spec) + 1, len(runs), spec)
                output = run_one(settings, spec, backend, banks.get(spec.memory), manager)
                if on_done:  # hand each run over as it finishes instead of holding every run's samples
                    on_done(output)
                else:
                    outputs.append(output)
            del backend
    finally:
        prepared.close()
    return runs, outputs
