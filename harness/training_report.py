"""A report of one ``pmd-train`` run folder: curves, memory growth and the headline numbers.

``training_report(RUN_DIR)`` reads RUN_DIR/metrics.jsonl, RUN_DIR/config.yaml and RUN_DIR/memory.db
(read-only; GRPO and SDPO runs have no bank and still get their curves) and writes into
RUN_DIR/report/ (or ``out_dir``):

* ``training_curves.png``: rollout reward / accuracy, validation accuracy, loss, teacher signal and
  time per phase against step (``harness.plots.plot_training``);
* ``memory_growth.png``: entries per memory level against step, from the per-step ``memory/<level>``
  counts of the metrics, or else reconstructed from the bank's step columns (PMD runs only);
* ``report.md``: a Markdown summary linking the PNGs; ``report.json``: the same numbers.

Nothing else in the run folder is touched: the bank is opened read-only (immutable when no writer
has it open, so SQLite leaves no -wal/-shm files behind) and every output is written to a temporary
name and renamed. ``summarize_run(RUN_DIR)`` gives the headline numbers for a table across runs.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .atomic_files import write_text_atomically

METRICS_FILE = "metrics.jsonl"
BANK_FILE = "memory.db"
CONFIG_FILE = "config.yaml"
REPORT_DIR = "report"
LEVELS = ("experience", "insight", "behavior")
LAST_WINDOW = 10  # steps averaged for the "mean of the last steps" figures
RUN_DIR_HINT = "RUN_DIR must be a pmd-train output folder (results/<run.name>/ with metrics.jsonl, config.yaml, memory.db)"


@dataclass
class RunData:
    run_dir: Path
    records: list[dict]
    config: dict = field(default_factory=dict)
    bank_path: Path | None = None
    bank_counts: dict[str, int] | None = None            # level -> entries, plus question / cluster
    bank_steps: dict[str, list[int | None]] | None = None  # level -> the 0-based step of every entry
    skipped_lines: int = 0  # metrics lines that were not a step record (broken, torn or foreign)


# ----------------------------------------------------------------- reading a run folder
def _read_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML ({err}); {RUN_DIR_HINT}") from None
    return data if isinstance(data, dict) else {}


def _read_bank(path: Path) -> tuple[dict[str, int], dict[str, list[int | None]]]:
    from memory_bank.records import LEVEL_TABLES

    step_columns = {"experience": "step", "insight": "first_step", "behavior": "step"}
    from memory_bank import MemoryBank

    # read-only opens are immutable when no writer is active: no -wal/-shm files appear
    bank = MemoryBank.open(path, readonly=True)
    try:
        counts = {level: n for level, n in bank.counts().items() if level in (*LEVELS, "question", "cluster")}
        steps = {level: [row[0] for row in bank.conn.execute(f"SELECT {step_columns[level]} FROM {LEVEL_TABLES[level]}")]
                 for level in LEVELS}
    finally:
        bank.close()
    return counts, steps


def read_metrics_file(path: Path) -> tuple[list[dict], int]:
    """The step records of a metrics file (``clean_records``: sorted, a step logged twice keeps
    its last record) and how many non-empty lines were skipped: not JSON (a torn last line of a
    crash, a damaged line), or no JSON object with an integer ``step``."""
    from harness.plots import clean_records

    rows, skipped = [], 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int) and not isinstance(row["step"], bool):
                rows.append(row)
            else:
                skipped += 1
    return clean_records(rows), skipped


def load_run(run_dir: str | Path) -> RunData:
    """Everything the report needs from a run folder; a clear error when it is not one."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise FileNotFoundError(f"{run_dir} does not exist; {RUN_DIR_HINT}")
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir} is a file, not a folder; {RUN_DIR_HINT}")
    metrics_path, bank_path = run_dir / METRICS_FILE, run_dir / BANK_FILE
    if not metrics_path.is_file():
        missing = f"{METRICS_FILE} nor {BANK_FILE}" if not bank_path.exists() else METRICS_FILE
        raise FileNotFoundError(f"{run_dir} has no {missing}; {RUN_DIR_HINT} "
                                "(a run writes metrics.jsonl after its first step)")
    records, skipped = read_metrics_file(metrics_path)
    if not records:
        unread = f" ({skipped} lines could not be read)" if skipped else ""
        raise ValueError(f"{metrics_path} holds no complete step record yet{unread}; {RUN_DIR_HINT}")
    data = RunData(run_dir=run_dir, records=records, config=_read_config(run_dir / CONFIG_FILE),
                   skipped_lines=skipped)
    if bank_path.is_file():
        data.bank_path = bank_path
        data.bank_counts, data.bank_steps = _read_bank(bank_path)
    return data


# ----------------------------------------------------------------- numbers
def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _series(records: list[dict], key: str) -> list[tuple[int, float]]:
    return [(r["step"], v) for r in records if (v := _number(r.get(key))) is not None]


