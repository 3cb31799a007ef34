"""`FusionProxy`: a student network with its config, loadable from a directory, that fuses anything image-like.

    from fusionproxy import FusionProxy
    fusion = FusionProxy.from_pretrained("path/to/model")
    rgb = fusion.fuse("ir.png", "vis.png")          # float32 H x W x 3 in [0, 1]

A model directory is the package's shared format (`fusionproxy.model_dir`): `config.json` (registry
"student", the student's name and config, and `metadata`) and `model.safetensors` (the student's state dict).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from . import io
from .devices import check_half, resolve_device
from .errors import FusionProxyError, MissingWeightsError
from .finite import NonFiniteError, check_input, check_tensor_input, finite_rows, output_error
from .model_dir import CONFIG_FILE, WEIGHTS_FILE, SavedModel
from .registration import SizeMismatchError, as_homography, check_sizes, warp_ir  # noqa: F401  (public here too)
from .students import FusionStudent, create_student

if TYPE_CHECKING:
    from .stream import FusionStream

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default_model"

Backend = Literal["eager", "onnxruntime", "onnxruntime-int8"]
INT8_FILE = "model-int8.onnx"  # the name `fusionproxy fuse --backend onnxruntime-int8` looks for in a model directory
OnBadOutput = Literal["raise", "return"]


def resolve_model_dir(dir_or_name: str | Path) -> Path:
    """A model directory, or the name "default" for the model bundled with the package."""
    if str(dir_or_name) == "default":
        if not (DEFAULT_MODEL_DIR / CONFIG_FILE).is_file():
            raise MissingWeightsError(
                f"{DEFAULT_MODEL_DIR}: the default model is not bundled with this version yet; "
                "pass a trained model directory (--model DIR, or FusionProxy.from_pretrained(DIR))"
            )
        return DEFAULT_MODEL_DIR
    path = Path(dir_or_name)
    if not path.is_dir():
        raise MissingWeightsError(f"{path}: model directory not found (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
    return path


def _check_int8_request(onnx_path: str | Path | None, uncertainty: bool) -> None:
    """The onnxruntime-int8 backend runs only a file that `fusionproxy export --int8` wrote, never a stand-in."""
    if onnx_path is None:
        raise FusionProxyError("backend onnxruntime-int8 needs the int8 ONNX file (onnx_path); write one with "
                               f"`fusionproxy export --model DIR -o DIR/{INT8_FILE} --int8`")
    path = Path(onnx_path)
    if not path.is_file():
        raise MissingWeightsError(f"{path}: int8 ONNX file not found; write it with "
                                  f"`fusionproxy export --model DIR -o {path} --int8`")
    if uncertainty:
        raise FusionProxyError(f"{path}: the int8 graph has the RGB output only; fuse without the uncertainty map")


def _check_int8_file(path: Path) -> None:
    from .quantize import is_int8

    if not is_int8(path):
        raise FusionProxyError(f"{path}: not an int8 model (no quantised activations); use --backend onnxruntime, "
                               "or write one with `fusionproxy export --int8`")


@dataclass
class _Item:
    """One pair as tensors (1 x 1 x H x W, 1 x 3 x H x W) and how to hand its result back."""

    ir: torch.Tensor
    vis: torch.Tensor
    give_back: Callable[[torch.Tensor], Any]  # 1 x 3 x H x W result -> what the caller gets
    give_back_map: Callable[[torch.Tensor], Any]  # 1 x 1 x H x W log-variance -> what the caller gets


@dataclass
class _Request:
    """The items of one input (a pair, or a batch) and how to combine their results into one answer."""

    items: list[_Item]
    combine: Callable[[list[Any]], Any]


@dataclass(frozen=True)
class _Inputs:
    """How raw inputs become network inputs (the keyword arguments of `fuse` that concern them)."""

    stretch: io.Stretch | None = None
    resize_ir: bool = False
    nan_to: float | None = None
    homography: np.ndarray | None = None


def _raw_array(value: Any, role: str, what: str, nan_to: float | None) -> np.ndarray:
    if isinstance(value, (str, Path)):
        return io.read_raw(value, nan_to)
    if isinstance(value, Image.Image):
        return check_input(io.array_from_pil(value), f"{what} {role}", nan_to)
    if isinstance(value, np.ndarray):
        return check_input(value, f"{what} {role}", nan_to)
    raise TypeError(f"{what}: unsupported {role} input of type {type(value).__name__}")


def _array_item(ir: Any, vis: Any, inputs: _Inputs, what: str) -> _Item:
    """One pair given as numpy arrays, PIL images or paths (see FusionProxy.fuse for the conventions)."""
    ir_raw, vis_raw = _raw_array(ir, "IR", what, inputs.nan_to), _raw_array(vis, "VIS", what, inputs.nan_to)
    ir_unit, vis_unit = io.ir_from_array(ir_raw, inputs.stretch), io.vis_from_array(vis_raw)
    if inputs.homography is not None:  # registration decides the IR -> VIS geometry, sizes included
        ir_unit = warp_ir(ir_unit, inputs.homography, *vis_unit.shape[:2])
    check_sizes(ir_unit.shape[:2], vis_unit.shape[:2], inputs.resize_ir, what)
    ir_unit = io.resize_ir(ir_unit, *vis_unit.shape[:2])
    as_pil = isinstance(vis, Image.Image)
    as_uint8 = as_pil or (isinstance(vis, np.ndarray) and vis.dtype == np.uint8)

    def give_back(rgb: torch.Tensor) -> Any:
        image = io.tensor_to_image(rgb)
        if as_uint8:
            image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
        return Image.fromarray(image) if as_pil else image

    def give_back_map(log_variance: torch.Tensor) -> np.ndarray:
        return log_variance[0, 0].float().cpu().numpy()

    return _Item(io.ir_to_tensor(ir_unit), io.vis_to_tensor(vis_unit), give_back, give_back_map)


def _tensor_request(ir: torch.Tensor, vis: torch.Tensor, inputs: _Inputs) -> _Request:
    """Tensors C x H x W (one pair) or B x C x H x W (a batch); IR may have 1 or 3 channels, VIS 1 or 3."""
    shapes = f"got IR {tuple(ir.shape)} and VIS {tuple(vis.shape)}"
    if ir.dim() != vis.dim() or vis.dim() not in (3, 4):
        raise ValueError(f"IR and VIS tensors must both be C x H x W or B x C x H x W; {shapes}")
    batched = vis.dim() == 4
    as_uint8 = vis.dtype == torch.uint8
    ir, vis = (t if batched else t[None] for t in (ir, vis))
    ir = check_tensor_input(ir, "IR tensor", inputs.nan_to)
    vis = check_tensor_input(vis, "VIS tensor", inputs.nan_to)
    ir, vis = (t.float() / 255.0 if t.dtype == torch.uint8 else t.float() for t in (ir, vis))
    if ir.shape[1] == 3:
        ir = (ir * torch.tensor(io.LUMA_WEIGHTS, device=ir.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if vis.shape[1] == 1:
        vis = vis.expand(-1, 3, -1, -1)
    if ir.shape[1] != 1 or vis.shape[1] != 3 or ir.shape[0] != vis.shape[0]:
        raise ValueError(f"expected IR and VIS with 1 or 3 channels and equal batch sizes; {shapes}")
    if inputs.homography is not None:
        from kornia.geometry.transform import warp_perspective

        matrix = torch.as_tensor(inputs.homography, dtype=ir.dtype, device=ir.device).expand(ir.shape[0], 3, 3)
        ir = warp_perspective(ir, matrix, tuple(vis.shape[-2:]), align_corners=True, padding_mode="zeros")
    check_sizes(ir.shape[-2:], vis.shape[-2:], inputs.resize_ir, "tensor input")
    if ir.shape[-2:] != vis.shape[-2:]:
        ir = F.interpolate(ir, size=vis.shape[-2:], mode="bilinear", align_corners=False, antialias=True)

    def give_back(rgb: torch.Tensor) -> torch.Tensor:
        return (rgb.clamp(0, 1) * 255.0).round().to(torch.uint8) if as_uint8 else rgb

    items = [_Item(ir[i : i + 1], vis[i : i + 1], give_back, lambda m: m) for i in range(ir.shape[0])]
    return _Request(items, torch.cat if batched else (lambda outputs: outputs[0][0]))


def _request(ir: Any, vis: Any, inputs: _Inputs, what: str) -> _Request:
    """Everything except lists: a tensor pair or batch, a batched numpy array, or one pair of anything."""
    if isinstance(ir, torch.Tensor) and isinstance(vis, torch.Tensor):
        return _tensor_request(ir, vis, inputs)
    # VIS arrays decide: B x H x W x C and B x H x W are batches; H x W and H x W x 1|3|4 are one image.
    if isinstance(vis, np.ndarray) and (vis.ndim == 4 or (vis.ndim == 3 and vis.shape[2] not in (1, 3, 4))):
        if len(ir) != len(vis):
            raise ValueError(f"{what}: {len(ir)} IR frames but {len(vis)} VIS frames")
        items = [_array_item(i, v, inputs, f"{what} frame {n}") for n, (i, v) in enumerate(zip(ir, vis))]
        return _Request(items, np.stack)
    return _Request([_array_item(ir, vis, inputs, what)], lambda outputs: outputs[0])


class FusionProxy(SavedModel, nn.Module):
    """A student fusion network plus what is needed to save, load and run it on real inputs.

    `forward(ir, vis)` is the student's forward (B x 1 x H x W, B x 3 x H x W in [0, 1] -> B x 3 x H x W), so the
    module can sit in front of any RGB network; `fuse` is the convenience entry point for images.
    """

    def __init__(self, student: FusionStudent, metadata: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.student = student
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._onnx_sessions: dict[str, Any] = {}
        self._onnx_tmp: tempfile.TemporaryDirectory | None = None

    model_registry = "student"
    legacy_key = "student"

    @property
    def student_name(self) -> str:
        return type(self.student).name

    @property
    def has_uncertainty(self) -> bool:
        return bool(self.student.config.uncertainty_head)

    @property
    def random_init(self) -> bool:
        return bool(self.metadata.get("random_init", False))

    # ----- construction, saving, loading -----
    @classmethod
    def from_student(cls, name: str, seed: int = 0, **config: Any) -> FusionProxy:
        """A randomly initialised (untrained) student, seeded; `metadata["random_init"]` says so."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            student = create_student(name, **config)
        return cls(student, {"random_init": True, "seed": seed}).eval()

    @classmethod
    def from_pretrained(
        cls, dir_or_name: str | Path = "default", device: str | torch.device = "cpu", half: bool = False
    ) -> FusionProxy:
        """Load `config.json` + `model.safetensors` from a directory ("default": the bundled model).

        `device`: cpu, cuda[:N], mps or auto (see `to_device`); `half`: fp16 weights, CUDA only.
        """
        target = resolve_device(device)
        check_half(target, half)
        model = super().from_pretrained(resolve_model_dir(dir_or_name))
        return model.to_device(target, half).eval()

    @classmethod
    def from_model_config(cls, name: str, config: dict[str, Any], record: dict[str, Any]) -> FusionProxy:
        return cls(create_student(name, **config), record.get("metadata"))

    def model_entry(self) -> str:
        return self.student_name

    def model_config(self) -> dict[str, Any]:
        return self.student.config.to_dict()

    def weights_module(self) -> nn.Module:
        return self.student

    def model_extra(self) -> dict[str, Any]:
        return {"metadata": self.metadata}

    def to_device(self, device: str | torch.device = "auto", half: bool = False) -> FusionProxy:
        """Move to `device` (auto: cuda, else mps, else cpu); a device that is not here is a one-line
        FusionProxyError, never a silent fall-back. `half` runs fp16 (CUDA only); results stay float32."""
        target = resolve_device(device)
        check_half(target, half)
        self.to(target)
        return self.half() if half else self.float()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def save_pretrained(self, directory: str | Path, **metadata: Any) -> Path:
        """Write `config.json` and `model.safetensors`; extra keyword arguments are added to the metadata."""
        self.metadata.update(metadata)
        return super().save_pretrained(directory)

    # ----- the network -----
    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        return self.student(ir, vis)

    def forward_with_uncertainty(self, ir: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.student.forward_with_uncertainty(ir, vis)

    def _onnx_session(self, onnx_path: str | Path | None, threads: int | None, uncertainty: bool,
                      int8: bool = False) -> Any:
        from .export import export_onnx, onnx_session

        if int8:
            _check_int8_request(onnx_path, uncertainty)
        elif onnx_path is None:  # export once per FusionProxy and output set, into a private temporary directory
            if self._onnx_tmp is None:
                self._onnx_tmp = tempfile.TemporaryDirectory(prefix="fusionproxy-onnx-")
            # The RGB-only graph leaves the uncertainty head out, so fusing without the map never pays for it.
            onnx_path = Path(self._onnx_tmp.name) / ("model-uncertainty.onnx" if uncertainty else "model.onnx")
            if not onnx_path.exists():
                export_onnx(self, onnx_path, uncertainty=uncertainty)
        key = f"{Path(onnx_path).resolve()}:{threads}:{self.device.type}"
        if key not in self._onnx_sessions:
            if int8:
                _check_int8_file(Path(onnx_path))
            self._onnx_sessions[key] = onnx_session(onnx_path, threads, self.device.type)
        return self._onnx_sessions[key]

    def _run(
        self, ir: torch.Tensor, vis: torch.Tensor, backend: Backend, onnx_path: str | Path | None, threads: int | None,
        uncertainty: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if backend in ("onnxruntime", "onnxruntime-int8"):
            session = self._onnx_session(onnx_path, threads, uncertainty, int8=backend == "onnxruntime-int8")
            feed = {"ir": np.ascontiguousarray(ir.cpu().numpy()), "vis": np.ascontiguousarray(vis.cpu().numpy())}
            outputs = session.run(None, feed)
            tensors = [torch.from_numpy(out).to(vis.device) for out in outputs]
            return tensors[0], (tensors[1] if len(tensors) > 1 else None)
        if backend != "eager":
            raise FusionProxyError(f"unknown backend '{backend}' (choose eager, onnxruntime or onnxruntime-int8)")
        parameter = next(self.parameters())
        with torch.inference_mode():
            rgb, log_variance = self.student.forward_with_uncertainty(
                ir.to(parameter.device, parameter.dtype), vis.to(parameter.device, parameter.dtype), uncertainty
            )
        # Results come back float32 on the input's device, whatever the model runs in (fp16 on CUDA).
        back = dict(device=vis.device, dtype=torch.float32)
        return rgb.to(**back), (log_variance.to(**back) if log_variance is not None else None)

    # ----- images in, images out -----
    def fuse(
        self,
        ir: Any,
        vis: Any,
        *,
        with_uncertainty: bool = False,
        resize_ir: bool = False,
        ir_stretch: io.Stretch | None = None,
        batch_size: int = 8,
        backend: Backend = "eager",
        onnx_path: str | Path | None = None,
        threads: int | None = None,
        nan_to: float | None = None,
        ir_homography: Any = None,
        on_bad_output: OnBadOutput = "raise",
    ) -> Any:
        """Fuse one pair or a batch and return the result in the kind it was given.

        Inputs: paths, PIL images, numpy arrays (IR H x W or H x W x 1|3; VIS H x W x 3 or H x W; uint8, uint16
        or float in [0, 1]; uint16 IR goes through `ir_stretch`, default PercentileStretch()), or tensors
        (C x H x W or B x C x H x W, float in [0, 1] or uint8). A batch is a list/tuple of either, a
        B x H x W[ x C] array or a B x C x H x W tensor.

        Results: numpy float32 H x W x 3 in [0, 1] for paths and float/uint16 arrays, numpy uint8 for uint8
        arrays, PIL RGB images for PIL input, tensors (3 x H x W or B x 3 x H x W; uint8 if given uint8) for
        tensors; a list for a list. With `with_uncertainty`, each result is (rgb, log_variance), the
        log-variance being float32 H x W numpy (1|B x 1 x H x W for tensors).

        IR and VIS must have the same size unless `resize_ir` (IR is resampled onto the VIS grid). Runs in
        eval mode under inference_mode; pairs of equal size run together in batches of `batch_size`.
        `backend="onnxruntime"` runs the ONNX file `onnx_path`; when None, the weights as they are at the first
        such call are exported to a temporary file and reused by later calls. `backend="onnxruntime-int8"` runs
        the int8 file `onnx_path` written by `fusionproxy export --int8` (RGB only, no uncertainty map).

        Float inputs with NaN or inf raise `finite.NonFiniteError` naming the input, unless `nan_to` replaces
        those values. `ir_homography` (3 x 3, or 2 x 3 affine, IR -> VIS pixel coordinates; see
        `fusionproxy.registration`) warps IR onto the VIS grid first. A result with non-finite values raises
        NonFiniteError; with `on_bad_output="return"` that error object takes the result's place instead
        (what batch and stream jobs use to skip one frame and keep going).
        """
        if with_uncertainty and not self.has_uncertainty:
            raise FusionProxyError(f"this {self.student_name} model has no uncertainty head")
        is_list = isinstance(ir, (list, tuple)) and isinstance(vis, (list, tuple))
        if is_list and len(ir) != len(vis):
            raise ValueError(f"got {len(ir)} IR inputs but {len(vis)} VIS inputs")
        pairs = list(zip(ir, vis)) if is_list else [(ir, vis)]
        homography = None if ir_homography is None else as_homography(ir_homography, "ir_homography")
        inputs = _Inputs(ir_stretch, resize_ir, nan_to, homography)
        labels = [f"pair {n}" if is_list else "input" for n in range(len(pairs))]
        requests = [_request(i, v, inputs, label) for (i, v), label in zip(pairs, labels)]
        items = [item for request in requests for item in request.items]
        outputs = iter(self._run_items(items, with_uncertainty, batch_size, backend, onnx_path, threads))
        answers = []
        for request, label in zip(requests, labels):
            results = [next(outputs) for _ in request.items]
            bad = next((result for result in results if isinstance(result, NonFiniteError)), None)
            if bad is not None:
                error = NonFiniteError(f"{label}: {bad}")
                if on_bad_output == "raise":
                    raise error
                answers.append(error)
                continue
            if with_uncertainty:
                answers.append((request.combine([r for r, _ in results]), request.combine([m for _, m in results])))
            else:
                answers.append(request.combine(results))
        return answers if is_list else answers[0]

    def _run_items(
        self, items: Sequence[_Item], with_uncertainty: bool, batch_size: int, backend: Backend,
        onnx_path: str | Path | None, threads: int | None,
    ) -> list[Any]:
        """Each item's result (or (result, map)), running items of equal size together in batches."""
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, item in enumerate(items):
            by_size.setdefault(tuple(item.vis.shape[-2:]), []).append(index)
        results: list[Any] = [None] * len(items)
        was_training = self.training
        self.eval()
        try:
            for indices in by_size.values():
                for start in range(0, len(indices), max(1, batch_size)):
                    chunk = indices[start : start + max(1, batch_size)]
                    ir = torch.cat([items[i].ir for i in chunk])
                    vis = torch.cat([items[i].vis for i in chunk])
                    rgb, log_variance = self._run(ir, vis, backend, onnx_path, threads, with_uncertainty)
                    finite = finite_rows(rgb if log_variance is None else torch.cat([rgb, log_variance], 1))
                    for row, index in enumerate(chunk):
                        if not finite[row]:  # NaN would clip or cast to a plausible-looking pixel
                            results[index] = output_error(rgb[row : row + 1])
                            continue
                        result = items[index].give_back(rgb[row : row + 1])
                        if with_uncertainty:
                            result = (result, items[index].give_back_map(log_variance[row : row + 1]))
                        results[index] = result
        finally:
            self.train(was_training)
        return results

    # ----- streams -----
    def stream(self, ir_source: Any, vis_source: Any, **options: Any) -> FusionStream:
        """Fuse two frame streams: an iterable of (timestamp seconds, RGB float32 H x W x 3) on the VIS grid.

        A source is a camera index, a URL or GStreamer pipeline, a video file, a folder of numbered frames
        (`sequence=True`), or an iterable of frames or of (timestamp seconds, frame) pairs. Options (see
        `fusionproxy.stream.FusionStream`): max_skew (seconds; default half the slower source's frame
        period), queue_size, batch_size, fps (of sequences and timestamp-less iterables), reconnect,
        resize_ir, ir_homography, ir_stretch, nan_to, backend, onnx_path, threads, on_message. After (or
        during) iteration, `.report` counts what was fused, unpaired, damaged or dropped.
        """
        from .stream import FusionStream

        return FusionStream(self, ir_source, vis_source, **options)
