"""Inference convolutions: the direct 3x3 convolution against Winograd F(4x4, 3x3).

`EigenConv2D` runs inference of 3x3 stride-1 convolutions of >= 256 channels
as Winograd tiles (`tfcyclegan.kernels.winograd`). This prints, per shape, the wall
time of the direct convolution (`tf.nn.conv2d`) and of the Winograd form
(kernel transform included, as in a served model), 2 threads, minimum of
interleaved rounds; then one ResNet-9 ngf 64 forward at 256 px, batch 1, as
shipped (Winograd tiles, and the fused instance norm under oneDNN) and with
plain layers (`kernels.portable_ops`, as traced for LiteRT), in the same rounds.

The TensorFlow path and ISA are the environment's, set before the run:

    TF_ENABLE_ONEDNN_OPTS=0 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/bench_winograd.py  # Eigen, AVX2
    TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/bench_winograd.py                          # oneDNN, native
    python benchmarks/bench_winograd.py --only 256ch --rounds 10
"""

import argparse
import os
import sys

if not __package__:  # run as a script
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# name: (batch, output side, channels in and out)
SHAPES = {
    "256ch 1x32x32": (1, 32, 256),
    "256ch 1x64x64 (ResNet block @256 px)": (1, 64, 256),
    "256ch 1x128x128 (@512 px)": (1, 128, 256),
    "256ch 1x256x256 (@1024 px)": (1, 256, 256),
    "256ch 4x64x64": (4, 64, 256),
    "128ch 1x64x64": (1, 64, 128),
    "128ch 1x128x128": (1, 128, 128),
}


def _interleaved(runs, rounds):
    """{name: min seconds} of `runs` (name -> callable), interleaved after one warm-up call each."""
    from benchmarks import common

    timed = common.interleave_calls({name: lambda _, run=run: run() for name, run in runs.items()}, None, rounds, 1)
    return {name: summary["min"] for name, summary in timed.items()}


def measure_shape(batch, side, channels, rounds, seed=0):
    """(direct ms, Winograd ms) of one 3x3 "valid" convolution."""
    import numpy as np
    import tensorflow as tf

    from tfcyclegan.kernels import winograd

    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(batch, side + 2, side + 2, channels)).astype(np.float32))
    kernel = tf.Variable(
        (rng.normal(size=(3, 3, channels, channels)) / np.sqrt(9 * channels)).astype(np.float32)
    )
    direct = tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "VALID"))
    tiles = tf.function(lambda: winograd.conv3x3(x, tf.convert_to_tensor(kernel)))
    best = _interleaved({"direct": lambda: direct().numpy(), "winograd": lambda: tiles().numpy()}, rounds)
    return 1000 * best["direct"], 1000 * best["winograd"]


def measure_generator(rounds, size=256, seed=0):
    """(plain layers s, as shipped s) of one ResNet-9 ngf 64 forward, batch 1, in a graph."""
    import numpy as np
    import tensorflow as tf

    from tfcyclegan import kernels
    from tfcyclegan.networks import ResnetGenerator

    generator = ResnetGenerator(ngf=64, n_blocks=9, seed=seed)
    image = tf.constant(np.random.default_rng(seed).uniform(-1, 1, (1, size, size, 3)).astype(np.float32))
    tiles = tf.function(lambda images: generator(images, training=False))
    tiles(image)
    with kernels.portable_ops():  # traced inside: plain layers
        direct = tf.function(lambda images: generator(images, training=False))
        direct(image)
    best = _interleaved(
        {"direct": lambda: direct(image).numpy(), "winograd": lambda: tiles(image).numpy()}, rounds
    )
    return best["direct"], best["winograd"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated parts of the shape names")
    parser.add_argument("--no-generator", action="store_true", help="skip the whole-forward row")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1; got {args.rounds}")
    import tfcyclegan  # noqa: F401  # first, as a user's program: it picks the TF path
    import tensorflow as tf

    from benchmarks import common

    tf.config.threading.set_intra_op_parallelism_threads(2)
    only = [part for part in args.only.split(",") if part]
    print(common.describe_machine(common.machine_info()))
    print(f"path {common.tensorflow_path()}, ONEDNN_MAX_CPU_ISA="
          f"{os.environ.get('ONEDNN_MAX_CPU_ISA', '(native)')}; 2 threads, wall time, "
          f"min of {args.rounds} interleaved rounds")
    print(f"{'3x3 convolution, outputs':40s} {'direct ms':>10s} {'Winograd ms':>12s} {'W / direct':>11s}")
    for name, (batch, side, channels) in SHAPES.items():
        if only and not any(part in name for part in only):
            continue
        direct, tiles = measure_shape(batch, side, channels, args.rounds)
        print(f"{name:40s} {direct:10.1f} {tiles:12.1f} {tiles / direct:11.2f}", flush=True)
    if not args.no_generator:
        direct, tiles = measure_generator(args.rounds)
        print(f"{'ResNet-9 forward 256 px, plain / shipped (s)':40s} {direct:10.3f} {tiles:12.3f} "
              f"{tiles / direct:11.2f}")


if __name__ == "__main__":
    main()
