"""vLLM as rollout engine and evaluation backend, on the tiny models (vLLM's CPU build).

Run in the vLLM environment: ``make test-vllm`` (builds ``.venv-vllm``). Skipped where vllm is not
installed (the main environment: vLLM's CPU build pins transformers below 5.20).
"""
from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("vllm")

from trainer import engine as E  # noqa: E402
from trainer.config import LossConfig  # noqa: E402
from trainer.objective import step_denominator, train_micro_batch  # noqa: E402
from trainer.rollout import SamplingConfig, chat_ids  # noqa: E402
from trainer.sequences import Sample, response_logits, token_logprobs  # noqa: E402
from trainer_helpers import metrics, run_training, start_reflection_server, tiny_overrides  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
QUESTIONS = ["Which gas is most abundant in air?\nA: oxygen\nB: nitrogen", "What is 2 + 3?\nA: 5\nB: 6"]
LOGPROB_TOL = 1e-4  # float32 on CPU: the engine's and the trainer's kernels differ only in rounding


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from pmd.tiny_model import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def engine(models):
    from trainer.vllm_engine import VLLMEngine

    E.init_distributed()  # as the trainer does: its process group first, then the engine joins it
    vllm_engine = VLLMEngine(str(models["tiny"]), dtype="float32", seed=0, max_model_len=512)
    yield vllm_engine
    vllm_engine.close()
    E.shutdown_distributed()


@pytest.fixture(scope="module")
def tokenizer(models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(models["tiny"])


def prompts(tokenizer) -> list[list[int]]:
    return [chat_ids(tokenizer, [{"role": "user", "content": q}]) for q in QUESTIONS]


def hf_logprobs(model, prompt, response) -> list[float]:
    with torch.no_grad():
        logits, targets, _ = response_logits(model, [prompt], [list(response)], 0)
        return token_logprobs(logits, targets)[0].tolist()


def max_gap(a, b) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def test_rollouts_from_the_engine(engine, tokenizer, models):
    from transformers import AutoModelForCausalLM

    ids = prompts(tokenizer)
    groups = engine.generate_rollouts(ids, 4, SamplingConfig(max_new_tokens=12), seed=5)
    assert [len(g) for g in groups] == [4, 4]
    vocab = len(tokenizer)
    for group in groups:
        for rollout in group:
            assert 0 < len(rollout.response_ids) <= 12 and all(0 <= t < vocab for t in rollout.response_ids)
            assert len(rollout.logprobs) == len(rollout.response_ids)
    assert len({g[0].response_ids for g in groups} | {r.response_ids for r in groups[0]}) > 1  # sampled, not copied
    # Same prompts as the HF engine: the engine's sampled-token log-probs are the HF model's
    # log-probs of those tokens given exactly these prompt ids (T = 1, top-p = 1).
    with E.zero3_loading_disabled():
        hf = AutoModelForCausalLM.from_pretrained(models["tiny"])
    for prompt, group in zip(ids, groups):
        assert max_gap(group[0].logprobs, hf_logprobs(hf, prompt, group[0].response_ids)) < LOGPROB_TOL
    # Seeded per question: the same call gives the same samples.
    again = engine.generate_rollouts(ids, 4, SamplingConfig(max_new_tokens=12), seed=5)
    assert [[r.response_ids for r in g] for g in again] == [[r.response_ids for r in g] for g in groups]


def test_many_long_seeded_prompts_in_one_call(engine):
    """More prompt tokens than one scheduler step holds, every request seeded (vLLM's CPU build
    crashed on this with chunked prefill)."""
    prompts = [[5 + i % 50] * 240 for i in range(64)]  # 15,360 prompt tokens
    groups = engine.generate_rollouts(prompts, 1, SamplingConfig(max_new_tokens=4), seed=0)
    assert len(groups) == 64 and all(len(g) == 1 and g[0].response_ids for g in groups)


def test_weights_sync_after_a_training_step(engine, tokenizer, models):
    config = E.ds_config(zero_stage=0, micro_batch_size=8, lr=5e-2, caller_owns_accumulation=True)
    student = E.build_engine(E.load_model(models["tiny"], config), config)
    teacher = E.build_inference_engine(E.load_model(models["tiny"], config), config)
    ids = prompts(tokenizer)
    engine.sync_weights(student)  # the engine starts from the student's weights
    groups = engine.generate_rollouts(ids, 4, SamplingConfig(max_new_tokens=10), seed=1)
    samples = [Sample(f"q{g}", g, ids[g], list(r.response_ids), r.text, rollout_logprobs=list(r.logprobs))
               for g, group in enumerate(groups) for r in group]
    for sample in samples:
        sample.teacher_prompt_ids = sample.prompt_ids + chat_ids(tokenizer, [{"role": "user", "content": "Hint: B"}])
    loss = LossConfig(top_k=20, logits_chunk_tokens=8)
    stats = train_micro_batch(student, teacher, None, samples, None, algorithm="sdpo", loss=loss, pad_id=0,
                              denominator=step_denominator(samples, "sdpo"))
    # The rollout log-probs reached the loss: the engine and the trainer held the same weights.
    assert stats["is_weight_mean"] == pytest.approx(1.0, abs=1e-3) and stats["is_clip_frac"] == 0.0
    student.step()

    prompt, response = ids[0], samples[0].response_ids
    trained = hf_logprobs(E.unwrap(student), prompt, response)
    stale = engine.token_logprobs(prompt, response)
    assert max_gap(stale, trained) > 1e-3  # before the sync the engine still has the old policy
    seconds = engine.sync_weights(student)
    assert seconds > 0 and max_gap(engine.token_logprobs(prompt, response), trained) < LOGPROB_TOL

    # A rollout policy far from the trainer's: every token's weight is clipped at loss.rollout_is_clip.
    for sample in samples:
        sample.rollout_logprobs = [lp - 3.0 for lp in sample.rollout_logprobs]
    clipped = train_micro_batch(student, teacher, None, samples, None, algorithm="sdpo", loss=loss, pad_id=0,
                                denominator=step_denominator(samples, "sdpo"), update=False)
    assert clipped["is_clip_frac"] == 1.0 and clipped["is_weight_mean"] == pytest.approx(2.0)


@pytest.fixture(scope="module")
def endpoint():
    server, url = start_reflection_server()
    yield url
    server.shutdown()


@pytest.mark.parametrize("algorithm", ["pmd", "grpo"])
def test_three_step_runs_with_the_vllm_engine(models, endpoint, tmp_path, algorithm):
    extra = {"algorithm": algorithm, "rollout.engine": "vllm", "data.max_steps": 3, "checkpoint.every": 3,
             "logging.validate_every": 3, "rollout.max_model_len": 1024}
    if algorithm == "pmd":
        extra.update({"reflection.source": "endpoint", "reflection.base_url": endpoint, "reflection.model": "scripted"})
    run_training(tiny_overrides(models["tiny"], tmp_path, algorithm, **extra), timeout=600)
    run = tmp_path / algorithm
    rows = metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["time/weight_sync"] > 0 for r in rows) and "validation/accuracy" in rows[-1]
    assert (run / "checkpoints" / "step-000003" / "COMPLETE").exists()
    if algorithm == "pmd":
        assert rows[-1]["memory/experience"] > 0 and rows[-1]["loss/is_weight_mean"] == pytest.approx(1.0, abs=1e-2)


