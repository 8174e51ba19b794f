"""The memory-conditioned self-teacher's context: what the teacher sees that the student does not.

SDPO's teacher prompt, byte for byte as the reference runs it (lasgroup/SDPO,
``verl/trainer/config/actor/actor.yaml``, section ``self_distillation``: ``reprompt_template``,
``solution_template`` and ``feedback_template``, YAML ``|-`` blocks, so no trailing newline): the
last user turn becomes

    {question}{solution}{feedback}\\n\\nCorrectly solve the original question.

with ``{solution} = \\nCorrect solution:\\n\\n{a successful sibling}`` and
``{feedback} = \\nThe following is feedback from your unsuccessful earlier attempt:\\n\\n{feedback}``,
each empty when absent; with neither, the question is left exactly as the student saw it. Which
solution and which feedback go in (first successful sibling other than the sample, ``<think>``
blocks removed; feedback only when there is no solution, also on a successful attempt) is decided
by ``trainer.memory_step`` from ``TeacherConfig``.

PMD (arXiv 2607.01480) adds memory before the solution, in the same ``\\n{title}\\n\\n{body}``
style: behaviors retrieved for the question (top-K by the bank's hybrid retrieval), the question's
own insights, and a past successful solution of the question from experience memory:

    {question}{behaviors}{insights}{past_solution}{solution}{feedback}\\n\\nCorrectly solve the original question.

The student's system prompt and question are never shortened; when the context exceeds its token
budget, whole items are dropped from the lowest-priority section first (by default: the past
solution, then behaviors from the least relevant, then insights from the least confident, then the
sibling solution, then the feedback).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

#: The reference's ``reprompt_template`` after ``{prompt}{solution}{feedback}``.
CLOSING = "\n\nCorrectly solve the original question."
#: Every section, as the reference's ``solution_template`` / ``feedback_template``.
SECTION_TEMPLATE = "\n{title}\n\n{body}"

SECTION_TITLES = {
    "behaviors": "Skills and mistakes to avoid from related questions:",
    "insights": "Notes from earlier attempts at this question:",
    "past_solution": "A correct solution from an earlier attempt at this question:",
    "solution": "Correct solution:",
    "feedback": "The following is feedback from your unsuccessful earlier attempt:",
}
#: Section order inside the prompt (memory first, SDPO's in-batch context last).
LAYOUT = ("behaviors", "insights", "past_solution", "solution", "feedback")
DEFAULT_PRIORITY = ("feedback", "solution", "insights", "behaviors", "past_solution")

_BLOCKS = {tag: re.compile(rf"<{tag}>.*?</{tag}>\s*", re.DOTALL) for tag in ("think", "reasoning")}


def strip_reasoning(text: str, tags: Sequence[str] = ("think",)) -> str:
    """Remove ``<tag>…</tag>`` blocks (and the whitespace after each) from a demonstration.

    The default is the reference's ``remove_thinking_from_demonstration``: ``<think>`` blocks only,
    nothing else touched. ``tags=("think", "reasoning")`` also removes the ``<reasoning>`` blocks
    that the SciKnowEval answer format asks for (which the reference keeps).
    """
    for tag in tags:
        if tag not in _BLOCKS:
            raise ValueError(f"unknown reasoning tag {tag!r}; known: {', '.join(_BLOCKS)}")
        text = _BLOCKS[tag].sub("", text)
    return text


@dataclass
class ContextParts:
    """Candidate items per section, best first (behaviors by retrieval rank, insights by confidence)."""

    behaviors: list[str] = field(default_factory=list)
    insights: list[str] = field(default_factory=list)
    past_solution: list[str] = field(default_factory=list)
    solution: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)

    def items(self, section: str) -> list[str]:
        return getattr(self, section)


@dataclass
class TeacherContext:
    messages: list[dict]
    included: dict[str, int]   # items kept per section
    dropped: dict[str, int]    # items dropped per section to fit the budget
    tokens: int
    over_budget: bool          # even the bare question exceeds the budget

    @property
    def has_signal(self) -> bool:
        """m_i in the SDPO loss: does the teacher see anything the student does not?"""
        return any(self.included.values())

    @property
    def has_memory(self) -> bool:
        """Does the teacher's context hold anything from the memory bank (PMD's sections)?"""
        return any(self.included.get(section) for section in ("behaviors", "insights", "past_solution"))


def _render_section(section: str, items: Sequence[str]) -> str:
    if not items:
        return ""
    if section in ("behaviors", "insights"):
        body = "\n".join(f"- {item}" for item in items)
    else:
        body = "\n\n".join(items)
    return SECTION_TEMPLATE.format(title=SECTION_TITLES[section], body=body)


def render(student_messages: Sequence[dict], parts: ContextParts) -> list[dict]:
    """Teacher messages: the student's, with the last user turn extended by the context.

    Earlier turns (the system prompt) are kept as they are; without any section the last turn is
    the student's question unchanged (the reference's "no signal" case).
    """
    messages = [dict(m) for m in student_messages]
    question = messages[-1]["content"]
    sections = "".join(_render_section(s, parts.items(s)) for s in LAYOUT)
    messages[-1]["content"] = question + sections + CLOSING if sections else question
    return messages


def build_teacher_context(
    student_messages: Sequence[dict],
    parts: ContextParts,
    count_tokens: Callable[[list[dict]], int],
    budget_tokens: int,
    priority: Sequence[str] = DEFAULT_PRIORITY,
) -> TeacherContext:
    """Fit ``parts`` into ``budget_tokens`` by dropping items, lowest priority first.

    Within a section the last item (least relevant / least confident) goes first. Every drop
    re-measures the real token count with ``count_tokens`` (the model's chat template), so the
    budget holds exactly for the tokenizer in use.
    """
    if sorted(priority) != sorted(LAYOUT):
        raise ValueError(f"priority must order exactly {', '.join(LAYOUT)}; got {list(priority)}")
    kept = ContextParts(**{s: list(parts.items(s)) for s in LAYOUT})
    original = {s: len(parts.items(s)) for s in LAYOUT}
    messages = render(student_messages, kept)
    tokens = count_tokens(messages)
    for section in reversed(priority):
        while tokens > budget_tokens and kept.items(section):
            kept.items(section).pop()
            messages = render(student_messages, kept)
            tokens = count_tokens(messages)
    included = {s: len(kept.items(s)) for s in LAYOUT}
    return TeacherContext(
        messages=messages,
        included=included,
        dropped={s: original[s] - included[s] for s in LAYOUT},
        tokens=tokens,
        over_budget=tokens > budget_tokens,
    )


def chat_token_counter(tokenizer) -> Callable[[list[dict]], int]:
    """Token count of messages under the tokenizer's chat template, generation prompt included."""
    from trainer.rollout import chat_ids

    def count(messages: list[dict]) -> int:
        return len(chat_ids(tokenizer, messages))

    return count
