"""The trained CPU teachers kept in models/teachers load with the current code and sample valid fusions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fusionproxy.teachers import load_teacher

pytestmark = [pytest.mark.data, pytest.mark.slow]  # teacher sampling on a real RoadScene crop

MODELS = Path(__file__).resolve().parents[1] / "models" / "teachers"


@pytest.mark.parametrize("name", ["masked-cpu", "ddfm-cpu"])
def test_trained_teacher_samples_a_real_pair(name: str, roadscene_test_pair) -> None:
    from fusionproxy.io import ir_to_tensor, read_ir, read_vis, vis_to_tensor

    teacher = load_teacher(MODELS / name)
    ir_path, vis_path = roadscene_test_pair
    window = (..., slice(100, 228), slice(100, 292))  # a central 128 x 192 crop: road, cars, trees
    ir, vis = ir_to_tensor(read_ir(ir_path))[window], vis_to_tensor(read_vis(vis_path))[window]
    samples = teacher.sample(ir, vis, num_samples=2, seed=0)
    assert samples.shape == (2, 3, 128, 192)
    assert 0.0 <= samples.min() and samples.max() <= 1.0
    # A fusion, not noise and not a copy of one source: the mean's brightness is well explained by a linear
    # mix of IR and VIS brightness in which both take part.
    fused = samples.mean(0).mean(0).flatten()
    sources = torch.stack([ir[0, 0].flatten(), vis[0].mean(0).flatten(), torch.ones_like(fused)], dim=1)
    coefficients = torch.linalg.lstsq(sources, fused[:, None]).solution.flatten()
    explained = 1 - (fused - sources @ coefficients).var() / fused.var()
    assert explained > 0.6
    assert coefficients[0] > 0.2 and coefficients[1] > 0.2
