"""PNG figures for the reports: test-time scaling, memory-k transfer, training curves, memory growth.

Every function takes plain data (lists / dicts, as the harness and ``metrics.jsonl`` hold them) and
an output path, writes one PNG there and returns the path. matplotlib is imported lazily with the
non-interactive Agg backend, so importing this module costs nothing and no display is needed.
Rates (accuracy, best@k, maj@k, reward in [0, 1]) are drawn as percentages on a 0-100 axis.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from .atomic_files import write_atomically

DPI = 110
LEVELS = ("experience", "insight", "behavior")
LEVEL_COLORS = {"experience": "tab:blue", "insight": "tab:orange", "behavior": "tab:green"}
PHASE_ORDER = ("rollout", "verify", "memory", "reflection", "teacher_context", "loss", "ema", "validation")


# ----------------------------------------------------------------- shared helpers
def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _percent_axis(ax, label: str) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.set_ylim(-3, 103)  # a little room so lines at exactly 0% or 100% are not cut by the frame
    ax.set_yticks(range(0, 101, 20))
    ax.yaxis.set_major_formatter(PercentFormatter(100, decimals=0))
    ax.set_ylabel(label)


def _style(ax) -> None:
    ax.grid(True, which="major", alpha=0.35, linewidth=0.7)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


def _save(fig, path: str | Path) -> Path:
    """Write the figure to ``path`` through a temporary file in the same folder (no torn PNGs)."""
    plt = _pyplot()
    try:
        return write_atomically(path, lambda handle: fig.savefig(
            handle, format="png", dpi=DPI, bbox_inches="tight", facecolor="white"), binary=True)
    finally:
        plt.close(fig)


def _colors(n: int) -> list:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _empty_note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.45", fontsize=10)


def _int_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))


# ----------------------------------------------------------------- test-time scaling
def plot_scaling(curves: Mapping[str, Sequence[Mapping]], path: str | Path, title: str = "Test-time scaling") -> Path:
    """best@k (solid) and maj@k (dashed) against k on a log2 axis, one color per configuration;
    the headroom between them (what a verifier could recover over voting) is shaded.

    ``curves``: label -> rows ``{"k", "maj", "best", "headroom", "coverage"}`` with rates in 0..1
    (``harness.scaling`` rows)."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    if not curves:
        raise ValueError("plot_scaling: no curves to plot")
    fig, ax = plt.subplots(figsize=(8, 5.2))
    all_ks: set[int] = set()
    handles = []
    for color, (label, rows) in zip(_colors(len(curves)), curves.items()):
        rows = sorted(rows, key=lambda r: r["k"])
        if not rows:
            continue
        ks = [int(r["k"]) for r in rows]
        best = [100 * float(r["best"]) for r in rows]
        maj = [100 * float(r["maj"]) for r in rows]
        all_ks.update(ks)
        marker = "o" if len(ks) <= 12 else None
        ax.plot(ks, best, color=color, linestyle="-", marker=marker, markersize=4, linewidth=2)
        ax.plot(ks, maj, color=color, linestyle="--", marker=marker, markersize=4, linewidth=2, markerfacecolor="white")
        ax.fill_between(ks, maj, best, color=color, alpha=0.12, linewidth=0)
        handles.append(Line2D([], [], color=color, linewidth=6, label=label))
    if not all_ks:
        raise ValueError("plot_scaling: every curve is empty")
    ks = sorted(all_ks)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.minorticks_off()
    if len(ks) > 1:
        ax.set_xlim(ks[0] / 1.15, ks[-1] * 1.15)
    ax.set_xlabel("k (samples per question, log2 scale)")
    _percent_axis(ax, "questions solved")
    ax.set_title(title)
    _style(ax)
    config_legend = ax.legend(handles=handles, title="configuration", loc="upper left", fontsize=9, title_fontsize=9,
                              framealpha=0.9)
    ax.add_artist(config_legend)
    style_handles = [
        Line2D([], [], color="0.25", linestyle="-", linewidth=2, label="best@k (pass@k, perfect verifier)"),
        Line2D([], [], color="0.25", linestyle="--", linewidth=2, label="maj@k (majority vote)"),
        plt.Rectangle((0, 0), 1, 1, color="0.25", alpha=0.15, label="headroom = best@k − maj@k"),
    ]
    ax.legend(handles=style_handles, loc="lower right", fontsize=9, framealpha=0.9)
    return _save(fig, path)


