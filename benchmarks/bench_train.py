"""Seconds per CycleGAN training step, against the PyTorch reference, and peak memory.

Paper configuration: ResNet-9 generators (ngf 64), 70x70 PatchGANs (ndf 64),
LSGAN, identity 0.5, pool 50, Adam, batch 1. For each size (128 and 256 px)
every candidate runs in its own process (see `common.Worker`), is warmed up,
then all are timed interleaved, A B A B ..., between two matmul calibration
lines. Prints per candidate: min and median seconds per step, images/s
(x and y count: 2 per step), achieved GFLOP/s (1.9 TFLOP per step at 256 px,
/work/shared/reference/README.md), the fraction of the calibration's best
matmul rate ("peak"), the speed-up over the reference, and peak RSS.

Candidates (`--candidates`, comma-separated):
  torch        benchmarks/torch_reference.py: the authors' iteration in PyTorch, 2 threads
  keras        tfcyclegan as shipped: `model.train_on_batch`, default TF settings
  keras_jit    the same compiled with `jit_compile=True` (XLA)
  keras_bf16   the `mixed_bfloat16` policy (not the paper's fp32; reported apart)
  keras_nodnn  TF_ENABLE_ONEDNN_OPTS=0
  keras_inter1 inter-op pool of 1 thread
  keras_nowino float32 with the Winograd forms off (`kernels.disabled("winograd")`):
               the direct convolutions bfloat16's are compared with
               (`keras_bf16+disable=winograd`: bfloat16 without the float32 tiles)

    python benchmarks/bench_train.py [--sizes 128,256] [--rounds 3] [--candidates torch,keras,keras_jit]

`run(sizes, candidates, rounds)` returns everything printed as a dict.
"""

import argparse
import contextlib
import importlib
import os
import sys

if not __package__:  # run as a script; as benchmarks.bench_train a worker sets the path
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import common  # noqa: E402

