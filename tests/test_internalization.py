"""Internalization: distilling from a teacher whose context holds a fact moves the memory-free
student towards the teacher on that prompt; a frozen policy does not move at all. And the
teacher context built from a bank really carries the retrieved memory, within budget."""
from __future__ import annotations

import copy

import pytest
import torch

from memory_bank import Behavior, Experience, Insight, MemoryBank
from memory_bank.embedding import HashingEmbedder
from memory_bank.retrieval import BankRetriever
from pmd.config import from_dict
from trainer.config import TrainConfig
from trainer.losses.sdpo import alpha_divergence, sdpo_loss
from trainer.memory_step import MemoryView, teacher_contexts
from trainer.rollout import SamplingConfig, chat_ids, generate_rollouts
from trainer.sequences import Sample, response_logits
from trainer.teacher_context import ContextParts, build_teacher_context, chat_token_counter

QUESTION = [{"role": "user", "content": "What is the capital of Zorbia? Answer with one word."}]
FACT = "The capital of Zorbia is Quillon."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pmd.tiny_model import build_tiny_models

    path = build_tiny_models(tmp_path_factory.mktemp("models"))["tiny-large"]
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)


def _divergence(student, teacher, prompt_ids, teacher_ids, response):
    with torch.no_grad():
        s, targets, mask = response_logits(student, [prompt_ids], [response], 0)
        t, _, _ = response_logits(teacher, [teacher_ids], [response], 0)
        per_token = alpha_divergence(torch.log_softmax(s, -1), torch.log_softmax(t, -1), 0.5)
    return float((per_token * mask).sum() / mask.sum())


@pytest.mark.parametrize("frozen", [False, True], ids=["trained", "frozen-policy"])
def test_distilling_a_fact_lowers_teacher_student_divergence(tiny, frozen):
    model, tokenizer = tiny
    torch.manual_seed(0)
    student = copy.deepcopy(model).train()
    teacher = copy.deepcopy(model).eval()  # fixed self-teacher: the initial policy with memory in context
    context = build_teacher_context(QUESTION, ContextParts(insights=[FACT]), chat_token_counter(tokenizer), 512)
    assert FACT in context.messages[-1]["content"] and context.has_signal
    prompt_ids, teacher_ids = chat_ids(tokenizer, QUESTION), chat_ids(tokenizer, context.messages)
    rollouts = generate_rollouts(student, tokenizer, [prompt_ids], 4, SamplingConfig(max_new_tokens=12), seed=1)[0]
    responses = [list(r.response_ids) for r in rollouts]

    before = _divergence(student, teacher, prompt_ids, teacher_ids, responses[0])
    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-4)
    for _ in range(40):
        s_logits, targets, mask = response_logits(student, [prompt_ids] * 4, responses, 0)
        with torch.no_grad():
            t_logits, _, _ = response_logits(teacher, [teacher_ids] * 4, responses, 0)
        loss, _ = sdpo_loss(s_logits, t_logits, targets, mask, alpha=0.5, top_k=None)
        if not frozen:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    after = _divergence(student, teacher, prompt_ids, teacher_ids, responses[0])
    assert before > 0
    if frozen:
        assert after == before
    else:
        assert after < 0.5 * before, (before, after)


def test_teacher_context_carries_retrieved_memory_within_budget(tiny):
    _, tokenizer = tiny
    config = from_dict(TrainConfig, {"memory": {"retrieve_k": 2, "insights_per_question": 1,
                                                "retrieval": {"embedding_model": "hash-64", "levels": ["behavior"]}},
                                     "teacher": {"context_budget_tokens": 4000}})
    embedder = HashingEmbedder(dim=64)
    bank = MemoryBank.in_memory(embedder=embedder)
    bank.upsert_question("q1", QUESTION[0]["content"])
    bank.add_insight(Insight("q1", "strategy", FACT, 1.0))
    bank.add_insight(Insight("q1", "lesson", "Guessing a random city name scores zero.", 0.2))
    bank.add_behavior(Behavior("skill", "For capital questions recall the capital of the named country."))
    bank.add_behavior(Behavior("skill", "Balance redox equations by electrons first."))
    bank.add_behavior(Behavior("mistake-to-avoid", "Do not answer with the country name instead of its capital."))
    bank.add_experiences([Experience("q1", QUESTION[0]["content"], "<think>hmm</think>Quillon", 1.0, "Correct.", step=0)])

    class Item:
        question_id = "q1"

        def messages(self):
            return QUESTION

    samples = [Sample("q1", 0, [], [1], "Zorbiaville", reward=0.0, feedback="Wrong answer."),
               Sample("q1", 0, [], [1], "Quillon", reward=1.0, feedback="Correct.")]
    view = MemoryView(bank, BankRetriever(bank, config.memory.retrieval, embedder=embedder), config, step=1)
    count = chat_token_counter(tokenizer)
    wrong, right = teacher_contexts(samples, {"q1": Item()}, view, config, count)
    text = wrong.messages[-1]["content"]
    assert "capital of the named country" in text and "country name instead of its capital" in text
    assert "Balance redox" not in text  # only the top-2 retrieved behaviors
    assert FACT in text and "Guessing a random city" not in text  # the most confident insight only
    assert "A correct solution from an earlier attempt" in text and "<think>" not in text
    # The sibling's solution; the own feedback only goes in without one (SDPO's reference default).
    assert "Correct solution:\n\nQuillon" in text and "Wrong answer." not in text
    assert "Correct solution:" not in right.messages[-1]["content"]  # not its own answer back
    assert wrong.tokens == count(wrong.messages) <= 4000 and view.hits == 1
    # A tight budget drops memory (lowest priority first) but keeps the question and the feedback.
    config.teacher.context_budget_tokens = count(QUESTION) + 120
    tight, _ = teacher_contexts(samples, {"q1": Item()}, view, config, count)
    assert tight.tokens <= config.teacher.context_budget_tokens and tight.dropped["past_solution"] == 1
    assert tight.messages[-1]["content"].startswith(QUESTION[0]["content"])
