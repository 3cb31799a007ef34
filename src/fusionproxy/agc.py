"""Gain for 16-bit radiometric IR video: a fixed range in raw counts, or a temporal automatic gain.

The default per-frame `io.PercentileStretch` re-maps every frame on its own, so a hot object entering the
scene darkens everything else from one frame to the next (brightness pumping). `TemporalAgc` smooths the
stretch's limits over frames; `FixedRange` does not adapt at all. Both map uint16 H x W to float32 [0, 1] and
can be passed wherever an `ir_stretch` is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import FusionProxyError
from .io import PercentileStretch


@dataclass(frozen=True)
class FixedRange:
    """Raw counts `low` -> 0 and `high` -> 1, linearly, clipped (`--ir-range LOW,HIGH`)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise FusionProxyError(f"--ir-range {self.low:g},{self.high:g}: need LOW < HIGH (raw counts)")

    def __call__(self, values: np.ndarray) -> np.ndarray:
        scaled = (values.astype(np.float32) - np.float32(self.low)) / np.float32(self.high - self.low)
        return np.clip(scaled, 0.0, 1.0)


class TemporalAgc:
    """Percentile stretch whose limits are an exponential moving average over the frames seen so far.

    `ema` is the weight of the past (0: per-frame stretch, 0.9: a time constant of about 10 frames). The first
    frame sets the limits. Stateful: use one instance per IR stream, fed its frames in order.
    """

    def __init__(self, ema: float = 0.9, stretch: PercentileStretch | None = None) -> None:
        if not 0.0 <= ema < 1.0:
            raise FusionProxyError(f"--agc-ema {ema:g}: need 0 <= EMA < 1 (the weight of past frames)")
        self.ema = ema
        self.stretch = stretch or PercentileStretch()
        self.limits: tuple[float, float] | None = None

    def __call__(self, values: np.ndarray) -> np.ndarray:
        lo, hi = (float(v) for v in np.percentile(values, [self.stretch.low, self.stretch.high]))
        if self.limits is not None:
            lo = self.ema * self.limits[0] + (1.0 - self.ema) * lo
            hi = self.ema * self.limits[1] + (1.0 - self.ema) * hi
        self.limits = (lo, hi)
        if hi <= lo:  # a flat frame from the start (lens cap): nothing to stretch yet
            return np.zeros(values.shape, dtype=np.float32)
        return FixedRange(lo, hi)(values)


def parse_range(text: str) -> FixedRange:
    """'LOW,HIGH' raw counts -> FixedRange."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise FusionProxyError(f"--ir-range '{text}': expected two raw counts LOW,HIGH such as 21000,26000") from None
    return FixedRange(low, high)
