"""Teacher quality curves from `docs/probes/teacher_sweep.py --json` records: sample std, TTC, Qabf, VIF and
SSIM against DDIM steps (`--x steps`) or against training length (`--x train-step`: teachers saved with
`fusionproxy teacher snapshot` into folders named `.../step-NNNNNNN`, one curve per run folder).

Usage: python docs/figures/teacher_curves.py --x steps OUT.png SWEEP.json [SWEEP.json ...]
"""
import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS = ("std", "TTC", "Qabf", "VIF", "SSIM")


def curve_points(records: list[dict], x: str) -> dict[str, list[tuple[int, dict]]]:
    """{curve label: [(x, means), ...]} sorted by x; settings other than the steps make their own curves."""
    curves = defaultdict(dict)
    for record in records:
        for entry in record.values():
            folder = Path(entry["teacher"].rstrip("/"))
            settings = " ".join(f"{k}={v:g}" for k, v in entry.get("settings", {}).items())
            if x == "steps":
                label, value = " ".join(filter(None, [folder.name, settings])), entry["steps"]
            else:
                match = re.fullmatch(r"step-(\d+)", folder.name)
                if not match:
                    raise SystemExit(f"{folder}: --x train-step needs teacher folders named step-NNNNNNN")
                label, value = " ".join(filter(None, [folder.parent.name, settings])), int(match.group(1))
            curves[f"{label} ({Path(entry['dataset']).name}, {entry['pairs']} pairs)"][value] = entry["means"]
    return {label: sorted(points.items()) for label, points in curves.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--x", choices=("steps", "train-step"), default="steps")
    parser.add_argument("out")
    parser.add_argument("records", nargs="+")
    args = parser.parse_args()
    curves = curve_points([json.loads(Path(path).read_text()) for path in args.records], args.x)
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4 * len(COLUMNS), 3.6))
    for ax, column in zip(axes, COLUMNS):
        for label, points in curves.items():
            ax.plot([p[0] for p in points], [p[1][column] for p in points], marker="o", label=label)
        ax.set_title(column if column != "std" else "sample std (Eq. 5)")
        ax.set_xlabel("DDIM steps" if args.x == "steps" else "training step")
        if args.x == "steps":
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)


if __name__ == "__main__":
    main()
