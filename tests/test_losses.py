"""The distillation loss of paper Eq. 7-12 on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fusionproxy.errors import FusionProxyError
from fusionproxy.foundation.base import FoundationBackbone
from fusionproxy.losses import (
    DistillationLoss,
    DistillLossConfig,
    GlobalBackboneWeights,
    adaptive_routing,
    mfm_loss,
    pixel_loss,
    pixel_weights,
    ssim_loss,
    uncertainty_loss,
)


def test_pixel_weights_sum_to_one_and_favour_low_variance() -> None:
    variance = torch.tensor([[[0.0, 0.01], [0.1, 1.0]]]).repeat(2, 1, 1)
    weights = pixel_weights(variance, eps=1e-3)
    torch.testing.assert_close(weights.sum(dim=(-2, -1)), torch.ones(2))
    flat = weights[0].flatten()
    assert (flat[:-1] > flat[1:]).all()  # variance increases along the flattened order
    # Eq. 7 by hand for the first pixel.
    inverse = 1.0 / (variance[0].flatten() + 1e-3)
    assert flat[0].item() == pytest.approx((inverse[0] / inverse.sum()).item(), rel=1e-6)
    uniform = pixel_weights(variance, uniform=True)
    torch.testing.assert_close(uniform, torch.full_like(variance, 0.25))


def test_pixel_loss_is_weighted_l1_summed_over_rgb() -> None:
    output = torch.zeros(1, 3, 1, 2)
    mean = torch.tensor([[[[1.0, 0.0]], [[1.0, 0.0]], [[1.0, 0.5]]]])  # pixel errors: 3.0 and 0.5
    weights = torch.tensor([[[0.25, 0.75]]])
    assert pixel_loss(output, mean, weights).item() == pytest.approx(0.25 * 3.0 + 0.75 * 0.5)


def test_routing_tends_to_one_hot_and_to_uniform() -> None:
    generator = torch.Generator().manual_seed(0)
    mean_variance = torch.tensor([0.5, 1.0, 2.0])
    # Normalised variances (Eq. 8) are a per-pixel permutation of 0.1, 0.5, 0.9: a clear winner everywhere.
    order = torch.rand(2, 3, 5, 5, generator=generator).argsort(dim=1)
    normalised = torch.tensor([0.1, 0.5, 0.9])[order]
    variance = normalised * (mean_variance.view(1, -1, 1, 1) + 1e-3)
    sharp = adaptive_routing(variance, mean_variance, tau=1e-2)
    one_hot = nn.functional.one_hot(normalised.argmax(dim=1), 3).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(sharp, one_hot, atol=1e-4, rtol=0)
    smooth = adaptive_routing(variance, mean_variance, tau=1e4)
    torch.testing.assert_close(smooth, torch.full_like(smooth, 1 / 3), atol=1e-3, rtol=0)
    torch.testing.assert_close(adaptive_routing(variance, mean_variance, tau=math.inf), torch.full_like(smooth, 1 / 3))
    default = adaptive_routing(variance, mean_variance)
    torch.testing.assert_close(default.sum(dim=1), torch.ones(2, 5, 5))
    torch.testing.assert_close(default, torch.softmax(normalised, dim=1))


def test_learned_global_weights_are_a_trainable_softmax() -> None:
    weights = GlobalBackboneWeights(2)
    like = torch.zeros(3, 2, 4, 4)
    torch.testing.assert_close(weights(like), torch.full_like(like, 0.5))
    weights(like)[:, 0].sum().backward()
    assert weights.logits.grad is not None and weights.logits.grad.abs().sum() > 0


def test_mfm_equals_a_hand_computation_on_two_backbones() -> None:
    generator = torch.Generator().manual_seed(1)
    student = [torch.randn(2, 3, 4, 4, generator=generator), torch.randn(2, 5, 4, 4, generator=generator)]
    target = [torch.randn(2, 3, 4, 4, generator=generator), torch.randn(2, 5, 4, 4, generator=generator)]
    routing = torch.softmax(torch.randn(2, 2, 4, 4, generator=generator), dim=1)
    expected = 0.0
    for b in range(2):
        image_total = 0.0
        for k in range(2):
            for y in range(4):
                for x in range(4):
                    distance = sum((student[k][b, c, y, x] - target[k][b, c, y, x]).item() ** 2
                                   for c in range(student[k].shape[1]))
                    image_total += routing[b, k, y, x].item() * distance
        expected += image_total / 16 / 2
    assert mfm_loss(student, target, routing, "sum").item() == pytest.approx(expected, rel=1e-5)
    # "mean" divides each backbone's squared distance by its channel count (3 and 5 here).
    scaled = [student[0] / math.sqrt(3), student[1] / math.sqrt(5)]
    scaled_target = [target[0] / math.sqrt(3), target[1] / math.sqrt(5)]
    assert mfm_loss(student, target, routing, "mean").item() == pytest.approx(
        mfm_loss(scaled, scaled_target, routing, "sum").item(), rel=1e-5
    )


def test_ssim_loss_is_one_minus_ssim() -> None:
    generator = torch.Generator().manual_seed(2)
    image = torch.rand(1, 3, 24, 24, generator=generator)
    assert ssim_loss(image, image).item() == pytest.approx(0.0, abs=1e-5)
    assert 0.5 < ssim_loss(image, torch.rand(1, 3, 24, 24, generator=generator)).item() <= 2.0


def test_uncertainty_losses_have_the_documented_minimisers() -> None:
    variance = torch.full((1, 4, 4), 0.04)
    mean = torch.full((1, 3, 4, 4), 0.5)
    output = mean + 0.1  # squared error 0.01 per channel
    candidates = torch.linspace(-6.0, -1.0, 501)

    def best(kind: str) -> float:
        values = [uncertainty_loss(torch.full((1, 1, 4, 4), float(s)), output, mean, variance, kind).item()
                  for s in candidates]
        return candidates[int(torch.tensor(values).argmin())].item()

    assert best("l1_log_var") == pytest.approx(math.log(0.04 + 1e-3), abs=0.02)
    assert best("gaussian_nll") == pytest.approx(math.log(0.04 + 0.01), abs=0.02)


def test_config_switches_and_yaml(tmp_path) -> None:
    path = tmp_path / "loss.yaml"
    path.write_text("tau: .inf\nrouting: learned\nfidelity: {color: 0.0}\n")
    config = DistillLossConfig.from_yaml(path)
    assert math.isinf(config.tau) and config.routing == "learned" and config.fidelity.color == 0.0
    assert DistillLossConfig.from_dict({"tau": "inf"}).tau == math.inf
    with pytest.raises(FusionProxyError, match="unknown loss option"):
        DistillLossConfig.from_dict({"lambda_pixel": 1.0})
    with pytest.raises(FusionProxyError, match="routing"):
        DistillLossConfig.from_dict({"routing": "softmax"})
    with pytest.raises(FusionProxyError, match="tau"):
        DistillLossConfig.from_dict({"tau": 0})


# ----- the full objective with a toy panel --------------------------------------------------------------
class ToyBackbone(FoundationBackbone):
    """A frozen 3 x 3 conv at stride 2, standing in for a panel backbone."""

    def __init__(self, name: str, channels: int, seed: int) -> None:
        super().__init__()
        self.name, self.out_channels = name, channels
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, channels, 3, stride=2, padding=1)
        self.requires_grad_(False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.conv(rgb)


class ToyStudent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, None]:
        return torch.sigmoid(self.conv(torch.cat([ir, vis], dim=1))), None


def _toy_batch(panel: dict[str, FoundationBackbone], size: int = 32) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    batch = {
        "ir": torch.rand(2, 1, size, size, generator=generator),
        "vis": torch.rand(2, 3, size, size, generator=generator),
        "mean": torch.rand(2, 3, size, size, generator=generator),
        "var": torch.rand(2, size, size, generator=generator) * 0.01,
    }
    batch["ir_input"] = batch["ir"]
    for name, backbone in panel.items():
        batch[f"feat_mean/{name}"] = torch.randn(2, backbone.out_channels, 64, 64, generator=generator)
        batch[f"feat_var/{name}"] = torch.rand(2, 64, 64, generator=generator)
    return batch


def _toy_loss(**config) -> tuple[DistillationLoss, dict[str, FoundationBackbone]]:
    panel = {"a": ToyBackbone("a", 4, 0), "b": ToyBackbone("b", 6, 1)}
    sigma = {"a": torch.full((4,), 2.0), "b": torch.linspace(0.5, 1.5, 6)}
    return DistillationLoss(DistillLossConfig(**config), panel, sigma, {"a": 0.3, "b": 0.7}), panel


def test_total_is_eq12_and_gradients_reach_only_the_student() -> None:
    loss, panel = _toy_loss(lambda_fidelity=0.5)
    student, batch = ToyStudent(), _toy_batch(panel)
    total, logs = loss(student, batch)
    assert set(logs) == {"pix", "mfm", "ssim", "fidelity"}
    expected = logs["pix"] + 0.5 * logs["mfm"] + 0.2 * logs["ssim"] + 0.5 * logs["fidelity"]
    assert total.item() == pytest.approx(expected, rel=1e-5)
    total.backward()
    assert student.conv.weight.grad is not None and student.conv.weight.grad.abs().sum() > 0
    for backbone in panel.values():
        assert all(p.grad is None for p in backbone.parameters())
    assert list(loss.parameters()) == []  # nothing of the loss is trained by default


def test_mfm_term_uses_sigma_normalised_panel_features() -> None:
    loss, panel = _toy_loss(routing="uniform")
    batch = _toy_batch(panel)
    rgb = torch.rand(2, 3, 32, 32)
    from fusionproxy.foundation import resample_to_grid

    student = [resample_to_grid(panel["a"](rgb), 64) / 2.0,
               resample_to_grid(panel["b"](rgb), 64) / torch.linspace(0.5, 1.5, 6).view(1, -1, 1, 1)]
    target = [batch["feat_mean/a"], batch["feat_mean/b"]]
    expected = mfm_loss(student, target, torch.full((2, 2, 64, 64), 0.5))
    assert loss.terms(rgb, None, batch)["mfm"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_learned_routing_exposes_its_logits_to_the_trainer() -> None:
    loss, panel = _toy_loss(routing="learned")
    assert [p.shape for p in loss.parameters()] == [torch.Size([2])]
    total, _ = loss(ToyStudent(), _toy_batch(panel))
    total.backward()
    assert loss.global_weights.logits.grad.abs().sum() > 0


def test_uncertainty_term_only_with_the_head() -> None:
    loss, panel = _toy_loss(lambda_mfm=0.0)
    batch, rgb = _toy_batch(panel), torch.rand(2, 3, 32, 32)
    assert "uncertainty" not in loss.terms(rgb, None, batch)
    log_variance = torch.log(batch["var"] + 1e-3)[:, None]
    terms = loss.terms(rgb, log_variance, batch)
    assert set(terms) == {"pix", "ssim", "uncertainty"} and terms["uncertainty"].item() == pytest.approx(0.0, abs=1e-6)
