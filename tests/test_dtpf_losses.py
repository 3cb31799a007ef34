"""DTPF losses (Eq. 12-19) on toy tensors."""

from __future__ import annotations

import pytest
import torch

from fusionproxy.dtpf import losses
from fusionproxy.dtpf.teacher import DTPFTeacher, DTPFTeacherConfig
from fusionproxy.dtpf.text import EVENT_TYPES
from fusionproxy.students import create_student

TINY = dict(width=8, blocks=[1, 1, 1, 1], channel_heads=[1, 1, 1, 1], spatial_heads=[1, 1, 1, 1], refinement_blocks=1)


@pytest.fixture
def toy() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 1, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)


def test_consistency_terms(toy) -> None:
    ir, vis, fused = toy
    terms = losses.consistency_terms(vis, ir, vis)
    assert terms["consist_vis"].shape == (2,)
    torch.testing.assert_close(terms["consist_vis"], torch.zeros(2))
    grey_ir = ir.expand(-1, 3, -1, -1)  # an RGB image whose luminance is the IR image
    torch.testing.assert_close(losses.consistency_terms(grey_ir, ir, vis)["consist_ir"], torch.zeros(2))
    assert (losses.consistency_terms(fused, ir, vis)["consist_ir"] > 0).all()


def test_base_terms_cover_every_weighted_term(toy) -> None:
    ir, vis, fused = toy
    terms = losses.base_terms(fused, ir, vis)
    assert set(terms) == set(losses.DEFAULT_WEIGHTS.term_weights())
    assert all(value.shape == (2,) and (value >= 0).all() for value in terms.values())


def test_default_weights_are_the_settled_ones() -> None:
    weights = losses.DEFAULT_WEIGHTS.term_weights()
    assert weights["intensity"] == 24 and weights["gradient"] == 48 and weights["color"] == 12
    assert weights["consist_vis"] + weights["consist_ir"] == 40
    assert weights["ssim_vis"] == 2 and weights["ssim_ir"] == 2


def test_event_weights_pick_each_items_row() -> None:
    events = torch.tensor([EVENT_TYPES.index("normal"), EVENT_TYPES.index("over_exposure")])
    weights = losses.event_term_weights(events)
    assert weights["ssim_vis"].tolist() == [2.0, 0.0]
    assert weights["consist_ir"].tolist() == [20.0, 0.0]
    low_light = losses.event_term_weights(torch.tensor([EVENT_TYPES.index("low_light")]))
    assert low_light["intensity"].item() == 48 and low_light["consist_vis"].item() == 0


def test_base_loss_prefers_the_visible_image_to_noise(toy) -> None:
    ir, vis, noise = toy
    good, _ = losses.base_fusion_loss(vis, ir, vis)
    bad, logs = losses.base_fusion_loss(noise, ir, vis)
    assert good < bad
    assert set(logs) == set(losses.DEFAULT_WEIGHTS.term_weights())


def test_event_weighting_changes_the_loss(toy) -> None:
    ir, vis, fused = toy
    normal = losses.base_fusion_loss(fused, ir, vis, losses.event_term_weights(torch.tensor([0, 0])))[0]
    default = losses.base_fusion_loss(fused, ir, vis)[0]
    over = losses.base_fusion_loss(fused, ir, vis, losses.event_term_weights(torch.tensor([2, 2])))[0]
    torch.testing.assert_close(normal, default)
    assert not torch.isclose(normal, over)


def test_feature_consistency_is_scale_invariant() -> None:
    g = torch.Generator().manual_seed(1)
    features = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 2, 16, 16, generator=g)]
    scaled = [3.0 * f for f in features]
    assert losses.feature_consistency(features, scaled).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.feature_consistency(features, [-f for f in features]) > 1.0


@pytest.mark.slow
def test_distillation_loss_trains_student_and_adapters_only() -> None:
    teacher = DTPFTeacher(DTPFTeacherConfig(**{**TINY, "width": 12}, text_dim=6))
    student = create_student("dtpf_student", **TINY)
    loss_fn = losses.DTPFDistillationLoss(teacher, student.config)
    assert [a.in_channels for a in loss_fn.adapters] == [96, 48, 24, 12]
    assert [a.out_channels for a in loss_fn.adapters] == [64, 32, 16, 8]
    assert not any(name.startswith("_teacher") for name in loss_fn.state_dict())  # teacher not checkpointed
    g = torch.Generator().manual_seed(2)
    batch = {"ir": torch.rand(2, 1, 64, 64, generator=g), "vis": torch.rand(2, 3, 64, 64, generator=g),
             "event": torch.tensor([0, 1])}
    total, logs = loss_fn(student, batch)
    total.backward()
    assert {"base", "feat", "res"} <= set(logs)
    assert logs["feat"] > 0
    assert all(p.grad is not None for p in loss_fn.adapters.parameters())
    assert student.net.to_rgb.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    expected = logs["base"] + 0.1 * logs["feat"] + 1.0 * logs["res"]
    assert total.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_teacher_loss_uses_the_event_weights() -> None:
    teacher = DTPFTeacher(DTPFTeacherConfig(**TINY, text_dim=6))
    g = torch.Generator().manual_seed(3)
    batch = {"ir": torch.rand(2, 1, 64, 64, generator=g), "vis": torch.rand(2, 3, 64, 64, generator=g)}
    normal, _ = losses.teacher_loss(teacher, {**batch, "event": torch.tensor([0, 0])})
    over, _ = losses.teacher_loss(teacher, {**batch, "event": torch.tensor([2, 2])})
    assert normal.item() != pytest.approx(over.item())
    normal.backward()
    assert teacher.net.to_rgb.weight.grad.abs().sum() > 0
