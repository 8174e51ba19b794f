"""``pmd-train`` given bad input (issue 11): one ``error:`` line, a non-zero exit code, no traceback,
nothing written or changed, and all of it before any model is loaded (``trainer/preflight.py``).

Each case runs the console script on the demo config and the tiny model, with one thing wrong: a
model folder, the task, a data file, a frozen bank, a contradiction between settings, a value out
of range. Most run twice, as a real run and as ``--dry-run``, which must refuse the same input.
Every shipped config still dry-runs (exit 0), and the loaders' checks reach ``pmd-harness`` too.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cli_checks import REPO, assert_refused_untouched, run_cli, tree_hashes
from trainer.preflight import hub_dataset_cached

CONFIGS = REPO / "trainer" / "configs"
DEMO = CONFIGS / "demo_cpu.yaml"
RUN_NAME = "bad-input"
MCQ_LINE = {"idx": 1, "prompt": "What is 2 + 2?\n\nA: 3\nB: 4\nC: 5\nD: 6", "system": "Answer.", "answer": "B"}
CODE_LINE = json.loads((REPO / "tasks" / "demo_code" / "train.jsonl").read_text().splitlines()[0])


# ----------------------------------------------------------------- fixtures: one folder of bad things
def _jsonl(path: Path, lines: list) -> Path:
    """Write ``lines`` (objects as JSON, strings and bytes as they are) one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = [line if isinstance(line, bytes) else (line if isinstance(line, str) else json.dumps(line)).encode()
           for line in lines]
    path.write_bytes(b"\n".join(raw) + b"\n")
    return path


def _broken_models(tiny: Path, root: Path) -> None:
    """Copies of the tiny model, each broken in one way."""
    for name in ("no-weights", "truncated", "bad-config"):
        shutil.copytree(tiny, root / name)
    (root / "no-weights" / "model.safetensors").unlink()
    weights = root / "truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (root / "bad-config" / "config.json").write_text('{"model_type": "qwen3",')


def _data_files(root: Path) -> None:
    """One split file per way a record can be wrong (line 2 is the bad one)."""
    good = dict(MCQ_LINE)
    _jsonl(root / "good.jsonl", [good, {**good, "idx": 2}])
    _jsonl(root / "invalid_json.jsonl", [good, '{"idx": 2, "prompt": "Q?"'])
    _jsonl(root / "not_object.jsonl", [good, "[1, 2, 3]"])
    _jsonl(root / "answer_not_option.jsonl", [good, {**good, "idx": 2, "answer": "E"}])
    _jsonl(root / "no_options.jsonl", [good, {**good, "idx": 2, "prompt": "What is 2 + 2?"}])
    _jsonl(root / "no_question.jsonl", [good, {"idx": 2, "answer": "A"}])
    _jsonl(root / "duplicate_idx.jsonl", [good, good])
    _jsonl(root / "not_utf8.jsonl", [good, b'{"idx": 2, "prompt": "\xff\xfe"}'])
    (root / "empty.jsonl").write_text("\n")
    _jsonl(root / "code_no_content.jsonl", [CODE_LINE, {**CODE_LINE, "question_id": "x", "question_content": None}])
    _jsonl(root / "code_bad_test.jsonl", [CODE_LINE, {**CODE_LINE, "question_id": "x", "private_test_cases": "",
                                                      "public_test_cases": '[{"input": "1"}]'}])


def _banks(root: Path) -> None:
    """An empty bank, one holding a behavior, one embedded with another model, and a text file."""
    from memory_bank import MemoryBank
    from memory_bank.embedding import HashingEmbedder
    from memory_bank.records import Behavior

    root.mkdir(parents=True)
    MemoryBank.open(root / "empty.db", create=True).close()
    with MemoryBank.open(root / "full.db", create=True) as bank:
        bank.add_behavior(Behavior("skill", "Write the governing formula before substituting numbers."))
    with MemoryBank.open(root / "hashed.db", create=True, embedder=HashingEmbedder(dim=64, seed=0)) as bank:
        bank.add_behavior(Behavior("skill", "Write the governing formula before substituting numbers."))
    (root / "notes.db").write_text("plain text, not a bank")


