"""``pmd-harness score``: re-score saved responses with a task's verifier.

Input: JSON lines ``{"id": ..., "response": "..."}``. Output: one JSON line per valid input line,
in input order, ``{"id", "reward", "passed", "feedback"}``. A bad line (not JSON, missing fields,
an id the task does not have) is reported with its line number and skipped; a file with no valid
line at all is an error, and then no output is written. ``--output`` is checked before scoring.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .atomic_files import check_writable, write_atomically
from pmd.errors import reports_user_errors


def read_responses(path: Path, known_ids) -> tuple[list[tuple[int, str, str]], list[str]]:
    """Valid ``(line number, id, response)`` triples and one message per bad line."""
    items, problems = [], []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                problems.append(f"line {number}: not JSON ({err.msg})")
                continue
            if not isinstance(record, dict) or "id" not in record or "response" not in record:
                problems.append(f"line {number}: needs the fields \"id\" and \"response\"")
                continue
            qid, response = str(record["id"]), record["response"]
            if not isinstance(response, str):
                problems.append(f"line {number}: \"response\" must be a string")
            elif qid not in known_ids:
                problems.append(f"line {number}: unknown id {qid!r} for this task")
            else:
                items.append((number, qid, response))
    return items, problems


def check_output(output: Path, responses: Path) -> None:
    """``--output`` can be written and is not the responses file itself."""
    if output.resolve() == responses.resolve():
        raise ValueError(f"--output {output} is the --responses file itself; write the scores to another file")
    check_writable(output, "--output")


def no_valid_line_message(responses: Path, problems: list[str]) -> str:
    """One line for a responses file with nothing to score: empty, or every line bad."""
    if not problems:
        return (f"{responses} holds no responses (it is empty); write one JSON line per answer, "
                '{"id": ..., "response": "..."}')
    more = f" (and {len(problems) - 1} more bad lines)" if len(problems) > 1 else ""
    return (f"{responses} holds no valid response line: {problems[0]}{more}; each line must be "
            '{"id": ..., "response": "..."} with an id of this task')


@click.command()
@click.option("--task", "task_name", required=True, help="Task name, e.g. demo_mcq, sciknoweval_biology, demo_code.")
@click.option("--responses", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON lines with \"id\" and \"response\".")
@click.option("--data", type=click.Path(exists=True, path_type=Path), help="The task's data when not the default.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write scored JSON lines here (default: standard output).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel verifier processes (code tasks).")
@reports_user_errors
def score(task_name: str, responses: Path, data: Path | None, output: Path | None, workers: int | None) -> None:
    """Score saved responses with the same verifier training and evaluation use.

    \b
    Examples:
      pmd-harness score --task demo_mcq --responses answers.jsonl --output scored.jsonl
      pmd-harness score --task sciknoweval --data data/sciknoweval/biology --responses gen.jsonl
    """
    from tqdm import tqdm

    from tasks.registry import get_task

    if output is not None:
        check_output(output, responses)
    task = get_task(task_name)
    questions = task.load(data)
    items, problems = read_responses(responses, questions)
    if not items:
        raise ValueError(no_valid_line_message(responses, problems))
    for problem in problems:
        click.echo(f"{responses}: {problem} (skipped)", err=True)
    pairs = [(response, questions[qid]) for _, qid, response in items]
    if task.score_many is not None:
        verdicts = task.score_many(pairs, workers)
    else:
        verdicts = [task.score(r, q) for r, q in tqdm(pairs, desc="scoring", disable=len(pairs) < 200, file=sys.stderr)]
    lines = [json.dumps({"id": qid, **v.to_dict()}, ensure_ascii=False) + "\n" for (_, qid, _), v in zip(items, verdicts)]
    if output is not None:
        write_atomically(output, lambda handle: handle.writelines(lines))
    else:
        click.echo("".join(lines), nl=False)
    passed = sum(v.passed for v in verdicts)
    mean = sum(v.reward for v in verdicts) / len(verdicts) if verdicts else 0.0
    where = f" -> {output}" if output else ""
    click.echo(
        f"{task.name}: scored {len(verdicts)} responses{where}: mean reward {mean:.3f}, "
        f"{passed} passed; {len(problems)} bad lines skipped",
        err=output is None,
    )
