"""Reading and writing images as cameras produce them, and pairing IR/VIS files by stem.

Conventions used everywhere in the package: IR is float32 H x W in [0, 1]; VIS and fused images are float32
H x W x 3 (RGB) in [0, 1]; tensors are B x 1 x H x W (IR) and B x 3 x H x W (VIS / fused).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import FusionProxyError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
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
        return np.clip((values - lo) / (hi - lo), 0.0, 1.0)


def read_raw(path: str | Path) -> np.ndarray:
    """Read an image file with its EXIF orientation applied, keeping its bit depth (uint8 or uint16)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(image, dtype=np.uint16)
            if image.mode == "I":  # 32-bit integer containers of 16-bit data
                return np.asarray(image).astype(np.uint16)
            if image.mode not in ("L", "RGB", "RGBA", "LA", "P"):
                raise OSError(f"unsupported mode {image.mode}")
            if image.mode in ("P", "LA"):
                image = image.convert("RGBA" if image.mode == "P" else "L")
            return np.asarray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # PIL cannot read multi-channel 16-bit TIFF; OpenCV can.
        array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise ImageReadError(f"{path}: unreadable image ({error})") from None
        if array.ndim == 3:
            array = cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA if array.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        return array


def to_unit_float(array: np.ndarray, stretch: PercentileStretch | None = None) -> np.ndarray:
    """uint8 -> /255; uint16 -> `stretch` (default PercentileStretch()); float input is clipped to [0, 1]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return (stretch or PercentileStretch())(array)
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def _drop_alpha(array: np.ndarray) -> np.ndarray:
    return array[..., :3] if array.ndim == 3 and array.shape[2] == 4 else array


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)


def read_ir(path: str | Path, stretch: PercentileStretch | None = None) -> np.ndarray:
    """An IR frame as float32 H x W in [0, 1]; 3-channel IR becomes its luminance."""
    array = _drop_alpha(read_raw(path))
    if array.ndim == 3 and array.shape[2] == 2:  # gray + alpha
        array = array[..., 0]
    unit = to_unit_float(array, stretch)
    return _luminance(unit) if unit.ndim == 3 else unit


def read_vis(path: str | Path) -> np.ndarray:
    """A visible frame as float32 H x W x 3 RGB in [0, 1]; gray input is repeated to 3 channels."""
    array = _drop_alpha(read_raw(path))
    if array.ndim == 3 and array.shape[2] == 2:
        array = array[..., 0]
    unit = to_unit_float(array)
    return np.repeat(unit[..., None], 3, axis=2) if unit.ndim == 2 else unit


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write H x W (gray) or H x W x 3 (RGB) float in [0, 1] (or uint8) as an 8-bit image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    Image.fromarray(image).save(path)


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
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
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


def find_dataset_pairs(root: str | Path) -> PairListing:
    """Pairs of a dataset folder laid out as `root/ir/<stem>.*` and `root/vi/<stem>.*` (or vis/, visible/)."""
    root = Path(root)
    return find_pairs(_first_existing(root, IR_DIR_NAMES), _first_existing(root, VIS_DIR_NAMES))