def _config_files(root: Path, full_bank: Path) -> None:
    """Config files that contradict themselves (the demo config with one change)."""
    root.mkdir(parents=True)
    demo = yaml.safe_load(DEMO.read_text())
    (root / "grpo_with_memory.yaml").write_text(yaml.safe_dump({**demo, "algorithm": "grpo"}))
    persistent_bank = {**demo, "memory": {**demo["memory"], "bank": str(full_bank)}}
    (root / "persistent_with_bank.yaml").write_text(yaml.safe_dump(persistent_bank))


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> dict[str, Path]:
    """The tiny model, broken models, data files, banks and config files, and an output folder."""
    from pmd.tiny_model import build_tiny_models

    root = tmp_path_factory.mktemp("bad-input")
    tiny = build_tiny_models(root / "models")["tiny"]
    _broken_models(tiny, root / "broken")
    _data_files(root / "data")
    _banks(root / "banks")
    _config_files(root / "configs", root / "banks" / "full.db")
    return {"root": root, "tiny": tiny, "broken": root / "broken", "data": root / "data", "banks": root / "banks",
            "configs": root / "configs", "out": root / "out"}


def _watched(place: dict[str, Path]) -> list[Path]:
    """Everything a refused command must leave as it was: model folders, data, banks, configs, outputs."""
    return [place["tiny"], place["broken"], place["data"], place["banks"], place["configs"], place["out"],
            REPO / "results" / RUN_NAME]


def train_command(place: dict[str, Path], sets: list[str], *, config: str | None = None,
                  dry_run: bool = False) -> list[str]:
    """``pmd-train`` on the demo config and the tiny model, writing under the test's folder; ``sets``
    (with ``{tiny}``, ``{data}``, ``{banks}``, ``{broken}`` filled in) come last and win."""
    config_path = (place["configs"] / config) if config else DEMO
    base = [f"model.name_or_path={place['tiny']}", f"run.output_dir={place['out']}", f"run.name={RUN_NAME}"]
    command = ["pmd-train", "--config", str(config_path)]
    for item in base + [s.format(**{k: str(v) for k, v in place.items()}) for s in sets]:
        command += ["--set", item]
    return command + (["--dry-run"] if dry_run else [])


# ----------------------------------------------------------------- the cases
@dataclass(frozen=True)
class Case:
    name: str
    sets: tuple[str, ...]
    contains: tuple[str, ...]
    dry_run_too: bool = True   # also refused under --dry-run
    config: str | None = None  # a file of the fixture's configs/ instead of the demo config
    marks: tuple = ()


_NO_VLLM = pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
_NO_LCB_CACHE = pytest.mark.skipif(hub_dataset_cached("livecodebench/code_generation_lite"),
                                   reason="LiveCodeBench is in the local Hugging Face cache here")

