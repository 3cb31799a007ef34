"""16-bit IR gain for video (temporal AGC, fixed range), `--device`/`--half` on a CPU-only machine, the flicker
metric, and `bench --video`."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from cli_runner import run_cli
from test_fuse_cli import RANDOM_INIT, _write_video

from fusionproxy import FusionProxy
from fusionproxy.agc import FixedRange, TemporalAgc
from fusionproxy.cli import main
from fusionproxy.devices import resolve_device
from fusionproxy.errors import FusionProxyError
from fusionproxy.io import PercentileStretch
from fusionproxy.metrics.flicker import flicker, motion_compensated_difference, pan_zoom_sequence


def _thermal_frames(count: int = 12) -> list[np.ndarray]:
    """Background at 20000-21000 counts; from frame 4 on a hot object (30000 counts) fills a tenth of it."""
    background = np.linspace(20000, 21000, 40 * 50).reshape(40, 50).astype(np.uint16)
    frames = []
    for index in range(count):
        frame = background.copy()
        if index >= 4:
            frame[:, :5] = 30000
        frames.append(frame)
    return frames


def test_temporal_agc_stops_the_brightness_pumping_of_the_per_frame_stretch():
    frames = _thermal_frames()
    per_frame = [PercentileStretch()(f)[:, 25:].mean() for f in frames]
    agc = TemporalAgc(ema=0.95)
    smoothed = [agc(f)[:, 25:].mean() for f in frames]
    jump = abs(per_frame[4] - per_frame[3])
    assert jump > 0.3  # the per-frame stretch darkens the background at once
    assert max(abs(a - b) for a, b in zip(smoothed[1:], smoothed[:-1])) < 0.4 * jump
    fixed = FixedRange(19000, 31000)
    assert fixed(frames[3])[:, 25:].mean() == pytest.approx(fixed(frames[4])[:, 25:].mean())
    with pytest.raises(FusionProxyError, match="--agc-ema"):
        TemporalAgc(ema=1.0)


@pytest.mark.slow
def test_agc_and_fixed_range_in_a_16bit_sequence(tmp_path, monkeypatch, capsys):
    (tmp_path / "ir").mkdir(), (tmp_path / "vis").mkdir()
    for n, frame in enumerate(_thermal_frames(6)):
        Image.fromarray(frame).save(tmp_path / "ir" / f"{n:03d}.png")
        Image.fromarray(np.full((40, 50, 3), 100, np.uint8)).save(tmp_path / "vis" / f"{n:03d}.png")
    base = ["fuse", *RANDOM_INIT, "--sequence", "--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vis")]
    for extra in (["--agc-ema", "0.9"], ["--ir-range", "19000,31000"]):
        code, err = run_cli([*base, "-o", str(tmp_path / f"{extra[0][2:]}.avi"), *extra], monkeypatch, capsys)
        assert code == 0 and "6 ok, 0 failed" in err, err
    code, err = run_cli([*base, "-o", str(tmp_path / "x.avi"), "--ir-range", "1,2", "--agc-ema", "0.5"],
                        monkeypatch, capsys)
    assert code == 1 and "does not combine" in err
    code, err = run_cli([*base, "-o", str(tmp_path / "x.avi"), "--ir-range", "5,5"], monkeypatch, capsys)
    assert code == 1 and "need LOW < HIGH" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the messages of a machine without CUDA")
def test_absent_devices_are_one_line_errors(tmp_path, monkeypatch, capsys):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "mps")
    with pytest.raises(FusionProxyError, match="--device cuda: CUDA is not available here"):
        resolve_device("cuda")
    with pytest.raises(FusionProxyError, match="unknown device"):
        resolve_device("tpu")
    with pytest.raises(FusionProxyError, match="--half runs fp16 on CUDA only"):
        FusionProxy.from_student("ultralight").to_device("cpu", half=True)
    fusion = FusionProxy.from_pretrained("default", device="auto")
    assert fusion.device.type in ("cpu", "mps")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "ir.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "vis.png")
    commands = [
        ["fuse", *RANDOM_INIT, "--ir", str(tmp_path / "ir.png"), "--vis", str(tmp_path / "vis.png"), "-o",
         str(tmp_path / "o.png"), "--device", "cuda"],
        ["fuse", *RANDOM_INIT, "--ir", str(tmp_path / "ir.png"), "--vis", str(tmp_path / "vis.png"), "-o",
         str(tmp_path / "o.png"), "--half"],
        ["bench", "ultralight", "--device", "cuda"],
        ["evaluate", "-d", str(tmp_path), "-o", str(tmp_path / "eval"), "--device", "cuda"],
    ]
    for args in commands:
        code, err = run_cli(args, monkeypatch, capsys)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 1 and len(errors) == 1 and ("--device cuda" in errors[0] or "--half" in errors[0]), err
    assert not (tmp_path / "o.png").exists()


def test_flicker_is_one_for_the_visible_stream_and_high_for_noisy_fusion(tiny_pair):
    from fusionproxy.io import read_ir, read_vis

    ir, vis = read_ir(tiny_pair[0]), read_vis(tiny_pair[1])
    sequence = pan_zoom_sequence(ir, vis, frames=5, seed=3)
    again = pan_zoom_sequence(ir, vis, frames=5, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(sequence.vis, again.vis))
    compensated = motion_compensated_difference(sequence.vis, sequence.motions)
    identity = [np.eye(3)] * len(sequence.vis)
    assert compensated < 0.5 * motion_compensated_difference(sequence.vis, identity)
    assert flicker(lambda i, v: v, [(ir, vis)], frames=5).ratio == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noisy = flicker(lambda i, v: np.clip(v + rng.normal(0, 0.05, v.shape), 0, 1), [(ir, vis)], frames=5)
    assert noisy.ratio > 2.0


def test_bench_video_prints_end_to_end_and_model_fps(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(1)
    frames = [(rng.random((48, 64)) * 255).astype(np.uint8) for _ in range(6)]
    _write_video(tmp_path / "ir.avi", frames, fps=10.0)
    _write_video(tmp_path / "vis.avi", frames, fps=10.0)
    monkeypatch.setattr(sys, "argv", ["fusionproxy", "bench", "ultralight", "--video", str(tmp_path / "ir.avi"),
                                      str(tmp_path / "vis.avi"), "--threads", "1"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = " ".join(capsys.readouterr().out.split())
    assert not exit_info.value.code
    match = re.search(r"6 frames 48x64, 1 thread\(s\): end-to-end ([\d.]+) FPS .* model alone ([\d.]+) FPS", out)
    assert match and float(match.group(1)) > 0 and float(match.group(2)) > 0, out
