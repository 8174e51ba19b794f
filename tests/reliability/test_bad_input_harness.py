"""Bad input to ``pmd-harness`` (eval, score, report) and ``pmd-lm-eval``: one ``error:`` line, a
non-zero exit code, no traceback, and nothing written: every file the command was pointed at (model
folder, bank, responses, run folder, the output location) keeps its names and bytes.

Each case runs the real console script in a subprocess; the errors are found before any model
loads, so a case costs about the interpreter's start-up. ``pmd.model_check`` is also tested in
process on the same broken model folders.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from cli_checks import assert_refused_untouched, cli_env, run_cli
from pmd.model_check import ModelFolderError, check_model_folder, check_model_spec
from trainer.manifest import write_manifest

GOOD_RESPONSE = '{"id": "0", "response": "<answer>C</answer>"}\n'  # demo_mcq question 0


# ----------------------------------------------------------------------------- fixtures
def _break(models: Path, name: str, tiny: Path, damage) -> Path:
    """A copy of ``tiny`` named ``name`` under ``models``, then ``damage(folder)`` applied."""
    folder = models / name
    shutil.copytree(tiny, folder)
    damage(folder)
    return folder


def _shard(folder: Path) -> None:
    """Weights listed in an index whose one shard is missing."""
    weights = folder / "model.safetensors"
    index = {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                                            "lm_head.weight": "model-00002-of-00002.safetensors"}}
    weights.rename(folder / "model-00001-of-00002.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def _remove(*names: str):
    return lambda folder: [(folder / name).unlink() for name in names]


def _write(name: str, text: str):
    return lambda folder: (folder / name).write_text(text)


def _truncate(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _no_model_type(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    del config["model_type"]
    (folder / "config.json").write_text(json.dumps(config))


BROKEN = {
    "bad-json": _write("config.json", '{"architectures": ["Qwen3ForCausalLM"],'),
    "no-model-type": _no_model_type,
    "no-tokenizer": _remove("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"),
    "no-weights": _remove("model.safetensors"),
    "truncated": _truncate,
    "missing-shard": _shard,
    "no-chat-template": _remove("chat_template.jinja"),
}


def _banks(folder: Path) -> dict[str, Path]:
    """A bank with insights, one with only experiences, an empty one, and a text file."""
    from memory_bank import Insight, MemoryBank
    from memory_bank.embedding import HashingEmbedder
    from memory_bank.records import Experience

    paths = {name: folder / f"{name}.db" for name in ("insights", "experiences", "empty")}
    for name, path in paths.items():
        with MemoryBank.open(path, create=True, embedder=HashingEmbedder(dim=64)) as bank:
            if name != "empty":
                bank.upsert_question("q1", "a training question", task="demo_mcq")
            if name == "insights":
                bank.add_insight(Insight("q1", "strategy", "Read every option before answering.", 0.8))
            if name == "experiences":
                bank.add_experiences([Experience("q1", "prompt", "response", 1.0)])
    paths["text"] = folder / "notes.db"
    paths["text"].write_text("just some notes\n")
    return paths


def _runs(folder: Path, tiny: Path) -> dict[str, Path]:
    """A pmd-train run whose only checkpoint lost its weights, run folders with good and broken
    metrics, and an eval folder whose summary.json is damaged."""
    checkpoint = folder / "lost-weights" / "checkpoints" / "step-000002"
    shutil.copytree(tiny, checkpoint / "hf")
    write_manifest(checkpoint)  # as trainer.checkpoint.publish does
    (checkpoint / "COMPLETE").write_text("")
    (checkpoint / "hf" / "model.safetensors").unlink()
    broken = folder / "broken-metrics"
    broken.mkdir()
    (broken / "metrics.jsonl").write_text('not json\n[1, 2]\n{"step": 1, "rew')
    some = folder / "some-broken"
    some.mkdir()
    (some / "metrics.jsonl").write_text('{"step": 1, "reward/mean": 0.2}\nnot json\n'
                                        '{"step": 2, "reward/mean": 0.4}\n{"step": 3, "rew')
    bad_eval = folder / "bad-eval"
    bad_eval.mkdir()
    (bad_eval / "summary.json").write_text('{"runs": [')
    return {"checkpoint": checkpoint, "run": folder / "lost-weights", "broken": broken, "some": some,
            "bad_eval": bad_eval}


def _hub_cache(folder: Path, tiny: Path) -> Path:
    """A Hugging Face cache holding ``pmd-test/partial`` without its weights."""
    repo = folder / "models--pmd-test--partial"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny, repo / "snapshots" / revision)
    (repo / "snapshots" / revision / "model.safetensors").unlink()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Every input the cases point at, built once: tiny models (good and broken), banks, run
    folders, responses files and an empty Hugging Face cache."""
    from pmd.tiny_model import build_tiny_models

    root = tmp_path_factory.mktemp("bad-input")
    tiny = build_tiny_models(root / "built")["tiny"]
    models = root / "models"
    models.mkdir()
    broken = {name: _break(models, name, tiny, damage) for name, damage in BROKEN.items()}
    (root / "banks").mkdir()
    (root / "runs").mkdir()
    responses = root / "responses"
    responses.mkdir()
    for name, text in {"empty": "", "blank": "\n\n", "bad": 'garbage\n{"id": "999", "response": "x"}\n{"id": "0"}\n',
                       "good": GOOD_RESPONSE}.items():
        (responses / f"{name}.jsonl").write_text(text)
    (root / "a-file").write_text("not a folder\n")
    return SimpleNamespace(root=root, tiny=tiny, broken=broken, banks=_banks(root / "banks"),
                           runs=_runs(root / "runs", tiny), responses=responses, file=root / "a-file",
                           hub=_hub_cache(root / "hub", tiny), empty_hub=Path(tmp_path_factory.mktemp("empty-hub")))


