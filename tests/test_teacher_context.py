"""The self-teacher's context: SDPO's template, memory sections, and the token budget.

The expected teacher prompts are written out by hand from the SDPO reference's effective templates
(lasgroup/SDPO, verl/trainer/config/actor/actor.yaml, section self_distillation, YAML ``|-`` blocks):

    reprompt_template:  "{prompt}{solution}{feedback}\\n\\nCorrectly solve the original question."
    solution_template:  "\\nCorrect solution:\\n\\n{successful_previous_attempt}"
    feedback_template:  "\\nThe following is feedback from your unsuccessful earlier attempt:\\n\\n{feedback_raw}"

and the selection of verl/trainer/ppo/ray_trainer.py (``_get_solution``, ``_collect_feedback``,
``_build_teacher_message``), never from this project's own constants.
"""
from __future__ import annotations

import itertools
import re

import pytest

from pmd.config import from_dict
from trainer.config import TeacherConfig, TrainConfig
from trainer.memory_step import MemoryView, in_batch_parts, teacher_contexts
from trainer.sequences import Sample
from trainer.teacher_context import (
    ContextParts, build_teacher_context, chat_token_counter, render, strip_reasoning,
)

SYSTEM = "Answer with <answer>LETTER</answer>."
QUESTION = "Which gas is most abundant in air?\nA: oxygen\nB: nitrogen"
STUDENT = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


def words(messages):
    """A transparent token count for hand checks: whitespace-separated words of all turns."""
    return sum(len(m["content"].split()) for m in messages)


# --- The reference's teacher prompt, byte for byte -----------------------------------------------

SOLUTION_ONLY = (
    "Which gas is most abundant in air?\nA: oxygen\nB: nitrogen"
    "\nCorrect solution:\n\n<answer>B</answer>"
    "\n\nCorrectly solve the original question."
)
FEEDBACK_ONLY = (
    "Which gas is most abundant in air?\nA: oxygen\nB: nitrogen"
    "\nThe following is feedback from your unsuccessful earlier attempt:\n\nWrong answer: A is not correct."
    "\n\nCorrectly solve the original question."
)
BOTH = (  # environment_feedback_only_without_solution: False in the reference
    "Which gas is most abundant in air?\nA: oxygen\nB: nitrogen"
    "\nCorrect solution:\n\n<answer>B</answer>"
    "\nThe following is feedback from your unsuccessful earlier attempt:\n\nWrong answer: A is not correct."
    "\n\nCorrectly solve the original question."
)


def test_render_is_the_reference_template_byte_for_byte():
    solution, feedback = ["<answer>B</answer>"], ["Wrong answer: A is not correct."]
    for parts, expected in ((ContextParts(solution=solution), SOLUTION_ONLY),
                            (ContextParts(feedback=feedback), FEEDBACK_ONLY),
                            (ContextParts(solution=solution, feedback=feedback), BOTH)):
        messages = render(STUDENT, parts)
        assert messages == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": expected}]
        assert not expected.endswith("\n")  # |- blocks: no trailing newline
    assert STUDENT[1]["content"] == QUESTION  # the input is not modified


def test_pmd_memory_sections_go_before_the_solution_in_the_same_style():
    parts = ContextParts(behaviors=["Recall the composition of air.", "Do not confuse volume and mass."],
                         insights=["Nitrogen is ~78% of air."],
                         past_solution=["Nitrogen dominates.\n<answer>B</answer>"],
                         solution=["<answer>B</answer>"])
    assert render(STUDENT, parts)[1]["content"] == (
        "Which gas is most abundant in air?\nA: oxygen\nB: nitrogen"
        "\nSkills and mistakes to avoid from related questions:\n\n"
        "- Recall the composition of air.\n- Do not confuse volume and mass."
        "\nNotes from earlier attempts at this question:\n\n- Nitrogen is ~78% of air."
        "\nA correct solution from an earlier attempt at this question:\n\nNitrogen dominates.\n<answer>B</answer>"
        "\nCorrect solution:\n\n<answer>B</answer>"
        "\n\nCorrectly solve the original question."
    )
    # Memory alone (no sibling succeeded, no feedback) is still a signal, closed the same way.
    memory_only = build_teacher_context(STUDENT, ContextParts(insights=["Nitrogen is ~78% of air."]), words, 1000)
    assert memory_only.has_signal and memory_only.messages[1]["content"] == (
        "Which gas is most abundant in air?\nA: oxygen\nB: nitrogen"
        "\nNotes from earlier attempts at this question:\n\n- Nitrogen is ~78% of air."
        "\n\nCorrectly solve the original question."
    )


