"""End-to-end tests of `evaluate` / `fusionproxy evaluate`: resume, bad inputs, folders, perturbation, real pairs."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from fusionproxy import metrics
from fusionproxy.cli.evaluate import register
from fusionproxy.errors import FusionProxyError
from fusionproxy.evaluate import DEFAULT_LEVELS, evaluate, parse_method
from fusionproxy.evaluate.figures import GAP
from fusionproxy.evaluate.methods import BaselineMethod
from fusionproxy.evaluate.perturb import stable_seed
from fusionproxy.io import find_dataset_pairs, read_ir, read_vis, write_image

pytestmark = pytest.mark.slow  # every test is an evaluate run

HEIGHT, WIDTH = 40, 56


class CountingBaseline(BaselineMethod):
    """The average baseline, counting how often it really runs."""

    def __init__(self, name: str = "counted") -> None:
        super().__init__(name, "baseline:average", baseline="average")
        self.calls = 0

    def fuse(self, ir: np.ndarray, vis: np.ndarray, seed: int) -> np.ndarray:
        self.calls += 1
        return super().fuse(ir, vis, seed)


def _write_pair(root: Path, stem: str, seed: int, size: tuple[int, int] = (HEIGHT, WIDTH)) -> None:
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur(rng.random((*size, 4), dtype=np.float32), (0, 0), 3)
    write_image(root / "ir" / f"{stem}.png", smooth[..., 0] / smooth[..., 0].max())
    write_image(root / "vi" / f"{stem}.png", smooth[..., 1:] / smooth[..., 1:].max())


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "pairs"
    for index, stem in enumerate(["a", "b", "c"]):
        _write_pair(root, stem, index)
    return root


@pytest.fixture
def bad_dataset(dataset: Path) -> Path:
    """Three good pairs plus: an IR without partner, a size mismatch, an unreadable visible file."""
    _write_pair(dataset, "lonely", 5)
    (dataset / "vi" / "lonely.png").unlink()
    _write_pair(dataset, "mismatch", 6)
    _write_pair(dataset, "small", 7, size=(HEIGHT - 8, WIDTH))
    (dataset / "vi" / "small.png").replace(dataset / "vi" / "mismatch.png")
    (dataset / "ir" / "small.png").unlink()
    _write_pair(dataset, "broken", 8)
    (dataset / "vi" / "broken.png").write_bytes(b"not an image at all")
    return dataset


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)  # keep `evaluate` a sub-command even when it is the only one
    register(app)
    return app


def test_scores_every_pair_with_both_conventions(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = evaluate([dataset], [parse_method("baseline:average"), parse_method("baseline:max")], out,
                      progress=False)
    assert result.failures == []
    assert {(r["method"], r["stem"]) for r in result.rows} == {(m, s) for m in ("average", "max") for s in "abc"}
    columns = list(result.rows[0])
    for convention in ("vifb", "cddfuse"):
        for name in metrics.METRIC_NAMES[convention]:
            assert f"{convention}:{name}" in columns
    assert all(np.isfinite(float(r["cddfuse:EN"])) and float(r["seconds"]) > 0 for r in result.rows)
    summary = (out / "summary.md").read_text()
    assert "## pairs, vifb convention" in summary and "## pairs, cddfuse convention" in summary
    assert (out / "chart_vifb.png").is_file() and (out / "chart_cddfuse.png").is_file()
    # three evenly spaced default grids: IR | VIS | average | max
    assert result.grid_panels == {out / "grids" / "pairs" / f"{s}.png": 4 for s in "abc"}
    assert cv2.imread(str(out / "grids" / "pairs" / "b.png")).shape[1] == 4 * WIDTH + 3 * GAP


def test_resume_skips_finished_rows_and_reuses_cached_outputs(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = CountingBaseline()
    evaluate([dataset], [first], out, conventions=["cddfuse"], progress=False, grid=[])
    assert first.calls == 3
    before = _rows(out / "results.csv")

    again = CountingBaseline()
    evaluate([dataset], [again], out, conventions=["cddfuse"], progress=False, grid=[])
    assert again.calls == 0 and _rows(out / "results.csv") == before

    # an interrupted run: one row lost and the last line cut short; its cached output is reused
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    (out / "results.csv").write_text("".join(lines[:2]) + lines[3][:15])
    resumed = CountingBaseline()
    result = evaluate([dataset], [resumed], out, conventions=["cddfuse"], progress=False, grid=[])
    assert resumed.calls == 0
    after = _rows(out / "results.csv")
    assert sorted(r["stem"] for r in after) == ["a", "b", "c"] and after[0] == before[0]
    assert {r["stem"]: r["cddfuse:SSIM"] for r in after} == {r["stem"]: r["cddfuse:SSIM"] for r in before}
    assert len(result.rows) == 3

    # a lost cached output is recomputed only for the row that needs it
    (out / "fused" / "counted" / "pairs" / "aligned" / "b.png").unlink()
    (out / "results.csv").write_text("".join(lines[:2]))
    recomputed = CountingBaseline()
    evaluate([dataset], [recomputed], out, conventions=["cddfuse"], progress=False, grid=[])
    assert recomputed.calls == 1


def test_changed_settings_are_refused_unless_rescored(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    method = CountingBaseline()
    evaluate([dataset], [method], out, conventions=["cddfuse"], progress=False, grid=[])
    with pytest.raises(FusionProxyError, match="stretch"):
        evaluate([dataset], [method], out, conventions=["cddfuse"], stretch=True, progress=False, grid=[])
    with pytest.raises(FusionProxyError, match="'counted' was 'baseline:average'"):
        evaluate([dataset], [parse_method("counted=baseline:max")], out, conventions=["cddfuse"], progress=False)
    result = evaluate([dataset], [method], out, conventions=["cddfuse"], stretch=True, rescore=True,
                      progress=False, grid=[])
    assert method.calls == 3  # re-scored from the cache
    assert (out / "results.previous.csv").is_file() and len(result.rows) == 3
    stretched = {r["stem"]: float(r["cddfuse:SD"]) for r in result.rows}
    plain = {r["stem"]: float(r["cddfuse:SD"]) for r in _rows(out / "results.previous.csv")}
    assert all(stretched[s] > plain[s] for s in "abc")  # the min-max stretch widens the histogram


def test_bad_inputs_are_named_and_the_rest_is_scored(bad_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = evaluate([bad_dataset], [parse_method("baseline:max")], out, conventions=["cddfuse"],
                      progress=False)
    assert sorted(r["stem"] for r in result.rows) == ["a", "b", "c"]
    assert len(result.failures) == 3
    text = "\n".join(result.failures)
    assert "lonely.png: no visible partner" in text
    assert "mismatch.png: size 56x40 differs from its partner" in text
    assert "broken.png: unreadable image" in text
    assert "# Inputs that could not be scored" in (out / "summary.md").read_text()

    cli = CliRunner().invoke(_cli(), ["evaluate", "-d", str(bad_dataset), "--out", str(tmp_path / "cli"),
                                      "--no-baselines", "-m", "baseline:average", "--convention", "cddfuse",
                                      "--grid", "none"])
    assert cli.exit_code == 1
    assert "3 input(s) could not be scored" in cli.output and "broken.png: unreadable image" in cli.output
    assert len(_rows(tmp_path / "cli" / "results.csv")) == 3


def test_folder_of_fused_images_matched_by_stem(dataset: Path, tmp_path: Path) -> None:
    fused = tmp_path / "other-method"
    fused.mkdir()
    for stem in ("a", "c"):
        shutil.copy(dataset / "vi" / f"{stem}.png", fused / f"{stem}.png")
    result = evaluate([dataset], [parse_method(str(fused))], tmp_path / "out", conventions=["cddfuse"],
                      progress=False, grid=["b", "c"])
    assert sorted(r["stem"] for r in result.rows) == ["a", "c"]
    assert all(r["seconds"] == "" for r in result.rows)
    assert result.failures == [f"{fused}: no fused image for pairs/b (method 'other-method')"]
    assert list(result.grid_panels.values()) == [2, 3]  # b has no output: IR | VIS only
    assert "n/a (precomputed)" in (tmp_path / "out" / "summary.md").read_text()
    with pytest.raises(FusionProxyError, match="zzz are in none of the datasets"):
        evaluate([dataset], [parse_method(str(fused))], tmp_path / "out2", progress=False, grid=["zzz"])


def test_perturbation_study(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = evaluate([dataset], [parse_method("baseline:laplacian")], out, conventions=["cddfuse"],
                      perturbations=DEFAULT_LEVELS, progress=False, grid=[])
    assert len(result.rows) == 3 * len(DEFAULT_LEVELS)
    ssim = {level.label: np.mean([float(r["ssim_vs_aligned"]) for r in result.rows
                                  if r["perturbation"] == level.label]) for level in DEFAULT_LEVELS}
    assert ssim["aligned"] == pytest.approx(1.0, abs=1e-5)
    assert ssim["aligned"] > ssim["+-10px/+-2deg"] > ssim["+-30px/+-10deg"]
    assert (out / "misalignment.png").is_file()
    assert "# Misalignment sensitivity" in (out / "summary.md").read_text()
    assert len(list((out / "fused" / "laplacian" / "pairs").iterdir())) == len(DEFAULT_LEVELS)


@pytest.mark.data
def test_cli_on_real_roadscene_pairs(datasets_dir: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "roadscene-sample"
    chosen = find_dataset_pairs(datasets_dir / "roadscene" / "test").pairs[:2]
    for stem, ir_path, vis_path in chosen:
        for folder, path in (("ir", ir_path), ("vi", vis_path)):
            (pairs / folder).mkdir(parents=True, exist_ok=True)
            (pairs / folder / path.name).symlink_to(path)
    out = tmp_path / "out"
    cli = CliRunner().invoke(_cli(), ["evaluate", "-d", f"rs={pairs}", "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    rows = _rows(out / "results.csv")
    assert sorted({r["method"] for r in rows}) == ["average", "laplacian", "max"] and len(rows) == 6
    assert all(np.isfinite(float(v)) for r in rows for k, v in r.items() if ":" in k)
    summary = (out / "summary.md").read_text()
    for heading in ("## rs, vifb convention", "## rs, cddfuse convention"):
        assert heading in summary
    for stem, ir_path, _ in chosen:  # IR | VIS | three baselines, tiles at full resolution
        width = read_ir(ir_path).shape[1]
        assert cv2.imread(str(out / "grids" / "rs" / f"{stem}.png")).shape[1] == 5 * width + 4 * GAP


def test_student_directory_and_teacher_ensemble(dataset: Path, tmp_path: Path) -> None:
    import torch

    from fusionproxy.api import FusionProxy
    from fusionproxy.students import create_student
    from fusionproxy.teachers import create_teacher

    torch.manual_seed(0)
    FusionProxy(create_student("ultralight")).save_pretrained(tmp_path / "student")
    create_teacher("masked", unet={"block_out_channels": [8, 16], "norm_num_groups": 4, "patch_size": 2},
                   steps=2).save_pretrained(tmp_path / "teacher")
    methods = [parse_method(f"student={tmp_path / 'student'}"), parse_method(f"teacher:{tmp_path / 'teacher'}:2")]
    result = evaluate([dataset], methods, tmp_path / "out", conventions=["cddfuse"], progress=False, grid=["a"])
    assert {(r["method"], r["stem"]) for r in result.rows} == {(m, s) for m in ("student", "teacher-x2")
                                                               for s in "abc"}
    assert all(float(r["seconds"]) > 0 for r in result.rows)
    assert list(result.grid_panels.values()) == [4]
    # teacher sampling is seeded per image (run seed, dataset, stem), whatever the order of the run
    cached = cv2.imread(str(tmp_path / "out" / "fused" / "teacher-x2" / "pairs" / "aligned" / "b.png"))
    again = methods[1].fuse(read_ir(dataset / "ir" / "b.png"), read_vis(dataset / "vi" / "b.png"),
                            stable_seed(0, "pairs", "b"))
    np.testing.assert_array_equal(cv2.cvtColor(cached, cv2.COLOR_BGR2RGB), np.round(again * 255).astype(np.uint8))


def test_no_reference_scores(dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fusionproxy.errors import MissingWeightsError
    from fusionproxy.metrics import no_reference

    def brightness(image: np.ndarray) -> float:
        if image.mean() < 100:
            raise FusionProxyError("brightness: image too dark to score")
        return float(image.mean())

    def needs_weights(image: np.ndarray) -> float:
        raise MissingWeightsError("/nowhere/musiq.safetensors: missing weights")

    for name, fn in (("brightness", brightness), ("musiq-test", needs_weights)):
        monkeypatch.setitem(no_reference._METRICS, name, no_reference.NoReferenceMetric(name, fn, True))
    for stem in "abc":
        write_image(tmp_path / "dark" / f"{stem}.png", np.full((HEIGHT, WIDTH, 3), 0.1, np.float32))
    methods = [parse_method("baseline:max"), parse_method("dark=folder:" + str(tmp_path / "dark"))]
    result = evaluate([dataset], methods, tmp_path / "out", conventions=["cddfuse"], no_reference=["brightness"],
                      progress=False, grid=[])
    scores = {(r["method"], r["stem"]): r["noref:brightness"] for r in result.rows}
    assert all(float(scores[("max", s)]) >= 100 for s in "abc") and scores[("dark", "a")] == ""
    assert len(result.failures) == 3 and "image too dark to score" in result.failures[0]
    assert "## pairs, no-reference scores" in (tmp_path / "out" / "summary.md").read_text()
    with pytest.raises(MissingWeightsError, match="musiq.safetensors"):
        evaluate([dataset], methods, tmp_path / "out2", conventions=["cddfuse"], no_reference=["musiq-test"],
                 progress=False, grid=[])
    with pytest.raises(FusionProxyError, match="unknown no-reference metric 'musiq'"):
        evaluate([dataset], methods, tmp_path / "out3", no_reference=["musiq"], progress=False)


def test_a_method_failing_on_one_input_does_not_stop_the_others(dataset: Path, tmp_path: Path) -> None:
    class FailsSometimes(CountingBaseline):
        """Calls in order: a aligned, a perturbed (fails), b aligned (fails: b perturbed is skipped), c, c."""

        def fuse(self, ir: np.ndarray, vis: np.ndarray, seed: int) -> np.ndarray:
            if self.calls in (1, 2):
                self.calls += 1
                raise FusionProxyError("input too small for this network")
            return super().fuse(ir, vis, seed)

    (tmp_path / "other").mkdir()
    shutil.copy(dataset / "vi" / "a.png", tmp_path / "other" / "a.png")
    (tmp_path / "other" / "b.png").write_bytes(b"\x89PNG truncated")
    methods = [FailsSometimes("picky"), parse_method(f"other=folder:{tmp_path / 'other'}")]
    result = evaluate([dataset], methods, tmp_path / "out", conventions=["cddfuse"],
                      perturbations=DEFAULT_LEVELS[:2], progress=False, grid=["b"])
    done = sorted((r["method"], r["stem"], r["perturbation"]) for r in result.rows)
    assert done == [("other", "a", "aligned"), ("picky", "a", "aligned"),
                    ("picky", "c", "+-10px/+-2deg"), ("picky", "c", "aligned")]
    assert result.failures[:2] == [f"pairs/{s}: input too small for this network" for s in
                                   ("a (picky, +-10px/+-2deg)", "b (picky, aligned)")]
    assert "b.png: unreadable image" in result.failures[2]
    assert "no fused image for pairs/c" in result.failures[3] and len(result.failures) == 4
    assert list(result.grid_panels.values()) == [2]  # neither method has an output for b


def test_mean_of_methods_averages_their_outputs(dataset: Path, tmp_path: Path) -> None:
    methods = [parse_method("baseline:average"), parse_method("baseline:max"),
               parse_method("both=mean:average+max")]
    result = evaluate([dataset], methods, tmp_path / "out", conventions=["cddfuse"], progress=False, grid=[])
    assert {r["method"] for r in result.rows} == {"average", "max", "both"} and len(result.rows) == 9
    fused = tmp_path / "out" / "fused"
    for stem in "abc":
        parts = [cv2.imread(str(fused / m / "pairs" / "aligned" / f"{stem}.png")).astype(np.float32)
                 for m in ("average", "max")]
        mean = cv2.imread(str(fused / "both" / "pairs" / "aligned" / f"{stem}.png")).astype(np.float32)
        assert np.abs(mean - (parts[0] + parts[1]) / 2).max() <= 0.5 + 1e-6
        assert np.abs(mean - parts[0]).max() > 1  # a real mix, not a copy of one part
    with pytest.raises(FusionProxyError, match="nope must name other computed methods"):
        evaluate([dataset], [methods[0], parse_method("mean:average+nope")], tmp_path / "out2", progress=False)
    with pytest.raises(FusionProxyError, match="needs at least two"):
        parse_method("mean:average")
