"""int8 for users: static QDQ quantisation of an exported student, calibrated on training pairs, and the
parity report that decides whether the int8 model may be written (`fusionproxy export --int8`).

Recipe (measured on the default model, RoadScene test, 2026-12-06; docs/results/speed.md): weights per
channel, activations per tensor, MinMax calibration, only Conv and MatMul quantised, and the network's first
and last of those kept in float. Quantising every op costs 31-32 dB of PSNR against fp32 and runs slower;
keeping the input stems and the output head in float lifts it to about 43 dB.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import FusionProxyError
from .io import find_dataset_pairs, ir_to_tensor, read_ir, read_vis, resize_ir, to_uint8, vis_to_tensor
from .visibility import DegradationRange, degrade_image

QUANTISED_OPS = ("Conv", "MatMul")
# Weighted ops that stay float anyway; the search for the boundary stops at them too: since the output head is a
# transposed conv (students/blocks.subpixel_conv), the last Conv before it is an inner node, not the head.
FLOAT_WEIGHTED_OPS = ("ConvTranspose",)
DEFAULT_MIN_PSNR = 35.0
DEFAULT_CALIBRATION_PAIRS = 32
# Clean frames, and the darkest night level, where the fused frame matters most to a detector.
PARITY_LEVELS = ("none", "night-0.05")


class Int8QualityError(FusionProxyError):
    """The int8 model differs from fp32 by more than the user accepts; nothing was written."""


def is_int8(path: str | Path) -> bool:
    """True when the ONNX file at `path` carries quantised activations (a QDQ graph)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and friends for a corrupt file
        raise FusionProxyError(f"{path}: not a loadable ONNX model ({error})") from None
    return any(node.op_type in ("QuantizeLinear", "DynamicQuantizeLinear") for node in model.graph.node)


def boundary_nodes(graph, op_types: Sequence[str] = QUANTISED_OPS + FLOAT_WEIGHTED_OPS) -> list[str]:
    """Names of the first `op_types` nodes reached from each graph input and the last ones before each output.

    These see the raw pixels and produce the output pixels, where int8 rounding shows most; they stay float.
    """
    consumers: dict[str, list] = {}
    producers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producers.setdefault(name, []).append(node)

    def first_reached(starts: Iterable[str], nodes_at: dict[str, list], forward: bool) -> set[str]:
        found, seen, frontier = set(), set(), list(starts)
        while frontier:
            for node in nodes_at.get(frontier.pop(), []):
                if id(node) in seen:
                    continue
                seen.add(id(node))
                if node.op_type in op_types:
                    found.add(node.name)
                else:
                    frontier += list(node.output if forward else node.input)
        return found

    first = first_reached((i.name for i in graph.input), consumers, forward=True)
    last = first_reached((o.name for o in graph.output), producers, forward=False)
    return sorted(first | last)


