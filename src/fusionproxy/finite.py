"""Non-finite values (NaN, +-inf) in float inputs and in network outputs: reject, or repair only when asked.

Clipping a NaN to [0, 1] or casting it to uint8 gives an ordinary-looking pixel, so a float frame with NaN or
inf would otherwise become a plausible but meaningless fused image. Constant frames are finite and valid.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import FusionProxyError


class NonFiniteError(FusionProxyError, ValueError):
    """An input or output frame holds NaN or infinite values; the message names it and the fix in one line."""


def _describe(values: np.ndarray) -> str:
    counts = {"NaN": int(np.isnan(values).sum()), "+inf": int(np.isposinf(values).sum()),
              "-inf": int(np.isneginf(values).sum())}
    found = ", ".join(f"{count} {name}" for name, count in counts.items() if count)
    return f"{found} of {values.size} values"


def check_input(array: np.ndarray, what: str, nan_to: float | None = None) -> np.ndarray:
    """`array` unchanged when finite (or not float); else replace NaN/inf by `nan_to`, or raise NonFiniteError."""
    if not np.issubdtype(array.dtype, np.floating):
        return array
    bad = ~np.isfinite(array)
    if not bad.any():
        return array
    if nan_to is None:
        raise NonFiniteError(
            f"{what}: float image with {_describe(array)} non-finite; refusing to fuse it "
            "(repair with --nan-to VALUE / nan_to=VALUE)"
        )
    return np.where(bad, np.asarray(nan_to, dtype=array.dtype), array)


def check_tensor_input(tensor: torch.Tensor, what: str, nan_to: float | None = None) -> torch.Tensor:
    """`check_input` for tensors."""
    if not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()):
        return tensor
    if nan_to is None:
        raise NonFiniteError(
            f"{what}: float tensor with {_describe(tensor.detach().float().cpu().numpy())} non-finite; refusing "
            "to fuse it (repair with nan_to=VALUE)"
        )
    return torch.nan_to_num(tensor, nan=nan_to, posinf=nan_to, neginf=nan_to)


def finite_rows(batch: torch.Tensor) -> list[bool]:
    """Per batch row (B x ...): whether every value is finite."""
    return torch.isfinite(batch).flatten(1).all(1).tolist()


def output_error(batch_row: torch.Tensor) -> NonFiniteError:
    """The error for a non-finite network output of one item; the caller prefixes the item's name."""
    return NonFiniteError(
        f"the network output has {_describe(batch_row.detach().float().cpu().numpy())} non-finite; "
        "not written (check the model weights, or drop --half)"
    )
