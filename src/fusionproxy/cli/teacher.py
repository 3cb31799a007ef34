"""`fusionproxy teacher ...`: train the diffusion teachers, wrap an external prior, sample fusions."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import FusionProxyError

teacher_app = typer.Typer(
    help="Diffusion fusion teachers (paper Sec. 3.2): train, wrap a prior, sample.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(teacher_app, name="teacher")


@teacher_app.command("train")
def train_command(
    kind: str = typer.Argument(..., help="masked (masked-diffusion teacher) or prior (DDFM's diffusion prior)."),
    images: Path = typer.Option(..., "--images", help="Folder of natural RGB training images."),
    out: Path = typer.Option(..., "--out", "-o", help="Output teacher directory; rerunning the command resumes."),
    config: str = typer.Option("cpu", "--config", "-c", help="Bundled config (cpu, gpu) or a YAML file."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config value, e.g. --set train.max_steps=100."),
    val_pairs: Optional[Path] = typer.Option(
        None, "--val-pairs", help="IR/VIS pairs for the validation grid (default: roadscene/train beside --images)."
    ),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0: torch's default; 1 on a busy CPU)."),
) -> None:
    """Train a teacher on natural images; OUT then loads with `fusionproxy.teachers.load_teacher`."""
    from ..teachers.training import train_teacher_from_folders

    teacher = train_teacher_from_folders(kind, images, out, config, overrides, val_pairs, threads)
    typer.echo(f"trained {teacher.name} teacher {teacher.identity()}: {out}")


@teacher_app.command("snapshot")
def snapshot_command(
    kind: str = typer.Argument(..., help="masked or prior: what the run trains."),
    run: Path = typer.Argument(..., help="A `teacher train` output directory with checkpoints."),
    out: Path = typer.Option(..., "--out", "-o", help="New teacher directory."),
    step: Optional[int] = typer.Option(None, "--step", help="Checkpoint step (default: the latest)."),
    settings: list[str] = typer.Option(
        [], "--set", help="A sampling setting of the saved teacher, e.g. --set steps=10 or --set stretch=true."
    ),
) -> None:
    """Save a training checkpoint as a teacher directory (e.g. quality against training length)."""
    from ..teachers.training import set_sampling, teacher_from_checkpoint

    if (out / "config.json").exists():
        raise FusionProxyError(f"{out / 'config.json'}: already exists; choose a new --out")
    teacher = teacher_from_checkpoint(kind, run, step)
    set_sampling(teacher, settings)
    teacher.save_pretrained(out)
    typer.echo(f"wrote {teacher.name} teacher {teacher.identity()}: {out}")


@teacher_app.command("from-prior")
def from_prior_command(
    prior: Path = typer.Option(..., "--prior", help="A diffusers UNet2DModel directory (1- or 3-channel)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output DDFM teacher directory."),
    config: str = typer.Option("ddfm", "--config", "-c", help="Sampling settings: bundled 'ddfm' or a YAML file."),
    steps: Optional[int] = typer.Option(None, "--steps", help="DDIM steps (overrides the config)."),
) -> None:
    """Wrap a pretrained unconditional diffusion UNet as a DDFM teacher."""
    from ..teachers.ddfm import DDFMTeacher
    from ..teachers.training import load_ddfm_settings

    if (out / "config.json").exists():
        raise FusionProxyError(f"{out / 'config.json'}: already exists; choose a new --out")
    settings = load_ddfm_settings(config)
    if steps is not None:
        settings["steps"] = steps
    teacher = DDFMTeacher.from_prior(prior, **settings)
    teacher.save_pretrained(out)
    typer.echo(f"wrote DDFM teacher {teacher.identity()}: {out}")


@teacher_app.command("sample")
def sample_command(
    teacher_dir: Path = typer.Option(..., "--teacher", "-t", help="Teacher directory (config.json + weights)."),
    ir: Path = typer.Option(..., "--ir", help="Infrared image."),
    vis: Path = typer.Option(..., "--vis", help="Visible image (same size)."),
    num_samples: int = typer.Option(4, "--num-samples", "-n", min=1, help="Samples to draw."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: <stem>_sample<k>.png and <stem>_mean.png."),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0: torch's default; 1 on a busy CPU)."),
) -> None:
    """Fuse one pair with a teacher: writes each sample and the ensemble mean (paper Eq. 4)."""
    import time

    import torch

    from ..devices import set_cpu_threads
    from ..io import ir_to_tensor, read_ir, read_vis, tensor_to_image, vis_to_tensor, write_image
    from ..teachers import load_teacher

    set_cpu_threads(threads)
    teacher = load_teacher(teacher_dir)
    ir_image, vis_image = read_ir(ir), read_vis(vis)
    if ir_image.shape != vis_image.shape[:2]:
        raise FusionProxyError(f"{vis}: size {vis_image.shape[1]}x{vis_image.shape[0]} differs from {ir} "
                               f"({ir_image.shape[1]}x{ir_image.shape[0]})")
    start = time.perf_counter()
    with torch.no_grad():
        samples = teacher.sample(ir_to_tensor(ir_image), vis_to_tensor(vis_image), num_samples, seed, progress=True)
    seconds = time.perf_counter() - start
    for k, sample in enumerate(samples):
        write_image(out / f"{ir.stem}_sample{k}.png", tensor_to_image(sample))
    write_image(out / f"{ir.stem}_mean.png", tensor_to_image(samples.mean(0)))
    typer.echo(f"{num_samples} samples of {teacher.identity()} in {seconds:.2f} s: {out}")