def read_pair(ir_path: Path, vis_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A pair as the network sees it: IR resampled onto the visible grid."""
    vis = read_vis(vis_path)
    return resize_ir(read_ir(ir_path), *vis.shape[:2]), vis


def calibration_feeds(root: str | Path, count: int = DEFAULT_CALIBRATION_PAIRS, seed: int = 0) -> list[dict]:
    """onnxruntime feeds of `count` pairs of the dataset at `root` (a seeded draw, at their own size): each pair
    clean and once more with its visible frame degraded by a random night/fog draw of `visibility` (the
    training-time injection), so that the int8 ranges also cover the dark and hazy frames users fuse."""
    pairs = find_dataset_pairs(root).pairs
    if not pairs:
        raise FusionProxyError(f"{root}: no IR/visible pairs to calibrate on")
    chosen = sorted(random.Random(seed).sample(range(len(pairs)), min(count, len(pairs))))
    draws, generator = DegradationRange(probability=1.0), torch.Generator().manual_seed(seed)
    feeds = []
    for index in chosen:
        _, ir_path, vis_path = pairs[index]
        ir, vis = read_pair(ir_path, vis_path)
        degraded = degrade_image(vis, draws.sample(generator), seed + index).astype(np.float32) / 255.0
        feeds += [{"ir": ir_to_tensor(ir).numpy(), "vis": vis_to_tensor(v).numpy()} for v in (vis, degraded)]
    return feeds


def quantize_int8(fp32_path: str | Path, out_path: str | Path, feeds: Sequence[dict]) -> list[str]:
    """Write the static int8 (QDQ) version of the float ONNX graph at `fp32_path`, calibrated on `feeds`, to
    `out_path`; returns the names of the boundary nodes kept in float (`boundary_nodes`)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.items, None)

    out_path = Path(out_path)
    # The quantiser logs a warning per normalisation weight it cannot quantise per channel (it keeps them
    # float, as intended) and per bias; neither is actionable for a user.
    logging.disable(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory(prefix="fusionproxy-int8-") as work:
            prepared = Path(work) / "prepared.onnx"
            # Symbolic shape inference cannot resolve the pad-to-stride arithmetic; ONNX's own suffices.
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            excluded = boundary_nodes(onnx.load(str(prepared)).graph)
            quantize_static(
                str(prepared), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                op_types_to_quantize=list(QUANTISED_OPS), nodes_to_exclude=excluded,
            )
    finally:
        logging.disable(logging.NOTSET)
    return excluded


@dataclass(frozen=True)
class ParityReport:
    """int8 against fp32 on one dataset: PSNR of the 8-bit outputs, TTC and frozen-detector mAP50 of each."""

    dataset: str
    pairs: int
    psnr_mean: float
    psnr_min: float
    ttc_frames: int
    ttc_fp32: float
    ttc_int8: float
    detector: str | None
    map50_fp32: dict[str, float]
    map50_int8: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        rows = [f"int8 vs fp32 on {self.dataset} ({self.pairs} pairs): PSNR mean {self.psnr_mean:.2f} dB, "
                f"worst pair {self.psnr_min:.2f} dB",
                f"TTC ({self.ttc_frames} frames with targets): fp32 {self.ttc_fp32:.3f}, int8 {self.ttc_int8:.3f}"]
        for level in self.map50_fp32:
            rows.append(f"{self.detector} mAP50, visible {level}: fp32 {self.map50_fp32[level]:.3f}, "
                        f"int8 {self.map50_int8[level]:.3f}")
        return rows


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def parity_report(model, fp32_path: str | Path, int8_path: str | Path, dataset: str | Path,
                  detector=None, detector_name: str | None = None, max_pairs: int | None = None,
                  threads: int | None = 1, seed: int = 0) -> ParityReport:
    """Fuse every pair of `dataset` through both ONNX files with `model` (a FusionProxy) and compare.

    PSNR: between the 8-bit fused frames. TTC: mean over frames with targets (`metrics.thermal`). mAP50: the
    frozen `detector` (`detection.load_detector`) against its own detections on the clean visible frame, the
    protocol of `fusionproxy evaluate --detector`, at each of `PARITY_LEVELS` (the visible frame degraded).
    """
    from .detection import ROAD_CLASSES, Detections
    from .detection import average_precision as ap
    from .detection.average_precision import MIN_SCORE, REFERENCE_SCORE
    from .evaluate.perturb import stable_seed
    from .metrics.thermal import thermal_target_contrast

    root = Path(dataset)
    pairs = find_dataset_pairs(root).pairs[:max_pairs]
    if not pairs:
        raise FusionProxyError(f"{root}: no IR/visible pairs for the int8 parity report")
    paths = {"fp32": fp32_path, "int8": int8_path}
    psnrs: list[float] = []
    ttc: dict[str, list[float]] = {"fp32": [], "int8": []}
    references: list[Detections] = []
    found: dict[tuple[str, str], list[Detections]] = {(k, lv): [] for k in paths for lv in PARITY_LEVELS}

    def detect(rgb: np.ndarray) -> Detections:
        return detector.detect(rgb, MIN_SCORE).of_classes(ROAD_CLASSES)

    for stem, ir_path, vis_path in pairs:
        ir, vis = read_pair(ir_path, vis_path)
        vis8 = to_uint8(vis)
        if detector is not None:
            references.append(detect(vis8).above(REFERENCE_SCORE))
        for level in PARITY_LEVELS if detector is not None else ("none",):
            seen = vis if level == "none" else degrade_image(
                vis8, level, stable_seed(seed, "visibility", root.name, stem, level)).astype(np.float32) / 255.0
            fused = {k: to_uint8(model.fuse(ir, seen, backend="onnxruntime", onnx_path=p, threads=threads))
                     for k, p in paths.items()}
            if level == "none":
                psnrs.append(_psnr(fused["fp32"], fused["int8"]))
                for k in paths:
                    ttc[k].append(thermal_target_contrast(fused[k], ir))
            if detector is not None:
                for k in paths:
                    found[(k, level)].append(detect(fused[k]))

    maps: dict[str, dict[str, float]] = {"fp32": {}, "int8": {}}
    if detector is not None:
        classes = ap.evaluated_classes(ap.reference_counts(references, list(ROAD_CLASSES)))
        for (k, level), detections in found.items():
            matched = ap.match_images(detections, references, list(ROAD_CLASSES))
            maps[k][level] = ap.mean_average_precision(matched, classes)
    counted = [i for i, value in enumerate(ttc["fp32"]) if math.isfinite(value) and math.isfinite(ttc["int8"][i])]
    return ParityReport(
        dataset=str(root), pairs=len(psnrs), psnr_mean=float(np.mean(psnrs)), psnr_min=float(np.min(psnrs)),
        ttc_frames=len(counted), ttc_fp32=float(np.mean([ttc["fp32"][i] for i in counted])) if counted else math.nan,
        ttc_int8=float(np.mean([ttc["int8"][i] for i in counted])) if counted else math.nan,
        detector=detector_name if detector is not None else None, map50_fp32=maps["fp32"], map50_int8=maps["int8"],
    )


def accept(report: ParityReport, min_psnr: float, candidate: Path, destination: Path) -> Path:
    """Move the int8 `candidate` to `destination` if its worst-pair PSNR reaches `min_psnr`; else refuse."""
    if not report.psnr_min >= min_psnr:
        raise Int8QualityError(
            f"{destination}: int8 model refused, its worst pair is {report.psnr_min:.2f} dB PSNR against fp32 "
            f"on {report.dataset}, below --min-psnr {min_psnr:g} dB; nothing written"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(candidate), str(destination))
    return destination


@dataclass(frozen=True)
class Int8Export:
    """What `export_int8` calibrates on, checks against and accepts (the `fusionproxy export --int8` flags)."""

    calibration: Path
    parity: Path
    detector: Path
    calibration_pairs: int = DEFAULT_CALIBRATION_PAIRS
    parity_pairs: int | None = None
    min_psnr: float = DEFAULT_MIN_PSNR
    seed: int = 0
    opset: int = 17
    tolerance: float = 1e-3


def export_int8(model, output: str | Path, request: Int8Export, check_pair: tuple[Path, Path],
                log: Callable[[str], None] = print) -> Path:
    """fp32 export (checked against PyTorch on `check_pair`), static int8 quantisation, parity report, and
    the int8 model at `output` with the report beside it as `output`.json, only if the report passes."""
    from .detection import load_detector
    from .export import export_onnx, verify_export

    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="fusionproxy-int8-") as work:
        fp32 = export_onnx(model, Path(work) / "fp32.onnx", opset=request.opset, uncertainty=False)
        verify_export(model, fp32, *check_pair, tolerance=request.tolerance)
        log(f"calibrating on {request.calibration_pairs} pairs of {request.calibration} (seed {request.seed})")
        feeds = calibration_feeds(request.calibration, request.calibration_pairs, request.seed)
        candidate = Path(work) / "int8.onnx"
        excluded = quantize_int8(fp32, candidate, feeds)
        report = parity_report(model, fp32, candidate, request.parity, load_detector(request.detector),
                               request.detector.name, request.parity_pairs, seed=request.seed)
        for line in report.lines():
            log(line)
        written = accept(report, request.min_psnr, candidate, output)
    record = {"format": "onnx-int8-qdq", "request": {k: str(v) if isinstance(v, Path) else v
                                                     for k, v in asdict(request).items()},
              "kept_float": excluded, "parity": report.to_dict()}
    output.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"wrote {written} (int8, worst pair {report.psnr_min:.2f} dB >= {request.min_psnr:g} dB) and "
        f"{output.with_suffix('.json')}")
    return written
