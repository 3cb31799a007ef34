"""Each teacher's sample diversity and quality against its sampling steps (issue 14, "Measure first").

For every pair of DATASET (or its first `--limit`), draw N samples from the teacher at each number of DDIM
steps (seeded per image from the seed and the stem) and report, over the pairs:
- `std`: the per-pixel standard deviation over the samples (three channels), averaged over the frame, then over
  the pairs. Eq. 7 and Eq. 8 weight the student's loss by this spread: a teacher whose samples agree everywhere
  gives it no uncertainty signal;
- `TTC`, `Qabf`, `VIF`, `SSIM` of the N-sample mean (the distillation target, Eq. 3), cddfuse convention on
  8-bit images, as `fusionproxy evaluate` scores a `teacher:DIR:N` row (TTC over the frames with targets).
`--set NAME=VALUE` (repeatable) sets a sampling setting of every teacher that has it, e.g. `eta` (masked
teacher; the DDFM teacher's DDIM update is deterministic), `lam` (the TV weight) and `rho`
(the proximal penalty) of the DDFM teacher's EM step (`teachers/ddfm_em.py`), `stretch=true` (the DDFM
teacher's min-max normalised output, as DDFM's reference does). `--json OUT` writes the means and the per-image values
(`docs/figures/teacher_curves.py` plots them).

Usage:
    python docs/probes/teacher_sweep.py ../shared/datasets/roadscene/test models/teachers/ddfm-cpu \
        models/teachers/masked-cpu [--samples 4] [--steps 6,10,25] [--set eta=0.5] [--limit K] [--json OUT.json]
"""
import argparse
import json

import numpy as np
import torch

from fusionproxy.evaluate.perturb import stable_seed
from fusionproxy.io import find_dataset_pairs, ir_to_tensor, read_ir, read_vis, vis_to_tensor
from fusionproxy.metrics import compute_metrics
from fusionproxy.metrics.thermal import thermal_target_contrast
from fusionproxy.teachers import load_teacher
from fusionproxy.teachers.training import set_sampling

COLUMNS = ("std", "TTC", "Qabf", "VIF", "SSIM")


def uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def score(teacher, pairs: list, samples: int, seed: int) -> dict[str, dict[str, float]]:
    """{stem: {column: value}} for the teacher as configured."""
    rows = {}
    for stem, ir_path, vis_path in pairs:
        ir, vis = read_ir(ir_path), read_vis(vis_path)
        with torch.no_grad():
            drawn = teacher.sample(ir_to_tensor(ir), vis_to_tensor(vis), samples, stable_seed(seed, stem))
        mean = drawn.mean(dim=0).permute(1, 2, 0).cpu().numpy()
        metrics = compute_metrics(uint8(mean), uint8(ir), uint8(vis), "cddfuse")
        rows[stem] = {"std": float(drawn.std(dim=0).mean()) if samples > 1 else float("nan"),
                      "TTC": thermal_target_contrast(uint8(mean), uint8(ir)),
                      **{name: float(metrics[name]) for name in ("Qabf", "VIF", "SSIM")}}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("teachers", nargs="+")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--steps", default="", help="comma-separated DDIM step counts (default: each teacher's own)")
    parser.add_argument("--limit", type=int, default=None, help="only the first K pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a sampling setting for every teacher that has it (eta, lam, rho, stretch)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    pairs = find_dataset_pairs(args.dataset).pairs[: args.limit]
    record = {}
    print(f"{args.dataset}: {len(pairs)} pairs, {args.samples} samples per teacher")
    print(f"{'teacher':40s} {'steps':>5s} " + " ".join(f"{c:>7s}" for c in COLUMNS))
    for directory in args.teachers:
        teacher = load_teacher(directory)
        own = [item for item in args.set if hasattr(teacher, item.partition("=")[0])]
        set_sampling(teacher, own)
        applied = {name: getattr(teacher, name) for name in (item.partition("=")[0] for item in own)}
        label = " ".join([directory.rstrip("/").split("/")[-1], *(f"{k}={v:g}" for k, v in applied.items())])
        for steps in [int(s) for s in args.steps.split(",") if s] or [teacher.steps]:
            teacher.steps = steps
            rows = score(teacher, pairs, args.samples, args.seed)
            means = {c: float(np.nanmean([row[c] for row in rows.values()])) for c in COLUMNS}
            print(f"{label:40s} {steps:5d} " + " ".join(f"{means[c]:7.4f}" for c in COLUMNS), flush=True)
            record[f"{label}@{steps}"] = {"teacher": directory, "steps": steps, "settings": applied,
                                          "dataset": args.dataset, "pairs": len(pairs), "samples": args.samples,
                                          "means": means, "images": rows}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)


if __name__ == "__main__":
    main()
