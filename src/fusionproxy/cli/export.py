"""`fusionproxy export`: a trained model to ONNX (dynamic batch, H, W), checked against PyTorch on real pairs."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console


class ExportFormat(str, Enum):
    onnx = "onnx"


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        model: str = typer.Option(..., "--model", help="Trained model directory."),
        output: Path = typer.Option(..., "-o", "--output", help="ONNX file to write."),
        format: ExportFormat = typer.Option(ExportFormat.onnx, "--format"),
        opset: int = typer.Option(17, "--opset"),
        check_pair: Optional[tuple[Path, Path]] = typer.Option(
            None, "--check-pair", metavar="IR VIS",
            help="Pair for the parity check (default: the first RoadScene test pair).",
        ),
        tolerance: float = typer.Option(1e-3, "--tolerance", help="Largest accepted |onnxruntime - PyTorch|."),
        int8: bool = typer.Option(
            False, "--int8", help="Write a static int8 (QDQ) model of the RGB output instead, after a parity "
            "report against fp32; refused below --min-psnr.",
        ),
        calibration: Optional[Path] = typer.Option(
            None, "--calibration", help="--int8: dataset (ir/, vi/) to calibrate on; default "
            "shared/datasets/roadscene/train. Never a test set.",
        ),
        calibration_pairs: int = typer.Option(32, "--calibration-pairs", min=1, help="--int8: pairs drawn from it."),
        parity: Optional[Path] = typer.Option(
            None, "--parity", help="--int8: dataset of the parity report; default shared/datasets/roadscene/test.",
        ),
        parity_pairs: Optional[int] = typer.Option(None, "--parity-pairs", min=1, help="--int8: first N pairs only."),
        detector: Optional[Path] = typer.Option(
            None, "--detector", help="--int8: frozen detector ONNX of the report's mAP50; default "
            "shared/models/yolox_nano_coco.onnx.",
        ),
        min_psnr: float = typer.Option(35.0, "--min-psnr", help="--int8: refuse when the worst pair's PSNR "
                                       "against fp32 is below this (dB)."),
        seed: int = typer.Option(0, "--seed", help="--int8: seed of the calibration draw and the degradations."),
    ) -> None:
        """Export to ONNX, then check onnxruntime against PyTorch on a real pair at two sizes; fail if they differ.

        With --int8: quantise that graph (RGB output only) to static int8, calibrated on training pairs; print a
        parity report against fp32 (PSNR, TTC, frozen-detector mAP50) and write the model (and the report as
        OUTPUT.json) only if its PSNR reaches --min-psnr.
        """
        from ..api import FusionProxy
        from ..export import default_check_pair, export_onnx, verify_export

        console = Console(stderr=True, soft_wrap=True)
        fusion = FusionProxy.from_pretrained(model)
        ir_path, vis_path = check_pair if check_pair else default_check_pair()
        if not int8:
            path = export_onnx(fusion, output, opset=opset)
            checks = verify_export(fusion, path, ir_path, vis_path, tolerance)
            measured = ", ".join(f"{diff:.2e} at {shape}" for shape, diff in checks)
            console.print(f"exported {path}; onnxruntime vs PyTorch on {vis_path.name}: max |diff| {measured} "
                          f"(tolerance {tolerance:g})", highlight=False)
            return
        from ..quantize import Int8Export, export_int8

        request = Int8Export(
            calibration=calibration or _shared_or_fail("--calibration", "datasets", "roadscene", "train"),
            parity=parity or _shared_or_fail("--parity", "datasets", "roadscene", "test"),
            detector=detector or _shared_or_fail("--detector", "models", "yolox_nano_coco.onnx"),
            calibration_pairs=calibration_pairs, parity_pairs=parity_pairs, min_psnr=min_psnr, seed=seed,
            opset=opset, tolerance=tolerance,
        )
        export_int8(fusion, output, request, (ir_path, vis_path), lambda line: console.print(line, highlight=False))


def _shared_or_fail(flag: str, *parts: str) -> Path:
    from ..errors import FusionProxyError
    from ..export import shared_path

    path = shared_path(*parts)
    if path is None:
        raise FusionProxyError(f"no shared/{'/'.join(parts)} beside the working directory or the repository; "
                               f"pass {flag}")
    return path
