"""Translation quality at equal training time: CycleGAN (as the paper), its checkerboard-free
generators, CUT and FastCUT, on the synthetic pairs (ground truth for every test image).

    python benchmarks/bench_quality.py --data pairs/ --seconds 150 --seeds 0 1

`pairs/` is the aligned layout (`tfcyclegan.make_paired_dataset`); the unpaired methods
train on its A and B halves shuffled apart (`ablate.unpaired_view`). Each (variant, seed)
trains in its own process for `--seconds` of wall time (fit stops after the step that
crosses it), with the same architecture (ResNet 6 blocks, 16 filters, 70x70 PatchGAN with
16), 64 px crops, batch 1 and a constant learning rate 2e-4; the seeds run interleaved so
that machine noise spreads over every variant. Then each is evaluated on the held-out
pairs: PSNR / SSIM to the truth, and the checkerboard score (energy at the period-2
frequencies relative to the truth's: 1 = as much as the truth, higher = checkerboard).
Prints one table; no asserts (a benchmark, not a test).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

VARIANTS = {
    "cyclegan": dict(method="cyclegan", upsample="transpose"),
    "cyclegan_resize_conv": dict(method="cyclegan", upsample="resize_conv"),
    "cut": dict(method="cut", upsample="antialias"),
    "fastcut": dict(method="fastcut", upsample="antialias"),
}


def run_one(variant, seed, data, seconds, out):
    """Trains one variant for `seconds` and evaluates it; prints one JSON line."""
    import keras
    import numpy as np

    from tfcyclegan import ablate, data as data_lib, evaluate, quality
    from tfcyclegan.config import DataConfig, ModelConfig
    from tfcyclegan.models import CUT, CycleGAN
    from tfcyclegan.models.base import default_adam

    keras.utils.set_random_seed(seed)
    spec = VARIANTS[variant]
    config = ModelConfig(generator="resnet_6blocks", ngf=16, ndf=16, upsample=spec["upsample"])
    if spec["method"] == "cyclegan":
        model = CycleGAN.from_model_config(config, seed=seed)
        model.compile(default_adam(), default_adam())
    else:
        model = CUT.from_model_config(config, mode=spec["method"], seed=seed)
        model.compile(default_adam(), default_adam())
    view = ablate.unpaired_view(data, out)
    stream = data_lib.unpaired_dataset(view / "trainA", view / "trainB", DataConfig(load_size=72, crop_size=64),
                                       seed=seed)

    class Budget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.steps = None, 0

        def on_train_batch_end(self, batch, logs=None):
            if self.start is None:  # the first step traces the graph: not counted
                self.start = time.perf_counter()
                return
            self.steps += 1
            if time.perf_counter() - self.start > seconds:
                self.model.stop_training = True

    budget = Budget()
    model.fit(stream.dataset, epochs=10_000, steps_per_epoch=stream.steps_per_epoch, callbacks=[budget],
              verbose=0)
    elapsed = time.perf_counter() - budget.start
    split = evaluate.load_test_split(data, "a2b", 64)
    outputs = model.translate(split.inputs)
    report = evaluate.evaluate(lambda images: model.translate(images), split, fid=False, verbose=False)
    print(json.dumps({
        "variant": variant, "seed": seed, "steps": budget.steps + 1,
        "seconds_per_step": elapsed / max(budget.steps, 1),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "psnr_db": report.paired["psnr_db"]["mean"], "ssim": report.paired["ssim"]["mean"],
        "checkerboard": float(quality.checkerboard_score(outputs, reference=split.targets)),
        "input_checkerboard": float(quality.checkerboard_score(split.inputs, reference=split.targets)),
        "params": int(sum(np.prod(w.shape) for w in model.G.weights)),
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="aligned synthetic pairs (train/ test/)")
    parser.add_argument("--out", default="quality_study", help="scratch folder (the unpaired view)")
    parser.add_argument("--seconds", type=float, default=150.0, help="training wall time per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args.one[0], int(args.one[1]), args.data, args.seconds, args.out)

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    isa = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags)
    print(f"# {cpu} ({isa}), {os.cpu_count()} cores; {args.seconds:.0f} s of training per run")
    rows = []
    for seed in args.seeds:
        for variant in args.variants:
            result = subprocess.run(
                [sys.executable, __file__, "--data", args.data, "--out", args.out, "--seconds",
                 str(args.seconds), "--one", variant, str(seed)],
                capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
            )
            if result.returncode:
                sys.exit(f"{variant} seed {seed} failed:\n{result.stderr[-3000:]}")
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print("| variant | seed | steps | s/step | peak RSS GiB | PSNR dB | SSIM | checkerboard (truth = 1) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['variant']} | {row['seed']} | {row['steps']} | {row['seconds_per_step']:.3f} | "
              f"{row['peak_rss_gib']:.2f} | {row['psnr_db']:.2f} | {row['ssim']:.3f} | {row['checkerboard']:.2f} |")
    print(f"(The untouched input scores checkerboard {rows[0]['input_checkerboard']:.2f}.)")


if __name__ == "__main__":
    main()
