"""int8 for users: which nodes stay float, the static QDQ model, the parity report, the refusal, and the
`export --int8` / `fuse --backend onnxruntime-int8` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from fusionproxy import FusionProxy
from fusionproxy.api import INT8_FILE
from fusionproxy.errors import FusionProxyError
from fusionproxy.export import export_onnx
from fusionproxy.io import read_ir, read_vis
from cli_runner import run_cli
from fusionproxy.quantize import (
    Int8QualityError, accept, boundary_nodes, calibration_feeds, is_int8, parity_report, quantize_int8,
)

TINY = Path(__file__).resolve().parent / "data" / "tiny"  # a dataset folder: tiny/{ir,vi}/<stem>.png


def _conv(name: str, source: str, target: str) -> onnx.NodeProto:
    return helper.make_node("Conv", [source, f"{name}.w"], [target], name=name)


def test_boundary_nodes_are_the_first_and_last_convolutions_on_every_path() -> None:
    # ir -> Relu -> a -> b -> Add(., c(vis)) -> d -> Sigmoid -> out: first a and c, last d.
    nodes = [helper.make_node("Relu", ["ir"], ["r"], name="relu"), _conv("a", "r", "ta"), _conv("b", "ta", "tb"),
             _conv("c", "vis", "tc"), helper.make_node("Add", ["tb", "tc"], ["s"], name="add"),
             _conv("d", "s", "td"), helper.make_node("Sigmoid", ["td"], ["out"], name="sigmoid")]
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1, 4, 4])  # noqa: E731
    graph = helper.make_graph(nodes, "g", [value("ir"), value("vis")], [value("out")])
    assert boundary_nodes(graph) == ["a", "c", "d"]
    # A transposed-conv output head (float by op type) ends the search: the conv before it is an inner node.
    head = helper.make_node("ConvTranspose", ["td", "h.w"], ["th"], name="head")
    nodes[-1] = helper.make_node("Sigmoid", ["th"], ["out"], name="sigmoid")
    graph = helper.make_graph([*nodes[:-1], head, nodes[-1]], "g", [value("ir"), value("vis")], [value("out")])
    assert boundary_nodes(graph) == ["a", "c", "head"]


def _perturbed() -> FusionProxy:
    """The smallest student with seeded weight noise, so that int8 rounding shows in its output."""
    fusion = FusionProxy.from_student("ultralight", seed=3)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in fusion.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return fusion.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[FusionProxy, Path, Path, list[str]]:
    """(model, fp32 ONNX, int8 ONNX, nodes kept float), calibrated on the tiny bundled pair."""
    folder = tmp_path_factory.mktemp("int8")
    fusion = _perturbed()
    fp32 = export_onnx(fusion, folder / "fp32.onnx", uncertainty=False)
    kept = quantize_int8(fp32, folder / "int8.onnx", calibration_feeds(TINY, count=4))
    return fusion, fp32, folder / "int8.onnx", kept


@pytest.mark.slow
def test_the_int8_graph_quantises_all_but_the_boundary_nodes(exported) -> None:
    _, fp32, int8, kept = exported
    assert not is_int8(fp32) and is_int8(int8)
    graph = onnx.load(str(int8)).graph
    dequantized = {output for node in graph.node if node.op_type == "DequantizeLinear" for output in node.output}
    convolutions = [node for node in graph.node if node.op_type in ("Conv", "MatMul")]
    quantised = {node.name for node in convolutions if node.input[0] in dequantized}
    assert kept and not quantised & set(kept)  # the stems and the head read float activations
    assert quantised == {node.name for node in convolutions} - set(kept)


@pytest.mark.slow
def test_parity_report_and_refusal(exported, tmp_path: Path) -> None:
    fusion, fp32, int8, _ = exported
    report = parity_report(fusion, fp32, int8, TINY)
    assert report.pairs == 1 and report.detector is None and report.map50_fp32 == {}
    assert 20.0 < report.psnr_min <= report.psnr_mean < 80.0  # int8 rounding is visible but small
    same = parity_report(fusion, fp32, fp32, TINY)
    assert same.psnr_min == float("inf") and (same.ttc_fp32 == same.ttc_int8 or same.ttc_frames == 0)

    candidate = tmp_path / "candidate.onnx"
    candidate.write_bytes(int8.read_bytes())
    with pytest.raises(Int8QualityError, match=r"refused.*below --min-psnr 90 dB; nothing written"):
        accept(report, 90.0, candidate, tmp_path / "out" / "model-int8.onnx")
    assert not (tmp_path / "out").exists() and candidate.exists()
    assert accept(report, 10.0, candidate, tmp_path / "out" / "model-int8.onnx").is_file()


@pytest.mark.slow
def test_the_int8_backend_runs_only_int8_files(exported, tiny_pair) -> None:
    fusion, fp32, int8, _ = exported
    ir, vis = read_ir(tiny_pair[0]), read_vis(tiny_pair[1])
    with pytest.raises(FusionProxyError, match="needs the int8 ONNX file"):
        fusion.fuse(ir, vis, backend="onnxruntime-int8")
    with pytest.raises(FusionProxyError, match="fp32.onnx: not an int8 model"):
        fusion.fuse(ir, vis, backend="onnxruntime-int8", onnx_path=fp32)
    quantised = fusion.fuse(ir, vis, backend="onnxruntime-int8", onnx_path=int8)
    reference = fusion.fuse(ir, vis, backend="onnxruntime", onnx_path=fp32)
    assert quantised.shape == reference.shape and 0 < np.abs(quantised - reference).max() < 0.1


@pytest.mark.data
@pytest.mark.slow
def test_export_int8_command_reports_writes_and_refuses(tmp_path: Path, datasets_dir: Path, tiny_pair, monkeypatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    model = tmp_path / "model"
    _perturbed().save_pretrained(model)
    common = ["export", "--model", str(model), "--int8", "--check-pair", *map(str, tiny_pair),
              "--calibration", str(TINY), "--parity", str(TINY),
              "--detector", str(datasets_dir.parent / "models" / "yolox_nano_coco.onnx")]
    refused = model / "refused.onnx"
    code, printed = run_cli([*common, "-o", str(refused), "--min-psnr", "200"], monkeypatch, capsys)
    assert code == 1 and "nothing written" in printed
    assert not refused.exists() and not refused.with_suffix(".json").exists()

    code, printed = run_cli([*common, "-o", str(model / INT8_FILE)], monkeypatch, capsys)
    assert code == 0, printed
    assert "int8 vs fp32 on" in printed and "TTC" in printed and "mAP50, visible night-0.05" in printed
    record = json.loads((model / INT8_FILE).with_suffix(".json").read_text())
    assert record["parity"]["pairs"] == 1 and record["request"]["min_psnr"] == 35.0
    assert set(record["parity"]["map50_int8"]) == {"none", "night-0.05"}
    assert is_int8(model / INT8_FILE)

    fused = tmp_path / "fused.png"
    code, printed = run_cli(["fuse", "--model", str(model), "--ir", str(tiny_pair[0]), "--vis", str(tiny_pair[1]),
                             "-o", str(fused), "--backend", "onnxruntime-int8"], monkeypatch, capsys)
    assert code == 0 and fused.is_file(), printed


def test_fuse_names_the_missing_int8_file(tmp_path: Path, tiny_pair, monkeypatch,
                                          capsys: pytest.CaptureFixture) -> None:
    model = tmp_path / "model"
    FusionProxy.from_student("ultralight", seed=0).save_pretrained(model)
    code, printed = run_cli(["fuse", "--model", str(model), "--ir", str(tiny_pair[0]), "--vis", str(tiny_pair[1]),
                             "-o", str(tmp_path / "fused.png"), "--backend", "onnxruntime-int8"], monkeypatch, capsys)
    assert code == 1 and f"{model / INT8_FILE}: int8 ONNX file not found" in printed
    assert not (tmp_path / "fused.png").exists()


@pytest.mark.slow
def test_bench_times_the_int8_recipe_and_dynamic_int8() -> None:
    from fusionproxy import bench

    results = bench.benchmark(_perturbed(), "tiny", sizes=[(48, 64)], backends=["onnxruntime-int8", "onnxruntime-dynamic"],
                              runs=2, warmup=0, threads=1)
    assert [r.backend for r in results] == ["onnxruntime-int8", "onnxruntime-dynamic"]
    for r in results:
        assert r.error is None, r.error
        assert 15.0 < r.psnr_db < float("inf")  # int8: close to fp32 but not the same maths


@pytest.mark.slow
def test_the_shipped_int8_graph_belongs_to_the_shipped_weights() -> None:
    """`model-int8.onnx` must be redone whenever the default weights change: it must still match them."""
    from fusionproxy.api import DEFAULT_MODEL_DIR
    from fusionproxy.demo import sample_pairs

    fusion = FusionProxy.from_pretrained("default")
    int8 = DEFAULT_MODEL_DIR / INT8_FILE
    assert is_int8(int8) and json.loads(int8.with_suffix(".json").read_text())["parity"]["psnr_min"] >= 35.0
    _, ir_path, vis_path = sample_pairs()[-1]  # tno_19: the person the default model must keep
    ir, vis = read_ir(ir_path), read_vis(vis_path)
    fp32 = fusion.fuse(ir, vis)
    quantised = fusion.fuse(ir, vis, backend="onnxruntime-int8", onnx_path=int8)
    psnr = 10 * np.log10(1.0 / float(np.mean((quantised - fp32) ** 2)))
    assert psnr > 35.0
