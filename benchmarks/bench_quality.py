"""Translation quality with ground truth: the levers of CycleGAN and CUT, at an equal budget.

Two kinds of task, each with a true translation of every test image:

- **looks**: real photos and a subtle per-pixel look (`tfcyclegan.looks`;
  test crops from photos no training crop came from), the regime of a user
  with few images and a colour grade, a film look or a white balance;
- **synthetic**: the same landscape drawn in summer and in winter
  (`tfcyclegan.make_paired_dataset`): a large change, shared drawing program.

    python -c "import tfcyclegan.looks as l; l.make_look_dataset('looks_to', look='teal_orange')"
    python benchmarks/bench_quality.py --data looks_to --steps 3200 --seeds 0 1 --jobs 2
    python -c "import tfcyclegan; tfcyclegan.make_paired_dataset('pairs', n_train=200, n_test=20, size=64)"
    python benchmarks/bench_quality.py --data pairs --seconds 120 --seeds 0 1

`--data` is a CycleGAN layout (trainA/ trainB/ testA/ testB/, test pairs by
name) or the aligned one (train/ test/ of A|B images; the unpaired methods
train on the A and B halves shuffled apart, `ablate.unpaired_view`). Every run:
ResNet-6 generator, ngf/ndf 16, 70x70 PatchGAN, 64 px crops (load 72), batch 1,
Adam 2e-4, each (variant, seed) in its own process. The budget is `--steps`
(half at the constant rate, half decaying linearly to zero, as the paper's
schedule) or `--seconds` of wall time at the constant rate (equal time: a
slower variant takes fewer steps). Evaluation on the test pairs: PSNR / SSIM
to the truth, and the checkerboard score (energy at the period-2 frequencies
relative to the truth's: 1 = as much as the truth). The untouched input's
scores head every table. Prints one table; no asserts (a benchmark, not a test).
"""

import argparse
import concurrent.futures
import json
import os
import resource
import subprocess
import sys
import time

if not __package__:  # run as a script
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import common  # noqa: E402

SKIP = {"global_skip": True}
VARIANTS = {
    # variant: (method, {"section.field": value} over the method's published defaults)
    "cyclegan": ("cyclegan", {}),
    "cyclegan_resize_conv": ("cyclegan", {"model.upsample": "resize_conv"}),
    "skip": ("cyclegan", {"model.upsample": "resize_conv", "model.global_skip": True}),
    "skip_transpose": ("cyclegan", {"model.global_skip": True}),
    "skip_da": ("cyclegan", {"model.upsample": "resize_conv", "model.global_skip": True,
                             "train.diff_augment": "translation,cutout"}),
    "skip_da_color": ("cyclegan", {"model.upsample": "resize_conv", "model.global_skip": True,
                                   "train.diff_augment": "color,translation,cutout"}),
    "skip_no_identity": ("cyclegan", {"model.upsample": "resize_conv", "model.global_skip": True,
                                      "train.lambda_identity": 0.0}),
    "skip_identity_2": ("cyclegan", {"model.upsample": "resize_conv", "model.global_skip": True,
                                     "train.lambda_identity": 2.0}),
    "color": ("cyclegan", {"model.generator": "color"}),
    "color_kaiming": ("cyclegan", {"model.generator": "color", "model.init_type": "kaiming"}),
    "color_d_plain": ("cyclegan", {"model.generator": "color", "model.init_type": "kaiming", "model.d_norm": "none"}),
    "skip_d_plain": ("cyclegan", {"model.upsample": "resize_conv", "model.global_skip": True, "model.d_norm": "none"}),
    "skip_d_plain_da": ("cyclegan", {"model.upsample": "resize_conv", "model.global_skip": True, "model.d_norm": "none",
                                     "train.diff_augment": "translation,cutout"}),
    "hybrid": ("cyclegan", {"model.upsample": "resize_conv", "model.global_skip": True, "model.color_branch": True,
                            "model.d_norm": "none", "model.init_type": "kaiming"}),
    "hybrid_da": ("cyclegan", {"model.upsample": "resize_conv", "model.global_skip": True, "model.color_branch": True,
                               "model.d_norm": "none", "model.init_type": "kaiming",
                               "train.diff_augment": "translation,cutout"}),
    "color_d_plain_lr": ("cyclegan", {"model.generator": "color", "model.init_type": "kaiming", "model.d_norm": "none",
                                      "train.learning_rate": 1e-3}),
    "hybrid_lr": ("cyclegan", {"model.upsample": "resize_conv", "model.global_skip": True, "model.color_branch": True,
                               "model.d_norm": "none", "model.init_type": "kaiming", "train.learning_rate": 5e-4}),
    "hybrid_normal": ("cyclegan", {"model.upsample": "resize_conv", "model.global_skip": True,
                                   "model.color_branch": True, "model.d_norm": "none"}),
    "cyclegan_resize_conv_bf16": ("cyclegan", {"model.upsample": "resize_conv",
                                               "train.mixed_precision": "mixed_bfloat16"}),
    "cut": ("cut", {}),
    "cut_skip": ("cut", {"model.global_skip": True}),
    "fastcut": ("fastcut", {}),
}
DEFAULT_VARIANTS = ("cyclegan", "cyclegan_resize_conv", "skip", "skip_da", "cut")


