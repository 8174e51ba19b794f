"""The teacher context's token budget under the REAL Qwen3 tokenizer and chat template.

Budget behaviour: the real token count (chat template + generation prompt) stays within the budget,
items go lowest priority first, the system prompt and question are never cut, reasoning blocks cost
nothing. And the templated teacher prompt of SDPO's reference: the reprompt text is the whole user
turn, the system turn is kept, and the chat template is applied as the reference applies it
(``apply_chat_template(..., add_generation_prompt=True, enable_thinking=True)``, verl/trainer/ppo/
ray_trainer.py), so the teacher's ids are the reference's ids.
"""
from __future__ import annotations

from collections.abc import Mapping

import pytest

from pmd.model_shapes import load_qwen3_tokenizer
from trainer.rollout import chat_ids
from trainer.teacher_context import (
    DEFAULT_PRIORITY, LAYOUT, ContextParts, build_teacher_context, chat_token_counter, strip_reasoning,
)

STUDENT = [
    {"role": "system", "content": "You are a careful scientist. Answer with <answer>LETTER</answer>."},
    {"role": "user", "content": "Which gas makes up most of Earth's atmosphere?\n"
                                "A: oxygen\nB: nitrogen\nC: argon\nD: carbon dioxide"},
]
STEPS = " ".join(f"Step {i}: recall what the atmosphere is made of." for i in range(40))
REASONING = f"<think>\n{STEPS}\n</think>\n\n"


@pytest.fixture(scope="module")
def tokenizer():
    return load_qwen3_tokenizer()


@pytest.fixture(scope="module")
def count(tokenizer):
    return chat_token_counter(tokenizer)


def real_tokens(tokenizer, messages) -> list[int]:
    """Token ids straight from the tokenizer's chat template (not through chat_token_counter)."""
    out = tokenizer.apply_chat_template(list(messages), tokenize=True, add_generation_prompt=True)
    return list(out["input_ids"] if isinstance(out, Mapping) else out)


def overflowing_parts() -> ContextParts:
    return ContextParts(
        behaviors=[f"Skill {i}: when a question names a mixture, list its components by volume "
                   f"fraction before choosing (variant {i}, 窒素 and Stickstoff are nitrogen)." for i in range(12)],
        insights=[f"Insight {i}: nitrogen is about 78% of dry air; oxygen about 21%." for i in range(6)],
        past_solution=["Nitrogen dominates dry air by volume. " * 30 + "<answer>B</answer>"],
        solution=["Nitrogen is about 78% of the atmosphere. <answer>B</answer>"],
        feedback=["Your answer A (oxygen) is wrong: oxygen is only about 21% of dry air."],
    )


def assert_drop_order(context, parts: ContextParts, priority=DEFAULT_PRIORITY):
    """Drops go section by section from the lowest priority; within a section from the end."""
    drop_order = list(reversed(priority))
    for j, section in enumerate(drop_order):
        if context.dropped[section]:
            assert all(context.included[s] == 0 for s in drop_order[:j]), (section, context.included)
    text = context.messages[-1]["content"]
    for section in LAYOUT:
        items = parts.items(section)
        kept = context.included[section]
        assert all(item in text for item in items[:kept])  # the best items are the ones kept


def test_budget_holds_for_the_real_token_count(tokenizer, count):
    parts = overflowing_parts()
    full = build_teacher_context(STUDENT, parts, count, budget_tokens=100_000)
    assert not any(full.dropped.values()) and full.tokens == len(real_tokens(tokenizer, full.messages))
    bare = count(STUDENT)
    assert full.tokens > bare + 600  # the memory sections really overflow the budgets below
    previous = None
    for budget in (full.tokens - 1, full.tokens - 200, bare + 500, bare + 250, bare + 120, bare + 40, bare):
        context = build_teacher_context(STUDENT, parts, count, budget_tokens=budget)
        assert context.tokens == len(real_tokens(tokenizer, context.messages)) <= budget
        assert not context.over_budget
        assert context.messages[0] == STUDENT[0]  # the system prompt is never touched
        assert context.messages[1]["content"].startswith(STUDENT[1]["content"])  # nor the question
        assert_drop_order(context, parts)
        if previous is not None:  # a tighter budget never keeps more
            assert all(context.included[s] <= previous.included[s] for s in LAYOUT)
        previous = context
    assert previous.messages == STUDENT and not previous.has_signal  # budget == bare question


