"""Runs started before a config change must still resume: the settings record a run keeps in its
train_config.json (`run.distill`, compared on every resume) must come out the same from the same command.

RECORDED is the record of a CPU distillation started with
    fusionproxy distill --config cpu --set student.uncertainty_head=true --set student.uncertainty_hidden=16
        --set train.max_steps=1000 --set misalignment.probability=0.5 --set misalignment.ramp_epochs=5
        --set degradation.probability=0.5 --set loss.lambda_fidelity=0.1 --set loss.lambda_thermal=1.0
        --set loss.lambda_fidelity=0.5 ...
before the shared config loader replaced the hand-written ones, and before `loss.thermal_mode` existed: the
Trainer fills a setting an older record lacks from `DistillConfig.record_defaults()`.
"""

from __future__ import annotations

import json

from fusionproxy.distill import load_config
from fusionproxy.distill.config import DistillConfig
from fusionproxy.training import with_defaults

OVERRIDES = ["student.uncertainty_head=true", "student.uncertainty_hidden=16", "train.max_steps=1000",
             "misalignment.probability=0.5", "misalignment.ramp_epochs=5", "degradation.probability=0.5",
             "loss.lambda_fidelity=0.1", "loss.lambda_thermal=1.0", "loss.lambda_fidelity=0.5"]  # fmt: skip
RECORDED = {'train': {'max_steps': 1000,
           'batch_size': 4,
           'lr': 0.0005,
           'weight_decay': 0.0001,
           'warmup_steps': 20,
           'grad_clip': 1.0,
           'checkpoint_every': 50,
           'log_every': 5,
           'seed': 0,
           'mixed_precision': 'no',
           'num_workers': 0},
 'loss': {'lambda_pix': 1.0,
          'lambda_mfm': 0.02,
          'lambda_ssim': 0.2,
          'eps': 0.001,
          'pixel_weighting': 'uncertainty',
          'routing': 'adaptive',
          'tau': 1.0,
          'backbones': None,
          'mfm_channel_reduction': 'mean',
          'lambda_fidelity': 0.5,
          'fidelity': {'intensity': 1.0, 'gradient': 1.0, 'ssim_vis': 1.0, 'ssim_ir': 1.0, 'color': 1.0},
          'lambda_thermal': 1.0,
          'thermal_sigma': 10.0,
          'thermal_threshold': 0.1,
          'lambda_uncertainty': 0.1,
          'uncertainty_loss': 'l1_log_var'},
 'student': {'uncertainty_head': True, 'uncertainty_hidden': 16},
 'epochs': None,
 'misalignment': {'max_translation': 10.0, 'max_rotation': 2.0, 'probability': 0.5, 'ramp_epochs': 5},
 'degradation': {'probability': 0.5,
                 'kinds': ['night', 'fog', 'fog+night'],
                 'gain_min': 0.03,
                 'gain_max': 0.5,
                 'noise_max': 0.03,
                 'transmission_min': 0.08,
                 'transmission_max': 0.6},
 'val_items': 4}


def test_the_same_command_builds_the_recorded_distill_settings() -> None:
    built = json.loads(json.dumps(load_config("cpu", OVERRIDES).to_dict()))  # as the Trainer compares them
    assert built != RECORDED and "thermal_mode" not in RECORDED["loss"]
    assert with_defaults(RECORDED, DistillConfig.record_defaults()) == built


def test_a_setting_changed_from_its_default_still_refuses_the_old_record() -> None:
    built = json.loads(json.dumps(load_config("cpu", [*OVERRIDES, "loss.thermal_mode=at_least"]).to_dict()))
    assert with_defaults(RECORDED, DistillConfig.record_defaults()) != built
