"""The memory side of a training step (rank 0 only): experiences in, teacher contexts out.

``record_experiences`` stores the verified rollouts (level 0). ``teacher_contexts`` builds, for
every sample, what its self-teacher sees: SDPO's in-batch context, chosen as the SDPO reference
does by default (the first successful sibling other than the sample itself, ``<think>`` blocks
removed; the sample's own non-empty feedback, whatever its reward, only when no solution is given;
see ``TeacherConfig`` for the other choices) and, for PMD, the memory of its question (retrieved
behaviors, the question's insights, a past correct solution), fitted to the token budget by
``trainer.teacher_context``.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from memory_bank import Experience, MemoryBank
from trainer.config import TeacherConfig, TrainConfig
from trainer.reflection import QuestionAttempts
from trainer.sequences import Sample
from trainer.teacher_context import ContextParts, TeacherContext, build_teacher_context, strip_reasoning


def question_text(item) -> str:
    """The question as the student sees it (the last user turn of its prompt)."""
    return item.messages()[-1]["content"]


def record_experiences(bank: MemoryBank, samples: Sequence[Sample], items: dict, *, step: int, run_id: str,
                       model_name: str) -> None:
    with bank.transaction():
        for qid, group in _by_question(samples).items():
            bank.add_experiences([
                Experience(qid, question_text(items[qid]), s.text, s.reward, s.feedback, step=step,
                           policy_version=step, run_id=run_id, model=model_name)
                for s in group
            ])


def attempt_groups(samples: Sequence[Sample], items: dict) -> list[QuestionAttempts]:
    return [
        QuestionAttempts(qid, question_text(items[qid]), [(s.text, s.reward, s.feedback) for s in group])
        for qid, group in _by_question(samples).items()
    ]


def _by_question(samples: Sequence[Sample]) -> dict[str, list[Sample]]:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[sample.question_id].append(sample)
    return groups


class MemoryView:
    """What the bank holds about one question, fetched once per question per step."""

    def __init__(self, bank: MemoryBank | None, retriever, config: TrainConfig, step: int) -> None:
        self.bank, self.retriever, self.config, self.step = bank, retriever, config, step
        self.hits = 0

    def parts(self, item) -> tuple[list[str], list[str], list[str]]:
        if self.bank is None:
            return [], [], []
        memory = self.config.memory
        behaviors = []
        if memory.retrieve_k and self.retriever is not None:
            found = self.retriever.search(question_text(item), k=memory.retrieve_k, levels=["behavior"], with_rows=False)
            behaviors = [hit.text for hit in found]
        insights = sorted(self.bank.insights(item.question_id), key=lambda r: (-r["confidence"], -r["support"]))
        insight_texts = [r["text"] for r in insights[:memory.insights_per_question]]
        past = [e for e in self.bank.experiences(item.question_id)
                if e["reward"] >= memory.limits.success_threshold and e["step"] < self.step]
        past_solution = []
        if past:
            latest = max(past, key=lambda e: (e["step"], e["id"]))["response"]
            past_solution = [strip_reasoning(latest, demonstration_tags(self.config.teacher))]
        self.hits += bool(behaviors or insight_texts or past_solution)
        return behaviors, insight_texts, past_solution


def demonstration_tags(teacher: TeacherConfig) -> tuple[str, ...]:
    """The reasoning blocks removed from a demonstration (sibling or past solution)."""
    return (("think",) if teacher.remove_thinking_from_demonstration else ()) + \
        (("reasoning",) if teacher.remove_reasoning_from_demonstration else ())


def in_batch_parts(sample: Sample, group: Sequence[Sample], teacher: TeacherConfig,
                   success: float) -> tuple[list[str], list[str]]:
    """SDPO's in-batch context for ``sample``: its (solution, feedback) sections, each 0 or 1 item.

    Solution: the first sibling in ``group`` (batch order) with reward >= ``success``, not the
    sample itself with ``dont_reprompt_on_self_success``. Feedback: the sample's own, when it is a
    non-blank string; by default whatever the reward and only when no solution is given.
    """
    solution = []
    if teacher.include_solution:
        peers = [s for s in group
                 if s.reward >= success and not (teacher.dont_reprompt_on_self_success and s is sample)]
        if peers:
            solution = [strip_reasoning(peers[0].text, demonstration_tags(teacher))]
    text = sample.feedback
    wanted = (teacher.include_feedback and isinstance(text, str) and bool(text.strip())
              and (teacher.feedback_on_success or sample.reward < success)
              and (teacher.feedback_with_solution or not solution))
    return solution, [text] if wanted else []


def teacher_contexts(samples: Sequence[Sample], items: dict, memory: MemoryView, config: TrainConfig,
                     count_tokens: Callable[[list[dict]], int]) -> list[TeacherContext]:
    """One teacher context per sample, in order."""
    teacher = config.teacher
    success = config.memory.limits.success_threshold
    contexts = []
    for qid, group in _by_question(samples).items():
        item = items[qid]
        behaviors, insights, past_solution = memory.parts(item) if config.uses_memory else ([], [], [])
        for sample in group:
            solution, feedback = in_batch_parts(sample, group, teacher, success)
            parts = ContextParts(behaviors=list(behaviors), insights=list(insights), past_solution=list(past_solution),
                                 solution=solution, feedback=feedback)
            contexts.append((sample, build_teacher_context(item.messages(), parts, count_tokens,
                                                           teacher.context_budget_tokens, teacher.priority)))
    order = {id(s): i for i, s in enumerate(samples)}
    return [ctx for _, ctx in sorted(contexts, key=lambda pair: order[id(pair[0])])]
