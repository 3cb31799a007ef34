"""The shared model-directory format: new saves write the header, and every older directory still loads.

Older directories: the shipped default model, the committed teachers under models/teachers/, and directories
in each of the three formats that preceded the header (student, teacher and DTPF teacher).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file, save_model

from fusionproxy import FusionProxy
from fusionproxy.dtpf.teacher import DTPFTeacher, DTPFTeacherConfig
from fusionproxy.errors import FusionProxyError
from fusionproxy.model_dir import CONFIG_FILE, HEADER, WEIGHTS_FILE
from fusionproxy.teachers import create_teacher, load_teacher

TEACHERS = Path(__file__).resolve().parents[1] / "models" / "teachers"
TINY_UNET = {"block_out_channels": [8, 16], "norm_num_groups": 4}
TINY_DTPF = dict(width=8, blocks=[1, 1, 1, 1], channel_heads=[1, 1, 1, 1], spatial_heads=[1, 1, 1, 1],
                 refinement_blocks=1, text_dim=16)  # fmt: skip


def _record(directory: Path) -> dict:
    return json.loads((directory / CONFIG_FILE).read_text())


def test_the_shipped_default_model_loads() -> None:
    fusion = FusionProxy.from_pretrained("default")
    ir, vis = torch.rand(1, 1, 32, 40), torch.rand(1, 3, 32, 40)
    assert fusion(ir, vis).shape == vis.shape and not fusion.random_init


@pytest.mark.parametrize("name", ["masked-cpu", "ddfm-cpu"])
def test_the_committed_teachers_load_with_their_identity(name: str, tmp_path: Path) -> None:
    teacher = load_teacher(TEACHERS / name)
    assert HEADER not in _record(TEACHERS / name)  # written before the header existed
    teacher.save_pretrained(tmp_path / name)
    assert _record(tmp_path / name)[HEADER] == f"teacher:{teacher.name}"
    assert load_teacher(tmp_path / name).identity() == teacher.identity()  # the identity caches record


def test_a_student_directory_without_the_header_loads(tmp_path: Path) -> None:
    fusion = FusionProxy.from_student("ultralight", seed=1)
    directory = fusion.save_pretrained(tmp_path / "new")
    record = _record(directory)
    assert record[HEADER] == "student:ultralight" and record["format_version"] == 1
    old = {key: value for key, value in record.items() if key != HEADER}  # the format before the header
    (directory / CONFIG_FILE).write_text(json.dumps(old))
    ir, vis = torch.rand(1, 1, 16, 16), torch.rand(1, 3, 16, 16)
    assert torch.equal(FusionProxy.from_pretrained(directory)(ir, vis), fusion(ir, vis))


def test_a_teacher_directory_in_the_old_format_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    teacher = create_teacher("masked", unet=TINY_UNET, steps=2)
    old = tmp_path / "old"
    old.mkdir()
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, str(old / WEIGHTS_FILE))
    (old / CONFIG_FILE).write_text(json.dumps({"teacher": "masked", "config": teacher.config_dict()}))
    assert load_teacher(old).identity() == teacher.identity()


@pytest.mark.slow
def test_a_dtpf_teacher_directory_in_the_old_format_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    teacher = DTPFTeacher(DTPFTeacherConfig(**TINY_DTPF))
    old = tmp_path / "old"
    old.mkdir()
    save_model(teacher, str(old / WEIGHTS_FILE))
    (old / CONFIG_FILE).write_text(json.dumps(
        {"model": "dtpf_teacher", "config": teacher.config.to_dict(), "format_version": 1}))  # fmt: skip
    loaded = DTPFTeacher.from_pretrained(old)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), teacher.state_dict().values()))
    new = loaded.save_pretrained(tmp_path / "new")
    assert _record(new)[HEADER] == "dtpf:dtpf_teacher"
    DTPFTeacher.from_pretrained(new)


def test_a_directory_of_another_registry_is_refused_naming_the_file(tmp_path: Path) -> None:
    FusionProxy.from_student("ultralight").save_pretrained(tmp_path / "student")
    with pytest.raises(FusionProxyError, match=r"config\.json: a student model directory, not a teacher one"):
        load_teacher(tmp_path / "student")
    with pytest.raises(FusionProxyError, match=r"config\.json: a student model directory, not a dtpf one"):
        DTPFTeacher.from_pretrained(tmp_path / "student")
