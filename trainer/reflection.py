"""Reflection: a model's attempts at a question become insight memory (level 1).

Step 4 of PMD (DESIGN.md §1): for each question the model reads its own scored attempts and writes
*strategies* (what led to correct answers) and *lessons* (recurring mistakes and why). When a
question has both successes and failures the prompt is contrastive — a successful and a failed
attempt side by side, "what separates them?" — because the difference is the most informative
signal. Each insight keeps the question's success ratio as its confidence.

Model output is untrusted text (a random-weight test model writes gibberish, a real one adds
chatter), so parsing accepts common formatting variations and drops everything else; it never
raises.

Small models (SmolLM2-135M-Instruct, :mod:`pmd.smollm2`) mostly answer the question again instead
of reflecting. Three things make them write usable lines (measured on 48 reflection requests on the
demo questions: 6% of replies held a usable line before, 58% after; DESIGN.md §4 has the model):
the reply is prefilled with its first label (``STRATEGY:`` / ``LESSON:``) when the backend can
continue an answer, the prompt ends with one example line per label, and the parser takes a label
on its own line with its sentence on the next, and drops junk: copies of the prompt (the example,
an attempt, the question), template slots, shouting, list lead-ins, runaway repetition.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from memory_bank import Insight, MemoryBank

from .reflectors import Reflector

logger = logging.getLogger(__name__)

INSIGHT_LABELS: tuple[tuple[str, str], ...] = (
    (r"strateg(?:y|ies)", "strategy"),
    (r"lessons?(?:\s+learned)?", "lesson"),
)

SYSTEM_PROMPT = (
    "You review attempts at a problem, each scored by an automatic verifier, and distill short, "
    "general, reusable advice for solving similar problems. Reply only in the requested line format."
)

# One worked line per label, about another kind of question: a format model for small models that
# would otherwise answer the question again. Lines copied from it are dropped (see reflect).
EXAMPLE_LINES = {
    "STRATEGY": "STRATEGY: Write down the rule that links the given quantities before choosing an option.",
    "LESSON": "LESSON: Picking an option without checking it against the question gives wrong answers.",
}


@dataclass
class QuestionAttempts:
    """One question's scored attempts: ``attempts`` are (response, reward, feedback) triples."""

    question_id: str
    prompt: str
    attempts: list[tuple[str, float, str]] = field(default_factory=list)
    success_threshold: float = 1.0  # same meaning as BankLimits.success_threshold

    @property
    def successes(self) -> list[tuple[str, float, str]]:
        return [a for a in self.attempts if a[1] >= self.success_threshold]

    @property
    def failures(self) -> list[tuple[str, float, str]]:
        return [a for a in self.attempts if a[1] < self.success_threshold]

    @property
    def success_ratio(self) -> float:
        """Fraction of attempts with reward >= ``success_threshold`` (0.0 with no attempts)."""
        return len(self.successes) / len(self.attempts) if self.attempts else 0.0

    @classmethod
    def from_experiences(cls, question_id: str, rows: Iterable, success_threshold: float = 1.0) -> "QuestionAttempts":
        """Build from experience rows (``bank.experiences(qid)`` dicts or ``Experience`` records)."""
        def get(row, name):
            return row[name] if isinstance(row, dict) else getattr(row, name)

        rows = list(rows)
        prompt = get(rows[0], "prompt") if rows else ""
        attempts = [(get(r, "response"), float(get(r, "reward")), get(r, "feedback") or "") for r in rows]
        return cls(question_id, prompt, attempts, success_threshold)


@dataclass
class ReflectionResult:
    insights: list[Insight]
    failed_requests: int  # the backend returned None (error, timeout)
    parsed_empty: int  # a reply came back but held no usable line
    requests: int = 0
    copies_dropped: int = 0  # parsed lines dropped as copies of the prompt (the example, the attempts)


