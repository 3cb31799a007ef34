"""Build, finalise, verify and describe a teacher-ensemble cache (paper Sec. 3.2 "Caching").

Items are split across processes by `index % num_shards == shard`; each process writes only its own items'
chunks and markers, so `--shard i/n` runs, `torchrun` / `accelerate launch` ranks or an interrupted run
resumed later all end with the same store as one uninterrupted process. The training-set statistics need
every item, so they are computed once all items are complete: by whichever process completes the last item,
or by `fusionproxy cache finalize` / `info` / opening a `CacheDataset`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import FusionProxyError
from ..foundation import FoundationBackbone, resample_to_grid
from .ensemble import channel_sigma, feature_statistics, image_statistics, mean_spatial_variance
from .store import (
    DATA,
    FORMAT_VERSION,
    MANIFEST,
    CacheError,
    config_hash,
    item_checksum,
    locked,
    open_or_create,
    read_item,
    read_manifest,
    read_marker,
    specs_from_manifest,
    write_item,
    write_json_atomic,
)
from .views import list_views, load_view, teacher_seed

if TYPE_CHECKING:  # importing the teachers package pulls in diffusers; the cache only calls the contract
    from ..teachers.base import Teacher


@dataclass(frozen=True)
class CacheConfig:
    samples_per_teacher: int = 4  # N of Eq. 3 (2N samples with two teachers)
    crop_size: int = 256
    crops_per_image: int = 1
    grid: int = 64  # the common feature grid Omega (Sec. 4.1)
    seed: int = 0
    keep_samples: bool = False


def shard_from_env() -> tuple[int, int]:
    """(rank, world size) set by `torchrun` or `accelerate launch`; (0, 1) in a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def make_manifest(
    pairs: list[tuple[str, Path, Path]],
    teachers: list[Teacher],
    panel: list[FoundationBackbone],
    config: CacheConfig,
) -> dict:
    views = list_views(pairs, config.crops_per_image)
    manifest = {
        "format": FORMAT_VERSION,
        "config": asdict(config),
        "teachers": [{"name": t.name, "identity": t.identity()} for t in teachers],
        "panel": [
            {"name": b.name, "identity": b.identity(), "channels": b.out_channels, "random_init": b.random_init}
            for b in panel
        ],
        "panel_is_random": any(b.random_init for b in panel),
        "items": [
            {"index": v.index, "stem": v.stem, "crop": v.crop, "ir": str(v.ir_path), "vis": str(v.vis_path),
             "teacher_seeds": [teacher_seed(config.seed, v.index, t) for t in range(len(teachers))]}
            for v in views
        ],  # fmt: skip
        "variance": "unbiased sample variance over the 2N samples; feature statistics on raw features",
    }
    manifest["config_hash"] = config_hash(manifest)
    return manifest


@torch.no_grad()
def compute_item(
    ir: torch.Tensor,
    vis: torch.Tensor,
    index: int,
    teachers: list[Teacher],
    panel: list[FoundationBackbone],
    config: CacheConfig,
) -> dict[str, np.ndarray]:
    """Every stored array of one item, from its crops (1 x 1 x S x S, 1 x 3 x S x S on the model device)."""
    samples = torch.cat(
        [
            teacher.sample(ir, vis, config.samples_per_teacher, teacher_seed(config.seed, index, number)).float()
            for number, teacher in enumerate(teachers)
        ]
    )
    mean, var = image_statistics(samples)
    arrays = {"ir": ir[0], "vis": vis[0], "mean": mean, "var": var}
    for backbone in panel:
        features = resample_to_grid(backbone(samples), config.grid)
        stats = feature_statistics(features)
        name = backbone.name
        arrays |= {
            f"feat_mean/{name}": stats.mean,
            f"feat_var/{name}": stats.var,
            f"stats/{name}/sum": stats.channel_sum,
            f"stats/{name}/sumsq": stats.channel_sumsq,
            f"stats/{name}/var_mean": np.float64(stats.var_spatial_mean),
        }
    if config.keep_samples:
        arrays["samples"] = samples
    return {key: value.cpu().numpy() if torch.is_tensor(value) else value for key, value in arrays.items()}


