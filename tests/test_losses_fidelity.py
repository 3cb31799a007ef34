"""DTPF source-fidelity terms (DTPF Eq. 13-16) on hand-made tensors."""

from __future__ import annotations

import pytest
import torch

from fusionproxy.losses.fusion_fidelity import (
    FidelityWeights,
    luminance,
    source_fidelity_loss,
    source_fidelity_terms,
    weighted_total,
)


def _gray_rgb(value: torch.Tensor) -> torch.Tensor:
    return value.expand(-1, 3, -1, -1).clone()


def test_intensity_targets_the_brighter_source_per_pixel() -> None:
    ir = torch.zeros(1, 1, 8, 8)
    ir[..., :4] = 0.9  # IR brighter on the left half
    vis = _gray_rgb(torch.full((1, 1, 8, 8), 0.5))
    expected = _gray_rgb(torch.maximum(ir, torch.full_like(ir, 0.5)))
    assert source_fidelity_terms(expected, ir, vis)["intensity"].item() == pytest.approx(0.0, abs=1e-6)
    # Taking the visible image everywhere misses the IR-bright half by 0.4: mean error 0.2.
    assert source_fidelity_terms(vis, ir, vis)["intensity"].item() == pytest.approx(0.2, abs=1e-5)


def test_gradient_term_is_zero_when_fused_keeps_the_stronger_edges() -> None:
    ir = torch.zeros(1, 1, 16, 16)
    ir[..., 8:] = 1.0  # a strong vertical edge only IR has
    vis = _gray_rgb(torch.full((1, 1, 16, 16), 0.3))
    terms = source_fidelity_terms(_gray_rgb(ir), ir, vis)
    assert terms["gradient"].item() == pytest.approx(0.0, abs=1e-6)
    assert source_fidelity_terms(vis, ir, vis)["gradient"].item() > 0.1


def test_ssim_and_color_terms_vanish_on_the_matching_source() -> None:
    generator = torch.Generator().manual_seed(1)
    vis = torch.rand(2, 3, 24, 24, generator=generator)
    ir = luminance(vis)
    terms = source_fidelity_terms(vis, ir, vis)
    assert torch.allclose(terms["ssim_vis"], torch.zeros(2), atol=1e-5)
    assert torch.allclose(terms["ssim_ir"], torch.zeros(2), atol=1e-5)
    assert torch.allclose(terms["color"], torch.zeros(2), atol=1e-6)
    gray = _gray_rgb(luminance(vis))  # same luminance, no chroma
    assert (source_fidelity_terms(gray, ir, vis)["color"] > 0.01).all()


def test_weighted_total_per_item_weights_and_skipped_terms() -> None:
    generator = torch.Generator().manual_seed(2)
    fused = torch.rand(2, 3, 16, 16, generator=generator, requires_grad=True)
    ir, vis = torch.rand(2, 1, 16, 16, generator=generator), torch.rand(2, 3, 16, 16, generator=generator)
    weights = FidelityWeights(intensity=2.0, gradient=0.0, ssim_vis=0.0, ssim_ir=0.0, color=1.0)
    total, terms = source_fidelity_loss(fused, ir, vis, weights)
    assert set(terms) == {"intensity", "color"}
    assert total.item() == pytest.approx((2 * terms["intensity"] + terms["color"]).mean().item(), rel=1e-6)
    per_item = weighted_total(terms, {"intensity": torch.tensor([1.0, 0.0])})
    assert per_item.item() == pytest.approx(terms["intensity"][0].item() / 2, rel=1e-6)
    total.backward()
    assert fused.grad is not None and fused.grad.abs().sum() > 0