class _Item:
    question_id = "q1"

    def messages(self):
        return STUDENT


def sdpo_prompts(samples, **teacher):
    """The user turn of every sample's SDPO teacher prompt, through ``teacher_contexts``."""
    config = from_dict(TrainConfig, {"algorithm": "sdpo", "teacher": teacher})
    contexts = teacher_contexts(samples, {"q1": _Item()}, MemoryView(None, None, config, step=0), config, words)
    for context in contexts:
        assert context.messages[0] == {"role": "system", "content": SYSTEM}
    return [c.messages[-1]["content"] for c in contexts], [c.has_signal for c in contexts]


def sample(text, reward, feedback=""):
    return Sample("q1", 0, [], [1], text, reward=reward, feedback=feedback)


WRONG = "Wrong answer: A is not correct."
RIGHT = "<think>\nAir is mostly nitrogen.\n</think>\n\n<answer>B</answer>"


def test_sdpo_defaults_match_the_reference():
    # A failed attempt with a successful sibling: the solution only (think block removed), no feedback.
    # The successful attempt, with no other success to learn from: its own non-empty feedback.
    failed, right = sample("<answer>A</answer>", 0.0, WRONG), sample(RIGHT, 1.0, "Correct: B is right.")
    prompts, signal = sdpo_prompts([failed, right])
    assert prompts == [
        SOLUTION_ONLY,
        "Which gas is most abundant in air?\nA: oxygen\nB: nitrogen"
        "\nThe following is feedback from your unsuccessful earlier attempt:\n\nCorrect: B is right."
        "\n\nCorrectly solve the original question.",
    ]
    assert signal == [True, True]


def test_sdpo_feedback_only_and_no_signal():
    # No sibling succeeded: the failed attempt sees its own feedback; blank feedback is no feedback,
    # and with nothing to add the prompt is the student's question unchanged (no closing line).
    group = [sample("<answer>A</answer>", 0.0, WRONG), sample("<answer>C</answer>", 0.0, "  \n")]
    prompts, signal = sdpo_prompts(group)
    assert prompts == [FEEDBACK_ONLY, QUESTION] and signal == [True, False]


def test_sdpo_first_successful_sibling_other_than_itself():
    first, second = sample("<answer>B</answer>", 1.0), sample("Because nitrogen. <answer>B</answer>", 1.0)
    prompts, _ = sdpo_prompts([sample("<answer>A</answer>", 0.0), first, second])
    assert prompts[0] == SOLUTION_ONLY  # the first success in batch order
    assert prompts[1] == SOLUTION_ONLY.replace("<answer>B</answer>", "Because nitrogen. <answer>B</answer>")
    assert prompts[2] == SOLUTION_ONLY  # never its own answer
    own, _ = sdpo_prompts([first], dont_reprompt_on_self_success=False)
    assert own == [SOLUTION_ONLY]
    alone, signal = sdpo_prompts([first])
    assert alone == [QUESTION] and signal == [False]


def test_sdpo_options_for_the_other_behaviours():
    failed, right = sample("<answer>A</answer>", 0.0, WRONG), sample("<answer>B</answer>", 1.0, "Correct: B is right.")
    both, _ = sdpo_prompts([failed, right], feedback_with_solution=True)
    assert both[0] == BOTH
    failed_only, signal = sdpo_prompts([failed, right], feedback_on_success=False)
    assert failed_only == [SOLUTION_ONLY, QUESTION] and signal == [True, False]
    no_feedback, _ = sdpo_prompts([failed, sample("<answer>C</answer>", 0.0, WRONG)], include_feedback=False)
    assert no_feedback == [QUESTION, QUESTION]
    no_solution, _ = sdpo_prompts([failed, right], include_solution=False)
    assert no_solution[0] == FEEDBACK_ONLY


