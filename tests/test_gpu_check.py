"""``benchmarks/gpu_check.py``: its FLOPs / MFU arithmetic on hand-computed cases, the Markdown
writer, the clean exit without CUDA, and (slow) the whole pipeline on CPU in tiny mode: real
``trainer.loop.train`` runs under DeepSpeed ZeRO-2 and ZeRO-3 in one process."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc_mod():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_check", None)


DIMS = dict(non_embedding=100, vocab=10, hidden=4, layers=2, attn_width=8)


def test_attention_flops_match_a_brute_force_count(gc_mod):
    dims = gc_mod.Dims(**DIMS)
    heads, head_dim = 2, 4  # heads * head_dim = attn_width
    for seq in (1, 5, 17):
        # position i attends to i + 1 keys: QKᵀ and AV each cost 2·head_dim multiply-adds per key
        brute = dims.layers * heads * sum(2 * (2 * head_dim * (i + 1)) for i in range(seq))
        assert gc_mod.attention_flops(dims, seq) == brute


def test_sample_and_step_flops_hand_computed(gc_mod):
    dims = gc_mod.Dims(**DIMS)
    # p=3, r=2, teacher prompt 5, active: head = V·H·r = 80
    one = gc_mod.sample_flops(dims, 3, 2, 5, True)
    assert one == {"student": 6 * 100 * 5 + 6 * 80,            # 3480
                   "student_attention": 3 * 2 * 2 * 8 * 5 * 6,  # 2880
                   "teacher": 2 * 100 * 7 + 2 * 80,             # 1560
                   "teacher_attention": 2 * 2 * 8 * 7 * 8}      # 1792
    # inactive (m_i = 0): the lean loss skips its LM head; no teacher (GRPO): no teacher FLOPs
    two = gc_mod.sample_flops(dims, 1, 1, None, False)
    assert two == {"student": 1200, "student_attention": 576, "teacher": 0, "teacher_attention": 0}
    total = gc_mod.step_flops(dims, [
        {"prompt": 3, "response": 2, "teacher_prompt": 5, "active": True},
        {"prompt": 1, "response": 1, "teacher_prompt": None, "active": False}])
    assert total["total"] == 3480 + 1560 + 1200 == 6240
    assert total["total_with_attention"] == 6240 + 2880 + 1792 + 576 == 11488


def test_dims_of_a_real_shape(gc_mod):
    from pmd.model_shapes import SHAPES

    shape = SHAPES["Qwen3-1.7B"]
    dims = gc_mod.Dims.of(shape)
    assert dims.non_embedding == shape.parameter_count() - 151936 * 2048  # tied embedding counted once
    assert (dims.vocab, dims.hidden, dims.layers, dims.attn_width) == (151936, 2048, 28, 16 * 128)


def test_mfu_and_matmul_flops(gc_mod):
    assert gc_mod.matmul_flops(8192) == 2 * 8192 ** 3
    assert gc_mod.mfu(1e12, 2.0, 1e12) == pytest.approx(0.5)
    assert gc_mod.mfu(1e12, 2.0, None) is None and gc_mod.mfu(1e12, 0.0, 1e12) is None


def test_summarize_stage_leaves_out_the_warmup_steps(gc_mod):
    dims = gc_mod.Dims(**DIMS)
    rows = [{"step": 1, "time/loss": 10.0, "time/step": 20.0, "time/rollout": 5.0, "reward/mean": 0.0},
            {"step": 2, "time/loss": 2.0, "time/step": 4.0, "time/rollout": 1.0, "reward/mean": 0.5,
             "memory/insight": 3}]
    records = [{"step": 1, "prompt": 50, "response": 50, "teacher_prompt": 60, "active": True},
               {"step": 2, "prompt": 3, "response": 2, "teacher_prompt": 5, "active": True},
               {"step": 2, "prompt": 3, "response": 2, "teacher_prompt": 5, "active": True}]
    s = gc_mod.summarize_stage(rows, records, dims, warmup=1, peak_flops=1000.0)
    assert s["measured_steps"] == [2] and s["first_step_s"] == 20.0
    assert (s["response_tokens"], s["student_tokens"], s["teacher_tokens"]) == (4, 10, 14)
    assert s["rl_tokens_per_s"] == pytest.approx(4 / 4.0)
    assert s["rollout_tokens_per_s"] == pytest.approx(4 / 1.0)
    assert s["train_tokens_per_s"] == pytest.approx(10 / 2.0)
    assert s["flops"]["total"] == 2 * (3480 + 1560)
    assert s["mfu"] == pytest.approx(2 * 5040 / 2.0 / 1000.0)
    assert s["memory_counts"] == {"memory/insight": 3}


def _result(device: str) -> dict:
    summary = {"measured_steps": [2, 3], "first_step_s": 30.0, "step_s": 9.5, "loss_s": 2.25, "rollout_s": 6.0,
               "phases_mean_s": {"rollout": 6.0, "loss": 2.25, "step": 9.5}, "response_tokens": 32768,
               "student_tokens": 70000, "teacher_tokens": 110000, "samples": 128, "rl_tokens_per_s": 1724.6,
               "rollout_tokens_per_s": 2730.7, "train_tokens_per_s": 15555.6,
               "flops": {"total": 9.0e14, "total_with_attention": 9.6e14}, "model_flops_per_s": 2.0e14,
               "mfu": 0.2857, "mfu_with_attention": 0.3048, "reward_mean": 0.0, "memory_counts": {}}
    return {
        "device": {"device": device, "name": "NVIDIA H100 80GB HBM3" if device == "cuda" else "cpu (AMD EPYC, 2 cores)",
                   "memory_gib": 79.1, "capability": "9.0", "multiprocessors": 132, "driver": "550.54",
                   "cuda": "12.4", "torch": "2.6.0", "deepspeed": "0.19.8", "transformers": "5.24.0",
                   "python": "3.12.3", "cpu": "AMD EPYC", "cores": 16},
        "argv": [], "total_wall_s": 300.0,
        "settings": {"model": "Qwen3-1.7B", "parameters": 2_031_739_904, "non_embedding": 1_720_574_976, "tiny": False,
                     "stages": [2, 3], "steps": 4, "warmup_steps": 1, "questions": 8, "samples": 8,
                     "response_tokens": 256, "micro_batch": 16, "chunk_tokens": 1024, "embedder": "hash",
                     "gen_batch": 64, "gen_tokens": 256, "max_minutes": 8.0, "checkpoint": False},
        "matmul": {"n": 8192, "iters": 10, "flops_per_s": 7.0e14, "median_flops_per_s": 6.8e14},
        "generation": {"batch": 64, "prompt_tokens_max": 290, "prompt_tokens_mean": 250.4, "new_tokens": 256,
                       "seconds": 8.0, "tokens_per_s": 2048.0, "memory": {"peak_gib": 5.5}},
        "stages": [
            {"stage": 2, "wall_s": 60.0, "summary": summary,
             "memory": {"peak_gib": 41.234, "reserved_gib": 44.0, "start_gib": 0.0},
             "plan": {"per_gpu_gib": 45.67, "fits": True, "phases": {"persistent": 30.0, "training": 10.0},
                      "limiting_phase": "training"}},
            {"stage": 3, "wall_s": 70.0, "summary": summary,
             "memory": {"peak_gib": 38.0, "reserved_gib": 40.0, "start_gib": 0.1},
             "plan": {"error": "trainer.memory_plan not importable: boom"}},
            {"stage": 1, "skipped": "time budget (~70 s needed, 10 s left)"},
        ],
    }


def test_markdown_writer_gpu(gc_mod, tmp_path):
    text = gc_mod.write_report(_result("cuda"), tmp_path / "gpu.md")
    assert (tmp_path / "gpu.md").read_text() == text
    assert "Device: NVIDIA H100 80GB HBM3, 79.1 GiB" in text and "driver 550.54, CUDA 12.4" in text
    assert "Not a GPU measurement" not in text
    assert "**700 TFLOP/s**" in text and "2.03B parameters (1.72B non-embedding)" in text
    row = next(line for line in text.splitlines() if line.startswith("| 2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["2", "9.50", "6.00", "2.25", "1725", "2731", "15556", "200", "28.6%", "30.5%", "41.23",
                     "44.00", "45.67", "yes"]
    assert "| 3 |" in text and "plan: trainer.memory_plan not importable: boom" in text
    assert "| 1 | skipped: time budget" in text
    assert "measured peak / plan = 0.90" in text
    assert "| 64 | 290 / 250 | 256 | 8.00 | 2048 | 5.50 |" in text
    header = next(line for line in text.splitlines() if line.startswith("| ZeRO |"))
    assert len(header.strip("|").split("|")) == len(cells)


def test_markdown_writer_cpu_is_marked(gc_mod, tmp_path):
    text = gc_mod.write_report(_result("cpu"), tmp_path / "gpu.md")
    assert "Not a GPU measurement" in text and "Device: cpu (AMD EPYC, 2 cores)" in text


def test_cuda_requested_but_absent_exits_with_one_line():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip() and "Setting accelerator" not in line]
    assert len(lines) == 1 and lines[0].startswith("gpu_check: CUDA was requested"), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_help_has_an_example():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "--device cpu --tiny" in done.stdout


@pytest.mark.slow
def test_tiny_cpu_pipeline_end_to_end(tmp_path):
    """The real pipeline on CPU: matmul, model build, HF generate, then trainer.loop.train under
    ZeRO-2 and ZeRO-3 in one process; the report has a cpu device line and a row per stage."""
    out = tmp_path / "gpu.md"
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(out),
                           "--work-dir", str(tmp_path / "work"), "--max-minutes", "20"],
                          cwd=REPO, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    text = out.read_text()
    assert "Device: cpu (" in text and "Not a GPU measurement" in text
    result = json.loads(out.with_suffix(".json").read_text())
    assert [st["stage"] for st in result["stages"]] == [2, 3]
    for st in result["stages"]:
        s = st["summary"]
        assert s["measured_steps"] == [2] and s["response_tokens"] > 0 and s["flops"]["total"] > 0
        assert s["train_tokens_per_s"] > 0 and s["mfu"] is not None and s["mfu"] > 0
        assert [r["step"] for r in st["metrics"]] == [1, 2]
        assert {r["step"] for r in st["records"]} == {1, 2} and len(st["records"]) == 2 * 2 * 2
        assert st["plan"] and ("per_gpu_gib" in st["plan"] or "error" in st["plan"])
        assert st["metrics"][-1]["memory/insight"] > 0  # the scripted reflection filled the bank
        assert (tmp_path / "work" / f"stage-zero{st['stage']}.yaml").is_file()
        row = next(line for line in text.splitlines() if line.startswith(f"| {st['stage']} |"))
        assert "skipped" not in row and "–" not in row.split("|")[2]
    assert result["generation"]["tokens_per_s"] > 0 and result["matmul"]["flops_per_s"] > 0
