"""Forward and backward of each convolution shape in float32 and in bfloat16 (oneDNN).

Under `mixed_bfloat16` every convolution of a training step runs TensorFlow's
own kernels in bfloat16 (oneDNN's AVX512_BF16 or AMX kernels where the CPU has
them); in float32 the residual blocks' 3x3 256 -> 256 convolutions run as
Winograd F(4x4, 3x3) tiles instead (`kernels.conv._reflect_padded_winograd`,
float32 only) and the rest TensorFlow's float32 kernels. This prints, for the
shapes a CycleGAN step trains (batch 2: a fused generator call), the process
time of one forward + backward (both gradients): float32 TensorFlow kernels,
float32 Winograd (where the step uses it), bfloat16 TensorFlow kernels; 1
thread, minimum of `--rounds` interleaved after one warm-up. Process time, not
wall time: a preempted process does not accumulate it, so the figures hold on
a shared machine. docs/cpu_paths.md, section "bfloat16", has the figures.

    python benchmarks/bench_bf16_convs.py [--size 256] [--rounds 5] [--only block]
"""

import argparse
import os
import sys
import time

if not __package__:  # run as a script
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def shapes(size):
    """{name: (input shape with its padding, kernel size, stride, output channels)} at `size` px."""
    quarter, half = size // 4, size // 2
    return {
        f"stem 7x7 3->64 @{size}": ((2, size + 6, size + 6, 3), 7, 1, 64),
        f"down0 3x3/2 64->128 @{half}": ((2, size + 1, size + 1, 64), 3, 2, 128),
        f"down1 3x3/2 128->256 @{quarter}": ((2, half + 1, half + 1, 128), 3, 2, 256),
        f"block 3x3 256->256 @{quarter}": ((2, quarter + 2, quarter + 2, 256), 3, 1, 256),
        f"head 7x7 64->3 @{size}": ((2, size + 6, size + 6, 64), 7, 1, 3),
        f"PatchGAN conv1 4x4/2 64->128 @{size // 4}": ((2, half + 2, half + 2, 64), 4, 2, 128),
        f"PatchGAN conv3 4x4 256->512 @{size // 8 - 1}": ((2, size // 8 + 2, size // 8 + 2, 256), 4, 1, 512),
    }


def measure(shape, kernel_size, stride, filters, rounds=5, seed=0):
    """{form: ms}: process time of forward + both gradients, min of `rounds`."""
    import numpy as np
    import tensorflow as tf

    from tfcyclegan.kernels import winograd

    rng = np.random.default_rng(seed)
    x32 = tf.constant(rng.normal(size=shape).astype(np.float32))
    k32 = tf.constant(
        rng.normal(size=(kernel_size, kernel_size, shape[-1], filters)).astype(np.float32) * 0.05
    )
    out = tf.nn.conv2d(x32, k32, stride, "VALID").shape
    w32 = tf.constant(rng.normal(size=out).astype(np.float32))

    def step(conv, dtype):
        x, k, w = (tf.cast(t, dtype) for t in (x32, k32, w32))

        @tf.function
        def run():
            with tf.GradientTape() as tape:
                tape.watch([x, k])
                loss = tf.reduce_sum(tf.cast(conv(x, k) * w, tf.float32))
            return tape.gradient(loss, [x, k])

        return run

    direct = lambda a, k: tf.nn.conv2d(a, k, stride, "VALID")  # noqa: E731
    runs = {"float32": step(direct, tf.float32)}
    if winograd.applies(k32.shape, (stride, stride), (1, 1), "valid", x32.shape):
        runs["float32 Winograd"] = step(_winograd_conv, tf.float32)
    runs["bfloat16"] = step(direct, tf.bfloat16)
    times = {name: [] for name in runs}
    for round_ in range(rounds + 1):  # interleaved; the first round warms up
        for name, run in runs.items():
            start = time.process_time()
            for grad in run():
                grad.numpy()
            if round_:
                times[name].append(time.process_time() - start)
    return {name: 1000 * min(t) for name, t in times.items()}


def _winograd_conv(x, kernel):
    """The training step's form of a residual convolution: forward and both gradients
    as Winograd tiles (the block's reflection pad is in x here)."""
    import tensorflow as tf

    from tfcyclegan.kernels import winograd

    @tf.custom_gradient
    def conv(x, kernel):
        def gradient(upstream):
            padded = tf.pad(upstream, [[0, 0], [2, 2], [2, 2], [0, 0]])
            flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
            return winograd.conv3x3(padded, flipped), winograd.kernel_gradient(x, upstream)

        return winograd.conv3x3(x, kernel), gradient

    return conv(x, kernel)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    from benchmarks import common

    common.add_conv_shape_arguments(parser)
    args = parser.parse_args(argv)
    selected = common.conv_shape_setup(parser, args)
    print(common.describe_machine(common.machine_info()) + f"; TensorFlow path {common.tensorflow_path()}")
    print(common.calibration_line("before", common.matmul_gflops()))
    print(f"1 thread, process time, min of {args.rounds}, forward + both gradients, batch 2")
    print(f"{'shape':36s} {'float32 ms':>11s} {'Winograd ms':>12s} {'bfloat16 ms':>12s} "
          f"{'fp32/bf16':>10s} {'best fp32/bf16':>15s}")
    for name, (shape, kernel_size, stride, filters) in shapes(args.size).items():
        if not selected(name):
            continue
        ms = measure(shape, kernel_size, stride, filters, args.rounds)
        wino = ms.get("float32 Winograd")
        best = min(ms["float32"], wino or ms["float32"])
        print(f"{name:36s} {ms['float32']:11.1f} {'' if wino is None else f'{wino:.1f}':>12s} "
              f"{ms['bfloat16']:12.1f} {ms['float32'] / ms['bfloat16']:10.2f} "
              f"{best / ms['bfloat16']:15.2f}", flush=True)
    print(common.calibration_line("after", common.matmul_gflops()))


if __name__ == "__main__":
    main()
