"""The teacher contract (teachers/base.py) for both teachers, persistence, and the `teacher sample` CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fusionproxy.errors import FusionProxyError, MissingWeightsError
from fusionproxy.teachers import create_teacher, list_teachers, load_teacher
from fusionproxy.teachers.ddfm import DDFMTeacher


TINY_UNET = {"block_out_channels": [8, 16], "norm_num_groups": 4, "patch_size": 2}
VARIANTS = {
    "masked": ("masked", {}),
    "ddfm-luma": ("ddfm", {"channels": 1}),
    "ddfm-rgb": ("ddfm", {"channels": 3}),
}


def _tiny(variant: str):
    name, extra = VARIANTS[variant]
    torch.manual_seed(0)
    return create_teacher(name, unet=TINY_UNET, steps=3, **extra)


def test_both_teachers_are_registered() -> None:
    assert {"masked", "ddfm"} <= set(list_teachers())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_sample_contract(variant: str, synthetic_pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    ir, vis = synthetic_pair  # 37 x 53: odd sizes, padded and cropped inside
    teacher = _tiny(variant)
    samples = teacher.sample(ir, vis, num_samples=3, seed=0)
    assert samples.shape == (3, 3, 37, 53) and samples.dtype == torch.float32
    assert torch.isfinite(samples).all() and samples.min() >= 0 and samples.max() <= 1
    assert torch.equal(samples, teacher.sample(ir, vis, num_samples=3, seed=0))
    other_seed = teacher.sample(ir, vis, num_samples=3, seed=1)
    assert (samples - other_seed).abs().mean() > 1e-3
    # the samples of one call differ from each other too, and sample k does not depend on num_samples
    assert (samples[0] - samples[1]).abs().mean() > 1e-3
    torch.testing.assert_close(teacher.sample(ir, vis, num_samples=1, seed=0), samples[:1], atol=1e-4, rtol=0)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_save_and_load_round_trip(variant: str, tmp_path: Path, synthetic_pair) -> None:
    ir, vis = synthetic_pair
    teacher = _tiny(variant)
    teacher.save_pretrained(tmp_path)
    loaded = load_teacher(tmp_path)
    assert type(loaded) is type(teacher)
    assert loaded.identity() == teacher.identity() and loaded.identity().startswith(teacher.name + "-")
    assert torch.equal(loaded.sample(ir, vis, 2, seed=5), teacher.sample(ir, vis, 2, seed=5))
    with torch.no_grad():
        next(loaded.parameters()).add_(0.01)
    assert loaded.identity() != teacher.identity()


def test_ddfm_output_keeps_visible_chroma(synthetic_pair) -> None:
    import kornia

    ir, vis = synthetic_pair
    fused = _tiny("ddfm-luma").sample(ir, vis, 2, seed=0)
    chroma = kornia.color.rgb_to_ycbcr(fused)[:, 1:]
    # exact up to the clamp of RGB to [0, 1]
    inside = ((fused > 0.02) & (fused < 0.98)).all(dim=1, keepdim=True).expand_as(chroma)
    target = kornia.color.rgb_to_ycbcr(vis)[:, 1:].expand_as(chroma)
    torch.testing.assert_close(chroma[inside], target[inside], atol=1e-4, rtol=0)


def test_ddfm_stretch_spans_each_samples_luminance_and_is_saved(tmp_path: Path, synthetic_pair) -> None:
    import json

    ir, vis = synthetic_pair
    gray_vis = vis.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)  # neutral chroma: RGB = luminance
    teacher = _tiny("ddfm-luma")
    plain = teacher.sample(ir, gray_vis, 2, seed=0)
    teacher.stretch = True
    stretched = teacher.sample(ir, gray_vis, 2, seed=0)
    for k in range(2):
        assert float(stretched[k].min()) == pytest.approx(0, abs=1e-5)
        assert float(stretched[k].max()) == pytest.approx(1, abs=1e-5)
        low, high = plain[k].min(), plain[k].max()
        torch.testing.assert_close(stretched[k], (plain[k] - low) / (high - low), atol=1e-4, rtol=0)
    teacher.save_pretrained(tmp_path / "new")
    assert load_teacher(tmp_path / "new").stretch is True
    # a directory saved before the setting existed samples as before
    config_path = tmp_path / "new" / "config.json"
    record = json.loads(config_path.read_text())
    del record["config"]["stretch"]
    config_path.write_text(json.dumps(record))
    assert load_teacher(tmp_path / "new").stretch is False


def test_set_sampling_checks_names_and_types() -> None:
    from fusionproxy.teachers.training import set_sampling

    ddfm, masked = _tiny("ddfm-luma"), _tiny("masked")
    set_sampling(ddfm, ["steps=7", "stretch=true", "rho=1"])
    assert (ddfm.steps, ddfm.stretch, ddfm.rho) == (7, True, 1.0) and isinstance(ddfm.rho, float)
    set_sampling(masked, ["eta=0"])
    assert masked.eta == 0.0
    for teacher, item, message in [
        (masked, "stretch=true", "not a sampling setting of the masked teacher"),
        (ddfm, "eta=0", "not a sampling setting of the ddfm teacher"),
        (ddfm, "steps=2.5", "steps takes a int"),
        (ddfm, "stretch=2", "stretch takes a bool"),
        (ddfm, "lam", "not a sampling setting"),
    ]:
        with pytest.raises(FusionProxyError, match=message):
            set_sampling(teacher, [item])


def test_ddfm_wraps_a_diffusers_prior_directory(tmp_path: Path, synthetic_pair) -> None:
    from diffusers import UNet2DModel

    unet = UNet2DModel(in_channels=3, out_channels=3, block_out_channels=(8, 16), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       add_attention=False)
    unet.save_pretrained(tmp_path / "prior")
    teacher = DDFMTeacher.from_prior(tmp_path / "prior", steps=2)
    assert teacher.channels == 3 and teacher.multiple == 2
    ir, vis = synthetic_pair
    assert teacher.sample(ir, vis, 2, seed=0).shape == (2, 3, 37, 53)
    with pytest.raises(FusionProxyError, match="not a diffusers UNet2DModel directory"):
        DDFMTeacher.from_prior(tmp_path / "missing")

    from fusionproxy.cli import app

    result = CliRunner().invoke(app, ["teacher", "from-prior", "--prior", str(tmp_path / "prior"),
                                      "--out", str(tmp_path / "teacher"), "--steps", "2"])
    assert result.exit_code == 0, result.output
    wrapped = load_teacher(tmp_path / "teacher")
    assert isinstance(wrapped, DDFMTeacher) and wrapped.steps == 2 and wrapped.rho == 0.001


def test_bad_inputs_and_directories(tmp_path: Path, synthetic_pair) -> None:
    ir, vis = synthetic_pair
    teacher = _tiny("masked")
    with pytest.raises(ValueError):
        teacher.sample(ir, vis[..., :-1], 1, seed=0)
    with pytest.raises(ValueError):
        teacher.sample(ir, vis, 0, seed=0)
    with pytest.raises(MissingWeightsError, match="config.json"):
        load_teacher(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"teacher": "nope", "config": {}}')
    with pytest.raises(FusionProxyError, match="unknown teacher 'nope'"):
        load_teacher(tmp_path / "bad")
    teacher.save_pretrained(tmp_path / "t")
    (tmp_path / "t" / "model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="model.safetensors"):
        load_teacher(tmp_path / "t")


def test_sample_cli_writes_samples_and_mean(tmp_path: Path, tiny_pair) -> None:
    from fusionproxy.cli import app

    _tiny("ddfm-luma").save_pretrained(tmp_path / "teacher")
    ir_path, vis_path = tiny_pair
    result = CliRunner().invoke(app, [
        "teacher", "sample", "--teacher", str(tmp_path / "teacher"), "--ir", str(ir_path), "--vis", str(vis_path),
        "-n", "2", "--seed", "0", "-o", str(tmp_path / "out"),
    ])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [f"{ir_path.stem}_mean.png", f"{ir_path.stem}_sample0.png", f"{ir_path.stem}_sample1.png"]


@pytest.mark.parametrize("output", ["epsilon", "noise_skip", "clean"])
def test_denoiser_output_parameterisations(output: str) -> None:
    """With the UNet's output zeroed, each parameterisation reduces to its closed form."""
    from fusionproxy.teachers.denoiser import Denoiser, NoiseSchedule, UNetConfig, build_unet

    schedule = NoiseSchedule()
    config = UNetConfig(block_out_channels=(8, 16), norm_num_groups=4, patch_size=2, output=output)
    denoiser = Denoiser(build_unet(config, 9, 3), config.patch_size, output, schedule)
    torch.nn.init.zeros_(denoiser.unet.conv_out.weight)
    torch.nn.init.zeros_(denoiser.unet.conv_out.bias)
    x = torch.randn(2, 9, 8, 12)
    timesteps = torch.tensor([999, 10])
    abar = schedule.ddpm().alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    expected = {
        "epsilon": torch.zeros(2, 3, 8, 12),
        "noise_skip": (1 - abar).sqrt() * x[:, :3],
        "clean": x[:, :3] / (1 - abar).sqrt(),
    }[output]
    torch.testing.assert_close(denoiser(x, timesteps), expected)
    with pytest.raises(ValueError):
        Denoiser(build_unet(config, 9, 3), 2, "velocity", schedule)