def config_of(variant, seed, steps_per_epoch, epochs, epochs_decay):
    """The `Config` of one run: the benchmark's small networks, `variant`'s changes."""
    from tfcyclegan.config import Config

    method, changes = VARIANTS[variant]
    config = Config.for_method(method)
    sections = {
        "model": dict(generator="resnet_6blocks", ngf=16, ndf=16),
        "data": dict(load_size=72, crop_size=64),
        "train": dict(seed=seed, steps_per_epoch=steps_per_epoch, epochs=epochs, epochs_decay=epochs_decay),
    }
    if method in ("cut", "fastcut"):
        sections["model"]["nce_layers"] = (0, 4, 8, 12)  # the encoder of 6 blocks
    for setting, value in changes.items():
        section, field = setting.split(".")
        sections[section][field] = value
    return Config(
        model=config.model.replace(**sections["model"]),
        data=config.data.replace(**sections["data"]),
        train=config.train.replace(**sections["train"]),
    )


def run_one(variant, seed, data, steps, seconds, out):
    """Trains one variant to its budget and evaluates it; prints one JSON line."""
    import keras
    import numpy as np

    from tfcyclegan import ablate, evaluate, quality, runs
    from tfcyclegan import data as data_lib

    keras.utils.set_random_seed(seed)
    if steps:  # the paper's schedule in 8 "epochs": 4 constant, 4 decaying
        config = config_of(variant, seed, max(steps // 8, 1), 4, 4)
    else:
        config = config_of(variant, seed, 1000, 10_000, 0)
    if os.path.isdir(os.path.join(data, "trainA")):
        view = data
    else:
        view = ablate.unpaired_view(data, out)
    stream = data_lib.unpaired_dataset(os.path.join(view, "trainA"), os.path.join(view, "trainB"), config.data,
                                       seed=seed)
    model = runs.build_model(config, steps_per_epoch=config.train.steps_per_epoch)

    class Budget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.steps = None, 0

        def on_train_batch_end(self, batch, logs=None):
            if self.start is None:  # the first step traces the graph: not timed
                self.start = time.perf_counter()
            self.steps += 1
            if (steps and self.steps >= steps) or (seconds and time.perf_counter() - self.start > seconds):
                self.model.stop_training = True

    budget = Budget()
    epochs = 8 if steps else 10_000
    model.fit(stream.dataset, epochs=epochs, steps_per_epoch=config.train.steps_per_epoch,
              callbacks=[budget], verbose=0)
    elapsed = time.perf_counter() - budget.start
    split = evaluate.load_test_split(data, "a2b", 64)
    outputs = model.translate(split.inputs)
    report = evaluate.evaluate(lambda images: model.translate(images), split, fid=False, verbose=False)
    baseline = evaluate.paired_metrics(split.inputs, split.targets)
    print(json.dumps({
        "variant": variant, "seed": seed, "steps": budget.steps,
        "seconds_per_step": elapsed / max(budget.steps - 1, 1),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "psnr_db": report.paired["psnr_db"]["mean"], "ssim": report.paired["ssim"]["mean"],
        "checkerboard": float(quality.checkerboard_score(outputs, reference=split.targets)),
        "input_psnr_db": float(np.mean(baseline["psnr_db"])), "input_ssim": float(np.mean(baseline["ssim"])),
        "input_checkerboard": float(quality.checkerboard_score(split.inputs, reference=split.targets)),
        "params": int(sum(np.prod(w.shape) for w in model.G.weights)),
    }))


def _run(args, variant, seed):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if args.jobs > 1:  # each run on its own core
        env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1")
    command = [sys.executable, os.path.abspath(__file__), "--data", args.data, "--out", args.out,
               "--one", variant, str(seed)]
    command += ["--steps", str(args.steps)] if args.steps else ["--seconds", str(args.seconds)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        sys.exit(f"{variant} seed {seed} failed:\n{result.stderr[-3000:]}")
    row = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a look dataset (trainA/ ... testB/) or aligned pairs")
    parser.add_argument("--out", default="quality_study", help="scratch folder (the unpaired view)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="training steps per run (the paper's schedule over them)")
    budget.add_argument("--seconds", type=float, help="training wall time per run (constant rate)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at once, one thread each (for a --steps budget; keep 1 for --seconds)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.steps and not args.seconds:
        args.seconds = 150.0
    if args.one:
        return run_one(args.one[0], int(args.one[1]), args.data, args.steps, args.seconds, args.out)

    budget_text = f"{args.steps} steps" if args.steps else f"{args.seconds:.0f} s of training"
    print(f"# {common.describe_machine(common.machine_info())}")
    print(f"# {args.data}: {budget_text} per run, {args.jobs} at once")
    print(common.calibration_line("before", common.matmul_gflops()))
    jobs = [(variant, seed) for seed in args.seeds for variant in args.variants]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda job: _run(args, *job), jobs))
    print(common.calibration_line("after", common.matmul_gflops()))
    first = rows[0]
    print("\n| variant | seed | steps | s/step | PSNR dB | SSIM | checkerboard (truth = 1) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| untouched input | - | - | - | {first['input_psnr_db']:.2f} | {first['input_ssim']:.3f} | "
          f"{first['input_checkerboard']:.2f} |")
    for row in rows:
        print(f"| {row['variant']} | {row['seed']} | {row['steps']} | {row['seconds_per_step']:.3f} | "
              f"{row['psnr_db']:.2f} | {row['ssim']:.3f} | {row['checkerboard']:.2f} |")
    if args.json:
        common.save_json({"machine": common.machine_info(), "data": args.data, "budget": budget_text,
                          "rows": rows}, args.json)


if __name__ == "__main__":
    main()
