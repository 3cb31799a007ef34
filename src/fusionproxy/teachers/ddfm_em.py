"""DDFM's likelihood rectification: one EM step of its hierarchical Bayesian fusion model (Zhao et al., ICCV 2023).

Notation as in DDFM's reference implementation: g is the visible luminance, t the infrared luminance, f the
current fused estimate, all B x 1 x H x W in [-1, 1]. The model writes the fused image as g - X with
Y = g - t, and asks X to stay close to Y (L1, weight C: keep infrared intensities where the two differ
sparsely) while staying small (L1, weight D) and having a sparse gradient (TV through the auxiliary H, F1, F2).
The E-step re-estimates the L1 weights C, D and the scales tau_a, tau_b from f; the M-step solves the TV
proximal problem for H in the Fourier domain and updates X in closed form. The state carries across the
diffusion steps of one sampling run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


def psf2otf(psf: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """MATLAB's psf2otf: zero-pad the kernel to H x W, circularly shift its centre to (0, 0), take the FFT."""
    padded = torch.zeros(height, width, dtype=psf.dtype, device=psf.device)
    padded[: psf.shape[0], : psf.shape[1]] = psf
    shifted = torch.roll(padded, shifts=(-(psf.shape[0] // 2), -(psf.shape[1] // 2)), dims=(0, 1))
    return torch.fft.fft2(shifted)


def difference_otfs(
    height: int, width: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """OTFs K1, K2 of the horizontal [1, -1] and vertical [1; -1] difference kernels at H x W."""
    k1 = torch.tensor([[1.0, -1.0]], dtype=dtype, device=device)
    return psf2otf(k1, height, width), psf2otf(k1.T, height, width)


def _forward_difference(h: torch.Tensor, dim: int) -> torch.Tensor:
    """d(H)[j] = H[j] - H[j+1] along `dim`; the last entry keeps H's own value (as the reference does)."""
    out = h.clone()
    length = h.shape[dim]
    out.narrow(dim, 0, length - 1).sub_(h.narrow(dim, 1, length - 1))
    return out


@dataclass
class EMState:
    """C, D, F1, F2, H: B x 1 x H x W maps; tau_a, tau_b: B x 1 x 1 x 1 (one scalar per image);
    K1, K2: the difference-kernel OTFs at H x W (complex, H x W)."""

    C: torch.Tensor
    D: torch.Tensor
    F1: torch.Tensor
    F2: torch.Tensor
    H: torch.Tensor
    tau_a: torch.Tensor
    tau_b: torch.Tensor
    K1: torch.Tensor
    K2: torch.Tensor

    @classmethod
    def initial(cls, like: torch.Tensor) -> "EMState":
        """The per-image start: C = D = 1, F1 = F2 = H = 0, tau_a = tau_b = 1."""
        ones, zeros = torch.ones_like(like), torch.zeros_like(like)
        scalar = torch.ones(like.shape[0], 1, 1, 1, dtype=like.dtype, device=like.device)
        k1, k2 = difference_otfs(like.shape[-2], like.shape[-1], like.dtype, like.device)
        return cls(ones, ones, zeros, zeros, zeros, scalar, scalar, k1, k2)


def em_step(
    f: torch.Tensor, g: torch.Tensor, t: torch.Tensor, state: EMState, lam: float = 0.5, rho: float = 0.001
) -> tuple[torch.Tensor, EMState]:
    """Rectify the fused estimate f with one EM step; returns (g - X, the new state)."""
    y = g - t
    x = f - t
    per_image = tuple(range(1, f.dim()))

    # E-step: expected inverse scales of the two Laplacian terms, then their hyper-parameters.
    d = torch.sqrt(2.0 / state.tau_b / (x**2 + 1e-6))
    c = torch.sqrt(2.0 / state.tau_a / (y - x + 1e-6) ** 2)
    d = torch.where(d > 2.0 * c, 2.0 * c, d)
    tau_b = (1.0 / (d + 1e-10) + state.tau_b / 2.0).mean(dim=per_image, keepdim=True)
    tau_a = (1.0 / (c + 1e-10) + state.tau_a / 2.0).mean(dim=per_image, keepdim=True)

    # M-step: TV proximal update of H in the Fourier domain (periodic boundaries, as psf2otf implies).
    k1, k2 = state.K1, state.K2
    numerator = torch.fft.fft2(y - x) + k1.conj() * torch.fft.fft2(state.F1) + k2.conj() * torch.fft.fft2(state.F2)
    h = torch.fft.ifft2(numerator / (1.0 + k1.abs() ** 2 + k2.abs() ** 2)).real
    shrink = rho / (2.0 * lam + rho)
    f1 = shrink * _forward_difference(h, dim=-1)
    f2 = shrink * _forward_difference(h, dim=-2)
    x = (2.0 * c * y + rho * (y - h)) / (2.0 * c + 2.0 * d + rho)

    new_state = replace(state, C=c, D=d, F1=f1, F2=f2, H=h, tau_a=tau_a, tau_b=tau_b)
    return g - x, new_state
