"""Frozen-dataclass configs with YAML as their serialized form (shared by every stage).

A stage defines one tree of frozen dataclasses with a comment per field. This module turns
YAML (plus ``--set a.b=value`` overrides) into that tree and back. Unknown keys are errors
that name the file and the key; values are checked against the field types.

Numbers are checked the same way everywhere, before a section's own ``__post_init__`` checks:
every number must be finite and >= 0 (no setting of either stage takes a negative value: a
negative batch size or rate is never meant); the fields a section names in
``POSITIVE`` (counts, widths, rates) must be > 0; and a field whose name ends in ``dropout``
is a probability of dropping, in [0, 1).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from data_manifests.errors import UserError

T = TypeVar("T")


class ConfigError(UserError):
    """A config file or override has an unknown key or a value of the wrong type."""


def load_config(cls: type[T], path: str | Path | None = None,
                overrides: Sequence[str] = (), base: Mapping[str, Any] | None = None) -> T:
    """Build ``cls`` from a YAML file (optional) and ``key.sub=value`` overrides.

    ``base`` (dotted keys -> values) sits below both: defaults that differ from the dataclass's
    own, such as a method's official settings of a shared section.
    """
    source = str(path) if path is not None else "<defaults>"
    raw: dict[str, Any] = {}
    for key, value in (base or {}).items():
        _set_dotted(raw, key, value)
    if path is not None:
        _merge(raw, read_config_file(path))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key.sub=value")
        _set_dotted(raw, key.strip(), yaml.safe_load(value))
    return from_dict(cls, raw, source=source)


BASE_KEY = "_base_"  # a config file's parent(s): paths relative to the file, merged below it


def config_files(path: str | Path, _chain: tuple[Path, ...] = ()) -> list[Path]:
    """``path`` and every file it inherits from through ``_base_``, bases first."""
    path = Path(path)
    files = []
    for base in _bases(path, _read_mapping(path), _chain):
        files += config_files(base, (*_chain, path.resolve()))
    return [*files, path]


def read_config_file(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The mapping of a YAML config file with its ``_base_`` files merged below it (in order;
    a later base and the file itself win), so related configs state only what differs."""
    path = Path(path)
    loaded = _read_mapping(path)
    merged: dict[str, Any] = {}
    for base in _bases(path, loaded, _chain):
        _merge(merged, read_config_file(base, (*_chain, path.resolve())))
    _merge(merged, {k: v for k, v in loaded.items() if k != BASE_KEY})
    return merged


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got "
                          f"{type(loaded).__name__}")
    return loaded


def _bases(path: Path, loaded: Mapping[str, Any], chain: tuple[Path, ...]) -> list[Path]:
    names = loaded.get(BASE_KEY) or []
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{path}: {BASE_KEY} must be a path or a list of paths, got {names!r}")
    bases = [(path.parent / name) for name in names]
    for base in bases:
        if base.resolve() in (*chain, path.resolve()):
            raise ConfigError(f"{path}: {BASE_KEY} {base} inherits from itself "
                              f"({' -> '.join(str(p) for p in (*chain, path.resolve()))})")
    return bases


def from_dict(cls: type[T], raw: Mapping[str, Any], source: str = "<config>", prefix: str = "") -> T:
    """Recursively build dataclass ``cls`` from a mapping; missing keys take the defaults."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: {prefix or 'config'} must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"{source}: unknown key(s) {[where + k for k in unknown]}; "
                          f"known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, source, _join(prefix, name))
              for name, value in raw.items()}
    for name, value in kwargs.items():
        _check_number(cls, name, value, source, _join(prefix, name))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        text = str(exc)
        if prefix and text.split("=", 1)[0] in fields:  # "hidden=7 ..." -> "cpl.hidden=7 ..."
            raise ConfigError(f"{source}: {prefix}.{text}") from exc
        raise ConfigError(f"{source}: {prefix or cls.__name__}: {text}") from exc


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) for YAML/JSON."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def dump_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value if value is not None else {}, source, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, source, key)
            except ConfigError:
                continue
        raise ConfigError(f"{source}: {key}={value!r} does not match {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{source}: {key}={value!r}; choose one of {list(args)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict or hint is Any:
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads "3e-4" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if hint in (int, str, bool) and type(value) is hint:
        return value
    if hint is float or hint in (int, str, bool):
        raise ConfigError(f"{source}: {key}={value!r} must be {hint.__name__}")
    return value


def _check_number(cls: type, name: str, value: Any, source: str, key: str) -> None:
    """The range rules of the module docstring for one field's value (numbers, or a tuple's)."""
    if isinstance(value, tuple):
        for i, item in enumerate(value):
            _check_number(cls, name, item, source, f"{key}[{i}]")
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if not math.isfinite(value):
        raise ConfigError(f"{source}: {key}={value!r} must be a finite number")
    if value < 0:
        raise ConfigError(f"{source}: {key}={value!r} must be >= 0")
    if value <= 0 and name in getattr(cls, "POSITIVE", ()):
        raise ConfigError(f"{source}: {key}={value!r} must be > 0")
    if name.endswith("dropout") and value >= 1:
        raise ConfigError(f"{source}: {key}={value!r} must lie in [0, 1) (a probability of "
                          "dropping)")


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
    node[leaf] = value


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    """Deep-update ``into`` with ``other`` (sections merge, values replace)."""
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
