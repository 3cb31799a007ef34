"""Live fusion on CPU: the stream API (iterables, timestamps, pairing, clean stop) and `fusionproxy fuse` with
stream sources (video files at different rates, numbered-frame folders, a file:// URL as a network stream)."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from cli_runner import run_cli
from test_fuse_cli import RANDOM_INIT, _write_video

from fusionproxy import FusionProxy


@pytest.fixture(scope="module")
def fusion() -> FusionProxy:
    return FusionProxy.from_student("ultralight", seed=1)


def _frames(count: int, seed: int, channels: int | None = None) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((6, 8)).astype(np.float32), (64, 48))
    frames = [np.roll(base, 3 * i, axis=1) for i in range(count)]
    return [np.repeat(f[..., None], channels, 2) if channels else f for f in frames]


def _count_frames(path: Path) -> int:
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        count += 1
    return count


def test_stream_of_user_frames_matches_per_frame_fusion(fusion):
    ir, vis = _frames(5, 0), _frames(5, 1, channels=3)
    before = threading.active_count()
    with fusion.stream(ir, vis, fps=10.0, batch_size=2) as stream:
        results = list(stream)
    assert [t for t, _ in results] == pytest.approx([i / 10 for i in range(5)])
    for (_, rgb), i, v in zip(results, ir, vis):
        assert np.allclose(rgb, fusion.fuse(i, v), atol=1e-5)
    assert stream.report.line() == "5 ok, 0 failed"
    assert threading.active_count() == before


def test_timestamp_pairing_takes_the_nearest_frame_and_counts_the_rest(fusion):
    ir_frames, vis_frames = _frames(12, 2), _frames(6, 3, channels=3)
    ir = [(k / 20, f) for k, f in enumerate(ir_frames) if k != 4]  # IR at 20 fps; frame 4 (t=0.2 s) dropped
    vis = [(k / 10 + 0.004, f) for k, f in enumerate(vis_frames)]  # VIS at 10 fps, 4 ms later
    stream = fusion.stream(ir, vis, max_skew=0.02)
    results = list(stream)
    # VIS at t=0.204 has no IR within 20 ms (IR 0.2 was dropped): not fused, not shifted to IR 0.15 or 0.25.
    assert [round(t, 3) for t, _ in results] == [0.004, 0.104, 0.304, 0.404, 0.504]
    for (_, rgb), k in zip(results, (0, 1, 3, 4, 5)):
        assert np.allclose(rgb, fusion.fuse(ir_frames[2 * k], vis_frames[k]), atol=1e-5)
    report = stream.report
    assert (report.fused, report.unpaired_vis) == (5, 1)
    assert report.unpaired_ir == 6  # odd IR frames are >= 46 ms from any VIS frame
    assert any("1 frames (first at 0.204 s) have no IR frame within 20.0 ms" in m for m in report.messages)


def test_leaving_early_or_ctrl_c_stops_every_thread(fusion):
    def endless(seed):
        frame = _frames(1, seed)[0]
        while True:
            yield frame

    before = threading.active_count()
    stream = fusion.stream(endless(0), endless(1), queue_size=2)
    for index, _ in enumerate(stream):
        if index == 3:
            break
    assert threading.active_count() == before

    stream = fusion.stream(endless(0), endless(1), queue_size=2)
    with pytest.raises(KeyboardInterrupt):
        for index, _ in enumerate(stream):
            if index == 2:
                raise KeyboardInterrupt
    assert threading.active_count() == before


def test_videos_at_different_rates_are_paired_by_time(tmp_path, monkeypatch, capsys):
    _write_video(tmp_path / "ir.avi", [(f * 255).astype(np.uint8) for f in _frames(20, 4)], fps=20.0)
    _write_video(tmp_path / "vis.avi", [(f * 255).astype(np.uint8) for f in _frames(10, 5, 3)], fps=10.0)
    out = tmp_path / "fused.avi"
    code, err = run_cli(["fuse", *RANDOM_INIT, "--ir", str(tmp_path / "ir.avi"), "--vis", str(tmp_path / "vis.avi"),
                         "-o", str(out)], monkeypatch, capsys)
    assert code == 0, err
    assert "10 ok, 0 failed, 0 skipped; 10 IR frames unused (a nearer one was paired)" in err
    assert _count_frames(out) == 10
    # A tolerance below the IR period's half still pairs (the frames coincide); --max-skew is in ms.
    code, err = run_cli(["fuse", *RANDOM_INIT, "--ir", str(tmp_path / "ir.avi"), "--vis", str(tmp_path / "vis.avi"),
                         "-o", str(tmp_path / "frames"), "--frames", "--max-skew", "1"], monkeypatch, capsys)
    assert code == 1 and "10 ok, 10 failed" in err and "have no VIS frame within 1.0 ms" in err
    assert len(list((tmp_path / "frames").glob("*.png"))) == 10


def test_sequence_folders_with_gaps_and_a_damaged_frame(tmp_path, monkeypatch, capsys):
    (tmp_path / "ir").mkdir(), (tmp_path / "vis").mkdir()
    for n, frame in enumerate(_frames(6, 6)):
        if n != 2:  # a dropped IR frame: the numbering has a gap
            Image.fromarray((frame * 255).astype(np.uint8)).save(tmp_path / "ir" / f"ir_{n:04d}.png")
    for n, frame in enumerate(_frames(6, 7, 3)):
        Image.fromarray((frame * 255).astype(np.uint8)).save(tmp_path / "vis" / f"vis_{n:04d}.png")
    data = (tmp_path / "vis" / "vis_0004.png").read_bytes()
    (tmp_path / "vis" / "vis_0004.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.mp4"
    code, err = run_cli(["fuse", *RANDOM_INIT, "--sequence", "--fps", "5", "--ir", str(tmp_path / "ir"),
                         "--vis", str(tmp_path / "vis"), "-o", str(out)], monkeypatch, capsys)
    assert code == 1
    assert "vis_0004.png: unreadable image" in err and "skipped" in err
    assert "1 frames (first at 0.400 s) have no IR frame within 100.0 ms" in err
    assert "4 ok, 3 failed" in err  # VIS 4 damaged, VIS 2 without IR, IR 4 without VIS
    assert _count_frames(out) == 4 and cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)


def test_network_source_reconnects_and_output_stays_playable(tmp_path, monkeypatch, capsys):
    _write_video(tmp_path / "ir.avi", [(f * 255).astype(np.uint8) for f in _frames(4, 8)], fps=10.0)
    _write_video(tmp_path / "vis.avi", [(f * 255).astype(np.uint8) for f in _frames(4, 9, 3)], fps=10.0)
    out = tmp_path / "live.avi"
    # file:// makes OpenCV treat the file as a network stream: arrival-time stamps, end = disconnect.
    code, err = run_cli(["fuse", *RANDOM_INIT, "--ir", f"file://{tmp_path / 'ir.avi'}", "--vis",
                         f"file://{tmp_path / 'vis.avi'}", "-o", str(out), "--reconnect", "1", "--max-skew", "2000"],
                        monkeypatch, capsys)
    assert code == 1
    assert "vis.avi: source stopped after 4 frames; reconnecting (1/1)" in err
    assert "vis.avi: source stopped after 8 frames after 1 reconnect attempt(s)" in err
    assert _count_frames(out) >= 4 and not list(tmp_path.glob(".*partial*"))


def test_bad_stream_set_ups_are_one_line_errors(tmp_path, monkeypatch, capsys):
    _write_video(tmp_path / "ir.avi", [(f * 255).astype(np.uint8) for f in _frames(2, 8)], fps=10.0)
    cases = [
        (["--ir", "57", "--vis", str(tmp_path / "ir.avi"), "-o", str(tmp_path / "o.mp4")], "57: cannot open the camera"),
        (["--ir", str(tmp_path / "ir.avi"), "--vis", str(tmp_path / "ir.avi"), "--show"], "--show: this OpenCV has no GUI"),
        (["--ir", str(tmp_path / "ir.avi"), "--vis", str(tmp_path / "ir.avi")], "give -o"),
        (["--ir", str(tmp_path), "--vis", str(tmp_path), "--sequence", "-o", str(tmp_path / "o.mp4")],
         "no numbered frames"),
    ]
    for args, message in cases:
        code, err = run_cli(["fuse", *RANDOM_INIT, *args], monkeypatch, capsys)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 1 and len(errors) == 1 and message in errors[0], err


def test_resume_redoes_an_interrupted_video_and_skips_a_finished_one(tmp_path, fusion, monkeypatch):
    from fusionproxy.fuse import FuseOptions, run_fuse
    from fusionproxy.sinks import VideoSink

    _write_video(tmp_path / "ir.avi", [(f * 255).astype(np.uint8) for f in _frames(6, 10)], fps=10.0)
    _write_video(tmp_path / "vis.avi", [(f * 255).astype(np.uint8) for f in _frames(6, 11, 3)], fps=10.0)
    out, marker = tmp_path / "fused.avi", tmp_path / ".fused.avi.unfinished"
    write = VideoSink.write

    def interrupt_at_third(self, rgb):
        self.written = getattr(self, "written", 0) + 1
        if self.written == 3:
            raise KeyboardInterrupt  # as Ctrl-C would
        write(self, rgb)

    monkeypatch.setattr(VideoSink, "write", interrupt_at_third)
    summary = run_fuse(fusion, tmp_path / "ir.avi", tmp_path / "vis.avi", out, FuseOptions(resume=True))
    assert "interrupted" in " ".join(summary.notes)
    assert _count_frames(out) == 2 and marker.exists()  # playable, and known to be incomplete

    monkeypatch.setattr(VideoSink, "write", write)
    summary = run_fuse(fusion, tmp_path / "ir.avi", tmp_path / "vis.avi", out, FuseOptions(resume=True))
    assert summary.ok == 6 and summary.skipped == 0 and _count_frames(out) == 6 and not marker.exists()
    summary = run_fuse(fusion, tmp_path / "ir.avi", tmp_path / "vis.avi", out, FuseOptions(resume=True))
    assert summary.skipped == 1 and summary.ok == 0 and _count_frames(out) == 6
