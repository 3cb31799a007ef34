"""Teacher training: datasets, configs, and a tiny run through the shared Trainer that lowers the loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from fusionproxy.cli import app
from fusionproxy.errors import FusionProxyError
from fusionproxy.teachers import load_teacher
from fusionproxy.teachers.denoiser import NoiseSchedule
from fusionproxy.teachers.masking import MaskingConfig
from fusionproxy.training import item_generator
from fusionproxy.teachers.training import (
    DataConfig,
    MaskedViewsDataset,
    NaturalCrops,
    PriorDataset,
    build_training,
    load_training_config,
    load_training_images,
    teacher_from_checkpoint,
    train_teacher,
)


def _images(count: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:40, 0:50]
    images = []
    for _ in range(count):
        phase = rng.uniform(0, 6, size=3)
        rgb = 0.5 + 0.4 * np.sin(xx[..., None] * 0.3 + yy[..., None] * 0.2 + phase)
        images.append(np.round(rgb * 255).astype(np.uint8))
    return images


def test_masked_dataset_items_are_reproducible_per_seed_epoch_index() -> None:
    data = DataConfig(crop=16, repeats=2, masking=MaskingConfig(grid=4))
    dataset = MaskedViewsDataset(_images(), data, seed=3, schedule=NoiseSchedule())
    assert len(dataset) == 6
    item = dataset[4]
    assert set(item) == {"noisy", "timesteps", "noise", "view_a", "view_b"}
    for key in ("noisy", "noise", "view_a", "view_b"):
        assert item[key].shape == (3, 16, 16)
    assert 0 <= int(item["timesteps"]) < 1000 and item["timesteps"].dim() == 0
    assert item["view_a"].min() >= -1 and item["view_a"].max() <= 1
    again = dataset[4]
    assert all(torch.equal(item[k], again[k]) for k in item)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[4]["noise"], item["noise"])


def _ramp(width: int = 384, height: int = 200) -> np.ndarray:
    """A horizontal grey ramp 0..255: the range a crop spans measures how wide a region it was cut from."""
    row = np.linspace(0, 255, width)
    return np.repeat(np.repeat(row[None, :, None], height, 0), 3, 2).round().astype(np.uint8)


def test_scale_zooms_each_crop_reproducibly() -> None:
    def spans(scale: tuple[float, float]) -> list[float]:
        dataset = NaturalCrops([_ramp()], DataConfig(crop=32, repeats=8, scale=scale), 0, NoiseSchedule())
        crops = [dataset.random_crop(i, item_generator(0, 0, i)) for i in range(8)]
        assert all(c.shape == (3, 32, 32) for c in crops)
        return [float(c[0].max() - c[0].min()) for c in crops]

    plain, zoomed_out = spans((1.0, 1.0)), spans((0.25, 0.25))
    assert max(plain) < 0.1 and min(zoomed_out) > 0.3  # 32 px of the ramp (~0.08) vs 128 px (~0.33)
    mixed = spans((0.25, 2.0))
    assert mixed == spans((0.25, 2.0)) and max(mixed) - min(mixed) > 0.1  # drawn per crop, from the item seed
    with pytest.raises(FusionProxyError, match="data: scale must be"):
        load_training_config("cpu", "masked", ["data.scale=[2, 1]"])


def test_extra_image_folders_join_the_training_images(tmp_path: Path) -> None:
    folders = [tmp_path / "natural", tmp_path / "frames"]
    for folder, count in zip(folders, (3, 2)):
        folder.mkdir()
        for k, image in enumerate(_images(count)):
            Image.fromarray(image).save(folder / f"{k}.png")
    (folders[1] / "broken.png").write_bytes(b"not a png")
    data = DataConfig(long_side=48, extra_images=[str(folders[1])])
    images = load_training_images(folders[0], data)
    assert len(images) == 5 and all(max(image.shape[:2]) == 48 for image in images)


def test_prior_dataset_gives_luminance_or_rgb() -> None:
    data = DataConfig(crop=16, repeats=1)
    luma = PriorDataset(_images(), data, seed=0, schedule=NoiseSchedule(), channels=1)[0]
    rgb = PriorDataset(_images(), data, seed=0, schedule=NoiseSchedule(), channels=3)[0]
    assert luma["noisy"].shape == (1, 16, 16) and rgb["noisy"].shape == (3, 16, 16)


@pytest.mark.parametrize("kind", ["masked", "prior"])
@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_shipped_configs_load(kind: str, name: str) -> None:
    config = load_training_config(name, kind)
    assert config.train.max_steps > 0 and config.data.crop % 8 == 0
    overridden = load_training_config(name, kind, ["train.max_steps=7", "data.crop=32"])
    assert overridden.train.max_steps == 7 and overridden.data.crop == 32


def test_bad_configs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FusionProxyError, match="not found"):
        load_training_config(str(tmp_path / "missing.yaml"), "masked")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {max_steps: 3, batch_size: 2, bogus: 1}\n")
    with pytest.raises(FusionProxyError, match="bad.yaml"):
        load_training_config(str(bad), "masked")
    with pytest.raises(FusionProxyError, match="unknown section"):
        load_training_config("cpu", "masked", ["trian.max_steps=3"])
    with pytest.raises(FusionProxyError, match="expected key=value"):
        load_training_config("cpu", "masked", ["train.max_steps"])


TINY = [
    "teacher.unet.block_out_channels=[8, 16]", "teacher.unet.norm_num_groups=4", "teacher.unet.patch_size=2",
    "teacher.steps=2", "data.crop=16", "data.long_side=48", "data.repeats=8", "data.masking.grid=4",
    "train.max_steps=40", "train.batch_size=8", "train.lr=3.0e-3", "train.warmup_steps=0",
    "train.checkpoint_every=40", "train.validate_every=40", "validation.pairs=2", "validation.long_side=32",
]


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["masked", "prior"])
def test_tiny_training_run_lowers_the_loss(kind: str, tmp_path: Path, datasets_dir: Path) -> None:
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    for k, image in enumerate(_images(4)):
        Image.fromarray(image).save(images_dir / f"{k}.png")
    config = load_training_config("cpu", kind, TINY)

    from fusionproxy.teachers.training import load_natural_images

    images, _ = load_natural_images(images_dir, config.data.long_side)
    torch.manual_seed(config.train.seed)  # train_teacher starts from these same weights
    initial, dataset, loss_fn = build_training(kind, images, config)
    batch = {k: torch.stack([dataset[i][k] for i in range(16)]) for k in dataset[0]}
    with torch.no_grad():
        before = float(loss_fn(initial.eval(), batch)[0])

    trained = train_teacher(kind, images_dir, config, tmp_path / "run", datasets_dir / "roadscene" / "train")
    with torch.no_grad():
        after = float(loss_fn(trained.eval(), batch)[0])
    assert after < 0.8 * before, (before, after)
    assert (tmp_path / "run" / "validation" / "step-0000040.png").is_file()
    assert load_teacher(tmp_path / "run").identity() == trained.identity()
    # The last checkpoint holds the same weights; `teacher snapshot` saves one as a teacher directory.
    assert teacher_from_checkpoint(kind, tmp_path / "run").identity() == trained.identity()
    result = CliRunner().invoke(app, ["teacher", "snapshot", kind, str(tmp_path / "run"), "--step", "40",
                                      "-o", str(tmp_path / "snap")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_teacher(tmp_path / "snap").identity() == trained.identity()
    with pytest.raises(FusionProxyError, match="no checkpoint at step 20 \\(complete: 40\\)"):
        teacher_from_checkpoint(kind, tmp_path / "run", 20)


def test_snapshot_of_a_folder_that_is_no_run_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FusionProxyError, match="train_config.json: not found"):
        teacher_from_checkpoint("masked", tmp_path)
    (tmp_path / "train_config.json").write_text("{}")
    with pytest.raises(FusionProxyError, match="checkpoints: no complete checkpoint"):
        teacher_from_checkpoint("masked", tmp_path)


def test_snr_plus_one_weighting_is_the_v_prediction_loss() -> None:
    """eps-MSE / abar_t == MSE of the implied v = sqrt(abar) eps - sqrt(1 - abar) x0 (1 + SNR times x0-MSE)."""
    from fusionproxy.teachers.training import EpsilonLoss

    schedule = NoiseSchedule()
    abar = schedule.ddpm().alphas_cumprod
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 6, 6, generator=generator) * 2 - 1
    noise = torch.randn(4, 1, 6, 6, generator=generator)
    timesteps = torch.tensor([0, 10, 500, 999])
    a, s = abar[timesteps].sqrt().view(-1, 1, 1, 1), (1 - abar[timesteps]).sqrt().view(-1, 1, 1, 1)
    noisy = a * x0 + s * noise
    x0_guess = x0 + 0.1 * torch.randn(x0.shape, generator=generator)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (x - a * x0_guess) / s  # the noise implied by a clean-image estimate

    batch = {"noisy": noisy, "timesteps": timesteps, "noise": noise}
    weighted, logs = EpsilonLoss(schedule, "snr_plus_one")(model, batch)
    v_true, v_pred = a * noise - s * x0, a * model(noisy, timesteps) - s * x0_guess
    torch.testing.assert_close(weighted, (v_pred - v_true).pow(2).mean(), rtol=1e-4, atol=1e-6)
    uniform, _ = EpsilonLoss(schedule, "uniform")(model, batch)
    torch.testing.assert_close(uniform, (model(noisy, timesteps) - noise).pow(2).mean())
    assert logs["eps_mse"] == pytest.approx(float(uniform), rel=1e-5)
    with pytest.raises(FusionProxyError):
        EpsilonLoss(schedule, "bogus")
