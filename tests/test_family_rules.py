"""The family_rules task: generator, conventions, letter balance, verifier, registry and lm-eval task."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tasks.family_rules import generate
from tasks.family_rules.families import FAMILIES, Family, content_words, matching_letters, parse_prompt
from tasks.family_rules.verifier import verify_family
from tasks.registry import get_task
from tasks.sciknoweval.loader import load_split_file

TASK_DIR = Path(__file__).resolve().parents[1] / "tasks" / "family_rules"
DEMO_DIR = TASK_DIR.parent / "demo_mcq"
SPLITS = ("train", "test")
LETTERS = ["A", "B", "C", "D"]


def _records(split: str) -> list[dict]:
    return [json.loads(line) for line in (TASK_DIR / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def committed() -> dict[str, list[dict]]:
    return {split: _records(split) for split in SPLITS}


# ------------------------------------------------------------------------------ generator

def test_committed_files_equal_a_fresh_generation_with_the_default_seed():
    fresh = generate.build_splits(generate.DEFAULT_SEED)
    for split in SPLITS:
        assert (TASK_DIR / f"{split}.jsonl").read_text(encoding="utf-8") == generate.render(fresh[split]), (
            f"{split}.jsonl is stale: run python -m tasks.family_rules.generate --seed 0")


def test_generator_is_deterministic_and_seeded(tmp_path):
    assert generate.build_splits(3) == generate.build_splits(3)
    assert generate.build_splits(3) != generate.build_splits(4)
    generate.main(["--seed", "0", "--out", str(tmp_path)])
    for split in SPLITS:
        assert (tmp_path / f"{split}.jsonl").read_bytes() == (TASK_DIR / f"{split}.jsonl").read_bytes()


def test_sizes_format_and_system_prompt(committed):
    assert {split: len(records) for split, records in committed.items()} == {"train": 80, "test": 40}
    demo = json.loads((DEMO_DIR / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert "\nD: " in demo["prompt"]  # a four-option demo question
    for record in committed["train"] + committed["test"]:
        assert list(record) == list(demo)  # demo_mcq's keys, in its order
        assert record["system"] == demo["system"] and record["dataset"] == "family_rules"
        assert record["prompt"].endswith("\nPlease reason step by step.")
    ids = [r["idx"] for r in committed["train"] + committed["test"]]
    assert sorted(ids) == list(range(120))
    size = sum((TASK_DIR / f"{split}.jsonl").stat().st_size for split in SPLITS)
    assert size < 300_000


# ------------------------------------------------------------------------------ conventions

@pytest.mark.parametrize("split", SPLITS)
def test_only_the_correct_option_follows_the_family_convention(committed, split):
    for record in committed[split]:
        family, question, options = parse_prompt(record["prompt"])
        assert family == record["topic"] and family in FAMILIES
        assert list(options) == LETTERS and len(set(options.values())) == 4
        assert matching_letters(FAMILIES[family], question, options) == [record["answer"]], record["prompt"]


def test_conventions_on_hand_made_options():
    options = {"A": "the ivory pier", "B": "THE AMBER DOCK", "C": "12 casks", "D": "the slate quay for the ferry"}
    question = "Which mooring should the ferry use?"
    assert matching_letters(Family("x", "letter", "C"), question, options) == ["C"]
    assert matching_letters(Family("x", "marker", "amber"), question, options) == ["B"]
    assert matching_letters(Family("x", "capitals"), question, options) == ["B"]
    assert matching_letters(Family("x", "echo"), question, options) == ["D"]  # "the" does not count
    numbers = {"A": "900 degrees", "B": "1200 degrees", "C": "750 degrees", "D": "1100 degrees"}
    assert matching_letters(Family("x", "largest"), "", numbers) == ["B"]
    assert matching_letters(Family("x", "smallest"), "", numbers) == ["C"]
    assert content_words("The Amber dock, for the ferry") == {"amber", "dock", "ferry"}
    with pytest.raises(ValueError, match="needs value"):
        Family("x", "marker")


def test_the_cues_appear_as_noise_outside_their_family(committed):
    """A convention's cue also marks wrong options in other families, so no cue works without the family."""
    wrong_hits = Counter()
    for record in committed["train"] + committed["test"]:
        family, question, options = parse_prompt(record["prompt"])
        for other in FAMILIES.values():
            if other.name != family and other.kind != "letter":
                wrong_hits[other.name] += sum(k != record["answer"] for k in matching_letters(other, question, options))
    assert all(wrong_hits[f.name] >= 10 for f in FAMILIES.values() if f.kind != "letter"), wrong_hits


def test_statements_are_one_sentence_naming_the_family():
    kinds = Counter(f.kind for f in FAMILIES.values())
    assert 6 <= len(FAMILIES) <= 8 and len(kinds) >= 5
    for family in FAMILIES.values():
        sentence = family.statement()
        assert sentence.startswith(f"In {family.name} questions the correct option is always ")
        assert sentence.count(".") == 1 and sentence.endswith(".")
    assert FAMILIES["harbor"].statement() == "In harbor questions the correct option is always option C."


# ------------------------------------------------------------------------------ letters and splits

