"""DTPF network: parameter counts, shapes, odd sizes, the text path, OCA's relative positions."""

from __future__ import annotations

import pytest
import torch

from fusionproxy.dtpf.blocks import OCA, overlap_relative_index
from fusionproxy.dtpf.network import DTPFArchitecture, DTPFNet
from fusionproxy.dtpf.teacher import DTPFTeacher, DTPFTeacherConfig
from fusionproxy.students import create_student, list_students

TINY = dict(width=8, blocks=[1, 1, 1, 1], channel_heads=[1, 1, 1, 1], spatial_heads=[1, 1, 1, 1], refinement_blocks=1)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.slow
def test_parameter_counts_match_the_paper_scale() -> None:
    student = create_student("dtpf_student")
    teacher = DTPFTeacher(DTPFTeacherConfig())
    assert 2.5e6 < n_params(student) < 4.5e6  # "about 4 M"
    assert n_params(teacher) > 25e6
    assert n_params(student) <= 0.12 * n_params(teacher)
    assert student.config.width == 16 and teacher.config.width == 48
    assert teacher.net.modulate_bottleneck is not None and student.net.modulate_bottleneck is None


def test_student_is_registered_and_handles_odd_sizes(synthetic_pair) -> None:
    assert "dtpf_student" in list_students()
    student = create_student("dtpf_student", **TINY).eval()
    ir, vis = synthetic_pair  # 37 x 53
    assert student.stride == 64
    with torch.no_grad():
        rgb, log_variance = student.forward_with_uncertainty(ir, vis)
    assert rgb.shape == vis.shape and log_variance is None
    assert rgb.min() >= 0 and rgb.max() <= 1


def test_untrained_network_returns_the_visible_image(synthetic_pair) -> None:
    ir, vis = synthetic_pair
    with torch.no_grad():
        rgb = create_student("dtpf_student", **TINY).eval()(ir, vis)
    torch.testing.assert_close(rgb, vis)


@pytest.mark.slow
def test_decoder_features_per_level() -> None:
    arch = DTPFArchitecture(**TINY)
    net = DTPFNet(arch)
    rgb, features = net(torch.rand(2, 1, 64, 128), torch.rand(2, 3, 64, 128))
    assert rgb.shape == (2, 3, 64, 128)
    assert [tuple(f.shape[1:]) for f in features] == [(64, 8, 16), (32, 16, 32), (16, 32, 64), (8, 64, 128)]


def test_text_modulation_changes_the_teacher_output(synthetic_pair) -> None:
    teacher = DTPFTeacher(DTPFTeacherConfig(**TINY, text_dim=12)).eval()
    torch.nn.init.normal_(teacher.net.to_rgb.weight, std=0.1)  # leave the identity start
    teacher.event_embeddings.copy_(torch.randn(teacher.event_embeddings.shape, generator=torch.Generator().manual_seed(3)))
    ir, vis = synthetic_pair
    with torch.no_grad():
        low_light = teacher(ir, vis, torch.tensor([1]))
        over_exposed = teacher(ir, vis, torch.tensor([2]))
        same = teacher(ir, vis, teacher.event_embeddings[1:2])
    assert low_light.shape == vis.shape
    assert (low_light - over_exposed).abs().max() > 1e-4
    torch.testing.assert_close(low_light, same)
    with pytest.raises(ValueError, match="text"):
        teacher.net(torch.rand(1, 1, 64, 64), torch.rand(1, 3, 64, 64))


@pytest.mark.slow
def test_teacher_round_trips_through_a_directory(tmp_path) -> None:
    teacher = DTPFTeacher(DTPFTeacherConfig(**TINY, text_dim=12))
    teacher.event_embeddings.normal_()
    teacher.save_pretrained(tmp_path)
    loaded = DTPFTeacher.from_pretrained(tmp_path)
    assert loaded.config == teacher.config
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_overlap_relative_index_covers_the_bias_table() -> None:
    index = overlap_relative_index(8, 12)
    assert index.shape == (64, 144)
    assert index.min() == 0 and index.max() == 19 * 19 - 1
    # The query pixel (0, 0) sits at (2, 2) of its extended window: zero offset, the table's centre.
    assert index[0, 2 * 12 + 2] == 9 * 19 + 9


def test_oca_sees_neighbouring_windows() -> None:
    """Keys come from the overlapping window, so a change just outside a query window reaches it."""
    torch.manual_seed(0)
    oca = OCA(channels=4, heads=1, head_dim=4, window=8, overlap=0.5).eval()
    x = torch.rand(1, 4, 16, 16)
    y = x.clone()
    y[:, :, 0, 9] += 1.0  # column 9: one pixel into the right-hand window, inside the left one's overlap
    with torch.no_grad():
        changed = (oca(x) - oca(y)).abs()[0].sum(0)
    assert changed[:8, :8].max() > 0  # top-left window: its keys span columns -2..9
    assert changed[8:, :8].max() == 0  # bottom-left window: its keys span rows 6..17, not row 0