def build_cache(
    cache_dir: str | Path,
    pairs: list[tuple[str, Path, Path]],
    teachers: list[Teacher],
    panel: list[FoundationBackbone],
    config: CacheConfig = CacheConfig(),
    shard: tuple[int, int] = (0, 1),
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Compute this shard's missing items, then finalise if the whole cache is complete; returns the manifest."""
    from rich.progress import Progress

    cache_dir = Path(cache_dir)
    if not pairs:
        raise CacheError(f"{cache_dir}: no training pairs given")
    shard_index, num_shards = shard
    if not 0 <= shard_index < num_shards:
        raise CacheError(f"shard {shard_index}/{num_shards}: need 0 <= i < n")
    manifest = make_manifest(pairs, teachers, panel, config)
    group = open_or_create(cache_dir, manifest)
    specs = specs_from_manifest(manifest)
    for model in (*teachers, *panel):
        model.to(device).eval()
    views = [v for v in list_views(pairs, config.crops_per_image) if v.index % num_shards == shard_index]
    todo = [v for v in views if read_marker(cache_dir, v.index) is None]
    failed: list[str] = []
    with Progress(disable=not progress, transient=False) as bar:
        task = bar.add_task(f"cache shard {shard_index}/{num_shards}", total=len(views), completed=len(views) - len(todo))
        for view in todo:
            try:
                ir, vis = load_view(view, config.crop_size, config.seed)
            except FusionProxyError as error:  # report bad pairs at the end, after the good ones are done
                failed.append(str(error))
                continue
            arrays = compute_item(ir.to(device), vis.to(device), view.index, teachers, panel, config)
            write_item(group, cache_dir, view.index, arrays, specs)
            bar.advance(task)
    if failed:
        raise CacheError(f"{len(failed)} item(s) could not be built: " + "; ".join(failed))
    if all(read_marker(cache_dir, item["index"]) is not None for item in manifest["items"]):
        return finalize_cache(cache_dir)
    return read_manifest(cache_dir)


def missing_items(cache_dir: Path, manifest: dict) -> list[int]:
    return [item["index"] for item in manifest["items"] if read_marker(cache_dir, item["index"]) is None]


def finalize_cache(cache_dir: str | Path) -> dict:
    """Aggregate sigma_k and E_x'[v̄_k] over all items into the manifest (needs every item complete)."""
    import zarr

    cache_dir = Path(cache_dir)
    with locked(cache_dir):
        manifest = read_manifest(cache_dir)
        if "statistics" in manifest:
            return manifest
        missing = missing_items(cache_dir, manifest)
        if missing:
            raise CacheError(
                f"{cache_dir}: {len(missing)} of {len(manifest['items'])} items not built yet "
                f"(first: {missing[0]}); rerun `fusionproxy cache build`"
            )
        group = zarr.open_group(cache_dir / DATA, mode="r")
        grid, samples = manifest["config"]["grid"], manifest["config"]["samples_per_teacher"] * len(manifest["teachers"])
        statistics = {}
        for entry in manifest["panel"]:
            name = entry["name"]
            sigma = channel_sigma(group[f"stats/{name}/sum"][:], group[f"stats/{name}/sumsq"][:], samples * grid * grid)
            statistics[name] = {
                "sigma": sigma.tolist(),
                "mean_var": mean_spatial_variance(group[f"stats/{name}/var_mean"][:]),
            }
        manifest["statistics"] = statistics
        manifest["checksums"] = {
            str(item["index"]): read_marker(cache_dir, item["index"])["checksum"] for item in manifest["items"]
        }
        write_json_atomic(cache_dir / MANIFEST, manifest)
        return manifest


def verify_cache(cache_dir: str | Path) -> dict[str, list[int]]:
    """Re-read every item: {'missing': [...], 'corrupt': [...]} (checksum mismatch, decode error, NaN/inf)."""
    import zarr

    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    specs = specs_from_manifest(manifest)
    group = zarr.open_group(cache_dir / DATA, mode="r")
    report: dict[str, list[int]] = {"missing": [], "corrupt": []}
    for item in manifest["items"]:
        index = item["index"]
        marker = read_marker(cache_dir, index)
        if marker is None:
            report["missing"].append(index)
            continue
        expected = manifest.get("checksums", {}).get(str(index), marker["checksum"])
        try:
            arrays = read_item(group, index, specs)
        except Exception:  # any decode failure of a damaged chunk means the item is corrupt
            report["corrupt"].append(index)
            continue
        finite = all(np.isfinite(a).all() for a in arrays.values())
        if not finite or item_checksum(arrays, specs) != expected:
            report["corrupt"].append(index)
    return report


def cache_info(cache_dir: str | Path) -> dict:
    """Counts, sizes and (finalising if possible) statistics of a cache, for `fusionproxy cache info`."""
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    missing = missing_items(cache_dir, manifest)
    if not missing and "statistics" not in manifest:
        manifest = finalize_cache(cache_dir)
    size = sum(f.stat().st_size for f in (cache_dir / DATA).rglob("*") if f.is_file())
    return {
        "items": len(manifest["items"]),
        "complete": len(manifest["items"]) - len(missing),
        "bytes": size,
        "teachers": [t["identity"] for t in manifest["teachers"]],
        "panel": [p["identity"] for p in manifest["panel"]],
        "panel_is_random": manifest["panel_is_random"],
        "config": manifest["config"],
        "statistics": {
            name: {
                "channels": len(stats["sigma"]),
                "sigma_min": float(np.min(stats["sigma"])),
                "sigma_median": float(np.median(stats["sigma"])),
                "sigma_max": float(np.max(stats["sigma"])),
                "mean_var": stats["mean_var"],
            }
            for name, stats in manifest.get("statistics", {}).items()
        },
    }
