"""Tests for pmd.warmup: the format warm-up that makes the tiny demo models answer <answer>X</answer>."""
import json
import math
import re
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from pmd import warmup
from pmd.tiny_model import build_tiny_models
from tasks.registry import TASKS

pytestmark = pytest.mark.slow  # 25-40 s on 2 shared CPU cores: two real (tiny) fine-tunes


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return tmp_path_factory.mktemp("demo_models")


@pytest.fixture(scope="module")
def demo_models(demo_root):
    start = time.monotonic()
    models = warmup.build_demo_models(demo_root)
    return models, time.monotonic() - start


def _greedy_responses(model_dir, items):
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    responses = []
    for item in items:
        prompt = tok.apply_chat_template(item.messages(), tokenize=False, add_generation_prompt=True)
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**ids, do_sample=False, max_new_tokens=16)
        responses.append(tok.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True))
    return responses


def test_build_demo_models_layout(demo_models, demo_root):
    models, _ = demo_models
    assert models == {"tiny": (demo_root / "tiny-warm").resolve(),
                      "tiny-large": (demo_root / "tiny-large-warm").resolve()}
    for path in models.values():
        for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     warmup.MARKER_NAME):
            assert (path / name).is_file(), name
        marker = json.loads((path / warmup.MARKER_NAME).read_text())
        assert marker["settings"]["task"] == "demo_mcq"
        assert marker["final_loss"] < marker["losses"][0]
        # Generation still stops at <|im_end|>, as in the base model.
        assert json.loads((path / "generation_config.json").read_text())["eos_token_id"] == 2
    assert not list(demo_root.glob(".*"))  # no leftover temp dirs


@pytest.mark.parametrize("size", ["tiny", "tiny-large"])
def test_warm_models_answer_in_format(demo_models, size):
    task = TASKS["demo_mcq"]
    items = task.split(None, "test")
    responses = _greedy_responses(demo_models[0][size], items)
    verdicts = [task.score(r, item) for r, item in zip(responses, items)]
    # The verifier's feedback is "Correct." or "Wrong answer: ..." for a well-formed option letter;
    # anything else is a format failure (no tag, empty tag, not an option letter).
    failures = [(r, v.feedback) for r, v in zip(responses, verdicts)
                if not (v.passed or v.feedback.startswith("Wrong answer"))]
    assert len(failures) <= 1, failures
    well_formed = [r for r, v in zip(responses, verdicts) if (r, v.feedback) not in failures]
    assert all(re.fullmatch(r"<answer>[A-D]</answer>", r.strip()) for r in well_formed), well_formed


@pytest.mark.parametrize("size", ["tiny", "tiny-large"])
def test_weights_changed_from_base(demo_models, demo_root, size):
    base = load_file(demo_root / size / "model.safetensors")
    warm = load_file(demo_models[0][size] / "model.safetensors")
    assert base.keys() == warm.keys()
    unchanged = [name for name in base if torch.equal(base[name], warm[name])]
    assert not unchanged


def test_cache_returns_same_dir_without_retraining(demo_models, demo_root):
    models, first_seconds = demo_models
    stamps = {size: (p / "model.safetensors").stat().st_mtime_ns for size, p in models.items()}
    start = time.monotonic()
    again = warmup.build_demo_models(demo_root)
    assert again == models
    assert time.monotonic() - start < max(3.0, first_seconds / 4)
    assert {size: (p / "model.safetensors").stat().st_mtime_ns for size, p in again.items()} == stamps


def test_changed_recipe_rebuilds(demo_root, tmp_path):
    base = demo_root / "tiny"
    out = warmup.warm_up_format(base, tmp_path / "warm", steps=1, batch_size=2)
    marker = json.loads((out / warmup.MARKER_NAME).read_text())
    assert marker["settings"]["steps"] == 1 and len(marker["losses"]) == 1
    assert warmup.warm_up_format(base, tmp_path / "warm", steps=1, batch_size=2) == out
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    rebuilt = warmup.warm_up_format(base, tmp_path / "warm", steps=2, batch_size=2)
    assert rebuilt == out
    assert json.loads((out / warmup.MARKER_NAME).read_text())["settings"]["steps"] == 2
    assert (out / "model.safetensors").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warm"]


def test_completion_loss_hand_values():
    # Uniform logits: every completion token costs log V; prompt/padding positions are ignored.
    vocab = 8
    logits = torch.zeros(2, 4, vocab)                                    # [B, T, V]
    labels = torch.tensor([[-100, -100, 3, 5], [-100, 1, -100, -100]])   # 3 completion tokens
    assert math.isclose(float(warmup.completion_loss(logits, labels)), math.log(vocab), rel_tol=1e-6)
    # Put all mass on the right token at one of the 3 positions: that one costs ~0.
    logits[0, 1, 3] = 100.0                                              # predicts labels[0, 2]
    assert math.isclose(float(warmup.completion_loss(logits, labels)), 2 * math.log(vocab) / 3, rel_tol=1e-5)


def test_shared_prefix_batch_loss_matches_full_sequences(tmp_path):
    """The prefix-cache path must give the loss and gradients of running every full sequence."""
    path = build_tiny_models(tmp_path)["tiny"]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).float()
    examples = warmup._examples(tok, TASKS["demo_mcq"].split(None, "train"), tok.eos_token_id)
    assert all(e.prefix for e in examples) and len({e.prefix for e in examples}) > 1
    rows = examples[:6]
    assert len({r.prefix for r in rows}) > 1  # both system prompts in one batch

    def loss_and_grad(batch):
        model.zero_grad()
        loss = warmup.batch_loss(model, batch, tok.pad_token_id)
        loss.backward()
        return float(loss.detach()), torch.cat([p.grad.flatten() for p in model.parameters()])

    shared = loss_and_grad(rows)
    full = loss_and_grad([warmup.Example((), r.prefix + r.rest, r.completion) for r in rows])
    assert math.isclose(shared[0], full[0], rel_tol=1e-5)
    assert torch.allclose(shared[1], full[1], atol=1e-6, rtol=1e-4)
