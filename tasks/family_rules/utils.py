"""lm-eval glue for family_rules: the bundled split files and the task's own verifier.

Prompts, the chat layout and the keep-all filter are demo_mcq's (``tasks/sciknoweval/utils.py``,
through the shared template YAML); only the data and the scorer differ. ``process_results`` calls
:func:`tasks.family_rules.verifier.verify_family`, the function the trainer's reward calls
(convention 4), so ``acc`` is avg@k of the training reward, with ``maj``, ``best`` and
``n_correct`` as in the SciKnowEval tasks.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import datasets

from tasks.family_rules.verifier import verify_family
from tasks.sciknoweval.utils import _responses, split_dataset
from tasks.sciknoweval.verifier import extract_answer, option_letters

TASK_DIR = Path(__file__).resolve().parent


def load_family_rules(**_ignored) -> datasets.DatasetDict:
    """``custom_dataset`` of ``family_rules``: the bundled ``tasks/family_rules/{train,test}.jsonl``."""
    return split_dataset(TASK_DIR / "train.jsonl", TASK_DIR / "test.jsonl")


def score_responses(doc: dict, responses: list[str]) -> dict:
    """avg@k, maj@k, best@k and the number of correct samples for one question's ``k`` responses."""
    if not responses:
        raise ValueError("no responses to score")
    letters = list(doc.get("letters") or option_letters(doc["prompt"]))
    verdicts = [verify_family(text, doc["answer"], letters, doc["topic"]) for text in responses]
    n_correct = sum(v.passed for v in verdicts)
    votes = Counter(given for given in map(extract_answer, responses) if given)
    maj = 0.0
    if votes:  # ties go to the answer given first
        winner = votes.most_common(1)[0][0]
        maj = next(v.reward for text, v in zip(responses, verdicts) if extract_answer(text) == winner)
    return {"acc": sum(v.reward for v in verdicts) / len(verdicts), "maj": maj,
            "best": float(n_correct > 0), "n_correct": n_correct}


def process_results(doc: dict, results) -> dict:
    """lm-eval ``process_results``: every sampled response scored by the training verifier."""
    return score_responses(doc, _responses(results))
