"""Hand-made fused frames that locate the frozen detector's clean-frame loss (issue 13, docs/results/default-model.md).

Writes one folder of PNGs per probe, to be scored as `folder:` methods by `fusionproxy evaluate`:

- `swap FUSED_DIR`: from a model's fused frames (e.g. `fusionproxy fuse` or an evaluate run's
  `fused/<name>/<dataset>/aligned/`), `fused-luma` (the fused Y with the visible Cr/Cb) and `vis-luma` (the
  visible Y with the fused Cr/Cb), in YCrCb; plus `grey-vis` (the visible frame's luma as a grey frame).
- `inject ALPHA [ALPHA ...]`: the visible frame with `alpha * max(0, t - G20 * t)` of the IR luma `t` added to its
  luma (the background of TTC's definition, sigma 20 px), chroma kept: hot targets brightened, nothing else
  changed.

Usage:
    python docs/probes/luma_probes.py DATASET OUT swap FUSED_DIR
    python docs/probes/luma_probes.py DATASET OUT inject 1 2
then `fusionproxy evaluate -d DATASET -m NAME=folder:OUT/NAME ... --detector-levels none --detector ...`.
"""
import sys
from pathlib import Path

import cv2
import numpy as np

from fusionproxy.io import find_dataset_pairs, read_ir, read_vis, write_image
from fusionproxy.metrics.thermal import BACKGROUND_SIGMA


def ycrcb(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2YCrCb)


def rgb(ycc: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(ycc.astype(np.float32), cv2.COLOR_YCrCb2RGB), 0.0, 1.0)


def main(dataset: str, out: str, mode: str, *args: str) -> None:
    for stem, ir_path, vis_path in find_dataset_pairs(dataset).pairs:
        vis = read_vis(vis_path)
        vis_ycc = ycrcb(vis)
        if mode == "swap":
            fused_ycc = ycrcb(read_vis(next(Path(args[0]).glob(f"{stem}.*"))))
            frames = {"fused-luma": np.dstack([fused_ycc[..., :1], vis_ycc[..., 1:]]),
                      "vis-luma": np.dstack([vis_ycc[..., :1], fused_ycc[..., 1:]])}
            frames = {name: rgb(ycc) for name, ycc in frames.items()}
            frames["grey-vis"] = np.repeat(vis_ycc[..., :1], 3, axis=2)
        elif mode == "inject":
            t = read_ir(ir_path).astype(np.float32)
            hot = np.maximum(0.0, t - cv2.GaussianBlur(t, (0, 0), BACKGROUND_SIGMA))
            frames = {}
            for alpha in args:
                ycc = vis_ycc.copy()
                ycc[..., 0] = ycc[..., 0] + float(alpha) * hot
                frames[f"inject-{alpha}"] = rgb(ycc)
        else:
            raise SystemExit(f"unknown probe {mode!r}: swap or inject")
        for name, frame in frames.items():
            write_image(Path(out) / name / f"{stem}.png", frame)


if __name__ == "__main__":
    main(*sys.argv[1:])
