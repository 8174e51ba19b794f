"""Per-step metrics: JSON Lines beside the run (machine-readable), optional TensorBoard and
Weights & Biases, and phase timers so every step reports where its time went."""
from __future__ import annotations

import contextlib
import json
import secrets
import string
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path


class PhaseTimer:
    """Accumulates wall time per named phase: ``with timer("rollout"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - start

    def as_metrics(self) -> dict[str, float]:
        out = {f"time/{phase}": round(s, 4) for phase, s in self.seconds.items()}
        out["time/step"] = round(sum(self.seconds.values()), 4)
        return out


class WandbSink:
    """One W&B run per training run: the resolved config once, then every step's scalars.

    The run's id is kept in ``<run>/wandb-id``, so a resumed training run continues the same W&B
    run (``resume="allow"``) instead of starting a second one; the steps replayed after a resume
    are logged again under the same step numbers, as in metrics.jsonl."""

    ID_FILE = "wandb-id"

    def __init__(self, settings, run_dir: Path, run_name: str, config: dict) -> None:
        try:
            import wandb
        except ImportError:
            raise ValueError("logging.wandb.project is set but the wandb package is not installed: "
                             "pip install wandb (or set logging.wandb.project to null)") from None
        id_file = run_dir / self.ID_FILE
        if id_file.is_file():
            run_id = id_file.read_text(encoding="utf-8").strip()
        else:
            run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
            id_file.write_text(run_id, encoding="utf-8")
        self._run = wandb.init(project=settings.project, entity=settings.entity, name=settings.name or run_name,
                               group=settings.group, tags=list(settings.tags) or None, mode=settings.mode,
                               config=config, id=run_id, resume="allow", dir=str(run_dir))

    def log(self, step: int, values: dict) -> None:
        self._run.log({k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
                      step=step)

    def close(self) -> None:
        self._run.finish()


class MetricsWriter:
    """Appends one JSON object per step to ``metrics.jsonl`` (flushed, so a crash loses nothing
    already written) and mirrors scalars to TensorBoard and W&B (``sinks``) when asked."""

    def __init__(self, path: Path, tensorboard_dir: Path | None = None, sinks: tuple = ()) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ValueError("logging.tensorboard needs the tensorboard package: pip install tensorboard") from None
            self._tb = SummaryWriter(str(tensorboard_dir))
        self._sinks = list(sinks)

    def write(self, step: int, values: dict) -> None:
        record = {"step": step, **values}
        self._handle.write(json.dumps(record, default=float) + "\n")
        self._handle.flush()
        if self._tb is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, step)
        for sink in self._sinks:
            sink.log(step, values)

    def close(self) -> None:
        self._handle.close()
        if self._tb is not None:
            self._tb.close()
        for sink in self._sinks:
            sink.close()


def read_metrics(path: Path) -> list[dict]:
    """All complete lines of a metrics file (a torn last line from a crash is ignored)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
