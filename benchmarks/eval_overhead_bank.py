"""The memory bank of the eval-overhead benchmark: a few thousand procedurally written
science-flavoured insights and behaviors, embedded with the default sentence-transformers model
and written through the bank's own API (cached between runs)."""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

TASK = "demo_mcq"

DOMAINS = {
    "physics": ["velocity", "acceleration", "momentum", "kinetic energy", "projectile motion", "circular motion",
                "torque", "buoyancy", "pressure", "Ohm's law", "capacitance", "magnetic flux", "refraction",
                "wave speed", "the Doppler effect", "heat capacity", "entropy", "radioactive decay", "work and power",
                "vectors and scalars", "unit conversion", "free fall", "friction", "springs and Hooke's law"],
    "chemistry": ["molar mass", "stoichiometry", "limiting reagents", "pH and pOH", "buffer solutions",
                  "oxidation states", "redox balancing", "ideal gas law", "enthalpy change", "reaction rates",
                  "equilibrium constants", "Le Chatelier's principle", "electronegativity", "ionic bonding",
                  "hybridization", "isomers", "titration curves", "solubility products", "Avogadro's number",
                  "electron configuration", "periodic trends", "activation energy", "catalysts", "half-life"],
    "biology": ["photosynthesis", "cellular respiration", "mitosis", "meiosis", "DNA replication", "transcription",
                "translation", "enzyme kinetics", "osmosis", "active transport", "Mendelian inheritance",
                "Hardy-Weinberg equilibrium", "natural selection", "the immune response", "hormone signalling",
                "neurons and action potentials", "ecosystem energy flow", "protein folding", "gene regulation",
                "mutations", "cell membranes", "the nitrogen cycle", "homeostasis", "blood circulation"],
    "materials": ["crystal structures", "unit cells", "Miller indices", "dislocations", "yield strength",
                  "Young's modulus", "fracture toughness", "phase diagrams", "diffusion in solids", "band gaps",
                  "semiconductor doping", "polymer chains", "glass transition", "corrosion", "thermal expansion",
                  "composites", "grain boundaries", "hardness tests", "ceramics", "alloys", "creep", "fatigue",
                  "magnetic domains", "superconductors"],
}
STRATEGY = [
    "For {c} questions, write the governing relation for {c} before substituting any numbers from the options.",
    "When a question on {c} gives quantities in mixed units, convert everything to SI units first, then compute {d}.",
    "Eliminate the options about {c} that contradict its definition, then compare the remaining ones with {d}.",
    "Estimate the order of magnitude expected for {c} and discard options that are off by a factor of ten or more.",
    "Name the principle behind {c} explicitly and check which option is consistent with {d}.",
    "Sketch the situation for {c}, label the known and unknown quantities, and relate them through {d}.",
    "Check the sign and direction of every change involving {c} before picking an answer about {d}.",
    "Work through {c} step by step and verify the final value by substituting it back into {d}.",
]
LESSON = [
    "Confused {c} with {d}; the question asked about {c}, so read the last sentence of the question twice.",
    "Forgot to convert units in a {c} problem and picked an option off by a factor of 1000; convert first.",
    "Chose the option that repeated words from the question about {c} instead of checking it against {d}.",
    "Stopped the reasoning on {c} without writing the answer letter inside the answer tag; always finish with it.",
    "Mixed up cause and effect between {c} and {d}; state which quantity depends on which before answering.",
    "Applied the formula for {d} to a {c} question; identify which relation the question actually tests.",
    "Dropped a factor of two when computing {c}; recheck coefficients and exponents in the final step.",
    "Answered from memory of a similar {c} question without reading the options; compare all four options.",
]
BEHAVIORS = [
    ("skill", "Before answering any {dom} question, identify the governing principle (for example {c}) and write it down."),
    ("skill", "In {dom} calculations, keep units attached to every number so errors in {c} show up at once."),
    ("skill", "Use limiting cases to sanity-check a {dom} answer about {c}."),
    ("mistake-to-avoid", "Picking a {dom} option because it sounds familiar, without checking it against {c}."),
    ("mistake-to-avoid", "Leaving out the final answer tag after long reasoning on a {dom} question about {c}."),
    ("mistake-to-avoid", "Confusing related {dom} quantities such as {c} and {d}."),
]


