"""The student contract (any size in, RGB in [0, 1] out, deterministic) and the building blocks of Sec. 3.4."""

from __future__ import annotations

import json

import pytest
import torch

from fusionproxy.students import create_student, list_students
from fusionproxy.students.blocks import GRN, ConvNeXtV2Block, FusionHead, LayerNorm2d, SubPixelConv, subpixel_conv
from fusionproxy.students.dual_unet import blend_sources

OURS = ("convnext_unet", "mobile_unet", "ultralight")  # dtpf_student is tested with the DTPF code
SIZES = [(17, 17), (37, 53), (8, 100), (64, 32)]


def _pair(batch: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, height, width, generator=generator), torch.rand(batch, 3, height, width,
                                                                                  generator=generator)


def _seeded(name: str, seed: int = 0, **config) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_student(name, **config).eval()


def test_registry_has_our_students() -> None:
    assert set(OURS) <= set(list_students())


@pytest.mark.parametrize("uncertainty", [False, True])
@pytest.mark.parametrize("name", OURS)
def test_any_size_gives_rgb_in_unit_range(name: str, uncertainty: bool) -> None:
    model = _seeded(name, uncertainty_head=uncertainty)
    for height, width in SIZES:
        ir, vis = _pair(2, height, width)
        with torch.no_grad():
            rgb, log_variance = model.forward_with_uncertainty(ir, vis)
            plain = model(ir, vis)
        assert rgb.shape == (2, 3, height, width)
        assert torch.equal(plain, rgb)
        assert torch.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1
        if uncertainty:
            assert log_variance is not None and log_variance.shape == (2, 1, height, width)
            assert torch.isfinite(log_variance).all()
        else:
            assert log_variance is None


@pytest.mark.parametrize("name", OURS)
def test_output_stays_in_range_for_extreme_inputs_and_weights(name: str) -> None:
    model = _seeded(name)
    with torch.no_grad():
        model.rgb_head.weight.mul_(1e5)  # residual logits far beyond any trained range
        ir, vis = _pair(1, 37, 53)
        for ir_in, vis_in in [(ir, vis), (ir * 0, vis * 0), (ir * 0 + 1, vis * 0 + 1), (ir * 9 - 4, vis * 9 - 4)]:
            rgb = model(ir_in, vis_in)
            assert torch.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1


@pytest.mark.parametrize("name", OURS)
def test_deterministic_across_calls_and_seeded_builds(name: str) -> None:
    ir, vis = _pair(1, 37, 53)
    first, second = _seeded(name, seed=3), _seeded(name, seed=3)
    with torch.no_grad():
        out = first(ir, vis)
        assert torch.equal(out, first(ir, vis))
        assert torch.equal(out, second(ir, vis))
        assert not torch.equal(out, _seeded(name, seed=4)(ir, vis))


@pytest.mark.parametrize("name", OURS)
def test_gradients_reach_every_parameter(name: str) -> None:
    model = _seeded(name, uncertainty_head=True).train()
    ir, vis = _pair(2, 40, 72)
    target = torch.rand(2, 3, 40, 72, generator=torch.Generator().manual_seed(1))
    rgb, log_variance = model.forward_with_uncertainty(ir, vis)
    (((rgb - target) ** 2).mean() + log_variance.square().mean()).backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize("name", OURS)
def test_fresh_student_starts_near_the_visible_image(name: str) -> None:
    ir, vis = _pair(1, 64, 64)
    with torch.no_grad():
        rgb = _seeded(name)(ir, vis)
    assert (rgb - vis).abs().mean() < 0.02


@pytest.mark.parametrize("name", OURS)
def test_config_round_trips_through_json(name: str) -> None:
    model = _seeded(name, uncertainty_head=True)
    config = json.loads(json.dumps(model.config.to_dict()))
    assert create_student(name, **config).config == model.config


def test_bad_configs_are_rejected() -> None:
    with pytest.raises(ValueError, match="decoder_depths"):
        create_student("convnext_unet", widths=(8, 16), depths=(1, 1), decoder_depths=(1, 1))
    with pytest.raises(ValueError, match="equal length"):
        create_student("mobile_unet", widths=(8, 16), depths=(1,), decoder_depths=(1,))
    with pytest.raises(ValueError, match="positive"):
        create_student("ultralight", stem_stride=0)


def test_stride_follows_the_config() -> None:
    assert create_student("convnext_unet", widths=(8, 16, 32), depths=(1, 1, 1), decoder_depths=(1, 1),
                          stem_stride=2).stride == 8
    assert create_student("ultralight").stride == 4 * 2 ** (len(create_student("ultralight").config.widths) - 1)