def _curve_stats(points: list[tuple[int, float]]) -> dict | None:
    if not points:
        return None
    best_step, best = max(points, key=lambda p: (p[1], -p[0]))  # earliest step of the best value
    tail = [v for _, v in points[-LAST_WINDOW:]]
    return {"final": points[-1][1], "final_step": points[-1][0], "best": best, "best_step": best_step,
            "first": points[0][1], "mean_last": statistics.fmean(tail), "mean_last_n": len(tail), "points": len(points)}


def _config_get(config: dict, *keys, default=None):
    node = config
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def memory_growth(data: RunData) -> tuple[dict[str, list[tuple[int, int]]], str | None]:
    """(level -> [(step, entries)], source). The metrics' per-step ``memory/<level>`` counts when
    present (the bank as it was after each step); else reconstructed from the entries the bank
    still holds (bank step s is written during metrics step s + 1; entries trimmed or cleared
    during training are not counted); ({}, None) for a run without memory."""
    from_metrics = {level: [(s, int(v)) for s, v in _series(data.records, f"memory/{level}")] for level in LEVELS}
    if any(from_metrics.values()):
        return {level: points for level, points in from_metrics.items() if points}, "metrics"
    if not data.bank_steps:
        return {}, None
    steps = [r["step"] for r in data.records]
    growth = {}
    for level in LEVELS:
        made = sorted(-1 if s is None else int(s) + 1 for s in data.bank_steps.get(level, []))
        growth[level] = [(step, sum(1 for m in made if m <= step)) for step in steps]
    return growth, "memory.db"


def _collect(data: RunData) -> dict:
    config, records = data.config, data.records
    algorithm = _config_get(config, "algorithm")
    memory_mode = None
    if algorithm is not None:
        memory_mode = _config_get(config, "memory", "mode", default="persistent") if algorithm == "pmd" else "none"
    final_counts = None
    if data.bank_counts is not None:
        final_counts = {level: data.bank_counts.get(level, 0) for level in LEVELS}
        memory_source = BANK_FILE
    else:
        last_memory = {level: _number(records[-1].get(f"memory/{level}")) for level in LEVELS}
        memory_source = None
        if any(v is not None for v in last_memory.values()):
            final_counts = {level: int(v) for level, v in last_memory.items() if v is not None}
            memory_source = METRICS_FILE
    times = [v for _, v in _series(records, "time/step")]
    signal = [v for _, v in _series(records, "teacher/with_signal")]
    return {
        "run": _config_get(config, "run", "name") or data.run_dir.name,
        "run_dir": str(data.run_dir),
        "algorithm": algorithm,
        "memory_mode": memory_mode,
        "policy_frozen": bool(_config_get(config, "policy", "frozen", default=False)),
        "model": _config_get(config, "model", "name_or_path"),
        "task": _config_get(config, "data", "task"),
        "steps": records[-1]["step"],
        "max_steps": _config_get(config, "data", "max_steps"),
        "records": len(records),
        "metrics_lines_skipped": data.skipped_lines,
        "reward": _curve_stats(_series(records, "reward/mean")),
        "accuracy": _curve_stats(_series(records, "accuracy")),
        "validation_accuracy": _curve_stats(_series(records, "validation/accuracy")),
        "loss": _curve_stats(_series(records, "loss")),
        "teacher_signal_mean": statistics.fmean(signal) if signal else None,
        "time": {"total_s": sum(times), "per_step_s": statistics.fmean(times)} if times else None,
        "memory": {
            "entries": final_counts,
            "questions": (data.bank_counts or {}).get("question"),
            "clusters": (data.bank_counts or {}).get("cluster"),
            "source": memory_source,
            "bank": str(data.bank_path) if data.bank_path else _config_get(config, "memory", "bank"),
        },
    }


def _headline(report: dict) -> dict:
    get = lambda section, key="final": (report.get(section) or {}).get(key)  # noqa: E731
    return {
        "run": report["run"],
        "run_dir": report["run_dir"],
        "algorithm": report["algorithm"],
        "memory_mode": report["memory_mode"],
        "policy_frozen": report["policy_frozen"],
        "steps": report["steps"],
        "final_reward": get("reward"),
        "best_reward": get("reward", "best"),
        "final_accuracy": get("accuracy"),
        "final_validation_accuracy": get("validation_accuracy"),
        "best_validation_accuracy": get("validation_accuracy", "best"),
        "entries": report["memory"]["entries"],
    }


def summarize_run(run_dir: str | Path) -> dict:
    """The headline numbers of one run, for a comparison table across runs: run, algorithm,
    memory_mode, policy_frozen, steps, final / best reward, final rollout accuracy, final / best
    validation accuracy (None without validation), entries per memory level (None without memory)."""
    return _headline(_collect(load_run(run_dir)))


# ----------------------------------------------------------------- writing the report
def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if abs(value) < 1e-2 and value != 0 else f"{value:.3f}"


