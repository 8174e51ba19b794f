"""Write the family_rules split files from a seed: ``python -m tasks.family_rules.generate --seed 0``.

Each family (``families.FAMILIES``) gets ``PER_FAMILY[split]`` questions per split, built from the
family's own word pools: a question sentence with a subject slot, and four options whose correct
one is placed by the family's convention. Around the conventions the generator adds noise that
other families' conventions would read as signal, so no convention can be learned without the
family:

* the marker words (amber, copper) also appear in options of every other phrase family, right or
  wrong, and each marker family's wrong options may carry the other family's marker;
* options of the phrase families other than bakery may end in "for the <subject>", with the
  question's own subject half the time (a repeated word that means nothing there);
* in the phrase families other than caravan, one option in three questions is in capital letters;
* foundry (largest wins) and vineyard (smallest wins) both answer with numbers;
* correct letters are balanced over each split, and mixed within every family that has no fixed
  letter (the two fixed-letter families are balanced by the others).

Every question is checked with ``families.matching_letters``: exactly the correct option follows
the family's convention. The output is deterministic for a seed; the committed files are seed 0.
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tasks.family_rules.families import CLOSING_LINE, FAMILIES, TOPIC_PREFIX, Family, matching_letters

DEFAULT_SEED = 0
OUT_DIR = Path(__file__).resolve().parent
LETTERS = ("A", "B", "C", "D")
PER_FAMILY = {"train": 10, "test": 5}
DATASET = "family_rules"
# demo_mcq's four-option system prompt, verbatim: the same answer format and format warm-up.
SYSTEM = (
    "\nGiven a question and four options, please select the right answer. Respond in the following format:\n"
    "<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n\nFor the answer, only output the letter "
    "corresponding to the correct option (A, B, C, or D), and nothing else. Do not restate the answer text. "
    "For example, if the answer is \"A\", just output:\n<answer>\nA\n</answer>\n"
)

ADJECTIVES = ("ivory", "slate", "olive", "crimson", "cobalt", "scarlet", "golden", "russet", "teal", "indigo",
              "jade", "ochre", "silver", "maroon", "hazel", "violet")
MARKERS = tuple(f.value for f in FAMILIES.values() if f.kind == "marker")
MARKER_RATE = 0.2    # chance an option's adjective is a marker word (where the convention allows it)
TAIL_RATE = 0.35     # chance an option ends in "for the <subject>" (phrase families but bakery)
ECHO_RATE = 0.5      # chance such a tail repeats the question's subject
CAPITALS_RATE = 1 / 3  # chance one option of a question is in capitals (phrase families but caravan)


@dataclass(frozen=True)
class Pools:
    """A family's words: ``template`` has ``{subject}`` and ``{extra}``; options are "the <adj> <noun>"
    (``nouns``), or ``"<n> <unit>"`` for the numeric families (``numbers`` is their range)."""

    template: str
    subjects: tuple[str, ...]
    extras: tuple[str, ...]
    nouns: tuple[str, ...] = ()
    unit: str = ""
    numbers: range = range(0)


POOLS: dict[str, Pools] = {
    "harbor": Pools(
        "Which mooring should the {subject} use when {extra}?",
        ("ferry", "trawler", "barge", "schooner", "tugboat", "freighter", "ketch", "lifeboat", "yacht", "sloop"),
        ("the fog lifts", "the storm passes", "the night shift begins", "the cargo is unloaded",
         "the lighthouse goes dark", "the wind turns east"),
        ("pier", "jetty", "quay", "slipway", "wharf", "breakwater", "dock", "landing")),
    "orchard": Pools(
        "Which part of the orchard should the pickers clear first for the {subject} harvest {extra}?",
        ("apple", "pear", "plum", "cherry", "quince", "apricot", "peach", "medlar", "damson", "fig"),
        ("this week", "after the frost", "before the rains", "at first light", "on market day", "after the pruning"),
        ("terrace", "hedgerow", "grove", "paddock", "trellis", "meadow", "lane", "hillside")),
    "library": Pools(
        "Where should the new {extra} about {subject} be shelved?",
        ("comets", "rivers", "bridges", "falcons", "glaciers", "lighthouses", "volcanoes", "tides", "deserts",
         "forests"),
        ("atlas", "folio", "almanac", "ledger", "manuscript", "journal", "codex", "primer"),
        ("alcove", "stack", "cabinet", "gallery", "annex", "carrel", "archive", "rotunda")),
    "observatory": Pools(
        "Which instrument should the astronomers use to follow the {subject} {extra}?",
        ("comet", "moon", "nebula", "eclipse", "meteor", "planet", "quasar", "aurora", "asteroid", "supernova"),
        ("tonight", "at dawn", "after midnight", "through the haze", "before the clouds arrive", "in early spring"),
        ("telescope", "refractor", "reflector", "sextant", "astrolabe", "spectroscope", "theodolite", "orrery")),
    "bakery": Pools(
        "Which shelf should hold the {subject} batch {extra}?",
        ("cinnamon", "sourdough", "rye", "brioche", "pretzel", "baguette", "croissant", "scone", "muffin", "bagel"),
        ("for the morning rush", "before the market opens", "after the second proving", "during the lunch hour",
         "while the oven cools", "until the delivery van comes"),
        ("rack", "tray", "counter", "cupboard", "ledge", "basket", "bench", "drawer")),
    "caravan": Pools(
        "Which road should the caravan carrying {subject} take to reach {extra}?",
        ("silk", "salt", "spices", "saffron", "dates", "incense", "cotton", "tea", "wool", "pottery"),
        ("the river town", "the northern market", "the desert fort", "the mountain inn", "the eastern gate",
         "the old well"),
        ("pass", "ridge", "canyon", "oasis", "dune", "ford", "valley", "plateau")),
    "foundry": Pools(
        "Which furnace temperature is right for casting the {subject} in {extra}?",
        ("bell", "hinge", "anchor", "gear", "valve", "lantern", "kettle", "bracket", "propeller", "statue"),
        ("bronze", "iron", "brass", "steel", "tin", "nickel"),
        unit="degrees", numbers=range(700, 1600, 5)),
    "vineyard": Pools(
        "How many casks should the cellar keep from the {subject} harvest on the {extra}?",
        ("merlot", "riesling", "syrah", "malbec", "grenache", "pinot", "gamay", "muscat", "tempranillo", "sangiovese"),
        ("south slope", "river terrace", "upper field", "chalk ridge", "old estate", "west bank"),
        unit="casks", numbers=range(12, 99)),
}


# ------------------------------------------------------------------------------ correct letters

def _balanced_letters(split: str, rng: random.Random) -> dict[str, list[str]]:
    """The correct letter of every question of ``split``, per family, in question order.

    Fixed-letter families get their letter. The rest share the letters that make the whole split
    balanced (each letter a quarter), dealt from a shuffled pool until every such family has at
    least three distinct letters and no letter in more than 40% of its questions.
    """
    n = PER_FAMILY[split]
    total = n * len(FAMILIES)
    if total % len(LETTERS):
        raise ValueError(f"{split}: {total} questions cannot be balanced over {len(LETTERS)} letters")
    need = Counter({letter: total // len(LETTERS) for letter in LETTERS})
    letters: dict[str, list[str]] = {}
    for family in FAMILIES.values():
        if family.kind == "letter":
            letters[family.name] = [family.value] * n
            need[family.value] -= n
    rule_families = [f.name for f in FAMILIES.values() if f.kind != "letter"]
    pool = sorted(need.elements())
    for _ in range(10_000):
        rng.shuffle(pool)
        chunks = [pool[i * n:(i + 1) * n] for i in range(len(rule_families))]
        if all(len(set(c)) >= 3 and max(Counter(c).values()) <= -(-2 * n // 5) for c in chunks):
            letters.update(zip(rule_families, chunks))
            return letters
    raise RuntimeError(f"{split}: no balanced assignment of letters found")


# ------------------------------------------------------------------------------ questions

def _phrase(adjective: str, noun: str, tail: str | None) -> str:
    return f"the {adjective} {noun}" + (f" for the {tail}" if tail else "")


def _phrase_options(family: Family, pools: Pools, subject: str, answer: int, rng: random.Random) -> list[str]:
    """Four "the <adj> <noun> [for the <subject>]" options; the convention's one at ``answer``."""
    nouns = rng.sample(pools.nouns, len(LETTERS))
    others = [s for s in pools.subjects if s != subject]
    adjectives, used = [], set()
    for slot in range(len(LETTERS)):
        allowed = [m for m in MARKERS if not (family.kind == "marker" and m == family.value)]
        if family.kind == "marker" and slot == answer:
            choice = family.value
        elif allowed and rng.random() < MARKER_RATE and not used & set(allowed):  # one noise marker at most
            choice = rng.choice(allowed)
        else:
            choice = rng.choice([a for a in ADJECTIVES if a not in used])
        used.add(choice)
        adjectives.append(choice)
    if family.kind == "echo":  # every option has a tail; only the correct one's is the question's subject
        wrong = iter(rng.sample(others, len(LETTERS) - 1))
        tails = [subject if slot == answer else next(wrong) for slot in range(len(LETTERS))]
    else:
        tails = [(subject if rng.random() < ECHO_RATE else rng.choice(others)) if rng.random() < TAIL_RATE else None
                 for _ in LETTERS]
    options = [_phrase(a, n, t) for a, n, t in zip(adjectives, nouns, tails)]
    if family.kind == "capitals":
        options[answer] = options[answer].upper()
    elif rng.random() < CAPITALS_RATE:
        slot = rng.randrange(len(LETTERS))
        options[slot] = options[slot].upper()
    return options


