"""CPU time per frame of several ONNX graphs on one onnxruntime thread, interleaved (issue 17, docs/results/speed.md).

`fusionproxy bench` times model directories; this times graph files, so that two exports of the same weights
(before and after a rewrite of the network's code) or a set of randomly initialised architectures can be
compared. The graphs run in turn, round after round, so that a change in the host's speed during the run
touches all of them alike; the figures are process CPU time (one thread), which other jobs on other cores do
not inflate. Inputs: a seeded random IR / VIS pair of the given size. The last column compares each graph's
RGB output with the first graph's.

Usage:
    python docs/probes/onnx_cpu_time.py 480x640 A.onnx B.onnx [...] [--rounds 60] [--levels basic,extended,all]
    python docs/probes/onnx_cpu_time.py --export-random OUT.onnx '{"activation": "silu"}'   # a convnext_unet
    python docs/probes/onnx_cpu_time.py 480x640 A.onnx --profile 10   # the 10 costliest nodes (onnxruntime profiler)
"""
import argparse
import collections
import json
import os
import tempfile
import time
import warnings

import numpy as np


def export_random(path: str, config: str) -> None:
    """A convnext_unet with `config` overrides and small random weights (seed 0), exported RGB-only."""
    import torch

    from fusionproxy.export import export_onnx
    from fusionproxy.students import create_student

    torch.manual_seed(0)
    model = create_student("convnext_unet", **json.loads(config)).eval()
    with torch.no_grad():  # weights away from the initialisation's near-identity, so every layer computes
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(model, path, uncertainty=False)
    print(f"{path}: {sum(p.numel() for p in model.parameters()) / 1e6:.3f} M parameters")


def compare(size: str, graphs: list[str], rounds: int, levels: list[str]) -> None:
    import onnxruntime as ort

    level_of = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}  # "all", onnxruntime's default, adds NCHWc layouts
    runs = [(graph, level) for graph in graphs for level in levels]
    height, width = (int(side) for side in size.split("x"))
    rng = np.random.default_rng(0)
    feed = {"ir": rng.random((1, 1, height, width), dtype=np.float32),
            "vis": rng.random((1, 3, height, width), dtype=np.float32)}
    sessions = []
    for path, level in runs:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        options.graph_optimization_level = level_of[level]
        sessions.append(ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]))
        for _ in range(3):
            sessions[-1].run(["rgb"], feed)
    seconds = np.empty((len(runs), rounds))
    outputs = [None] * len(runs)
    for round_ in range(rounds):
        for index, session in enumerate(sessions):
            start = time.process_time()
            outputs[index] = session.run(["rgb"], feed)[0]
            seconds[index, round_] = time.process_time() - start
    print(f"{size}, one thread, {rounds} rounds: CPU ms per frame")
    print(f"{'graph':48s} {'level':8s} {'median':>7s} {'p25':>7s} {'min':>7s}  PSNR vs first")
    for (path, level), times, output in zip(runs, 1e3 * seconds, outputs):
        mse = float(np.mean((output - outputs[0]) ** 2))
        psnr = "identical" if mse == 0 else f"{10 * np.log10(1 / mse):.1f} dB"
        print(f"{path[-48:]:48s} {level:8s} {np.median(times):7.2f} {np.percentile(times, 25):7.2f} "
              f"{times.min():7.2f}  {psnr}")


def profile(size: str, path: str, top: int, rounds: int = 20) -> None:
    """Share of the kernel time per node (onnxruntime's profiler, one thread), the `top` costliest first."""
    import onnxruntime as ort

    height, width = (int(side) for side in size.split("x"))
    rng = np.random.default_rng(0)
    feed = {"ir": rng.random((1, 1, height, width), dtype=np.float32),
            "vis": rng.random((1, 3, height, width), dtype=np.float32)}
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for _ in range(rounds):
        session.run(["rgb"], feed)
    with open(session.end_profiling()) as handle:
        events = json.load(handle)
    microseconds = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            microseconds[(event["args"]["op_name"], event["name"][: -len("_kernel_time")])] += event["dur"]
    total = sum(microseconds.values())
    print(f"{path}, {size}, one thread, {rounds} runs: kernel time per run {total / rounds / 1e3:.1f} ms")
    for (op, node), spent in microseconds.most_common(top):
        print(f"{100 * spent / total:5.1f}%  {op:20s} {node}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("size", nargs="?", help="HxW, e.g. 480x640")
    parser.add_argument("graphs", nargs="*")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--levels", default="all", help="onnxruntime graph optimisation levels, comma-separated")
    parser.add_argument("--export-random", nargs=2, metavar=("OUT", "CONFIG_JSON"))
    parser.add_argument("--profile", type=int, metavar="TOP", help="profile the first graph instead of timing")
    args = parser.parse_args()
    if args.export_random:
        export_random(*args.export_random)
    elif args.profile:
        profile(args.size, args.graphs[0], args.profile)
    else:
        compare(args.size, args.graphs, args.rounds, args.levels.split(","))


if __name__ == "__main__":
    main()
