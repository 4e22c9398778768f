"""One generator forward at 256 px: Keras against PyTorch, and the deployable files.

Two figures for ResNet-9 ngf 64 (the paper's generator; 99.1 GFLOP per
256x256 image, /work/shared/reference/README.md), batch 1, 2 threads:

1. `forward`: seconds per forward pass of the Keras network (in a
   `tf.function`, as `predict` and the SavedModel run it) against the PyTorch
   reference network (benchmarks/torch_reference.py, `inference_mode`), with
   achieved GFLOP/s and the fraction of the matmul calibration (issue #2).
   Optional candidates: `keras_jit` (XLA), `keras_bf16` (mixed_bfloat16).
2. `deploy`: the exported paths a user ships -- SavedModel and each TFLite
   variant on LiteRT's XNNPACK CPU path (bench_inference.build_runners) --
   against the same PyTorch forward, with file sizes and PSNR against Keras
   float32 (random weights: PSNR on trained weights is what users see; pass
   `--model`).

Every candidate lives in its own process (common.Worker); all are timed
interleaved, A B A B, between two calibration lines.

    python benchmarks/bench_generator.py [--size 256] [--rounds 5] [--skip-deploy]

`run_forward` and `run_deploy` return what they print as dicts.
"""

import argparse
import os
import sys

if not __package__:  # run as a script
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import common  # noqa: E402

FORWARD_CANDIDATES = {
    "torch": ("benchmarks.torch_reference", "TorchGeneratorForward", {}),
    "keras": ("benchmarks.bench_generator", "KerasGeneratorForward", {}),
    "keras_jit": ("benchmarks.bench_generator", "KerasGeneratorForward", {"jit_compile": True}),
    "keras_bf16": ("benchmarks.bench_generator", "KerasGeneratorForward", {"dtype": "mixed_bfloat16"}),
    # What users call: `CycleGAN.translate()` / `tfcyclegan translate` of a .keras
    # (`models.base.translate_with`, numpy in and out), and the generator called eagerly.
    "keras_translate": ("benchmarks.bench_generator", "KerasTranslate", {}),
    "keras_eager": ("benchmarks.bench_generator", "KerasTranslate", {"eager": True}),
}
DEFAULT_FORWARD = ("torch", "keras", "keras_jit")
DEPLOY_VARIANTS = ("fp32", "fp16", "dynamic_int8", "int8", "fp32_fixed")


class KerasGeneratorForward:
    """One ResNet generator forward (inference, batch 1) per `run()` call, in a tf.function."""

    def __init__(self, size=256, threads=2, ngf=64, n_blocks=9, jit_compile=False, dtype=None, seed=0):
        import tfcyclegan  # noqa: F401  # first, as a user's program: it picks the TF path (kernels/cpu.py)
        import numpy as np
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        from tfcyclegan.networks import ResnetGenerator

        self.generator = ResnetGenerator(ngf=ngf, n_blocks=n_blocks, seed=seed, dtype=dtype)
        self.forward = tf.function(lambda x: self.generator(x, training=False), jit_compile=jit_compile)
        rng = np.random.default_rng(seed)
        self.image = tf.constant(rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32))

    def run(self):
        return self.forward(self.image).numpy()


class KerasTranslate(KerasGeneratorForward):
    """`translate_with(generator, image)` (what `translate()` and the CLI run), or with
    `eager` the generator called eagerly on the numpy image (what they ran before #29)."""

    def __init__(self, eager=False, **kwargs):
        super().__init__(**kwargs)
        self.eager = eager
        self.array = self.image.numpy()

    def run(self):
        if self.eager:
            return self.generator(self.array, training=False).numpy()
        from tfcyclegan.models.base import translate_with

        return translate_with(self.generator, self.array)


