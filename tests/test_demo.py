"""`fusionproxy demo` with RANDOM-INIT (untrained) students: the bundled samples are fused, the comparison figure
has one panel per pair and column (IR | VIS | fused [| uncertainty]), and a missing default model is a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_runner import run_cli
from fusionproxy import FusionProxy
from fusionproxy.demo import FIGURE_NAME, SAMPLES_DIR, run_demo, sample_pairs

STEMS = ["roadscene_FLIR_04484", "roadscene_FLIR_06570", "tno_10", "tno_19"]


def test_bundled_samples_are_small_real_pairs() -> None:
    pairs = sample_pairs()
    assert [stem for stem, _, _ in pairs] == STEMS
    assert sum(p.stat().st_size for p in SAMPLES_DIR.rglob("*") if p.is_file()) < 1.5e6
    for _, ir, vis in pairs:
        with Image.open(ir) as a, Image.open(vis) as b:
            assert a.size == b.size and max(a.size) <= 640
    assert "Toet" in (SAMPLES_DIR / "SOURCES.md").read_text()


@pytest.mark.slow
def test_model_with_uncertainty_head_gives_four_columns(tmp_path: Path, monkeypatch, capsys) -> None:
    model_dir = FusionProxy.from_student("ultralight", seed=0, uncertainty_head=True).save_pretrained(tmp_path / "m")
    out = tmp_path / "demo"
    code, err = run_cli(["demo", "--model", str(model_dir), "-o", str(out)], monkeypatch, capsys)
    assert code == 0, err
    assert "(16 panels)" in err  # 4 pairs x IR | VIS | fused | uncertainty
    for stem, _, vis in sample_pairs():
        fused = np.asarray(Image.open(out / f"{stem}.png"))
        with Image.open(vis) as source:
            assert fused.shape == (source.height, source.width, 3)
        assert np.asarray(Image.open(out / f"{stem}_uncertainty.png")).dtype == np.uint16
    with Image.open(out / FIGURE_NAME) as figure:
        assert figure.format == "PNG" and figure.width > 1000


@pytest.mark.slow
def test_random_init_is_labelled_and_has_no_uncertainty_column(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "demo"
    code, err = run_cli(["demo", "--random-init", "ultralight", "-o", str(out)], monkeypatch, capsys)
    assert code == 0, err
    assert "UNTRAINED" in err and "(12 panels)" in err
    assert sorted(p.name for p in out.iterdir()) == sorted([FIGURE_NAME, *(f"{s}.png" for s in STEMS)])


@pytest.mark.slow
def test_run_demo_counts_panels_per_pair(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    for stem, ir, vis in sample_pairs()[:2]:  # two pairs, shrunk: the figure follows the folder
        for source, kind in ((ir, "ir"), (vis, "vi")):
            (samples / kind).mkdir(parents=True, exist_ok=True)
            with Image.open(source) as image:
                image.reduce(4).save(samples / kind / f"{stem}.png")
    fusion = FusionProxy.from_student("ultralight", seed=1, uncertainty_head=True)
    result = run_demo(fusion, tmp_path / "out", samples_dir=samples)
    assert result.panels == 8 and len(result.fused) == len(result.uncertainty) == 2
    assert all(p.is_file() for p in [*result.fused, *result.uncertainty, result.figure])


def test_missing_default_model_names_its_path(tmp_path: Path, monkeypatch, capsys) -> None:
    missing = tmp_path / "assets" / "default_model"
    monkeypatch.setattr("fusionproxy.api.DEFAULT_MODEL_DIR", missing)
    code, err = run_cli(["demo", "-o", str(tmp_path / "demo")], monkeypatch, capsys)
    assert code == 1
    assert str(missing) in err and "--model DIR" in err
    assert not (tmp_path / "demo").exists()
