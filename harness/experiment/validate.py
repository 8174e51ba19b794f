"""Every variant's training config checked before the first run starts, as ``pmd-train`` (and
``pmd-train --dry-run``) would check it: a bad variant is found in seconds, not after hours."""
from __future__ import annotations

from pathlib import Path

from .plan import Layout, Run, train_overrides
from .spec import ExperimentConfig


def _inside(path: str | None, root: Path) -> bool:
    if not path:
        return False
    try:
        Path(path).resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def check_variants(experiment: ExperimentConfig, *, dry_run: bool) -> list[str]:
    """Load and preflight each variant (first seed); returns the note lines, each once, with the
    variants it concerns.
    A frozen bank inside the experiment folder that does not exist yet is made by an earlier
    variant and checked when its run starts."""
    from pmd.config import ConfigError, load_config
    from trainer.config import TrainConfig
    from trainer.preflight import preflight

    layout = Layout(experiment.folder)
    notes: dict[str, list[str]] = {}
    for variant in experiment.variants:
        run = Run(variant, experiment.seeds[0])
        path = experiment.variant_config_path(variant)
        overrides = train_overrides(experiment, run, layout)
        try:
            config = load_config(TrainConfig, path, overrides)
            later = (config.memory.mode == "frozen" and _inside(config.memory.bank, experiment.folder)
                     and not Path(config.memory.bank).exists())
            found = preflight(config, dry_run=dry_run, config_path=path, overrides=overrides, bank_made_earlier=later)
        except ConfigError as err:
            raise ConfigError(f"variant {variant}: {err}") from None
        except (ValueError, FileNotFoundError) as err:
            raise ValueError(f"variant {variant}: {err}") from None
        for note in found:
            notes.setdefault(note.removeprefix("note: "), []).append(variant)
    return [f"({', '.join(variants)}) {note}" for note, variants in notes.items()]
