"""The one config loader: YAML files (bundled names or paths), `--set a.b=value` overrides, and nested
dataclasses built from the result, refusing unknown keys by their dotted path.

Bundled configs ship as package data under `fusionproxy/configs/<folder>/`; a name such as `cpu` resolves to
`<folder>/<prefix><name>.yaml` there, anything ending in .yaml/.yml (or an existing file) is a path.

`build_config(cls, values)` builds dataclass `cls`: a key whose field is itself a dataclass (or an optional
one) is built the same way, recursively; every other value is passed as is (a `dict` field keeps the raw
mapping). A config class may name its keys in messages with `config_noun` (default "option"); a field with
`metadata={NOT_A_KEY: True}` is set by code and refused in a file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from .errors import FusionProxyError

T = TypeVar("T")
NOT_A_KEY = "not_a_key"


def resolve_config(name_or_path: str, folder: str, prefix: str = "") -> Path:
    """The YAML file behind a bundled config name or a path; a clear error naming what exists otherwise."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise FusionProxyError(f"{candidate}: config file not found")
        return candidate
    directory = resources.files("fusionproxy").joinpath(f"configs/{folder}")
    bundled = directory.joinpath(f"{prefix}{name_or_path}.yaml")
    if not bundled.is_file():
        names = sorted(
            p.name.removeprefix(prefix).removesuffix(".yaml")
            for p in directory.iterdir()
            if p.name.startswith(prefix) and p.name.endswith(".yaml")
        )
        raise FusionProxyError(
            f"{name_or_path}: no such {folder} config (bundled: {', '.join(names)}; or a .yaml path)"
        )
    return Path(str(bundled))


def apply_overrides(values: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides in place (values parsed as YAML, so `.inf`, `[a, b]`, `null` work)."""
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise FusionProxyError(f"--set {override}: expected key=value, e.g. train.max_steps=100")
        *parents, leaf = key.split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise FusionProxyError(f"--set {override}: '{part}' is not a section")
        value = yaml.safe_load(text)
        node[leaf] = float(value) if isinstance(value, str) and value.lower() in ("inf", "+inf") else value
    return values


def load_config_file(
    name_or_path: str, folder: str, prefix: str = "", overrides: Sequence[str] = ()
) -> tuple[dict[str, Any], Path]:
    """(values with overrides applied, the file they came from) for a bundled name or a YAML path."""
    path = resolve_config(name_or_path, folder, prefix)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise FusionProxyError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(values, dict):
        raise FusionProxyError(f"{path}: expected a mapping of options")
    return apply_overrides(values, overrides), path


def load_config_as(
    cls: type[T], name_or_path: str, folder: str, prefix: str = "", overrides: Sequence[str] = ()
) -> tuple[T, Path]:
    """(dataclass `cls` built from a bundled config or YAML path with `--set` overrides, the file it came from)."""
    values, path = load_config_file(name_or_path, folder, prefix, overrides)
    return build_config(cls, values, str(path)), path


class _Refusal(Exception):
    """A problem with a config's values; `build_config` adds the file's name once, at the top."""


def build_config(cls: type[T], values: Any, source: str = "") -> T:
    """Dataclass `cls` from a mapping (nested dataclass fields from nested mappings); one-line errors that name
    `source` (the file) and the offending key's dotted path."""
    try:
        return _build(cls, values, "")
    except _Refusal as refusal:
        raise FusionProxyError(f"{source}: {refusal}" if source else str(refusal)) from None


def config_keys(cls: type) -> list[str]:
    """The keys a file may give for dataclass `cls`."""
    return [f.name for f in dataclasses.fields(cls) if f.init and not f.metadata.get(NOT_A_KEY)]


def _nested_dataclass(hint: Any) -> type | None:
    """The dataclass behind a field's type (`X` or `X | None`), or None."""
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        found = [arg for arg in typing.get_args(hint) if dataclasses.is_dataclass(arg)]
        return found[0] if len(found) == 1 else None
    return None


def _build(cls: type[T], values: Any, path: str) -> T:
    where = f"{path}: " if path else ""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise _Refusal(f"{where}expected a mapping of options")
    noun = getattr(cls, "config_noun", "option")
    known = config_keys(cls)
    unknown = [str(key) for key in values if key not in known]
    if unknown:
        dotted = ", ".join(f"{path}.{key}" if path else key for key in unknown)
        raise _Refusal(f"{where}unknown {noun}(s) {', '.join(unknown)} ({dotted}; known: {', '.join(known)})")
    required = [f.name for f in dataclasses.fields(cls) if f.init and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]  # fmt: skip
    missing = [name for name in required if name not in values]
    if missing:
        raise _Refusal(f"{where}missing {noun}(s) {', '.join(missing)}")
    hints = typing.get_type_hints(cls)
    arguments = {}
    for key, value in values.items():
        nested = _nested_dataclass(hints[key])
        is_section = nested is not None and (value is None or isinstance(value, Mapping))
        arguments[key] = _build(nested, value, f"{path}.{key}" if path else key) if is_section else value
    try:
        return cls(**arguments)
    except (TypeError, ValueError) as error:
        raise _Refusal(f"{where}{error}") from None
    except FusionProxyError as error:  # the class's own checks name their keys themselves
        raise _Refusal(str(error)) from None
