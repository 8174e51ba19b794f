"""Loading SciKnowEval-format multiple-choice questions from local split files.

A split file is JSON Lines (despite a ``.json`` suffix in the SDPO release): one question per line
with ``idx``, ``prompt`` (question and "A: ..." option lines), ``system`` and ``answer``.

Every line is checked as it is read: valid JSON, an object, ``idx`` / ``prompt`` / ``answer``
present, ``prompt`` offering options, ``answer`` one of them, ``idx`` not repeated. A bad line is
one ``ValueError`` naming the file, the line number and the field, so ``pmd-train`` (``data.path``),
``pmd-harness score`` / ``eval`` and the lm-eval tasks all stop with the same clear line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tasks.records import RecordError, json_kind, read_json_lines

from .verifier import _OPTION_LINE  # the verifier's own notion of an option line

RECORD_HELP = "each line is one JSON object with idx, prompt (with 'A: ...' option lines) and answer (an option letter)"


@dataclass(frozen=True)
class MCQuestion:
    question_id: str
    system: str
    prompt: str
    answer: str
    letters: tuple[str, ...]
    topic: str = ""

    def messages(self) -> list[dict]:
        """Chat turns for the model: the task's system prompt, then the question."""
        return [{"role": "system", "content": self.system.strip()}, {"role": "user", "content": self.prompt}]


def _text_field(record: dict, name: str, *, required: bool) -> str:
    value = record.get(name)
    if value is None:
        if required:
            raise RecordError(f"field '{name}' is missing; {RECORD_HELP}")
        return ""
    if not isinstance(value, str):
        raise RecordError(f"field '{name}' must be a string, got {json_kind(value)} {value!r:.40}")
    return value


def _question_id(record: dict) -> str:
    value = record.get("idx")
    if value is None:
        raise RecordError(f"field 'idx' is missing; {RECORD_HELP}")
    if isinstance(value, bool) or not isinstance(value, (int, str)) or str(value).strip() == "":
        raise RecordError(f"field 'idx' must be a non-empty integer or string, got {value!r:.40}")
    return str(value)


def question_from_record(record) -> MCQuestion:
    """One question from a parsed record; ``RecordError`` names the field that is wrong."""
    if not isinstance(record, dict):
        raise RecordError(f"a JSON {json_kind(record)}, not an object; {RECORD_HELP}")
    question_id = _question_id(record)
    prompt = _text_field(record, "prompt", required=True)
    answer = _text_field(record, "answer", required=True).strip()
    letters = tuple(sorted(set(_OPTION_LINE.findall(prompt))))
    if not letters:
        raise RecordError("field 'prompt' has no options: add one 'A: ...' line per option (A, B, ...)")
    if answer not in letters:
        raise RecordError(f"field 'answer' is {answer!r}, not one of the options {', '.join(letters)}; "
                          "set it to the correct option letter")
    topic = record.get("topic", record.get("domain", ""))
    return MCQuestion(question_id=question_id, system=_text_field(record, "system", required=False), prompt=prompt,
                      answer=answer, letters=letters, topic=topic if isinstance(topic, str) else str(topic))


def load_split_file(path: str | Path) -> list[MCQuestion]:
    """Questions of one split file; a malformed line is an error naming the file, line and field."""
    path = Path(path)
    if not path.is_file():
        what = "a folder, not a question file" if path.is_dir() else "not found"
        raise FileNotFoundError(f"no question file at {path} ({what}); check the path")
    questions, seen = [], {}
    for number, record in read_json_lines(path):
        try:
            question = question_from_record(record)
            if question.question_id in seen:
                raise RecordError(f"field 'idx' {question.question_id!r} repeats line {seen[question.question_id]}; "
                                  "question ids must be unique within a file")
        except RecordError as err:
            raise RecordError(f"{path}:{number}: not a question record: {err}") from None
        seen[question.question_id] = number
        questions.append(question)
    return questions
