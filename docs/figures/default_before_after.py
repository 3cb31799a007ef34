"""Before/after figure of the default model on the bundled samples: IR | VIS | old default | new default.

Usage: python docs/figures/default_before_after.py OLD_MODEL_DIR NEW_MODEL_DIR docs/figures/default-before-after.jpg
"""
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from fusionproxy.api import FusionProxy
from fusionproxy.demo import sample_pairs
from fusionproxy.io import read_ir, read_vis
from fusionproxy.metrics.thermal import thermal_target_contrast
old, new, out = FusionProxy.from_pretrained(sys.argv[1]), FusionProxy.from_pretrained(sys.argv[2]), sys.argv[3]
pairs = sample_pairs()
fig, axes = plt.subplots(len(pairs), 4, figsize=(16, 3.4 * len(pairs)))
for row, (stem, ir_path, vis_path) in zip(axes, pairs):
    ir, vis = read_ir(ir_path), read_vis(vis_path)
    panels = [(ir, "IR"), (vis, "VIS")]
    for name, model in (("old default", old), ("new default", new)):
        fused = np.asarray(model.fuse(ir, vis), dtype=np.float32)
        panels.append((fused, f"{name} (TTC {thermal_target_contrast(fused, ir):.2f})"))
    for ax, (image, title) in zip(row, panels):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(f"{stem}: {title}" if title == "IR" else title, fontsize=10)
        ax.axis("off")
fig.tight_layout()
fig.savefig(out, dpi=60, pil_kwargs={"quality": 85})
