"""A 2-process ZeRO-3 run and a 1-process run with the same seed and batch write the same memory:
generation is seeded per question (not per process), rank 0 gathers every sample, reflects and
clusters in a fixed order, so experiences, insights and behaviors agree."""
from __future__ import annotations

import sqlite3
import sys

import pytest

from trainer_helpers import run_training, start_reflection_server, tiny_overrides

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]


def bank_contents(path) -> dict[str, list[tuple]]:
    """Every entry without its ids, times or run names, in a fixed order."""
    with sqlite3.connect(path) as db:
        return {
            "experiences": sorted(db.execute("SELECT question_id, step, response, reward, feedback FROM experiences")),
            "insights": sorted(db.execute("SELECT question_id, kind, text, confidence, support FROM insights")),
            "behaviors": sorted(db.execute("SELECT kind, text, support FROM behaviors")),
        }


def test_one_and_two_processes_write_the_same_bank(tmp_path):
    from pmd.tiny_model import build_tiny_models

    tiny = build_tiny_models(tmp_path / "models")["tiny"]
    server, url = start_reflection_server()
    try:
        settings = {"data.max_steps": 2, "checkpoint.every": 2, "logging.validate_every": 0,
                    "deepspeed.zero_stage": 3, "sampling.generation_batch_size": 4,  # one question's samples
                    "reflection.source": "endpoint", "reflection.base_url": url, "reflection.model": "scripted",
                    "memory.behavior_every": 2, "memory.behavior_warmup": 2}
        run_training(tiny_overrides(tiny, tmp_path, "one", **settings), timeout=400)
        run_training(tiny_overrides(tiny, tmp_path, "two", **settings), launcher=TORCHRUN, timeout=400)
    finally:
        server.shutdown()
    one, two = bank_contents(tmp_path / "one" / "memory.db"), bank_contents(tmp_path / "two" / "memory.db")
    assert len(one["experiences"]) == 2 * 16 and one["insights"] and one["behaviors"]
    assert one == two
