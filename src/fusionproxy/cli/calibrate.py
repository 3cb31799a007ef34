"""`fusionproxy calibrate`: estimate the IR -> VIS registration of a camera pair for `fuse --ir-homography`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ..errors import FusionProxyError


def _pairs(ir: Path, vis: Path, limit: int) -> list[tuple[Path, Path]]:
    from ..io import find_pairs

    if ir.is_dir() and vis.is_dir():
        listing = find_pairs(ir, vis)
        if not listing.pairs:
            raise FusionProxyError(f"{ir} / {vis}: no IR/VIS files with matching stems")
        return [(i, v) for _, i, v in listing.pairs[:limit]]
    if ir.is_dir() or vis.is_dir():
        raise FusionProxyError(f"{ir} / {vis}: give two image files or two folders, not a mix")
    return [(ir, vis)]


def register(app: typer.Typer) -> None:
    @app.command()
    def calibrate(
        ir: Path = typer.Option(..., "--ir", help="IR frame, or folder of IR frames (matched to --vis by stem)."),
        vis: Path = typer.Option(..., "--vis", help="VIS frame of the same moment, or folder of them."),
        output: Path = typer.Option(..., "-o", "--output", help="Registration file to write (text matrix)."),
        motion: str = typer.Option("affine", help="translation, euclidean, affine or homography."),
        pairs: int = typer.Option(8, "--pairs", min=1, help="At most this many pairs from folders."),
        levels: int = typer.Option(4, min=1, max=8, help="Pyramid levels (coarse to fine)."),
        min_correlation: float = typer.Option(
            0.15, help="Refuse below this edge-map correlation (unrelated frames give about 0.05)."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
    ) -> None:
        """Estimate the warp of IR onto the VIS grid by maximising the correlation of edge maps (ECC).

        Writes a 2x3 (affine and simpler) or 3x3 (homography) matrix mapping IR pixels to VIS pixels, for
        `fusionproxy fuse --ir-homography FILE`; prints the residual and refuses when it does not converge.
        """
        import cv2

        from ..io import read_ir, read_vis
        from ..registration import estimate, save_homography

        if output.exists() and not force:
            raise FusionProxyError(f"{output}: exists; pass --force to overwrite it")
        files = _pairs(ir, vis, pairs)
        frames = [(read_ir(i), cv2.cvtColor(read_vis(v), cv2.COLOR_RGB2GRAY)) for i, v in files]
        sizes = {(a.shape, b.shape) for a, b in frames}
        if len(sizes) > 1:
            raise FusionProxyError(f"{ir} / {vis}: all IR frames (and all VIS frames) must have one size")
        result = estimate(frames, motion, levels=levels, min_correlation=min_correlation,  # type: ignore[arg-type]
                          what=f"{ir} / {vis}")
        comment = (f"motion {motion}; {len(files)} pair(s); residual {result.residual:.4f}; "
                   f"pair spread {result.spread_px:.2f} px")
        save_homography(output, result.matrix, comment)
        console = Console(stderr=True, soft_wrap=True)
        console.print(
            f"calibrate: {len(files)} pair(s), {motion}; edge-map correlation "
            f"{min(result.correlations):.3f}-{max(result.correlations):.3f}; residual (1 - mean correlation) "
            f"{result.residual:.3f}; spread between pairs {result.spread_px:.2f} px -> {output}",
            highlight=False,
        )
