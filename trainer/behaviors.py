"""Abstraction: clusters of related questions turn their insights into behavior memory (level 2).

Step 5 of PMD (DESIGN.md §1): every K steps the questions that have insights are embedded and
clustered; each cluster's insights are pooled and a model abstracts them into reusable *skills* and
*mistakes to avoid* that apply across the related questions. The bank merges a new behavior into a
near-duplicate one (support grows), so repeating the update as memory evolves strengthens recurring
behaviors instead of duplicating them.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from memory_bank import Behavior, MemoryBank

from .reflection import drop_copies, parse_labeled_lines, safe_generate, take_per_kind, wants_prefill, with_prefill
from .reflectors import Reflector

logger = logging.getLogger(__name__)

BEHAVIOR_LABELS: tuple[tuple[str, str], ...] = (
    (r"skills?", "skill"),
    # Longest spelling first so "Mistake to avoid:" is one label, not "Mistake" + "to avoid: ...".
    (r"mistakes?(?:[\s_-]+to[\s_-]+avoid)?|avoid", "mistake-to-avoid"),
)

SYSTEM_PROMPT = (
    "You distill advice learned on related problems into short, general, reusable behaviors. "
    "Reply only in the requested line format."
)

# One example line per label, off by default: the listed insights already show a small model what a
# line looks like, and SmolLM2-135M copied the example verbatim in a third of its replies (measured
# on 40 requests: 65% usable replies without it, 38% with it). Replies that copy it, or any other
# part of the instructions, are dropped (the insights themselves may be restated: a lone insight
# can be a behavior as it is).
EXAMPLE_REPLY = ("SKILL: Check each option against the facts the question gives before answering.\n"
                 "AVOID: Ending the reply without the answer in the required format.")
PREFILL = "SKILL:"
_INSIGHT_TAG = re.compile(r"^\((?:strategy|lesson)\)\s*", re.I)  # the "(kind)" marker of a listed insight


@dataclass
class BehaviorUpdate:
    clusters: dict[int, list[str]] = field(default_factory=dict)  # bank cluster id -> question ids
    behaviors_written: int = 0  # behaviors added or merged into an existing one
    failed_requests: int = 0
    parsed_empty: int = 0


def default_n_clusters(n: int) -> int:
    """max(1, round(sqrt(N / 2))) capped at N: a common rule of thumb for k in k-means."""
    return min(max(1, round(math.sqrt(n / 2))), max(n, 1))


def cluster_questions(embeddings: np.ndarray, n_clusters: int | None = None, seed: int = 0) -> np.ndarray:
    """k-means labels for ``embeddings`` ([N, dim]); labels numbered by first appearance.

    k defaults to :func:`default_n_clusters` and is capped by the number of distinct rows (k-means
    cannot fill more clusters than there are distinct points). ``n_init`` is fixed and the seed
    passed, so the same inputs always give the same labels.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    x = x.reshape(n, -1)
    k = default_n_clusters(n) if n_clusters is None else int(n_clusters)
    k = min(max(1, k), len(np.unique(x, axis=0)))
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    from sklearn.cluster import KMeans  # heavy import, only when clustering is needed

    raw = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    # Renumber by first appearance: label values then depend only on the partition, not on the
    # order k-means happened to find the centroids in.
    order = {label: i for i, label in enumerate(dict.fromkeys(raw.tolist()))}
    return np.array([order[label] for label in raw.tolist()], dtype=np.int64)


def fit_within(texts: Sequence[str], max_chars: int) -> int:
    """How many leading ``texts`` fit as ``- text`` lines within ``max_chars`` (at least one)."""
    used = 0
    for i, text in enumerate(texts):
        used += len(text) + 3
        if used > max_chars and i > 0:
            return i
    return len(texts)


def _instructions(max_per_kind: int, example: bool) -> str:
    text = (
        "Abstract them into reusable behaviors that apply across all these questions and similar "
        "new ones: SKILLS to apply and MISTAKES TO AVOID. Merge overlapping insights, keep what "
        "recurs, leave out details specific to a single question (answers, letters, numbers).\n\n"
        f"Reply with at most {max_per_kind} lines of each kind and nothing else, in exactly this "
        "format:\nSKILL: <one sentence>\nAVOID: <one sentence>\n"
        "Each line is one general sentence."
    )
    return text + (f"\n\nExample reply (about other questions):\n{EXAMPLE_REPLY}" if example else "")


