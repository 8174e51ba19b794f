"""Reflection (insight memory): prompts, robust parsing, reflect/write, and the three backends."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from memory_bank import Experience, MemoryBank
from memory_bank.embedding import HashingEmbedder
from trainer.reflection import (
    QuestionAttempts, parse_insights, reflect, reflection_messages, truncate_middle, write_insights,
)
from trainer.reflectors import (
    EndpointReflector, LocalModelReflector, PolicyReflector, Reflector, chat_completions_url,
)


class ScriptedReflector:
    """A real Reflector: replies from a fixed script, in order (None = a failed request)."""

    name = "scripted"

    def __init__(self, replies):
        self.replies = list(replies)
        self.seen = []

    def generate(self, conversations, max_new_tokens):
        self.seen += list(conversations)
        return [self.replies.pop(0) for _ in conversations]


# ----------------------------------------------------------------------------- parse_insights
GOOD = "STRATEGY: Read every option before choosing an answer.\nLESSON: Units must match before comparing values."

PARSE_CASES = [
    (GOOD, [("strategy", "Read every option before choosing an answer."),
            ("lesson", "Units must match before comparing values.")]),
    ("- Strategy: Eliminate options that contradict the stem.\n* lesson: Do not trust the first guess blindly.",
     [("strategy", "Eliminate options that contradict the stem."), ("lesson", "Do not trust the first guess blindly.")]),
    ("1. STRATEGY: Check the sign of every term.\n2) LESSON: Dropping a minus sign flips the answer.",
     [("strategy", "Check the sign of every term."), ("lesson", "Dropping a minus sign flips the answer.")]),
    ("**Strategy:** Draw the structure before counting bonds.\n**LESSON**: Counting hydrogens twice inflates totals.",
     [("strategy", "Draw the structure before counting bonds."), ("lesson", "Counting hydrogens twice inflates totals.")]),
    ("Strategy - Compare each option with the definition.\nLesson — Vague options are usually distractors here.",
     [("strategy", "Compare each option with the definition."), ("lesson", "Vague options are usually distractors here.")]),
    ("sTrAtEgY 2:    Write   the   formula   first.   ", [("strategy", "Write the formula first.")]),
    ("Sure! Here is my analysis of the attempts.\nThe model did well.\nSTRATEGY: State the governing law first.\n"
     "I hope this helps!", [("strategy", "State the governing law first.")]),
    ("Strategies:\n- Check units at every step.\n- Estimate the magnitude first.\nLessons:\n1. Rushing skips the final check.\n"
     "Thanks!\n- Not part of any list anymore.",
     [("strategy", "Check units at every step."), ("strategy", "Estimate the magnitude first."),
      ("lesson", "Rushing skips the final check.")]),
    ("STRATEGY: Read the stem twice.\nstrategy: read the stem twice\nLESSON: Read the stem twice.",
     [("strategy", "Read the stem twice."), ("lesson", "Read the stem twice.")]),
    ("<think>STRATEGY: A draft written while thinking.</think>\nLESSON: Guessing without checking fails often.",
     [("lesson", "Guessing without checking fails often.")]),
    ("STRATEGY: <one sentence>\nLESSON: ...\nSTRATEGY:\nLESSON: x y\nSTRATEGY: 12 34 56 78 !!\nStrategy-based reasoning helps a lot.",
     []),
    ("STRATEGY: " + "word " * 100, []),  # 500 characters: over the 400 default
    ("", []),
    (None, []),
    (12345, []),
    ("\x00\x01\xff\xfe garbage \x1b[31m STRATEGY: \x00\x00 \ufffd\ufffd", []),
    (bytes(range(256)) * 4, []),
    (b"STRATEGY: Bytes that decode are fine too.", [("strategy", "Bytes that decode are fine too.")]),
    ("x" * 1_000_000, []),
    ("STRATEGY: " + "a" * 1_000_000 + "\nLESSON: Short lines after a huge one still parse.",
     [("lesson", "Short lines after a huge one still parse.")]),
]


@pytest.mark.parametrize("text,expected", PARSE_CASES)
def test_parse_insights_variants(text, expected):
    assert parse_insights(text) == expected


def test_parse_insights_length_limit_is_configurable():
    line = "STRATEGY: " + "Check every unit carefully. " * 4
    assert parse_insights(line, max_chars=50) == []
    assert parse_insights(line, max_chars=200) == [("strategy", ("Check every unit carefully. " * 4).strip())]


# ----------------------------------------------------------------------------- prompts
def _group(rewards, feedback="wrong letter: expected B, got C", response="I think <answer>{}</answer>"):
    attempts = [(response.format(i), r, "" if r >= 1 else feedback) for i, r in enumerate(rewards)]
    return QuestionAttempts("q1", "Which gas do plants release? A) CO2 B) O2", attempts)


def _user_text(messages):
    assert [m["role"] for m in messages] == ["system", "user"]
    return messages[1]["content"]


def test_success_ratio_and_from_experiences():
    assert _group([1, 0, 0, 1]).success_ratio == 0.5
    assert QuestionAttempts("q", "p").success_ratio == 0.0
    rows = [Experience("q", "P", "a", 1.0), Experience("q", "P", "b", 0.2, "bad")]
    group = QuestionAttempts.from_experiences("q", rows, success_threshold=0.5)
    assert group.prompt == "P" and group.attempts == [("a", 1.0, ""), ("b", 0.2, "bad")]
    assert group.success_ratio == 0.5


def test_contrastive_prompt_when_mixed():
    text = _user_text(reflection_messages(_group([0.0, 1.0, 0.0])))
    assert "SUCCESSFUL ATTEMPT (reward 1.00)" in text and "FAILED ATTEMPT (reward 0.00)" in text
    assert "separates" in text and "1 of 3 attempts were correct" in text
    assert "I think <answer>1</answer>" in text and "wrong letter: expected B, got C" in text
    assert "STRATEGY: <one sentence>" in text and "LESSON: <one sentence>" in text
    assert "Which gas do plants release?" in text


def test_all_success_asks_for_strategies_only():
    text = _user_text(reflection_messages(_group([1.0, 1.0])))
    assert "All 2 attempts were correct" in text and "STRATEGY: <one sentence>" in text
    assert "LESSON:" not in text and "FAILED" not in text and "separates" not in text


def test_all_failure_asks_for_lessons_from_feedback():
    attempts = [("a", 0.0, "missing answer tag"), ("b", 0.0, "wrong letter"), ("c", 0.0, "time-out"),
                ("d", 0.0, "time-out")]
    text = _user_text(reflection_messages(QuestionAttempts("q", "Q?", attempts)))
    assert "None of the 4 attempts was correct" in text and "LESSON: <one sentence>" in text
    assert "STRATEGY:" not in text and "SUCCESSFUL" not in text
    for feedback in ("missing answer tag", "wrong letter", "time-out"):
        assert feedback in text
    assert text.count("- time-out") == 1  # recurring feedback listed once


def test_long_attempts_are_truncated_keeping_the_end():
    long = "x" * 10_000 + " <answer>B</answer>"
    group = QuestionAttempts("q", "Q?", [(long, 1.0, ""), ("short", 0.0, "f" * 5000)])
    text = _user_text(reflection_messages(group, max_chars_per_attempt=300))
    assert len(text) < 2500 and "characters omitted" in text and "<answer>B</answer>" in text
    cut = truncate_middle(long, 300)
    assert len(cut) <= 300 and cut.endswith("<answer>B</answer>")
    assert truncate_middle("short", 300) == "short" and truncate_middle(None, 5) == ""


def test_no_attempts_is_an_error():
    with pytest.raises(ValueError, match="no attempts"):
        reflection_messages(QuestionAttempts("q", "Q?"))


# ----------------------------------------------------------------------------- reflect and write
def test_reflect_with_scripted_reflector():
    groups = [_group([1, 0, 0, 0]), QuestionAttempts("q2", "Q2?", [("a", 1.0, "")]),
              QuestionAttempts("q3", "Q3?", [("a", 0.0, "bad")]), QuestionAttempts("q4", "Q4?", [("a", 0.0, "x")]),
              QuestionAttempts("empty", "no attempts")]
    replies = [
        "STRATEGY: Recall that photosynthesis releases oxygen.\nLESSON: Confusing inputs with outputs fails.\n"
        "STRATEGY: Map each option to a process step.\nSTRATEGY: Eliminate gases that are consumed.\n"
        "STRATEGY: A fourth strategy over the limit.",
        None,
        "I cannot help with that. %%% ###",
        "LESSON: Always emit the answer tag at the end.",
    ]
    reflector = ScriptedReflector(replies)
    assert isinstance(reflector, Reflector)
    result = reflect(reflector, groups, step=7, run_id="r1", model_name="m", max_per_kind=3)
    assert len(reflector.seen) == 4  # the question without attempts is not asked about
    assert (result.requests, result.failed_requests, result.parsed_empty) == (4, 1, 1)
    got = [(i.question_id, i.kind, i.text, i.confidence) for i in result.insights]
    assert got == [
        ("q1", "strategy", "Recall that photosynthesis releases oxygen.", 0.25),
        ("q1", "lesson", "Confusing inputs with outputs fails.", 0.25),
        ("q1", "strategy", "Map each option to a process step.", 0.25),
        ("q1", "strategy", "Eliminate gases that are consumed.", 0.25),
        ("q4", "lesson", "Always emit the answer tag at the end.", 0.0),
    ]
    assert all((i.first_step, i.last_step, i.run_id, i.model) == (7, 7, "r1", "m") for i in result.insights)


def test_reflect_survives_a_raising_backend(caplog):
    class Broken:
        name = "broken"

        def generate(self, conversations, max_new_tokens):
            raise RuntimeError("server on fire")

    with caplog.at_level(logging.WARNING):
        result = reflect(Broken(), [_group([1, 0])], step=0, run_id="r", model_name="m")
    assert result.insights == [] and result.failed_requests == 1
    assert "without new memory" in caplog.text


def test_write_insights_counts_rows_after_merging():
    bank = MemoryBank.in_memory(embedder=HashingEmbedder(dim=64))
    bank.add_experiences([Experience("q1", "Q1?", "a", 1.0), Experience("q2", "Q2?", "b", 0.0)])
    result = reflect(ScriptedReflector([
        "STRATEGY: Check the units of every quantity.\nSTRATEGY: Check the units, of every quantity!",
        "LESSON: Guessing without reading the options fails.",
    ]), [QuestionAttempts.from_experiences(q, bank.experiences(q)) for q in ("q1", "q2")],
        step=3, run_id="r", model_name="m")
    assert len(result.insights) == 3
    assert write_insights(bank, result.insights) == 2  # the two near-identical strategies merged
    rows = bank.insights()
    assert [(r["question_id"], r["kind"], r["support"], r["confidence"]) for r in rows] == [
        ("q1", "strategy", 2, 1.0), ("q2", "lesson", 1, 0.0)]
    assert write_insights(bank, []) == 0


# ----------------------------------------------------------------------------- local models
@pytest.fixture(scope="module")
def tiny_reflector(tmp_path_factory):
    from pmd.tiny_model import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")
    return LocalModelReflector.from_pretrained(str(path), dtype="float32", device="cpu", seed=3)


def test_local_model_reflector_on_random_weights(tiny_reflector):
    conversations = [reflection_messages(_group([1, 0])), reflection_messages(_group([0, 0]))]
    outputs = tiny_reflector.generate(conversations, max_new_tokens=24)
    assert len(outputs) == 2 and all(isinstance(o, str) for o in outputs)
    for output in outputs:
        assert isinstance(parse_insights(output), list)
    assert tiny_reflector.name.startswith("local:")


def test_policy_reflector_restores_mode_and_rng(tiny_reflector):
    import torch

    model, tokenizer = tiny_reflector.model, tiny_reflector.tokenizer
    model.train()
    policy = PolicyReflector(model, tokenizer, temperature=1.0, seed=0)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    result = reflect(policy, [_group([1, 0, 1])], step=1, run_id="r", model_name="tiny", max_new_tokens=16)
    assert torch.equal(torch.rand(3), expected)  # the training step's random stream is untouched
    assert model.training and result.failed_requests == 0 and result.requests == 1
    assert policy.generate([], 8) == []
    model.eval()


# ----------------------------------------------------------------------------- endpoint
class _Handler(BaseHTTPRequestHandler):
    """OpenAI-style /v1/chat/completions; fails the first ``server.failures`` requests with 503."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.requests.append((self.path, body, self.headers.get("Authorization")))
            fail = server.failures > 0
            server.failures -= 1
        if fail or self.path != "/v1/chat/completions":
            self.send_response(503 if fail else 404)
            self.end_headers()
            return
        last = body["messages"][-1]["content"]
        reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": f"STRATEGY: Echo {last} now."}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(reply.encode())


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.lock, httpd.requests, httpd.failures = threading.Lock(), [], 0
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _conv(text):
    return [{"role": "user", "content": text}]


