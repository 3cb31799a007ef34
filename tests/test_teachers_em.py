"""DDFM's EM rectification step (teachers/ddfm_em.py), without any diffusion prior."""

from __future__ import annotations

import math

import pytest
import torch

from fusionproxy.teachers.ddfm_em import EMState, difference_otfs, em_step, psf2otf


def test_psf2otf_of_difference_kernels_matches_closed_form() -> None:
    height, width = 6, 7
    k1, k2 = difference_otfs(height, width, torch.float64)
    # [1, -1] centred at (0, 0) by psf2otf's circular shift: -1 at column 0 and +1 at column W-1.
    u = torch.arange(height, dtype=torch.float64)[:, None]
    v = torch.arange(width, dtype=torch.float64)[None, :]
    expected_k1 = torch.exp(2j * math.pi * v / width) - 1
    expected_k2 = torch.exp(2j * math.pi * u / height) - 1
    torch.testing.assert_close(k1, expected_k1.expand(height, width))
    torch.testing.assert_close(k2, expected_k2.expand(height, width))
    # a 1 x 1 kernel is its own OTF: a constant
    identity = psf2otf(torch.ones(1, 1, dtype=torch.float64), 3, 4)
    torch.testing.assert_close(identity, torch.ones(3, 4, dtype=torch.complex128))


def _tiny_input() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    i = torch.arange(20, dtype=torch.float32).view(1, 1, 4, 5)
    g = torch.sin(i * 0.7) * 0.8
    t = torch.cos(i * 0.3) * 0.6
    return (g + t) / 2 + 0.1 * torch.sin(i * 1.9), g, t


def test_em_step_pinned_numbers() -> None:
    """Three steps on a fixed 4 x 5 input; values checked against DDFM's reference implementation."""
    f, g, t = _tiny_input()
    state = EMState.initial(g)
    for _ in range(3):
        f, state = em_step(f, g, t, state, lam=0.5, rho=0.001)
    expected = torch.tensor([
        0.3019854724407196, 0.5356389284133911, 0.6897735595703125, 0.5837621688842773, 0.23595179617404938,
        -0.11051143705844879, -0.3232136070728302, -0.6099051237106323, -0.48395872116088867, -0.17349299788475037,
        -0.052900731563568115, 0.005810081958770752, 0.14113986492156982, -0.050461381673812866, -0.29377493262290955,
        -0.39084556698799133, -0.27778345346450806, -0.20889902114868164, 0.169992133975029, 0.5211536288261414,
    ]).view(1, 1, 4, 5)
    torch.testing.assert_close(f, expected, atol=1e-5, rtol=0)
    assert state.tau_a.item() == pytest.approx(0.3802166283130646, abs=1e-5)
    assert state.tau_b.item() == pytest.approx(0.37311047315597534, abs=1e-5)
    torch.testing.assert_close(
        state.H[0, 0, 0],
        torch.tensor([-0.06740739941596985, -0.027668971568346024, 0.03258812054991722, 0.06238618120551109,
                      0.027217112481594086]),
        atol=1e-5, rtol=0,
    )


def test_em_state_initialisation() -> None:
    like = torch.zeros(2, 1, 3, 4)
    state = EMState.initial(like)
    assert torch.equal(state.C, torch.ones_like(like)) and torch.equal(state.D, torch.ones_like(like))
    for zero in (state.F1, state.F2, state.H):
        assert torch.equal(zero, torch.zeros_like(like))
    assert state.tau_a.shape == (2, 1, 1, 1) and torch.equal(state.tau_b, torch.ones(2, 1, 1, 1))


def test_em_step_treats_batch_images_independently() -> None:
    f, g, t = _tiny_input()
    f2, g2, t2 = f.flip(-1) * 0.5, g.flip(-2), -t
    batch_out, batch_state = em_step(torch.cat([f, f2]), torch.cat([g, g2]), torch.cat([t, t2]),
                                     EMState.initial(torch.cat([g, g2])))
    for k, (fk, gk, tk) in enumerate([(f, g, t), (f2, g2, t2)]):
        single, state = em_step(fk, gk, tk, EMState.initial(gk))
        torch.testing.assert_close(batch_out[k : k + 1], single)
        torch.testing.assert_close(batch_state.tau_a[k], state.tau_a[0])


def test_em_only_fusion_keeps_hot_square_and_visible_texture() -> None:
    """A hot IR square on a textured visible background: iterating the EM step alone (no prior) from f = g
    converges to a fusion in which the square stays hot and the background keeps the visible texture."""
    size = 64
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    vis = 0.5 + 0.3 * torch.sin(xx * 0.8) * torch.cos(yy * 0.6)
    ir = torch.full((size, size), 0.2)
    ir[20:44, 20:44] = 0.95
    g, t = (vis * 2 - 1)[None, None], (ir * 2 - 1)[None, None]
    f, state = g.clone(), EMState.initial(g)
    for _ in range(30):
        f, state = em_step(f, g, t, state)
    fused = ((f + 1) / 2)[0, 0]

    inside, background = fused[26:38, 26:38], fused[:12]
    ir_contrast = 0.95 - 0.2
    # The square stands out by at least 45% of its infrared contrast, above the visible image's own level there.
    assert inside.mean() - background.mean() > 0.45 * ir_contrast
    assert inside.mean() > vis[26:38, 26:38].mean() + 0.15
    # The background follows the visible texture (same pattern, a clear share of its amplitude).
    correlation = torch.corrcoef(torch.stack([background.flatten(), vis[:12].flatten()]))[0, 1]
    assert correlation > 0.99
    assert background.std() > 0.45 * vis[:12].std()
    # ... and so does the inside of the square.
    assert torch.corrcoef(torch.stack([inside.flatten(), vis[26:38, 26:38].flatten()]))[0, 1] > 0.99
    assert torch.isfinite(state.C).all() and torch.isfinite(state.D).all()
