"""`fusionproxy distill`: misalignment injection (Eq. 14), configs, and Trainer runs on a fake cache."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import fusionproxy.students.ultralight  # noqa: F401  (registers the tiny test student's architecture)
from fusionproxy.distill import DistillConfig, DistillDataset, item_keys, load_config
from fusionproxy.errors import FusionProxyError
from fusionproxy.misalignment import MisalignmentSchedule
from fusionproxy.visibility import DegradationRange

sys.path.insert(0, str(Path(__file__).parent))
from test_losses import ToyBackbone  # noqa: E402

SIZE = 32
TINY_STUDENT = {"widths": [4, 8], "depths": [1, 1], "decoder_depths": [1], "stem_stride": 2}


def fake_cache(num_items: int = 6) -> tuple[list[dict[str, torch.Tensor]], dict]:
    """Items with the keys and shapes of `fusionproxy.cache.CacheDataset`, plus a 2-backbone toy panel."""
    generator = torch.Generator().manual_seed(7)
    panel = {"a": ToyBackbone("a", 4, 0), "b": ToyBackbone("b", 6, 1)}
    items = []
    for _ in range(num_items):
        vis = torch.rand(3, SIZE, SIZE, generator=generator)
        item = {
            "ir": torch.rand(1, SIZE, SIZE, generator=generator),
            "vis": vis,
            "mean": (0.7 * vis + 0.3 * torch.rand(3, SIZE, SIZE, generator=generator)).half(),
            "var": torch.rand(SIZE, SIZE, generator=generator) * 0.01,
        }
        for name, backbone in panel.items():
            item[f"feat_mean/{name}"] = torch.randn(backbone.out_channels, 64, 64, generator=generator).half()
            item[f"feat_var/{name}"] = torch.rand(64, 64, generator=generator)
        items.append(item)
    statistics = {
        "panel": panel,
        "sigma": {"a": torch.full((4,), 1.5), "b": torch.linspace(0.5, 1.5, 6)},
        "mean_var": {"a": 0.5, "b": 0.5},
    }
    return items, statistics


def tiny_config(**train) -> DistillConfig:
    values = {"max_steps": 6, "batch_size": 2, "lr": 1e-3, "checkpoint_every": 2, "log_every": 1, **train}
    return DistillConfig.from_dict({"train": values, "student": TINY_STUDENT, "val_items": 2})


def run_fake(out_dir: str | Path, config: DistillConfig | None = None) -> torch.nn.Module:
    from fusionproxy.distill import distill

    items, statistics = fake_cache()
    return distill(out_dir, "ultralight", config or tiny_config(), items, statistics["panel"],
                   statistics["sigma"], statistics["mean_var"])


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """One uninterrupted single-process run, shared by the smoke, resume and 2-process tests."""
    out_dir = tmp_path_factory.mktemp("reference")
    return out_dir, run_fake(out_dir)


def test_misalignment_moves_only_the_student_input() -> None:
    items, _ = fake_cache(3)
    keys = item_keys(["a", "b"])
    dataset = DistillDataset(items, [0, 1, 2], keys, MisalignmentSchedule(10.0, 2.0), seed=0)
    item = dataset[1]
    for key in keys:  # targets and the aligned IR are exactly as cached
        assert torch.equal(item[key], items[1][key].float())
    assert not torch.allclose(item["ir_input"], item["ir"])
    assert torch.equal(dataset[1]["ir_input"], item["ir_input"])  # same (seed, epoch, index): same draw
    dataset.set_epoch(1)
    assert not torch.equal(dataset[1]["ir_input"], item["ir_input"])
    aligned = DistillDataset(items, [0, 1, 2], keys, MisalignmentSchedule(0.0, 0.0), seed=0)
    assert torch.equal(aligned[1]["ir_input"], aligned[1]["ir"])
    assert "vis_input" not in item  # degradation injection off by default


def test_misalignment_probability_and_ramp() -> None:
    items, _ = fake_cache(8)
    keys = item_keys(["a", "b"])
    half = DistillDataset(items, range(8), keys, MisalignmentSchedule(10.0, 2.0, probability=0.5), seed=0)
    moved = [not torch.equal(half[i]["ir_input"], half[i]["ir"]) for i in range(8)]
    assert 0 < sum(moved) < 8  # some items stay aligned, some are perturbed
    ramp = MisalignmentSchedule(10.0, 2.0, ramp_epochs=4)
    assert ramp.range_at(0).max_translation == 0 and ramp.range_at(2).max_translation == 5.0
    assert ramp.range_at(9).max_rotation == 2.0
    ramped = DistillDataset(items, range(8), keys, ramp, seed=0)
    assert torch.equal(ramped[3]["ir_input"], ramped[3]["ir"])  # epoch 0: no perturbation yet
    ramped.set_epoch(2)
    assert not torch.equal(ramped[3]["ir_input"], ramped[3]["ir"])


def test_degradation_injection_changes_only_the_student_vis() -> None:
    items, _ = fake_cache(4)
    keys = item_keys(["a", "b"])
    dataset = DistillDataset(items, range(4), keys, MisalignmentSchedule(0.0, 0.0), seed=0,
                             degradation=DegradationRange(probability=1.0, kinds=("night",)))
    item = dataset[2]
    for key in keys:  # targets, the aligned IR and the clean VIS stay as cached
        assert torch.equal(item[key], items[2][key].float())
    assert item["vis_input"].shape == item["vis"].shape
    assert float(item["vis_input"].mean()) < float(item["vis"].mean())  # darkened
    assert torch.equal(dataset[2]["vis_input"], item["vis_input"])  # seeded per (seed, epoch, index)


def test_bundled_configs_and_overrides(tmp_path: Path) -> None:
    gpu = load_config("gpu")
    assert gpu.epochs == 160 and gpu.train["batch_size"] == 8
    assert gpu.train_config(171).max_steps == 160 * (171 // 8)
    assert (gpu.loss.lambda_pix, gpu.loss.lambda_mfm, gpu.loss.lambda_ssim, gpu.loss.tau) == (1.0, 0.5, 0.2, 1.0)
    cpu = load_config("cpu", ["loss.tau=inf", "loss.routing=learned", "misalignment.max_rotation=5"])
    assert math.isinf(cpu.loss.tau) and cpu.loss.routing == "learned" and cpu.misalignment.max_rotation == 5
    path = tmp_path / "mine.yaml"
    path.write_text("train: {max_steps: 3, batch_size: 1}\nloss: {pixel_weighting: uniform}\n")
    assert load_config(str(path)).loss.pixel_weighting == "uniform"
    with pytest.raises(FusionProxyError, match="no such distill config"):
        load_config("laptop")
    with pytest.raises(FusionProxyError, match="unknown"):
        load_config(str(path), ["loss.lambda_pixel=1"])
    with pytest.raises(FusionProxyError, match="key=value"):
        load_config(str(path), ["tau"])


@pytest.mark.slow
def test_smoke_run_writes_a_loadable_model_logs_and_validation(reference_run: tuple[Path, torch.nn.Module]) -> None:
    from fusionproxy.api import FusionProxy

    tmp_path, student = reference_run
    with (tmp_path / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert {"loss", "pix", "mfm", "ssim"} <= set(rows[0])
    with (tmp_path / "validation.csv").open() as handle:
        validation = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in validation] == [2, 4, 6]  # 4 training items / batch 2: every 2 steps
    assert all(float(r["psnr_mean"]) > 5 and -1 <= float(r["ssim_mean"]) <= 1 for r in validation)
    assert all(0 <= float(r["Qabf"]) <= 1 and float(r["VIF"]) > 0 for r in validation)
    assert (tmp_path / "validation" / "step-0000006.png").is_file()
    loaded = FusionProxy.from_pretrained(tmp_path)
    assert loaded.metadata["training"]["distill"]["loss"]["tau"] == 1.0
    ir, vis = torch.rand(1, 1, SIZE, SIZE), torch.rand(1, 3, SIZE, SIZE)
    torch.testing.assert_close(loaded(ir, vis), student.eval()(ir, vis))


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted(
    reference_run: tuple[Path, torch.nn.Module], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fusionproxy.distill.run as distill_module

    class CrashingLoss(distill_module.DistillationLoss):
        calls = 0

        def forward(self, model, batch):
            CrashingLoss.calls += 1
            if CrashingLoss.calls == 4:  # dies in step 4; the last checkpoint is step 2
                raise RuntimeError("simulated crash")
            return super().forward(model, batch)

    monkeypatch.setattr(distill_module, "DistillationLoss", CrashingLoss)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_fake(tmp_path / "resumed")
    monkeypatch.undo()
    run_fake(tmp_path / "resumed")
    plain, resumed = (load_file(d / "model.safetensors") for d in (reference_run[0], tmp_path / "resumed"))
    assert plain.keys() == resumed.keys()
    assert all(torch.equal(plain[k], resumed[k]) for k in plain)


@pytest.mark.slow
def test_two_processes_equal_one(reference_run: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    script = tmp_path / "run_fake.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_distill import run_fake\n"
        "run_fake(sys.argv[1])\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(tmp_path / "double")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    single, double = (load_file(d / "model.safetensors") for d in (reference_run[0], tmp_path / "double"))
    for name, value in single.items():
        torch.testing.assert_close(double[name], value, rtol=1e-4, atol=1e-5)


# (0, False): the 1 x 1 read-out of older models; (8, False): conv + GELU first; (8, True): also reads the inputs
@pytest.mark.parametrize(("hidden", "inputs"), [(0, False), (8, False), (8, True)])
def test_uncertainty_head_starts_at_the_mean_log_variance_and_leaves_the_image_alone(
    tmp_path: Path, hidden: int, inputs: bool
) -> None:
    from fusionproxy.distill import mean_log_variance

    items, _ = fake_cache()
    expected = mean_log_variance(items, range(4), 1e-3)  # the 4 training items (2 are held out)
    assert expected == pytest.approx(float(torch.stack([torch.log(i["var"] + 1e-3).mean() for i in items[:4]]).mean()))
    config = DistillConfig.from_dict({"train": {"max_steps": 1, "batch_size": 2, "lr": 1e-12},
                                      "student": {**TINY_STUDENT, "uncertainty_head": True,
                                                  "uncertainty_hidden": hidden, "uncertainty_inputs": inputs},
                                      "val_items": 2})
    student = run_fake(tmp_path, config)
    head = student.log_variance_head
    bias = head.output.bias if inputs else head[-2].bias
    assert bias.detach() == pytest.approx(torch.full(bias.shape, expected), abs=1e-6)
    # the head's loss never reaches the fused image: its gradient stops at the head
    student.zero_grad()
    ir, vis = torch.rand(1, 1, SIZE, SIZE), torch.rand(1, 3, SIZE, SIZE)
    student.train()
    student.forward_with_uncertainty(ir, vis)[1].sum().backward()
    assert all(p.grad is None for name, p in student.named_parameters() if not name.startswith("log_variance_head"))


def test_uncertainty_spearman_ranks_the_predicted_against_the_actual_spread() -> None:
    from fusionproxy.distill import uncertainty_spearman

    variance = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0)).expand(3, -1, -1)
    assert uncertainty_spearman(torch.log(variance[:1] + 1e-3), variance) == pytest.approx(1.0, abs=1e-6)
    assert uncertainty_spearman(-variance[:1], variance) == pytest.approx(-1.0, abs=1e-6)
    noise = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(1))
    assert abs(uncertainty_spearman(noise, variance)) < 0.3


def test_init_from_copies_the_shared_tensors_of_a_trained_model(tmp_path: Path) -> None:
    from fusionproxy.api import FusionProxy
    from fusionproxy.distill.run import initialise_from
    from fusionproxy.errors import FusionProxyError
    from fusionproxy.students import create_student

    torch.manual_seed(1)
    trained = create_student("convnext_unet", widths=(8, 16), depths=(1, 1), decoder_depths=(1,))
    FusionProxy(trained).save_pretrained(tmp_path / "trained")
    # One block fewer in the first stage and another activation: the rest still fits.
    smaller = create_student("convnext_unet", widths=(8, 16), depths=(0, 1), decoder_depths=(1,), activation="silu")
    copied, total = initialise_from(smaller, tmp_path / "trained")
    assert copied == total  # the smaller one has no tensor the trained one lacks
    assert torch.equal(smaller.rgb_head.weight, trained.rgb_head.weight)
    assert torch.equal(smaller.ir_encoder.stages[1][0].expand.weight, trained.ir_encoder.stages[1][0].expand.weight)
    other = create_student("convnext_unet", widths=(32, 64), depths=(1, 1), decoder_depths=(1,), stem_stride=2)
    with pytest.raises(FusionProxyError, match="no tensor of that model fits"):
        initialise_from(other, tmp_path / "trained")