def test_chat_completions_url():
    assert chat_completions_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"


def test_endpoint_success(server):
    port = server.server_address[1]
    reflector = EndpointReflector(f"http://127.0.0.1:{port}", "served-model", api_key="k", backoff_s=0.01)
    outputs = reflector.generate([_conv("alpha beta"), _conv("gamma delta"), _conv("eps zeta")], 32)
    assert outputs == ["STRATEGY: Echo alpha beta now.", "STRATEGY: Echo gamma delta now.",
                       "STRATEGY: Echo eps zeta now."]
    assert parse_insights(outputs[0]) == [("strategy", "Echo alpha beta now.")]
    path, body, auth = server.requests[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k"
    assert body["model"] == "served-model" and body["max_tokens"] == 32 and "temperature" in body


def test_endpoint_retries_then_succeeds(server):
    server.failures = 2
    reflector = EndpointReflector(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", retries=3, backoff_s=0.01)
    assert reflector.generate([_conv("one two")], 8) == ["STRATEGY: Echo one two now."]
    assert len(server.requests) == 3


def test_endpoint_always_failing_returns_none_and_warns(server, caplog):
    server.failures = 10**6
    reflector = EndpointReflector(f"http://127.0.0.1:{server.server_address[1]}", "m", retries=2, backoff_s=0.01)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="trainer.reflectors"):
        assert reflector.generate([_conv("a"), _conv("b")], 8) == [None, None]
    assert time.monotonic() - start < 5
    assert len(server.requests) == 6  # 1 + 2 retries each
    assert "2 of 2 requests" in caplog.text and "without new insights" in caplog.text and "503" in caplog.text


def test_endpoint_closed_port_returns_none(caplog):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reflector = EndpointReflector(f"http://127.0.0.1:{port}", "m", retries=1, backoff_s=0.01, timeout_s=2)
    with caplog.at_level(logging.WARNING, logger="trainer.reflectors"):
        result = reflect(reflector, [_group([1, 0])], step=0, run_id="r", model_name="m")
    assert result.failed_requests == 1 and result.insights == []
    assert "without new insights" in caplog.text


def test_endpoint_client_error_is_not_retried(server, caplog):
    reflector = EndpointReflector(f"http://127.0.0.1:{server.server_address[1]}/wrong", "m", retries=3,
                                  backoff_s=0.01)
    with caplog.at_level(logging.WARNING, logger="trainer.reflectors"):
        assert reflector.generate([_conv("a")], 8) == [None]
    assert len(server.requests) == 1 and "404" in caplog.text


@pytest.mark.parametrize("line, kept", [
    ("STRATEGY: The Correct Answer is A.", False),
    ("LESSON: B is not correct. The correct answer is A.", False),
    ("LESSON: answer: (C)", False),
    ("STRATEGY: The answer is a number in joules, so check the unit first.", True),
    ("STRATEGY: In harbor questions the correct option is always option C.", True),
])
def test_a_line_that_gives_the_answer_letter_is_not_an_insight(line, kept):
    from trainer.reflection import parse_insights

    assert bool(parse_insights(line)) is kept
