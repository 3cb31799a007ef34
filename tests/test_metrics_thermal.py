"""Thermal-target contrast (TTC): known answers on synthetic frames, and its column in `evaluate` tables."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from fusionproxy.errors import FusionProxyError
from fusionproxy.evaluate import evaluate, parse_method
from fusionproxy.evaluate.methods import SourceMethod
from fusionproxy.evaluate.report import means_table, summarize
from fusionproxy.evaluate.scoring import Scorer
from fusionproxy.evaluate.storage import read_number
from fusionproxy.io import write_image
from fusionproxy.metrics import (
    METRIC_NAMES,
    compute_metrics,
    stretch_to_uint8,
    thermal_target_contrast,
    thermal_targets,
)

HEIGHT, WIDTH = 96, 128
TOP, LEFT = 40, 58


def _background() -> np.ndarray:
    """A smooth scene (nothing in it stands 0.12 above its sigma-20 surroundings)."""
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    return 0.35 + 0.15 * np.sin(xx / 23.0) * np.cos(yy / 31.0)


def _ir(size: int = 12) -> np.ndarray:
    """The background with a hot size x size square pasted in (0 = none)."""
    ir = _background()
    ir[TOP : TOP + size, LEFT : LEFT + size] += 0.4
    return ir


def _vis() -> np.ndarray:
    """A tinted colour version of the background: no square."""
    return _background()[..., None] * np.array([0.9, 1.05, 1.1])


def _u8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def test_targets_are_the_hot_square() -> None:
    expected = np.zeros((HEIGHT, WIDTH), bool)
    expected[TOP : TOP + 12, LEFT : LEFT + 12] = True
    np.testing.assert_array_equal(thermal_targets(_u8(_ir())), expected)


def test_ir_scores_one_visible_zero_and_their_average_half() -> None:
    ir, vis = _u8(_ir()), _u8(_vis())
    assert thermal_target_contrast(ir, ir) == pytest.approx(1.0)
    assert thermal_target_contrast(vis, ir) == pytest.approx(0.0, abs=0.03)
    average = _u8((_ir()[..., None] + _vis()) / 2)
    assert thermal_target_contrast(average, ir) == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("size", [0, 5])  # no square; a 25-pixel square, under the 30-pixel minimum
def test_frames_without_targets_give_nan(size: int) -> None:
    ir = _u8(_ir(size))
    assert not thermal_targets(ir).any()
    assert math.isnan(thermal_target_contrast(ir, ir))


def test_a_flat_frame_has_none_and_36_pixels_are_enough() -> None:
    flat = np.full((HEIGHT, WIDTH), 128, np.uint8)
    assert math.isnan(thermal_target_contrast(flat, flat))
    six = _u8(_ir(6))
    assert thermal_targets(six).sum() == 36 and thermal_target_contrast(six, six) == pytest.approx(1.0)


def test_three_channel_ir_is_its_bt601_luma() -> None:
    colour = _u8(_ir()[..., None] * np.array([1.0, 0.8, 0.6]))
    luma = colour @ np.array([0.299, 0.587, 0.114]) / 255.0
    fused = _u8(_vis())
    np.testing.assert_array_equal(thermal_targets(colour), thermal_targets(luma))
    assert thermal_target_contrast(fused, colour) == pytest.approx(thermal_target_contrast(fused, luma), abs=1e-12)
    with pytest.raises(FusionProxyError, match="differ in size"):
        thermal_target_contrast(fused[:50], colour)


def test_every_convention_ends_with_ttc_on_the_scored_image() -> None:
    ir, vis = _u8(_ir()), _u8(_vis())
    dim = _u8(_ir() * 0.5)  # half the contrast, stretched back by --stretch
    for convention in ("vifb", "cddfuse"):
        assert METRIC_NAMES[convention][-1] == "TTC"
        assert compute_metrics(ir, ir, vis, convention)["TTC"] == pytest.approx(1.0)
    stretched = compute_metrics(dim, ir, vis, "cddfuse", stretch=True)["TTC"]
    assert stretched == pytest.approx(thermal_target_contrast(stretch_to_uint8(dim), ir))
    assert Scorer(["cddfuse"], stretch=True)(dim, ir, vis)[0]["cddfuse:TTC"] == stretched
    assert stretched > 1.5 * thermal_target_contrast(dim, ir)


def test_source_specs() -> None:
    ir_rows, vis_rows = parse_method("source:ir"), parse_method("v=source:vis")
    assert isinstance(ir_rows, SourceMethod) and (ir_rows.name, vis_rows.name) == ("ir", "v")
    ir, vis = _ir().astype(np.float32), _vis().astype(np.float32)
    np.testing.assert_array_equal(ir_rows.fuse(ir, vis, 0), np.repeat(ir[..., None], 3, axis=2))
    assert vis_rows.fuse(ir, vis, 0) is vis
    with pytest.raises(FusionProxyError, match="unknown source"):
        parse_method("source:depth")


@pytest.mark.slow
def test_evaluate_tables_have_ttc_over_the_frames_with_targets(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    for stem, ir in (("hot", _ir()), ("cold", _background())):
        write_image(root / "ir" / f"{stem}.png", ir)
        write_image(root / "vi" / f"{stem}.png", _vis())
    methods = [parse_method(s) for s in ("source:ir", "source:vis", "baseline:average")]
    out = tmp_path / "out"
    result = evaluate([root], methods, out, progress=False, grid=[])
    assert result.failures == []
    ttc = {(r["method"], r["stem"]): read_number(r[f"{c}:TTC"]) for r in result.rows for c in ("vifb", "cddfuse")}
    assert ttc[("ir", "hot")] == pytest.approx(1.0)
    assert ttc[("vis", "hot")] == pytest.approx(0.0, abs=0.03)
    assert ttc[("average", "hot")] == pytest.approx(0.5, abs=0.03)
    assert all(math.isnan(ttc[(m, "cold")]) for m in ("ir", "vis", "average"))
    summary = (out / "summary.md").read_text()
    assert summary.count("| TTC ↑ |") == 2  # the last column of both conventions' tables
    assert summary.count("TTC over 1/2 frames (frames without thermal targets left out).") == 2
    with (out / "results.csv").open(newline="") as handle:
        assert "vifb:TTC" in next(csv.reader(handle))


def test_frame_counts_are_given_per_method_where_they_differ() -> None:
    rows = [
        {"method": m, "dataset": "d", "stem": s, "perturbation": "aligned", "c:TTC": v, "seconds": "0.1"}
        for m, s, v in [("p", "1", "1.0"), ("p", "2", "nan"), ("q", "1", "0.5"), ("q", "2", "0.7"), ("r", "1", "")]
    ]
    groups = summarize(rows, ["c:TTC"])
    assert groups[("p", "d", "aligned")].means == {"c:TTC": 1.0}
    table = means_table(groups, ["p", "q", "r"], "d", "aligned", "c", ["TTC"], {"TTC": True})
    assert table.splitlines()[-1] == (
        "TTC over 1/2 frames (p), 2/2 frames (q), 0/1 frames (r) (frames without thermal targets left out)."
    )
