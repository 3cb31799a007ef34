"""On-disk layout of a teacher-ensemble cache, its manifest, per-item completion markers and checksums.

    <cache>/manifest.json        configuration, config hash, teacher and panel identities, seeds, item list;
                                 after finalisation also the training-set statistics and per-item checksums
    <cache>/data.zarr/           zarr v3 group, one chunk per item along the first axis of every array
    <cache>/items/<index>.json   written after all of an item's chunks: its checksum (= item complete)
    <cache>/.lock                flock'ed while creating the store or finalising (several processes)

Arrays (M items, S x S crops, G x G feature grid, C_k channels of backbone k):
    ir M x 1 x S x S, vis M x 3 x S x S, mean M x 3 x S x S                       float16
    var M x S x S                                                                float32
    feat_mean/<k> M x C_k x G x G (raw, not divided by sigma_k)                  float16
    feat_var/<k> M x G x G (Eq. 6 on raw features)                               float32
    stats/<k>/sum, stats/<k>/sumsq M x C_k; stats/<k>/var_mean M                 float64
    samples M x 2N x 3 x S x S (only with keep_samples)                          float16
Variance maps are float32 because raw-feature variances overflow float16 (VGG relu3_3 on a 0-255 input
reaches 1e5) and image variances underflow it; the per-item sums are float64 so sigma_k is exact.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import FusionProxyError

MANIFEST = "manifest.json"
DATA = "data.zarr"
ITEMS = "items"
FORMAT_VERSION = 1


class CacheError(FusionProxyError):
    """A cache directory that is missing, incomplete, corrupt or built with another configuration."""


@dataclass(frozen=True)
class ArraySpec:
    name: str
    shape: tuple[int, ...]  # per item
    dtype: str


def array_specs(
    crop_size: int, grid: int, panel_channels: dict[str, int], num_samples: int, keep_samples: bool
) -> list[ArraySpec]:
    """Every array of a cache, in a fixed order (the order checksums are taken in)."""
    s, g = crop_size, grid
    specs = [
        ArraySpec("ir", (1, s, s), "float16"),
        ArraySpec("vis", (3, s, s), "float16"),
        ArraySpec("mean", (3, s, s), "float16"),
        ArraySpec("var", (s, s), "float32"),
    ]
    for name, channels in panel_channels.items():
        specs += [
            ArraySpec(f"feat_mean/{name}", (channels, g, g), "float16"),
            ArraySpec(f"feat_var/{name}", (g, g), "float32"),
            ArraySpec(f"stats/{name}/sum", (channels,), "float64"),
            ArraySpec(f"stats/{name}/sumsq", (channels,), "float64"),
            ArraySpec(f"stats/{name}/var_mean", (), "float64"),
        ]
    if keep_samples:
        specs.append(ArraySpec("samples", (num_samples, 3, s, s), "float16"))
    return specs


def specs_from_manifest(manifest: dict) -> list[ArraySpec]:
    config = manifest["config"]
    return array_specs(
        config["crop_size"],
        config["grid"],
        {entry["name"]: entry["channels"] for entry in manifest["panel"]},
        config["samples_per_teacher"] * len(manifest["teachers"]),
        config["keep_samples"],
    )


def config_hash(manifest: dict) -> str:
    """Hash of everything that determines the cache content (not of progress or statistics).

    Items count by file name, not path, so the same data reached through another spelling of its folder
    (relative, absolute, a link) resumes the cache instead of being refused.
    """
    items = [{**item, "ir": Path(item["ir"]).name, "vis": Path(item["vis"]).name} for item in manifest["items"]]
    keyed = {key: manifest[key] for key in ("config", "teachers", "panel")} | {"items": items}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()


def item_checksum(arrays: dict[str, np.ndarray], specs: list[ArraySpec]) -> str:
    """sha256 over the item's stored bytes of every array, in spec order."""
    digest = hashlib.sha256()
    for spec in specs:
        digest.update(np.ascontiguousarray(arrays[spec.name], dtype=spec.dtype).tobytes())
    return digest.hexdigest()


def write_json_atomic(path: Path, content: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(content, indent=1, sort_keys=True))
    os.replace(tmp, path)


def read_manifest(cache_dir: Path) -> dict:
    path = Path(cache_dir) / MANIFEST
    if not path.is_file():
        raise CacheError(f"{path}: no cache manifest (build one with `fusionproxy cache build`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CacheError(f"{path}: unreadable cache manifest ({error})") from None


@contextlib.contextmanager
def locked(cache_dir: Path) -> Iterator[None]:
    """Exclusive lock across processes (released by the OS if the holder dies)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_or_create(cache_dir: Path, manifest: dict):
    """Open the cache's zarr group, creating store and manifest on first use; refuse a different config."""
    import zarr

    cache_dir = Path(cache_dir)
    with locked(cache_dir):
        if (cache_dir / MANIFEST).is_file():
            existing = read_manifest(cache_dir)
            if config_hash(existing) != manifest["config_hash"]:
                raise CacheError(
                    f"{cache_dir / MANIFEST}: this cache was built with a different configuration, teachers, "
                    "panel or item list; build into a new directory"
                )
            return zarr.open_group(cache_dir / DATA, mode="r+")
        group = zarr.open_group(cache_dir / DATA, mode="w")
        count = len(manifest["items"])
        for spec in specs_from_manifest(manifest):
            group.create_array(
                spec.name, shape=(count, *spec.shape), chunks=(1, *spec.shape), dtype=spec.dtype, fill_value=0
            )
        (cache_dir / ITEMS).mkdir(exist_ok=True)
        write_json_atomic(cache_dir / MANIFEST, manifest)
        return group


def marker_path(cache_dir: Path, index: int) -> Path:
    return Path(cache_dir) / ITEMS / f"{index:07d}.json"


def read_marker(cache_dir: Path, index: int) -> dict | None:
    path = marker_path(cache_dir, index)
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_item(group, cache_dir: Path, index: int, arrays: dict[str, np.ndarray], specs: list[ArraySpec]) -> None:
    """Write one item's chunks, then its completion marker (so a crash mid-item leaves it incomplete)."""
    stored = {spec.name: np.ascontiguousarray(arrays[spec.name], dtype=spec.dtype) for spec in specs}
    for spec in specs:
        if spec.dtype == "float16" and not np.isfinite(stored[spec.name]).all():
            raise CacheError(f"item {index}: {spec.name} is not finite in float16 (values overflow 65504)")
        group[spec.name][index] = stored[spec.name]
    write_json_atomic(marker_path(cache_dir, index), {"index": index, "checksum": item_checksum(stored, specs)})


def read_item(group, index: int, specs: list[ArraySpec]) -> dict[str, np.ndarray]:
    return {spec.name: np.asarray(group[spec.name][index]) for spec in specs}
