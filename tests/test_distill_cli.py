"""`fusionproxy distill` end to end on a tiny real cache (fake teacher, random-init panel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fusionproxy.io import write_image
from fusionproxy.teachers.base import Teacher

pytestmark = pytest.mark.slow  # each test runs distill on a cache built by the module fixture


class BlendTeacher(Teacher):
    """Samples are IR/VIS blends whose mix depends on the seed: a cheap stochastic teacher."""

    name = "blend"

    def sample(self, ir, vis, num_samples, seed, progress=False):
        generator = torch.Generator().manual_seed(seed)
        alpha = torch.rand(num_samples, 1, 1, 1, generator=generator)
        return alpha * vis + (1 - alpha) * ir.expand(-1, 3, -1, -1)

    def identity(self) -> str:
        return "blend:fixed"


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fusionproxy.cache import CacheConfig, build_cache
    from fusionproxy.foundation import create_backbone

    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(5):
        write_image(root / "ir" / f"p{i}.png", rng.integers(0, 256, (40, 40), np.uint8))
        write_image(root / "vi" / f"p{i}.png", rng.integers(0, 256, (40, 40, 3), np.uint8))
        pairs.append((f"p{i}", root / "ir" / f"p{i}.png", root / "vi" / f"p{i}.png"))
    cache_dir = root / "cache"
    panel = [create_backbone("efficientnet-lite0", random_init=True)]
    config = CacheConfig(samples_per_teacher=2, crop_size=32, grid=8)
    build_cache(cache_dir, pairs, [BlendTeacher()], panel, config, progress=False)
    return cache_dir


def _distill(cache: Path, out: Path, *extra: str):
    from fusionproxy.cli import app

    args = ["distill", "--cache", str(cache), "--out", str(out), "--student", "ultralight", "--config", "cpu",
            "--set", "train.max_steps=2", "--set", "train.batch_size=2", "--set", "val_items=1",
            "--set", "student={widths: [4, 8], depths: [1, 1], decoder_depths: [1], stem_stride: 2}", *extra]
    return CliRunner().invoke(app, args)


def test_distill_refuses_a_random_panel_without_the_flag(tiny_cache: Path, tmp_path: Path) -> None:
    result = _distill(tiny_cache, tmp_path / "out")
    assert result.exit_code != 0
    assert "random-init panel" in str(result.exception)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_distill_cli_trains_a_loadable_model(tiny_cache: Path, tmp_path: Path) -> None:
    from fusionproxy.api import FusionProxy

    result = _distill(tiny_cache, tmp_path / "out", "--allow-random-panel")
    assert result.exit_code == 0, result.output + repr(result.exception)
    model = FusionProxy.from_pretrained(tmp_path / "out")
    training = model.metadata["training"]
    assert training["panel"] == {"efficientnet-lite0": "efficientnet-lite0:random-init"} and training["panel_is_random"]
    assert training["cache"] == str(tiny_cache.resolve())
    assert (tmp_path / "out" / "validation" / "step-0000002.png").is_file()
    rgb = model(torch.rand(1, 1, 32, 32), torch.rand(1, 3, 32, 32))
    assert rgb.shape == (1, 3, 32, 32) and torch.isfinite(rgb).all()


def test_grad_norms_prints_each_term_and_trains_nothing(tiny_cache: Path, tmp_path: Path) -> None:
    from fusionproxy.cli import app
    from fusionproxy.errors import FusionProxyError

    args = ["distill", "--cache", str(tiny_cache), "--student", "ultralight", "--allow-random-panel",
            "--set", "student={widths: [4, 8], depths: [1, 1], decoder_depths: [1], stem_stride: 2}"]
    result = CliRunner().invoke(app, [*args, "--grad-norms", "0,1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in result.output.splitlines()[1:]}
    assert set(rows) == {"pix", "ssim", "mfm", "fidelity", "thermal"}  # the cpu recipe's terms
    assert all(norm > 0 for _, norm, _ in rows.values())
    assert rows["mfm"][2] == pytest.approx(0.02 * rows["mfm"][1], rel=1e-3)  # the cpu config's lambda_MFM
    lambda_one = CliRunner().invoke(app, [*args, "--grad-norms", "0,1", "--set", "loss.lambda_mfm=1",
                                          "--set", "loss.lambda_thermal=0.5"])
    rows_one = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lambda_one.output.splitlines()[1:]}
    assert rows_one["mfm"][1] == pytest.approx(rows["mfm"][1], rel=1e-4)  # same student, same batch
    assert rows_one["thermal"][1] > 0 and rows_one["thermal"][2] == pytest.approx(0.5 * rows_one["thermal"][1])
    for bad in ("0,x", "99"):
        failed = CliRunner().invoke(app, [*args, "--grad-norms", bad])
        assert isinstance(failed.exception, FusionProxyError) and "--grad-norms" in str(failed.exception)
    missing_out = CliRunner().invoke(app, args)
    assert isinstance(missing_out.exception, FusionProxyError) and "--out DIR is required" in str(missing_out.exception)


def test_grad_norms_on_a_trained_student(tiny_cache: Path, tmp_path: Path) -> None:
    from fusionproxy.cli import app

    assert _distill(tiny_cache, tmp_path / "out", "--allow-random-panel").exit_code == 0
    args = ["distill", "--cache", str(tiny_cache), "--student", "ultralight", "--allow-random-panel",
            "--set", "student={widths: [4, 8], depths: [1, 1], decoder_depths: [1], stem_stride: 2}",
            "--grad-norms", "0,1"]
    fresh = CliRunner().invoke(app, args)
    trained = CliRunner().invoke(app, [*args, "--grad-norms-model", str(tmp_path / "out")])
    assert trained.exit_code == 0, trained.output + repr(trained.exception)
    assert trained.output.splitlines()[0] == fresh.output.splitlines()[0]
    assert trained.output != fresh.output  # measured on the trained weights, not the fresh student
