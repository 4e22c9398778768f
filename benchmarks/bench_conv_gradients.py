"""Forward and backward of each convolution shape: TensorFlow's kernels against `EigenConv2D`'s.

`kernels.conv` computes a stride-1 "valid" convolution's training
gradient as a forward convolution and matrix products (`kernels.conv._valid_conv`)
on TensorFlow's Eigen path. This prints, for the shapes the paper's networks
train at 256 px (batch 2: a fused generator call), the process time of one
forward + backward (both gradients) with TensorFlow's own kernels and with
`_valid_conv`, 1 thread, minimum of `--rounds` after one warm-up. Process
time, not wall time: a preempted process does not accumulate it, so the
figures hold on a shared machine.

The TensorFlow path and ISA are the environment's, set before the run:

    TF_ENABLE_ONEDNN_OPTS=0 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/bench_conv_gradients.py  # Eigen, AVX2
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/bench_conv_gradients.py                          # Eigen, native
    python benchmarks/bench_conv_gradients.py --only block,head --rounds 7

(`_valid_conv` itself is used by `kernels.conv.call` only on the Eigen path and
from 16 input channels; the stem row shows why.)
"""

import argparse
import os
import sys
import time

if not __package__:  # run as a script
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# name: (input shape with its padding, kernel size, output channels)
SHAPES = {
    "stem 7x7 3->64 @256": ((2, 262, 262, 3), 7, 64),
    "head 7x7 64->3 @256": ((2, 262, 262, 64), 7, 3),
    "block 3x3 256->256 @64": ((2, 66, 66, 256), 3, 256),
    "resize_conv up0 3x3 256->128 @128": ((2, 130, 130, 256), 3, 128),
    "resize_conv up1 3x3 128->64 @256": ((2, 258, 258, 128), 3, 64),
    "PatchGAN conv3 4x4 256->512 @31": ((2, 34, 34, 256), 4, 512),
    "PatchGAN logits 4x4 512->1 @30": ((2, 33, 33, 512), 4, 1),
}


def measure(shape, kernel_size, filters, rounds=5, seed=0):
    """(TensorFlow's ms, `_valid_conv`'s ms): process time of forward + both gradients."""
    import numpy as np
    import tensorflow as tf

    from tfcyclegan.kernels.conv import _valid_conv

    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    kernel = tf.constant(
        rng.normal(size=(kernel_size, kernel_size, shape[-1], filters)).astype(np.float32) * 0.05
    )
    out_shape = (shape[0], shape[1] - kernel_size + 1, shape[2] - kernel_size + 1, filters)
    weights = tf.constant(rng.normal(size=out_shape).astype(np.float32))

    def step(conv):
        @tf.function
        def run():
            with tf.GradientTape() as tape:
                tape.watch([x, kernel])
                loss = tf.reduce_sum(conv(x, kernel) * weights)
            return tape.gradient(loss, [x, kernel])

        return run

    runs = {
        "tensorflow": step(lambda a, k: tf.nn.conv2d(a, k, 1, "VALID")),
        "valid_conv": step(_valid_conv),
    }
    times = {name: [] for name in runs}
    for round_ in range(rounds + 1):  # interleaved; the first round warms up
        for name, run in runs.items():
            start = time.process_time()
            for grad in run():
                grad.numpy()
            if round_:
                times[name].append(time.process_time() - start)
    return tuple(1000 * min(times[name]) for name in runs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from benchmarks import common

    common.add_conv_shape_arguments(parser)
    args = parser.parse_args(argv)
    selected = common.conv_shape_setup(parser, args)
    print(common.describe_machine(common.machine_info()))
    print(f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(default)')} "
          f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(native)')}; 1 thread, "
          f"process time, min of {args.rounds}, forward + both gradients, batch 2")
    print(f"{'shape':36s} {'TF kernels ms':>14s} {'_valid_conv ms':>15s} {'ratio':>6s}")
    for name, (shape, kernel_size, filters) in SHAPES.items():
        if not selected(name):
            continue
        theirs, ours = measure(shape, kernel_size, filters, args.rounds)
        print(f"{name:36s} {theirs:14.1f} {ours:15.1f} {theirs / ours:6.2f}", flush=True)


if __name__ == "__main__":
    main()
