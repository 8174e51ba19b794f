"""Loading LiveCodeBench code-generation problems (hub dataset or local files) as typed objects.

Record format (``livecodebench/code_generation_lite``): ``question_title``, ``question_content``,
``platform``, ``question_id``, ``contest_id``, ``contest_date``, ``starter_code``, ``difficulty``,
``public_test_cases`` (JSON list of ``{input, output, testtype}``), ``private_test_cases`` (the same
JSON, or ``base64(zlib(pickle(json)))``) and ``metadata`` (JSON; ``func_name`` for functional tests).

The hub repository ships a loading script, which ``datasets`` >= 4 no longer runs; its pull-request
revision ``refs/pr/7`` holds a parquet conversion with one config per release tag (``release_v1`` ..
``release_v6``, ``release_latest``, ``v1`` .. ``v6``, ``v4_v5``, ...), used the same way by other
evaluation suites. SDPO (arXiv 2601.20802) loaded ``refs/pr/6`` (one config, all problems) and kept
problems dated 2025-02-01 .. 2025-04-30: ``load_hub(release=None, revision="refs/pr/6")``.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
import random
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Iterable, Mapping

from tasks.records import RecordError, json_kind, read_json_lines

HUB_PATH = "livecodebench/code_generation_lite"
HUB_REVISION = "refs/pr/7"
SDPO_WINDOW = (date(2025, 2, 1), date(2025, 4, 30))  # inclusive; LiveCodeBench v6's new problems
RECORD_HELP = ("each line is one JSON object with question_id, question_content, contest_date and "
               "public_test_cases / private_test_cases")


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # a data class, not something for pytest to collect
    input: str
    output: str
    testtype: str  # "stdin" or "functional"


@dataclass(frozen=True)
class CodeProblem:
    question_id: str
    title: str
    content: str
    platform: str
    date: datetime
    difficulty: str
    starter_code: str = ""
    func_name: str | None = None
    public_tests: tuple[TestCase, ...] = ()
    private_tests: tuple[TestCase, ...] = ()
    contest_id: str = ""
    metadata: dict = field(default_factory=dict, compare=False)

    @property
    def all_tests(self) -> tuple[TestCase, ...]:
        """Public then private tests: what evaluation runs."""
        return self.public_tests + self.private_tests

    @property
    def functional(self) -> bool:
        """LeetCode style: ``Solution().<func_name>(*args)`` rather than a stdin/stdout program."""
        return self.func_name is not None

    def messages(self) -> list[dict]:
        """The chat prompt in LiveCodeBench's format (see ``prompt.build_messages``)."""
        from tasks.livecodebench.prompt import build_messages  # noqa: PLC0415 (avoid an import cycle)

        return build_messages(self)


