"""Inputs as cameras produce them: bit depths, channel counts, EXIF orientation, truncated files, atomic writes."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from fusionproxy import io


def _gradient16(height: int = 24, width: int = 40) -> np.ndarray:
    """A 16-bit frame with a narrow radiometric range (as thermal cores deliver) plus two hot outliers."""
    frame = np.linspace(20000, 24000, height * width).reshape(height, width).astype(np.uint16)
    frame[0, 0], frame[-1, -1] = 0, 65535
    return frame


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_gray_ir_keeps_depth_and_is_stretched(tmp_path: Path, suffix: str) -> None:
    frame = _gradient16()
    path = tmp_path / f"ir{suffix}"
    assert cv2.imwrite(str(path), frame)
    raw = io.read_raw(path)
    assert raw.dtype == np.uint16 and np.array_equal(raw, frame)
    ir = io.read_ir(path)
    assert ir.dtype == np.float32 and ir.shape == frame.shape
    # The default 1-99 percentile stretch ignores the two outliers and spreads the 20000-24000 range.
    assert ir.min() == 0.0 and ir.max() == 1.0
    assert np.mean((ir > 0.05) & (ir < 0.95)) > 0.85
    # A configurable stretch: the full range maps the gradient into a narrow band.
    full = io.read_ir(path, io.PercentileStretch(0.0, 100.0))
    np.testing.assert_allclose(full, frame.astype(np.float32) / 65535.0, atol=1e-6)


def test_16bit_three_channel_tiff_and_png_keep_depth(tmp_path: Path) -> None:
    rgb16 = np.random.default_rng(0).integers(0, 65536, (12, 20, 3), dtype=np.uint16)
    for suffix in (".tif", ".png"):
        path = tmp_path / f"rgb16{suffix}"
        assert cv2.imwrite(str(path), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
        raw = io.read_raw(path)  # PIL would narrow this to 8 bits
        assert raw.dtype == np.uint16 and np.array_equal(raw, rgb16), suffix
        assert io.read_ir(path).shape == (12, 20)  # 3-channel IR -> its luminance


def test_8bit_ir_one_or_three_channels_and_gray_vis(tmp_path: Path) -> None:
    gray = np.random.default_rng(1).integers(0, 256, (10, 14), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(np.repeat(gray[..., None], 3, axis=2)).save(tmp_path / "rgb.png")
    np.testing.assert_allclose(io.read_ir(tmp_path / "gray.png"), gray / 255.0, atol=1e-6)
    np.testing.assert_allclose(io.read_ir(tmp_path / "rgb.png"), gray / 255.0, atol=1e-5)
    vis = io.read_vis(tmp_path / "gray.png")
    assert vis.shape == (10, 14, 3) and np.array_equal(vis[..., 0], vis[..., 2])
    assert io.ir_from_array(gray[..., None]).shape == (10, 14)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((30, 50, 3), np.uint8)
    pixels[:10, :20] = 255  # a bright block in the top-left corner of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    vis = io.read_vis(tmp_path / "rotated.jpg")
    assert vis.shape == (50, 30, 3)
    assert vis[:20, -10:].mean() > 0.9 and vis[-20:, :10].mean() < 0.1  # the block is now top-right


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_transforms_of_opencv_path_match_pil(orientation: int) -> None:
    """16-bit colour is read by OpenCV; its EXIF handling must agree with PIL's for every orientation."""
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    transform = io._EXIF_TRANSFORMS.get(orientation, lambda a: a)
    assert np.array_equal(transform(pixels), expected)


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_truncated_files_are_errors_naming_the_file(tmp_path: Path, tiny_pair: tuple[Path, Path], kind: str) -> None:
    samples = Path(str(resources.files("fusionproxy") / "assets" / "samples"))  # a bundled RoadScene JPEG
    source = samples / "vi" / "roadscene_FLIR_04484.jpg" if kind == "jpeg" else tiny_pair[0]
    data = source.read_bytes()
    truncated = tmp_path / source.name
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(io.ImageReadError, match=str(truncated).replace(".", r"\.")):
        io.read_raw(truncated)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(io.ImageReadError, match="junk.png: unreadable"):
        io.read_raw(tmp_path / "junk.png")
    with pytest.raises(io.ImageReadError, match="missing.png: file not found"):
        io.read_raw(tmp_path / "missing.png")


def test_write_image_is_atomic_and_keeps_16_bit(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.png"
    io.write_image(target, np.full((5, 6, 3), 0.5, np.float32))
    assert np.array_equal(np.asarray(Image.open(target)), np.full((5, 6, 3), 128, np.uint8))
    depth = np.arange(30, dtype=np.uint16).reshape(5, 6) * 2000
    io.write_image(tmp_path / "depth.png", depth)
    assert np.array_equal(io.read_raw(tmp_path / "depth.png"), depth)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["depth.png", "out.png"]


def test_percentile_stretch_flat_frame_and_resize() -> None:
    assert not io.PercentileStretch()(np.full((4, 4), 1234, np.uint16)).any()
    ir = np.random.default_rng(2).random((40, 60)).astype(np.float32)
    assert io.resize_ir(ir, 20, 30).shape == (20, 30)
    assert io.resize_ir(ir, 81, 121).shape == (81, 121)
    assert io.resize_ir(ir, 40, 60) is ir
