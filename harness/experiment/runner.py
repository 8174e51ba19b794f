"""``pmd-harness experiment run``: train and evaluate every run of an experiment.

Resumable: an evaluated run is skipped, a trained one only evaluated, a started one resumed by
``pmd-train --resume`` from its newest intact checkpoint (so a killed experiment loses the steps
since that run's last checkpoint, ``checkpoint.every``). Several jobs may share one experiment
folder (a cluster array job, or two shells): each run is worked on under an exclusive ``flock``
of ``locks/<run>.lock``, which the training and evaluation processes inherit, so a run is never
worked on twice at once, even when a killed job's child is still running. A job skips runs held
by another and says so at the end.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from pmd.config import save_yaml

from .plan import Layout, Run, eval_command, train_command
from .spec import ExperimentConfig


class RunFailed(RuntimeError):
    """A run's training or evaluation exited non-zero; the message names its log."""


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)       # already evaluated
    held: list[str] = field(default_factory=list)          # another job has the lock


@contextmanager
def run_lock(path):
    """The file descriptor of an exclusive lock on ``path``, or None when another job holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield fd
    finally:
        os.close(fd)


def _last_line(path) -> str:
    try:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][-300:] if lines else ""


def _run_phase(command: list[str], log, lock_fd: int, what: str) -> float:
    """Run one phase with its output in ``log``; returns seconds; RunFailed on a non-zero exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        # The lock's descriptor goes to the child: the run stays locked while either lives.
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, pass_fds=(lock_fd,)).returncode
    if code != 0:
        raise RunFailed(f"{what} exited with {code}; see {log} (last line: {_last_line(log)})")
    return time.perf_counter() - start


def run_experiment(experiment: ExperimentConfig, runs: list[Run], *, echo: Callable[[str], None] = print,
                   progress: bool = True) -> Outcome:
    """Train and evaluate ``runs`` (see the module docstring); stops at the first failed run."""
    from tqdm import tqdm

    layout = Layout(experiment.folder)
    layout.root.mkdir(parents=True, exist_ok=True)
    save_yaml(experiment, layout.root / "experiment.yaml")
    outcome = Outcome()
    todo = []
    for run in runs:
        (outcome.skipped if layout.status(run) == "evaluated" else todo).append(run)
    if outcome.skipped:
        echo(f"{len(outcome.skipped)} of {len(runs)} runs already evaluated: skipped")
    bar = tqdm(total=len(todo), desc=f"experiment {experiment.name}", unit="run", disable=not progress)
    try:
        for run in todo:
            with run_lock(layout.lock(run)) as fd:
                if fd is None:
                    outcome.held.append(run.name)
                elif layout.status(run) == "evaluated":  # another job finished it meanwhile
                    outcome.skipped.append(run.name)
                else:
                    _train_and_evaluate(experiment, layout, run, fd, echo=bar.write if progress else echo)
                    outcome.done.append(run.name)
            bar.update(1)
    finally:
        bar.close()
    if outcome.held:
        echo(f"{len(outcome.held)} runs are being worked on by another job: {', '.join(outcome.held)}")
    return outcome


def _train_and_evaluate(experiment: ExperimentConfig, layout: Layout, run: Run, fd: int, *, echo) -> None:
    status = layout.status(run)
    if status != "trained":
        verb = "resuming" if status == "started" else "training"
        echo(f"{run.name}: {verb}")
        seconds = _run_phase(train_command(experiment, run, layout), layout.log(run, "train"), fd,
                             f"training {run.name}")
        layout.mark(run, trained=True, train_seconds=round(seconds, 1))
    echo(f"{run.name}: evaluating")
    command = eval_command(experiment, run, layout)
    if layout.eval_dir(run).exists():  # an earlier evaluation that never finished: replace it
        command.append("--overwrite")
    seconds = _run_phase(command, layout.log(run, "eval"), fd, f"evaluating {run.name}")
    layout.mark(run, evaluated=True, eval_seconds=round(seconds, 1))
    echo(f"{run.name}: done ({layout.state(run).get('train_seconds', 0):.0f} s training, {seconds:.0f} s evaluation)")
