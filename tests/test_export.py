"""ONNX export: dynamic batch / H / W through the pad-to-stride logic, parity with PyTorch, and the CLI check."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch

from fusionproxy import FusionProxy
from fusionproxy.cli import main
from fusionproxy.export import ExportParityError, check_onnx_parity, default_check_pair, export_onnx


def _perturbed(seed: int, uncertainty_head: bool = False) -> FusionProxy:
    """The smallest student with seeded weight noise, so that its output depends on every weight."""
    fusion = FusionProxy.from_student("ultralight", seed=seed, uncertainty_head=uncertainty_head)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in fusion.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return fusion


def _inputs(*shapes: tuple[int, int, int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [(torch.rand(b, 1, h, w, generator=generator), torch.rand(b, 3, h, w, generator=generator))
            for b, h, w in shapes]


@pytest.mark.slow
def test_dynamic_shapes_and_both_outputs(tmp_path: Path) -> None:
    fusion = _perturbed(1, uncertainty_head=True)
    path = export_onnx(fusion, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["rgb", "log_variance"]
    # Multiples of the stride (no padding), odd sides, H > W and W > H, batch 1 and 3.
    sizes = [(1, 64, 96), (3, 37, 53), (1, 101, 17), (2, 16, 16), (1, 5, 7)]
    differences = check_onnx_parity(path, fusion, _inputs(*sizes))
    assert len(differences) == len(sizes) and max(differences) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("hidden_inputs", [(0, False), (8, True)])  # the feature read-out; the input-aware head
def test_the_rgb_only_graph_leaves_the_head_out(tmp_path: Path, hidden_inputs: tuple[int, bool]) -> None:
    hidden, inputs = hidden_inputs
    fusion = FusionProxy.from_student("ultralight", seed=0, uncertainty_head=True, uncertainty_hidden=hidden,
                                      uncertainty_inputs=inputs)
    both = ort.InferenceSession(str(export_onnx(fusion, tmp_path / "both.onnx")), providers=["CPUExecutionProvider"])
    rgb = ort.InferenceSession(str(export_onnx(fusion, tmp_path / "rgb.onnx", uncertainty=False)),
                               providers=["CPUExecutionProvider"])
    assert [o.name for o in rgb.get_outputs()] == ["rgb"]
    nodes = {name: len(onnx.load(str(tmp_path / f"{name}.onnx")).graph.node) for name in ("rgb", "both")}
    assert nodes["rgb"] < nodes["both"]  # the head's operations are not in the RGB-only graph
    ir, vis = _inputs((1, 32, 48))[0]
    feed = {"ir": ir.numpy(), "vis": vis.numpy()}
    assert abs(rgb.run(None, feed)[0] - both.run(None, feed)[0]).max() == 0
    ir_image, vis_image = ir[0, 0].numpy(), vis[0].permute(1, 2, 0).numpy()
    fused, std = fusion.fuse(ir_image, vis_image, backend="onnxruntime", with_uncertainty=True)
    assert std is not None and abs(fused - fusion.fuse(ir_image, vis_image, backend="onnxruntime")).max() == 0


@pytest.mark.slow
def test_parity_failure_is_loud(tmp_path: Path) -> None:
    path = export_onnx(_perturbed(1), tmp_path / "model.onnx")
    with pytest.raises(ExportParityError, match=r"differs from PyTorch by [0-9.e-]+ at 37x53"):
        check_onnx_parity(path, _perturbed(2), _inputs((1, 37, 53)))


@pytest.mark.data
def test_default_check_pair_is_a_real_roadscene_pair(tmp_path: Path, roadscene_test_pair, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # found beside the repository even when run from elsewhere
    assert default_check_pair() == roadscene_test_pair


@pytest.mark.data
@pytest.mark.slow
def test_export_cli_checks_a_real_pair(tmp_path: Path, datasets_dir: Path, monkeypatch, capsys) -> None:
    _perturbed(1).save_pretrained(tmp_path / "model")
    ir, vis = datasets_dir / "tno" / "ir" / "01.png", datasets_dir / "tno" / "vi" / "01.png"
    monkeypatch.setattr(sys, "argv", ["fusionproxy", "export", "--model", str(tmp_path / "model"), "--format", "onnx",
                                      "-o", str(tmp_path / "model.onnx"), "--check-pair", str(ir), str(vis)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 0, err
    assert "on 01.png: max |diff|" in err and "at 576x768" in err and "at 2x385x513" in err
    assert (tmp_path / "model.onnx").is_file()
