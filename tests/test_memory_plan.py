"""The per-GPU memory plan of ``pmd-train --dry-run`` (trainer/memory_plan.py): its arithmetic, its
verdicts on the shipped paper configs, the command line, and (slow) its formulas against what a
reduced-layer model of the real Qwen3-1.7B widths measures on CPU (trainer/memory_probe.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmd.config import ConfigError, load_config
from pmd.model_shapes import SHAPES
from trainer.cli import main as train_main
from trainer.config import TrainConfig
from trainer.memory_plan import (
    DTYPE_BYTES, activation_bytes, loss_bytes, memory_plan, shape_of, state_bytes,
)

CONFIGS = Path(__file__).resolve().parents[1] / "trainer" / "configs"
PMD_8B = CONFIGS / "qwen3_8b_sciknoweval_pmd.yaml"
PAPER_CONFIGS = sorted(CONFIGS.glob("qwen3_8b_*.yaml")) + sorted(CONFIGS.glob("olmo3_7b_*.yaml"))


def _config(path=PMD_8B, *overrides: str) -> TrainConfig:
    return load_config(TrainConfig, path, list(overrides))


def _gib(plan, name: str) -> float:
    return next(c.gib for c in plan.components if c.name == name)


def test_components_add_up_to_the_phases_and_the_peak():
    plan = memory_plan(_config(), gpus=8, gpu_memory_gib=80)
    for phase, total in plan.phases.items():
        assert total == pytest.approx(sum(c.gib for c in plan.components if c.phase == phase))
    transient = max(plan.phases[p] for p in ("training", "generation", "step"))
    assert plan.per_gpu_gib == pytest.approx(plan.phases["persistent"] + transient)
    assert plan.phases[plan.limiting_phase] == transient
    as_dict = plan.to_dict()
    assert set(as_dict["components"]) == {c.name for c in plan.components}
    assert as_dict["fits"] is True and as_dict["device_gib"] == 80


def test_zero3_divides_parameters_gradients_and_optimizer_states_by_the_gpus():
    one, eight = (memory_plan(_config(), gpus=n, gpu_memory_gib=80, suggest=False) for n in (1, 8))
    for name in ("parameters", "gradients", "optimizer states", "EMA teacher"):
        assert _gib(eight, name) == pytest.approx(_gib(one, name) / 8)
    psi = SHAPES["Qwen3-8B"].parameter_count()
    # ZeRO paper: (2 + 2 + 12)·Ψ / N bytes under stage 3 in bf16
    assert (_gib(eight, "parameters") + _gib(eight, "gradients") + _gib(eight, "optimizer states")) * 2**30 \
        == pytest.approx(16 * psi / 8)
    stage0 = memory_plan(_config(PMD_8B, "deepspeed.zero_stage=0"), gpus=8, gpu_memory_gib=80, suggest=False)
    assert _gib(stage0, "optimizer states") == pytest.approx(_gib(one, "optimizer states"))
    stage2 = state_bytes(psi, 2, zero_stage=2, gpus=8)
    assert stage2["parameters"] == 2 * psi and stage2["gradients"] == 2 * psi / 8
    offload = state_bytes(psi, 2, zero_stage=3, gpus=8, offload_optimizer=True, offload_params=True)
    assert offload == {"parameters": 0.0, "gradients": 0.0, "optimizer": 0.0}


def test_checkpointing_the_token_budget_and_the_lean_loss_lower_memory():
    shape = SHAPES["Qwen3-8B"]
    on = activation_bytes(shape, 16384, 2, checkpointing=True)
    off = activation_bytes(shape, 16384, 2, checkpointing=False)
    assert on < off / 10
    lean = loss_bytes(shape, 16384, 2, chunk_tokens=1024)
    reference = loss_bytes(shape, 16384, 2, chunk_tokens=0)
    assert lean < reference / 5
    budget = memory_plan(_config(PMD_8B, "loss.max_tokens_per_micro_batch=null"), gpus=8, gpu_memory_gib=80)
    assert _gib(budget, "activations") > _gib(memory_plan(_config(), gpus=8, gpu_memory_gib=80), "activations")


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=[p.name for p in PAPER_CONFIGS])
def test_every_shipped_paper_config_fits_its_stated_hardware(path):
    config = _config(path)
    assert (config.hardware.gpus, config.hardware.gpu_memory_gib) == (8, 80.0)
    plan = memory_plan(config)
    assert plan.fits, plan.render()
    assert config.data.questions_per_step == 32 and config.data.samples_per_question == 8
    assert (config.data.max_prompt_tokens, config.data.max_response_tokens) == (2048, 8192)


def test_suggestions_make_the_plan_fit():
    config = _config(PMD_8B, "model.gradient_checkpointing=false", "sampling.generation_batch_size=64")
    plan = memory_plan(config, gpus=8, gpu_memory_gib=80)
    assert not plan.fits and plan.suggestions
    for suggestion in plan.suggestions:
        overrides = [f"{k}={json.dumps(v)}" for k, v in suggestion["set"].items()]
        again = memory_plan(_config(PMD_8B, "model.gradient_checkpointing=false", "sampling.generation_batch_size=64",
                                    *overrides), gpus=suggestion["gpus"], gpu_memory_gib=80, suggest=False)
        assert again.fits and again.per_gpu_gib == pytest.approx(suggestion["per_gpu_gib"], abs=0.01)


def test_dry_run_fits_8x80_and_not_one_gpu_at_zero_stage_0():
    fits = CliRunner().invoke(train_main, ["--config", str(PMD_8B), "--dry-run"])
    assert fits.exit_code == 0, fits.output
    assert "8 GPU(s) x 80 GiB" in fits.output and ": FITS" in fits.output
    fails = CliRunner().invoke(train_main, ["--config", str(PMD_8B), "--dry-run", "--gpus", "1",
                                            "--set", "deepspeed.zero_stage=0"])
    assert fails.exit_code == 0, fails.output  # a report, not an error
    assert "DOES NOT FIT" in fails.output
    why = [line for line in fails.output.splitlines() if "why:" in line]
    assert any("optimizer states" in line for line in why) and any("ZeRO-0" in line for line in why)
    assert "would fit: " in fails.output


def test_dry_run_json_holds_config_plan_and_memory_plan():
    result = CliRunner().invoke(train_main, ["--config", str(PMD_8B), "--dry-run", "--json", "--gpu-memory-gib", "40"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {"config", "plan", "memory_plan"} <= set(out)
    memory = out["memory_plan"]
    assert {"per_gpu_gib", "device_gib", "fits", "components", "suggestions"} <= set(memory)
    assert memory["device_gib"] == 40 and memory["gpus"] == 8 and memory["fits"] is False
    assert memory["components"]["KV cache"]["gib"] > 0 and memory["suggestions"]
    assert out["config"]["model"]["name_or_path"] == "Qwen/Qwen3-8B"


def test_unknown_model_is_a_one_line_error():
    with pytest.raises(ConfigError, match="unknown model 'acme/nope'.*config.json"):
        shape_of(_config(PMD_8B, "model.name_or_path=acme/nope"))
    result = CliRunner().invoke(train_main, ["--config", str(PMD_8B), "--set", "model.name_or_path=acme/nope", "--dry-run"])
    assert result.exit_code == 2 and "error: memory plan: unknown model 'acme/nope'" in result.output
    misuse = CliRunner().invoke(train_main, ["--config", str(PMD_8B), "--gpus", "2"])
    assert misuse.exit_code == 2 and "--dry-run" in misuse.output


@pytest.mark.slow
def test_plan_formulas_match_cpu_measurements_for_qwen3_1_7b_widths():
    """Reduced to 1 layer at the real widths and vocabulary; each component within 25%."""
    from trainer.memory_probe import measure

    shape = SHAPES["Qwen3-1.7B"]
    states = measure("states", shape.name, layers=1, freeze_embeddings=True)
    planned = sum(state_bytes(shape.parameter_count(1), 4, zero_stage=0, gpus=1,
                              trainable=states["trainable"]).values())
    checks = [("parameters + optimizer", states["bytes"], planned)]
    for checkpointing in (False, True):
        got = measure("activations", shape.name, layers=1, dtype="bfloat16", tokens=512, checkpointing=checkpointing)
        want = activation_bytes(shape, 512, DTYPE_BYTES["bfloat16"], checkpointing=checkpointing, num_layers=1,
                                padded=False)
        checks.append((f"activations (checkpointing {checkpointing})", got["bytes"], want))
    got = measure("activations", shape.name, layers=1, dtype="bfloat16", tokens=2048, grad=False)
    want = activation_bytes(shape, 2048, 2, checkpointing=False, num_layers=1, padded=False, grad=False)
    checks.append(("no-gradient forward (teacher)", got["bytes"], want))
    for chunk in (0, 256):
        got = measure("loss", shape.name, dtype="bfloat16", tokens=512, chunk_tokens=chunk)
        checks.append((f"loss (chunk {chunk})", got["bytes"], loss_bytes(shape, 512, 2, chunk_tokens=chunk)))
    for name, measured, plan in checks:
        assert abs(plan - measured) <= 0.25 * measured, f"{name}: plan {plan / 2**20:.0f} MiB, measured {measured / 2**20:.0f} MiB"


def test_vllm_engine_takes_its_share_of_the_device_for_generation_only():
    hf = memory_plan(_config(PMD_8B))
    engine = memory_plan(_config(PMD_8B, "rollout.engine=vllm", "rollout.gpu_memory_utilization=0.4"))
    names = {c.name for c in engine.components}
    assert "vLLM engine" in names and "KV cache" not in names and "generation weights" not in names
    assert _gib(engine, "vLLM engine") == pytest.approx(0.4 * engine.device_gib)
    assert engine.phases["persistent"] == pytest.approx(hf.phases["persistent"])
    assert engine.phases["generation"] == pytest.approx(0.4 * engine.device_gib)
