"""Foundation panel: registry, missing weights, frozen behaviour, shapes, input gradients, block choice."""

from __future__ import annotations

import pytest
import torch

from fusionproxy.errors import MissingWeightsError
from fusionproxy.foundation import DEFAULT_PANEL, PAPER_PANEL, create_backbone, list_backbones, resample_to_grid


def test_registry_lists_both_panels():
    assert set(DEFAULT_PANEL + PAPER_PANEL) == set(list_backbones())


@pytest.mark.parametrize("name", DEFAULT_PANEL + PAPER_PANEL)
def test_missing_weights_name_path_and_fetch_command(tmp_path, name):
    with pytest.raises(MissingWeightsError) as error:
        create_backbone(name, weights_dir=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(error.value)
    if name in DEFAULT_PANEL:
        assert f"fusionproxy weights fetch {name}" in str(error.value)


@pytest.mark.parametrize(
    "name, channels, stride", [("vgg16", 256, 4), ("vgg16-hed", 256, 4), ("efficientnet-lite0", 112, 16)]
)
def test_cnn_shapes_gradients_and_frozen(name, channels, stride):
    backbone = create_backbone(name, random_init=True)
    assert backbone.identity() == f"{name}:random-init" and backbone.random_init
    backbone.train()
    assert not backbone.training and not any(p.requires_grad for p in backbone.parameters())
    rgb = torch.rand(2, 3, 32, 48, requires_grad=True)
    features = backbone(rgb)
    assert features.shape == (2, channels, 32 // stride, 48 // stride)
    features.square().mean().backward()
    assert rgb.grad is not None and rgb.grad.abs().sum() > 0
    assert all(p.grad is None for p in backbone.parameters())


def test_vgg16_loads_torchvision_state_dict(tmp_path):
    reference = create_backbone("vgg16", random_init=True)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # the rest of torchvision's VGG-16 is ignored
    torch.save(state, tmp_path / "vgg16-397923af.pth")
    loaded = create_backbone("vgg16", weights_dir=tmp_path)
    assert not loaded.random_init and loaded.identity().startswith("vgg16:") and "random" not in loaded.identity()
    rgb = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(rgb), reference(rgb))


def test_hed_normalisation_is_bgr_minus_caffe_mean():
    backbone = create_backbone("vgg16-hed", random_init=True)
    rgb = torch.zeros(1, 3, 4, 4)
    rgb[:, 0] = 1.0  # pure red -> BGR (0, 0, 255) minus the mean
    normalised = backbone.normalize(rgb)[0, :, 0, 0]
    torch.testing.assert_close(normalised, torch.tensor([-104.00699, -116.66877, 255.0 - 122.67892]))


TINY = {
    # name: (transformers class, config, block of the paper, channels)
    "dinov2": ("Dinov2Model", "Dinov2Config", dict(hidden_size=16, num_hidden_layers=8, num_attention_heads=2,
                                                    mlp_ratio=2, patch_size=14, image_size=56)),
    "clip": ("CLIPVisionModel", "CLIPVisionConfig", dict(hidden_size=16, intermediate_size=32, num_hidden_layers=13,
                                                         num_attention_heads=2, patch_size=14, image_size=56)),
    "sam": ("SamVisionModel", "SamVisionConfig", dict(hidden_size=16, num_hidden_layers=7, num_attention_heads=2,
                                                      mlp_dim=32, image_size=64, patch_size=16, window_size=2,
                                                      global_attn_indexes=[2, 5], output_channels=8)),
}  # fmt: skip
BLOCKS = {"dinov2": 6, "clip": 12, "sam": 6}


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_transformer_backbones_from_hf_directories(tmp_path, name):
    import transformers

    model_class, config_class, values = TINY[name]
    torch.manual_seed(0)
    full = getattr(transformers, model_class)(getattr(transformers, config_class)(**values)).eval()
    full.save_pretrained(tmp_path)
    backbone = create_backbone(name, weights_dir=tmp_path)
    assert backbone.identity().startswith(f"{name}:") and not backbone.random_init
    rgb = torch.rand(2, 3, 45, 71, requires_grad=True)
    features = backbone(rgb)
    if name == "sam":  # fixed 64 x 64 input, patch 16
        assert features.shape == (2, 16, 4, 4)
        size = (64, 64)
    else:  # resized to the nearest multiple of 14: 42 x 70
        assert features.shape == (2, 16, 3, 5)
        size = (42, 70)
    features.sum().backward()
    assert rgb.grad.abs().sum() > 0 and not any(p.requires_grad for p in backbone.parameters())
    # the truncated model gives exactly the full model's block output
    pixels = (torch.nn.functional.interpolate(rgb.detach(), size=size, mode="bilinear") - backbone.mean) / backbone.std
    kwargs = {"interpolate_pos_encoding": True} if name == "clip" else {}
    with torch.no_grad():
        hidden = full(pixel_values=pixels, output_hidden_states=True, **kwargs).hidden_states[BLOCKS[name]]
    expected = hidden.permute(0, 3, 1, 2) if name == "sam" else hidden[:, 1:].transpose(1, 2).reshape(2, 16, *features.shape[-2:])
    torch.testing.assert_close(features.detach(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_random_init_transformer_is_labelled():
    backbone = create_backbone("dinov2s-imgfocus", random_init=True)
    assert backbone.identity() == "dinov2s-imgfocus:random-init" and backbone.out_channels == 384
    assert len(backbone.model.encoder.layer) == 6


def test_resample_to_grid_is_bilinear():
    features = torch.arange(16.0).view(1, 1, 4, 4).repeat(2, 3, 1, 1)
    out = resample_to_grid(features, 8)
    assert out.shape == (2, 3, 8, 8)
    torch.testing.assert_close(out.mean(), features.mean())  # bilinear resampling of a ramp keeps its mean
    assert resample_to_grid(features, 4) is features
    torch.testing.assert_close(resample_to_grid(torch.full((1, 2, 3, 5), 7.0), 64), torch.full((1, 2, 64, 64), 7.0))