REFERENCE_REPROMPT = "{prompt}{solution}{feedback}\n\nCorrectly solve the original question."
REFERENCE_SOLUTION = "\nCorrect solution:\n\n{successful_previous_attempt}"
REFERENCE_FEEDBACK = "\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback_raw}"


def reference_prompts(rewards, texts, feedbacks, *, threshold, dont_reprompt_on_self_success,
                      feedback_only_without_solution):
    """An independent restatement of the reference's choice and formatting (one uid group)."""
    out = []
    for i in range(len(rewards)):
        winners = [j for j, r in enumerate(rewards)
                   if r >= threshold and not (dont_reprompt_on_self_success and j == i)]
        solution = re.sub(r"<think>.*?</think>\s*", "", texts[winners[0]], flags=re.DOTALL) if winners else None
        feedback = feedbacks[i] if feedbacks[i].strip() else None
        use_feedback = feedback is not None and (not feedback_only_without_solution or solution is None)
        if solution is None and not use_feedback:
            out.append(QUESTION)
            continue
        out.append(REFERENCE_REPROMPT.format(
            prompt=QUESTION,
            solution=REFERENCE_SOLUTION.format(successful_previous_attempt=solution) if solution is not None else "",
            feedback=REFERENCE_FEEDBACK.format(feedback_raw=feedbacks[i]) if use_feedback else ""))
    return out


@pytest.mark.parametrize("dont_self", [True, False])
@pytest.mark.parametrize("only_without_solution", [True, False])
def test_every_small_group_matches_the_reference(dont_self, only_without_solution):
    texts = [f"<think>draft {i}</think>\n answer {i} {{x}}" for i in range(3)]
    for mask in itertools.product([0.0, 1.0], repeat=3):
        for fb_mask in itertools.product([False, True], repeat=3):
            feedbacks = [f"feedback {i}\n" if on else " " for i, on in enumerate(fb_mask)]
            group = [sample(t, r, f) for t, r, f in zip(texts, mask, feedbacks)]
            ours, signal = sdpo_prompts(group, dont_reprompt_on_self_success=dont_self,
                                        feedback_with_solution=not only_without_solution)
            expected = reference_prompts(mask, texts, feedbacks, threshold=1.0, dont_reprompt_on_self_success=dont_self,
                                         feedback_only_without_solution=only_without_solution)
            assert ours == expected, (mask, fb_mask)
            assert signal == [p != QUESTION for p in expected]


def test_demonstration_reasoning_removal_options():
    text = "<think>hmm</think>\n<reasoning>\nAir is 78% nitrogen.\n</reasoning>\n<answer>B</answer>"
    group = [sample("<answer>A</answer>", 0.0), sample(text, 1.0)]
    def solution(**teacher):
        return in_batch_parts(group[0], group, TeacherConfig(**teacher), 1.0)[0]

    # Reference (remove_thinking_from_demonstration): <think> blocks and the whitespace after them only.
    assert solution() == ["<reasoning>\nAir is 78% nitrogen.\n</reasoning>\n<answer>B</answer>"]
    assert solution(remove_reasoning_from_demonstration=True) == ["<answer>B</answer>"]
    assert solution(remove_thinking_from_demonstration=False) == [text]


def test_teacher_config_validation():
    with pytest.raises(ValueError, match="feedback_with_solution"):
        TeacherConfig(feedback_with_solution=True, include_feedback=False)
    with pytest.raises(ValueError, match="feedback_with_solution"):
        TeacherConfig(feedback_with_solution=True, include_solution=False)
    with pytest.raises(ValueError, match="feedback_on_success"):
        TeacherConfig(feedback_on_success=False, include_feedback=False)
    TeacherConfig(feedback_with_solution=True, feedback_on_success=False)  # a valid non-default


# --- Layout and budget ----------------------------------------------------------------------------


def test_no_signal_leaves_the_prompt_unchanged():
    context = build_teacher_context(STUDENT, ContextParts(), words, budget_tokens=100)
    assert context.messages == STUDENT and not context.has_signal


