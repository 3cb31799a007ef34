"""How fast a fusion network runs here: parameters, GFLOPs, latency per backend, and each speed trick's cost.

Backends:
  eager             PyTorch fp32, default (NCHW) memory format
  channels_last     PyTorch fp32, channels_last memory format (oneDNN's preferred layout on CPU)
  bf16              channels_last under CPU autocast to bfloat16 (native only with AVX-512 BF16 / AMX)
  compile           torch.compile (inductor) of the eager model; needs a C++ compiler
  onnxruntime       the `fusionproxy export` graph (dynamic batch, H, W) on onnxruntime's CPU provider
  onnxruntime-int8  static int8 (QDQ), the recipe of `fusionproxy export --int8` (`quantize.quantize_int8`),
                    calibrated here on the benchmark pair and its mirror; the export's parity report, not this
                    PSNR, is its quality on a test set
  onnxruntime-dynamic  weights int8, activations quantised on the fly (onnxruntime.quantization.quantize_dynamic)

`bench_teacher` times one diffusion teacher sample (the whole sampling chain, B=1) at the same sizes, which
gives the distillation speed-up: teacher sample time / student latency at the same resolution.

Latency is wall-clock time per call of the whole module (padding, both encoders, decoder, output) on one
B=1 frame, after `warmup` calls; we report the median, p90 and minimum over `runs` calls. On a shared machine
the minimum is the closest to the uncontended latency. Quality cost is the PSNR of each backend's output
against fp32 eager on the same input (inf when identical).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .errors import FusionProxyError

BACKENDS = ("eager", "channels_last", "bf16", "compile", "onnxruntime", "onnxruntime-int8", "onnxruntime-dynamic")
DEFAULT_BACKENDS = ("eager", "channels_last", "onnxruntime")
DEFAULT_SIZES = ((480, 640), (768, 1024))

Runner = Callable[[], torch.Tensor]


@dataclass
class BenchResult:
    """One (model, size, backend) measurement; `error` is set (and timings are None) when the backend failed."""

    model: str
    backend: str
    height: int
    width: int
    threads: int
    parameters: int
    gflops: float
    runs: int
    median_ms: float | None = None
    p90_ms: float | None = None
    min_ms: float | None = None
    cpu_ms: float | None = None  # median process CPU time per call (all threads, spin-waiting included)
    fps: float | None = None
    psnr_db: float | None = None  # output vs fp32 eager
    error: str | None = None

    def to_dict(self) -> dict:
        record = dataclasses.asdict(self)
        if record["psnr_db"] is not None and math.isinf(record["psnr_db"]):
            record["psnr_db"] = "inf"  # JSON has no infinity
        return record


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'480x640,768x1024' -> [(480, 640), (768, 1024)] (height x width)."""
    sizes = []
    for item in text.split(","):
        try:
            height, width = (int(side) for side in item.lower().split("x"))
        except ValueError:
            raise FusionProxyError(f"--sizes: '{item}' is not HEIGHTxWIDTH (e.g. 480x640)") from None
        if height < 1 or width < 1:
            raise FusionProxyError(f"--sizes: '{item}' must have positive sides")
        sizes.append((height, width))
    return sizes


