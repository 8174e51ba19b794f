"""``pmd-lm-eval``: lm-eval's own command line, with pmd's model and tasks available.

lm-eval finds a model class only if the module defining it was imported, and finds tasks only
under its own folder or an ``--include_path``. This entry point imports ``harness.memory_lm``
(registering the ``pmd-memory`` model) and adds ``--include_path`` for pmd's ``tasks/`` folder
when none is given; every argument is lm-eval's. Examples::

    pmd-lm-eval --model hf --model_args pretrained=.demo/models/tiny --tasks demo_mcq
    pmd-lm-eval --model pmd-memory --tasks demo_mcq --apply_chat_template \\
        --model_args pretrained=.demo/models/tiny-large,memory=results/demo/bank.db,memory_k=3 \\
        --output_path results/lm-eval --log_samples

Before lm-eval starts, ``preflight`` checks what a run is pointed at (the ``pretrained=`` model
folder or hub id, the ``memory=`` bank and ``memory_k=`` of ``pmd-memory``, ``--output_path``,
``--limit``), and user errors anywhere end as one ``error: ...`` line (``pmd.errors``), like the
other pmd commands.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from pmd.errors import reports_user_errors

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"
SUBCOMMANDS = ("run", "ls", "validate")  # each takes --include_path
HF_MODELS = ("hf", "hf-auto", "huggingface", "vllm")  # lm-eval models that load ``pretrained=`` from disk or hub


def with_pmd_tasks(argv: list[str]) -> list[str]:
    """``argv`` plus ``--include_path <pmd tasks>`` unless an include path is already given."""
    if any(arg == "--include_path" or arg.startswith("--include_path=") for arg in argv):
        return argv
    return [*argv, "--include_path", str(TASKS_DIR)]


def _yaml_config(path: str | None) -> dict:
    """The ``--config`` YAML file's settings (lm-eval reports a broken one itself)."""
    if not path or not Path(path).is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _check_memory_args(model_args: dict) -> None:
    """``pmd-memory``'s own arguments: a bank that holds entries at ``levels``, a whole
    ``memory_k`` >= 1, a known retriever, a writable ``memory_log``."""
    from harness.atomic_files import check_writable
    from harness.memory_lm import MODEL_NAME, BankMemory, parse_memory_k

    if model_args.get("memory") in (None, ""):
        raise ValueError(f"{MODEL_NAME} needs a bank: add memory=PATH/TO/BANK.db to --model_args")
    parse_memory_k(model_args.get("memory_k", 3))
    bank = BankMemory(str(model_args["memory"]), retriever=str(model_args.get("retriever", "hybrid")),
                      levels=model_args.get("levels", "insight+behavior"), levels_option="levels=")
    bank.close()
    if model_args.get("memory_log"):
        check_writable(str(model_args["memory_log"]), "memory_log")


def preflight(args) -> None:
    """Check a ``run``'s inputs and output location before lm-eval loads anything."""
    from pmd.model_check import check_model_spec

    from harness.atomic_files import check_writable

    config = _yaml_config(getattr(args, "config", None))
    model = getattr(args, "model", None) or config.get("model") or "hf"
    model_args = {**(config.get("model_args") or {}), **(getattr(args, "model_args", None) or {})}
    limit = getattr(args, "limit", None)
    if limit is not None and limit <= 0:
        raise ValueError(f"--limit must be a positive number of examples (or a fraction), got {limit:g}; "
                         "leave it out to evaluate every example")
    if model == "pmd-memory":
        _check_memory_args(model_args)
    backend = model_args.get("backend", "hf") if model == "pmd-memory" else model
    if backend in HF_MODELS and model_args.get("pretrained") not in (None, ""):
        chat = getattr(args, "apply_chat_template", False) is True
        check_model_spec(str(model_args["pretrained"]), what="--model_args pretrained", chat_template=chat,
                         tokenizer=not model_args.get("tokenizer"))
    output_path = getattr(args, "output_path", None) or config.get("output_path")
    if output_path:
        check_writable(output_path, "--output_path")


@reports_user_errors
def run_lm_eval() -> None:
    """lm-eval's ``cli_evaluate`` with ``preflight`` between parsing and running."""
    import harness.memory_lm  # noqa: F401  (registers the pmd-memory model with lm-eval)
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    setup_logging()
    parser = HarnessCLI()
    args = parser.parse_args()
    if getattr(args, "command", None) == "run":
        preflight(args)
    # lm-eval imports its own models only while its registry is empty, and pmd-memory is in it
    import lm_eval.models  # noqa: F401  (registers hf, vllm, ...)

    parser.execute(args)


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        pass
    elif args[0] in SUBCOMMANDS:
        args = [args[0], *with_pmd_tasks(args[1:])]
    else:  # lm-eval's legacy form, which means `run`
        args = with_pmd_tasks(args)
    sys.argv = [sys.argv[0], *args]
    try:
        run_lm_eval()
    except click.ClickException as err:  # a user error: one line, no traceback
        err.show()
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
