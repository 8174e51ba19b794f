"""``benchmarks/rollout.py``: its summary and ratio arithmetic, the interleaving, the Markdown and
JSON writer on a hand-made run, and that importing it (or ``--help``) pulls in no engine library.
Runs in the main environment (no vLLM); the measurement itself is the script's job."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "rollout.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("rollout_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summarize_median_and_spread(bench):
    assert bench.summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3,
                                                 "values": [3.0, 1.0, 2.0]}
    assert bench.summarize([1, 4])["median"] == 2.5
    assert bench.summarize([])["median"] is None


def test_paired_ratios_are_per_repeat(bench):
    assert bench.paired_ratios([30.0, 40.0], [10.0, 20.0]) == [3.0, 2.0]
    with pytest.raises(ValueError):
        bench.paired_ratios([1.0], [1.0, 2.0])


def test_cell_summary_tokens_per_second_and_ratio(bench):
    calls = {"hf": [{"tokens": 100, "wall_s": 2.0}, {"tokens": 120, "wall_s": 2.0}, {"tokens": 90, "wall_s": 1.0}],
             "vllm": [{"tokens": 100, "wall_s": 0.5}, {"tokens": 128, "wall_s": 0.4}, {"tokens": 90, "wall_s": 0.5}]}
    s = bench.cell_summary(calls)
    assert s["hf"]["tokens_per_s"]["values"] == [50.0, 60.0, 90.0]
    assert s["vllm"]["tokens_per_s"]["values"] == [200.0, 320.0, 180.0]
    assert s["ratio_vllm_hf"]["values"] == pytest.approx([4.0, 320 / 60, 2.0])
    assert s["ratio_vllm_hf"]["median"] == pytest.approx(4.0)
    assert (s["ratio_vllm_hf"]["min"], s["ratio_vllm_hf"]["max"]) == pytest.approx((2.0, 320 / 60))
    assert s["ratio_of_medians"] == pytest.approx(200 / 60)
    assert s["hf"]["tokens"]["median"] == 100
    assert "ratio_vllm_hf" not in bench.cell_summary({"hf": calls["hf"]})


def test_decode_step_order_and_questions(bench):
    assert bench.decode_step_ms(13.0, 0.3, 128) == pytest.approx(100.0)
    assert bench.decode_step_ms(1.0, 1.0, 1) is None
    assert [bench.interleaved_order(r) for r in range(3)] == [("hf", "vllm"), ("vllm", "hf"), ("hf", "vllm")]
    assert (bench.question_count(16), bench.question_count(64)) == (4, 16)
    with pytest.raises(ValueError):
        bench.question_count(10)


def _model(bench, label, hf_tps, vllm_tps, n="64"):
    calls = {"hf": [{"tokens": 128 * int(n), "wall_s": 128 * int(n) / t} for t in hf_tps],
             "vllm": [{"tokens": 128 * int(n), "wall_s": 128 * int(n) / t} for t in vllm_tps]}
    summary = bench.cell_summary(calls)
    for engine in ("hf", "vllm"):
        summary[engine]["decode_step_ms"] = 12.5
    return {"label": label, "dtype": "float32", "device": "cpu", "threads": 2, "engines": ["hf", "vllm"],
            "prompt_tokens": {n: [100, 120]}, "max_new_tokens": 128, "repeats": len(hf_tps),
            "facts": {"parameters": 2.5e6, "num_hidden_layers": 4, "hidden_size": 128, "vocab_size": 1024},
            "startup": {"hf": {"load_s": 0.4, "torch_threads": 2}, "vllm": {"load_s": 9.0, "torch_threads": 2}},
            "first_token": {n: {"hf": {"wall_s": 0.1}, "vllm": {"wall_s": 0.05}}},
            "cells": {n: {"calls": calls, "summary": summary}},
            "sync_s": bench.summarize([0.02, 0.03, 0.025]), "peak_rss_gib": {"hf": 0.9, "vllm": 2.1}}


def test_report_writer_tables_target_and_json(bench, tmp_path):
    data = {"machine": {"machine": "x86_64", "cpu": "Test CPU", "cores": 2, "python": "3.11", "torch": "2.x",
                        "transformers": "5.x", "vllm": "0.x"},
            "settings": {"command": "python benchmarks/rollout.py --repeats 3", "max_new_tokens": 128, "repeats": 3},
            "models": [_model(bench, "fast", [100, 110, 90], [400, 420, 300]),
                       _model(bench, "slow", [100, 100, 100], [150, 250, 200])],
            "notes": "Because of *reasons*."}
    out = tmp_path / "rollout.md"
    bench.write_report(data, out)
    text = out.read_text()
    assert "| fast | 64 | 8192 / 8192 | 100.0 (90.0-110.0) | 400.0 (300.0-420.0) | 3.82 (3.33-4.00) | met |" in text
    assert "| slow | 64 | 8192 / 8192 | 100.0 (100.0-100.0) | 200.0 (150.0-250.0) | 2.00 (1.50-2.50) | missed |" in text
    assert "| fast | 0.4 / 9.0 | 0.025 (0.020-0.030), 3 syncs | 64 | 0.10 / 0.05 | 12.5 / 12.5 | 0.90 / 2.10 |" in text
    assert "fast met; slow missed" in text and "torch threads in the workers: hf 2, vllm 2" in text
    assert text.rstrip().endswith("Because of *reasons*.")
    assert json.loads(out.with_suffix(".json").read_text())["models"][1]["label"] == "slow"
    assert bench.target_verdict(data["models"][0]) == "met"
    assert bench.target_verdict({"cells": {}}) is None


def test_import_and_help_load_no_engine():
    probe = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('b', sys.argv[1]); "
             "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
             "print(sorted(x for x in ('torch', 'vllm', 'transformers') if x in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe, str(SCRIPT)], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
    helped = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    assert "--quick" in helped.stdout and "benchmarks/rollout.py --quick" in helped.stdout
