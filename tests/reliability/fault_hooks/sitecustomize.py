"""Fault injection for the reliability suites, loaded into a ``pmd-train`` process through
``PYTHONPATH`` (Python imports ``sitecustomize`` at start-up). Inert unless ``PMD_FAULT`` is set.

``PMD_FAULT`` is one of:

* ``kill_in_bank_write:N``  SIGKILL inside the N-th ``MemoryBank.add_experiences`` call, after its
  rows are inserted and before the step's transaction commits;
* ``kill_in_save:N``        SIGKILL in the middle of the N-th checkpoint save of this process
  (the student's weights and DeepSpeed state written, the teacher not yet);
* ``pause_before_save:N:DIR``  before the N-th save, create ``DIR/ready`` and wait for ``DIR/go``
  (the test changes the disk in between: fills it, or remounts it read-only).

The faults are real: the process is killed by the kernel, the disk really is full or read-only.
Only the moment is chosen here, so the tests can hit windows of milliseconds every time.
"""
import os

_SPEC = os.environ.get("PMD_FAULT", "")


def _nth_call(n: int, before=None, after=None):
    """A decorator factory: run ``before``/``after`` around the n-th call of the wrapped function."""
    def wrap(func):
        count = [0]

        def wrapper(*args, **kwargs):
            count[0] += 1
            if count[0] == n and before:
                before()
            result = func(*args, **kwargs)
            if count[0] == n and after:
                after()
            return result

        return wrapper
    return wrap


def _kill() -> None:
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def _pause(folder: str) -> None:
    import time
    from pathlib import Path

    Path(folder, "ready").touch()
    while not Path(folder, "go").exists():
        time.sleep(0.05)


def _install(spec: str) -> None:
    kind, _, rest = spec.partition(":")
    count, _, arg = rest.partition(":")
    n = int(count)
    if kind == "kill_in_bank_write":
        from memory_bank.bank import MemoryBank

        MemoryBank.add_experiences = _nth_call(n, after=_kill)(MemoryBank.add_experiences)
    elif kind == "kill_in_save":
        from trainer import checkpoint, components

        components._fault_saves = 0
        original = components._write_checkpoint

        def counting(*args, **kwargs):
            components._fault_saves += 1
            return original(*args, **kwargs)

        components._write_checkpoint = counting
        save_teacher = checkpoint.save_module_weights

        def teacher_then_maybe_die(*args, **kwargs):
            if components._fault_saves == n:
                _kill()
            return save_teacher(*args, **kwargs)

        checkpoint.save_module_weights = teacher_then_maybe_die
    elif kind == "pause_before_save":
        from trainer import components

        components._write_checkpoint = _nth_call(n, before=lambda: _pause(arg))(components._write_checkpoint)
    else:
        raise SystemExit(f"sitecustomize: unknown PMD_FAULT {spec!r}")


if _SPEC:
    _install(_SPEC)