@pytest.fixture(scope="module")
def readonly(tmp_path_factory, world):
    """A read-only mount (tmpfs, remounted ro) holding a run folder; skipped where mounting is not
    allowed."""
    mount = tmp_path_factory.mktemp("readonly")
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        shutil.copytree(world.runs["some"], mount / "run")
        if subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount the tmpfs read-only here")
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


# ----------------------------------------------------------------------------- the cases
def eval_cmd(w, out: Path, *args: str, model: Path | str | None = None) -> list[str]:
    """``pmd-harness eval`` of ``model`` (default: the good tiny model) on demo_mcq into ``out``."""
    return ["pmd-harness", "eval", "--model", str(model or w.tiny), "--tasks", "demo_mcq",
            "--output-dir", str(out), "--name", "bad", *args]


def lm_eval_cmd(out: Path, model_args: str, *args: str, model: str = "hf") -> list[str]:
    return ["pmd-lm-eval", "--model", model, "--tasks", "demo_mcq", "--model_args", model_args,
            "--output_path", str(out / "lm-eval"), *args]


def score_cmd(w, out: Path, responses: str | Path, *args: str, task: str = "demo_mcq") -> list[str]:
    path = responses if isinstance(responses, Path) else w.responses / f"{responses}.jsonl"
    return ["pmd-harness", "score", "--task", task, "--responses", str(path), "--output", str(out / "scored.jsonl"), *args]


def bank_args(w, name: str) -> str:
    return f"pretrained={w.tiny},memory={w.banks[name]}"