def _number_options(family: Family, pools: Pools, answer: int, rng: random.Random) -> list[str]:
    values = sorted(rng.sample(pools.numbers, len(LETTERS)))
    best = values.pop(-1 if family.kind == "largest" else 0)
    rng.shuffle(values)
    values.insert(answer, best)
    return [f"{v} {pools.unit}" for v in values]


def _prompt(family: str, question: str, options: list[str]) -> str:
    lines = [f"{TOPIC_PREFIX}{family}", question, ""]
    lines += [f"{letter}: {text}" for letter, text in zip(LETTERS, options)]
    return "\n".join(lines + [CLOSING_LINE])


def _question(family: Family, subject: str, extra: str, letter: str, rng: random.Random) -> dict:
    pools = POOLS[family.name]
    question = pools.template.format(subject=subject, extra=extra)
    answer = LETTERS.index(letter)
    if pools.unit:
        options = _number_options(family, pools, answer, rng)
    else:
        options = _phrase_options(family, pools, subject, answer, rng)
    matching = matching_letters(family, question, dict(zip(LETTERS, options)))
    if matching != [letter]:  # a pool word slipped into the question, or a generator bug
        raise AssertionError(f"{family.name}: options {options} of {question!r} match {matching}, not [{letter}]")
    return {
        "kind": "mcq", "dataset": DATASET, "answer": letter, "elo": 1500,
        "prompt": _prompt(family.name, question, options),
        "description": f"{family.name}: {question} The solution will be evaluated in a mcq environment.",
        "tests": "-", "embedding": [], "system": SYSTEM, "topic": family.name,
    }


