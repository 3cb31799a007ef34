"""Read side of the cache for distillation: one dict of float32 tensors per item (paper Eq. 4-9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .build import finalize_cache, missing_items
from .store import DATA, CacheError, read_manifest


class CacheDataset(Dataset):
    """Items of a complete cache.

    `ds[i]` holds `ir` 1 x S x S, `vis` 3 x S x S (the student's exact inputs), `mean` 3 x S x S (Eq. 4),
    `var` S x S (Eq. 5, averaged over RGB), and per backbone k `feat_mean/<k>` C_k x G x G, the sample mean of
    the features already divided by sigma_k (Eq. 9), and `feat_var/<k>` G x G, v_k of Eq. 6 (raw features).
    `sigma[k]` (C_k) normalises the student's own features the same way; `mean_var[k]` is E_x'[v̄_k(x')],
    the denominator of Eq. 8. A finished but not yet finalised cache is finalised on opening.
    """

    def __init__(self, cache_dir: str | Path) -> None:
        self.cache_dir = Path(cache_dir)
        manifest = read_manifest(self.cache_dir)
        if "statistics" not in manifest:
            missing = missing_items(self.cache_dir, manifest)
            if missing:
                raise CacheError(
                    f"{self.cache_dir}: cache incomplete, {len(missing)} of {len(manifest['items'])} items "
                    "missing; rerun `fusionproxy cache build`"
                )
            manifest = finalize_cache(self.cache_dir)
        self.manifest = manifest
        self.backbones: list[str] = [entry["name"] for entry in manifest["panel"]]
        self.sigma: dict[str, torch.Tensor] = {
            k: torch.tensor(manifest["statistics"][k]["sigma"], dtype=torch.float32) for k in self.backbones
        }
        self.mean_var: dict[str, float] = {k: float(manifest["statistics"][k]["mean_var"]) for k in self.backbones}
        self.panel_is_random: bool = bool(manifest["panel_is_random"])
        self._group = None  # opened lazily in each (DataLoader worker) process
        self._names = ["ir", "vis", "mean", "var"]
        self._names += [f"feat_{kind}/{k}" for k in self.backbones for kind in ("mean", "var")]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_group": None}  # zarr handles do not cross process boundaries

    def _arrays(self):
        import zarr

        if self._group is None:
            self._group = zarr.open_group(self.cache_dir / DATA, mode="r")
        return self._group

    def __len__(self) -> int:
        return len(self.manifest["items"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"cache item {index} out of range 0..{len(self) - 1}")
        group = self._arrays()
        item = {name: torch.from_numpy(np.asarray(group[name][index], dtype=np.float32)) for name in self._names}
        for k in self.backbones:
            item[f"feat_mean/{k}"] = item[f"feat_mean/{k}"] / self.sigma[k][:, None, None]
        return item
