"""Where fetched weights and parameters live: `$FUSIONPROXY_HOME/weights/<name>/` (default `~/.cache/fusionproxy`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import MissingWeightsError

FETCHABLE = ("vgg16-hed", "dinov2s-imgfocus", "efficientnet-lite0")


def fusionproxy_home() -> Path:
    return Path(os.environ.get("FUSIONPROXY_HOME", Path.home() / ".cache" / "fusionproxy")).expanduser()


def default_weights_dir(name: str) -> Path:
    return fusionproxy_home() / "weights" / name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_file(name: str, path: Path, how: str | None = None) -> Path:
    """`path` if it exists, else a MissingWeightsError naming it and how to provide it."""
    if path.is_file():
        return path
    if how is None:
        how = f"run `fusionproxy weights fetch {name}`" if name in FETCHABLE else "pass weights_dir"
    raise MissingWeightsError(f"{name}: weight file {path} not found; {how} (no random fallback)")