def test_fusion_head_is_eq13_on_a_hand_made_case() -> None:
    """Attention fixed at sigmoid(0) = 0.5 and a projection summing the IR and VIS halves:
    F_out = P(0.5 * [F_IR; F_VIS]) + F_IR + F_VIS = 1.5 * (F_IR + F_VIS)."""
    channels = 3
    head = FusionHead(channels)
    with torch.no_grad():
        last = head.attention[3]
        last.weight.zero_()
        last.bias.zero_()
        eye = torch.eye(channels)
        head.project.weight.copy_(torch.cat([eye, eye], dim=1)[..., None, None])
        head.project.bias.zero_()
        f_ir, f_vis = torch.randn(2, channels, 5, 7), torch.randn(2, channels, 5, 7)
        assert torch.allclose(head(f_ir, f_vis), 1.5 * (f_ir + f_vis), atol=1e-6)
        # A per-channel attention weights the IR and VIS halves separately.
        last.bias.copy_(torch.tensor([10.0] * channels + [-10.0] * channels))  # ~1 for IR, ~0 for VIS
        assert torch.allclose(head(f_ir, f_vis), 2 * f_ir + f_vis, atol=1e-3)


def test_blend_sources_is_a_per_pixel_affine_mix_of_the_sources() -> None:
    generator = torch.Generator().manual_seed(0)
    ir, vis = torch.rand(1, 1, 8, 12, generator=generator), torch.rand(1, 3, 8, 12, generator=generator)
    coefficients = torch.randn(1, 9, 8, 12, generator=generator)
    a, b, c = coefficients.split(3, dim=1)
    assert torch.allclose(blend_sources(ir, vis, coefficients), (1 + a) * vis + b * ir + c, atol=1e-6)
    assert torch.equal(blend_sources(ir, vis, torch.zeros_like(coefficients)), vis)


@pytest.mark.parametrize("factor,bias", [(2, True), (4, True), (4, False)])
def test_subpixel_conv_equals_a_conv_then_a_pixel_shuffle(factor: int, bias: bool) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 3 * factor * factor, 1, bias=bias)
    x = torch.randn(2, 5, 6, 7)
    expected = torch.nn.functional.pixel_shuffle(conv(x), factor)
    assert torch.allclose(subpixel_conv(x, conv, factor), expected, atol=1e-6)
    layer = SubPixelConv(5, 3, factor)
    assert sorted(layer.state_dict()) == ["0.bias", "0.weight"]  # the keys of the models saved before it
    assert torch.allclose(layer(x), torch.nn.Sequential.forward(layer, x), atol=1e-6)


def test_convnext_block_folds_grn_into_the_projection_exactly() -> None:
    torch.manual_seed(0)
    block = ConvNeXtV2Block(8, mlp_ratio=3)
    with torch.no_grad():
        block.grn.gamma.normal_()
        block.grn.beta.normal_()
    x = torch.randn(2, 8, 9, 11)
    y = block.depthwise(x).permute(0, 2, 3, 1)
    unfolded = block.project(block.grn(block.act(block.expand(block.norm(y)))))
    assert torch.allclose(block(x), x + unfolded.permute(0, 3, 1, 2), atol=1e-5)


@pytest.mark.parametrize("name", OURS)
def test_output_is_clamped_to_the_unit_range_at_inference(name: str) -> None:
    model = _seeded(name)
    with torch.no_grad():
        model.rgb_head.bias.fill_(3.0)  # pushes every pixel far above 1
        ir, vis = _pair(2, 128, 128)
        model.train()
        assert model(ir, vis).max() > 1.5  # training: unclamped, so the loss still sees the overshoot
        model.eval()
        assert model(ir, vis).max() == 1.0 and model(ir, vis).min() >= 0.0


def test_grn_and_convnext_block_start_as_identity_on_the_mlp_path() -> None:
    x = torch.randn(2, 5, 6, 8)  # channels-last for GRN
    assert torch.equal(GRN(8)(x), x)
    grn = GRN(8)
    with torch.no_grad():
        grn.gamma.fill_(1.0)
    norms = x.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
    assert torch.allclose(grn(x), x * norms / (norms.mean(-1, keepdim=True) + 1e-6) + x, atol=1e-5)
    block = ConvNeXtV2Block(8)
    y = torch.randn(2, 8, 9, 11)
    assert block(y).shape == y.shape


def test_layernorm2d_normalises_over_channels() -> None:
    x = torch.randn(2, 6, 4, 5) * 3 + 1
    y = LayerNorm2d(6)(x)
    assert torch.allclose(y.mean(dim=1), torch.zeros(2, 4, 5), atol=1e-5)
    assert torch.allclose(y.var(dim=1, unbiased=False), torch.ones(2, 4, 5), atol=1e-3)


def test_convnext_unet_activation_is_a_config_choice() -> None:
    model = create_student("convnext_unet", activation="silu", depths=(0, 1, 2, 3))
    assert {type(m.act) for m in model.modules() if isinstance(m, ConvNeXtV2Block)} == {torch.nn.SiLU}
    assert model(*_pair(1, 64, 96)).shape == (1, 3, 64, 96)
    with pytest.raises(ValueError, match="activation 'swish'"):
        create_student("convnext_unet", activation="swish")
