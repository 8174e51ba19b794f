"""One step's gradient does not depend on how it is computed: lean or reference loss, activation
checkpointing or not, ZeRO 0/2/3, any micro-batch split, token-budget packing, 1 or 2 processes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from step_gradients import step_gradients
from trainer import engine as E

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from pmd.tiny_model import build_tiny_models

    yield str(build_tiny_models(tmp_path_factory.mktemp("models"))["tiny"])
    E.shutdown_distributed()


@pytest.fixture(scope="module")
def untied_model(model, tmp_path_factory):
    """The tiny model with its own LM head (as Qwen3-8B and larger have), not tied to the embeddings."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(model)
    config.tie_word_embeddings = False
    torch.manual_seed(0)
    with E.zero3_loading_disabled():
        net = AutoModelForCausalLM.from_config(config)
    out = tmp_path_factory.mktemp("untied")
    net.save_pretrained(out)
    AutoTokenizer.from_pretrained(model).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def baseline(model):
    """Reference losses on full logits, ZeRO-0, all samples in one micro batch, one process."""
    return {algorithm: step_gradients(model, stage=0, algorithm=algorithm, lean=False, kl_coef=kl)
            for algorithm, kl in (("sdpo", 0.0), ("grpo", 0.1))}


def assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    scale = max(g.abs().max().item() for g in want.values())
    assert scale > 0 and all(g.abs().sum() > 0 for g in want.values())  # every parameter has a gradient
    for name in want:
        assert torch.allclose(got[name], want[name], rtol=1e-4, atol=1e-5 * scale), name


@pytest.mark.parametrize("settings", [
    dict(stage=0),                                   # lean loss
    dict(stage=0, checkpointing=True),
    dict(stage=0, micro_batch_size=3),               # other micro batches
    dict(stage=0, micro_batch_size=8, max_tokens=30),  # packed by tokens
    dict(stage=2, micro_batch_size=3),
    dict(stage=3, micro_batch_size=3, checkpointing=True),
    dict(stage=3, lean=False, micro_batch_size=2),
], ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_sdpo_step_gradient_is_the_same(model, baseline, settings):
    assert_same(step_gradients(model, **settings), baseline["sdpo"])


def test_untied_lm_head_under_zero3(untied_model):
    want = step_gradients(untied_model, stage=0, lean=False)
    assert_same(step_gradients(untied_model, stage=3, micro_batch_size=3), want)
    assert_same(step_gradients(untied_model, stage=3, algorithm="grpo", micro_batch_size=3),
                step_gradients(untied_model, stage=0, algorithm="grpo", lean=False))


@pytest.mark.parametrize("settings", [dict(stage=0, lean=True), dict(stage=2, micro_batch_size=3),
                                      dict(stage=3, micro_batch_size=2, checkpointing=True)],
                         ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_grpo_step_gradient_is_the_same(model, baseline, settings):
    assert_same(step_gradients(model, algorithm="grpo", kl_coef=0.1, **settings), baseline["grpo"])


def test_activation_checkpointing_recomputes_the_layers(model):
    """With checkpointing each decoder layer's inside runs twice per step (forward, then recompute;
    transformers checkpoints the layer's ``forward``, so hooks on the layer itself fire once)."""
    from transformers import AutoModelForCausalLM

    from trainer.sequences import response_hidden

    def layer_calls(checkpointing: bool) -> int:
        with E.zero3_loading_disabled():  # an earlier ZeRO-3 test's config may still be alive
            net = AutoModelForCausalLM.from_pretrained(model)
        if checkpointing:
            E.enable_activation_checkpointing(net)
        calls = []
        net.model.layers[0].self_attn.q_proj.register_forward_pre_hook(lambda *_: calls.append(1))
        hidden, _, _ = response_hidden(net, [[5, 6, 7]], [[8, 9]], pad_id=0)
        hidden.sum().backward()
        return len(calls)

    assert (layer_calls(False), layer_calls(True)) == (1, 2)


@pytest.mark.multiprocess
def test_two_processes_give_the_one_process_gradient(model, baseline, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "grads.pt"
    # Rank 0 gets 4 samples in 2 micro batches of at most 3, rank 1 likewise: different splits
    # from the one-process baseline, token-budget packing, ZeRO-3.
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", str(ROOT / "tests" / "step_gradients.py"),
           "--model", model, "--out", str(out), "--stage", "3", "--micro-batch-size", "3", "--max-tokens", "40"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert_same(torch.load(out), baseline["sdpo"])
