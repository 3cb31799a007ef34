"""Unit tests of the evaluation pieces: perturbation, baselines, method specs, tables and figures."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from fusionproxy.baselines import get_baseline, list_baselines
from fusionproxy.errors import FusionProxyError
from fusionproxy.evaluate import DEFAULT_LEVELS, parse_levels, parse_method
from fusionproxy.evaluate.figures import GAP, LABEL_HEIGHT, comparison_grid, metrics_chart
from fusionproxy.evaluate.methods import BaselineMethod, FolderMethod, ModelMethod, TeacherMethod
from fusionproxy.evaluate.perturb import ALIGNED, perturb_ir, ssim_against, stable_seed
from fusionproxy.evaluate.report import Group, means_table, ranks, summarize
from fusionproxy.io import read_ir, write_image


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


@pytest.fixture
def random_pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((37, 53), dtype=np.float32), rng.random((37, 53, 3), dtype=np.float32)


# --- perturbation (paper Eq. 14, Table 6) -------------------------------------------------------------------


def test_aligned_level_is_identity(tiny_pair) -> None:
    ir = read_ir(tiny_pair[0])
    assert perturb_ir(ir, ALIGNED, seed=123) is ir
    assert DEFAULT_LEVELS[0] == ALIGNED and DEFAULT_LEVELS[0].label == "aligned"


def test_larger_ranges_move_the_ir_more(tiny_pair) -> None:
    ir = read_ir(tiny_pair[0])
    change = [
        np.mean([np.abs(perturb_ir(ir, level, seed) - ir).mean() for seed in range(6)]) for level in DEFAULT_LEVELS
    ]
    assert change[0] == 0.0
    assert all(a < b for a, b in zip(change, change[1:])), change


def test_perturbation_is_seeded(tiny_pair) -> None:
    ir = read_ir(tiny_pair[0])
    level = DEFAULT_LEVELS[2]
    first, again, other = perturb_ir(ir, level, 7), perturb_ir(ir, level, 7), perturb_ir(ir, level, 8)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == ir.shape and first.dtype == np.float32
    assert stable_seed(0, "tno", "01", "a") == stable_seed(0, "tno", "01", "a") != stable_seed(0, "tno", "02", "a")


def test_parse_levels() -> None:
    levels = parse_levels("10/2, 20/5,10/2")
    assert [level.label for level in levels] == ["aligned", "+-10px/+-2deg", "+-20px/+-5deg"]
    for bad in ("10", "a/b", "-1/2"):
        with pytest.raises(FusionProxyError, match="perturbation level"):
            parse_levels(bad)


def test_ssim_against_itself_and_noise() -> None:
    rng = np.random.default_rng(1)
    image = np.repeat(np.linspace(30, 220, 50)[None, :, None], 40, axis=0).repeat(3, axis=2).astype(np.uint8)

    def noisy(amplitude: int) -> np.ndarray:
        noise = rng.integers(-amplitude, amplitude + 1, image.shape)
        return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)

    assert ssim_against(image, image) == pytest.approx(1.0, abs=1e-5)
    assert 1.0 > ssim_against(noisy(5), image) > ssim_against(noisy(40), image) > 0.0


# --- baselines -----------------------------------------------------------------------------------------------


def test_baselines_shapes_ranges_determinism(random_pair) -> None:
    ir, vis = random_pair
    assert list_baselines() == ["average", "laplacian", "max"]
    for name in list_baselines():
        fused = get_baseline(name)(ir, vis)
        assert fused.shape == (37, 53, 3) and fused.dtype == np.float32, name
        assert fused.min() >= 0.0 and fused.max() <= 1.0, name
        assert np.array_equal(fused, get_baseline(name)(ir, vis)), name


def test_max_is_at_least_average_on_luminance(random_pair) -> None:
    ir, vis = random_pair
    brighter = _luminance(get_baseline("max")(ir, vis)) - _luminance(get_baseline("average")(ir, vis))
    assert brighter.min() >= -1e-5
    assert brighter.mean() > 0.05


def test_laplacian_reproduces_a_source_when_both_agree(tiny_pair, random_pair) -> None:
    vis = random_pair[1]
    luminance = cv2.cvtColor(vis, cv2.COLOR_RGB2YCrCb)[..., 0]
    np.testing.assert_allclose(get_baseline("laplacian")(luminance, vis), vis, atol=1e-3)
    ir = read_ir(tiny_pair[0])  # a real frame: several pyramid levels
    grey = np.repeat(ir[..., None], 3, axis=2)
    np.testing.assert_allclose(get_baseline("laplacian")(ir, grey), grey, atol=1e-3)


def test_laplacian_keeps_the_stronger_detail() -> None:
    ir = np.full((64, 64), 0.5, np.float32)
    ir[:, 32:] = 0.9  # an edge only the IR sees
    vis = np.full((64, 64, 3), 0.5, np.float32)
    fused = get_baseline("laplacian")(ir, vis)
    average = get_baseline("average")(ir, vis)
    def step(image: np.ndarray) -> float:  # the jump across the edge
        return float((_luminance(image)[:, 32] - _luminance(image)[:, 31]).mean())

    assert step(average) == pytest.approx(0.2, abs=1e-3)
    assert step(fused) > 0.35  # the IR's full band-pass detail survives; only the base is averaged


def test_baseline_rejects_mismatched_sizes(random_pair) -> None:
    ir, vis = random_pair
    with pytest.raises(ValueError, match="same size"):
        get_baseline("average")(ir[:-1], vis)


# --- method specs ----------------------------------------------------------------------------------------------


class _FakeTeacher:
    def sample(self, ir, vis, num_samples, seed, progress=False):
        generator = torch.Generator().manual_seed(seed)
        return torch.rand(num_samples, 3, *ir.shape[-2:], generator=generator)


def test_parse_method_kinds(tmp_path, random_pair) -> None:
    assert isinstance(parse_method("baseline:max"), BaselineMethod)
    assert parse_method("mine=baseline:laplacian").name == "mine"
    (tmp_path / "fused").mkdir()
    write_image(tmp_path / "fused" / "a.png", random_pair[1])
    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "config.json").write_text("{}")
    write_image(tmp_path / "student" / "samples" / "step100.png", random_pair[1])  # still a model directory
    folder = parse_method(str(tmp_path / "fused"))
    assert isinstance(folder, FolderMethod) and not folder.runs and folder.name == "fused"
    assert folder.find("any", "a") == tmp_path / "fused" / "a.png" and folder.find("any", "b") is None
    assert isinstance(parse_method(f"s={tmp_path / 'student'}"), ModelMethod)
    teacher = parse_method(f"teacher:{tmp_path / 'student'}:4")
    assert isinstance(teacher, TeacherMethod) and teacher.num_samples == 4 and teacher.name == "student-x4"
    with pytest.raises(FusionProxyError, match="unknown baseline 'median'"):
        parse_method("baseline:median")
    with pytest.raises(FusionProxyError, match="nowhere: not a directory"):
        parse_method(f"folder:{tmp_path / 'nowhere'}")


def test_teacher_method_is_a_seeded_ensemble_mean(random_pair) -> None:
    ir, vis = random_pair
    method = TeacherMethod("t", "teacher:x:8", num_samples=8, _teacher=_FakeTeacher())
    fused = method.fuse(ir, vis, seed=3)
    assert fused.shape == vis.shape
    np.testing.assert_array_equal(fused, method.fuse(ir, vis, seed=3))
    single = TeacherMethod("t1", "teacher:x", num_samples=1, _teacher=_FakeTeacher()).fuse(ir, vis, seed=3)
    assert fused.std() < single.std()  # averaging 8 draws shrinks the spread (Eq. 3 ensemble mean)


# --- tables and figures ----------------------------------------------------------------------------------------


def test_ranks_respect_direction_ties_and_nan() -> None:
    values = {"a": 1.0, "b": 3.0, "c": 3.0, "d": math.nan}
    assert ranks(values, higher_is_better=True) == {"b": 1, "c": 1, "a": 3}
    assert ranks(values, higher_is_better=False) == {"a": 1, "b": 2, "c": 2}


def test_summarize_and_means_table() -> None:
    rows = [
        {"method": m, "dataset": "d", "stem": s, "perturbation": "aligned", "c:X": x, "c:Y": y, "seconds": t}
        for m, s, x, y, t in [("p", "1", "1", "5", "0.1"), ("p", "2", "3", "7", "0.3"), ("p", "3", "2", "6", "0.2"),
                              ("q", "1", "4", "9", ""), ("q", "2", "4", "9", "")]
    ]
    groups = summarize(rows, ["c:X", "c:Y"])
    assert groups[("p", "d", "aligned")].means == {"c:X": 2.0, "c:Y": 6.0}
    assert groups[("p", "d", "aligned")].median_seconds == pytest.approx(0.2)
    assert groups[("q", "d", "aligned")].count == 2 and math.isnan(groups[("q", "d", "aligned")].median_seconds)
    table = means_table(groups, ["p", "q"], "d", "aligned", "c", ["X", "Y"], {"X": True, "Y": False})
    lines = table.splitlines()
    assert lines[0] == "| method | images | X ↑ | Y ↓ | median time / image |"
    assert lines[2] == "| p | 3 | 2.000 (2) | 6.000 (1) | 200.0 ms |"
    assert lines[3] == "| q | 2 | 4.000 (1) | 9.000 (2) | n/a (precomputed) |"


def test_comparison_grid_has_one_tile_per_panel(tmp_path) -> None:
    tiles = [(name, np.full((20, 30, 3), 40 * i, np.uint8)) for i, name in enumerate(["IR", "VIS", "a", "b"])]
    tiles[0] = ("IR", np.zeros((20, 30), np.uint8))  # grey panels are accepted
    path = tmp_path / "grid.png"
    assert comparison_grid(tiles, path) == 4
    image = cv2.imread(str(path))
    assert image.shape == (LABEL_HEIGHT + 20, 4 * 30 + 3 * GAP, 3)
    assert image[LABEL_HEIGHT + 5, 3 * (30 + GAP) + 5, 0] == 120  # the 4th tile sits where expected
    with pytest.raises(ValueError, match="panel 'c'"):
        comparison_grid([*tiles, ("c", np.zeros((10, 30, 3), np.uint8))], path)


def test_metrics_chart_writes_a_png(tmp_path) -> None:
    groups = {(m, d, "aligned"): Group(3, {"c:X": v, "c:Y": v / 2}) for m, v in (("p", 1.0), ("q", 2.0))
              for d in ("d1", "d2")}
    path = tmp_path / "chart.png"
    metrics_chart(groups, ["p", "q"], ["d1", "d2"], "c", ["X", "Y"], {"X": True, "Y": False}, path)
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] > image.shape[0] > 100