# id -> (w, out) -> (command, inputs the command was pointed at, words its error line must hold)
CASES = {
    # pmd-harness eval: model folders
    "eval-config-not-json": lambda w, out: (eval_cmd(w, out, model=w.broken["bad-json"]), [w.broken["bad-json"]],
                                            ("config.json", "not valid JSON")),
    "eval-config-no-model-type": lambda w, out: (eval_cmd(w, out, model=w.broken["no-model-type"]),
                                                 [w.broken["no-model-type"]], ("config.json", "model_type")),
    "eval-no-tokenizer": lambda w, out: (eval_cmd(w, out, model=w.broken["no-tokenizer"]), [w.broken["no-tokenizer"]],
                                         ("no tokenizer files", "tokenizer.save_pretrained")),
    "eval-no-weights": lambda w, out: (eval_cmd(w, out, model=w.broken["no-weights"]), [w.broken["no-weights"]],
                                       ("no weights file", "model.safetensors")),
    "eval-truncated-weights": lambda w, out: (eval_cmd(w, out, model=w.broken["truncated"]), [w.broken["truncated"]],
                                              ("model.safetensors", "truncated")),
    "eval-missing-shard": lambda w, out: (eval_cmd(w, out, model=w.broken["missing-shard"]), [w.broken["missing-shard"]],
                                          ("model-00002-of-00002.safetensors", "index.json")),
    "eval-checkpoint-lost-weights": lambda w, out: (eval_cmd(w, out, model=w.runs["checkpoint"]), [w.runs["run"]],
                                                    ("hf", "no weights file")),
    "eval-run-latest-lost-weights": lambda w, out: (eval_cmd(w, out, model=w.runs["run"]), [w.runs["run"]],
                                                    ("step-000002", "hf/model.safetensors is missing")),
    "eval-chat-template-missing": lambda w, out: (eval_cmd(w, out, "--chat-template", model=w.broken["no-chat-template"]),
                                                  [w.broken["no-chat-template"]], "no chat template"),
    "eval-hub-id-offline": lambda w, out: (eval_cmd(w, out, model="pmd-test/not-downloaded"), [w.empty_hub],
                                           ("pmd-test/not-downloaded", "not in the local Hugging Face cache",
                                            "HF_HUB_OFFLINE=1")),
    "eval-hub-id-partly-cached": lambda w, out: (eval_cmd(w, out, model="pmd-test/partial"), [w.hub],
                                                 ("pmd-test/partial", "only partly", "no weights file")),
    # pmd-harness eval: settings
    "eval-limit-zero": lambda w, out: (eval_cmd(w, out, "--limit", "0"), [w.tiny], "--limit must be at least 1"),
    "eval-limit-negative": lambda w, out: (eval_cmd(w, out, "--limit", "-3"), [w.tiny], "--limit must be at least 1"),
    "eval-tasks-empty": lambda w, out: (eval_cmd(w, out)[:4] + ["--tasks", " , ", *eval_cmd(w, out)[6:]], [w.tiny],
                                        "at least one task"),
    "eval-unknown-task": lambda w, out: (eval_cmd(w, out)[:4] + ["--tasks", "demo_mcqq", *eval_cmd(w, out)[6:]], [w.tiny],
                                         ("unknown task 'demo_mcqq'", "demo_mcq")),
    "eval-samples-zero": lambda w, out: (eval_cmd(w, out, "--samples", "0"), [w.tiny], "--samples must be at least 1"),
    "eval-max-gen-toks-zero": lambda w, out: (eval_cmd(w, out, "--max-gen-toks", "0"), [w.tiny], "--max-gen-toks"),
    "eval-batch-size-zero": lambda w, out: (eval_cmd(w, out, "--batch-size", "0"), [w.tiny], "--batch-size"),
    "eval-scaling-k-above-samples": lambda w, out: (eval_cmd(w, out, "--samples", "4", "--scaling", "--scaling-k", "1,16"),
                                                    [w.tiny], "k = [16] is larger than --samples 4"),
    "eval-data-dir-missing": lambda w, out: (eval_cmd(w, out, "--data-dir", str(out / "no-such-split")), [w.tiny],
                                             ("--data-dir", "not a folder")),
    # pmd-harness eval: banks
    "eval-memory-k-negative": lambda w, out: (eval_cmd(w, out, "--memory", str(w.banks["insights"]), "--memory-k", "-1"),
                                              [w.tiny, w.banks["insights"]], "--memory-k takes entry counts >= 0"),
    "eval-memory-k-garbage": lambda w, out: (eval_cmd(w, out, "--memory", str(w.banks["insights"]), "--memory-k", "three"),
                                             [w.tiny, w.banks["insights"]], "comma-separated integers"),
    "eval-bank-missing": lambda w, out: (eval_cmd(w, out, "--memory", str(out / "none.db")), [w.tiny], "no memory bank"),
    "eval-bank-missing-k-zero-only": lambda w, out: (eval_cmd(w, out, "--memory", str(out / "none.db"), "--memory-k", "0"),
                                                     [w.tiny], "no memory bank"),
    "eval-bank-not-sqlite": lambda w, out: (eval_cmd(w, out, "--memory", str(w.banks["text"])), [w.tiny, w.banks["text"]],
                                            "not a SQLite"),
    "eval-bank-nothing-at-levels": lambda w, out: (eval_cmd(w, out, "--memory", str(w.banks["experiences"])),
                                                   [w.tiny, w.banks["experiences"]],
                                                   ("holds no insight or behavior entries", "1 experience",
                                                    "--levels experience")),
    "eval-bank-empty": lambda w, out: (eval_cmd(w, out, "--memory", str(w.banks["empty"]), "--memory-k", "0,3"),
                                       [w.tiny, w.banks["empty"]], "is empty"),
    "eval-unknown-level": lambda w, out: (eval_cmd(w, out, "--memory", str(w.banks["insights"]), "--levels", "insigth"),
                                          [w.tiny, w.banks["insights"]], "unknown memory level(s) insigth"),
    # pmd-harness eval: output location
    "eval-output-parent-is-file": lambda w, out: (eval_cmd(w, w.file / "results"), [w.tiny, w.file], "is a file"),
    "eval-output-dir-is-file": lambda w, out: (eval_cmd(w, w.file), [w.tiny, w.file], "is a file"),
    "eval-name-with-slash": lambda w, out: (eval_cmd(w, out)[:-1] + ["a/b"], [w.tiny], "plain folder name"),
    # pmd-lm-eval
    "lm-eval-no-tokenizer": lambda w, out: (lm_eval_cmd(out, f"pretrained={w.broken['no-tokenizer']}"),
                                            [w.broken["no-tokenizer"]], ("pretrained", "no tokenizer files")),
    "lm-eval-config-not-json": lambda w, out: (lm_eval_cmd(out, f"pretrained={w.broken['bad-json']}"),
                                               [w.broken["bad-json"]], ("config.json", "not valid JSON")),
    "lm-eval-no-weights": lambda w, out: (lm_eval_cmd(out, f"pretrained={w.broken['no-weights']}"),
                                          [w.broken["no-weights"]], "no weights file"),
    "lm-eval-checkpoint-lost-weights": lambda w, out: (lm_eval_cmd(out, f"pretrained={w.runs['checkpoint'] / 'hf'}"),
                                                       [w.runs["run"]], "no weights file"),
    "lm-eval-pretrained-is-a-run": lambda w, out: (lm_eval_cmd(out, f"pretrained={w.runs['run']}"), [w.runs["run"]],
                                                   ("no config.json", "checkpoints/step-N/hf")),
    "lm-eval-chat-template-missing": lambda w, out: (lm_eval_cmd(out, f"pretrained={w.broken['no-chat-template']}",
                                                                 "--apply_chat_template"),
                                                     [w.broken["no-chat-template"]], "no chat template"),
    "lm-eval-hub-id-offline": lambda w, out: (lm_eval_cmd(out, "pretrained=pmd-test/not-downloaded"), [w.empty_hub],
                                              "not in the local Hugging Face cache"),
    "lm-eval-memory-missing": lambda w, out: (lm_eval_cmd(out, f"pretrained={w.tiny},memory={out / 'none.db'}",
                                                          model="pmd-memory"), [w.tiny], "no memory bank"),
    "lm-eval-memory-not-a-bank": lambda w, out: (lm_eval_cmd(out, bank_args(w, "text"), model="pmd-memory"),
                                                 [w.tiny, w.banks["text"]], "not a SQLite"),
    "lm-eval-memory-not-given": lambda w, out: (lm_eval_cmd(out, f"pretrained={w.tiny}", model="pmd-memory"), [w.tiny],
                                                "memory=PATH"),
    "lm-eval-memory-k-garbage": lambda w, out: (lm_eval_cmd(out, bank_args(w, "insights") + ",memory_k=abc",
                                                            model="pmd-memory"),
                                                [w.tiny, w.banks["insights"]], ("memory_k", "whole number", "abc")),
    "lm-eval-memory-k-negative": lambda w, out: (lm_eval_cmd(out, bank_args(w, "insights") + ",memory_k=-2",
                                                             model="pmd-memory"),
                                                 [w.tiny, w.banks["insights"]], "memory_k must be at least 1, got -2"),
    "lm-eval-bank-nothing-at-levels": lambda w, out: (lm_eval_cmd(out, bank_args(w, "experiences"), model="pmd-memory"),
                                                      [w.tiny, w.banks["experiences"]], ("holds no", "levels=experience")),
    "lm-eval-limit-zero": lambda w, out: (lm_eval_cmd(out, f"pretrained={w.tiny}", "--limit", "0"), [w.tiny], "--limit"),
    "lm-eval-output-parent-is-file": lambda w, out: (lm_eval_cmd(w.file, f"pretrained={w.tiny}"), [w.tiny, w.file],
                                                     ("--output_path", "is a file")),
    # pmd-harness score
    "score-empty-responses": lambda w, out: (score_cmd(w, out, "empty"), [w.responses], "is empty"),
    "score-blank-responses": lambda w, out: (score_cmd(w, out, "blank"), [w.responses], "holds no responses"),
    "score-no-valid-line": lambda w, out: (score_cmd(w, out, "bad"), [w.responses],
                                           ("no valid response line", "line 1: not JSON", "2 more")),
    "score-unknown-task": lambda w, out: (score_cmd(w, out, "good", task="demo_mcqq"), [w.responses], "unknown task"),
    "score-responses-is-dir": lambda w, out: (score_cmd(w, out, w.responses), [w.responses], "is a directory"),
    "score-output-is-responses": lambda w, out: (score_cmd(w, out, "good")[:-1] + [str(w.responses / "good.jsonl")],
                                                 [w.responses], "is the --responses file itself"),
    "score-output-parent-is-file": lambda w, out: (score_cmd(w, w.file, "good"), [w.responses, w.file], "is a file"),
    # pmd-harness report
    "report-no-valid-metrics-line": lambda w, out: (["pmd-harness", "report", str(w.runs["broken"])], [w.runs["broken"]],
                                                    ("no complete step record", "3 lines could not be read")),
    "report-broken-eval-summary": lambda w, out: (["pmd-harness", "report", str(w.runs["some"]), str(w.runs["bad_eval"])],
                                                  [w.runs["some"], w.runs["bad_eval"]], ("summary.json", "not valid JSON")),
    "report-out-is-json": lambda w, out: (["pmd-harness", "report", str(w.runs["some"]), "--out", str(out / "cmp.json")],
                                          [w.runs["some"]], "give the table's .md path"),
    "report-folder-is-file": lambda w, out: (["pmd-harness", "report", str(w.file)], [w.file], "neither a pmd-train run"),
}

