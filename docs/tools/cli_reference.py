"""Generate docs/reference/cli.md from the Typer app: every command, its usage and its flags as `--help` prints them.

Usage (repository root, project venv): python docs/tools/cli_reference.py docs/reference/cli.md
"""

import datetime
import pathlib
import subprocess
import sys

import typer
from fusionproxy.cli import app

GUIDE = {
    "fuse": ("fuse-and-export.md#fusionproxy-fuse", "live-fusion.md#streams-with-fusionproxy-fuse"),
    "calibrate": ("live-fusion.md#two-cameras-fusionproxy-calibrate-and---ir-homography",),
    "export": ("fuse-and-export.md#fusionproxy-export",),
    "demo": ("pipeline-and-ablations.md#fusionproxy-demo",),
    "bench": ("students-and-bench.md#fusionproxy-bench", "live-fusion.md#throughput-and-flicker-fusionproxy-bench---video----flicker"),
    "teacher": ("teachers.md#commands",),
    "weights": ("cache-and-panel.md#fetching-the-default-panel-fusionproxy-weights-fetch",),
    "cache": ("cache-and-panel.md#the-cache-fusionproxy-cache-build--info--verify--finalize",),
    "distill": ("distill.md#command-line",),
    "distill-head": ("distill.md#fitting-the-uncertainty-head-afterwards-fusionproxy-distill-head",),
    "evaluate": ("evaluate-and-metrics.md#evaluation-fusionproxy-evaluate",),
    "dtpf": ("dtpf.md#usage",),
    "pipeline": ("pipeline-and-ablations.md#fusionproxy-pipeline",),
    "ablate": ("pipeline-and-ablations.md#fusionproxy-ablate-table-4-blocks-a-b-c-and-table-7-one-command-each",),
}
ORDER = ["fuse", "calibrate", "export", "demo", "bench", "teacher", "weights", "cache", "distill", "distill-head",
         "evaluate", "dtpf", "pipeline", "ablate"]


def esc(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def command_section(path, cmd, level):
    ctx = cmd.context_class(cmd, info_name=path[-1])
    lines = [f"{'#' * level} `{' '.join(path)}`", ""]
    if cmd.help:
        lines += [esc(cmd.help.split("\n\n")[0]), ""]
    try:
        pieces = cmd.collect_usage_pieces(ctx)
    except Exception:  # noqa: BLE001 - usage is a nicety
        pieces = ["[OPTIONS]"]
    lines += ["```", " ".join(path + list(pieces)), "```", ""]
    rows = []
    for p in cmd.params:
        record = p.get_help_record(ctx) if p.param_type_name == "option" else None
        if p.param_type_name == "argument":
            rows.append((f"`{p.name.upper()}`", esc(getattr(p, "help", "") or "")))
        elif record:
            rows.append((f"`{esc(record[0])}`", esc(record[1])))
    if rows:
        lines += ["| argument / option | meaning (with the default, as `--help` prints it) |", "| --- | --- |"]
        lines += [f"| {a} | {b} |" for a, b in rows]
        lines.append("")
    return lines


def main(out):
    root = typer.main.get_command(app)
    version = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; print(m.version('fusionproxy'))"],
                             capture_output=True, text=True).stdout.strip()
    lines = [
        "# Command-line reference",
        "",
        "Every `fusionproxy` command and its flags, as the CLI defines them (`fusionproxy --help`, "
        "`fusionproxy CMD --help`); `python -m fusionproxy ...` is the same as `fusionproxy ...`. Each command "
        "links to the guide that explains it with examples. Bad inputs give a one-line error naming the file and "
        "a non-zero exit code.",
        "",
        f"Generated from the CLI of fusionproxy {version} on {datetime.date.today().isoformat()} by "
        "[`docs/tools/cli_reference.py`](../tools/cli_reference.py) (run it from the repository root in the "
        "project's venv: `python docs/tools/cli_reference.py docs/reference/cli.md`); when a flag changes, "
        "`fusionproxy CMD --help` is the authority.",
        "",
        "| command | what it does | guide |",
        "| --- | --- | --- |",
    ]
    sections = []
    for name in ORDER:
        cmd = root.commands[name]
        guides = ", ".join(f"[{g.split('#')[0].removesuffix('.md')}](../guides/{g})" for g in GUIDE[name])
        anchor_text = f"fusionproxy {name}"
        anchor = anchor_text.replace(" ", "-")
        lines.append(f"| [`fusionproxy {name}`](#{anchor}) | {esc((cmd.help or '').split(chr(10) + chr(10))[0])} | {guides} |")
        if hasattr(cmd, "commands"):
            sections += [f"## `fusionproxy {name}`", "", esc(cmd.help or ""), "", f"Guide: {guides}.", ""]
            for sub_name, sub in cmd.commands.items():
                sections += command_section(["fusionproxy", name, sub_name], sub, 3)
        else:
            sections += command_section(["fusionproxy", name], cmd, 2)
            sections += [f"Guide: {guides}.", ""]
    missing = set(root.commands) - set(ORDER)
    if missing:
        raise SystemExit(f"commands without a section: {missing}")
    common = [
        "## Conventions shared by the commands",
        "",
        "- `python -m fusionproxy ...` is the same as `fusionproxy ...`.",
        "- Errors: bad inputs print one line naming the file and exit non-zero (1); a stream job stopped with Ctrl-C "
        "exits with 130 ([live fusion](../guides/live-fusion.md#damaged-frames-disconnects-ctrl-c)).",
        "- Training commands (`teacher train`, `distill`, `dtpf train-teacher`, `dtpf distill`) take `--config NAME|FILE.yaml` "
        "and repeatable `--set key=value` overrides ([configs](configs.md)); rerunning the same command resumes from the "
        "latest checkpoint, and Ctrl-C saves a checkpoint first. So do `cache build` (item by item), `evaluate` (from its "
        "CSV and cached outputs), `pipeline` and `ablate`.",
        "- Several processes or GPUs: `torchrun --nproc_per_node 2 --no-python fusionproxy distill ...` or "
        "`accelerate launch --num_processes 4 $(which fusionproxy) distill ...`; `cache build` also shards with "
        "`--shard i/n` ([cache guide](../guides/cache-and-panel.md#the-cache-fusionproxy-cache-build--info--verify--finalize)).",
        "- On a CPU shared with other jobs, run with one thread (`OMP_NUM_THREADS=1`, or `--threads 1` where the command "
        "has it): OpenMP threads that wait for a busy core slow everything down.",
        "",
    ]
    text = "\n".join(lines + [""] + common + sections).rstrip() + "\n"
    pathlib.Path(out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