def abstraction_messages(insight_texts: Sequence[str], max_chars: int = 4000, max_per_kind: int = 3,
                         example: bool = False) -> list[dict]:
    """Chat messages asking for SKILL: / AVOID: lines that generalize ``insight_texts``.

    Texts beyond ``max_chars`` are left out (callers order them best first); a single over-long
    text is cut to ``max_chars``. ``example``: end with :data:`EXAMPLE_REPLY`.
    """
    texts = [t[:max_chars] for t in insight_texts]
    shown = texts[:fit_within(texts, max_chars)]
    listing = "\n".join(f"- {t}" for t in shown)
    user = (f"These insights were learned on a group of related questions:\n\n{listing}\n\n"
            + _instructions(max_per_kind, example))
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_behaviors(text, max_chars: int = 400) -> list[tuple[str, str]]:
    """("skill" | "mistake-to-avoid", sentence) pairs from an abstraction reply; never raises.

    A restated insight's "(strategy)" / "(lesson)" marker is removed."""
    pairs = ((kind, _INSIGHT_TAG.sub("", body)) for kind, body in
             parse_labeled_lines(text, BEHAVIOR_LABELS, max_chars=max_chars))
    return [(kind, body) for kind, body in pairs if body]


def usable_behaviors(text, max_per_kind: int = 3, example: bool = False, max_chars: int = 400) -> list[tuple[str, str]]:
    """:func:`parse_behaviors` without copies of the instructions or the example line, at most
    ``max_per_kind`` of each kind."""
    kept, _ = drop_copies(parse_behaviors(text, max_chars), _instructions(max_per_kind, example))
    return take_per_kind(kept, max_per_kind)


def _insight_line(row: dict) -> str:
    return f"({row['kind']}) {row['text']}"


def update_behaviors(bank: MemoryBank, reflector: Reflector, embedder, *, step: int, run_id: str,
                     model_name: str, min_questions: int = 2, n_clusters: int | None = None,
                     max_new_tokens: int = 256, seed: int = 0, max_per_kind: int = 3,
                     max_chars: int = 4000, prefill: bool | None = None, example: bool = False) -> BehaviorUpdate:
    """Cluster the questions that have insights and abstract each cluster into behaviors.

    Questions are embedded by their prompt with ``embedder``. All generation happens before any
    write; clusters and behaviors are then written in one transaction, so a crash leaves no
    cluster without its behaviors. Each behavior records its bank cluster id and the uids of the
    insights its prompt showed. Skipped (empty result) when fewer than ``min_questions`` questions
    have insights. ``prefill`` (default: when the reflector has ``supports_prefill``) starts each
    reply with ``SKILL:``; ``example`` adds :data:`EXAMPLE_REPLY` to the prompt.
    """
    prefill = wants_prefill(reflector, prefill)
    by_question: dict[str, list[dict]] = {}
    for row in bank.insights():
        by_question.setdefault(row["question_id"], []).append(row)
    prompts = {q["question_id"]: q["prompt"] for q in bank.questions() if q["question_id"] in by_question}
    qids = sorted(prompts)
    if len(qids) < max(1, min_questions):
        logger.info("behavior update skipped: %d questions have insights, %d needed", len(qids), min_questions)
        return BehaviorUpdate()

    labels = cluster_questions(embedder.encode([prompts[q] for q in qids]), n_clusters, seed)
    members: dict[int, list[str]] = {}
    for qid, label in zip(qids, labels.tolist()):
        members.setdefault(label, []).append(qid)

    shown: dict[int, list[dict]] = {}
    conversations = []
    for label, cluster_qids in members.items():
        # Best evidence first, so the prompt budget drops the weakest insights.
        pooled = sorted((r for q in cluster_qids for r in by_question[q]),
                        key=lambda r: (-r["confidence"] * r["support"], r["id"]))
        lines = [_insight_line(r) for r in pooled]
        shown[label] = pooled[:fit_within([t[:max_chars] for t in lines], max_chars)]
        messages = abstraction_messages(lines, max_chars, max_per_kind, example=example)
        conversations.append(with_prefill(messages, PREFILL) if prefill else messages)
    outputs = safe_generate(reflector, conversations, max_new_tokens)

    update = BehaviorUpdate()
    with bank.transaction():
        for (label, cluster_qids), output in zip(members.items(), outputs):
            cluster_id = bank.add_cluster(cluster_qids, label=f"cluster-{label}@step-{step}", step=step,
                                          run_id=run_id, model=model_name)
            update.clusters[cluster_id] = cluster_qids
            if output is None:
                update.failed_requests += 1
                continue
            pairs = usable_behaviors(output, max_per_kind, example)
            if not pairs:
                update.parsed_empty += 1
            sources = [r["uid"] for r in shown[label]]
            for kind, text in pairs:
                row_id = bank.add_behavior(Behavior(kind=kind, text=text, cluster_id=cluster_id,
                                                    source_insights=sources, step=step, run_id=run_id,
                                                    model=model_name))
                update.behaviors_written += row_id is not None
    return update
