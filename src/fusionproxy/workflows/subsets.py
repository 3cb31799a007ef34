"""Subsets of the data for small runs: the first N pairs of a folder, linked (never copied) under the output."""

from __future__ import annotations

from pathlib import Path

from ..errors import FusionProxyError
from ..io import find_dataset_pairs


def resolved_path(path: str) -> Path:
    return Path(path).expanduser().resolve()


def link_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(source.resolve())


def link_pairs(source: str, target: Path, limit: int, where: str) -> None:
    try:
        pairs = find_dataset_pairs(resolved_path(source)).pairs[:limit]
    except FileNotFoundError as error:
        raise FusionProxyError(f"{error} (data in {where})") from None
    for _, ir, vis in pairs:
        link_file(ir, target / "ir" / ir.name)
        link_file(vis, target / "vi" / vis.name)