CASES = [
    # models
    Case("model-missing", ("model.name_or_path=/nonexistent/model",), ("model.name_or_path", "not found")),
    Case("model-no-weights", ("model.name_or_path={broken}/no-weights",), ("model.name_or_path", "no weights file")),
    Case("model-truncated-weights", ("model.name_or_path={broken}/truncated",), ("truncated",), dry_run_too=False),
    Case("model-config-not-json", ("model.name_or_path={broken}/bad-config",), ("config.json", "not valid JSON")),
    Case("model-hub-id-offline-uncached", ("model.name_or_path=acme/not-a-cached-model",),
         ("model.name_or_path", "not in the local hugging face cache"), dry_run_too=False),
    Case("reflection-model-missing", ("reflection.source=model", "reflection.model=/nonexistent/reflector"),
         ("reflection.model", "not found")),
    Case("embedding-model-missing", ("memory.retrieval.embedding_model=./no/such/embedder",),
         ("memory.retrieval.embedding_model", "not found")),
    # task and data
    Case("unknown-task", ("data.task=demo_mc",), ("data.task", "did you mean 'demo_mcq'")),
    Case("data-path-missing", ("data.path=/nonexistent/train.jsonl",), ("data.path", "does not exist")),
    Case("data-invalid-json", ("data.path={data}/invalid_json.jsonl",), ("invalid_json.jsonl:2", "invalid JSON")),
    Case("data-row-not-object", ("data.path={data}/not_object.jsonl",), ("not_object.jsonl:2", "array, not an object"),
         dry_run_too=False),
    Case("data-answer-not-option", ("data.path={data}/answer_not_option.jsonl",),
         ("answer_not_option.jsonl:2", "field 'answer'", "'E'", "A, B, C, D")),
    Case("data-no-options", ("data.path={data}/no_options.jsonl",), ("no_options.jsonl:2", "field 'prompt'", "no options"),
         dry_run_too=False),
    Case("data-no-question", ("data.path={data}/no_question.jsonl",), ("no_question.jsonl:2", "field 'prompt' is missing")),
    Case("data-duplicate-idx", ("data.path={data}/duplicate_idx.jsonl",), ("duplicate_idx.jsonl:2", "repeats line 1"),
         dry_run_too=False),
    Case("data-not-utf8", ("data.path={data}/not_utf8.jsonl",), ("not_utf8.jsonl:2", "UTF-8"), dry_run_too=False),
    Case("hub-data-offline-uncached", ("data.task=livecodebench",), ("data.task", "from the hub", "offline"),
         dry_run_too=False, marks=(_NO_LCB_CACHE,)),
    Case("vllm-not-installed", ("rollout.engine=vllm",), ("rollout.engine", "vllm"), dry_run_too=False,
         marks=(_NO_VLLM,)),
    Case("data-empty-file", ("data.path={data}/empty.jsonl",), ("data.path", "split is empty"), dry_run_too=False),
    Case("code-data-no-content", ("data.task=demo_code", "data.path={data}/code_no_content.jsonl"),
         ("code_no_content.jsonl:2", "field 'question_content'")),
    Case("code-data-test-without-output", ("data.task=demo_code", "data.path={data}/code_bad_test.jsonl"),
         ("code_bad_test.jsonl:2", "public_test_cases", "'output'"), dry_run_too=False),
    # frozen memory
    Case("frozen-bank-missing", ("memory.mode=frozen", "memory.bank={banks}/absent.db"), ("memory.bank", "no memory bank")),
    Case("frozen-bank-empty", ("memory.mode=frozen", "memory.bank={banks}/empty.db"), ("memory.bank", "holds no memory")),
    Case("frozen-bank-not-a-bank", ("memory.mode=frozen", "memory.bank={banks}/notes.db"),
         ("memory.bank", "not a memory bank"), dry_run_too=False),
    Case("frozen-bank-other-embedder", ("memory.mode=frozen", "memory.bank={banks}/hashed.db"),
         ("memory.bank", "embedded with", "memory.retrieval.embedding_model=hash-64"), dry_run_too=False),
    # contradictions
    Case("grpo-with-memory-mode", ("algorithm=grpo", "memory.mode=transient"), ("memory.mode", "grpo")),
    Case("sdpo-with-frozen-memory", ("algorithm=sdpo", "memory.mode=frozen", "memory.bank={banks}/full.db"),
         ("memory.mode", "sdpo"), dry_run_too=False),
    Case("grpo-with-teacher-update", ("algorithm=grpo", "teacher.update=live"), ("teacher.update", "grpo")),
    Case("grpo-with-memory-setting", ("algorithm=grpo", "memory.retrieve_k=5"), ("memory.retrieve_k", "no effect", "grpo"),
         dry_run_too=False),
    Case("grpo-file-with-memory-section", (), ("memory.behavior_every", "grpo_with_memory.yaml", "no memory"),
         config="grpo_with_memory.yaml"),
    Case("sdpo-with-reflection-endpoint", ("algorithm=sdpo", "reflection.source=endpoint",
                                           "reflection.base_url=http://127.0.0.1:9/v1", "reflection.model=m"),
         ("reflection.source", "sdpo"), dry_run_too=False),
    Case("grpo-with-frozen-policy", ("algorithm=grpo", "policy.frozen=true"), ("policy.frozen", "grpo")),
    Case("frozen-policy-and-frozen-memory", ("policy.frozen=true", "memory.mode=frozen", "memory.bank={banks}/full.db"),
         ("policy.frozen", "memory.mode", "nothing would change")),
    Case("kl-coef-without-grpo", ("loss.kl_coef=0.1",), ("loss.kl_coef", "grpo"), dry_run_too=False),
    Case("ema-rate-with-live-teacher", ("teacher.update=live", "teacher.ema_rate=0.2"), ("teacher.ema_rate", "live"),
         dry_run_too=False),
    Case("file-bank-without-frozen-mode", (), ("memory.bank", "persistent_with_bank.yaml", "frozen"),
         config="persistent_with_bank.yaml", dry_run_too=False),
    # ranges
    Case("lr-not-a-number", ("optim.lr=nan",), ("optim.lr", "finite")),
    Case("clip-eps-out-of-range", ("loss.clip_eps=0",), ("loss.clip_eps",), dry_run_too=False),
    Case("validation-questions-zero", ("logging.validation_questions=0",), ("logging.validation_questions",)),
    Case("run-name-escapes-output-dir", ("run.name=../escape",), ("run.name", "plain folder name")),
    Case("reflection-url-without-scheme", ("reflection.source=endpoint", "reflection.base_url=localhost:8000",
                                           "reflection.model=m"), ("reflection.base_url", "http://"), dry_run_too=False),
]
PARAMS = [pytest.param(case, False, id=case.name, marks=case.marks) for case in CASES] + \
         [pytest.param(case, True, id=f"{case.name}-dry-run", marks=case.marks) for case in CASES if case.dry_run_too]


