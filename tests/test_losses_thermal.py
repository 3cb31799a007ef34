"""The hot-target contrast term (losses/thermal.py) on synthetic frames with known answers."""

from __future__ import annotations

import pytest
import torch

from fusionproxy.errors import FusionProxyError
from fusionproxy.losses import DistillationLoss, DistillLossConfig, local_contrast, thermal_contrast_loss

SIGMA, THRESHOLD = 5.0, 0.1


def hot_square(background: float = 0.3, hot: float = 0.8) -> torch.Tensor:
    ir = torch.full((1, 1, 64, 64), background)
    ir[..., 28:36, 28:36] = hot
    return ir


def test_local_contrast_is_zero_on_flat_frames_and_positive_on_a_hot_spot() -> None:
    assert local_contrast(torch.full((1, 1, 32, 32), 0.4), SIGMA).abs().max() < 1e-6
    contrast = local_contrast(hot_square(), SIGMA)
    assert contrast[0, 0, 32, 32] > 0.3 and contrast[0, 0, 2, 2].abs() < 1e-3


def test_fused_frames_that_carry_the_target_cost_nothing_and_faded_ones_cost_their_missing_contrast() -> None:
    ir = hot_square()
    vis = torch.full((1, 3, 64, 64), 0.5)
    faded = thermal_contrast_loss(vis, ir, SIGMA, THRESHOLD)
    half = thermal_contrast_loss(vis + 0.5 * (ir - 0.3), ir, SIGMA, THRESHOLD)  # half the IR contrast pasted in
    full = thermal_contrast_loss(vis + (ir - 0.3), ir, SIGMA, THRESHOLD)  # a brighter frame with the whole contrast
    assert full.item() == pytest.approx(0.0, abs=1e-5)
    assert half.item() == pytest.approx(faded.item() / 2, rel=1e-3)
    assert faded.item() > 0.3


def test_cold_objects_and_frames_without_hot_pixels_are_left_to_the_other_terms() -> None:
    vis = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    cold = hot_square(background=0.6, hot=0.1)
    assert thermal_contrast_loss(vis[:1], torch.full((1, 1, 64, 64), 0.3), SIGMA, THRESHOLD).item() == 0.0
    # a cold square: only the warm ring just outside it counts, and only a little
    assert thermal_contrast_loss(vis[:1], cold, SIGMA, THRESHOLD) < thermal_contrast_loss(vis[:1], hot_square(), SIGMA, THRESHOLD)


def test_the_distillation_loss_adds_the_term_only_when_weighted() -> None:
    batch = {"ir": hot_square(), "vis": torch.full((1, 3, 64, 64), 0.5), "mean": torch.full((1, 3, 64, 64), 0.5),
             "var": torch.full((1, 64, 64), 0.01)}
    batch["ir_input"] = batch["ir"]
    rgb = batch["vis"].clone().requires_grad_(True)
    off = DistillationLoss(DistillLossConfig(lambda_mfm=0.0), {}, {}, {})
    on = DistillationLoss(DistillLossConfig(lambda_mfm=0.0, lambda_thermal=1.0, thermal_sigma=SIGMA), {}, {}, {})
    assert "thermal" not in off.terms(rgb, None, batch)
    terms = on.terms(rgb, None, batch)
    assert terms["thermal"].item() == pytest.approx(thermal_contrast_loss(rgb, batch["ir"], SIGMA, 0.1).item())
    terms["thermal"].backward()
    assert rgb.grad[..., 32, 32].sum() < 0  # the loss falls as the target pixel brightens


def test_at_least_mode_leaves_texture_inside_a_target_free_and_only_charges_missing_contrast() -> None:
    ir = hot_square()
    vis = torch.full((1, 3, 64, 64), 0.5)
    target = vis + (ir - 0.3)
    textured = target.clone()
    textured[..., 28:36, 28:36] += 0.15 * torch.tensor([1.0, -1.0]).repeat(4).view(1, 1, 8, 1)  # stripes, mean kept
    brighter = vis + 1.5 * (ir - 0.3)
    loss = {name: thermal_contrast_loss(frame, ir, SIGMA, THRESHOLD, mode="at_least").item()
            for name, frame in (("faded", vis), ("half", vis + 0.5 * (ir - 0.3)), ("textured", textured),
                                ("brighter", brighter))}
    # "match" charges the stripes about as much as half the missing contrast; "at_least" a few percent of it
    # (what is left: the soft mask weights the stripes' rows unequally)
    assert loss["textured"] < 0.05 * thermal_contrast_loss(textured, ir, SIGMA, THRESHOLD).item()
    assert loss["brighter"] == 0.0  # standing out more than in the IR frame is allowed
    assert loss["half"] == pytest.approx(loss["faded"] / 2, rel=1e-3) and loss["faded"] > 0.3


def test_an_unknown_thermal_mode_is_refused_by_the_config() -> None:
    with pytest.raises(FusionProxyError, match="thermal_mode"):
        DistillLossConfig(thermal_mode="brightest")
