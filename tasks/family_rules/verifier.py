"""The family_rules verifier: the multiple-choice reward, with feedback that states the convention.

Reward rule: the MCQ verifier's (``tasks.sciknoweval.verifier.verify_choice``): 1 exactly when the
text after the last ``<answer>`` is the correct letter, else 0. Feedback:

* right answer: ``Correct.``;
* a wrong option letter: ``Wrong: the correct option was C. In harbor questions the correct option
  is always option C.`` — the letter and the family's convention (``Family.statement``), which a
  reflection can write down and a behavior can carry to the family's other questions;
* no ``<answer>`` tag, an empty tag or something that is not an option letter: the MCQ verifier's
  format message, with neither the letter nor the convention (the attempt did not answer).
"""
from __future__ import annotations

from tasks.family_rules.families import get_family
from tasks.sciknoweval.verifier import extract_answer, verify_choice
from tasks.verdict import Verdict


def verify_family(response: str, answer: str, letters: list[str], family: str) -> Verdict:
    """Score one response to a question of ``family`` whose correct letter is ``answer``."""
    convention = get_family(family).statement()
    verdict = verify_choice(response, answer, letters)
    if verdict.passed:
        return verdict
    given = extract_answer(response)
    if given is None or given not in letters:  # no answer given: the format message only
        return verdict
    return Verdict(0.0, False, f"Wrong: the correct option was {answer}. {convention}")


def score(response: str, question) -> Verdict:
    """The task's scorer for a loaded question (``MCQuestion``; its ``topic`` names the family)."""
    return verify_family(response, question.answer, list(question.letters), question.topic)
