"""YAML configs shared by every command that trains: bundled names or paths, and `--set key=value` overrides.

Bundled configs ship as package data under `fusionproxy/configs/<folder>/`; a name such as `cpu` resolves to
`<folder>/<prefix><name>.yaml` there, anything ending in .yaml/.yml (or an existing file) is a path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import yaml

from .errors import FusionProxyError


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