@pytest.mark.parametrize("case, dry_run", PARAMS)
def test_bad_input_is_refused_before_anything_is_loaded(place, case, dry_run):
    """One error line naming the setting (and the file/line/field for data), exit != 0, nothing
    touched, no run folder."""
    command = train_command(place, list(case.sets), config=case.config, dry_run=dry_run)
    assert_refused_untouched(command, _watched(place), contains=case.contains, timeout=120)
    assert not (place["out"] / RUN_NAME).exists() and not (REPO / "results" / RUN_NAME).exists()


def test_there_are_enough_cases():
    assert len(CASES) >= 25 and sum(case.dry_run_too for case in CASES) >= len(CASES) // 2


# ----------------------------------------------------------------- what must keep working
def _dry_run_ok(command: list[str]):
    proc = run_cli(command, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "error:" not in proc.stderr
    return proc


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_config_still_dry_runs(place, config):
    """Paper configs name hub ids (not cached here: a note) and data from the hub or
    PMD_SCIKNOWEVAL_DIR (a note); the demo's models and the frozen-memory bank are given (the
    SmolLM2 config's own model: tests/test_smollm2.py)."""
    sets = [f"run.output_dir={place['out']}"]
    if config in ("demo_cpu.yaml", "smollm2_demo_mcq_pmd.yaml"):  # their models are built by make demo
        sets.append(f"model.name_or_path={place['tiny']}")
    if "frozen_memory" in config:
        sets.append(f"memory.bank={place['banks'] / 'full.db'}")
    command = ["pmd-train", "--config", str(CONFIGS / config), *[a for s in sets for a in ("--set", s)], "--dry-run"]
    before = tree_hashes(place["out"], place["banks"])
    proc = _dry_run_ok(command)
    assert "# plan:" in proc.stdout
    assert tree_hashes(place["out"], place["banks"]) == before
    if "qwen3" in config or "olmo3" in config:
        assert "note: model.name_or_path" in proc.stderr


def test_a_pmd_file_run_as_a_baseline_is_not_a_contradiction(place):
    """``--set algorithm=sdpo`` on the PMD demo file (the README's example): its memory section is
    inherited, not set for SDPO, so no error and no note."""
    proc = _dry_run_ok(train_command(place, ["algorithm=sdpo"], dry_run=True))
    assert "note:" not in proc.stderr


def test_an_override_a_file_ignores_is_a_note(place):
    """One override applied to a sweep of files (here a GRPO file) is a note, not an error."""
    command = ["pmd-train", "--config", str(CONFIGS / "qwen3_8b_sciknoweval_grpo.yaml"), "--set",
               f"run.output_dir={place['out']}", "--set", "memory.retrieval.embedding_model=hash-64", "--dry-run", "--json"]
    proc = _dry_run_ok(command)
    assert "note: --set memory.retrieval.embedding_model=hash-64 is ignored: algorithm 'grpo'" in proc.stderr
    assert json.loads(proc.stdout)["config"]["algorithm"] == "grpo"  # notes keep stdout machine-readable


def test_a_bad_data_file_is_refused_by_pmd_harness_score_too(place, tmp_path):
    """The loaders' checks are where pmd-harness reads data as well."""
    responses = tmp_path / "responses.jsonl"
    responses.write_text('{"id": "1", "response": "<answer>B</answer>"}\n')
    bad = place["data"] / "answer_not_option.jsonl"
    assert_refused_untouched(["pmd-harness", "score", "--task", "demo_mcq", "--data", str(bad), "--responses",
                              str(responses)], [place["data"], tmp_path], contains=("answer_not_option.jsonl:2", "'answer'"))
