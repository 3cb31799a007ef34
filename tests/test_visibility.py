"""The visibility degradations of the visible frame (night, fog, fog then night): their statistics and seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionproxy.errors import FusionProxyError
from fusionproxy.visibility import (
    AIRLIGHT,
    LEVELS,
    DegradationRange,
    degrade_image,
    fog_beta,
    get_level,
    parse_levels,
    transmission_map,
)


def test_the_named_levels() -> None:
    assert list(LEVELS) == ["none", "night-0.25", "night-0.1", "night-0.05", "fog-0.35", "fog-0.2", "fog-0.1",
                            "fog+night"]
    assert parse_levels("all") == list(LEVELS.values())
    assert [level.name for level in parse_levels("none, fog-0.1")] == ["none", "fog-0.1"]
    with pytest.raises(FusionProxyError, match="unknown degradation level 'rain'"):
        get_level("rain")


@pytest.mark.parametrize("height", [40, 256, 301, 576])
@pytest.mark.parametrize("target", [0.35, 0.2, 0.1, 0.6])
def test_fog_mean_transmission_meets_its_target(height: int, target: float) -> None:
    tr = transmission_map(height, target)
    assert abs(float(tr.mean()) - target) < 0.01
    assert float(tr[-1, 0]) == pytest.approx(1.0)  # the bottom row is at zero depth
    assert float(tr[0, 0]) == pytest.approx(np.exp(-fog_beta(height, target)))  # the top row at depth 1


def test_fog_on_a_black_frame_is_the_airlight_times_the_scattering() -> None:
    black = torch.zeros(3, 200, 300)
    out = LEVELS["fog-0.2"].apply(black)
    assert abs(float(out.mean()) - AIRLIGHT * (1 - 0.2)) < 0.01
    assert float(out[:, 0].mean()) > float(out[:, -1].mean())  # thicker towards the top (far away)


def test_night_darkens_in_linear_light_and_adds_read_noise() -> None:
    grey = torch.full((3, 256, 256), 0.5)
    out = LEVELS["night-0.25"].apply(grey, torch.Generator().manual_seed(0))
    assert abs(float(out.mean()) - 0.25 * 0.5 ** 2.2) < 0.003
    assert abs(float(out.std()) - 0.02) < 0.003
    clean = LEVELS["night-0.25"].apply(grey, torch.Generator().manual_seed(1))
    assert not torch.equal(out, clean)  # the noise follows the seed
    assert torch.equal(out, LEVELS["night-0.25"].apply(grey, torch.Generator().manual_seed(0)))


def test_fog_then_night_and_quantisation() -> None:
    frame = torch.rand(3, 64, 96, generator=torch.Generator().manual_seed(3))
    out = LEVELS["fog+night"].apply(frame, torch.Generator().manual_seed(0))
    assert torch.allclose(out * 255, torch.round(out * 255))  # 8-bit levels, as a camera delivers
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    expected = 0.5 * (frame * transmission_map(64, 0.6) + AIRLIGHT * (1 - transmission_map(64, 0.6))) ** 2.2
    assert abs(float(out.mean()) - float(expected.mean())) < 0.005
    assert torch.equal(LEVELS["none"].apply(frame), torch.round(frame * 255) / 255)


def test_degrade_image_is_seeded_and_keeps_the_shape() -> None:
    vis = (np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8)
    a, b = degrade_image(vis, "night-0.1", seed=5), degrade_image(vis, "night-0.1", seed=5)
    assert a.dtype == np.uint8 and a.shape == vis.shape and np.array_equal(a, b)
    assert not np.array_equal(a, degrade_image(vis, "night-0.1", seed=6))
    assert degrade_image(vis[..., 0], "fog-0.35", seed=0).shape == (30, 40)
    assert np.array_equal(degrade_image(vis, "none", seed=0), vis)


def test_training_draws() -> None:
    off = DegradationRange()
    assert {off.sample(torch.Generator().manual_seed(i)).kind for i in range(20)} == {"none"}
    on = DegradationRange(probability=0.75)
    draws = [on.sample(torch.Generator().manual_seed(i)) for i in range(200)]
    kinds = {kind: sum(d.kind == kind for d in draws) for kind in ("none", "night", "fog", "fog+night")}
    assert all(count > 20 for count in kinds.values()), kinds
    assert all(on.gain_min <= d.gain <= 1.0 and 0 < d.transmission <= 1.0 for d in draws)
    with pytest.raises(FusionProxyError, match="kinds"):
        DegradationRange(kinds=("rain",))