class DeployRunners:
    """The exported generator's runners (bench_inference.build_runners), served by name.

    Exports a ResNet-9 ngf 64 (random weights, seed 0, or `model`'s a2b
    generator) to a SavedModel and each TFLite variant in a temporary folder.
    """

    def __init__(self, size=256, threads=2, variants=DEPLOY_VARIANTS, model=None, seed=0):
        import tempfile

        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        from benchmarks import bench_inference
        from tfcyclegan import export
        from tfcyclegan.networks import ResnetGenerator

        if model is None:
            self.generator = ResnetGenerator(ngf=64, n_blocks=9, seed=seed, name="G")
        else:
            self.generator = export.load_generators(model, "a2b")["a2b"]
        self._folder = tempfile.TemporaryDirectory()
        calibration = list(bench_inference.scenes(4, size, seed=1))
        self.runners, self.bytes = bench_inference.build_runners(
            self.generator, self._folder.name, size, threads, variants, calibration
        )
        self.images = bench_inference.scenes(2, size, seed=2)
        self.image = self.images[:1]
        self._bench_inference = bench_inference

    def names(self):
        return list(self.runners)

    def sizes(self):
        return dict(self.bytes)

    def quality(self):
        """PSNR (dB) and max abs error of each runner against Keras float32."""
        return self._bench_inference.quality(self.runners, self.images)

    def time(self, name, calls=1):
        import time

        run = self.runners[name]
        seconds = []
        for _ in range(calls):
            start = time.perf_counter()
            run(self.image)
            seconds.append(time.perf_counter() - start)
        return seconds

    def run(self):
        return self.runners["keras"](self.image)


def run_forward(size=256, candidates=DEFAULT_FORWARD, rounds=5, warmup=2, threads=2, log=common.log):
    """Seconds per generator forward of each candidate, interleaved; a dict."""
    result = {"size": size, "rounds": rounds, "threads": threads, "candidates": {}}
    workers = {}
    try:
        for name in candidates:
            module, factory, kwargs = FORWARD_CANDIDATES[name]
            log(f"forward {size} px: starting {name}")
            workers[name] = common.Worker(module, factory, label=name, size=size, threads=threads, **kwargs)
        result["candidates"] = common.measure(workers, warmup, rounds, 2, log)
    finally:
        for worker in workers.values():
            worker.close()
    return result


def run_deploy(size=256, rounds=3, iters=2, threads=2, variants=DEPLOY_VARIANTS, model=None, log=common.log):
    """Latency of Keras, SavedModel and TFLite variants against the PyTorch forward; a dict."""
    result = {"size": size, "rounds": rounds, "iters": iters, "threads": threads,
              "weights": "random (seed 0)" if model is None else os.fspath(model)}
    with common.Worker("benchmarks.bench_generator", "DeployRunners", label="deploy", size=size,
                       threads=threads, variants=tuple(variants), model=model) as deploy, \
            common.Worker("benchmarks.torch_reference", "TorchGeneratorForward", label="torch",
                          size=size, threads=threads) as torch_forward:
        names = deploy.call("names")
        result["bytes"] = deploy.call("sizes")
        log("deploy: measuring PSNR against Keras float32")
        result["quality"] = deploy.call("quality")
        for name in names:
            deploy.call("time", name, 1)  # warm up (XNNPACK packs weights on first run)
        torch_forward.time(1)
        times = {name: [] for name in names + ["torch"]}
        for r in range(rounds):
            for name in names:
                times[name] += deploy.call("time", name, iters)
            times["torch"] += torch_forward.time(iters)
            log(f"  deploy round {r + 1}/{rounds}: " + ", ".join(
                f"{name} {min(t[-iters:]):.3f}s" for name, t in times.items()))
        result["latency"] = {name: common.summarize(t) for name, t in times.items()}
        result["peak_rss"] = {"deploy": deploy.memory()["peak_rss"], "torch": torch_forward.memory()["peak_rss"]}
    return result


def forward_rows(forward, peak):
    flop = common.generator_gflop(forward["size"])
    torch = forward["candidates"].get("torch")
    rows = []
    for name, m in forward["candidates"].items():
        gflops = flop / m["min"]
        rows.append({
            "candidate": name, "min_s": m["min"], "median_s": m["median"], "n": m["n"],
            "gflops": gflops, "of_peak": gflops / peak,
            "vs_torch_min": torch["min"] / m["min"] if torch else None,
            "vs_torch_median": torch["median"] / m["median"] if torch else None,
        })
    return rows


