"""`fusionproxy cache build | info | verify | finalize`: the teacher-ensemble cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    """(i, n) from "i/n"; None (no --shard): the launcher's RANK / WORLD_SIZE."""
    from ..errors import FusionProxyError

    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise FusionProxyError(f"--shard {text}: expected i/n, e.g. 0/4") from None
    if not 0 <= index < count:
        raise FusionProxyError(f"--shard {text}: need 0 <= i < n")
    return index, count


def register(app: typer.Typer) -> None:
    cache = typer.Typer(help="Teacher-ensemble cache (paper Sec. 3.2): build, inspect, verify.", no_args_is_help=True)
    app.add_typer(cache, name="cache")

    @cache.command("build")
    def build(
        data: Path = typer.Option(..., "--data", help="Training set folder with ir/ and vi/ sub-folders."),
        teachers: list[Path] = typer.Option(..., "--teacher", help="Teacher directory (repeat for several)."),
        out: Path = typer.Option(..., "-o", "--out", help="Cache directory (created, or resumed)."),
        panel: str = typer.Option("default", "--panel", help="Comma-separated backbones; 'default' or 'paper'."),
        weights: list[str] = typer.Option([], "--weights", help="NAME=DIR weights directory of one backbone."),
        random_init: bool = typer.Option(False, "--random-init", help="TESTS ONLY: random panel (recorded)."),
        samples: int = typer.Option(4, "--samples-per-teacher", help="N of Eq. 3."),
        crop_size: int = typer.Option(256, "--crop-size"),
        crops_per_image: int = typer.Option(1, "--crops-per-image"),
        grid: int = typer.Option(64, "--grid", help="Common feature grid (64 x 64 in the paper)."),
        seed: int = typer.Option(0, "--seed"),
        keep_samples: bool = typer.Option(False, "--keep-samples", help="Also store every teacher sample."),
        shard: Optional[str] = typer.Option(None, "--shard", help="i/n: build items with index % n == i "
                                            "(default: RANK/WORLD_SIZE of torchrun or accelerate launch)."),
        device: str = typer.Option("auto", "--device"),
    ) -> None:
        """Sample every teacher on every training item, run the panel, store the statistics; resumable."""
        from ..cache import CacheConfig, build_cache_from_folders
        from ..errors import FusionProxyError

        console = Console(stderr=True, soft_wrap=True)
        shard_spec = _parse_shard(shard)
        directories = {}
        for entry in weights:
            name, _, directory = entry.partition("=")
            if not directory:
                raise FusionProxyError(f"--weights {entry}: expected NAME=DIR")
            directories[name] = Path(directory)
        config = CacheConfig(samples, crop_size, crops_per_image, grid, seed, keep_samples)
        manifest = build_cache_from_folders(
            data, teachers, out, panel, directories, random_init, config, shard_spec, device,
            log=lambda line: console.print(line, highlight=False, markup=False),
        )
        state = "finalised" if "statistics" in manifest else "waiting for other shards"
        console.print(f"cache {out}: {len(manifest['items'])} items, {state}", highlight=False)

    @cache.command("info")
    def info(cache_dir: Path = typer.Argument(..., help="Cache directory."),
             as_json: bool = typer.Option(False, "--json")) -> None:  # fmt: skip
        """Counts, disk size, identities and training-set statistics."""
        from ..cache import cache_info

        summary = cache_info(cache_dir)
        console = Console(soft_wrap=True)
        if as_json:
            console.print_json(json.dumps(summary))
            return
        console.print(f"{cache_dir}: {summary['complete']}/{summary['items']} items complete, "
                      f"{summary['bytes'] / 2**20:.1f} MiB", highlight=False)  # fmt: skip
        console.print(f"config: {summary['config']}", highlight=False)
        console.print(f"teachers: {', '.join(summary['teachers'])}", highlight=False)
        random = " [bold red](RANDOM-INIT panel: tests only)[/]" if summary["panel_is_random"] else ""
        console.print(f"panel: {', '.join(summary['panel'])}{random}", highlight=False)
        for name, stats in summary["statistics"].items():
            console.print(f"  {name}: C={stats['channels']} sigma min/median/max {stats['sigma_min']:.4g}/"
                          f"{stats['sigma_median']:.4g}/{stats['sigma_max']:.4g}, "
                          f"mean v̄ (Eq. 8) {stats['mean_var']:.4g}", highlight=False)  # fmt: skip

    @cache.command("verify")
    def verify(cache_dir: Path = typer.Argument(..., help="Cache directory.")) -> None:
        """Re-read every item; list missing and corrupt ones (exit 1 if any)."""
        from ..cache import verify_cache

        report = verify_cache(cache_dir)
        console = Console(soft_wrap=True)
        for kind in ("missing", "corrupt"):
            console.print(f"{kind}: {len(report[kind])} {report[kind][:50]}", highlight=False)
        if report["missing"] or report["corrupt"]:
            raise typer.Exit(1)

    @cache.command("finalize")
    def finalize(cache_dir: Path = typer.Argument(..., help="Cache directory.")) -> None:
        """Aggregate sigma_k and the Eq. 8 denominator once every shard is done (also happens automatically)."""
        from ..cache import finalize_cache

        manifest = finalize_cache(cache_dir)
        Console(soft_wrap=True).print(f"{cache_dir}: statistics for {', '.join(manifest['statistics'])}", highlight=False)
