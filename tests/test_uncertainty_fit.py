"""`fusionproxy distill-head`: fitting the input-aware uncertainty head of a trained student, trunk frozen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fusionproxy.api import FusionProxy
from fusionproxy.errors import FusionProxyError
from fusionproxy.students import create_student
from fusionproxy.uncertainty_fit import HeadFitConfig, fit_uncertainty_head, held_out_spearman, with_input_aware_head

TINY = {"widths": [4, 8], "depths": [1, 1], "decoder_depths": [1], "stem_stride": 2}
SIZE = 32


def synthetic_items(count: int = 12) -> list[dict[str, torch.Tensor]]:
    """Items whose ensemble variance grows with |IR - luma(VIS)|, as the teachers' does on real pairs."""
    generator = torch.Generator().manual_seed(0)
    items = []
    for _ in range(count):
        ir = torch.rand(1, SIZE, SIZE, generator=generator)
        vis = torch.rand(3, SIZE, SIZE, generator=generator)
        luma = (vis * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0)
        var = 0.05 * (ir[0] - luma) ** 2 + 1e-4
        items.append({"ir": ir, "vis": vis, "mean": (vis + ir) / 2, "var": var})
    return items


@pytest.mark.slow
def test_the_fitted_head_ranks_pixels_like_the_ensemble_and_leaves_the_image_alone() -> None:
    torch.manual_seed(0)
    trained = create_student("ultralight", **TINY, uncertainty_head=True).eval()
    student = with_input_aware_head(trained, hidden=8, seed=0)
    assert student.config.uncertainty_inputs and student.config.uncertainty_hidden == 8
    ir, vis = torch.rand(1, 1, SIZE, SIZE), torch.rand(1, 3, SIZE, SIZE)
    before = trained(ir, vis)
    items = synthetic_items()
    report = fit_uncertainty_head(student, items, HeadFitConfig(steps=80, lr=1e-2, val_items=3))
    assert torch.equal(student(ir, vis), before)  # trunk frozen, head detached: same fused pixels
    assert report["held_out_items"] == 3 and report["train_items"] == 9
    assert report["held_out_spearman"] > 0.6 > report["held_out_spearman_fresh_head"]
    assert report["held_out_spearman"] == pytest.approx(held_out_spearman(student, items, [9, 10, 11]))
    again = with_input_aware_head(trained, hidden=8, seed=0)
    fit_uncertainty_head(again, items, HeadFitConfig(steps=80, lr=1e-2, val_items=3))
    for a, b in zip(student.log_variance_head.parameters(), again.log_variance_head.parameters()):
        assert torch.equal(a, b)  # seeded: the same head twice


def test_students_without_the_input_aware_head_are_refused() -> None:
    from fusionproxy.students.dtpf_student import DTPFStudent

    with pytest.raises(FusionProxyError, match="no input-aware uncertainty head"):
        with_input_aware_head(DTPFStudent(DTPFStudent.config_class()), hidden=8, seed=0)


def test_cli_writes_a_new_model_and_never_overwrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fusionproxy.cli import app

    items = synthetic_items()
    monkeypatch.setattr("fusionproxy.cache.CacheDataset", lambda path: items)
    source = FusionProxy.from_student("ultralight", seed=0, **TINY, uncertainty_head=True)
    source.save_pretrained(tmp_path / "model")
    args = ["distill-head", "--model", str(tmp_path / "model"), "--cache", str(tmp_path / "cache"),
            "--out", str(tmp_path / "fitted"), "--steps", "5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "held-out Spearman" in result.output
    fitted = FusionProxy.from_pretrained(tmp_path / "fitted")
    assert fitted.student.config.uncertainty_inputs
    assert fitted.metadata["uncertainty_fit"]["config"]["steps"] == 5
    ir, vis = np.random.default_rng(0).random((SIZE, SIZE)), np.random.default_rng(1).random((SIZE, SIZE, 3))
    np.testing.assert_array_equal(fitted.fuse(ir, vis), source.fuse(ir, vis))
    written = (tmp_path / "fitted" / "model.safetensors").read_bytes()
    again = CliRunner().invoke(app, args)
    assert isinstance(again.exception, FusionProxyError) and "exists" in str(again.exception)
    assert (tmp_path / "fitted" / "model.safetensors").read_bytes() == written
