"""`fusionproxy fuse` on a real RoadScene crop with a RANDOM-INIT (untrained) ultralight student: pairs, folders
with bad items, size checks, resume, never overwriting inputs, 16-bit IR, videos, uncertainty and onnxruntime."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cli_runner import run_cli
from fusionproxy import FusionProxy
from fusionproxy.io import read_raw

RANDOM_INIT = ["--random-init", "ultralight"]  # smoke tests: the CLI labels the output as untrained


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def real_folders(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> tuple[Path, Path]:
    """Three real pairs, the bundled 96 x 72 RoadScene crop as is, mirrored and flipped: (ir_dir, vis_dir)."""
    ir_dir, vis_dir = tmp_path / "ir", tmp_path / "vi"
    ir_dir.mkdir(), vis_dir.mkdir()
    for stem, flip in (("a", None), ("b", Image.Transpose.FLIP_LEFT_RIGHT), ("c", Image.Transpose.FLIP_TOP_BOTTOM)):
        for source, folder in zip(tiny_pair, (ir_dir, vis_dir)):
            with Image.open(source) as image:
                (image.transpose(flip) if flip else image).save(folder / f"{stem}.png")
    return ir_dir, vis_dir


def test_pair_on_real_data_is_labelled_untrained(real_folders, tmp_path, monkeypatch, capsys) -> None:
    ir_dir, vis_dir = real_folders
    ir, vis = sorted(ir_dir.iterdir())[0], sorted(vis_dir.iterdir())[0]
    code, err = run_cli(["fuse", *RANDOM_INIT, "--ir", str(ir), "--vis", str(vis), "-o", str(tmp_path / "out.png")],
                        monkeypatch, capsys)
    assert code == 0, err
    assert "UNTRAINED" in err and "1 ok, 0 failed, 0 skipped" in err
    assert read_raw(tmp_path / "out.png").shape == read_raw(vis).shape[:2] + (3,)
    # -o naming a folder puts <stem>.png inside it.
    code, _ = run_cli(["fuse", *RANDOM_INIT, "--ir", str(ir), "--vis", str(vis), "-o", str(tmp_path / "dir")],
                      monkeypatch, capsys)
    assert code == 0 and (tmp_path / "dir" / f"{vis.stem}.png").is_file()


def test_folder_with_bad_items_finishes_the_rest(real_folders, tmp_path, monkeypatch, capsys) -> None:
    ir_dir, vis_dir = real_folders
    stems = sorted(p.stem for p in ir_dir.iterdir())
    shutil.copy(ir_dir / f"{stems[0]}.png", ir_dir / "lonely.png")  # no VIS partner
    data = (vis_dir / f"{stems[1]}.png").read_bytes()
    (vis_dir / f"{stems[1]}.png").write_bytes(data[: len(data) // 2])  # truncated
    out = tmp_path / "out"
    code, err = run_cli(["fuse", *RANDOM_INIT, "--ir", str(ir_dir), "--vis", str(vis_dir), "-o", str(out),
                         "--batch-size", "2", "--threads", "1"], monkeypatch, capsys)
    assert code == 1
    assert "lonely.png: no VIS partner" in err
    assert f"{stems[1]}.png: unreadable image" in err and "truncated" in err
    assert "2 ok, 2 failed, 0 skipped" in err
    assert sorted(p.name for p in out.iterdir()) == [f"{stems[0]}.png", f"{stems[2]}.png"]


def test_size_mismatch_and_resize_ir(real_folders, tmp_path, monkeypatch, capsys) -> None:
    ir_dir, vis_dir = real_folders
    ir = sorted(ir_dir.iterdir())[0]
    with Image.open(ir) as image:
        image.resize((image.width // 2, image.height // 2)).save(tmp_path / "small_ir.png")
    vis = vis_dir / ir.name
    args = ["fuse", *RANDOM_INIT, "--ir", str(tmp_path / "small_ir.png"), "--vis", str(vis), "-o", str(tmp_path / "o")]
    code, err = run_cli(args, monkeypatch, capsys)
    assert code == 1 and "small_ir.png" in err and "--resize-ir" in err and not (tmp_path / "o").exists()
    code, err = run_cli([*args, "--resize-ir"], monkeypatch, capsys)
    assert code == 0, err
    assert read_raw(tmp_path / "o" / f"{vis.stem}.png").shape[:2] == read_raw(vis).shape[:2]


def test_resume_skips_written_outputs(real_folders, tmp_path, monkeypatch, capsys) -> None:
    ir_dir, vis_dir = real_folders
    out = tmp_path / "out"
    args = ["fuse", *RANDOM_INIT, "--ir", str(ir_dir), "--vis", str(vis_dir), "-o", str(out)]
    assert run_cli(args, monkeypatch, capsys)[0] == 0
    first = sorted(out.iterdir())[0]
    first.unlink()
    marker = sorted(out.iterdir())[0]
    marker.write_bytes(b"kept")  # resume must not touch an existing output
    code, err = run_cli([*args, "--resume"], monkeypatch, capsys)
    assert code == 0 and "1 ok, 0 failed, 2 skipped" in err
    assert first.is_file() and marker.read_bytes() == b"kept"
    assert not [p for p in out.iterdir() if "partial" in p.name]


def test_never_writes_over_inputs(real_folders, monkeypatch, capsys) -> None:
    ir_dir, vis_dir = real_folders
    before = _digest(ir_dir.parent)
    code, err = run_cli(["fuse", *RANDOM_INIT, "--ir", str(ir_dir), "--vis", str(vis_dir), "-o", str(vis_dir)],
                        monkeypatch, capsys)
    assert code == 1 and "must differ from the input folders" in err
    ir, vis = sorted(ir_dir.iterdir())[0], sorted(vis_dir.iterdir())[0]
    code, err = run_cli(["fuse", *RANDOM_INIT, "--ir", str(ir), "--vis", str(vis), "-o", str(ir)], monkeypatch, capsys)
    assert code == 1 and "refusing to write the output over an input file" in err
    code, err = run_cli(["fuse", *RANDOM_INIT, "--ir", str(ir), "--vis", str(vis), "-o", str(vis_dir)],
                        monkeypatch, capsys)
    assert code == 1 and str(vis) in err
    assert _digest(ir_dir.parent) == before


def test_without_model_and_no_bundled_default_asks_for_one(real_folders, tmp_path, monkeypatch, capsys) -> None:
    ir_dir, vis_dir = real_folders
    monkeypatch.setattr("fusionproxy.api.DEFAULT_MODEL_DIR", tmp_path / "missing" / "default_model")
    code, err = run_cli(["fuse", "--ir", str(ir_dir), "--vis", str(vis_dir), "-o", str(tmp_path / "o")],
                        monkeypatch, capsys)
    assert code == 1 and "--model" in err and "default model is not bundled" in err
    assert len(err.strip().splitlines()) == 1


def test_16bit_ir_with_stretch(real_folders, tmp_path, monkeypatch, capsys) -> None:
    ir_dir, vis_dir = real_folders
    ir8 = read_raw(sorted(ir_dir.iterdir())[0])
    assert cv2.imwrite(str(tmp_path / "ir16.tif"), ir8.astype(np.uint16) * 64 + 18000)
    vis = sorted(vis_dir.iterdir())[0]
    base = ["fuse", *RANDOM_INIT, "--ir", str(tmp_path / "ir16.tif"), "--vis", str(vis)]
    assert run_cli([*base, "-o", str(tmp_path / "a.png"), "--ir-stretch", "2,98"], monkeypatch, capsys)[0] == 0
    assert read_raw(tmp_path / "a.png").shape == read_raw(vis).shape
    code, err = run_cli([*base, "-o", str(tmp_path / "b.png"), "--ir-stretch", "98,2"], monkeypatch, capsys)
    assert code == 1 and "--ir-stretch" in err


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    height, width = frames[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR if frame.ndim == 3 else cv2.COLOR_GRAY2BGR))
    writer.release()


def test_video_pair(real_folders, tmp_path, monkeypatch, capsys) -> None:
    ir_dir, vis_dir = real_folders
    ir = cv2.resize(read_raw(sorted(ir_dir.iterdir())[0]), (96, 64))
    vis = cv2.resize(read_raw(sorted(vis_dir.iterdir())[0]), (96, 64))
    _write_video(tmp_path / "ir.avi", [np.roll(ir, 4 * i, axis=1) for i in range(7)], fps=9.0)
    _write_video(tmp_path / "vis.mp4", [np.roll(vis, 4 * i, axis=1) for i in range(6)], fps=9.0)
    args = ["fuse", *RANDOM_INIT, "--ir", str(tmp_path / "ir.avi"), "--vis", str(tmp_path / "vis.mp4"),
            "-o", str(tmp_path / "fused.mp4"), "--batch-size", "4"]
    code, err = run_cli(args, monkeypatch, capsys)
    assert code == 1  # the IR video has one frame without a partner
    # Paired by timestamp (both 9 fps): the 7th IR frame has no VIS frame within half a frame period.
    assert "ir.avi: 1 frames have no VIS frame within 55.6 ms" in err and "6 ok, 1 failed" in err
    capture = cv2.VideoCapture(str(tmp_path / "fused.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 6 and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(9.0)
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (96, 64)
    code, err = run_cli([*args, "--resume"], monkeypatch, capsys)
    assert code == 0 and "0 ok, 0 failed, 1 skipped" in err


@pytest.mark.slow
def test_uncertainty_maps_and_onnxruntime_backend(real_folders, tmp_path, monkeypatch, capsys) -> None:
    ir_dir, vis_dir = real_folders
    FusionProxy.from_student("ultralight", uncertainty_head=True).save_pretrained(tmp_path / "model")
    ir, vis = sorted(ir_dir.iterdir())[0], sorted(vis_dir.iterdir())[0]
    base = ["fuse", "--model", str(tmp_path / "model"), "--ir", str(ir), "--vis", str(vis)]
    code, err = run_cli([*base, "-o", str(tmp_path / "e.png"), "--uncertainty"], monkeypatch, capsys)
    assert code == 0, err
    std = read_raw(tmp_path / "e_uncertainty.png")
    assert std.dtype == np.uint16 and std.shape == read_raw(vis).shape[:2]
    code, err = run_cli([*base, "-o", str(tmp_path / "o.png"), "--backend", "onnxruntime"], monkeypatch, capsys)
    assert code == 0, err
    eager, ort = read_raw(tmp_path / "e.png").astype(int), read_raw(tmp_path / "o.png").astype(int)
    assert np.abs(eager - ort).max() <= 1
    code, err = run_cli(["fuse", *RANDOM_INIT, "--ir", str(ir), "--vis", str(vis), "-o", str(tmp_path / "u.png"),
                         "--uncertainty"], monkeypatch, capsys)
    assert code == 1 and "no uncertainty head" in err
