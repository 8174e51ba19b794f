"""Memory written by a real pretrained model: SmolLM2-135M-Instruct reflects on its own attempts.

SmolLM2 answers demo_mcq questions, the task's verifier scores the answers, and the same model
writes insights (trainer.reflection) and behaviors (trainer.behaviors) about them through
LocalModelReflector; then one PMD step runs with SmolLM2 as the policy through ``pmd-train``.
A 135M model writes weak advice, so the tests check what the pipeline guarantees: replies come
back in the line format often enough to yield memory, and every stored line passed the filters.
"""
from __future__ import annotations

import pytest

from memory_bank import Experience, MemoryBank
from memory_bank.embedding import HashingEmbedder
from test_smollm2 import session_smollm2
from trainer.reflection import QuestionAttempts, parse_insights, prompt_ngrams, copies_prompt, reflect, \
    reflection_messages, write_insights
from trainer_helpers import REPO, metrics, run_training

pytestmark = pytest.mark.slow

CONFIG = REPO / "trainer" / "configs" / "smollm2_demo_mcq_pmd.yaml"
QUESTIONS = 6


@pytest.fixture(scope="module")
def reflector(tmp_path_factory):
    from trainer.reflectors import LocalModelReflector

    return LocalModelReflector.from_pretrained(str(session_smollm2(tmp_path_factory)), seed=0)


@pytest.fixture(scope="module")
def groups(reflector):
    """SmolLM2's own attempts at demo questions, verified; every other question also gets a
    hand-written correct attempt, so both contrastive and lessons-only prompts are exercised."""
    from tasks.registry import get_task
    from trainer.rollout import SamplingConfig, chat_prompt, sample_responses

    task = get_task("demo_mcq")
    items = task.split(None, "train")[:QUESTIONS]
    prompts = [chat_prompt(reflector.tokenizer, item.messages()) for item in items]
    samples = sample_responses(reflector.model, reflector.tokenizer, prompts, 2,
                               SamplingConfig(max_new_tokens=32, temperature=1.0), seed=0)
    out = []
    for i, (item, texts) in enumerate(zip(items, samples)):
        attempts = [(text, task.reward(text, item).reward, task.reward(text, item).feedback) for text in texts]
        if i % 2:
            right = f"<reasoning>\nChecking each option against the question.\n</reasoning>\n<answer>\n{item.answer}\n</answer>"
            attempts.append((right, 1.0, ""))
        out.append(QuestionAttempts(item.question_id, item.prompt, attempts))
    return out


@pytest.fixture(scope="module")
def reflection(reflector, groups):
    return reflect(reflector, groups, step=0, run_id="real", model_name="smollm2", max_new_tokens=48)


def test_smollm2_reflections_yield_insights(reflection, groups):
    assert reflection.requests == QUESTIONS and reflection.failed_requests == 0
    assert reflection.insights, "no usable STRATEGY/LESSON line in any of SmolLM2's reflections"
    answered = {i.question_id for i in reflection.insights}
    assert len(answered) >= 2  # usable lines on more than one question, not a lucky reply
    by_id = {g.question_id: g for g in groups}
    for insight in reflection.insights:
        group = by_id[insight.question_id]
        assert insight.kind in ("strategy", "lesson") and insight.confidence == group.success_ratio
        assert parse_insights(f"{insight.kind.upper()}: {insight.text}")  # a well-formed line
        messages = reflection_messages(group)
        prompt = "\n".join(m["content"] for m in messages)
        assert not copies_prompt(insight.text, prompt_ngrams(prompt))  # not the example or an attempt echoed


def test_behaviors_abstracted_from_smollm2_insights(reflection, reflector):
    from trainer.behaviors import update_behaviors

    bank = MemoryBank.in_memory(embedder=HashingEmbedder(dim=64))
    questions = {i.question_id for i in reflection.insights}
    bank.add_experiences([Experience(qid, f"demo question {qid}", "answer", 0.0, step=0) for qid in questions])
    assert write_insights(bank, reflection.insights) > 0
    # One cluster per question: several abstraction requests, each over that question's insights.
    update = update_behaviors(bank, reflector, HashingEmbedder(dim=64), step=1, run_id="real", model_name="smollm2",
                              min_questions=1, n_clusters=len(questions), max_new_tokens=48)
    assert update.failed_requests == 0 and update.behaviors_written >= 1
    rows = bank.behaviors()
    assert rows and all(r["kind"] in ("skill", "mistake-to-avoid") and r["text"] for r in rows)


def test_one_pmd_step_with_smollm2_as_the_policy(tmp_path, tmp_path_factory):
    folder = session_smollm2(tmp_path_factory)
    overrides = {
        "model.name_or_path": folder, "run.output_dir": tmp_path, "run.name": "smollm2-step",
        "data.max_steps": 1, "data.questions_per_step": 2, "data.samples_per_question": 2,
        "data.max_response_tokens": 16, "reflection.max_new_tokens": 48, "logging.validate_every": 0,
    }
    run_training([f"{key}={value}" for key, value in overrides.items()], config=CONFIG, timeout=600)
    run = tmp_path / "smollm2-step"
    (row,) = metrics(run)
    assert row["step"] == 1 and row["tokens/response_mean"] <= 16
    assert row["reflection/requests"] == 2 and row["reflection/failed_requests"] == 0
    assert isinstance(row["reflection/copies_dropped"], int)  # lines that only copied the prompt
    assert row["memory/experience"] == 4
    assert (run / "checkpoints" / "step-000001" / "COMPLETE").exists()
