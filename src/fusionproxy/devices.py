"""Where a model runs: `--device auto|cpu|cuda|mps` (and `cuda:N`), `--half` (fp16, CUDA only).

Asking for a device that is not there is a one-line error, never a silent fall-back to the CPU.
"""

from __future__ import annotations

import torch

from .errors import FusionProxyError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda if available, else mps if available, else cpu; an explicit device must exist here."""
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise FusionProxyError(f"--device {name}: unknown device (choose {', '.join(DEVICE_CHOICES)})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise FusionProxyError(f"--device {name}: CUDA is not available here ({build}); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise FusionProxyError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps" and not _mps_available():
        raise FusionProxyError(f"--device {name}: Apple MPS is not available here; use --device cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise FusionProxyError(f"--device {name}: unsupported device type (choose {', '.join(DEVICE_CHOICES)})")
    return device


def check_half(device: torch.device, half: bool) -> None:
    """fp16 only where it is fast and well supported: CUDA (CPU fp16 convolutions are slow or missing)."""
    if half and device.type != "cuda":
        raise FusionProxyError(f"--half runs fp16 on CUDA only; the model is on {device.type} (drop --half)")


def set_cpu_threads(threads: int) -> None:
    """`threads` > 0 sets torch's CPU threads: on a CPU shared with other jobs one thread per process is much
    faster than OpenMP workers spinning against each other. 0 leaves torch's default."""
    if threads > 0:
        torch.set_num_threads(threads)
