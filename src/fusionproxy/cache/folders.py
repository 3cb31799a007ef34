"""`fusionproxy cache build` as a library call: a cache from a pair folder, teacher directories and a panel name."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from ..errors import FusionProxyError
from ..foundation import create_backbone, panel_names
from ..io import find_dataset_pairs
from .build import CacheConfig, build_cache, shard_from_env


def cache_device(name: str) -> str:
    """`auto`: this process's GPU under torchrun / accelerate launch (LOCAL_RANK), else the CPU."""
    if name != "auto":
        return name
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"


def build_cache_from_folders(
    data: str | Path,
    teacher_dirs: Sequence[str | Path],
    out: str | Path,
    panel: str = "default",
    weights: Mapping[str, str | Path] | None = None,
    random_init: bool = False,
    config: CacheConfig = CacheConfig(),
    shard: tuple[int, int] | None = None,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> dict:
    """Build (or resume) the cache of the pairs in `data` with the saved teachers and the panel `panel`
    ('default', 'paper' or comma-separated names; `weights`: NAME -> weights directory); returns the manifest.

    `shard` (i, n) builds the items with index % n == i (default: RANK / WORLD_SIZE of the launcher)."""
    from ..teachers import load_teacher

    try:
        listing = find_dataset_pairs(Path(data))
    except FileNotFoundError as error:
        raise FusionProxyError(str(error)) from None
    for path in listing.ir_only + listing.vis_only:
        log(f"skipped {path}: no partner image")
    directories = {name: Path(directory) for name, directory in (weights or {}).items()}
    backbones = [create_backbone(name, directories.get(name), random_init=random_init) for name in panel_names(panel)]
    teachers = [load_teacher(directory) for directory in teacher_dirs]
    return build_cache(out, listing.pairs, teachers, backbones, config, shard=shard or shard_from_env(),
                       device=cache_device(device))  # fmt: skip