def test_memory_sections_come_first_in_a_fixed_layout():
    parts = ContextParts(behaviors=["Recall the composition of air."], insights=["Nitrogen is ~78% of air."],
                         past_solution=["<answer>B</answer>"], solution=["<answer>B</answer>"])
    text = build_teacher_context(STUDENT, parts, words, budget_tokens=1000).messages[1]["content"]
    order = [text.index(t) for t in ("Skills and mistakes", "Notes from earlier", "A correct solution from an earlier",
                                     "Correct solution:", "Correctly solve the original question.")]
    assert order == sorted(order)
    assert "- Recall the composition of air." in text and "- Nitrogen is ~78% of air." in text


def test_budget_drops_lowest_priority_items_first_and_never_the_question():
    parts = ContextParts(behaviors=["b1 b1 b1", "b2 b2 b2"], insights=["i1 i1 i1"], past_solution=["p p p p p"],
                         solution=["s s s"], feedback=["f f f"])
    full = build_teacher_context(STUDENT, parts, words, budget_tokens=10_000)
    assert full.included == {"behaviors": 2, "insights": 1, "past_solution": 1, "solution": 1, "feedback": 1}
    # Tighten the budget step by step: past solution goes first, then the last behavior, ...
    tight = build_teacher_context(STUDENT, parts, words, budget_tokens=full.tokens - 5)
    assert tight.dropped["past_solution"] == 1 and tight.included["behaviors"] == 2 and tight.tokens <= full.tokens - 5
    tighter = build_teacher_context(STUDENT, parts, words, budget_tokens=tight.tokens - 1)
    assert tighter.included["behaviors"] == 1 and "b1 b1 b1" in tighter.messages[1]["content"]
    bare = build_teacher_context(STUDENT, parts, words, budget_tokens=words(STUDENT))
    assert bare.messages == STUDENT and not bare.has_signal and not bare.over_budget
    hopeless = build_teacher_context(STUDENT, parts, words, budget_tokens=3)
    assert hopeless.messages == STUDENT and hopeless.over_budget  # the question is never cut


def test_custom_priority_and_validation():
    parts = ContextParts(behaviors=["b b b b"], feedback=["f f f f"])
    keep_behaviors = build_teacher_context(STUDENT, parts, words, budget_tokens=words(STUDENT) + 20,
                                           priority=["behaviors", "insights", "past_solution", "solution", "feedback"])
    assert keep_behaviors.included["behaviors"] == 1 and keep_behaviors.included["feedback"] == 0
    with pytest.raises(ValueError, match="priority must order exactly"):
        build_teacher_context(STUDENT, parts, words, 100, priority=["feedback"])


def test_reasoning_blocks_are_removed_from_demonstrations():
    assert strip_reasoning("<think>hmm</think>code") == "code"
    assert strip_reasoning("<think>a</think>\n\n<answer>B</answer>\n") == "<answer>B</answer>\n"  # as the reference
    assert strip_reasoning("<reasoning>long chain</reasoning>\n<answer>B</answer>") == \
        "<reasoning>long chain</reasoning>\n<answer>B</answer>"
    assert strip_reasoning("<reasoning>long chain</reasoning>\n<answer>B</answer>", ("think", "reasoning")) == \
        "<answer>B</answer>"
    with pytest.raises(ValueError, match="unknown reasoning tag"):
        strip_reasoning("x", ("scratchpad",))


def test_real_tokenizer_budget_holds(tmp_path_factory):
    from transformers import AutoTokenizer

    from pmd.tiny_model import build_tiny_models

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_models(tmp_path_factory.mktemp("m"))["tiny"])
    count = chat_token_counter(tokenizer)
    parts = ContextParts(behaviors=[f"behavior number {i} about gases" for i in range(20)], solution=["<answer>B</answer>"])
    budget = count(STUDENT) + 200
    context = build_teacher_context(STUDENT, parts, count, budget_tokens=budget)
    assert context.tokens == count(context.messages) <= budget
    assert 0 < context.included["behaviors"] < 20 and context.included["solution"] == 1
