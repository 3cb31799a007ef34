"""No silent garbage: NaN/inf float inputs are rejected (or repaired with --nan-to), non-finite outputs are never
written, constant frames fuse normally, and batch jobs report bad items and finish the rest."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from cli_runner import run_cli
from test_fuse_cli import RANDOM_INIT

from fusionproxy import FusionProxy
from fusionproxy.finite import NonFiniteError
from fusionproxy.io import read_raw


@pytest.fixture(scope="module")
def fusion() -> FusionProxy:
    return FusionProxy.from_student("ultralight")


def _float_ir(height: int = 24, width: int = 32) -> np.ndarray:
    return np.linspace(0.1, 0.9, height * width, dtype=np.float32).reshape(height, width)


def _write_float(path: Path, array: np.ndarray) -> None:
    if path.suffix == ".npy":
        np.save(path, array)
    elif path.suffix == ".exr":
        import os

        os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
        assert cv2.imwrite(str(path), array)
    else:
        Image.fromarray(array).save(path)


@pytest.mark.parametrize("suffix", [".npy", ".exr", ".tif"])
def test_nan_input_is_rejected_in_one_line_and_repaired_only_on_request(tmp_path, monkeypatch, capsys, suffix):
    ir = _float_ir()
    ir[3, 4], ir[5, 6] = np.nan, np.inf
    _write_float(tmp_path / f"ir{suffix}", ir)
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(tmp_path / "vis.png")
    args = ["fuse", *RANDOM_INIT, "--ir", str(tmp_path / f"ir{suffix}"), "--vis", str(tmp_path / "vis.png")]
    code, err = run_cli([*args, "-o", str(tmp_path / "out.png")], monkeypatch, capsys)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(lines) == 1
    assert f"ir{suffix}" in lines[0] and "1 NaN, 1 +inf" in lines[0] and "--nan-to" in lines[0]
    assert not (tmp_path / "out.png").exists()
    code, err = run_cli([*args, "-o", str(tmp_path / "out.png"), "--nan-to", "0"], monkeypatch, capsys)
    assert code == 0, err
    assert read_raw(tmp_path / "out.png").shape == (24, 32, 3)


def test_folder_job_reports_the_bad_item_and_fuses_the_rest(tmp_path, monkeypatch, capsys):
    (tmp_path / "ir").mkdir(), (tmp_path / "vi").mkdir()
    for stem in ("a", "b", "c"):
        ir = _float_ir()
        if stem == "b":
            ir[0, 0] = np.nan
        np.save(tmp_path / "ir" / f"{stem}.npy", ir)
        Image.fromarray(np.full((24, 32, 3), 120, np.uint8)).save(tmp_path / "vi" / f"{stem}.png")
    code, err = run_cli(["fuse", *RANDOM_INIT, "--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vi"),
                         "-o", str(tmp_path / "out")], monkeypatch, capsys)
    assert code == 1 and "b.npy: float image with 1 NaN" in err and "2 ok, 1 failed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_api_rejects_nan_arrays_and_tensors_unless_repaired(fusion):
    ir, vis = _float_ir(), np.full((24, 32, 3), 0.5, np.float32)
    ir[2, 2] = -np.inf
    with pytest.raises(NonFiniteError, match="input IR: float image with 1 -inf"):
        fusion.fuse(ir, vis)
    repaired = fusion.fuse(ir, vis, nan_to=0.0)
    assert np.isfinite(repaired).all()
    with pytest.raises(NonFiniteError, match="IR tensor"):
        fusion.fuse(torch.from_numpy(ir)[None], torch.from_numpy(vis).permute(2, 0, 1))


@pytest.mark.parametrize("value", [0, 128, 255])
def test_constant_frames_are_valid_and_fuse_normally(fusion, value):
    ir8, vis8 = np.full((40, 48), value, np.uint8), np.full((40, 48, 3), value, np.uint8)
    out = fusion.fuse(ir8, vis8)
    assert out.dtype == np.uint8 and out.shape == (40, 48, 3)
    flat16 = fusion.fuse(np.full((40, 48), 31000, np.uint16), vis8.astype(np.float32) / 255)
    flat_float = fusion.fuse(np.full((40, 48), 0.3, np.float32), vis8.astype(np.float32) / 255)
    assert np.isfinite(flat16).all() and np.isfinite(flat_float).all()


def test_non_finite_outputs_are_never_written(tmp_path, monkeypatch, capsys):
    broken = FusionProxy.from_student("ultralight")
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    ir, vis = _float_ir(), np.full((24, 32, 3), 0.5, np.float32)
    with pytest.raises(NonFiniteError, match="input: the network output has"):
        broken.fuse(ir, vis)
    results = broken.fuse([ir, ir], [vis, vis], on_bad_output="return")
    assert all(isinstance(result, NonFiniteError) for result in results)
    # A uint8 result would have hidden the NaN as 0; it must raise too.
    with pytest.raises(NonFiniteError):
        broken.fuse((ir * 255).astype(np.uint8), (vis * 255).astype(np.uint8))
    broken.save_pretrained(tmp_path / "broken")
    np.save(tmp_path / "ir.npy", ir)
    Image.fromarray((vis * 255).astype(np.uint8)).save(tmp_path / "vis.png")
    code, err = run_cli(["fuse", "--model", str(tmp_path / "broken"), "--ir", str(tmp_path / "ir.npy"),
                         "--vis", str(tmp_path / "vis.png"), "-o", str(tmp_path / "out.png")], monkeypatch, capsys)
    assert code == 1 and "the network output has" in err and "0 ok, 1 failed" in err
    assert not (tmp_path / "out.png").exists()