def parse_backends(text: str) -> list[str]:
    backends = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in backends if name not in BACKENDS]
    if unknown or not backends:
        raise FusionProxyError(f"--backends: unknown {', '.join(unknown) or '(none)'} (known: {', '.join(BACKENDS)})")
    return backends


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def count_gflops(model: nn.Module, height: int, width: int) -> float:
    """GFLOPs of one B=1 forward at height x width (convolutions and matrix products; 1 MAC = 2 FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    parameter = next(model.parameters())
    ir = torch.zeros(1, 1, height, width, device=parameter.device, dtype=parameter.dtype)
    vis = torch.zeros(1, 3, height, width, device=parameter.device, dtype=parameter.dtype)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(ir, vis)
    return counter.get_total_flops() / 1e9


def bench_inputs(
    height: int, width: int, pair: tuple[Path, Path] | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A real pair resized to height x width, or a seeded smooth synthetic pair (B=1)."""
    if pair is not None:
        import cv2

        from .io import ir_to_tensor, read_ir, read_vis, vis_to_tensor

        ir, vis = read_ir(pair[0]), read_vis(pair[1])
        ir = cv2.resize(ir, (width, height), interpolation=cv2.INTER_AREA)
        vis = cv2.resize(vis, (width, height), interpolation=cv2.INTER_AREA)
        return ir_to_tensor(ir), vis_to_tensor(vis)
    # Low-frequency noise upsampled, so the input has image-like structure rather than pure per-pixel noise.
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 4, max(height // 16, 2), max(width // 16, 2), generator=generator)
    smooth = nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    detail = 0.1 * torch.rand(1, 4, height, width, generator=generator)
    image = (smooth + detail).clamp(0, 1)
    return image[:, :1].contiguous(), image[:, 1:].contiguous()


def psnr(output: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 1] (inf when identical)."""
    mse = float(torch.mean((output.float().cpu() - reference.float().cpu()) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def bf16_is_native() -> bool:
    """True when the CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX); otherwise oneDNN emulates it."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def environment() -> dict[str, object]:
    import onnxruntime

    return {
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": bf16_is_native(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# ----- runners: each returns a zero-argument callable producing the RGB output for the fixed input -----


def _torch_runner(model: nn.Module, ir: torch.Tensor, vis: torch.Tensor, backend: str) -> Runner:
    if backend in ("channels_last", "bf16"):
        model = model.to(memory_format=torch.channels_last)
        ir, vis = ir.contiguous(memory_format=torch.channels_last), vis.contiguous(memory_format=torch.channels_last)
    if backend == "compile":
        model = torch.compile(model)
    autocast = backend == "bf16"
    device = ir.device

    def run() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            output = model(ir, vis)
        if device.type == "cuda":  # kernels run asynchronously: time them to completion
            torch.cuda.synchronize(device)
        return output

    return run


def _quantize(path: Path, backend: str, ir: torch.Tensor, vis: torch.Tensor) -> Path:
    """int8 version of the ONNX graph at `path` for the onnxruntime-int8 / onnxruntime-dynamic backends."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .quantize import quantize_int8

    quantized = path.with_name(f"{path.stem}-{backend}.onnx")
    if backend == "onnxruntime-int8":
        # Half resolution keeps the calibration's stored activations small; the graph has dynamic H and W.
        small_ir = nn.functional.interpolate(ir.float().cpu(), scale_factor=0.5, mode="area").numpy()
        small_vis = nn.functional.interpolate(vis.float().cpu(), scale_factor=0.5, mode="area").numpy()
        quantize_int8(path, quantized, [{"ir": small_ir, "vis": small_vis},
                                        {"ir": small_ir[..., ::-1].copy(), "vis": small_vis[..., ::-1].copy()}])
        return quantized
    # The quantizer logs a warning per conv bias and suggests pre-processing; neither matters to a benchmark.
    onnxruntime.set_default_logger_severity(3)
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(path, quantized, weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    return quantized


def _onnx_runner(
    model: nn.Module, ir: torch.Tensor, vis: torch.Tensor, backend: str, threads: int, workdir: Path
) -> Runner:
    from .export import export_onnx, onnx_session

    path = workdir / "model.onnx"
    if not path.exists():
        export_onnx(model, path, uncertainty=False)  # the RGB path every backend here times
    if backend != "onnxruntime":
        path = _quantize(path, backend, ir, vis)
    session = onnx_session(path, threads, ir.device.type)
    feed = {"ir": ir.float().cpu().numpy(), "vis": vis.float().cpu().numpy()}

    def run() -> torch.Tensor:
        return torch.from_numpy(session.run(["rgb"], feed)[0])

    return run


def make_runner(
    model: nn.Module, ir: torch.Tensor, vis: torch.Tensor, backend: str, threads: int, workdir: Path
) -> Runner:
    if backend.startswith("onnxruntime"):
        return _onnx_runner(model, ir, vis, backend, threads, workdir)
    return _torch_runner(model, ir, vis, backend)


def time_runner(run: Runner, runs: int, warmup: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Wall-clock and process CPU seconds per call over `runs` calls after `warmup` calls, and the last output.

    With one thread, CPU time is what a call costs on an idle core even when the machine is shared.
    """
    output = run()
    for _ in range(max(warmup - 1, 0)):
        run()
    wall, cpu = np.empty(runs), np.empty(runs)
    for i in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        output = run()
        wall[i], cpu[i] = time.perf_counter() - start, time.process_time() - start_cpu
    return wall, cpu, output


def timing_fields(seconds: np.ndarray, cpu_seconds: np.ndarray) -> dict[str, float]:
    """The BenchResult timing fields from per-call wall and CPU seconds."""
    median = float(np.median(seconds))
    return {"median_ms": 1e3 * median, "p90_ms": 1e3 * float(np.percentile(seconds, 90)),
            "min_ms": 1e3 * float(seconds.min()), "cpu_ms": 1e3 * float(np.median(cpu_seconds)), "fps": 1.0 / median}


def benchmark(
    model: nn.Module,
    label: str,
    sizes: list[tuple[int, int]] | tuple[tuple[int, int], ...] = DEFAULT_SIZES,
    backends: list[str] | tuple[str, ...] = DEFAULT_BACKENDS,
    runs: int = 100,
    warmup: int = 10,
    threads: int | None = None,
    pair: tuple[Path, Path] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> list[BenchResult]:
    """Measure `model` at every size with every backend; a failing backend yields a result with `error`.

    The PyTorch backends run where the model is (device and dtype); onnxruntime ones on the matching
    execution provider, CPU or CUDA (an error row where that provider is missing)."""
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    model = model.eval()
    parameters = count_parameters(model)
    results = []
    with tempfile.TemporaryDirectory(prefix="fusionproxy-bench-") as tmp:
        for height, width in sizes:
            parameter = next(model.parameters())
            ir, vis = (t.to(parameter.device, parameter.dtype) for t in bench_inputs(height, width, pair))
            with torch.inference_mode():
                reference = model(ir, vis)
            common = dict(model=label, height=height, width=width, threads=threads, parameters=parameters,
                          gflops=count_gflops(model, height, width), runs=runs)
            for backend in backends:
                if on_step is not None:
                    on_step(f"{label} {height}x{width} {backend}")
                try:
                    runner = make_runner(model, ir, vis, backend, threads, Path(tmp))
                    seconds, cpu_seconds, output = time_runner(runner, runs, warmup)
                except Exception as error:  # noqa: BLE001 - a backend that does not work here is a result too
                    message = " ".join(f"{type(error).__name__}: {error}".split())[:200]
                    results.append(BenchResult(backend=backend, error=message, **common))
                    continue
                finally:
                    model.to(memory_format=torch.contiguous_format)  # undo channels_last for the next backend
                results.append(BenchResult(backend=backend, psnr_db=psnr(output, reference),
                                           **timing_fields(seconds, cpu_seconds), **common))
    return results


def bench_teacher(
    teacher_dir: Path,
    sizes: list[tuple[int, int]] | tuple[tuple[int, int], ...] = DEFAULT_SIZES,
    runs: int = 3,
    threads: int | None = None,
    pair: tuple[Path, Path] | None = None,
    seed: int = 0,
) -> list[BenchResult]:
    """One teacher sample's time (backend `sample`) per size: `teacher.sample(ir, vis, 1, seed)`, one warm-up."""
    from .teachers import load_teacher

    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    teacher = load_teacher(teacher_dir)
    label = f"teacher:{Path(teacher_dir).name}"
    parameters = sum(p.numel() for p in teacher.parameters())
    results = []
    for height, width in sizes:
        ir, vis = bench_inputs(height, width, pair)
        with torch.inference_mode():
            seconds, cpu_seconds, _ = time_runner(lambda: teacher.sample(ir, vis, 1, seed), runs, warmup=1)
        results.append(BenchResult(
            model=label, backend="sample", height=height, width=width, threads=threads, parameters=parameters,
            gflops=float("nan"), runs=runs, **timing_fields(seconds, cpu_seconds),
        ))
    return results


def speedups(results: list[BenchResult], model: str) -> list[tuple[str, str, float, str, float, float]]:
    """Per size and teacher: (size, teacher, teacher ms, `model`'s fastest backend, its ms, speed-up)."""
    rows = []
    for teacher in (r for r in results if r.backend == "sample" and r.median_ms):
        students = [r for r in results if r.model == model and r.backend != "sample" and r.median_ms and
                    (r.height, r.width) == (teacher.height, teacher.width)]
        if students:
            best = min(students, key=lambda r: r.median_ms)
            rows.append((f"{teacher.height}x{teacher.width}", teacher.model, teacher.median_ms,
                         f"{best.model} {best.backend}", best.median_ms, teacher.median_ms / best.median_ms))
    return rows


def write_json(path: Path, results: list[BenchResult], label: str, runs: int, warmup: int,
               pair: tuple[Path, Path] | None = None) -> Path:
    """Every result, the environment and the speed-ups over `label` (the first model) as JSON at `path`."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"environment": environment(), "runs": runs, "warmup": warmup,
              "speedups": [dict(zip(("size", "teacher", "teacher_ms", "student", "student_ms", "speedup"), row))
                           for row in speedups(results, label)],
              "input": [str(p) for p in pair] if pair else "synthetic",
              "results": [r.to_dict() for r in results]}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