CANDIDATES = {
    "torch": ("benchmarks.torch_reference", "TorchTrainStep", {}, {}),
    "keras": ("benchmarks.bench_train", "KerasTrainStep", {}, {}),
    "keras_jit": ("benchmarks.bench_train", "KerasTrainStep", {"jit_compile": True}, {}),
    "keras_bf16": ("benchmarks.bench_train", "KerasTrainStep", {"dtype": "mixed_bfloat16"}, {}),
    "keras_nodnn": ("benchmarks.bench_train", "KerasTrainStep", {}, {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    "keras_inter1": ("benchmarks.bench_train", "KerasTrainStep", {"inter_op": 1}, {}),
    "keras_nowino": ("benchmarks.bench_train", "KerasTrainStep", {"disable": "winograd"}, {}),
    "keras_unfused": ("benchmarks.bench_train", "KerasTrainStep", {"fuse_calls": False}, {}),
    "keras_unfused_inter1": (
        "benchmarks.bench_train", "KerasTrainStep", {"fuse_calls": False, "inter_op": 1}, {}
    ),
    "keras_fpmath_bf16": (
        "benchmarks.bench_train", "KerasTrainStep", {}, {"TF_SET_ONEDNN_FPMATH_MODE": "BF16"}
    ),
    "keras_caller": (
        "benchmarks.bench_train", "KerasTrainStep", {}, {"TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD": "1"}
    ),
}
REFERENCE = "torch"
DEFAULT_CANDIDATES = ("torch", "keras", "keras_jit")


class KerasTrainStep:
    """One tfcyclegan training step (paper config, batch 1) per `run()` call.

    Built as `tfcyclegan.train` builds it (`CycleGAN.from_model_config`,
    default `compile`) and stepped with `train_on_batch` on a few fixed random
    image pairs already in TensorFlow tensors (the input pipeline is measured
    by bench_data.py); `run()` returns once the step's losses are on the host.

    Args:
        size: image height and width.
        jit_compile: compile the step with XLA.
        threads: intra-op threads (2: the machine's cores).
        inter_op: inter-op threads (None: TensorFlow's default, one per core).
        dtype: dtype policy of the networks, e.g. "mixed_bfloat16".
        pool_size: image pool size (50).
        seed: weights, pools and images.
        fuse_calls: False: `batched_calls` off.
        disable: kernel forms to turn off, "/"-separated (`kernels.disabled`), e.g. "winograd".
    """

    def __init__(self, size=256, jit_compile=False, threads=2, inter_op=None, dtype=None,
                 pool_size=50, seed=0, fuse_calls=None, disable=None):
        import tfcyclegan  # noqa: F401  # first, as a user's program: it picks the TF path (cpu.py)
        import numpy as np
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        if inter_op is not None:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
        from tfcyclegan.config import ModelConfig
        from tfcyclegan.models import CycleGAN

        self.model = CycleGAN.from_model_config(ModelConfig(), pool_size=pool_size, seed=seed, dtype=dtype)
        self.unfused = contextlib.nullcontext()
        if fuse_calls is False:
            try:
                from tfcyclegan import kernels
            except ImportError:  # a revision before tfcyclegan.kernels (#26)
                self.model.fuse_calls = False
            else:  # read when the step is traced, on its first run
                self.unfused = kernels.disabled("batched_calls")
        if disable:
            from tfcyclegan import kernels

            forms = disable.split("/") + (["batched_calls"] if fuse_calls is False else [])
            self.unfused = kernels.disabled(*forms)
        self.model.compile(jit_compile=jit_compile)
        self.model.build((1, size, size, 3))
        rng = np.random.default_rng(seed)
        self.batches = [
            tuple(tf.constant(rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)) for _ in range(2))
            for _ in range(4)
        ]
        self.count = 0

    def source(self):
        """Where the measured `tfcyclegan` was imported from."""
        import tfcyclegan

        return os.path.dirname(tfcyclegan.__file__)

    def run(self):
        x, y = self.batches[self.count % len(self.batches)]
        self.count += 1
        if self.count > 1:
            return self.model.train_on_batch(x, y, return_dict=True)["total"]
        with self.unfused:
            return self.model.train_on_batch(x, y, return_dict=True)["total"]


def _value(text):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_candidate(name):
    """`base[+key=value...][@REV]` -> (module, factory, kwargs, env, revision).

    `base` is a key of CANDIDATES; each `+key=value` adds a keyword argument
    (upper-case keys set environment variables instead), e.g.
    `keras+fuse_calls=false+TF_ENABLE_ONEDNN_OPTS=0@HEAD~1`.
    """
    name, _, revision = name.partition("@")
    base, *options = name.split("+")
    if base not in CANDIDATES:
        raise ValueError(f"unknown candidate {base!r}; choose from {sorted(CANDIDATES)}")
    module, factory, kwargs, env = CANDIDATES[base]
    kwargs, env = dict(kwargs), dict(env)
    for option in options:
        key, _, value = option.partition("=")
        if key.isupper():
            env[key] = value
        else:
            kwargs[key] = _value(value)
    return module, factory, kwargs, env, revision


def run(sizes=(128, 256), candidates=DEFAULT_CANDIDATES, rounds=3, warmup=2, log=common.log):
    """Measures `candidates` at each size; returns a dict of everything printed.

    A candidate named `name@REV` is `name` run on git revision REV of the
    package (a temporary worktree), or on the checkout in folder REV: the
    before/after figure of a change.
    """
    result = {"machine": common.machine_info(), "code": common.code_version(), "sizes": {},
              "rounds": rounds, "warmup": warmup, "candidates": list(candidates)}
    result["calibration_before"] = common.matmul_gflops()
    log(common.calibration_line("before", result["calibration_before"]))
    with contextlib.ExitStack() as stack:
        checkouts = {}
        for name in candidates:
            revision = name.partition("@")[2]
            if revision and revision not in checkouts:
                checkouts[revision] = (
                    revision if os.path.isdir(revision)
                    else stack.enter_context(common.git_worktree(revision))
                )
        for size in sizes:
            workers = {}
            try:
                for name in candidates:
                    module, factory, kwargs, env, revision = parse_candidate(name)
                    workers[name] = common.Worker(
                        module, factory, env=env, label=name, code=checkouts.get(revision),
                        size=size, **kwargs,
                    )
                    source = workers[name].call("source") if hasattr(
                        getattr(importlib.import_module(module), factory), "source") else module
                    log(f"{size} px: started {name} ({source})")
                result["sizes"][size] = common.measure(workers, warmup, rounds, 1, log)
            finally:
                for worker in workers.values():
                    worker.close()
    result["calibration_after"] = common.matmul_gflops()
    log(common.calibration_line("after", result["calibration_after"]))
    return result


def rows(result):
    """Table rows (dicts) of `result`: one per size and candidate, with derived figures."""
    peak = max(result["calibration_before"]["best"], result["calibration_after"]["best"])
    table = []
    for size, measured in result["sizes"].items():
        size = int(size)
        flop = common.train_step_gflop(size)
        reference = measured.get(REFERENCE)
        for name, m in measured.items():
            gflops = flop / m["min"]
            table.append({
                "size": size,
                "candidate": name,
                "min_s": m["min"],
                "median_s": m["median"],
                "n": m["n"],
                "images_per_s": 2 / m["min"],
                "gflops": gflops,
                "of_peak": gflops / peak,
                "vs_reference_min": reference["min"] / m["min"] if reference else None,
                "vs_reference_median": reference["median"] / m["median"] if reference else None,
                "peak_rss_gib": m["peak_rss"] / 2**30,
            })
    return table


def print_result(result, out=print):
    peak = max(result["calibration_before"]["best"], result["calibration_after"]["best"])
    out(common.describe_machine(result["machine"]) + f"; code {result['code']}")
    out(common.calibration_line("before", result["calibration_before"]))
    out(
        f"training step, paper config (ResNet-9 ngf 64, PatchGAN ndf 64, LSGAN, identity 0.5, "
        f"pool 50, batch 1); {result['rounds']} interleaved rounds after {result['warmup']} warm-up "
        f"steps; peak = best calibration {peak:.0f} GFLOP/s"
    )
    out(f"{'px':>4} {'candidate':<13}{'min s':>8}{'median s':>9}{'img/s':>7}{'GFLOP/s':>9}"
        f"{'x peak':>7}{'x torch':>8}{'(median)':>9}{'peak RSS':>10}")
    for row in rows(result):
        vs = "" if row["vs_reference_min"] is None else f"{row['vs_reference_min']:.2f}"
        vs_med = "" if row["vs_reference_median"] is None else f"{row['vs_reference_median']:.2f}"
        out(
            f"{row['size']:>4} {row['candidate']:<13}{row['min_s']:>8.2f}{row['median_s']:>9.2f}"
            f"{row['images_per_s']:>7.2f}{row['gflops']:>9.1f}{row['of_peak']:>7.2f}{vs:>8}{vs_med:>9}"
            f"{row['peak_rss_gib']:>8.2f} GiB"
        )
    out(common.calibration_line("after", result["calibration_after"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--candidates", default=",".join(DEFAULT_CANDIDATES),
                        help=f"comma-separated, from {sorted(CANDIDATES)}")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    candidates = args.candidates.split(",")
    for candidate in candidates:
        try:
            parse_candidate(candidate)
        except ValueError as error:
            parser.error(str(error))
    result = run(sizes, candidates, args.rounds, args.warmup)
    print_result(result)
    if args.json:
        common.save_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
