"""Issue 13's miniature replication, end to end, and its write-up.

1. ``pmd-harness experiment run EXP`` (resumable: finished runs are skipped) and
   ``pmd-harness experiment report``;
2. the starting model (the baseline variant's ``model.name_or_path``) evaluated memory-free with
   the experiment's own evaluation settings and seeds, so every variant's change from where it
   started is paired by seed (``<experiment>/reference/``);
3. what explains the numbers, measured: how far each policy's weights moved
   (``||θ_final − θ_start|| / ||θ_start||``), accuracy per question family, how often an answer was
   a valid option letter, and the report's training diagnostics (reflection parse rate, teacher
   contexts holding memory, teacher–student divergence early and late);
4. the paper's orderings (GRPO < SDPO < PMD; PMD above both frozen variants; PMD-Transient
   between SDPO and PMD), each with its paired difference over seeds and over questions;
5. ``results/benchmarks/<name>.md`` with the experiment's plots copied beside it
   (``results/benchmarks/<name>/``). A hand-written reading of the numbers between the markers
   ``<!-- reading:start -->`` and ``<!-- reading:end -->`` of an existing file is kept.

    python benchmarks/replication.py                          # the bundled replication (~30 min)
    python benchmarks/replication.py --experiment experiments/replication_family_rules.yaml \\
        --out results/benchmarks/replication.md --no-run      # write-up only, from finished runs
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.eval_summary import graded_questions  # noqa: E402
from harness.experiment.collect import load_result  # noqa: E402
from harness.experiment.plan import Layout, Run, plan_runs  # noqa: E402
from harness.experiment.report import write_report  # noqa: E402
from harness.experiment.spec import ExperimentConfig, load_experiment  # noqa: E402
from harness.experiment.stats import (Interval, bootstrap_interval, mean_interval, paired_bootstrap,  # noqa: E402
                                      paired_difference)
from tasks.grading import question_key  # noqa: E402

START = "start"  # the reference "variant": the untrained starting model
START_WITH_MEMORY = "start_with_memory"  # the same, with the pmd run's final bank in every prompt
READING = ("<!-- reading:start -->", "<!-- reading:end -->")
# (lower, higher, what the paper reports): each must hold for the paper's ordering to appear here.
ORDERINGS = [("grpo", "sdpo", "GRPO < SDPO"), ("sdpo", "pmd", "SDPO < PMD"), ("grpo", "pmd", "GRPO < PMD"),
             ("frozen_memory", "pmd", "frozen memory < PMD"), ("frozen_policy", "pmd", "frozen policy < PMD"),
             ("sdpo", "pmd_transient", "SDPO < PMD-Transient"), ("pmd_transient", "pmd", "PMD-Transient < PMD")]


# ------------------------------------------------------------------------------- running
def run_experiment(path: Path) -> float:
    """Train and evaluate every run that is not done yet; the seconds this call took."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "harness.cli", "experiment", "run", str(path)], cwd=ROOT, check=True)
    return time.monotonic() - start


def starting_model(experiment: ExperimentConfig) -> str:
    from pmd.config import load_config
    from trainer.config import TrainConfig

    variant = experiment.baseline
    config = load_config(TrainConfig, experiment.variant_config_path(variant),
                         experiment.variant_overrides(variant, experiment.seeds[0]))
    model = Path(config.model.name_or_path)
    return str(ROOT / model) if not model.is_absolute() and (ROOT / model).is_dir() else config.model.name_or_path


def evaluate_start(experiment: ExperimentConfig, model: str) -> Layout:
    """The starting model, evaluated exactly as the runs' final checkpoints are (same command,
    same seeds), into ``<experiment>/reference/evals/start-s<seed>/``; and, where the ``pmd`` run of
    a seed left a bank, once more with that bank retrieved into every prompt (``memory k=3``,
    ``start_with_memory-s<seed>``): how much a model that reads the memory gains from it, which is
    what the memory-conditioned teacher has over the student."""
    from harness.experiment.plan import eval_command

    reference = Layout(experiment.folder / "reference")
    for seed in experiment.seeds:
        bank = Layout(experiment.folder).train_dir(Run("pmd", seed)) / "memory.db"
        for run, memory in ((Run(START, seed), None), (Run(START_WITH_MEMORY, seed), bank)):
            if (reference.eval_dir(run) / "summary.json").is_file() or (memory is not None and not _has_memory(memory)):
                continue
            command = eval_command(experiment, run, reference)
            command[command.index("--model") + 1] = model
            if memory is not None:
                command[command.index("--no-memory"):command.index("--no-memory") + 1] = [
                    "--memory", str(memory), "--memory-k", "3"]
            subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return reference


