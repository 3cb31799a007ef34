"""Reading and writing images as cameras produce them, and pairing IR/VIS files by stem.

Conventions used everywhere in the package: IR is float32 H x W in [0, 1]; VIS and fused images are float32
H x W x 3 (RGB) in [0, 1]; tensors are B x 1 x H x W (IR) and B x 3 x H x W (VIS / fused).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import FusionProxyError
from .finite import check_input

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Float-only containers: readable as inputs (NumPy arrays, OpenEXR), never written as outputs.
FLOAT_SUFFIXES = (".npy", ".exr")
INPUT_SUFFIXES = IMAGE_SUFFIXES + FLOAT_SUFFIXES
IR_DIR_NAMES = ("ir", "IR", "infrared", "thermal")
VIS_DIR_NAMES = ("vi", "vis", "VIS", "visible", "rgb")


class ImageReadError(FusionProxyError, ValueError):
    """An input image that cannot be used; the message names the file and the problem in one line."""


@dataclass(frozen=True)
class PercentileStretch:
    """Robust linear stretch for high-bit-depth (e.g. 16-bit radiometric) IR frames.

    Values at the `low` percentile map to 0 and at the `high` percentile to 1, clipped; 8-bit input is never
    stretched (it is divided by 255), so ordinary images keep their look.
    """

    low: float = 1.0
    high: float = 99.0

    def __call__(self, values: np.ndarray) -> np.ndarray:
        values = values.astype(np.float32)
        lo, hi = np.percentile(values, [self.low, self.high])
        if hi <= lo:  # a flat frame: nothing to stretch
            return np.zeros_like(values)
        return np.clip((values - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0)


# Maps a uint16 frame to float32 [0, 1]: PercentileStretch, or the video gains of `fusionproxy.agc`.
Stretch = Callable[[np.ndarray], np.ndarray]


# EXIF orientation tag -> the numpy transform that undoes it (the same mapping as PIL.ImageOps.exif_transpose).
_EXIF_TRANSFORMS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _read_with_opencv(path: Path, orientation: int, reason: str) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageReadError(f"{path}: unreadable image ({reason})")
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA if array.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(_EXIF_TRANSFORMS.get(orientation, lambda a: a)(array))


_PIL_MODES = ("L", "RGB", "RGBA", "LA", "P", "I", "I;16", "I;16B", "I;16L", "F")


def array_from_pil(image: Image.Image) -> np.ndarray:
    """A PIL image as numpy with its EXIF orientation applied, keeping its bit depth (uint8, uint16 or float32)."""
    if image.mode not in _PIL_MODES:
        raise ValueError(f"unsupported image mode {image.mode}")
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.uint16)
    if image.mode == "I":  # 32-bit integer containers of 16-bit data
        return np.asarray(image).astype(np.uint16)
    if image.mode in ("P", "LA"):
        image = image.convert("RGBA" if image.mode == "P" else "L")
    return np.asarray(image)


def _read_float_container(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ImageReadError(f"{path}: unreadable NumPy file ({' '.join(str(error).split())})") from None
        # Other integer types have no agreed scale: read as [0, 1] floats they would clip to garbage.
        if array.ndim not in (2, 3) or not (array.dtype in (np.uint8, np.uint16) or array.dtype.kind == "f"):
            raise ImageReadError(f"{path}: expected an H x W or H x W x C array of uint8, uint16 or float, got "
                                 f"{array.dtype} {array.shape}")
        return array
    # OpenCV leaves its EXR decoder off unless asked (the library's CVE history); a user who passes an .exr
    # file asks for it. The setting is read at the first EXR decode, so setting it here is enough.
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    return _read_with_opencv(path, 1, "OpenEXR decoding failed")


def read_raw(path: str | Path, nan_to: float | None = None) -> np.ndarray:
    """Read an image file with its EXIF orientation applied, keeping its bit depth (uint8, uint16 or float).

    PIL decodes the file (so truncated or corrupt data is an error, never a half-grey image) and applies the
    EXIF orientation. PIL narrows 16-bit colour to 8 bits and cannot open some TIFF layouts; OpenCV reads
    those instead. `.npy` (NumPy) and `.exr` files hold float frames. Float data with NaN or inf is an
    error naming the file (`finite.NonFiniteError`) unless `nan_to` replaces those values.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    return check_input(_decode(path), str(path), nan_to)


def _decode(path: Path) -> np.ndarray:
    if path.suffix.lower() in FLOAT_SUFFIXES:
        return _read_float_container(path)
    try:
        image = Image.open(path)
    except UnidentifiedImageError as error:
        return _read_with_opencv(path, 1, str(error))
    except (OSError, Image.DecompressionBombError) as error:
        raise ImageReadError(f"{path}: unreadable image ({error})") from None
    with image:
        wide_colour = image.mode in ("RGB", "RGBA") and any(";16" in str(tile.args) for tile in image.tile)
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt pixel data
            raise ImageReadError(f"{path}: unreadable image ({error})") from None
        if wide_colour or image.mode not in _PIL_MODES:
            orientation = int(image.getexif().get(ExifTags.Base.Orientation, 1))
            return _read_with_opencv(path, orientation, f"unsupported mode {image.mode}")
        return array_from_pil(image)


