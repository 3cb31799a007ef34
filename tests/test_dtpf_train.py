"""DTPF end to end at tiny widths: data, teacher training, distillation, loading the student, the CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from fusionproxy.api import FusionProxy
from fusionproxy.cli import app
from fusionproxy.dtpf.data import DTPFPairDataset, training_pairs
from fusionproxy.dtpf.teacher import DTPFTeacher
from fusionproxy.dtpf.train import DTPFRecipe, distill, train_teacher
from fusionproxy.errors import FusionProxyError

TINY = dict(width=8, blocks=[1, 1, 1, 1], channel_heads=[1, 1, 1, 1], spatial_heads=[1, 1, 1, 1], refinement_blocks=1)
TRAIN = dict(max_steps=2, batch_size=2, checkpoint_every=1, log_every=1, seed=0)


@pytest.fixture
def dataset_dir(tmp_path):
    """Four synthetic pairs, 70 x 90 (not multiples of the stride), one of them dark."""
    rng = np.random.default_rng(0)
    for name in ("ir", "vi"):
        (tmp_path / "data" / name).mkdir(parents=True)
    for i in range(4):
        vis = rng.uniform(0.3, 0.7, (70, 90, 3)) * (0.15 if i == 0 else 1.0)
        ir = rng.uniform(0.0, 1.0, (70, 90))
        Image.fromarray((vis * 255).astype(np.uint8)).save(tmp_path / "data" / "vi" / f"{i:02d}.png")
        Image.fromarray((ir * 255).astype(np.uint8)).save(tmp_path / "data" / "ir" / f"{i:02d}.png")
    return tmp_path / "data"


def test_dataset_crops_are_deterministic_per_seed_epoch_index(dataset_dir) -> None:
    dataset = DTPFPairDataset(training_pairs(dataset_dir), ["normal"] * 4, crop=64, seed=3)
    first = dataset[1]
    assert first["ir"].shape == (1, 64, 64) and first["vis"].shape == (3, 64, 64)
    torch.testing.assert_close(dataset[1]["vis"], first["vis"])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[1]["vis"], first["vis"])
    big = DTPFPairDataset(training_pairs(dataset_dir), ["normal"] * 4, crop=128, seed=3)[0]
    assert big["vis"].shape == (3, 128, 128)  # padded up to the crop


@pytest.mark.slow
def test_teacher_then_student_end_to_end(dataset_dir, tmp_path, synthetic_pair) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("01,over-exposure\n")
    recipe = DTPFRecipe(train=TRAIN, crop=64, model=TINY)
    teacher = train_teacher(dataset_dir, tmp_path / "teacher", recipe, labels)
    with (tmp_path / "teacher" / "events.csv").open() as handle:
        events = {row["stem"]: (row["event"], row["source"]) for row in csv.DictReader(handle)}
    assert events["00"] == ("low_light", "estimated") and events["01"] == ("over_exposure", "labels")
    assert (tmp_path / "teacher" / "checkpoints").is_dir()
    loaded = DTPFTeacher.from_pretrained(tmp_path / "teacher")
    torch.testing.assert_close(loaded.event_embeddings, teacher.event_embeddings)
    assert loaded.event_embeddings.abs().sum() > 0  # the sentence embeddings travel with the teacher

    model = distill(tmp_path / "teacher", dataset_dir, tmp_path / "student", DTPFRecipe(train=TRAIN, crop=64, model=TINY))
    rows = list(csv.DictReader((tmp_path / "student" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2] and {"base", "feat", "res"} <= set(rows[0])
    fusion = FusionProxy.from_pretrained(tmp_path / "student")
    assert fusion.student_name == "dtpf_student"
    ir, vis = synthetic_pair
    with torch.no_grad():
        torch.testing.assert_close(fusion(ir, vis), model(ir, vis))
        assert fusion(ir, vis).shape == vis.shape


def test_recipe_validation(tmp_path) -> None:
    assert DTPFRecipe.load("cpu", "teacher").crop % 64 == 0
    assert DTPFRecipe.load("gpu", "distill", ["train.max_steps=7"]).train["max_steps"] == 7
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {max_steps: 1, batch_size: 1}\ncrop: 100\n")
    with pytest.raises(FusionProxyError, match="multiple of 64"):
        DTPFRecipe.load(str(bad), "teacher")
    with pytest.raises(FusionProxyError, match="no such dtpf config"):
        DTPFRecipe.load("tpu", "teacher")


def test_cli_reports_bad_input_on_one_line(tmp_path) -> None:
    from fusionproxy.cli import main  # noqa: F401  (the entry point that turns errors into one line)

    result = CliRunner().invoke(app, ["dtpf", "label", "--data", str(tmp_path), "--out", str(tmp_path / "e.csv")])
    assert result.exit_code != 0
    assert isinstance(result.exception, FusionProxyError)
    assert str(tmp_path) in str(result.exception) and "\n" not in str(result.exception)
