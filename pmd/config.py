"""Typed configuration: dataclasses <-> YAML, with type-checked ``--set a.b=c`` overrides.

Every entry point owns one config dataclass, grouped by concern into nested dataclasses and
validated in ``__post_init__``. This module holds the machinery they share:

* ``from_dict(cls, data)`` builds the dataclass tree, checking every value against its annotation
  (``int``, ``float``, ``str``, ``bool``, ``Literal[...]``, ``Optional[...]``, ``list[...]``,
  ``dict[str, ...]`` and nested dataclasses; a ``float`` must be finite: ``nan`` and ``inf`` would
  slip past every range check). Unknown keys are an error naming the key and the closest valid one.
* ``apply_overrides(data, ["a.b=c", ...], cls)`` edits the raw dict; the override's text is parsed
  by the *target field's* type (``--set run.name=2024`` stays the string "2024").
* ``to_dict`` / ``dump_yaml`` / ``save_yaml``: YAML is the saved dataclass, so a saved config
  loads back to an equal object.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A user-facing configuration problem; the message is one line naming the fix."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    if origin is not None:
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", str(tp))


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if close:
        return f"did you mean '{close[0]}'?"
    return "valid keys: " + ", ".join(sorted(valid))


def _check_value(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` converted to ``tp`` or raise ConfigError naming ``where``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return _from_dict(tp, value, where)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{where}: expected one of {_type_name(tp)}, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp, *_) = get_args(tp) or (Any,)
        items = [_check_value(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, val_tp = get_args(tp) or (str, Any)
        return {str(k): _check_value(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads "1e-5" (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(number):  # nan passes every "< low" check, inf every "> 0" one
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported config type {_type_name(tp)}")


def _from_dict(cls: type[T], data: dict, prefix: str) -> T:
    hints = _field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            valid = [f"{prefix}.{name}" if prefix else name for name in fields]
            raise ConfigError(f"unknown config key '{where}': {_suggest(where, valid)}")
        kwargs[key] = _check_value(value, hints[key], where)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        where = prefix or cls.__name__
        message = str(err)
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}") from None


def from_dict(cls: type[T], data: dict | None) -> T:
    """Build ``cls`` from a plain mapping, type-checking every value (see module docstring)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"a {cls.__name__} config must be a mapping, got {type(data).__name__}")
    return _from_dict(cls, data, "")


def to_dict(cfg: Any) -> dict:
    """The plain-data form of a config dataclass (what YAML stores)."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False)


def save_yaml(cfg: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml(cfg), encoding="utf-8")
    return path


def _resolve_type(cls: type, dotted: str) -> Any:
    """The annotation of the field at ``dotted`` (e.g. ``memory.limits.max_insights``)."""
    tp: Any = cls
    walked = []
    for part in dotted.split("."):
        while get_origin(tp) in (Union, types.UnionType):  # Optional[Dataclass]
            tp = next(a for a in get_args(tp) if a is not type(None))
        if not dataclasses.is_dataclass(tp):
            raise ConfigError(f"'{'.'.join(walked)}' has no sub-keys, so '{dotted}' is not a key")
        names = [f.name for f in dataclasses.fields(tp) if f.init]
        if part not in names:
            valid = [".".join([*walked, n]) for n in names]
            where = ".".join([*walked, part])
            raise ConfigError(f"unknown config key '{where}': {_suggest(where, valid)}")
        tp = _field_types(tp)[part]
        walked.append(part)
    return tp


def _parse_scalar(text: str, tp: Any, key: str) -> Any:
    """Parse override text guided by the target type, so strings stay strings."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if text.strip().lower() in ("null", "none", "~") and len(args) < len(get_args(tp)):
            return None
        if len(args) == 1:
            return _parse_scalar(text, args[0], key)
    if tp is str:
        return text
    if origin is Literal and all(isinstance(a, str) for a in get_args(tp)):
        return text
    if tp is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"--set {key}={text}: expected true or false")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"--set {key}={text}: the value is not valid YAML") from None


def apply_overrides(data: dict, overrides: list[str], cls: type) -> dict:
    """Apply ``key.path=value`` overrides to a raw config mapping (a new dict is returned)."""
    import copy

    data = copy.deepcopy(data or {})
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set optim.lr=1e-5")
        key, text = item.split("=", 1)
        key = key.strip()
        value = _parse_scalar(text, _resolve_type(cls, key), key)
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = value
    return data


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}; check indentation and quoting") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a YAML mapping of sections")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] = ()) -> T:
    """Read ``path`` (optional), apply ``overrides`` and build a validated ``cls``."""
    data = read_yaml(path) if path else {}
    try:
        return from_dict(cls, apply_overrides(data, list(overrides), cls))
    except ConfigError as err:
        if path:
            raise ConfigError(f"{path}: {err}") from None
        raise