@pytest.mark.parametrize("split", SPLITS)
def test_letters_are_balanced(committed, split):
    records = committed[split]
    assert Counter(r["answer"] for r in records) == Counter({letter: len(records) // 4 for letter in LETTERS})
    per_family: dict[str, Counter] = {}
    for record in records:
        per_family.setdefault(record["topic"], Counter())[record["answer"]] += 1
    for name, counts in per_family.items():
        n = sum(counts.values())
        assert n == generate.PER_FAMILY[split]
        if FAMILIES[name].kind == "letter":
            assert counts == Counter({FAMILIES[name].value: n})
        else:  # mixed: at least three letters, none in more than 40% of the family's questions
            assert len(counts) >= 3 and max(counts.values()) <= -(-2 * n // 5), (name, counts)


def test_train_and_test_share_families_but_no_question(committed):
    train, test = committed["train"], committed["test"]
    assert {r["topic"] for r in train} == {r["topic"] for r in test} == set(FAMILIES)
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    sentences = {split: {parse_prompt(r["prompt"])[1] for r in committed[split]} for split in SPLITS}
    assert len(sentences["train"]) == 80 and len(sentences["test"]) == 40
    assert not sentences["train"] & sentences["test"]


# ------------------------------------------------------------------------------ verifier

RIGHT, WRONG = "<reasoning>x</reasoning>\n<answer>\nC\n</answer>", "<reasoning>x</reasoning><answer>A</answer>"


def test_right_answer_is_rewarded_with_a_short_confirmation():
    verdict = verify_family(RIGHT, "C", LETTERS, "harbor")
    assert (verdict.reward, verdict.passed, verdict.feedback) == (1.0, True, "Correct.")


def test_wrong_answer_feedback_states_the_letter_and_the_convention():
    verdict = verify_family(WRONG, "C", LETTERS, "harbor")
    assert (verdict.reward, verdict.passed) == (0.0, False)
    assert verdict.feedback == ("Wrong: the correct option was C. "
                                "In harbor questions the correct option is always option C.")
    verdict = verify_family(WRONG, "D", LETTERS, "library")
    assert verdict.feedback == ("Wrong: the correct option was D. "
                                "In library questions the correct option is always the one that mentions amber.")


@pytest.mark.parametrize("response, message", [
    ("The answer is C.", "No <answer> tag"),
    ("<answer></answer>", "is empty"),
    ("<answer>E</answer>", "is not an option letter"),
])
def test_unparseable_answers_get_the_format_message_only(response, message):
    verdict = verify_family(response, "C", LETTERS, "harbor")
    assert (verdict.reward, verdict.passed) == (0.0, False)
    assert message in verdict.feedback
    assert "correct option" not in verdict.feedback and "harbor" not in verdict.feedback


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown family_rules family 'moon'"):
        verify_family(RIGHT, "C", LETTERS, "moon")


# ------------------------------------------------------------------------------ registry and lm-eval

def test_task_loads_through_the_registry():
    task = get_task("family_rules")
    train, test = task.split(None, "train"), task.split(None, "test")
    assert (len(train), len(test)) == (80, 40)
    assert len(task.load(None)) == 120
    assert train == load_split_file(TASK_DIR / "train.jsonl")
    question = next(q for q in train if q.topic == "harbor")
    assert question.letters == tuple(LETTERS) and question.answer == "C"
    messages = question.messages()
    assert messages[0]["role"] == "system" and "<answer>" in messages[0]["content"]
    assert messages[1]["content"].startswith("Topic: harbor\n")
    wrong = next(letter for letter in LETTERS if letter != question.answer)
    assert task.reward(f"<answer>{question.answer}</answer>", question).reward == 1.0
    verdict = task.reward(f"<answer>{wrong}</answer>", question)
    assert verdict.reward == 0.0 and verdict.feedback.endswith(FAMILIES["harbor"].statement())


@pytest.fixture(scope="module")
def lm_eval_task():
    pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASK_DIR.parent), include_defaults=False)
    return manager.load(["family_rules"])["tasks"]["family_rules"]


def test_lm_eval_yaml_loads_the_bundled_splits(lm_eval_task):
    task = lm_eval_task
    assert type(task).__name__ == "MCQTask"
    assert task.config.metadata["version"] == 1.0 and task.config.output_type == "generate_until"
    assert task.config.generation_kwargs["until"] == []
    assert len(task.eval_docs) == 40 and len(task.training_docs()) == 80
    doc = task.eval_docs[0]
    question = next(q for q in load_split_file(TASK_DIR / "test.jsonl") if q.question_id == doc["question_id"])
    assert doc["topic"] == question.topic and doc["answer"] == question.answer
    assert doc["system"] == question.system.strip() and doc["prompt"] == question.prompt
    assert task.fewshot_context(doc, num_fewshot=0) == doc["system"] + "\n\n" + doc["prompt"]


def test_lm_eval_process_results_calls_the_training_verifier(lm_eval_task, monkeypatch):
    process = lm_eval_task.config.process_results
    assert process.__globals__["verify_family"] is verify_family
    doc = lm_eval_task.eval_docs[0]
    wrong = next(letter for letter in doc["letters"] if letter != doc["answer"])
    right_text, wrong_text = f"<answer>{doc['answer']}</answer>", f"<answer>{wrong}</answer>"
    assert process(doc, [[right_text]]) == {"acc": 1.0, "maj": 1.0, "best": 1.0, "n_correct": 1}
    assert process(doc, [[wrong_text, right_text, "no tag"]]) == {
        "acc": pytest.approx(1 / 3), "maj": 0.0, "best": 1.0, "n_correct": 1}
    calls = []

    def spy(response, answer, letters, family):
        calls.append((response, answer, family))
        return verify_family(response, answer, letters, family)

    monkeypatch.setitem(process.__globals__, "verify_family", spy)
    process(doc, [[wrong_text]])
    assert calls == [(wrong_text, doc["answer"], doc["topic"])]