class _StringsOnly(pickle.Unpickler):
    """The compressed test payload is a pickled ``str``; refuse any object, so a crafted file
    cannot run code through pickle while being loaded."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} in test data")


_TESTTYPES = ("stdin", "functional")


def _test_case(raw, where: str) -> TestCase:
    if not isinstance(raw, dict):
        raise RecordError(f"{where}: a test is a JSON {json_kind(raw)}, not an object with input, output and testtype")
    missing = [name for name in ("input", "output") if name not in raw]
    if missing:
        raise RecordError(f"{where}: a test has no '{missing[0]}'; every test needs input, output and testtype")
    testtype = str(raw.get("testtype", "stdin"))
    if testtype not in _TESTTYPES:
        raise RecordError(f"{where}: testtype {testtype!r} is not one of {', '.join(_TESTTYPES)}")
    return TestCase(str(raw["input"]), str(raw["output"]), testtype)


def decode_tests(raw, where: str = "tests") -> tuple[TestCase, ...]:
    """Tests from a list, a JSON string, or LiveCodeBench's compressed string; ``""`` -> ().
    A payload that is none of these is a ``RecordError`` naming ``where`` (the field); a pickle of
    anything but a string is refused with ``pickle.UnpicklingError``."""
    if isinstance(raw, bytes):
        raw = raw.decode()
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return ()
        try:
            if not text.startswith("["):  # base64(zlib(pickle(json))), the private-test form
                text = _StringsOnly(io.BytesIO(zlib.decompress(base64.b64decode(text)))).load()
            raw = json.loads(text) if isinstance(text, str) else text
        except (ValueError, zlib.error, EOFError, TypeError) as err:
            raise RecordError(f"{where} could not be decoded ({type(err).__name__}: {str(err)[:80]}); expected a JSON "
                              "list of tests or LiveCodeBench's base64(zlib(pickle(json))) form") from None
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise RecordError(f"{where} is a JSON {json_kind(raw)}, not a list of tests")
    return tuple(_test_case(t, where) for t in raw)


def encode_private_tests(tests: Iterable[TestCase]) -> str:
    """The compressed form LiveCodeBench uses for private tests (for fixtures and exports)."""
    text = json.dumps([{"input": t.input, "output": t.output, "testtype": t.testtype} for t in tests])
    return base64.b64encode(zlib.compress(pickle.dumps(text))).decode()


def _parse_date(value) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=None)


def _required(record: Mapping, name: str, kind: type | None = None):
    """``record[name]``, present and not empty (and of type ``kind`` when given)."""
    value = record.get(name)
    if value is None or value == "":
        raise RecordError(f"field '{name}' is missing; {RECORD_HELP}")
    if kind is not None and not isinstance(value, kind):
        raise RecordError(f"field '{name}' must be a {kind.__name__}, got {json_kind(value)}")
    return value


def _metadata(record: Mapping) -> dict:
    metadata = record.get("metadata") or {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            raise RecordError("field 'metadata' is not valid JSON; it holds a JSON object such as "
                              '{"func_name": "twoSum"}') from None
    if not isinstance(metadata, Mapping):
        raise RecordError(f"field 'metadata' is a JSON {json_kind(metadata)}, not an object")
    return dict(metadata)


def _contest_date(record: Mapping) -> datetime:
    if record.get("contest_date") is None:
        raise RecordError(f"field 'contest_date' is missing; {RECORD_HELP}")
    try:
        return _parse_date(record["contest_date"])
    except (TypeError, ValueError):
        raise RecordError(f"field 'contest_date' is {record['contest_date']!r:.40}, not an ISO date "
                          "such as 2025-02-03T00:00:00") from None


def _tests_field(record: Mapping, name: str) -> tuple[TestCase, ...]:
    try:
        return decode_tests(record.get(name), f"field '{name}'")
    except pickle.UnpicklingError as err:
        raise RecordError(f"field '{name}' is not test data ({err}); re-export the problem") from None


def problem_from_record(record: Mapping) -> CodeProblem:
    """One problem from a record in the hub's format (a JSONL line, a parquet or datasets row);
    a record that cannot be one is a ``RecordError`` naming the field."""
    if not isinstance(record, Mapping):
        raise RecordError(f"a JSON {json_kind(record)}, not an object; {RECORD_HELP}")
    metadata = _metadata(record)
    func_name = metadata.get("func_name") or None
    problem = CodeProblem(
        question_id=str(_required(record, "question_id")), title=record.get("question_title") or "",
        content=_required(record, "question_content", str), platform=record.get("platform") or "",
        date=_contest_date(record), difficulty=record.get("difficulty") or "",
        starter_code=record.get("starter_code") or "", func_name=func_name,
        public_tests=_tests_field(record, "public_test_cases"), private_tests=_tests_field(record, "private_test_cases"),
        contest_id=str(record.get("contest_id", "")), metadata=metadata,
    )
    if not problem.all_tests:
        raise RecordError("fields 'public_test_cases' and 'private_test_cases' hold no tests; a problem needs "
                          "at least one test to be scored")
    if func_name is None and any(t.testtype == "functional" for t in problem.all_tests):
        raise RecordError("field 'metadata' has no func_name but the tests are functional; add "
                          '"func_name" (the Solution method to call) to metadata')
    return problem


def in_window(problems: Iterable[CodeProblem], start: date | str | None = None,
              end: date | str | None = None) -> list[CodeProblem]:
    """Problems whose contest date lies in [start, end], both inclusive, either bound optional."""
    lo = date.fromisoformat(start) if isinstance(start, str) else start
    hi = date.fromisoformat(end) if isinstance(end, str) else end
    return [p for p in problems if (lo is None or p.date.date() >= lo) and (hi is None or p.date.date() <= hi)]


def load_jsonl(path: str | Path) -> list[CodeProblem]:
    """Problems from a local JSON Lines file in the hub's record format; a bad line is an error
    naming the file, the line number and the field."""
    path = Path(path)
    if not path.is_file():
        what = "a folder, not a problem file" if path.is_dir() else "not found"
        raise FileNotFoundError(f"no problem file at {path} ({what}); check the path")
    problems, seen = [], {}
    for number, record in read_json_lines(path):
        try:
            problem = problem_from_record(record)
            if problem.question_id in seen:
                raise RecordError(f"field 'question_id' {problem.question_id!r} repeats line "
                                  f"{seen[problem.question_id]}; problem ids must be unique within a file")
        except RecordError as err:
            raise RecordError(f"{path}:{number}: not a LiveCodeBench record: {err}") from None
        seen[problem.question_id] = number
        problems.append(problem)
    return problems


def load_hub(release: str | None = "release_v6", start: date | str | None = SDPO_WINDOW[0],
             end: date | str | None = SDPO_WINDOW[1], *, path: str = HUB_PATH,
             revision: str | None = HUB_REVISION, split: str = "test", **kwargs) -> list[CodeProblem]:
    """Problems from the hub dataset (or any ``datasets.load_dataset`` path in the same format,
    e.g. a local folder of parquet files), restricted to the contest-date window [start, end].

    ``release`` is the config name (a release tag); None for a revision or folder without configs.
    Extra keyword arguments go to ``datasets.load_dataset`` (``cache_dir``, ``data_files``, ...).
    """
    import datasets  # noqa: PLC0415 (heavy; only this function needs it)

    if revision is not None:
        kwargs["revision"] = revision
    rows = datasets.load_dataset(path, release, split=split, **kwargs)
    return in_window((_hub_problem(row, number, path) for number, row in enumerate(rows, start=1)), start, end)


def _hub_problem(row: Mapping, number: int, path: str) -> CodeProblem:
    try:
        return problem_from_record(row)
    except RecordError as err:
        raise RecordError(f"{path}, row {number}: not a LiveCodeBench record: {err}") from None


def split_tests(problem: CodeProblem, seed: int = 0, fraction: float = 0.5) -> tuple[TestCase, ...]:
    """The training tests: a seeded random ``fraction`` of all the problem's tests (public and
    private pooled), at least one, in their original order — as SDPO's ``split_tests.py`` did
    (it kept ``max(1, int(n * 0.5))``). Evaluation uses ``problem.all_tests``. The choice depends
    only on (seed, question_id), not on load order or process, so it is reproducible anywhere.
    """
    tests = problem.all_tests
    if not tests:
        return ()
    keep = max(1, int(len(tests) * fraction))
    digest = hashlib.sha256(f"{seed}:{problem.question_id}".encode()).digest()
    chosen = sorted(random.Random(int.from_bytes(digest[:8], "big")).sample(range(len(tests)), keep))
    return tuple(tests[i] for i in chosen)
