"""Masked views and degradations of the masked-diffusion teacher's self-supervised training."""

from __future__ import annotations

import pytest
import torch

from fusionproxy.teachers.degradations import DEGRADATIONS, random_degradation
from fusionproxy.teachers.masking import MaskingConfig, make_views, patch_index_map


def _image(height: int = 37, width: int = 53, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(3, height, width, generator=generator) * 0.8 + 0.1


def test_patch_index_map_covers_the_grid_with_near_equal_cells() -> None:
    index = patch_index_map(37, 53, 8)
    counts = torch.bincount(index.flatten(), minlength=64)
    assert counts.numel() == 64 and (counts > 0).all()
    rows = torch.bincount(index[:, 0] // 8)
    assert rows.max() - rows.min() <= 1


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_views_are_complementary_with_gray_majority(seed: int) -> None:
    clean = _image(seed=seed)
    config = MaskingConfig(grid=8, degraded_fraction=0.25, gray=0.5)
    views = make_views(clean, torch.Generator().manual_seed(seed), config)
    index = patch_index_map(37, 53, 8)
    owned_a = views.owned_by_a.flatten()
    assert int(owned_a.sum()) == 32  # half of the 64 patches each
    counts = {"a": {"clean": 0, "gray": 0, "degraded": 0}, "b": {"clean": 0, "gray": 0, "degraded": 0}}
    for cell in range(64):
        where = index == cell
        for name, view, owns, degraded in (
            ("a", views.view_a, owned_a[cell], views.degraded_a.flatten()[cell]),
            ("b", views.view_b, ~owned_a[cell], views.degraded_b.flatten()[cell]),
        ):
            patch, truth = view[:, where], clean[:, where]
            if torch.equal(patch, truth):
                kind = "clean"
            elif torch.all(patch == config.gray):
                kind = "gray"
            else:
                kind = "degraded"
            counts[name][kind] += 1
            expected = "clean" if owns else ("degraded" if degraded else "gray")
            assert kind == expected, (cell, name)
    for name in ("a", "b"):
        # every patch is clean in exactly one view; of the 32 missing ones, 8 degraded and 24 gray
        assert counts[name] == {"clean": 32, "gray": 24, "degraded": 8}
    assert views.degradation in DEGRADATIONS


def test_views_are_reproducible_from_the_generator() -> None:
    clean = _image()
    first = make_views(clean, torch.Generator().manual_seed(7))
    again = make_views(clean, torch.Generator().manual_seed(7))
    other = make_views(clean, torch.Generator().manual_seed(8))
    assert torch.equal(first.view_a, again.view_a) and torch.equal(first.view_b, again.view_b)
    assert not torch.equal(first.owned_by_a, other.owned_by_a)


def test_masking_config_rejects_fractions_outside_zero_one() -> None:
    for fraction in (-0.1, 1.1):
        with pytest.raises(ValueError, match="degraded_fraction must lie in"):
            MaskingConfig(degraded_fraction=fraction)


def test_a_degraded_fraction_of_one_leaves_no_gray_patch() -> None:
    clean = _image()
    views = make_views(clean, torch.Generator().manual_seed(3), MaskingConfig(grid=4, degraded_fraction=1.0))
    assert torch.equal(views.degraded_a, ~views.owned_by_a) and torch.equal(views.degraded_b, views.owned_by_a)


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_each_degradation_changes_the_image_within_range(name: str) -> None:
    clean = _image(32, 40)
    out = DEGRADATIONS[name](clean, torch.Generator().manual_seed(0))
    again = DEGRADATIONS[name](clean, torch.Generator().manual_seed(0))
    assert out.shape == clean.shape and torch.equal(out, again)
    assert out.min() >= 0 and out.max() <= 1
    assert (out - clean).abs().mean() > 0.01


def test_random_degradation_draws_every_kind() -> None:
    clean = _image(8, 8)
    names = {random_degradation(clean, torch.Generator().manual_seed(s))[1] for s in range(30)}
    assert names == set(DEGRADATIONS)
