"""Weights & Biases logging (``logging.wandb``), run for real in W&B's offline mode: the run's
config and every metric of metrics.jsonl reach W&B's own record file, and a resumed run keeps
its W&B run. The record file (``run-<id>.wandb``) is read with a small reader of its documented
framing (LevelDB log blocks of W&B protobuf ``Record`` messages)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from trainer_helpers import metrics, run_training, tiny_overrides

pytest.importorskip("wandb")
pytestmark = [pytest.mark.slow]

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(path: Path) -> list:
    """Every ``Record`` in a W&B transaction log, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, index = [], b"", HEADER
    while index + HEADER <= len(data):
        left = BLOCK - index % BLOCK
        if left < HEADER:  # the rest of a block too small for a header is padding
            index += left
            continue
        _, length, kind = struct.unpack("<IHB", data[index:index + HEADER])
        payload = data[index + HEADER:index + HEADER + length]
        index += HEADER + length
        if kind in (FULL, FIRST):
            pending = payload
        elif kind in (MIDDLE, LAST):
            pending += payload
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def history(records) -> list[dict]:
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    return rows


def test_metrics_and_config_reach_wandb_and_a_resume_keeps_the_run(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    overrides = tiny_overrides(tiny, tmp_path, "logged", **{
        "data.max_steps": 2, "checkpoint.every": 2, "logging.validate_every": 0, "logging.wandb.project": "pmd-test",
        "logging.wandb.group": "exp-1", "logging.wandb.tags": "[smoke]"})
    run_training(overrides)
    run = tmp_path / "logged"
    run_id = (run / "wandb-id").read_text()
    (log,) = run.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")
    records = wandb_records(log)
    (info,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (info.project, info.display_name, info.run_group, list(info.tags)) == ("pmd-test", "logged", "exp-1", ["smoke"])
    # The config travels in the run record (and in config records for later changes).
    updates = [*info.config.update] + [item for r in records if r.WhichOneof("record_type") == "config"
                                       for item in r.config.update]
    config = {item.key: json.loads(item.value_json) for item in updates}
    assert config["algorithm"] == "pmd" and config["model"]["name_or_path"] == str(tiny)
    rows = history(records)
    logged = metrics(run)
    assert [row["_step"] for row in rows] == [r["step"] for r in logged] == [1, 2]
    for row, expected in zip(rows, logged):
        scalars = {k: v for k, v in expected.items() if k != "step" and isinstance(v, (int, float))}
        assert {k: row[k] for k in scalars} == pytest.approx(scalars)

    run_training([o for o in overrides if not o.startswith("data.max_steps")] + ["data.max_steps=3"], resume=True)
    assert (run / "wandb-id").read_text() == run_id
    resumed = sorted(run.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert [row["_step"] for log in resumed for row in history(wandb_records(log))][-1] == 3
