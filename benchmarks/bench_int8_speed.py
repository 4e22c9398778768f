"""Full int8 TFLite latency of this code's file against a baseline revision's (issue #29).

Builds the same generator (seeded ResNet, random weights: latency does not
depend on their values) in both trees, converts it to fixed-size full int8 as
each tree's `convert_tflite` does (calibrated on the same photo-like images of
`bench_int8_trained.photos`), then runs both files in LiteRT, interleaved in
one process, and prints per file: the ops, how many parts XNNPACK's delegate
took (each DELEGATE node is one; ops between them run on LiteRT's reference
kernels), median and best latency, and the ratio.

    python benchmarks/bench_int8_speed.py --baseline 5f65484 --size 256 --ngf 32
"""

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if not __package__:  # run as a script
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import common  # noqa: E402


def write_int8(path, size, ngf, blocks):
    """Converts the seeded generator with the `tfcyclegan` on sys.path; writes `path`."""
    import tensorflow as tf

    from benchmarks.bench_int8_trained import photos
    from tfcyclegan.export import tflite
    from tfcyclegan.networks import ResnetGenerator

    generator = ResnetGenerator(ngf=ngf, n_blocks=blocks, seed=0, name="G")
    generator(tf.zeros((1, size, size, 3)))
    calibration = [image[None] for image in photos(500, 8, size)]
    flatbuffer = tflite.convert_tflite(
        generator, "int8", calibration, input_size=(size, size), allow_lossy_int8=True
    )
    with open(path, "wb") as f:
        f.write(flatbuffer)


def _convert_in(tree, path, args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, common.REPO]))
    command = [
        sys.executable, os.path.abspath(__file__), "--write", path, "--tree", tree,
        "--size", str(args.size), "--ngf", str(args.ngf), "--blocks", str(args.blocks),
    ]
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    package = done.stdout.strip().splitlines()[-1]
    if os.path.dirname(package) != os.path.abspath(tree):
        raise RuntimeError(f"converted with {package}, not the tfcyclegan of {tree}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="5f65484", help="the revision to compare with")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.write:
        sys.path.insert(0, args.tree)  # that tree's tfcyclegan, before this one's
        if "tfcyclegan" in sys.modules:
            raise RuntimeError("tfcyclegan was imported before the tree to measure was on sys.path")
        write_int8(args.write, args.size, args.ngf, args.blocks)
        import tfcyclegan

        print(os.path.dirname(tfcyclegan.__file__))
        return 0

    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    machine = common.machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        with common.git_worktree(args.baseline) as tree:
            files[f"baseline {common.code_version(args.baseline)}"] = os.path.join(tmp, "baseline.tflite")
            _convert_in(tree, files[next(iter(files))], args)
        files[f"this code {common.code_version()}"] = os.path.join(tmp, "head.tflite")
        _convert_in(common.REPO, files[list(files)[-1]], args)
        interpreters = {}
        for name, path in files.items():
            interpreter = Interpreter(model_path=path, num_threads=args.threads)
            interpreter.allocate_tensors()
            interpreters[name] = interpreter
        image = np.random.default_rng(0).uniform(-1, 1, (1, args.size, args.size, 3)).astype(np.float32)
        print(common.describe_machine(machine))
        print(common.calibration_line("before", common.matmul_gflops()))
        seconds = collections.defaultdict(list)
        for _ in range(args.rounds + 1):  # the first round warms up
            for name, interpreter in interpreters.items():
                interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
                start = time.perf_counter()
                interpreter.invoke()
                seconds[name].append(time.perf_counter() - start)
        print(common.calibration_line("after", common.matmul_gflops()))
    print(
        f"ResNet-{args.blocks} ngf {args.ngf}, full int8, fixed {args.size}x{args.size}, LiteRT "
        f"{args.threads} threads, {args.rounds} interleaved rounds (+1 warm-up)"
    )
    print("| file | XNNPACK parts | ops | median ms | best ms |")
    print("|---|---|---|---|---|")
    medians = {}
    for name, interpreter in interpreters.items():
        ops = collections.Counter(op["op_name"] for op in interpreter._get_ops_details())
        parts = ops.pop("DELEGATE", 0)
        times = seconds[name][1:]
        medians[name] = float(np.median(times))
        listed = ", ".join(f"{op} {count}" for op, count in sorted(ops.items()))
        print(f"| {name} | {parts} | {listed} | {1000 * medians[name]:.1f} | {1000 * min(times):.1f} |")
    baseline, head = medians.values()
    print(f"this code / baseline, median: {head / baseline:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