def test_lowest_priority_items_go_first(count):
    parts = overflowing_parts()
    full = build_teacher_context(STUDENT, parts, count, budget_tokens=100_000)
    past_solution_tokens = full.tokens - build_teacher_context(
        STUDENT, ContextParts(**{**vars(parts), "past_solution": []}), count, 100_000).tokens
    tight = build_teacher_context(STUDENT, parts, count, budget_tokens=full.tokens - past_solution_tokens)
    assert tight.dropped == {"behaviors": 0, "insights": 0, "past_solution": 1, "solution": 0, "feedback": 0}
    tighter = build_teacher_context(STUDENT, parts, count, budget_tokens=tight.tokens - 1)
    assert tighter.dropped["behaviors"] == 1 and "Skill 11:" not in tighter.messages[1]["content"]
    assert "Skill 10:" in tighter.messages[1]["content"]
    # Room for the feedback alone: the top-priority section is the last thing kept.
    feedback_only = build_teacher_context(STUDENT, ContextParts(feedback=parts.feedback), count, 100_000).tokens
    only = build_teacher_context(STUDENT, parts, count, budget_tokens=feedback_only)
    assert only.included == {"behaviors": 0, "insights": 0, "past_solution": 0, "solution": 0, "feedback": 1}


def test_a_custom_priority_changes_what_survives(count):
    parts = overflowing_parts()
    priority = ("behaviors", "insights", "past_solution", "solution", "feedback")
    context = build_teacher_context(STUDENT, parts, count, budget_tokens=count(STUDENT) + 250, priority=priority)
    assert context.included["behaviors"] > 0 and context.included["feedback"] == 0
    assert_drop_order(context, parts, priority)


def test_reasoning_of_a_sibling_solution_is_stripped_and_costs_nothing(tokenizer, count):
    answer = "Nitrogen is about 78% of the atmosphere. <answer>B</answer>"
    stripped = strip_reasoning(REASONING + answer)
    assert stripped == answer
    with_stripped = build_teacher_context(STUDENT, ContextParts(solution=[stripped]), count, 100_000)
    plain = build_teacher_context(STUDENT, ContextParts(solution=[answer]), count, 100_000)
    assert with_stripped.tokens == plain.tokens  # the think block contributes zero tokens
    ids = real_tokens(tokenizer, with_stripped.messages)
    assert tokenizer.convert_tokens_to_ids("<think>") not in ids
    assert "<think>" not in with_stripped.messages[1]["content"]
    raw = build_teacher_context(STUDENT, ContextParts(solution=[REASONING + answer]), count, 100_000)
    assert raw.tokens > plain.tokens + 200  # what stripping saves
    # A budget that fits the stripped solution keeps it; the unstripped one would not fit.
    def kept(solution: str) -> int:
        return build_teacher_context(STUDENT, ContextParts(solution=[solution]), count, plain.tokens).included["solution"]

    assert kept(stripped) == 1 and kept(REASONING + answer) == 0


def test_a_budget_below_the_bare_question_reports_over_budget(count):
    bare = count(STUDENT)
    context = build_teacher_context(STUDENT, overflowing_parts(), count, budget_tokens=bare - 1)
    assert context.over_budget and context.messages == STUDENT and not context.has_signal
    assert context.tokens == bare
    assert not build_teacher_context(STUDENT, overflowing_parts(), count, budget_tokens=bare).over_budget


def test_the_templated_sdpo_teacher_prompt_is_the_references(tokenizer, count):
    solution = strip_reasoning(REASONING + "Nitrogen is about 78% of the atmosphere. <answer>B</answer>")
    context = build_teacher_context(STUDENT, ContextParts(solution=[solution]), count, 100_000)
    text = tokenizer.apply_chat_template(context.messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a careful scientist. Answer with <answer>LETTER</answer>.<|im_end|>\n"
        "<|im_start|>user\nWhich gas makes up most of Earth's atmosphere?\n"
        "A: oxygen\nB: nitrogen\nC: argon\nD: carbon dioxide"
        "\nCorrect solution:\n\nNitrogen is about 78% of the atmosphere. <answer>B</answer>"
        "\n\nCorrectly solve the original question.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # The ids the teacher scores (ours: template text, then tokenized) are the reference's
    # (template tokenized in one call, thinking enabled, the data config's default).
    reference = tokenizer.apply_chat_template(context.messages, tokenize=True, add_generation_prompt=True,
                                              enable_thinking=True)
    reference = list(reference["input_ids"] if isinstance(reference, Mapping) else reference)
    assert chat_ids(tokenizer, context.messages) == reference and context.tokens == len(reference)