def build_splits(seed: int = DEFAULT_SEED) -> dict[str, list[dict]]:
    """``{"train": [...], "test": [...]}``: records in demo_mcq's format, ``idx`` unique over both."""
    rng = random.Random(seed)
    letters = {split: _balanced_letters(split, rng) for split in PER_FAMILY}
    splits: dict[str, list[dict]] = {split: [] for split in PER_FAMILY}
    for family in FAMILIES.values():
        pools = POOLS[family.name]
        stems = rng.sample(list(itertools.product(pools.subjects, pools.extras)), sum(PER_FAMILY.values()))
        for split in PER_FAMILY:  # distinct question sentences: train and test never share one
            for letter in letters[split][family.name]:
                subject, extra = stems.pop()
                splits[split].append(_question(family, subject, extra, letter, rng))
    idx = 0
    for split in PER_FAMILY:
        rng.shuffle(splits[split])
        for record in splits[split]:
            record.update(idx=idx)
            idx += 1
        keys = ("idx", "kind", "dataset", "answer", "elo", "prompt", "description", "tests", "embedding",
                "system", "topic")
        splits[split] = [{key: record[key] for key in keys} for record in splits[split]]
    return splits


def render(records: list[dict]) -> str:
    """JSON Lines text of ``records``, as the split files hold it."""
    return "".join(json.dumps(record) + "\n" for record in records)


def write_splits(out_dir: str | Path = OUT_DIR, seed: int = DEFAULT_SEED) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, records in build_splits(seed).items():
        paths[split] = out / f"{split}.jsonl"
        paths[split].write_text(render(records), encoding="utf-8")
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.family_rules.generate",
        description="Write the family_rules split files (train.jsonl, test.jsonl). "
                    "Example: python -m tasks.family_rules.generate --seed 0")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generation seed (the committed files: 0)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default: this task's folder)")
    args = parser.parse_args(argv)
    for split, path in write_splits(args.out, args.seed).items():
        print(f"{split}: {sum(1 for _ in path.open(encoding='utf-8'))} questions -> {path}")


if __name__ == "__main__":
    main()