def bank_texts(n_insights: int, n_behaviors: int, seed: int = 0):
    """Questions with 6 insights each (3 strategies, 3 lessons) and cross-question behaviors."""
    rng = random.Random(seed)
    concepts = [(dom, c) for dom, cs in DOMAINS.items() for c in cs]
    questions, insights = [], []
    for q in range(max(1, n_insights // 6)):
        dom, concept = concepts[q % len(concepts)]
        other = rng.choice(DOMAINS[dom])
        qid = f"train-{q:05d}"
        questions.append((qid, f"A {dom} question (#{q}) about {concept} and {other}: which of the four options is "
                               f"correct? A: ... B: ... C: ... D: ...", dom))
        strategies = rng.sample(STRATEGY, 3)
        lessons = rng.sample(LESSON, 3)
        for j, template in enumerate(strategies + lessons):
            c, d = (concept, other) if j % 2 == 0 else (concept, rng.choice(DOMAINS[dom]))
            kind = "strategy" if j < 3 else "lesson"
            insights.append((qid, kind, template.format(c=c, d=d), round(rng.uniform(0.1, 1.0), 2)))
    behaviors = []
    for b in range(n_behaviors):
        dom = list(DOMAINS)[b % len(DOMAINS)]
        kind, template = BEHAVIORS[(b // len(DOMAINS)) % len(BEHAVIORS)]
        c, d = rng.sample(DOMAINS[dom], 2)
        behaviors.append((kind, template.format(dom=dom, c=c, d=d)))
    return questions, insights[:n_insights], behaviors


def build_bank(args, work: Path) -> tuple[Path, dict]:
    from memory_bank import Behavior, Insight, MemoryBank
    from memory_bank.embedding import load_embedder

    path = work / f"bank-i{args.insights}-b{args.behaviors}-v1.db"
    info_path = path.with_suffix(".json")
    if path.exists() and info_path.exists():
        return path, json.loads(info_path.read_text())
    questions, insights, behaviors = bank_texts(args.insights, args.behaviors)
    tmp = path.with_name(f".{path.name}.building")
    for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        stale.unlink(missing_ok=True)
    t0 = time.perf_counter()
    embedder = load_embedder("sentence-transformers/all-MiniLM-L6-v2")
    bank = MemoryBank.open(tmp, create=True, embedder=embedder)
    print(f"building bank: embedding {len(insights)} insights and {len(behaviors)} behaviors with MiniLM ...", flush=True)
    texts = [t for _, _, t, _ in insights] + [t for _, t in behaviors]
    vectors = bank.embed_batch(texts)
    embed_s = time.perf_counter() - t0
    with bank.transaction():
        bank.register_run("eval-overhead-bench", "synthetic", TASK)
        for qid, prompt, _dom in questions:
            bank.upsert_question(qid, prompt, task=TASK, run_id="eval-overhead-bench", model="synthetic")
        for (qid, kind, text, conf), vec in zip(insights, vectors):
            bank.add_insight(Insight(qid, kind, text, conf, run_id="eval-overhead-bench", model="synthetic"), vector=vec)
        for (kind, text), vec in zip(behaviors, vectors[len(insights):]):
            bank.add_behavior(Behavior(kind, text, run_id="eval-overhead-bench", model="synthetic"), vector=vec)
    counts = bank.counts()
    bank.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    bank.close()
    tmp.rename(path)
    Path(f"{tmp}-wal").unlink(missing_ok=True)
    Path(f"{tmp}-shm").unlink(missing_ok=True)
    info = {"counts": counts, "questions": len(questions), "requested_insights": args.insights,
            "requested_behaviors": args.behaviors, "embedding_model": embedder.name,
            "build_s": time.perf_counter() - t0, "embed_s": embed_s, "file_mb": path.stat().st_size / 2**20}
    info_path.write_text(json.dumps(info, indent=1))
    return path, info


# ----------------------------------------------------------------- the commands
