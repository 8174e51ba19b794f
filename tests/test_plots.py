"""harness.plots renders real PNGs with matplotlib: each figure is a valid, non-blank image."""
from __future__ import annotations

import math
import random

import pytest

from harness.plots import plot_memory_growth, plot_memory_k, plot_scaling, plot_training

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_readable_png(path, min_width=500, min_height=300):
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000  # text, lines and axes, not an empty canvas
    image = imread(path)
    height, width = image.shape[:2]
    assert width >= min_width and height >= min_height
    assert image[..., :3].std() > 0.02  # not one flat color
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no torn temporaries left


def scaling_rows(best, maj):
    return [{"k": k, "best": b, "maj": m, "headroom": b - m, "coverage": best[-1]}
            for k, b, m in zip([1, 2, 4, 8, 16], best, maj)]


def test_plot_scaling_writes_a_png(tmp_path):
    curves = {"tiny · no memory": scaling_rows([0.2, 0.3, 0.42, 0.55, 0.63], [0.2, 0.2, 0.24, 0.27, 0.3]),
              "tiny · PMD bank": scaling_rows([0.3, 0.41, 0.5, 0.61, 0.7], [0.3, 0.3, 0.35, 0.38, 0.4])}
    path = plot_scaling(curves, tmp_path / "scaling.png", "Test-time scaling")
    assert path == tmp_path / "scaling.png"
    assert_readable_png(path)


def test_plot_scaling_with_a_single_k_and_no_data(tmp_path):
    assert_readable_png(plot_scaling({"one": scaling_rows([0.5], [0.4])}, tmp_path / "one.png", "one k"))
    with pytest.raises(ValueError, match="no curves"):
        plot_scaling({}, tmp_path / "none.png", "nothing")


def test_plot_memory_k_writes_a_png(tmp_path):
    series = {"Qwen3-1.7B · pmd bank": [(0, 0.31), (1, 0.35), (3, 0.38), (5, 0.39)],
              "Qwen3-8B · pmd bank": [(5, 0.58), (0, 0.52), (3, 0.58), (1, 0.55)]}  # any order
    path = plot_memory_k(series, tmp_path / "sub" / "memory_k.png", "Accuracy vs k")
    assert_readable_png(path)
    with pytest.raises(ValueError):
        plot_memory_k({}, tmp_path / "empty.png", "nothing")


def synthetic_records(steps: int, *, validate_every: int = 5, memory: bool = True) -> list[dict]:
    rng = random.Random(0)
    records = []
    for step in range(1, steps + 1):
        acc = min(1.0, max(0.0, 0.3 + 0.3 * (1 - math.exp(-step / 30)) + rng.gauss(0, 0.05)))
        row = {"step": step, "reward/mean": acc, "accuracy": acc, "loss": 0.05 / step, "teacher/with_signal": 0.7,
               "time/rollout": 3.0, "time/loss": 2.0, "time/reflection": 1.0, "time/step": 6.0}
        if memory:
            row.update({"memory/experience": 16 * step, "memory/insight": 4 * step, "memory/behavior": step // 5})
        if step % validate_every == 0:
            row["validation/accuracy"] = acc
        records.append(row)
    return records


@pytest.mark.parametrize("steps", [1, 6, 120])
def test_plot_training_writes_a_png(tmp_path, steps):
    path = plot_training(synthetic_records(steps), tmp_path / "training.png")
    assert_readable_png(path, min_width=1000, min_height=600)


def test_plot_training_with_only_rollout_metrics_and_no_records(tmp_path):
    records = [{"step": s, "reward/mean": 0.1 * s, "accuracy": 0.1 * s} for s in (3, 1, 2, 2)]  # unsorted, repeated
    assert_readable_png(plot_training(records, tmp_path / "rollouts.png"))
    with pytest.raises(ValueError, match="no metrics records"):
        plot_training([{"reward/mean": 1.0}], tmp_path / "none.png")


def test_plot_memory_growth_writes_a_png(tmp_path):
    growth = {"experience": [(s, 16 * s) for s in range(1, 41)], "insight": [(s, 3 * s) for s in range(1, 41)],
              "behavior": [(s, s // 10) for s in range(1, 41)]}
    assert_readable_png(plot_memory_growth(growth, tmp_path / "growth_log.png"))  # levels 100x apart: log axis
    few = {"experience": [(1, 8), (2, 16)], "insight": [(1, 4), (2, 8)], "behavior": [(1, 0), (2, 2)]}
    assert_readable_png(plot_memory_growth(few, tmp_path / "growth.png"))


def test_plot_memory_growth_without_entries_still_writes_a_png(tmp_path):
    path = plot_memory_growth({}, tmp_path / "empty.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_an_existing_png_is_replaced(tmp_path):
    target = tmp_path / "scaling.png"
    target.write_bytes(b"old")
    plot_scaling({"a": scaling_rows([0.2, 0.4], [0.2, 0.3])}, target, "replaced")
    assert_readable_png(target)