def render_markdown(report: dict) -> str:
    reward, accuracy, validation, loss = (report.get(k) for k in ("reward", "accuracy", "validation_accuracy", "loss"))
    algorithm = report["algorithm"] or "unknown (no config.yaml)"
    if report["memory_mode"] not in (None, "none"):
        algorithm += f" (memory: {report['memory_mode']}{', frozen policy' if report['policy_frozen'] else ''})"
    elif report["policy_frozen"]:
        algorithm += " (frozen policy)"
    steps = str(report["steps"]) + (f" of {report['max_steps']}" if report.get("max_steps") else "")
    rows = [("run folder", f"`{report['run_dir']}`"), ("algorithm", algorithm)]
    if report["model"]:
        rows.append(("model", f"`{report['model']}`"))
    if report["task"]:
        rows.append(("task", report["task"]))
    rows.append(("steps", steps))
    if report.get("metrics_lines_skipped"):
        rows.append(("metrics lines skipped", f"{report['metrics_lines_skipped']} (not a JSON step record; "
                                               f"see `{METRICS_FILE}`)"))

    def curve(stats: dict | None, fmt) -> str:
        if stats is None:
            return "–"
        text = f"final {fmt(stats['final'])} (step {stats['final_step']}) · best {fmt(stats['best'])} (step {stats['best_step']})"
        if stats["points"] > 1:
            text += f" · mean of last {stats['mean_last_n']} {'evaluations' if stats is validation else 'steps'} {fmt(stats['mean_last'])}"
        return text

    rows.append(("reward (rollouts, mean)", curve(reward, _num)))
    rows.append(("accuracy (rollouts)", curve(accuracy, _pct)))
    rows.append(("validation accuracy", curve(validation, _pct) if validation else "not run (logging.validate_every)"))
    if loss:
        rows.append(("loss", f"final {_num(loss['final'])} · first {_num(loss['first'])}"))
    if report.get("teacher_signal_mean") is not None:
        rows.append(("samples with a teacher signal", f"{_pct(report['teacher_signal_mean'])} (mean over steps)"))
    if report.get("time"):
        rows.append(("wall time (logged phases)", f"{report['time']['total_s']:.1f} s ({report['time']['per_step_s']:.2f} s per step)"))

    lines = [f"# Training report: {report['run']}", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    lines += ["", "## Memory", ""]
    memory = report["memory"]
    if memory["entries"]:
        source = {BANK_FILE: f"`{BANK_FILE}` (the bank as the run left it)",
                  METRICS_FILE: f"the last step of `{METRICS_FILE}`"}[memory["source"]]
        lines += ["| level | entries |", "|---|---:|"]
        lines += [f"| {level} | {n:,} |" for level, n in memory["entries"].items()]
        extras = [f"{memory[k]:,} {k}" for k in ("questions", "clusters") if memory.get(k) is not None]
        lines += ["", f"From {source}" + (f"; {', '.join(extras)}." if extras else ".")]
        if report["memory_mode"] == "transient":
            lines += ["", "Transient memory is cleared after every step, so the bank ends empty."]
    elif report["algorithm"] == "pmd":
        lines.append(f"No `{BANK_FILE}` in the run folder and no memory counts in the metrics"
                     + (f"; the run read the frozen bank `{memory['bank']}`." if memory.get("bank") else "."))
    else:
        lines.append(f"No memory: {report['algorithm'] or 'this run'} trains without a memory bank.")
    files = report["files"]
    lines += ["", "## Curves", "", f"![Training curves]({files['training_curves']})"]
    if files.get("memory_growth"):
        note = {"metrics": f"per-step counts logged in `{METRICS_FILE}`",
                "memory.db": f"reconstructed from the entries `{BANK_FILE}` still holds (trimmed or cleared entries are not counted)"}
        lines += ["", f"![Memory growth]({files['memory_growth']})", "", f"Memory growth: {note[report['memory_growth_source']]}."]
    lines += ["", f"Numbers: [{files['report_json']}]({files['report_json']})", ""]
    return "\n".join(lines)


def training_report(run_dir: str | Path, out_dir: str | Path | None = None) -> dict:
    """Write training_curves.png, memory_growth.png (runs with memory), report.md and report.json
    for the run in ``run_dir`` into ``out_dir`` (default RUN_DIR/report/); returns the report's
    numbers (what report.json holds) with ``files`` mapping each output to its path."""
    from harness.plots import plot_memory_growth, plot_training

    data = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else data.run_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    report = _collect(data)
    growth, growth_source = memory_growth(data)
    label = f"{report['run']} · {report['algorithm'] or 'unknown algorithm'}"
    if report["memory_mode"] not in (None, "none"):
        label += f" · {report['memory_mode']} memory"
    plot_training(data.records, out / "training_curves.png", title=f"Training curves: {label}")
    files = {"training_curves": "training_curves.png", "memory_growth": None,
             "report_md": "report.md", "report_json": "report.json"}
    if growth:
        plot_memory_growth(growth, out / "memory_growth.png", title=f"Memory bank growth: {label}")
        files["memory_growth"] = "memory_growth.png"
    report["memory_growth_source"] = growth_source
    report["memory_growth"] = {level: [list(p) for p in points] for level, points in growth.items()}
    report["summary"] = _headline(report)
    report["files"] = files
    write_text_atomically(out / "report.json", json.dumps(report, indent=2, allow_nan=False) + "\n")
    write_text_atomically(out / "report.md", render_markdown(report))
    return {**report, "out_dir": str(out), "paths": {k: str(out / v) for k, v in files.items() if v}}