# Cases on a read-only mount: (w, ro, out) -> (command, touched, contains)
READONLY_CASES = {
    "eval-output-read-only": lambda w, ro, out: (eval_cmd(w, ro / "results"), [w.tiny, ro], "read-only file system"),
    "lm-eval-output-read-only": lambda w, ro, out: (lm_eval_cmd(ro, f"pretrained={w.tiny}"), [w.tiny, ro],
                                                    ("--output_path", "read-only")),
    "score-output-read-only": lambda w, ro, out: (score_cmd(w, ro, "good"), [w.responses, ro], ("--output", "read-only")),
    "report-run-on-read-only": lambda w, ro, out: (["pmd-harness", "report", str(ro / "run")], [ro],
                                                   ("report folder", "read-only")),
    "report-out-read-only": lambda w, ro, out: (["pmd-harness", "report", str(w.runs["some"]), "--out", str(ro / "cmp.md")],
                                                [w.runs["some"], ro], ("--out", "read-only")),
}


def _env(w) -> dict:
    """Offline, with the test's own Hugging Face cache (``pmd-test/partial`` only)."""
    return cli_env(HF_HUB_CACHE=str(w.hub), HF_HOME=str(w.root / "hf-home"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_and_nothing_changes(world, tmp_path, case):
    """One ``error:`` line holding the expected words; no file under the inputs or ``tmp_path``
    (the output location) created, removed or changed."""
    out = tmp_path / "out"
    command, touched, contains = CASES[case](world, out)
    env = _env(world) if "offline" not in case else cli_env(HF_HUB_CACHE=str(world.empty_hub),
                                                             HF_HOME=str(world.root / "hf-home"))
    assert_refused_untouched(command, [*touched, tmp_path], contains=contains, env=env, timeout=120)


@pytest.mark.parametrize("case", sorted(READONLY_CASES))
def test_unwritable_output_is_one_line(world, readonly, tmp_path, case):
    command, touched, contains = READONLY_CASES[case](world, readonly, tmp_path / "out")
    assert_refused_untouched(command, [*touched, tmp_path], contains=contains, env=_env(world), timeout=120)


# ------------------------------------------------------------------- what still works
def test_report_skips_broken_metrics_lines_and_says_how_many(world, tmp_path):
    """A metrics file with some broken lines still gets its report; stderr and report.md say
    how many lines were skipped, and nothing but report/ is written."""
    run = tmp_path / "run"
    shutil.copytree(world.runs["some"], run)
    proc = run_cli(["pmd-harness", "report", str(run)], env=_env(world), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "skipped 2 lines" in warnings[0], proc.stderr
    assert "| metrics lines skipped | 2 " in (run / "report" / "report.md").read_text()
    assert json.loads((run / "report" / "report.json").read_text())["metrics_lines_skipped"] == 2
    assert sorted(p.name for p in run.iterdir()) == ["metrics.jsonl", "report"]


def test_score_skips_bad_lines_when_some_are_valid(world, tmp_path):
    responses = tmp_path / "mixed.jsonl"
    responses.write_text("garbage\n" + GOOD_RESPONSE)
    proc = run_cli(score_cmd(world, tmp_path, responses), env=_env(world), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "line 1: not JSON" in proc.stderr and "1 bad lines skipped" in proc.stdout
    assert len((tmp_path / "scored.jsonl").read_text().splitlines()) == 1


# ------------------------------------------------------------------- pmd.model_check in process
def test_a_good_model_folder_passes(world):
    check_model_folder(world.tiny, chat_template=True)
    check_model_spec(str(world.tiny))


@pytest.mark.parametrize("name, words", [
    ("bad-json", "is not valid JSON"), ("no-model-type", "has no model_type"), ("no-tokenizer", "no tokenizer files"),
    ("no-weights", "no weights file"), ("truncated", "is truncated"), ("missing-shard", "lacks weight shard"),
])
def test_broken_model_folders_raise_one_line(world, name, words):
    with pytest.raises(ModelFolderError, match=words) as err:
        check_model_folder(world.broken[name], what="--model")
    assert "\n" not in str(err.value) and str(err.value).startswith("--model: ")


def test_folder_checks_point_at_the_fix(world, tmp_path):
    with pytest.raises(ModelFolderError, match="not found"):
        check_model_folder(tmp_path / "nowhere")
    with pytest.raises(ModelFolderError, match="is a file, not a model folder"):
        check_model_folder(world.tiny / "config.json")
    with pytest.raises(ModelFolderError, match="looks like a pmd checkpoint: point at"):
        check_model_folder(world.runs["checkpoint"])
    with pytest.raises(ModelFolderError, match="no chat template"):
        check_model_folder(world.broken["no-chat-template"], chat_template=True)
    check_model_folder(world.broken["no-tokenizer"], tokenizer=False)  # the tokenizer comes from elsewhere


def test_hub_ids_offline_need_the_whole_model_in_the_cache(world, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(world.hub))
    with pytest.raises(ModelFolderError, match="not in the local Hugging Face cache and the hub is offline"):
        check_model_spec("pmd-test/not-downloaded")
    with pytest.raises(ModelFolderError, match="only partly in the local Hugging Face cache"):
        check_model_spec("pmd-test/partial")