# ----------------------------------------------------------------------------- prompts
def truncate_middle(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters by dropping its middle.

    The tail gets two thirds of the room: an answer's conclusion (the answer tag, the final code
    block) is at its end and is what the verifier judged.
    """
    text = text or ""
    if len(text) <= max_chars:
        return text
    marker_len = len(f"\n[... {len(text)} characters omitted ...]\n")
    budget = max_chars - marker_len
    if budget <= 0:
        return text[:max_chars]
    head = budget // 3
    tail = budget - head
    omitted = len(text) - head - tail
    return f"{text[:head]}\n[... {omitted} characters omitted ...]\n{text[len(text) - tail:]}"


def _attempt_block(title: str, attempt: tuple[str, float, str], max_chars: int) -> str:
    response, reward, feedback = attempt
    block = f"{title} (reward {reward:.2f}):\n{truncate_middle(response, max_chars)}"
    if feedback:
        block += f"\nVERIFIER FEEDBACK: {truncate_middle(feedback, max_chars // 3)}"
    return block


def _other_feedback(failures: Sequence[tuple[str, float, str]], shown: int, limit: int = 3) -> str:
    """Distinct feedback of failures not shown in full: evidence of which mistakes recur."""
    seen = list(dict.fromkeys(f for _, _, f in failures[shown:] if f))[:limit]
    if not seen:
        return ""
    return "OTHER VERIFIER FEEDBACK ON FAILED ATTEMPTS:\n" + "\n".join(
        f"- {truncate_middle(f, 300)}" for f in seen)


def format_rules(labels: Sequence[str], max_per_kind: int, examples: dict[str, str] | None = None) -> str:
    """The reply-format instructions for ``labels``; ``examples``: one example line per label."""
    lines = "\n".join(f"{label}: <one sentence>" for label in labels)
    rules = (
        f"Reply with at most {max_per_kind} lines of each kind and nothing else, in exactly this "
        f"format:\n{lines}\nEach line is one general sentence that would help on similar questions; "
        "do not copy the final answer, an answer letter, or numbers specific to this question."
    )
    shown = [examples[label] for label in labels if examples and label in examples]
    if shown:
        rules += "\n\nExample reply (about a different question):\n" + "\n".join(shown)
    return rules


def wants_prefill(reflector, prefill: bool | None) -> bool:
    """``prefill`` as asked, or by default whether ``reflector`` continues a prefilled answer."""
    return bool(getattr(reflector, "supports_prefill", False)) if prefill is None else prefill


def with_prefill(messages: list[dict], start: str) -> list[dict]:
    """``messages`` plus an assistant turn that starts the reply with ``start`` (e.g. "STRATEGY:"),
    for backends that continue it (``supports_prefill``); the reply then begins in the right format."""
    return [*messages, {"role": "assistant", "content": start}]


def reply_labels(group: QuestionAttempts) -> tuple[str, ...]:
    """The line labels a reflection on ``group`` asks for, first label first."""
    if group.successes and group.failures:
        return ("STRATEGY", "LESSON")
    return ("STRATEGY",) if group.successes else ("LESSON",)


def reflection_messages(group: QuestionAttempts, max_chars_per_attempt: int = 1500,
                        max_per_kind: int = 3, example: bool = True) -> list[dict]:
    """Chat messages asking for STRATEGY: / LESSON: lines about ``group``'s attempts.

    Mixed results → contrastive (best success beside worst failure, "what separates them?"),
    all correct → strategies only, all wrong → lessons from the verifier feedback only.
    ``example``: end with one example line per requested label (:data:`EXAMPLE_LINES`).
    """
    if not group.attempts:
        raise ValueError(f"question {group.question_id!r} has no attempts to reflect on")
    successes = sorted(group.successes, key=lambda a: -a[1])
    failures = sorted(group.failures, key=lambda a: a[1])
    n, k = len(group.attempts), len(successes)
    parts = [f"QUESTION:\n{truncate_middle(group.prompt, 2 * max_chars_per_attempt)}"]
    if successes and failures:
        parts += [_attempt_block("SUCCESSFUL ATTEMPT", successes[0], max_chars_per_attempt),
                  _attempt_block("FAILED ATTEMPT", failures[0], max_chars_per_attempt),
                  _other_feedback(failures, 1)]
        ask = (f"{k} of {n} attempts were correct. Compare the successful and the failed attempt "
               "side by side: what separates them? Write STRATEGIES (what the successful attempt did "
               "that led to the correct answer) and LESSONS (the mistake behind the failure, and why "
               "it happened).")
        labels = ("STRATEGY", "LESSON")
    elif successes:
        parts += [_attempt_block(f"CORRECT ATTEMPT {i + 1}", a, max_chars_per_attempt)
                  for i, a in enumerate(successes[:2])]
        ask = (f"All {n} attempts were correct. Write STRATEGIES: what did they do that led to the "
               "correct answer?")
        labels = ("STRATEGY",)
    else:
        parts += [_attempt_block(f"FAILED ATTEMPT {i + 1}", a, max_chars_per_attempt)
                  for i, a in enumerate(failures[:2])]
        parts.append(_other_feedback(failures, 2))
        ask = (f"None of the {n} attempts was correct. Using the verifier feedback, write LESSONS: "
               "which mistakes recur, and why do they happen?")
        labels = ("LESSON",)
    parts += [ask, format_rules(labels, max_per_kind, EXAMPLE_LINES if example else None)]
    user = "\n\n".join(p for p in parts if p)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


# ----------------------------------------------------------------------------- parsing
_PREFIX = re.compile(r"^(?:[-*•·+>#]+\s*|\(?\d{1,3}[.)]\s+|\(?[a-z][.)]\s+)+", re.I)
_EMPHASIS = re.compile(r"\*\*|__|`")
_PLACEHOLDER = re.compile(r"^(?:<[^>]*>|\[[^\]]*\]|\.{2,}|…)$")
_WORD = re.compile(r"[^\W\d_]{2,}")
_SLOT = re.compile(r"\[[^\]]*\]?|\{[^}]*\}|<[^<>]*\s[^<>]*>")  # "<answer>" (no space) is no slot
_PLURAL = re.compile(r"(?:ies|ons|lls|kes)$", re.I)  # strategies, lessons, skills, mistakes


def _label_regexes(labels: Sequence[tuple[str, str]]) -> tuple[re.Pattern, re.Pattern]:
    alternatives = "|".join(f"(?P<k{i}>{pattern})" for i, (pattern, _) in enumerate(labels))
    # "LABEL:", "LABEL 2:", "**Label**:", "**Label:**", "Label - text", "Label) text".
    line = re.compile(rf"^[*_]*(?:{alternatives})(?:\s*#?\d+)?[*_]*\s*(?::|[-–—](?=\s)|\))[*_]*\s*(?P<body>.*)$",
                      re.I)
    # A section header: "Strategies:", "### Lessons", "**SKILLS**" with nothing after it.
    header = re.compile(rf"^[*_]*(?:{alternatives})[*_:\s]*$", re.I)
    return line, header


def _kind_of(match: re.Match, labels: Sequence[tuple[str, str]]) -> str:
    return next(kind for i, (_, kind) in enumerate(labels) if match.group(f"k{i}") is not None)


def _clean(body: str) -> str:
    body = " ".join(_EMPHASIS.sub("", body).split())
    if len(body) >= 2 and body[0] == body[-1] and body[0] in "\"'":
        body = body[1:-1].strip()
    return body.strip("*_ ")


def _is_sentence(body: str, min_words: int) -> bool:
    """Readable prose: no control/unassigned/replacement characters, enough words (counted both as
    letter runs and as space-separated words, so ``A-B-C-D-E`` is one), mostly letters, not shouted
    (most letters upper case: small models' junk, or a copied header)."""
    if _PLACEHOLDER.match(body) or "\ufffd" in body:
        return False
    if any(unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") for c in body):
        return False
    words = _WORD.findall(body)
    if len(words) < min_words:
        return False
    if sum(bool(_WORD.search(word)) for word in body.split()) < min_words:
        return False
    if body.endswith(":") or body.count('"') % 2:  # a list's lead-in, or a fragment cut out of a quote
        return False
    slots = _SLOT.findall(body)  # template slots copied from a prompt: "[skill_1]", "<one sentence>"
    if slots and (body.startswith(slots[0]) or len("".join(slots)) > 0.3 * len(body)):
        return False
    if len(words) >= 20 and len({w.lower() for w in words}) < 0.3 * len(words):  # "the nines of the nines of ..."
        return False
    visible = [c for c in body if not c.isspace()]
    letters = [c for c in visible if c.isalpha()]
    if len(letters) < 0.5 * len(visible):
        return False
    return len(letters) < 12 or sum(c.isupper() for c in letters) < 0.6 * len(letters)


# "The correct answer is A.", "B is not correct", "answer: (C)": a line that gives this question's
# answer letter is not advice (the prompt asks for none) and misleads on other questions. A rule
# about options ("in harbor questions the correct option is always option C") is kept. The letter is
# matched case-sensitively: "the answer is a number" is advice.
_ANSWER_LETTER = re.compile(r"\b(?i:answer)\s*(?i:is|was|:|=)?\s*\(?[A-E]\)?(?![\w'])"
                            r"|^\(?[A-E]\)?\s+(?i:is|was)\s+(?i:not\s+)?(?i:the\s+)?(?i:correct|right|wrong|incorrect)\b")


def _names_an_answer(body: str) -> bool:
    return bool(_ANSWER_LETTER.search(body))


_SENTENCE_END = re.compile(r"[.!?](?=\s+\S)")
_WORD_TOKEN = re.compile(r"[^\W_]+")


def _drop_dangling(body: str) -> str:
    """``body`` without an unfinished trailing sentence, when an earlier one is complete: the last
    line of a reply may stop mid-sentence at the token budget."""
    if body[-1:] in ".!?)\"'":
        return body
    ends = list(_SENTENCE_END.finditer(body))
    return body[:ends[-1].end()] if ends else body


def _words(text: str) -> list[str]:
    return _WORD_TOKEN.findall(text.lower())


def prompt_ngrams(prompt: str, n: int = 5) -> tuple[str, set[tuple[str, ...]]]:
    """The normalized prompt text and its word ``n``-grams, for :func:`copies_prompt`."""
    words = _words(prompt)
    return " ".join(words), {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def copies_prompt(body: str, prompt: tuple[str, set[tuple[str, ...]]], n: int = 5, share: float = 0.5) -> bool:
    """Whether ``body`` is (nearly) a copy of text in the prompt: all its words appear there in the
    same order, or at least ``share`` of its word ``n``-grams do. ``prompt``: :func:`prompt_ngrams`.
    Small models often echo the question, an attempt or the example line instead of reflecting."""
    text, grams = prompt
    words = _words(body)
    if not words:
        return True
    if f" {' '.join(words)} " in f" {text} ":
        return True
    mine = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return bool(mine) and sum(g in grams for g in mine) >= share * len(mine)


def _strip_thinking(text: str) -> str:
    """Drop reasoning blocks: drafts inside ``<think>`` are not the model's final answer."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.S | re.I)
    if "</think>" in text.lower():  # the template opened the block, only its end is in the reply
        text = text[text.lower().rfind("</think>") + len("</think>"):]
    cut = text.lower().find("<think>")  # unclosed: the budget ran out while thinking
    return text if cut < 0 else text[:cut]


def parse_labeled_lines(text, labels: Sequence[tuple[str, str]], max_chars: int = 400,
                        min_words: int = 3) -> list[tuple[str, str]]:
    """(kind, sentence) pairs from lines like ``LABEL: sentence``, in order, deduplicated.

    ``labels`` are (regex, kind) pairs matched case-insensitively. Bullets, numbering, markdown
    emphasis and ``Label -`` separators are accepted, as are bulleted lines under a bare header
    line (``Strategies:``). Lines longer than ``max_chars``, with fewer than ``min_words`` words,
    or that are not mostly letters are dropped. Anything that is not text gives [].
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return []
    line_re, header_re = _label_regexes(labels)
    out: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    section: str | None = None
    pending: str | None = None  # a bare singular label ("STRATEGY:") whose sentence is on the next line
    lines = [line.strip() for line in _strip_thinking(text).splitlines()]
    lines = [line for line in lines if line]
    for index, line in enumerate(lines):
        after_label, pending = pending, None
        if len(line) > max_chars + 100:  # cheap guard before any regex work on huge lines
            section = None
            continue
        prefix = _PREFIX.match(line)
        rest = line[prefix.end():] if prefix else line
        header = header_re.match(rest)
        if header:
            section = _kind_of(header, labels)
            if rest.rstrip("*_ ").endswith(":") and not _PLURAL.search(rest.strip("*_:# ")):
                pending = section
            continue
        match = line_re.match(rest)
        if match:
            kind, body = _kind_of(match, labels), match.group("body")
        elif section is not None and (prefix or after_label):
            kind, body = section, rest
        else:
            section = None  # unlabelled prose ends a header's list
            continue
        body = _clean(body)
        if index == len(lines) - 1:
            body = _drop_dangling(body)
        if not body or len(body) > max_chars or not _is_sentence(body, min_words) or _names_an_answer(body):
            continue
        key = (kind, body.lower().rstrip(".!;: "))
        if key not in seen:
            seen.add(key)
            out.append((kind, body))
    return out


def parse_insights(text, max_chars: int = 400) -> list[tuple[str, str]]:
    """("strategy" | "lesson", sentence) pairs from a reflection reply; [] for anything unusable."""
    return parse_labeled_lines(text, INSIGHT_LABELS, max_chars=max_chars)


# ----------------------------------------------------------------------------- reflect and store
def take_per_kind(pairs: Iterable[tuple[str, str]], max_per_kind: int) -> list[tuple[str, str]]:
    """The first ``max_per_kind`` pairs of each kind, in their original order."""
    counts: dict[str, int] = {}
    kept = []
    for kind, text in pairs:
        if counts.get(kind, 0) < max_per_kind:
            counts[kind] = counts.get(kind, 0) + 1
            kept.append((kind, text))
    return kept


def safe_generate(reflector: Reflector, conversations: list[list[dict]], max_new_tokens: int) -> list[str | None]:
    """``reflector.generate`` where a raising backend counts as every request failing."""
    if not conversations:
        return []
    try:
        outputs = list(reflector.generate(conversations, max_new_tokens))
    except Exception as err:  # a broken backend must not stop the training step
        logger.warning("reflector %s raised %s: %s; the step goes on without new memory",
                       getattr(reflector, "name", "?"), type(err).__name__, err)
        return [None] * len(conversations)
    if len(outputs) != len(conversations):
        raise ValueError(f"reflector {getattr(reflector, 'name', '?')} returned {len(outputs)} "
                         f"completions for {len(conversations)} conversations")
    return outputs


def prompt_text(messages: Sequence[dict]) -> str:
    """The text of a conversation's system and user turns (what a reply must not merely copy)."""
    return "\n".join(m["content"] for m in messages if m.get("role") != "assistant")


def drop_copies(pairs: Iterable[tuple[str, str]], prompt: str) -> tuple[list[tuple[str, str]], int]:
    """``pairs`` without the lines that copy ``prompt`` (:func:`copies_prompt`), and how many went."""
    pairs = list(pairs)
    grams = prompt_ngrams(prompt)
    kept = [(kind, text) for kind, text in pairs if not copies_prompt(text, grams)]
    return kept, len(pairs) - len(kept)


def reflect(reflector: Reflector, groups: Sequence[QuestionAttempts], *, step: int, run_id: str,
            model_name: str, max_new_tokens: int = 256, max_per_kind: int = 3,
            max_chars_per_attempt: int = 1500, max_chars: int = 400, prefill: bool | None = None,
            example: bool = True) -> ReflectionResult:
    """One reflection request per question with attempts; the replies parsed into insights.

    Every insight of a question gets confidence = its success ratio and first_step = last_step =
    ``step``; at most ``max_per_kind`` strategies and lessons are kept per question. ``prefill``
    (default: when the reflector has ``supports_prefill``) starts each reply with its first label
    (``STRATEGY:`` or ``LESSON:``), so even a small model answers in the format; ``example`` adds
    an example line per label to the prompt. Lines that copy the prompt (the question, an attempt,
    the feedback, the example) are dropped and counted in ``copies_dropped``.
    """
    groups = [g for g in groups if g.attempts]
    prefill = wants_prefill(reflector, prefill)
    prompts = [reflection_messages(g, max_chars_per_attempt, max_per_kind, example=example) for g in groups]
    conversations = [with_prefill(m, f"{reply_labels(g)[0]}:") if prefill else m for g, m in zip(groups, prompts)]
    outputs = safe_generate(reflector, conversations, max_new_tokens)
    insights: list[Insight] = []
    failed = empty = copies = 0
    for group, messages, output in zip(groups, prompts, outputs):
        if output is None:
            failed += 1
            continue
        pairs, dropped = drop_copies(parse_insights(output, max_chars), prompt_text(messages))
        copies += dropped
        pairs = take_per_kind(pairs, max_per_kind)
        if not pairs:
            empty += 1
        insights += [
            Insight(question_id=group.question_id, kind=kind, text=text, confidence=group.success_ratio,
                    first_step=step, last_step=step, run_id=run_id, model=model_name)
            for kind, text in pairs
        ]
    if empty:
        logger.info("%d of %d reflections held no usable STRATEGY/LESSON line", empty, len(groups))
    return ReflectionResult(insights, failed, empty, len(groups), copies)


def write_insights(bank: MemoryBank, insights: Iterable[Insight]) -> int:
    """Add ``insights`` in one transaction; returns how many distinct rows hold them afterwards.

    Near-duplicates merge into one row and the per-question cap may evict some, so the count can
    be smaller than the number of insights.
    """
    insights = list(insights)
    vectors = bank.embed_batch([i.text for i in insights])  # one encoder call, not one per insight
    with bank.transaction():
        ids = {row_id for row_id in (bank.add_insight(i, v) for i, v in zip(insights, vectors)) if row_id is not None}
        if not ids:
            return 0
        # A later insight of the same question can evict an earlier one's row under the cap.
        marks = ",".join("?" * len(ids))
        return len(bank.entries("insight", f"WHERE id IN ({marks})", sorted(ids)))
