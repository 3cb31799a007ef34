"""ONNX export of a fusion network with dynamic batch, height and width, and its parity check.

The TorchScript-based exporter (`dynamo=False`) is used: the torch.export-based one needs `onnxscript`, which
this package does not depend on. Tracing records the student's pad-to-stride arithmetic symbolically, so the
example input deliberately has sides that are *not* multiples of the stride — otherwise the tracer would see
no padding and bake that branch into the graph.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .errors import FusionProxyError
from .students.base import FusionStudent

DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-3


class ExportParityError(FusionProxyError):
    """onnxruntime and PyTorch disagree by more than the tolerance on a check input."""


def _student_of(model: nn.Module) -> nn.Module:
    return getattr(model, "student", model)


def has_uncertainty_head(model: nn.Module) -> bool:
    """True when `model` (a student or a FusionProxy) also predicts a log-variance map."""
    student = _student_of(model)
    return isinstance(student, FusionStudent) and bool(student.config.uncertainty_head)


class _BothOutputs(nn.Module):
    """Exposes (rgb, log_variance) as the graph outputs of a student with an uncertainty head."""

    def __init__(self, student: FusionStudent) -> None:
        super().__init__()
        self.student = student

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, log_variance = self.student.forward_with_uncertainty(ir, vis)
        assert log_variance is not None
        return rgb, log_variance


def output_names(model: nn.Module) -> list[str]:
    return ["rgb", "log_variance"] if has_uncertainty_head(model) else ["rgb"]


def _example_inputs(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    stride = int(getattr(_student_of(model), "stride", 1))
    height, width = 2 * max(stride, 16) + 3, 3 * max(stride, 16) + 5  # not multiples of the stride, H != W
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(0)
    ir = torch.rand(2, 1, height, width, generator=generator).to(device)
    vis = torch.rand(2, 3, height, width, generator=generator).to(device)
    return ir, vis


def export_onnx(model: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export `model` (ir B x 1 x H x W, vis B x 3 x H x W) -> rgb [, log_variance] to ONNX at `path`.

    Batch, height and width are dynamic. Models with an uncertainty head export both outputs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = output_names(model)
    graph_module = _BothOutputs(_student_of(model)) if len(names) == 2 else model
    dynamic = {0: "batch", 2: "height", 3: "width"}
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            # The legacy exporter's deprecation notice and the tracer's note on the pad branch (handled by
            # the choice of example input above) would only confuse a user.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph_module,
                _example_inputs(model),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=["ir", "vis"],
                output_names=names,
                dynamic_axes={name: dynamic for name in ["ir", "vis", *names]},
            )
    finally:
        model.train(was_training)
    return path


def onnx_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session for an exported model; `threads` caps intra-op threads."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FusionProxyError(f"{path}: ONNX file not found (create it with `fusionproxy export`)")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for corrupt files
        raise FusionProxyError(f"{path}: not a loadable ONNX model ({error})") from None


def check_onnx_parity(
    onnx_path: str | Path,
    model: nn.Module,
    inputs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    tolerance: float = PARITY_TOLERANCE,
) -> list[float]:
    """Max |onnxruntime - PyTorch| over all outputs for each (ir, vis) input; raises above `tolerance`."""
    session = onnx_session(onnx_path)
    names = [output.name for output in session.get_outputs()]
    was_training = model.training
    model.eval()
    differences = []
    try:
        for ir, vis in inputs:
            with torch.inference_mode():
                if has_uncertainty_head(model):
                    reference = _student_of(model).forward_with_uncertainty(ir, vis)
                else:
                    reference = (model(ir, vis),)
            outputs = session.run(names, {"ir": ir.cpu().numpy(), "vis": vis.cpu().numpy()})
            difference = max(
                float(np.abs(out - ref.float().cpu().numpy()).max()) for out, ref in zip(outputs, reference)
            )
            differences.append(difference)
            if not difference <= tolerance:  # also catches NaN
                size = "x".join(str(s) for s in vis.shape[-2:])
                raise ExportParityError(
                    f"{onnx_path}: onnxruntime differs from PyTorch by {difference:.3g} at {size} "
                    f"(tolerance {tolerance:g}); the export is not faithful"
                )
    finally:
        model.train(was_training)
    return differences