# ----------------------------------------------------------------- memory transfer
def plot_memory_k(series: Mapping[str, Sequence[tuple[int, float]]], path: str | Path,
                  title: str = "Accuracy vs retrieved memory entries", metric_name: str = "accuracy") -> Path:
    """``metric_name`` (a rate in 0..1) against the number k of retrieved memory entries, one line
    with markers per label (e.g. "model · bank"); k = 0 is the no-memory baseline."""
    plt = _pyplot()

    if not series:
        raise ValueError("plot_memory_k: no series to plot")
    fig, ax = plt.subplots(figsize=(8, 5.2))
    all_ks: set[int] = set()
    for color, (label, points) in zip(_colors(len(series)), series.items()):
        points = sorted((int(k), float(v)) for k, v in points)
        if not points:
            continue
        ks = [k for k, _ in points]
        all_ks.update(ks)
        ax.plot(ks, [100 * v for _, v in points], color=color, marker="o", markersize=6, linewidth=2, label=label)
    if not all_ks:
        raise ValueError("plot_memory_k: every series is empty")
    ks = sorted(all_ks)
    ax.set_xticks(ks)
    ax.set_xticklabels(["0 (none)" if k == 0 else str(k) for k in ks])
    if len(ks) > 1:
        pad = 0.04 * (ks[-1] - ks[0])
        ax.set_xlim(ks[0] - pad, ks[-1] + pad)
    ax.set_xlabel("k (memory entries retrieved into the prompt)")
    _percent_axis(ax, metric_name)
    ax.set_title(title)
    _style(ax)
    ax.legend(title="model · bank", loc="best", fontsize=9, title_fontsize=9, framealpha=0.9)
    return _save(fig, path)