def to_unit_float(array: np.ndarray, stretch: Stretch | None = None) -> np.ndarray:
    """uint8 -> /255; uint16 -> `stretch` (default PercentileStretch()); float input is clipped to [0, 1]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return (stretch or PercentileStretch())(array)
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def _drop_alpha(array: np.ndarray) -> np.ndarray:
    return array[..., :3] if array.ndim == 3 and array.shape[2] == 4 else array


LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601: how 3-channel IR becomes one channel


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return (rgb @ np.array(LUMA_WEIGHTS, dtype=np.float32)).astype(np.float32)


def ir_from_array(array: np.ndarray, stretch: Stretch | None = None) -> np.ndarray:
    """A raw IR array (H x W, or H x W x 1/2/3/4; uint8, uint16 or float) as float32 H x W in [0, 1].

    uint16 goes through `stretch` (default PercentileStretch()); 3-channel IR becomes its luminance.
    """
    array = _drop_alpha(np.asarray(array))
    if array.ndim == 3 and array.shape[2] in (1, 2):  # single channel, or gray + alpha
        array = array[..., 0]
    unit = to_unit_float(array, stretch)
    return _luminance(unit) if unit.ndim == 3 else unit


def vis_from_array(array: np.ndarray) -> np.ndarray:
    """A raw visible array (H x W gray, or H x W x 1/2/3/4) as float32 H x W x 3 RGB in [0, 1]."""
    array = _drop_alpha(np.asarray(array))
    if array.ndim == 3 and array.shape[2] in (1, 2):
        array = array[..., 0]
    unit = to_unit_float(array)
    return np.repeat(unit[..., None], 3, axis=2) if unit.ndim == 2 else unit


def read_ir(path: str | Path, stretch: Stretch | None = None) -> np.ndarray:
    """An IR frame as float32 H x W in [0, 1]; 3-channel IR becomes its luminance."""
    return ir_from_array(read_raw(path), stretch)


def read_vis(path: str | Path) -> np.ndarray:
    """A visible frame as float32 H x W x 3 RGB in [0, 1]; gray input is repeated to 3 channels."""
    return vis_from_array(read_raw(path))


def resize_ir(ir: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resample an IR frame onto a height x width grid (area averaging when shrinking, bilinear otherwise)."""
    if ir.shape[:2] == (height, width):
        return ir
    shrinking = height * width < ir.shape[0] * ir.shape[1]
    return cv2.resize(ir, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float in [0, 1] -> uint8, rounded to nearest: how every fused frame is written."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write H x W (gray) or H x W x 3 (RGB) float in [0, 1] as 8-bit, or uint8 / uint16 as they are.

    The file appears atomically (written beside it, then renamed), so an interrupted write never leaves a
    truncated image that a resumed job would take for finished.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.dtype not in (np.uint8, np.uint16):
        image = to_uint8(image)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        Image.fromarray(np.ascontiguousarray(image)).save(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def ir_to_tensor(ir: np.ndarray) -> torch.Tensor:
    """H x W -> 1 x 1 x H x W float32."""
    return torch.from_numpy(np.ascontiguousarray(ir, dtype=np.float32))[None, None]


def vis_to_tensor(vis: np.ndarray) -> torch.Tensor:
    """H x W x 3 -> 1 x 3 x H x W float32."""
    return torch.from_numpy(np.ascontiguousarray(vis, dtype=np.float32)).permute(2, 0, 1)[None]


def tensor_to_image(rgb: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W (or 3 x H x W) -> H x W x 3 float32 numpy."""
    if rgb.dim() == 4:
        rgb = rgb[0]
    return rgb.detach().float().cpu().permute(1, 2, 0).numpy()


@dataclass
class PairListing:
    """IR/VIS files matched by stem, plus the files that found no partner."""

    pairs: list[tuple[str, Path, Path]] = field(default_factory=list)
    ir_only: list[Path] = field(default_factory=list)
    vis_only: list[Path] = field(default_factory=list)


def _images_by_stem(folder: Path) -> dict[str, Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
    return {p.stem: p for p in files}


def find_pairs(ir_dir: str | Path, vis_dir: str | Path) -> PairListing:
    """Match `ir_dir/<stem>.*` with `vis_dir/<stem>.*`; unmatched files are listed, not dropped silently."""
    ir_dir, vis_dir = Path(ir_dir), Path(vis_dir)
    for folder in (ir_dir, vis_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: not a directory")
    ir_files, vis_files = _images_by_stem(ir_dir), _images_by_stem(vis_dir)
    listing = PairListing()
    for stem in sorted(ir_files.keys() & vis_files.keys()):
        listing.pairs.append((stem, ir_files[stem], vis_files[stem]))
    listing.ir_only = [ir_files[s] for s in sorted(ir_files.keys() - vis_files.keys())]
    listing.vis_only = [vis_files[s] for s in sorted(vis_files.keys() - ir_files.keys())]
    return listing


def _first_existing(root: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(f"{root}: no {'/'.join(names)} sub-folder of paired images")


def visible_folder(root: str | Path) -> Path:
    """The visible sub-folder of a paired dataset folder (vi/, vis/, visible/, ...)."""
    return _first_existing(Path(root), VIS_DIR_NAMES)


def find_dataset_pairs(root: str | Path) -> PairListing:
    """Pairs of a dataset folder laid out as `root/ir/<stem>.*` and `root/vi/<stem>.*` (or vis/, visible/)."""
    root = Path(root)
    return find_pairs(_first_existing(root, IR_DIR_NAMES), visible_folder(root))
