"""Registration of two cameras: a RoadScene pair warped by a known affine is recovered within 1 px; `calibrate`
writes a file `fuse --ir-homography` uses, refuses unrelated frames, and never overwrites a file silently."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from cli_runner import run_cli
from test_fuse_cli import RANDOM_INIT

from fusionproxy import registration
from fusionproxy.io import read_ir, read_raw, read_vis


@pytest.fixture(scope="module")
def pair(roadscene_test_pair):
    ir_path, vis_path = roadscene_test_pair
    return read_ir(ir_path), cv2.cvtColor(read_vis(vis_path), cv2.COLOR_RGB2GRAY)


def _known_affine(height: int, width: int) -> np.ndarray:
    affine = cv2.getRotationMatrix2D((width / 2, height / 2), 3.0, 1.04)
    affine[:, 2] += (9.0, -6.0)
    return affine


@pytest.mark.data
@pytest.mark.slow
def test_known_affine_is_recovered_within_one_pixel(pair):
    ir, gray = pair
    height, width = ir.shape
    affine = _known_affine(height, width)
    # RoadScene's own alignment is not perfect: the estimate on the untouched pair is the reference the known
    # warp is composed with, so only the recovery of the known affine is measured.
    reference = registration.estimate([(ir, gray)]).matrix
    found = registration.estimate([(cv2.warpAffine(ir, affine, (width, height)), gray)])
    truth = reference @ np.linalg.inv(registration.as_homography(affine))
    assert registration.max_displacement(found.matrix, truth, height, width) < 1.0
    assert 0.0 < found.residual < 0.85 and found.spread_px == 0.0


@pytest.mark.data
@pytest.mark.slow
def test_calibrate_then_fuse_with_the_homography(pair, tmp_path, monkeypatch, capsys, roadscene_test_pair):
    ir, gray = pair
    height, width = ir.shape
    warped = cv2.warpAffine(ir, _known_affine(height, width), (width, height))
    Image.fromarray(np.round(warped * 255).astype(np.uint8)).save(tmp_path / "ir.png")
    vis = roadscene_test_pair[1]
    code, err = run_cli(["calibrate", "--ir", str(tmp_path / "ir.png"), "--vis", str(vis), "-o",
                         str(tmp_path / "reg.txt")], monkeypatch, capsys)
    assert code == 0, err
    assert "residual (1 - mean correlation)" in err
    matrix = registration.load_homography(tmp_path / "reg.txt")
    inverse = np.linalg.inv(registration.as_homography(_known_affine(height, width)))
    assert registration.max_displacement(matrix, inverse, height, width) < 8.0  # + the dataset's own offset
    code, err = run_cli(["calibrate", "--ir", str(tmp_path / "ir.png"), "--vis", str(vis), "-o",
                         str(tmp_path / "reg.txt")], monkeypatch, capsys)
    assert code == 1 and "exists; pass --force" in err
    # IR of another size is fine with a registration: it decides the geometry.
    Image.fromarray(np.round(warped[::2, ::2] * 255).astype(np.uint8)).save(tmp_path / "small.png")
    scaled = registration.as_homography(matrix) @ np.diag([2.0, 2.0, 1.0])
    registration.save_homography(tmp_path / "small.txt", scaled)
    code, err = run_cli(["fuse", *RANDOM_INIT, "--ir", str(tmp_path / "small.png"), "--vis", str(vis), "-o",
                         str(tmp_path / "fused.png"), "--ir-homography", str(tmp_path / "small.txt")],
                        monkeypatch, capsys)
    assert code == 0, err
    assert read_raw(tmp_path / "fused.png").shape[:2] == read_raw(vis).shape[:2]


def test_calibrate_refuses_unrelated_frames_in_one_line(tmp_path, monkeypatch, capsys, tiny_pair):
    rng = np.random.default_rng(0)
    noise = cv2.resize(rng.random((30, 40)).astype(np.float32), read_ir(tiny_pair[0]).shape[::-1])
    Image.fromarray(np.round(noise * 255).astype(np.uint8)).save(tmp_path / "noise.png")
    code, err = run_cli(["calibrate", "--ir", str(tmp_path / "noise.png"), "--vis", str(tiny_pair[1]),
                         "-o", str(tmp_path / "reg.txt")], monkeypatch, capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "did not converge" in errors[0]
    assert not (tmp_path / "reg.txt").exists()


def test_bad_registration_files_are_one_line_errors(tmp_path):
    (tmp_path / "bad.txt").write_text("1 2\n3 4\n")
    with pytest.raises(registration.RegistrationError, match="bad.txt: expected a 3x3 homography or a 2x3"):
        registration.load_homography(tmp_path / "bad.txt")
    (tmp_path / "flat.txt").write_text("0 0 0\n0 0 0\n")
    with pytest.raises(registration.RegistrationError, match="not finite and invertible"):
        registration.load_homography(tmp_path / "flat.txt")
    affine = np.array([[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]])
    registration.save_homography(tmp_path / "ok.txt", affine)
    assert np.array_equal(registration.load_homography(tmp_path / "ok.txt")[:2], affine)
    moved = registration.warp_ir(np.eye(8, dtype=np.float32), registration.as_homography(affine), 8, 8)
    assert moved[2, 7] == 1.0 and moved[0, 0] == 0.0  # (x, y) = (4, 4) moved to (7, 2); (0, 0) sees nothing