# ----------------------------------------------------------------- training curves
def _series(records: Sequence[Mapping], key: str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    for row in records:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            steps.append(int(row["step"]))
            values.append(float(value))
    return steps, values


def _moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _plot_noisy(ax, steps: list[int], values: list[float], *, color, label: str, scale: float = 1.0,
                linestyle: str = "-", linewidth: float = 2.0) -> None:
    """Raw per-step values, plus a moving average when there are enough steps for it to help."""
    ys = [scale * v for v in values]
    window = max(1, len(ys) // 15)
    if len(ys) >= 20 and window >= 2:
        ax.plot(steps, ys, color=color, alpha=0.3, linewidth=1, linestyle=linestyle)
        ax.plot(steps, _moving_average(ys, window), color=color, linewidth=linewidth, linestyle=linestyle,
                label=f"{label} ({window}-step mean)")
    else:
        ax.plot(steps, ys, color=color, linewidth=linewidth, linestyle=linestyle,
                marker="o" if len(ys) <= 30 else None, markersize=3.5, label=label)


def clean_records(records: Sequence[Mapping]) -> list[dict]:
    """Records with a step, sorted by step; a step logged twice keeps its last record."""
    by_step: dict[int, dict] = {}
    for row in records:
        if isinstance(row, Mapping) and isinstance(row.get("step"), int):
            by_step[row["step"]] = dict(row)
    return [by_step[s] for s in sorted(by_step)]


def plot_training(records: Sequence[Mapping], path: str | Path, title: str | None = None) -> Path:
    """Training curves from ``metrics.jsonl`` records (``trainer.metrics.read_metrics``), one panel
    each where the records hold the keys:

    * rollouts: ``reward/mean`` and ``accuracy`` of the memory-free student's samples (%);
    * validation: ``validation/accuracy`` on held-out questions (%), every few steps;
    * loss: ``loss`` (the SDPO / GRPO objective);
    * teacher: ``teacher/with_signal`` (% of samples the memory-conditioned teacher had a signal
      for) - PMD and SDPO runs only;
    * time per step: the ``time/<phase>`` seconds, stacked.
    """
    plt = _pyplot()
    records = clean_records(records)
    if not records:
        raise ValueError("plot_training: no metrics records with a step")
    has = lambda key: any(isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) for r in records)  # noqa: E731
    panels = ["rollouts"]
    if has("validation/accuracy"):
        panels.append("validation")
    if has("loss"):
        panels.append("loss")
    if has("teacher/with_signal"):
        panels.append("teacher")
    phases = [p for p in PHASE_ORDER if has(f"time/{p}")]
    phases += sorted(k[5:] for k in {k for r in records for k in r} if k.startswith("time/") and k != "time/step"
                     and k[5:] not in phases)
    if phases:
        panels.append("time")
    ncols = 1 if len(panels) == 1 else 2
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.6 * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    first_step, last_step = records[0]["step"], records[-1]["step"]
    for ax, panel in zip(flat, panels):
        if panel == "rollouts":
            # reward equals accuracy on pass/fail tasks: the dashed accuracy line stays visible on top
            for key, color, label, style, width in (("reward/mean", "tab:blue", "mean reward ×100", "-", 2.6),
                                                    ("accuracy", "tab:orange", "accuracy (passed)", "--", 1.6)):
                steps, values = _series(records, key)
                if steps:
                    _plot_noisy(ax, steps, values, color=color, label=label, scale=100, linestyle=style, linewidth=width)
            _percent_axis(ax, "rollouts")
            ax.set_title("Rollouts of the student (no memory)")
            ax.legend(loc="best", fontsize=8, framealpha=0.9)
        elif panel == "validation":
            steps, values = _series(records, "validation/accuracy")
            ax.plot(steps, [100 * v for v in values], color="tab:green", marker="o", markersize=5, linewidth=2,
                    label="validation accuracy")
            best = max(range(len(values)), key=lambda i: values[i])
            if len(values) > 1 and max(values) > min(values):
                ax.annotate(f"best {100 * values[best]:.1f}% (step {steps[best]})", (steps[best], 100 * values[best]),
                            textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8, color="tab:green")
            _percent_axis(ax, "held-out questions solved")
            ax.set_title("Validation (one sample per question, no memory)")
            ax.legend(loc="best", fontsize=8, framealpha=0.9)
        elif panel == "loss":
            steps, values = _series(records, "loss")
            _plot_noisy(ax, steps, values, color="tab:red", label="loss")
            ax.set_ylabel("loss")
            ax.set_title("Training loss")
            ax.legend(loc="best", fontsize=8, framealpha=0.9)
        elif panel == "teacher":
            steps, values = _series(records, "teacher/with_signal")
            _plot_noisy(ax, steps, values, color="tab:purple", label="samples with a teacher signal", scale=100)
            _percent_axis(ax, "samples")
            ax.set_title("Self-teacher signal")
            ax.legend(loc="best", fontsize=8, framealpha=0.9)
        elif panel == "time":
            import numpy as np

            steps = [r["step"] for r in records]
            stacks = [[float(r.get(f"time/{p}") or 0.0) for r in records] for p in phases]
            colors = _colors(len(phases))
            if len(steps) > 1:
                ax.stackplot(steps, np.array(stacks), labels=phases, colors=colors, alpha=0.85)
            else:
                bottom = 0.0
                for phase, stack, color in zip(phases, stacks, colors):
                    ax.bar(steps, stack, bottom=bottom, label=phase, color=color, width=0.6)
                    bottom += stack[0]
            ax.set_ylabel("seconds")
            peak = max((sum(col) for col in zip(*stacks)), default=0.0)
            ax.set_ylim(0, 1.45 * peak if peak > 0 else 1)  # headroom for the legend above the stack
            ax.set_title("Time per step by phase")
            ax.legend(loc="upper center", fontsize=7, ncol=4, framealpha=0.9)
        ax.set_xlabel("step")
        if first_step != last_step:
            ax.set_xlim(first_step - 0.02 * (last_step - first_step) - 0.2, last_step + 0.02 * (last_step - first_step) + 0.2)
            _int_ticks(ax)
        else:  # a single step: one tick at it
            ax.set_xlim(first_step - 1, first_step + 1)
            ax.set_xticks([first_step])
        _style(ax)
    fig.suptitle(title or "Training curves", fontsize=13)
    fig.tight_layout()
    return _save(fig, path)


# ----------------------------------------------------------------- memory growth
def plot_memory_growth(growth: Mapping[str, Sequence[tuple[int, int]]], path: str | Path,
                       title: str = "Memory bank growth") -> Path:
    """Entries per memory level (experience, insight, behavior; other keys too) against step. The
    y axis turns logarithmic when the levels differ by more than 20x, so small levels stay visible."""
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(9.5, 5))
    levels = [lv for lv in LEVELS if lv in growth] + [lv for lv in growth if lv not in LEVELS]
    peaks = []
    extra_colors = iter(_colors(10)[3:])
    for level in levels:
        points = sorted((int(s), int(n)) for s, n in growth[level])
        if not points:
            continue
        steps, counts = [s for s, _ in points], [n for _, n in points]
        peaks.append(max(counts))
        ax.plot(steps, counts, color=LEVEL_COLORS.get(level) or next(extra_colors), linewidth=2,
                marker="o" if len(points) <= 30 else None, markersize=3.5, drawstyle="steps-post" if len(points) > 30 else "default",
                label=f"{level} ({counts[-1]:,} at step {steps[-1]})")
    if not peaks:
        _empty_note(ax, "no memory entries recorded")
    nonzero = [p for p in peaks if p > 0]
    log = bool(nonzero) and max(nonzero) / min(nonzero) > 20
    if log:
        ax.set_yscale("symlog", linthresh=1, linscale=0.4)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_ylabel("entries (log scale)")
    else:
        ax.set_ylim(bottom=-0.02 * max(peaks, default=1) - 0.1)
        ax.set_ylabel("entries")
    ax.set_xlabel("step")
    _int_ticks(ax)
    ax.set_title(title)
    _style(ax)
    if peaks:
        ax.legend(title="memory level", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, title_fontsize=9,
                  framealpha=0.9)
    return _save(fig, path)
