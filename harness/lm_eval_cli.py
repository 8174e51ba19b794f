"""``pmd-lm-eval``: lm-eval's own command line, with pmd's model and tasks available.

lm-eval finds a model class only if the module defining it was imported, and finds tasks only
under its own folder or an ``--include_path``. This entry point imports ``harness.memory_lm``
(registering the ``pmd-memory`` model) and adds ``--include_path`` for pmd's ``tasks/`` folder
when none is given; every argument is lm-eval's. Examples::

    pmd-lm-eval --model hf --model_args pretrained=.demo/models/tiny --tasks demo_mcq
    pmd-lm-eval --model pmd-memory --tasks demo_mcq --apply_chat_template \\
        --model_args pretrained=.demo/models/tiny-large,memory=results/demo/bank.db,memory_k=3 \\
        --output_path results/lm-eval --log_samples
"""
from __future__ import annotations

import sys
from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"
SUBCOMMANDS = ("run", "ls", "validate")  # each takes --include_path


def with_pmd_tasks(argv: list[str]) -> list[str]:
    """``argv`` plus ``--include_path <pmd tasks>`` unless an include path is already given."""
    if any(arg == "--include_path" or arg.startswith("--include_path=") for arg in argv):
        return argv
    return [*argv, "--include_path", str(TASKS_DIR)]


def main() -> None:
    import harness.memory_lm  # noqa: F401  (registers the pmd-memory model with lm-eval)
    from lm_eval.__main__ import cli_evaluate

    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        pass
    elif args[0] in SUBCOMMANDS:
        args = [args[0], *with_pmd_tasks(args[1:])]
    else:  # lm-eval's legacy form, which means `run`
        args = with_pmd_tasks(args)
    sys.argv = [sys.argv[0], *args]
    cli_evaluate()


if __name__ == "__main__":
    main()