def deploy_rows(deploy, peak):
    """One row per runner: latency, time relative to torch, GFLOP/s and its fraction of
    `peak` (float32 matmul GFLOP/s; bfloat16 and int8 paths can exceed 1), size, size
    relative to fp32, PSNR."""
    torch = deploy["latency"]["torch"]
    flop = common.generator_gflop(deploy["size"])
    fp32 = deploy["bytes"].get("tflite_fp32")
    rows = []
    for name, latency in deploy["latency"].items():
        size = deploy["bytes"].get(name)
        quality = deploy["quality"].get(name, {})
        rows.append({
            "runner": name, "min_s": latency["min"], "median_s": latency["median"],
            "time_vs_torch_min": latency["min"] / torch["min"],
            "time_vs_torch_median": latency["median"] / torch["median"],
            "gflops": flop / latency["min"], "of_peak": flop / latency["min"] / peak,
            "mb": None if size is None else size / 1e6,
            "size_vs_fp32": None if size is None or not fp32 else size / fp32,
            "psnr_db": quality.get("psnr_db"),
        })
    return rows


def print_forward(forward, peak, out=print):
    out(f"generator forward, ResNet-9 ngf 64, {forward['size']}x{forward['size']}, batch 1, "
        f"{forward['threads']} threads, {forward['rounds']} rounds x 2 calls; "
        f"{common.generator_gflop(forward['size']):.1f} GFLOP per image")
    out(f"  {'candidate':<12}{'min s':>8}{'median s':>10}{'GFLOP/s':>9}{'x peak':>8}{'x torch':>9}{'(median)':>9}")
    for row in forward_rows(forward, peak):
        vs = "" if row["vs_torch_min"] is None else f"{row['vs_torch_min']:.2f}"
        vs_med = "" if row["vs_torch_median"] is None else f"{row['vs_torch_median']:.2f}"
        out(f"  {row['candidate']:<12}{row['min_s']:>8.3f}{row['median_s']:>10.3f}{row['gflops']:>9.1f}"
            f"{row['of_peak']:>8.2f}{vs:>9}{vs_med:>9}")


def print_deploy(deploy, peak, out=print):
    out(f"deployable paths, {deploy['size']}x{deploy['size']}, batch 1, {deploy['threads']} threads "
        f"(TFLite: LiteRT XNNPACK), {deploy['weights']} weights; time relative to the PyTorch forward")
    out(f"  {'runner':<22}{'min s':>8}{'median s':>10}{'x torch':>9}{'(median)':>9}{'x peak':>8}"
        f"{'MB':>8}{'x fp32':>8}{'PSNR dB':>9}")
    for row in deploy_rows(deploy, peak):
        mb = "" if row["mb"] is None else f"{row['mb']:.1f}"
        ratio = "" if row["size_vs_fp32"] is None else f"{row['size_vs_fp32']:.2f}"
        psnr = row["psnr_db"]
        psnr = "" if psnr is None or row["runner"] in ("keras", "torch") else (
            "inf" if psnr == float("inf") else f"{psnr:.1f}")
        out(f"  {row['runner']:<22}{row['min_s']:>8.3f}{row['median_s']:>10.3f}{row['time_vs_torch_min']:>9.2f}"
            f"{row['time_vs_torch_median']:>9.2f}{row['of_peak']:>8.2f}{mb:>8}{ratio:>8}{psnr:>9}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--candidates", default=",".join(DEFAULT_FORWARD),
                        help=f"forward candidates, from {sorted(FORWARD_CANDIDATES)}")
    parser.add_argument("--skip-deploy", action="store_true", help="only the forward comparison")
    parser.add_argument("--model", default=None, help="a trained .keras / run folder for the deploy part")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    candidates = args.candidates.split(",")
    unknown = [c for c in candidates if c not in FORWARD_CANDIDATES]
    if unknown:
        parser.error(f"unknown candidates {unknown}; choose from {sorted(FORWARD_CANDIDATES)}")
    result = {"machine": common.machine_info(), "code": common.code_version()}
    result["calibration_before"] = common.matmul_gflops()
    common.log(common.calibration_line("before", result["calibration_before"]))
    result["forward"] = run_forward(args.size, candidates, args.rounds, threads=args.threads)
    if not args.skip_deploy:
        result["deploy"] = run_deploy(args.size, max(2, args.rounds // 2), threads=args.threads, model=args.model)
    result["calibration_after"] = common.matmul_gflops()
    peak = max(result["calibration_before"]["best"], result["calibration_after"]["best"])
    print(common.describe_machine(result["machine"]) + f"; code {result['code']}")
    print(common.calibration_line("before", result["calibration_before"]))
    print_forward(result["forward"], peak)
    if "deploy" in result:
        print_deploy(result["deploy"], peak)
    print(common.calibration_line("after", result["calibration_after"]))
    if args.json:
        common.save_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
