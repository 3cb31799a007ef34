"""What a distillation run trains on: the cache items, the panel backbones that computed their features,
and the student's (misaligned, optionally degraded) inputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..errors import FusionProxyError
from ..misalignment import MisalignmentSchedule
from ..training import item_generator
from ..visibility import DegradationRange
from .config import DistillConfig

IMAGE_KEYS = ("ir", "vis", "mean", "var")


def item_keys(backbones: Sequence[str]) -> list[str]:
    """The cache keys a training item needs for the given panel backbones."""
    return [*IMAGE_KEYS, *(f"feat_mean/{k}" for k in backbones), *(f"feat_var/{k}" for k in backbones)]


class DistillDataset(Dataset):
    """Cache items (float32) plus the student's inputs: `ir_input`, misaligned per item (Eq. 14), and, when the
    degradation injection is on, `vis_input`, the visible frame at a random night/fog level and severity.

    The degraded input keeps the clean pair's ensemble as its target, so the student learns to lean on the IR
    exactly where the visible frame fails. Every draw comes from `item_generator(seed, epoch, index)`, so
    resumed and multi-process runs see the same draws. Every target (`mean`, `var`, features) and the aligned
    `ir` and clean `vis` are left as cached.
    """

    def __init__(
        self,
        items: Dataset,
        indices: Sequence[int],
        keys: Sequence[str],
        misalignment: MisalignmentSchedule,
        seed: int,
        degradation: DegradationRange | None = None,
    ) -> None:
        self.items, self.indices, self.keys = items, list(indices), list(keys)
        self.misalignment, self.seed, self.epoch = misalignment, seed, 0
        self.degradation = degradation or DegradationRange()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        raw = self.items[self.indices[index]]
        item = {key: torch.as_tensor(raw[key]).float() for key in self.keys}
        generator = item_generator(self.seed, self.epoch, index)
        item["ir_input"] = self.misalignment.apply(item["ir"][None], self.epoch, generator)[0]
        if self.degradation.probability > 0:
            item["vis_input"] = self.degradation.sample(generator).apply(item["vis"], generator)
        return item


def split_items(num_items: int, val_items: int, has_val_cache: bool) -> tuple[list[int], list[int]]:
    """(train indices, validation indices): the last `val_items` are held out unless a val cache exists."""
    if has_val_cache or val_items == 0:
        return list(range(num_items)), []
    if val_items >= num_items:
        raise FusionProxyError(f"the cache has {num_items} items; cannot hold out val_items={val_items}")
    return list(range(num_items - val_items)), list(range(num_items - val_items, num_items))


def open_cache(
    cache_dir: str | Path,
    config: DistillConfig,
    weights_dir: str | Path | None = None,
    allow_random_panel: bool = False,
) -> tuple[Dataset, dict[str, nn.Module], dict[str, Any]]:
    """(cache items, the panel backbones the loss uses, provenance), checking the panel is the cache's own."""
    from ..cache import CacheDataset
    from ..foundation import create_backbone

    items = CacheDataset(cache_dir)
    if items.panel_is_random and not allow_random_panel:
        raise FusionProxyError(
            f"{cache_dir}: the cache was built with a random-init panel (tests only); "
            "rebuild it with real weights or pass --allow-random-panel"
        )
    names = list(config.loss.backbones) if config.loss.backbones is not None else list(items.backbones)
    unknown = [name for name in names if name not in items.backbones]
    if unknown:
        raise FusionProxyError(
            f"{cache_dir}: loss.backbones {', '.join(unknown)} not in the cache's panel ({', '.join(items.backbones)})"
        )
    cached = {entry["name"]: entry for entry in items.manifest["panel"]}
    panel = {}
    for name in names:
        directory = Path(weights_dir) / name if weights_dir is not None else None
        backbone = create_backbone(name, directory, random_init=cached[name]["random_init"])
        if backbone.identity() != cached[name]["identity"]:
            # Student features must come from the very weights the cached targets were computed with.
            raise FusionProxyError(
                f"{cache_dir}: backbone {name} is now {backbone.identity()}, but the cache was built with "
                f"{cached[name]['identity']}; rebuild the cache or restore those weights"
            )
        panel[name] = backbone
    provenance = {
        "cache_config_hash": items.manifest["config_hash"],
        "panel": {name: panel[name].identity() for name in names},
        "panel_is_random": items.panel_is_random,
    }
    return items, panel, provenance
