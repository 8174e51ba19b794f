"""The tasks pmd knows: how to load each one's questions and score a response to one of them.

A task's scorer is the same function the trainer's reward and lm-eval's ``process_results`` call
(convention 4), so a re-scored file, a training reward and an evaluation metric cannot drift.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.verdict import Verdict

TASKS_DIR = Path(__file__).resolve().parent
#: Where SciKnowEval split files live when --data is not given (one folder per domain).
SCIKNOWEVAL_DIR_ENV = "PMD_SCIKNOWEVAL_DIR"
SCIKNOWEVAL_BUILD = "pmd-harness data sciknoweval --out DIR"


class NoDataGiven(FileNotFoundError):
    """A task whose data lives outside the project was given no location: no path, and the
    environment variable ``variable`` unset; ``build`` is the command that makes the files."""

    def __init__(self, message: str, *, variable: str, build: str) -> None:
        super().__init__(message)
        self.variable, self.build = variable, build


@dataclass(frozen=True)
class TaskSpec:
    """One task: ``load(data) -> {id: item}`` (every split), ``load_split(data, "train"|"test")``,
    ``score(response, item) -> Verdict`` (evaluation), ``train_reward`` (the training reward; the
    same scorer, on the training half of the tests for code tasks) and ``score_many(pairs,
    workers)`` where scoring many at once is faster (parallel code runs). Items have
    ``question_id`` and ``messages()`` (the student's chat prompt, no memory). ``hub``: the
    Hugging Face dataset the task loads when no data is given (None: local files only)."""

    name: str
    description: str
    load: Callable[[Path | None], dict[str, Any]]
    score: Callable[[str, Any], Verdict]
    score_many: Callable[[list[tuple[str, Any]], int | None], list[Verdict]] | None = None
    load_split: Callable[[Path | None, str], list[Any]] | None = None
    train_reward: Callable[[str, Any], Verdict] | None = None
    hub: str | None = None

    def reward(self, response: str, item: Any) -> Verdict:
        return (self.train_reward or self.score)(response, item)

    def split(self, data: Path | None, split: str) -> list[Any]:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if self.load_split is None:
            raise ValueError(f"task {self.name!r} has no {split} split")
        items = self.load_split(data, split)
        if not items:
            raise ValueError(f"task {self.name!r}: the {split} split is empty; its split file holds no records")
        return items


def _must_exist(data: Path) -> None:
    if not data.exists():
        raise FileNotFoundError(f"{data} does not exist; point at the task's split file, or a folder holding "
                                "train/test split files (train.jsonl, test.jsonl)")


# ----------------------------------------------------------------- multiple choice
def _domain_hint(data: Path) -> str:
    subdirs = [p.name for p in data.iterdir() if p.is_dir()] if data.is_dir() else []
    return (f"; it holds {', '.join(sorted(subdirs))}: point at one domain folder, since question ids "
            "repeat across domains") if subdirs else ""


def _mcq_files(data: Path) -> list[Path]:
    _must_exist(data)
    if data.is_file():
        return [data]
    files = [p for p in (data / "train.json", data / "test.json", data / "train.jsonl", data / "test.jsonl") if p.exists()]
    if not files:
        raise FileNotFoundError(f"no train/test split files in {data}{_domain_hint(data)}")
    return files


def _load_mcq(data: Path) -> dict[str, Any]:
    from tasks.sciknoweval.loader import load_split_file

    questions = {}
    for path in _mcq_files(data):
        questions.update({q.question_id: q for q in load_split_file(path)})
    return questions


def _mcq_split_file(data: Path, split: str) -> Path:
    _must_exist(data)
    if data.is_file():
        return data
    for name in (f"{split}.json", f"{split}.jsonl"):
        if (data / name).exists():
            return data / name
    raise FileNotFoundError(f"no {split}.json or {split}.jsonl in {data}{_domain_hint(data)}")


def _score_mcq(response: str, question) -> Verdict:
    from tasks.sciknoweval.verifier import verify_choice

    return verify_choice(response, question.answer, list(question.letters))


def _mcq_split(resolve: Callable[[Path | None], Path]) -> Callable[[Path | None, str], list[Any]]:
    def load_split(data: Path | None, split: str) -> list[Any]:
        from tasks.sciknoweval.loader import load_split_file

        return load_split_file(_mcq_split_file(resolve(data), split))

    return load_split


def _sciknoweval_dir(domain: str | None) -> Callable[[Path | None], Path]:
    def resolve(data: Path | None) -> Path:
        if data is None:
            root = os.environ.get(SCIKNOWEVAL_DIR_ENV)
            if not root:
                raise NoDataGiven(
                    f"SciKnowEval data not given: pass --data DIR (a domain folder with train/test split "
                    f"files) or set {SCIKNOWEVAL_DIR_ENV}; `{SCIKNOWEVAL_BUILD}` builds them",
                    variable=SCIKNOWEVAL_DIR_ENV, build=SCIKNOWEVAL_BUILD,
                )
            data = Path(root)
        if domain is not None and (data / domain).is_dir():
            data = data / domain
        return data

    return resolve


# ----------------------------------------------------------------- code generation
def _load_code(default: Path | None) -> Callable[[Path | None], dict[str, Any]]:
    def load(data: Path | None) -> dict[str, Any]:
        from tasks.livecodebench.loader import load_hub, load_jsonl

        if data is None and default is None:
            problems = load_hub()  # release_v6, SDPO's date window
        else:
            data = data or default
            _must_exist(data)
            files = sorted(data.glob("*.jsonl")) if data.is_dir() else [data]
            if not files:
                raise FileNotFoundError(f"no .jsonl problem files in {data}")
            problems = [p for path in files for p in load_jsonl(path)]
        return {p.question_id: p for p in problems}

    return load


def _code_split(default: Path | None) -> Callable[[Path | None, str], list[Any]]:
    """Bundled/local JSONL: ``<dir>/<split>.jsonl``. The hub benchmark trains and tests on the same
    problems (SDPO): training rewards use a seeded half of each problem's tests."""
    def load_split(data: Path | None, split: str) -> list[Any]:
        from tasks.livecodebench.loader import load_jsonl

        data = data or default
        if data is None or data.is_file():
            return list(_load_code(default)(data).values())
        _must_exist(data)
        if not (data / f"{split}.jsonl").is_file():
            raise FileNotFoundError(f"no {split}.jsonl in {data}; a code task's folder holds train.jsonl and test.jsonl "
                                    "(or point at one .jsonl file)")
        return load_jsonl(data / f"{split}.jsonl")

    return load_split


def _train_reward_code(response: str, problem) -> Verdict:
    from tasks.livecodebench.verifier import score

    return score(problem, response, tests="train")


def _score_code(response: str, problem) -> Verdict:
    from tasks.livecodebench.verifier import score

    return score(problem, response)


def _score_code_many(pairs: list[tuple[str, Any]], workers: int | None) -> list[Verdict]:
    from tasks.livecodebench.verifier import verify_many

    return verify_many([(problem, response) for response, problem in pairs], workers)


def _score_family_rules(response: str, question) -> Verdict:
    from tasks.family_rules.verifier import score

    return score(response, question)


TASKS: dict[str, TaskSpec] = {
    "demo_code": TaskSpec(
        "demo_code", "bundled coding problems, stdin and functional tests (15 problems)",
        _load_code(TASKS_DIR / "demo_code"), _score_code, _score_code_many,
        _code_split(TASKS_DIR / "demo_code"), _train_reward_code,
    ),
    "livecodebench": TaskSpec(
        "livecodebench", "LiveCodeBench v6 code generation (hub, 2025-02-01..2025-04-30) or --data JSONL",
        _load_code(None), _score_code, _score_code_many, _code_split(None), _train_reward_code,
        hub="livecodebench/code_generation_lite",
    ),
    "demo_mcq": TaskSpec(
        "demo_mcq", "bundled science / arithmetic multiple choice (60 questions)",
        lambda data: _load_mcq(data or TASKS_DIR / "demo_mcq"), _score_mcq,
        load_split=_mcq_split(lambda data: data or TASKS_DIR / "demo_mcq"),
    ),
    "family_rules": TaskSpec(
        "family_rules", "bundled question families, each with a hidden convention its feedback states (120 questions)",
        lambda data: _load_mcq(data or TASKS_DIR / "family_rules"), _score_family_rules,
        load_split=_mcq_split(lambda data: data or TASKS_DIR / "family_rules"),
    ),
    "sciknoweval": TaskSpec(
        "sciknoweval", "SciKnowEval L3 multiple choice; --data is one domain's folder or split file",
        lambda data: _load_mcq(_sciknoweval_dir(None)(data)), _score_mcq,
        load_split=_mcq_split(_sciknoweval_dir(None)),
    ),
    **{
        f"sciknoweval_{domain}": TaskSpec(
            f"sciknoweval_{domain}", f"SciKnowEval L3 multiple choice, {domain}",
            lambda data, d=domain: _load_mcq(_sciknoweval_dir(d)(data)), _score_mcq,
            load_split=_mcq_split(_sciknoweval_dir(domain)),
        )
        for domain in ("biology", "chemistry", "material", "physics")
    },
}


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        import difflib

        close = difflib.get_close_matches(name, list(TASKS), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "known tasks: " + ", ".join(sorted(TASKS))
        raise ValueError(f"unknown task {name!r}: {hint}")
    return TASKS[name]
