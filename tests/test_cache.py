"""Teacher-ensemble cache: exact statistics, routing aggregates, read API, resume, shards, verification."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import zarr

from fusionproxy.cache import CacheConfig, CacheDataset, CacheError, build_cache, cache_info, verify_cache
from fusionproxy.cache.ensemble import channel_sigma, feature_statistics, mean_spatial_variance
from fusionproxy.cache.views import list_views, load_view, teacher_seed
from fusionproxy.foundation import FoundationBackbone
from fusionproxy.io import write_image

TESTS = Path(__file__).resolve().parent
CONFIG = CacheConfig(samples_per_teacher=3, crop_size=32, crops_per_image=2, grid=8, seed=5)


class ScaleTeacher(torch.nn.Module):
    """Known samples: sample n of seed s is `vis * (n + 1) / num_samples + offset(s)` (offset from the seed).

    It meets the `fusionproxy.teachers.base.Teacher` contract by duck typing, so that this module (also
    imported by the killed subprocess) does not import the teachers package and its diffusers dependency.
    """

    def __init__(self, name: str = "scale", use_ir: bool = False) -> None:
        super().__init__()
        self.name, self.use_ir = name, use_ir

    @staticmethod
    def offset(seed: int) -> float:
        return (seed % 97) / 970.0

    def sample(self, ir, vis, num_samples, seed, progress=False):
        source = ir.expand(-1, 3, -1, -1) if self.use_ir else vis
        scales = torch.arange(1, num_samples + 1, dtype=torch.float32).view(-1, 1, 1, 1) / num_samples
        return source * scales * 0.9 + self.offset(seed)

    def identity(self) -> str:
        return f"{self.name}:fixed"


class PoolBackbone(FoundationBackbone):
    """Hand-checkable features: 4 x 4 average pooling of RGB and of its square (6 channels, stride 4)."""

    name = "pool"
    out_channels = 6

    def forward(self, rgb):
        pooled = F.avg_pool2d(rgb, 4)
        return torch.cat([pooled, 10.0 * F.avg_pool2d(rgb * rgb, 4)], dim=1)

    def identity(self) -> str:
        return "pool:fixed"


def make_pairs(root: Path, count: int = 3) -> list[tuple[str, Path, Path]]:
    """Seeded synthetic 8-bit pairs; the last one is smaller than the crop (it gets upscaled)."""
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(count):
        h, w = (40, 52) if i < count - 1 else (20, 28)
        ir, vis = rng.integers(0, 256, (h, w), np.uint8), rng.integers(0, 256, (h, w, 3), np.uint8)
        write_image(root / "ir" / f"p{i}.png", ir)
        write_image(root / "vi" / f"p{i}.png", vis)
        pairs.append((f"p{i}", root / "ir" / f"p{i}.png", root / "vi" / f"p{i}.png"))
    return pairs


def teachers() -> list[ScaleTeacher]:
    return [ScaleTeacher("vis-teacher"), ScaleTeacher("ir-teacher", use_ir=True)]


def build(cache_dir: Path, pairs, **kwargs) -> dict:
    return build_cache(cache_dir, pairs, teachers(), [PoolBackbone()], CONFIG, progress=False, **kwargs)


def expected_samples(ir: torch.Tensor, vis: torch.Tensor, index: int) -> np.ndarray:
    """The 2N samples of item `index`, built here independently of the cache code."""
    n = CONFIG.samples_per_teacher
    out = []
    for number, source in enumerate((vis[0], ir[0].expand(3, -1, -1))):
        offset = ScaleTeacher.offset(teacher_seed(CONFIG.seed, index, number))
        out += [source.numpy() * (k + 1) / n * 0.9 + offset for k in range(n)]
    return np.stack(out).astype(np.float64)


def pool_features(samples: np.ndarray) -> np.ndarray:
    s, c, h, w = samples.shape
    pooled = samples.reshape(s, c, h // 4, 4, w // 4, 4).mean(axis=(3, 5))
    squared = (samples**2).reshape(s, c, h // 4, 4, w // 4, 4).mean(axis=(3, 5))
    return np.concatenate([pooled, 10.0 * squared], axis=1)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> list:
    return make_pairs(tmp_path_factory.mktemp("pairs"))


@pytest.fixture(scope="module")
def built(tmp_path_factory, pairs) -> Path:
    cache_dir = tmp_path_factory.mktemp("cache") / "c"
    build(cache_dir, pairs)
    return cache_dir


def test_exact_ensemble_and_feature_statistics(built, pairs):
    ds = CacheDataset(built)
    assert len(ds) == len(pairs) * CONFIG.crops_per_image
    all_features = []
    for view in list_views(pairs, CONFIG.crops_per_image):
        ir, vis = load_view(view, CONFIG.crop_size, CONFIG.seed)
        samples = expected_samples(ir, vis, view.index)
        features = pool_features(samples)
        all_features.append(features)
        item = ds[view.index]
        np.testing.assert_allclose(item["ir"].numpy(), ir[0].numpy(), atol=5e-4)
        np.testing.assert_allclose(item["vis"].numpy(), vis[0].numpy(), atol=5e-4)
        np.testing.assert_allclose(item["mean"].numpy(), samples.mean(0), atol=1e-3)  # Eq. 4, float16
        np.testing.assert_allclose(item["var"].numpy(), samples.var(0, ddof=1).mean(0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(item["feat_var/pool"].numpy(), features.var(0, ddof=1).mean(0), rtol=1e-5)
        raw_mean = item["feat_mean/pool"].numpy() * ds.sigma["pool"].numpy()[:, None, None]
        np.testing.assert_allclose(raw_mean, features.mean(0), rtol=2e-3, atol=1e-3)
    # sigma_k over every sample feature of every item, and Eq. 8's denominator, against a direct computation.
    stacked = np.concatenate(all_features)  # (items * 2N) x C x G x G
    np.testing.assert_allclose(ds.sigma["pool"].numpy(), stacked.transpose(1, 0, 2, 3).reshape(6, -1).std(1), rtol=1e-5)
    v_bar = [f.var(0, ddof=1).mean() for f in all_features]
    assert ds.mean_var["pool"] == pytest.approx(np.mean(v_bar), rel=1e-6)  # float32 features


def test_routing_statistics_on_hand_made_features():
    # Two items, 2 samples each, 2 channels on a 1 x 2 grid; values chosen by hand.
    items = [
        np.array([[[[1.0, 3.0]], [[0.0, 0.0]]], [[[3.0, 5.0]], [[2.0, 2.0]]]]),
        np.array([[[[2.0, 2.0]], [[1.0, 1.0]]], [[[2.0, 6.0]], [[1.0, 1.0]]]]),
    ]
    stats = [feature_statistics(torch.tensor(x)) for x in items]
    # item 0: channel-wise sample variances [[2, 2], [2, 2]] -> v = [2, 2], v̄ = 2; item 1: [[0, 8], [0, 0]] -> v = [0, 4], v̄ = 2
    np.testing.assert_allclose(stats[0].var.numpy(), [[2.0, 2.0]])
    np.testing.assert_allclose(stats[1].var.numpy(), [[0.0, 4.0]])
    assert mean_spatial_variance(np.array([s.var_spatial_mean for s in stats])) == pytest.approx(2.0)
    sigma = channel_sigma(np.stack([s.channel_sum for s in stats]), np.stack([s.channel_sumsq for s in stats]), 4)
    # channel 0 values 1,3,3,5,2,2,2,6 (mean 3, population variance 2.5); channel 1: 0,0,2,2,1,1,1,1 (0.5)
    np.testing.assert_allclose(sigma, [np.sqrt(2.5), np.sqrt(0.5)])
    # a channel constant over the training set keeps scale 1 instead of dividing by zero
    assert channel_sigma(np.array([[4.0]]), np.array([[8.0]]), 2)[0] == 1.0


def test_read_api_shapes_and_manifest(built):
    ds = CacheDataset(built)
    item = ds[1]
    s, g = CONFIG.crop_size, CONFIG.grid
    expected = {"ir": (1, s, s), "vis": (3, s, s), "mean": (3, s, s), "var": (s, s), "feat_mean/pool": (6, g, g),
                "feat_var/pool": (g, g)}  # fmt: skip
    assert {k: tuple(v.shape) for k, v in item.items()} == expected
    assert all(v.dtype == torch.float32 for v in item.values())
    assert ds.backbones == ["pool"] and ds.sigma["pool"].shape == (6,) and not ds.panel_is_random
    assert ds.manifest["teachers"][1]["identity"] == "ir-teacher:fixed"
    assert sorted(ds.manifest["checksums"]) == sorted(str(i) for i in range(len(ds)))
    info = cache_info(built)
    assert info["complete"] == info["items"] == len(ds) and info["bytes"] > 0
    with pytest.raises(IndexError):
        ds[len(ds)]
    import pickle  # DataLoader workers started with spawn receive a pickled dataset

    clone = pickle.loads(pickle.dumps(ds))
    assert all(torch.equal(clone[1][k], item[k]) for k in item)


def read_all(cache_dir: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(cache_dir / "data.zarr", mode="r")
    return {path: node[:] for path, node in group.members(max_depth=None) if isinstance(node, zarr.Array)}


def assert_same_cache(a: Path, b: Path) -> None:
    left, right = read_all(a), read_all(b)
    assert left.keys() == right.keys() and left
    for key in left:
        np.testing.assert_array_equal(left[key], right[key], err_msg=key)
    manifest_a, manifest_b = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert manifest_a == manifest_b


@pytest.mark.slow
def test_killed_build_resumes_to_identical_cache(tmp_path, pairs, built):
    cache_dir = tmp_path / "killed"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(TESTS)!r})
        from test_cache import ScaleTeacher, PoolBackbone, CONFIG
        from fusionproxy.cache import build_cache

        class Dying(ScaleTeacher):
            calls = 0
            def sample(self, *args, **kwargs):
                Dying.calls += 1
                if Dying.calls == 3:  # the first teacher call of the third item
                    os.kill(os.getpid(), signal.SIGKILL)
                return super().sample(*args, **kwargs)

        pairs = [(s, Path(i), Path(v)) for s, i, v in {[(s, str(i), str(v)) for s, i, v in pairs]!r}]
        build_cache(Path({str(cache_dir)!r}), pairs, [Dying("vis-teacher"), ScaleTeacher("ir-teacher", use_ir=True)],
                    [PoolBackbone()], CONFIG, progress=False)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr  # really killed mid-build
    assert len(list((cache_dir / "items").glob("*.json"))) == 2  # items 0, 1 done; 2 cut at its first teacher
    with pytest.raises(CacheError, match="incomplete"):
        CacheDataset(cache_dir)
    assert verify_cache(cache_dir)["missing"] == list(range(2, len(pairs) * CONFIG.crops_per_image))
    build(cache_dir, pairs)
    assert_same_cache(cache_dir, built)


@pytest.mark.slow
def test_two_shards_equal_one_process(tmp_path, pairs, built, monkeypatch):
    cache_dir = tmp_path / "sharded"
    first = build(cache_dir, pairs, shard=(1, 2))
    assert "statistics" not in first  # shard 0 still missing: no statistics yet
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    from fusionproxy.cache import shard_from_env

    assert shard_from_env() == (0, 2)
    build(cache_dir, pairs, shard=shard_from_env())
    assert_same_cache(cache_dir, built)


def test_verify_finds_corrupt_and_missing_items(tmp_path, pairs, built):
    import shutil

    cache_dir = tmp_path / "copy"
    shutil.copytree(built, cache_dir)
    assert verify_cache(cache_dir) == {"missing": [], "corrupt": []}
    chunk = cache_dir / "data.zarr" / "mean" / "c" / "2" / "0" / "0" / "0"
    chunk.write_bytes(b"\x00garbage" + chunk.read_bytes()[8:])  # undecodable
    data = bytearray((cache_dir / "data.zarr" / "feat_var" / "pool" / "c" / "4" / "0" / "0").read_bytes())
    data[-3] ^= 0xFF  # decodes, but to different values
    (cache_dir / "data.zarr" / "feat_var" / "pool" / "c" / "4" / "0" / "0").write_bytes(bytes(data))
    (cache_dir / "items" / "0000005.json").unlink()
    assert verify_cache(cache_dir) == {"missing": [5], "corrupt": [2, 4]}


def test_different_configuration_is_refused(tmp_path, pairs, built):
    import shutil

    cache_dir = tmp_path / "other"
    shutil.copytree(built, cache_dir)
    with pytest.raises(CacheError, match="different configuration"):
        build_cache(cache_dir, pairs, teachers()[:1], [PoolBackbone()], CONFIG, progress=False)


def test_the_same_data_through_another_path_resumes(tmp_path, pairs, built):
    import shutil

    cache_dir = tmp_path / "moved"
    shutil.copytree(built, cache_dir)
    (tmp_path / "link").symlink_to(pairs[0][1].parent.parent)
    relinked = [(stem, tmp_path / "link" / "ir" / ir.name, tmp_path / "link" / "vi" / vis.name)
                for stem, ir, vis in pairs]
    build_cache(cache_dir, relinked, teachers(), [PoolBackbone()], CONFIG, progress=False)  # nothing to redo
    assert_same_cache(cache_dir, built)
    renamed = [(stem, ir.with_name("x" + ir.name), vis) for stem, ir, vis in relinked]
    with pytest.raises(CacheError, match="different configuration"):  # other files are other data
        build_cache(cache_dir, renamed, teachers(), [PoolBackbone()], CONFIG, progress=False)


def test_random_panel_is_recorded(tmp_path, pairs):
    from fusionproxy.foundation import create_backbone

    panel = [create_backbone("efficientnet-lite0", random_init=True)]
    config = CacheConfig(samples_per_teacher=2, crop_size=32, grid=4)
    build_cache(tmp_path / "r", pairs[:1], teachers(), panel, config, progress=False)
    ds = CacheDataset(tmp_path / "r")
    assert ds.panel_is_random and ds.manifest["panel"][0]["identity"] == "efficientnet-lite0:random-init"
    assert ds[0]["feat_mean/efficientnet-lite0"].shape == (112, 4, 4)
