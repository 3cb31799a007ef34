#!/bin/bash
# One row of issue 13's ablation table (docs/results/default-model.md): the default model's distillation
# command with the given overrides, then the two evaluations every row reports.
#   usage: CACHE=DIR OUT=DIR docs/probes/ablation_row.sh NAME [--set section.key=value ...]
#   CACHE: fusionproxy cache build --data ../shared/datasets/roadscene/train --teacher models/teachers/ddfm-cpu
#          --teacher models/teachers/masked-cpu --out CACHE --crop-size 160 --crops-per-image 1 --grid 32
#   writes OUT/NAME/model, OUT/NAME/eval (TTC, Qabf/VIF/SSIM, misalignment), OUT/NAME/det (frozen detector)
set -euo pipefail
NAME=$1; shift
ROW=${OUT:?set OUT}/$NAME
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fusionproxy distill --cache "${CACHE:?set CACHE}" --student convnext_unet --config cpu \
  --set student.uncertainty_head=true --set student.uncertainty_hidden=16 "$@" --out "$ROW/model"
fusionproxy evaluate -d ../shared/datasets/roadscene/test -d ../shared/datasets/tno -m "$NAME=model:$ROW/model" \
  --no-baselines --convention cddfuse --perturb-levels 10/2 --out "$ROW/eval"
fusionproxy evaluate -d ../shared/datasets/roadscene/test -m "$NAME=model:$ROW/model" --no-baselines \
  --convention '' --grid none --detector ../shared/models/yolox_nano_coco.onnx --out "$ROW/det"
