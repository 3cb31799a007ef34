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


def export_onnx(
    model: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET, uncertainty: bool = True
) -> Path:
    """Export `model` (ir B x 1 x H x W, vis B x 3 x H x W) -> rgb [, log_variance] to ONNX at `path`.

    Batch, height and width are dynamic. Models with an uncertainty head export both outputs unless
    `uncertainty` is False (the RGB-only graph, without the head's cost).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = output_names(model) if uncertainty else ["rgb"]
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


def onnx_session(path: str | Path, threads: int | None = None, device: str = "cpu"):
    """An onnxruntime session for an exported model; `threads` caps intra-op threads.

    `device="cuda"` uses the CUDA execution provider, which needs the onnxruntime-gpu package; without it
    this is a one-line error rather than a silent run on the CPU.
    """
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise FusionProxyError("--device cuda with --backend onnxruntime: this onnxruntime has no CUDA "
                                   "execution provider (install onnxruntime-gpu), or use --backend eager")
        providers.insert(0, "CUDAExecutionProvider")
    elif device != "cpu":
        raise FusionProxyError(f"--backend onnxruntime runs on cpu or cuda, not {device}")

    path = Path(path)
    if not path.is_file():
        raise FusionProxyError(f"{path}: ONNX file not found (create it with `fusionproxy export`)")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
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


def shared_path(*parts: str) -> Path | None:
    """`shared/<parts>` beside the working directory or the repository (the project's data), or None."""
    repo_root = Path(__file__).resolve().parents[2]
    for shared in (Path.cwd().parent / "shared", Path.cwd() / "shared", repo_root.parent / "shared"):
        if shared.joinpath(*parts).exists():
            return shared.joinpath(*parts)
    return None


def default_check_pair() -> tuple[Path, Path]:
    """The first RoadScene test pair of `shared/datasets` beside the working directory or the repository."""
    from .io import find_dataset_pairs

    test = shared_path("datasets", "roadscene", "test")
    if test is None:
        raise FusionProxyError("no real pair for the parity check (no shared/datasets/roadscene/test beside the "
                               "working directory or the repository); pass --check-pair IR VIS")
    _, ir_path, vis_path = find_dataset_pairs(test).pairs[0]
    return ir_path, vis_path


def verify_export(
    model: nn.Module, onnx_path: str | Path, ir_path: str | Path, vis_path: str | Path,
    tolerance: float = PARITY_TOLERANCE,
) -> list[tuple[str, float]]:
    """Parity of an export on a real pair at its own size, and as a batch of two at an odd smaller size.

    Returns [(shape, max |difference|)]; raises ExportParityError above `tolerance`.
    """
    import cv2

    from .io import ir_to_tensor, read_ir, read_vis, resize_ir, vis_to_tensor

    ir, vis = read_ir(ir_path), read_vis(vis_path)
    ir = resize_ir(ir, *vis.shape[:2])
    height, width = vis.shape[:2]
    odd_h, odd_w = (2 * height // 3) | 1, (2 * width // 3) | 1
    small_ir = cv2.resize(ir, (odd_w, odd_h), interpolation=cv2.INTER_AREA)
    small_vis = cv2.resize(vis, (odd_w, odd_h), interpolation=cv2.INTER_AREA)
    # The second batch element is mirrored so that the two rows differ.
    batch_ir = torch.cat([ir_to_tensor(small_ir), ir_to_tensor(small_ir[:, ::-1])])
    batch_vis = torch.cat([vis_to_tensor(small_vis), vis_to_tensor(small_vis[:, ::-1])])
    inputs = [(ir_to_tensor(ir), vis_to_tensor(vis)), (batch_ir, batch_vis)]
    differences = check_onnx_parity(onnx_path, model, inputs, tolerance)
    shapes = [f"{height}x{width}", f"2x{odd_h}x{odd_w}"]
    return list(zip(shapes, differences))
