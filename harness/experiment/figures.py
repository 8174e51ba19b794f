"""The experiment report's PNGs: learning curves and memory growth with a band across seeds, and
the coverage comparison (questions only one variant solves, the paper's Figure 5)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from harness.plots import _colors, _empty_note, _int_ticks, _percent_axis, _pyplot, _save, _style


def seed_band(runs: Sequence[Sequence[dict]], key: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps logged by every seed, and the mean, minimum and maximum of ``key`` across seeds."""
    by_seed = [{int(r["step"]): float(r[key]) for r in records if isinstance(r.get(key), (int, float))} for records in runs]
    by_seed = [series for series in by_seed if series]
    if not by_seed:
        return [], [], [], []
    steps = sorted(set.intersection(*(set(series) for series in by_seed)))
    values = np.array([[series[s] for s in steps] for series in by_seed])
    return steps, list(values.mean(axis=0)), list(values.min(axis=0)), list(values.max(axis=0))


def _smooth(values: list[float], window: int) -> list[float]:
    if window <= 1 or len(values) < 2 * window:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return list(np.convolve(padded, kernel, mode="valid"))


def plot_learning_curves(variants: Mapping[str, Sequence[Sequence[dict]]], path: str | Path,
                         keys: Sequence[tuple[str, str]], title: str) -> Path:
    """One panel per (metric key, label): each variant's mean across seeds, the band from the
    lowest to the highest seed. Long noisy curves are smoothed (moving average, noted)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(6.2 * len(keys), 4.6), squeeze=False)
    colors = dict(zip(variants, _colors(len(variants))))
    for ax, (key, label) in zip(axes[0], keys):
        drawn = False
        for variant, runs in variants.items():
            steps, mean, low, high = seed_band(runs, key)
            if not steps:
                continue
            window = max(1, len(steps) // 15)
            scale = 100 if key not in ("loss",) and not key.startswith("memory/") else 1
            ax.plot(steps, [scale * v for v in _smooth(mean, window)], color=colors[variant], linewidth=2,
                    label=f"{variant} ({len(runs)} seeds)")
            ax.fill_between(steps, [scale * v for v in _smooth(low, window)], [scale * v for v in _smooth(high, window)],
                            color=colors[variant], alpha=0.18, linewidth=0)
            drawn = True
            smoothed = window > 1
        if not drawn:
            _empty_note(ax, f"no {key} logged")
        elif key.startswith("memory/"):
            ax.set_ylabel("entries")
        else:
            _percent_axis(ax, label + (" (moving average)" if smoothed else ""))
        ax.set_title(label)
        ax.set_xlabel("step")
        _int_ticks(ax)
        _style(ax)
        if drawn:
            ax.legend(fontsize=8, framealpha=0.9)
    fig.suptitle(f"{title} — mean across seeds, band: lowest to highest seed", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_coverage(rows: Sequence[dict], baseline: str, path: str | Path, title: str) -> Path:
    """Per variant: questions solved by it and not by the baseline, and the reverse (any sample,
    any seed), as a pair of bars; the counts on top."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(rows) + 2), 4.6))
    if not rows:
        _empty_note(ax, "no variant to compare with the baseline")
    x = np.arange(len(rows))
    only_v = [r["only_variant"] for r in rows]
    only_b = [r["only_baseline"] for r in rows]
    bars_v = ax.bar(x - 0.2, only_v, width=0.4, color="tab:green", label="solved only by the variant")
    bars_b = ax.bar(x + 0.2, only_b, width=0.4, color="tab:red", label=f"solved only by {baseline}")
    for bars in (bars_v, bars_b):
        ax.bar_label(bars, fontsize=9)
    ax.set_xticks(x, [r["variant"] for r in rows])
    ax.set_ylabel("questions")
    ax.set_title(title)
    _style(ax)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
