"""Per-sample grades of an lm-eval document's responses, for test-time-scaling metrics.

lm-eval's ``process_results`` reports aggregates per document (avg, maj, best); maj@k and best@k
for every k need each sample's *answer* (what a majority vote counts) and its *correctness*. Both
come from the task's own verifier (convention 4), so they agree with the logged metrics:

* multiple choice (SciKnowEval, demo_mcq): the answer is the letter in the last ``<answer>`` tag;
  correct iff ``verify_choice`` passes.
* code (LiveCodeBench, demo_code): the answer is the extracted program with blank lines and
  trailing spaces removed (identical programs vote together); correct iff every test passes in
  the sandbox (``verify_many``).

The family is recognised from the document's fields, so it works for any task built on these
records (groups, renamed tasks).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SampleGrade:
    answer: str | None  # None: no answer given (does not vote)
    correct: bool


def _mcq_grades(doc: dict, responses: Sequence[str]) -> list[SampleGrade]:
    from tasks.sciknoweval.verifier import extract_answer, option_letters, verify_choice

    letters = list(doc.get("letters") or option_letters(doc["prompt"]))
    return [SampleGrade(extract_answer(text) or None, verify_choice(text, doc["answer"], letters).passed)
            for text in responses]


def normalized_program(code: str | None) -> str | None:
    if code is None:
        return None
    lines = [line.rstrip() for line in code.strip().splitlines() if line.strip()]
    return "\n".join(lines) or None


def _code_grades(doc: dict, responses: Sequence[str], workers: int | None) -> list[SampleGrade]:
    from tasks.livecodebench.loader import problem_from_record
    from tasks.livecodebench.verifier import extract_code, verify_many

    problem = problem_from_record(doc)
    verdicts = verify_many([(problem, text) for text in responses], workers=workers)
    return [SampleGrade(normalized_program(extract_code(text)), verdict.passed)
            for text, verdict in zip(responses, verdicts)]


def grade_samples(doc: dict, responses: Sequence[str], *, workers: int | None = None) -> list[SampleGrade]:
    """One grade per response, in order (see the module docstring)."""
    if "answer" in doc and "prompt" in doc:
        return _mcq_grades(doc, responses)
    if "question_content" in doc:
        return _code_grades(doc, responses, workers)
    raise ValueError(f"cannot grade samples of documents with fields {sorted(doc)}: "
                     "test-time scaling supports the multiple-choice and code tasks of tasks/")


def question_key(doc: dict, doc_id: int) -> str:
    """A stable id for a document: its question id when it has one, else its position."""
    return str(doc.get("question_id") or doc_id)