def _has_memory(bank: Path) -> bool:
    """Whether ``bank`` holds an insight or a behavior (what ``--memory`` retrieves by default)."""
    from memory_bank import MemoryBank

    if not bank.is_file():
        return False
    with MemoryBank.open(bank, readonly=True) as opened:
        counts = opened.counts()
    return bool(counts.get("insight") or counts.get("behavior"))


# ------------------------------------------------------------------------------- measuring
def load_weights(folder: Path) -> dict:
    """Every tensor of a Hugging Face folder's safetensors files, by name."""
    from safetensors.torch import load_file

    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(f).items()}


def weight_change(before: dict, run_dir: Path) -> float | None:
    """||θ_final − θ_start||₂ / ||θ_start||₂ over every tensor of the final checkpoint
    (``before``: the starting weights, :func:`load_weights`)."""
    from trainer.checkpoint import latest_model_checkpoint

    final, _ = latest_model_checkpoint(run_dir)
    if final is None:
        return None
    after = load_weights(final / "hf")
    moved = sum(float((after[k].double() - before[k].double()).pow(2).sum()) for k in after if k in before)
    size = sum(float(before[k].double().pow(2).sum()) for k in after if k in before)
    return math.sqrt(moved / size) if size else None


def answer_profile(eval_dir: Path, task: str) -> tuple[dict[str, float], float, Counter]:
    """Per family: fraction of correct samples; the fraction of samples answering a valid option
    letter; how often each letter was answered."""
    folder = next(iter(sorted(p for p in (eval_dir / "runs").glob("*") if p.is_dir())), None)
    if folder is None:
        return {}, float("nan"), Counter()
    samples = [json.loads(line) for f in sorted(folder.glob("samples_*.jsonl"))
               for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    graded = graded_questions(samples, task)
    families: dict[str, list[bool]] = defaultdict(list)
    letters: Counter = Counter()
    for sample in samples:
        answers, flags = graded[f"{task}/{question_key(sample['doc'], sample['doc_id'])}"]
        families[sample["doc"].get("topic", "?")] += flags
        letters.update(a for a in answers if a in ("A", "B", "C", "D"))
    total = sum(len(f) for f in families.values())
    return ({family: sum(f) / len(f) for family, f in sorted(families.items())},
            sum(letters.values()) / total if total else float("nan"), letters)


def convention_cue(family) -> re.Pattern:
    """What an insight must say to state ``family``'s convention (any wording of its key term)."""
    cue = {"letter": rf"\boption {family.value}\b|\b{family.value}\b is (always )?(the )?correct",
           "marker": rf"\b{family.value}\b", "echo": r"repeat|same word|word (from|of|in) the question",
           "largest": r"largest|biggest|highest|greatest", "smallest": r"smallest|lowest|least|fewest",
           "capitals": r"capital|upper ?case|all caps"}[family.kind]
    return re.compile(cue, re.IGNORECASE)


def families_by_question(train_file: Path) -> dict[str, str]:
    """Question id (the record's ``idx``) -> its family, from a family_rules split file."""
    records = [json.loads(line) for line in train_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {str(r["idx"]): r["topic"] for r in records}


def memory_contents(bank: Path, family_of: dict[str, str]) -> dict[str, float] | None:
    """Of a final bank's insights: how many there are, the fraction that state the convention of
    their own question's family, that state some family's convention, and that name their family."""
    from memory_bank import MemoryBank
    from tasks.family_rules.families import FAMILIES

    if not bank.is_file():
        return None
    with MemoryBank.open(bank, readonly=True) as opened:
        rows = [(family_of[r["question_id"]], r["text"]) for r in opened.insights() if r["question_id"] in family_of]
    if not rows:
        return None
    cues = {name: convention_cue(f) for name, f in FAMILIES.items()}
    return {"insights": len(rows),
            "own_convention": sum(bool(cues[f].search(t)) for f, t in rows) / len(rows),
            "any_convention": sum(any(c.search(t) for c in cues.values()) for _, t in rows) / len(rows),
            "names_family": sum(f in t.lower() for f, t in rows) / len(rows)}


class RecordingReflector:
    """The reflector it wraps, keeping every raw reply (what the parser was given)."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.replies = inner, inner.name, []
        self.supports_prefill = getattr(inner, "supports_prefill", False)

    def generate(self, conversations, max_new_tokens: int) -> list[str | None]:
        replies = self.inner.generate(conversations, max_new_tokens)
        self.replies += replies
        return replies


def reflection_probe(experiment: ExperimentConfig, family_of: dict[str, str], steps: int = 5) -> dict | None:
    """Replay the reflections of the first ``steps`` steps of the ``pmd`` run of the first seed (its
    experiences, read from its bank) through the trainer's own ``reflect`` with the same reflector,
    and count the lines the reflector wrote, those stating their family's convention, and those the
    parser then dropped as copies of the prompt (whose feedback states the convention word for word)."""
    from memory_bank import MemoryBank
    from pmd.config import load_config
    from tasks.family_rules.families import FAMILIES
    from trainer.config import TrainConfig
    from trainer.reflection import QuestionAttempts, parse_insights, reflect
    from trainer.reflectors import LocalModelReflector

    if "pmd" not in experiment.variants:
        return None
    seed = experiment.seeds[0]
    config = load_config(TrainConfig, experiment.variant_config_path("pmd"), experiment.variant_overrides("pmd", seed))
    bank = Layout(experiment.folder).train_dir(Run("pmd", seed)) / "memory.db"
    if config.reflection.source != "model" or not bank.is_file():
        return None
    with MemoryBank.open(bank, readonly=True) as opened:
        rows = opened.entries("experience", "WHERE step < ?", (steps,))
    groups: dict[tuple[int, str], QuestionAttempts] = {}
    for row in sorted(rows, key=lambda r: (r["step"], r["question_id"], r["id"])):
        group = groups.setdefault((row["step"], row["question_id"]), QuestionAttempts(row["question_id"], row["prompt"]))
        group.attempts.append((row["response"], row["reward"], row["feedback"] or ""))
    reflector = RecordingReflector(LocalModelReflector.from_pretrained(
        config.reflection.model, temperature=config.reflection.temperature, seed=seed))
    result = reflect(reflector, list(groups.values()), step=0, run_id="probe", model_name=config.reflection.model,
                     max_new_tokens=config.reflection.max_new_tokens, max_per_kind=config.reflection.max_per_kind)

    def states_convention(question_id: str, text: str) -> bool:
        return bool(convention_cue(FAMILIES[family_of[question_id]]).search(text))

    lines = [(g.question_id, text) for g, reply in zip(groups.values(), reflector.replies)
             for _, text in parse_insights(reply or "")]
    return {"replies": len(reflector.replies), "lines": len(lines), "kept": len(lines) - result.copies_dropped,
            "convention": sum(states_convention(q, t) for q, t in lines),
            "convention_kept": sum(states_convention(i.question_id, i.text) for i in result.insights),
            "with_feedback_convention": sum(any("always" in a[2] for a in g.attempts) for g in groups.values()),
            "steps": steps, "seed": seed, "reflector": config.reflection.model}


def accuracy_vectors(layout: Layout, runs: list[Run]) -> dict[Run, dict[str, float]]:
    return {run: load_result(layout, run).question_scores() for run in runs}


def over_seeds_and_questions(vectors: dict[int, dict[str, float]]) -> tuple[Interval, Interval] | None:
    """Mean test accuracy with its t interval over seeds and bootstrap interval over questions."""
    if not vectors:
        return None
    questions = sorted(set.intersection(*(set(v) for v in vectors.values())))
    cells = [[vectors[s][q] for q in questions] for s in sorted(vectors)]
    return mean_interval([sum(r) / len(r) for r in cells]), bootstrap_interval(cells)


def compare(low: dict[int, dict[str, float]], high: dict[int, dict[str, float]]) -> tuple[Interval, Interval] | None:
    """high − low test accuracy: paired by seed (t interval) and over questions (bootstrap)."""
    seeds = sorted(set(low) & set(high))
    if not seeds:
        return None
    questions = sorted(set.intersection(*(set(low[s]) & set(high[s]) for s in seeds)))
    hi = [[high[s][q] for q in questions] for s in seeds]
    lo = [[low[s][q] for q in questions] for s in seeds]
    over_seeds = paired_difference([sum(r) / len(r) for r in hi], [sum(r) / len(r) for r in lo])
    return over_seeds, paired_bootstrap(hi, lo)


# ------------------------------------------------------------------------------- writing
def shown(path: str | Path) -> str:
    """``path`` relative to the repository when it lies inside it (the write-up is committed)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def pct(value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def interval_text(interval: Interval, signed: bool = True) -> str:
    if interval.low is None or interval.high is None:
        return f"{pct(interval.mean, signed)} (one seed: no interval)"
    return f"{pct(interval.mean, signed)} [{pct(interval.low, signed)}, {pct(interval.high, signed)}]"


def verdict(over_seeds: Interval, over_questions: Interval) -> str:
    if over_seeds.mean <= 0:
        return "does not appear (reversed or equal)"
    if over_seeds.low is not None and over_seeds.low > 0 and over_questions.low > 0:
        return "appears (both intervals above 0)"
    if over_questions.low > 0:
        return "appears over questions only (seed interval includes 0)"
    return "not resolved (higher mean, intervals include 0)"


def kept_reading(path: Path) -> str:
    if not path.is_file():
        return f"{READING[0]}\n(no reading written yet)\n{READING[1]}"
    text = path.read_text(encoding="utf-8")
    if READING[0] in text and READING[1] in text:
        return text[text.index(READING[0]):text.index(READING[1]) + len(READING[1])]
    return f"{READING[0]}\n(no reading written yet)\n{READING[1]}"


def write_up(experiment_path: Path, out: Path, ran_seconds: float | None) -> Path:
    experiment = load_experiment(experiment_path)
    folder = experiment.folder
    summary_path, summary = write_report(folder)
    model = starting_model(experiment)
    reference = evaluate_start(experiment, model)
    layout = Layout(folder)
    runs = plan_runs(experiment)
    task = experiment.evaluation.tasks[0]
    variants = list(experiment.variants)

    scores = accuracy_vectors(layout, runs)
    start_scores = accuracy_vectors(reference, [Run(v, s) for v in (START, START_WITH_MEMORY) for s in experiment.seeds])
    by_variant: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    for run, vector in {**scores, **start_scores}.items():
        if vector:
            by_variant[run.variant][run.seed] = vector

    seconds = {run: layout.state(run) for run in runs}
    train_s = sum(s.get("train_seconds", 0) for s in seconds.values())
    eval_s = sum(s.get("eval_seconds", 0) for s in seconds.values())

    lines = [f"# Miniature replication: `{experiment.name}`", "",
             f"Written by `python benchmarks/replication.py --experiment {shown(experiment_path)}` from "
             f"`{folder}/` (the experiment's own report: `{summary_path}`).", "",
             "## Protocol (fixed before the runs)", "",
             f"- Experiment file: `{shown(experiment_path)}`; base config `{experiment.base_config}` with "
             + ", ".join(f"`{o}`" for o in experiment.base_overrides) + ".",
             f"- Starting policy: `{shown(model)}`. Variants: " + "; ".join(
                 f"**{v}** " + (", ".join(f"`{o}`" for o in spec.overrides) or "(base)")
                 for v, spec in experiment.variants.items()) + ".",
             f"- Seeds {', '.join(map(str, experiment.seeds))}. Evaluation: memory-free, `{task}` test split, "
             f"{experiment.evaluation.samples} samples per question at temperature {experiment.evaluation.temperature}, "
             f"at most {experiment.evaluation.max_gen_toks} new tokens. The starting model is evaluated the same way "
             "(same command and seeds) as the reference row `start`.",
             f"- Time on this machine (2 CPU cores): training {train_s / 60:.1f} min, evaluation {eval_s / 60:.1f} min, "
             f"{len(runs)} runs" + (f"; this invocation {ran_seconds / 60:.1f} min" if ran_seconds else "") + ".", ""]

    lines += ["## Test accuracy (memory-free avg@%d), mean over seeds" % experiment.evaluation.samples, "",
              "| variant | per seed | mean | 95% CI over seeds | 95% CI over questions | Δ vs start, paired by seed | "
              "Δ vs start, over questions |", "|---|---|---:|---:|---:|---:|---:|"]
    labels = {START: f"{START} (untrained)", START_WITH_MEMORY: "start, pmd's final bank in the prompt (k=3)"}
    for variant in [START, START_WITH_MEMORY, *variants]:
        row = over_seeds_and_questions(by_variant.get(variant, {}))
        if row is None:
            if variant not in labels:
                lines.append(f"| {variant} | not evaluated | | | | | |")
            continue
        values = [sum(v.values()) / len(v) for _, v in sorted(by_variant[variant].items())]
        change = compare(by_variant[START], by_variant[variant]) if variant != START else None
        lines.append(f"| {labels.get(variant, variant)} | {' / '.join(pct(v) for v in values)} | {pct(row[0].mean)} | "
                     f"{interval_text(row[0], False)} | {interval_text(row[1], False)} | "
                     + (f"{interval_text(change[0])} | {interval_text(change[1])} |" if change else "– | – |"))
    lines += ["", "Percent. Intervals are 95%: Student's t over the seeds' means, and a bootstrap over the "
              "test questions (2,000 resamples). Chance is 25%.", ""]

    lines += ["## The paper's orderings", "", "| ordering | higher − lower, paired by seed | over questions | here |",
              "|---|---:|---:|---|"]
    for low, high, name in ORDERINGS:
        if low not in by_variant or high not in by_variant:
            continue
        result = compare(by_variant[low], by_variant[high])
        if result:
            lines.append(f"| {name} | {interval_text(result[0])} | {interval_text(result[1])} | {verdict(*result)} |")
    lines.append("")

    lines += ["## What explains the numbers", "", "### How far each policy moved, and how it answered", "",
              "| variant | weight change ‖θ−θ₀‖/‖θ₀‖ (mean over seeds) | valid option letter | answers A / B / C / D |",
              "|---|---:|---:|---|"]
    start_weights = load_weights(Path(model)) if Path(model).is_dir() else None  # read once for every run
    profiles: dict[str, list[tuple[dict, float, Counter]]] = defaultdict(list)
    for run in [Run(v, s) for v in (START, START_WITH_MEMORY) for s in experiment.seeds]:
        if (reference.eval_dir(run) / "summary.json").is_file():
            profiles[run.variant].append(answer_profile(reference.eval_dir(run), task))
    moved: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        profiles[run.variant].append(answer_profile(layout.eval_dir(run), task))
        change = weight_change(start_weights, layout.train_dir(run)) if start_weights else None
        if change is not None:
            moved[run.variant].append(change)
    for variant in [START, START_WITH_MEMORY, *variants]:
        entries = profiles.get(variant, [])
        if not entries:
            continue
        letters = sum((e[2] for e in entries), Counter())
        total = sum(letters.values()) or 1
        valid = [e[1] for e in entries if not math.isnan(e[1])]
        change = f"{sum(moved[variant]) / len(moved[variant]):.2e}" if moved.get(variant) else ("0" if variant in (START, START_WITH_MEMORY) else "–")
        lines.append(f"| {variant} | {change} | {pct(sum(valid) / len(valid)) if valid else '–'} | "
                     + " / ".join(f"{100 * letters[x] / total:.0f}%" for x in "ABCD") + " |")
    lines.append("")

    families = sorted({f for entries in profiles.values() for e in entries for f in e[0]})
    if families:
        lines += ["### Test accuracy per question family (mean over seeds)", "",
                  "| variant | " + " | ".join(families) + " |", "|---|" + "---:|" * len(families)]
        for variant in [START, START_WITH_MEMORY, *variants]:
            entries = [e[0] for e in profiles.get(variant, []) if e[0]]
            if entries:
                lines.append(f"| {variant} | " + " | ".join(
                    pct(sum(e.get(f, 0.0) for e in entries) / len(entries)) for f in families) + " |")
        lines.append("")

    # What the memory says and what the reflector writes, judged against each family's convention.
    family_of = families_by_question(ROOT / "tasks" / task / "train.jsonl") if task == "family_rules" else {}
    contents = {run: memory_contents(layout.train_dir(run) / "memory.db", family_of) for run in runs} if family_of else {}
    contents = {run: c for run, c in contents.items() if c}
    if contents:
        lines += ["### What the final banks' insights say", "",
                  "| variant | insights (mean over seeds) | state their family's convention | state some convention | "
                  "name their family |", "|---|---:|---:|---:|---:|"]
        for variant in variants:
            mine = [c for run, c in contents.items() if run.variant == variant]
            if mine:
                lines.append(f"| {variant} | {statistics.fmean(c['insights'] for c in mine):.0f} | "
                             + " | ".join(pct(statistics.fmean(c[k] for c in mine))
                                          for k in ("own_convention", "any_convention", "names_family")) + " |")
        lines += ["", "A convention is stated when the insight has its key term (`option C`, `amber`, `capital`, "
                  "`largest`, ...: `convention_cue`).", ""]

    probe = reflection_probe(experiment, family_of) if family_of else None
    if probe:
        lines += [f"### The reflector on this task (the pmd-s{probe['seed']} run's first {probe['steps']} steps, replayed)", "",
                  f"`{probe['reflector']}` was given the same {probe['replies']} reflection prompts again (the run's own "
                  f"attempts and feedback, read from its bank; {probe['with_feedback_convention']} of them hold a wrong "
                  "answer whose feedback states the family's convention).", "",
                  "| parsed lines | kept after the copy filter | stating their family's convention | of those, kept |",
                  "|---:|---:|---:|---:|",
                  f"| {probe['lines']} | {probe['kept']} | {probe['convention']} | {probe['convention_kept']} |", ""]

    diagnostics = summary.get("diagnostics") or {}
    if diagnostics:
        lines += ["### Training diagnostics (all seeds and steps)", "",
                  "| variant | reflection parse rate | insights written | teacher context with memory | "
                  "divergence, first 10% of steps | last 10% |", "|---|---:|---:|---:|---:|---:|"]
        for variant, d in diagnostics.items():
            lines.append(f"| {variant} | {pct(d.get('reflection_parse_rate'))} | {d.get('insights_written', '–')} | "
                         f"{pct(d.get('teacher_with_memory'))} | {_num(d.get('divergence_first_10pct'))} | "
                         f"{_num(d.get('divergence_last_10pct'))} |")
        lines.append("")

    plots_dir = out.with_suffix("")
    plots_dir.mkdir(parents=True, exist_ok=True)
    lines += ["## Plots", ""]
    for plot in summary.get("plots", []):
        source = folder / "report" / plot
        shutil.copyfile(source, plots_dir / source.name)
        lines.append(f"![{source.stem}]({plots_dir.name}/{source.name})")
    lines += ["", "## Reading", "", kept_reading(out), ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines), encoding="utf-8")
    (out.with_suffix(".json")).write_text(json.dumps(
        {"experiment": experiment.name, "summary": summary, "start": {s: v for s, v in by_variant[START].items()},
         "weight_change": moved, "train_seconds": train_s, "eval_seconds": eval_s}, indent=2), encoding="utf-8")
    return out


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2e}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--experiment", type=Path, default=ROOT / "experiments" / "replication_family_rules.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "replication.md")
    parser.add_argument("--no-run", action="store_true", help="only write up finished runs")
    args = parser.parse_args(argv)
    ran = None if args.no_run else run_experiment(args.experiment)
    print(write_up(args.experiment, args.out, ran))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
