"""`fusionproxy bench` and its library: sane timings, GFLOPs, PSNR, failing backends reported, JSON output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fusionproxy import bench
from fusionproxy.cli import app
from fusionproxy.errors import FusionProxyError
from fusionproxy.students import create_student


def _ultralight() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_student("ultralight", widths=(8, 16), depths=(1, 1), decoder_depths=(1,))


def test_parse_sizes_and_backends() -> None:
    assert bench.parse_sizes("480x640,768X1024") == [(480, 640), (768, 1024)]
    for bad in ("480", "480x", "0x10", "axb"):
        with pytest.raises(FusionProxyError, match="--sizes"):
            bench.parse_sizes(bad)
    assert bench.parse_backends("eager, onnxruntime") == ["eager", "onnxruntime"]
    with pytest.raises(FusionProxyError, match="tensorrt"):
        bench.parse_backends("eager,tensorrt")


def test_gflops_scale_with_area() -> None:
    model = _ultralight().eval()
    small, large = bench.count_gflops(model, 32, 32), bench.count_gflops(model, 64, 64)
    assert small > 0
    assert large == pytest.approx(4 * small, rel=0.05)


@pytest.mark.slow
def test_benchmark_reports_sane_timings_and_quality() -> None:
    model = _ultralight()
    results = bench.benchmark(model, "tiny", sizes=[(24, 40)], backends=["eager", "channels_last", "onnxruntime"],
                              runs=3, warmup=1, threads=1)
    assert [r.backend for r in results] == ["eager", "channels_last", "onnxruntime"]
    for r in results:
        assert r.error is None, r.error
        assert (r.height, r.width, r.threads, r.runs) == (24, 40, 1, 3)
        assert r.parameters == sum(p.numel() for p in model.parameters())
        assert r.gflops > 0
        assert 0 < r.min_ms <= r.median_ms <= r.p90_ms
        assert r.cpu_ms > 0
        assert r.fps == pytest.approx(1000 / r.median_ms)
    assert math.isinf(results[0].psnr_db)  # eager is the reference
    assert results[1].psnr_db > 80 and results[2].psnr_db > 60  # same maths, another kernel order
    # channels_last must not leak into later runs.
    assert next(model.parameters()).is_contiguous()


def test_a_failing_backend_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken)
    results = bench.benchmark(_ultralight(), "tiny", sizes=[(16, 16)], backends=["compile", "eager"], runs=2,
                              warmup=0, threads=1)
    assert results[0].error == "RuntimeError: no C++ compiler" and results[0].median_ms is None
    assert results[1].error is None and results[1].median_ms > 0


def test_real_pair_input(tiny_pair: tuple[Path, Path]) -> None:
    ir, vis = bench.bench_inputs(30, 44, tiny_pair)
    assert ir.shape == (1, 1, 30, 44) and vis.shape == (1, 3, 30, 44)
    assert 0 <= float(vis.min()) and float(vis.max()) <= 1 and float(vis.std()) > 0.01
    synthetic = bench.bench_inputs(30, 44)
    assert torch.equal(synthetic[1], bench.bench_inputs(30, 44)[1])  # seeded


@pytest.mark.slow
def test_cli_compare_writes_json(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    from fusionproxy.api import FusionProxy

    model_dir = FusionProxy.from_student("ultralight", widths=(8, 16), depths=(1, 1),
                                         decoder_depths=(1,)).save_pretrained(tmp_path / "model")
    out = tmp_path / "bench.json"
    ir, vis = tiny_pair
    result = CliRunner().invoke(app, [
        "bench", str(model_dir), "--compare", "ultralight", "--sizes", "32x48", "--runs", "2", "--warmup", "1",
        "--threads", "1", "--backends", "eager,onnxruntime", "--ir", str(ir), "--vis", str(vis), "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "ultralight" in result.output and "onnxruntime" in result.output
    record = json.loads(out.read_text())
    assert record["environment"]["torch"] == torch.__version__
    assert record["input"] == [str(ir), str(vis)]
    rows = record["results"]
    assert [(r["model"], r["backend"]) for r in rows] == [
        (str(model_dir), "eager"), (str(model_dir), "onnxruntime"), ("ultralight", "eager"),
        ("ultralight", "onnxruntime"),
    ]
    assert rows[0]["psnr_db"] == "inf" and (rows[1]["psnr_db"] == "inf" or rows[1]["psnr_db"] > 60)
    assert rows[2]["parameters"] > rows[0]["parameters"]  # the default ultralight is wider than the saved one
    assert all(r["error"] is None and r["median_ms"] > 0 for r in rows)


def test_the_latency_table_takes_the_device_flag() -> None:
    args = ["bench", "ultralight", "--sizes", "16x16", "--runs", "1", "--warmup", "0", "--threads", "1",
            "--backends", "eager"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "ultralight" in result.output and "eager" in result.output
    if not torch.cuda.is_available():  # an absent device is an error, never a silent CPU run
        result = CliRunner().invoke(app, [*args, "--device", "cuda"])
        assert result.exit_code != 0 and "CUDA is not available here" in str(result.exception or result.output)


@pytest.mark.slow
def test_cli_teacher_sample_time_and_speedup(tmp_path: Path) -> None:
    from fusionproxy.teachers import create_teacher

    teacher_dir = tmp_path / "teacher"
    torch.manual_seed(0)
    create_teacher("masked", unet={"block_out_channels": [8, 16], "norm_num_groups": 4, "patch_size": 2},
                   steps=3).save_pretrained(teacher_dir)
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, [
        "bench", "ultralight", "--sizes", "32x48", "--runs", "2", "--warmup", "1", "--threads", "1",
        "--backends", "eager", "--teacher", str(teacher_dir), "--teacher-runs", "2", "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    teacher_row = record["results"][-1]
    assert (teacher_row["model"], teacher_row["backend"]) == ("teacher:teacher", "sample")
    assert teacher_row["median_ms"] > 0 and teacher_row["parameters"] > 0
    [speedup] = record["speedups"]
    student_ms = record["results"][0]["median_ms"]
    assert speedup["student"] == "ultralight eager"
    assert speedup["speedup"] == pytest.approx(teacher_row["median_ms"] / student_ms)
    assert "speed-up at 32x48" in result.output
    bundled = CliRunner().invoke(app, ["bench", "default", "--sizes", "32x48", "--runs", "1", "--warmup", "0",
                                       "--threads", "1", "--backends", "eager"])
    assert bundled.exit_code == 0 and "default" in bundled.output
    bad = CliRunner().invoke(app, ["bench", "ultralight", "--teacher", str(tmp_path)])
    assert isinstance(bad.exception, FusionProxyError) and "not a trained teacher directory" in str(bad.exception)


@pytest.mark.parametrize(
    "args, message",
    [(["bench", "no_such_student"], "no_such_student: neither a model directory nor a student"),
     (["bench"], "--compare"),
     (["bench", "ultralight", "--sizes", "480by640"], "--sizes"),
     (["bench", "ultralight", "--ir", "missing.png"], "--ir and --vis")],
)
def test_cli_bad_input(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, FusionProxyError)
    assert message in str(result.exception)
