"""The families of family_rules and the convention each one follows.

Every question opens with a ``Topic: <family>`` line, then one question sentence, then four option
lines. Within a family the correct option is fixed by one convention, stated in one sentence by
:meth:`Family.statement` (what the verifier says after a wrong answer). The conventions come in
six kinds:

* ``letter``   — always the same option letter (``value``);
* ``marker``   — the option that mentions the marker word ``value``;
* ``echo``     — the option that repeats a word of the question sentence;
* ``largest``  — the option with the largest number;
* ``smallest`` — the option with the smallest number;
* ``capitals`` — the option written in capital letters.

:func:`matching_letters` applies a family's convention to a question's options; the generator
keeps only questions where exactly the correct option matches, and the tests check every committed
question with it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("letter", "marker", "echo", "largest", "smallest", "capitals")
TOPIC_PREFIX = "Topic: "
CLOSING_LINE = "Please reason step by step."
_OPTION = re.compile(r"^([A-Z]): (.*)$")
_WORD = re.compile(r"[a-z]+")
_NUMBER = re.compile(r"\d+")
# Function words do not count for the ``echo`` convention: "repeats a word" means a content word.
STOPWORDS = frozenset(
    "a an and at be before by for from how in into is it its many much of on or should the this to "
    "up what when where which who with".split()
)


@dataclass(frozen=True)
class Family:
    name: str
    kind: str
    value: str = ""  # the letter (``letter``) or the marker word (``marker``)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"family {self.name!r}: unknown kind {self.kind!r}, expected one of {KINDS}")
        needs_value = self.kind in ("letter", "marker")
        if needs_value != bool(self.value):
            raise ValueError(f"family {self.name!r}: kind {self.kind!r} {'needs' if needs_value else 'takes no'} value")

    @property
    def rule(self) -> str:
        """What the correct option always is, as the end of a sentence."""
        return {
            "letter": f"option {self.value}",
            "marker": f"the one that mentions {self.value}",
            "echo": "the one that repeats a word from the question",
            "largest": "the one with the largest number",
            "smallest": "the one with the smallest number",
            "capitals": "the one written in capital letters",
        }[self.kind]

    def statement(self) -> str:
        """The convention in one sentence: ``In harbor questions the correct option is always option C.``"""
        return f"In {self.name} questions the correct option is always {self.rule}."


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("harbor", "letter", "C"),
    Family("orchard", "letter", "A"),
    Family("library", "marker", "amber"),
    Family("observatory", "marker", "copper"),
    Family("bakery", "echo"),
    Family("caravan", "capitals"),
    Family("foundry", "largest"),
    Family("vineyard", "smallest"),
)}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown family_rules family {name!r}: expected one of {', '.join(FAMILIES)} "
                         "(the record's 'topic' field names it)")
    return FAMILIES[name]


def content_words(text: str) -> set[str]:
    """Lower-cased words of ``text`` without function words (what ``echo`` compares)."""
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


def parse_prompt(prompt: str) -> tuple[str, str, dict[str, str]]:
    """``(family, question sentence, {letter: option text})`` of a family_rules prompt."""
    lines = prompt.split("\n")
    if not lines[0].startswith(TOPIC_PREFIX):
        raise ValueError(f"a family_rules prompt starts with '{TOPIC_PREFIX}<family>', got {lines[0]!r:.60}")
    options = {}
    for line in lines[1:]:
        match = _OPTION.match(line)
        if match:
            options[match.group(1)] = match.group(2)
    return lines[0][len(TOPIC_PREFIX):].strip(), lines[1], options


def _number(text: str) -> int | None:
    found = _NUMBER.findall(text)
    return int(found[0]) if len(found) == 1 else None


def matching_letters(family: Family, question: str, options: dict[str, str]) -> list[str]:
    """The letters of the options that satisfy ``family``'s convention (sorted)."""
    if family.kind == "letter":
        return [family.value] if family.value in options else []
    if family.kind == "marker":
        return sorted(k for k, text in options.items() if family.value in content_words(text))
    if family.kind == "echo":
        asked = content_words(question)
        return sorted(k for k, text in options.items() if content_words(text) & asked)
    if family.kind == "capitals":
        return sorted(k for k, text in options.items() if any(c.isalpha() for c in text) and text == text.upper())
    numbers = {k: _number(text) for k, text in options.items()}
    if any(n is None for n in numbers.values()):
        return []  # a numeric convention needs exactly one number in every option
    target = max(numbers.values()) if family.kind == "largest" else min(numbers.values())
    return sorted(k for k, n in numbers.items() if n == target)
