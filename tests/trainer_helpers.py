"""Helpers for the training tests: run ``pmd-train`` for real in a subprocess on the tiny model,
and a scripted OpenAI-compatible reflection endpoint on 127.0.0.1 (``pmd.scripted_endpoint``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "trainer" / "configs" / "demo_cpu.yaml"

REFLECTION_TEXT = ("STRATEGY: Recall the definition of every quantity named in the question before choosing.\n"
                   "LESSON: Always finish with a single option letter inside the answer tag.")
BEHAVIOR_TEXT = ("SKILL: Write the governing formula before substituting any numbers.\n"
                 "AVOID: Stopping the reasoning without giving an answer letter in the tag.")


def _reply(prompt: str) -> str:
    return BEHAVIOR_TEXT if "SKILL:" in prompt else REFLECTION_TEXT


def start_reflection_server():
    from pmd.scripted_endpoint import start_scripted_endpoint

    return start_scripted_endpoint(_reply)


def tiny_overrides(model_dir: Path, out_dir: Path, name: str, **extra: object) -> list[str]:
    settings = {"model.name_or_path": str(model_dir), "run.output_dir": str(out_dir), "run.name": name, **extra}
    return [f"{key}={value}" for key, value in settings.items()]


def train_command(overrides: list[str], config: Path = DEMO_CONFIG, resume: bool = False, launcher=None) -> list[str]:
    command = [*(launcher or [sys.executable, "-m"]), "trainer.cli", "--config", str(config)]
    for item in overrides:
        command += ["--set", item]
    return command + (["--resume"] if resume else [])


def run_training(overrides: list[str], config: Path = DEMO_CONFIG, resume: bool = False, launcher=None,
                 timeout: int = 300) -> subprocess.CompletedProcess:
    # A process group started in the test process (its MASTER_PORT etc.) must not leak into the run.
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(train_command(overrides, config, resume, launcher), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
