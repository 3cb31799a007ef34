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
    ) -> None:
        """Export to ONNX, then check onnxruntime against PyTorch on a real pair at two sizes; fail if they differ."""
        from ..api import FusionProxy
        from ..export import default_check_pair, export_onnx, verify_export

        console = Console(stderr=True, soft_wrap=True)
        fusion = FusionProxy.from_pretrained(model)
        ir_path, vis_path = check_pair if check_pair else default_check_pair()
        path = export_onnx(fusion, output, opset=opset)
        checks = verify_export(fusion, path, ir_path, vis_path, tolerance)
        measured = ", ".join(f"{diff:.2e} at {shape}" for shape, diff in checks)
        console.print(f"exported {path}; onnxruntime vs PyTorch on {vis_path.name}: max |diff| {measured} "
                      f"(tolerance {tolerance:g})", highlight=False)