def test_eval_with_the_vllm_backend(models, tmp_path):
    from harness.eval_job import run_evaluation
    from harness.evaluation import EvalSettings
    from memory_bank import Insight, MemoryBank
    from memory_bank.embedding import HashingEmbedder
    from memory_bank.prompt_block import BLOCK_OPEN

    bank_path = tmp_path / "bank.db"
    with MemoryBank.open(bank_path, create=True, embedder=HashingEmbedder(dim=64)) as bank:
        bank.upsert_question("demo-001", "training question", task="demo_mcq")
        bank.add_insight(Insight("demo-001", "strategy", "Velocity is a vector zebra-marker quantity.", 0.8))
    base = dict(models=[str(models["tiny-large"])], tasks=["demo_mcq"], output_dir=tmp_path, limit=3,
                max_gen_toks=6, backend="vllm", model_args={"dtype": "float32", "max_model_len": 1024})
    path, summary = run_evaluation(EvalSettings(name="plain", **base), echo=lambda _: None)
    assert [r["tasks"]["demo_mcq"]["value"] is not None for r in summary["runs"]] == [True]
    path, summary = run_evaluation(EvalSettings(name="memory", memory=str(bank_path), memory_k=[0, 1], **base),
                                   echo=lambda _: None)
    assert [r["label"] for r in summary["runs"]] == ["tiny-large · no memory", "tiny-large · bank k=1"]
    given = [json.loads(line) for line in (path / "runs" / "tiny-large-bank-k1" / "samples_demo_mcq.jsonl").open()]
    plain = [json.loads(line) for line in (path / "runs" / "tiny-large-no-memory" / "samples_demo_mcq.jsonl").open()]
    assert len(given) == 3 and all(len(s["memory"]) == 1 for s in given)
    assert all(BLOCK_OPEN in json.dumps(s["arguments"]) for s in given)
    assert not any(BLOCK_OPEN in json.dumps(s["arguments"]) for s in plain)
