"""Runs every benchmark, side by side with the PyTorch reference, and regenerates README.md.

One run, one machine, between two calibration lines:

1. fidelity: the PyTorch harness (torch_reference.py) computes what the
   authors' code and ours compute (parameter counts, outputs to 1e-4);
2. generator forward at 256 px, Keras against PyTorch (issue #2);
3. deployable inference paths (SavedModel, TFLite fp32/fp16/int8 on XNNPACK)
   against the PyTorch forward, with sizes and PSNR;
4. training steps at 128 and 256 px against the PyTorch training iteration,
   with XLA on/off, mixed_bfloat16 reported apart, and peak RSS;
5. the input pipeline's rate (bench_data.py) against the training step's
   consumption at 256 px.

Then writes benchmarks/README.md (the table is generated from the measured
figures: never edit it by hand) and benchmarks/results.json.

    python benchmarks/run_all.py            # the full set: ~20-30 minutes on 2 cores
    python benchmarks/run_all.py --quick    # a few minutes: fewer rounds, training at 128 only

Targets are issue #9's; "met" is judged on min times (the least-disturbed
runs) and shown next to the medians.
"""

import argparse
import os
import sys
import time

if not __package__:  # run as a script
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import bench_generator, bench_train, common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

TARGETS = {
    "train_speedup": 1.25,  # x the reference's training throughput at 256 px (fp32)
    "train_gflops": 135.0,  # achieved GFLOP/s at 256 px (fp32)
    "inference_ratio": 0.75,  # fastest deployable path's time / the reference's
    "inference_psnr_db": 40.0,  # ... among paths this close to float32 (ours: a quality floor)
    "fp16_size": 0.5,  # x the fp32 file
    "int8_size": 0.25,
    "pipeline_margin": 20.0,  # x the training step's consumption at 256 px
    "peak_rss_gib": 4.0,
}

FLOAT32_PATHS = ("saved_model",)  # plus every tflite_fp32* file

FULL = dict(
    forward=dict(size=256, candidates=("torch", "keras", "keras_jit", "keras_bf16"), rounds=5),
    deploy=dict(size=256, rounds=3, iters=2, variants=bench_generator.DEPLOY_VARIANTS),
    train={
        128: dict(candidates=("torch", "keras", "keras_jit", "keras_bf16"), rounds=5, warmup=2),
        256: dict(candidates=("torch", "keras", "keras_jit", "keras_bf16"), rounds=4, warmup=2),
    },
    data=dict(images=200, steps=300, repeats=2),
)
QUICK = dict(
    forward=dict(size=256, candidates=("torch", "keras"), rounds=3),
    deploy=dict(size=256, rounds=2, iters=1, variants=("fp32", "fp16", "int8", "fp32_fixed")),
    train={128: dict(candidates=("torch", "keras"), rounds=2, warmup=1)},
    data=dict(images=60, steps=100, repeats=1),
)


class PipelineRate:
    """bench_data's pipeline throughput on generated JPEG folders, as a Worker candidate."""

    def __init__(self, images=200, steps=300):
        import tempfile

        from benchmarks import bench_data

        self.steps = steps
        self._root = tempfile.TemporaryDirectory()
        self.folders = bench_data.make_jpeg_domains(self._root.name, images)
        self._bench_data = bench_data

    def rate(self):
        """Images per second (x and y) of `unpaired_dataset` at the paper's 286 -> 256 setting."""
        a, b = self.folders
        return self._bench_data.pipeline_images_per_second(a, b, self._bench_data.PAPER, self.steps)

    def run(self):
        return self.rate()


def measure(settings, log=common.log):
    result = {
        "machine": common.machine_info(),
        "code": common.code_version(),
        "command": "python benchmarks/run_all.py" + (" --quick" if settings is QUICK else ""),
        "threads": 2,
        "quick": settings is QUICK,
    }
    start = time.perf_counter()
    result["calibration_before"] = common.matmul_gflops()
    log(common.calibration_line("before", result["calibration_before"]))

    log("fidelity of the PyTorch harness")
    with common.Worker("benchmarks.torch_reference", "FidelityCheck", label="fidelity") as check:
        result["fidelity"] = check.call("result")

    log("generator forward")
    result["forward"] = bench_generator.run_forward(**settings["forward"], log=log)

    log("deployable inference paths")
    result["deploy"] = bench_generator.run_deploy(**settings["deploy"], log=log)

    result["train"] = {}
    for size, train in settings["train"].items():
        log(f"training step at {size} px")
        measured = bench_train.run((size,), train["candidates"], train["rounds"], train["warmup"], log=log)
        result["train"][size] = measured["sizes"][size]
        result["train_calibration_" + str(size)] = [measured["calibration_before"], measured["calibration_after"]]

    log("input pipeline")
    data = settings["data"]
    with common.Worker("benchmarks.run_all", "PipelineRate", label="pipeline",
                       images=data["images"], steps=data["steps"]) as pipeline:
        result["pipeline"] = [pipeline.call("rate") for _ in range(data["repeats"])]

    result["calibration_after"] = common.matmul_gflops()
    log(common.calibration_line("after", result["calibration_after"]))
    result["seconds"] = time.perf_counter() - start
    return result


# === The README ===


def _fmt(value, digits=2):
    return "–" if value is None else f"{value:.{digits}f}"


def _met(ok):
    return "**met**" if ok else "**not met**"


def summary(result):
    """The targets of issue #9, each with its measured figure and whether it is met."""
    peak = max(result["calibration_before"]["best"], result["calibration_after"]["best"])
    rows = []
    train_size = 256 if 256 in result["train"] or "256" in result["train"] else min(int(s) for s in result["train"])
    train = result["train"].get(train_size, result["train"].get(str(train_size)))
    flop = common.train_step_gflop(train_size)
    keras, torch = train["keras"], train["torch"]
    speedup = torch["min"] / keras["min"]
    speedup_median = torch["median"] / keras["median"]
    rows.append((
        f"training step, {train_size} px, fp32: ≥ {TARGETS['train_speedup']}× the reference's throughput",
        f"{keras['min']:.2f} s (median {keras['median']:.2f}) vs PyTorch {torch['min']:.2f} s "
        f"(median {torch['median']:.2f})",
        f"{speedup:.2f}× (median {speedup_median:.2f}×)",
        _met(speedup >= TARGETS["train_speedup"]),
    ))
    gflops = flop / keras["min"]
    rows.append((
        f"training step, {train_size} px, fp32: ≥ {TARGETS['train_gflops']:.0f} GFLOP/s",
        f"{gflops:.0f} GFLOP/s ({gflops / peak:.2f} of the {peak:.0f} GFLOP/s matmul peak); "
        f"PyTorch {flop / torch['min']:.0f}",
        f"{gflops / TARGETS['train_gflops']:.2f}× target",
        _met(gflops >= TARGETS["train_gflops"]),
    ))
    if "keras_bf16" in train:
        bf16 = train["keras_bf16"]
        rows.append((
            f"training step, {train_size} px, mixed_bfloat16 (not the paper's fp32; for information)",
            f"{bf16['min']:.2f} s (median {bf16['median']:.2f})",
            f"{torch['min'] / bf16['min']:.2f}× PyTorch fp32 (median {torch['median'] / bf16['median']:.2f}×)",
            "–",
        ))

    deploy = result["deploy"]
    latency, quality = deploy["latency"], deploy["quality"]
    torch_min, torch_median = latency["torch"]["min"], latency["torch"]["median"]

    def psnr(name):
        value = quality[name]["psnr_db"]
        return float("inf") if value is None else value

    def fastest(names):
        return min(names, key=lambda k: latency[k]["min"])

    deployable = [k for k in latency if k.startswith(("tflite_", "saved_model"))]
    faithful = [k for k in deployable if psnr(k) >= TARGETS["inference_psnr_db"]]
    float32 = [k for k in deployable if k in FLOAT32_PATHS or k.startswith("tflite_fp32")]
    for label, names, judged in (
        (f"inference, {deploy['size']} px: fastest deployable path ≤ {TARGETS['inference_ratio']}× the "
         f"reference's time (paths within {TARGETS['inference_psnr_db']:.0f} dB PSNR of float32)", faithful, True),
        ("inference: fastest float32 path (for information)", float32, False),
        ("inference: fastest path at any quality (for information)", deployable, False),
    ):
        if not names:
            continue
        best = fastest(names)
        ratio = latency[best]["min"] / torch_min
        shown = "∞" if psnr(best) == float("inf") else f"{psnr(best):.1f}"
        rows.append((
            label,
            f"{best}: {latency[best]['min']:.3f} s (median {latency[best]['median']:.3f}) vs PyTorch "
            f"{torch_min:.3f} s (median {torch_median:.3f}); PSNR {shown} dB",
            f"{ratio:.2f}× (median {latency[best]['median'] / torch_median:.2f}×)",
            _met(ratio <= TARGETS["inference_ratio"]) if judged else "–",
        ))
    sizes = deploy["bytes"]
    fp32 = sizes.get("tflite_fp32")
    for variant, target in (("fp16", TARGETS["fp16_size"]), ("int8", TARGETS["int8_size"])):
        key = f"tflite_{variant}"
        if key in sizes and fp32:
            psnr = deploy["quality"][key]["psnr_db"]
            rows.append((
                f"TFLite {variant} file ≈ {target}× the fp32 file, PSNR vs fp32 printed",
                f"{sizes[key] / 1e6:.1f} MB vs {fp32 / 1e6:.1f} MB; PSNR {psnr:.1f} dB vs Keras fp32 "
                f"({deploy['weights']} weights)",
                f"{sizes[key] / fp32:.3f}×",
                _met(sizes[key] / fp32 <= target * 1.02),
            ))

    pipeline = max(result["pipeline"])
    consumption = 2 / train["keras"]["min"]
    rows.append((
        f"input pipeline ≥ {TARGETS['pipeline_margin']:.0f}× the training step's consumption ({train_size} px)",
        f"{pipeline:.0f} images/s vs {consumption:.2f} images/s consumed (x and y per step)",
        f"{pipeline / consumption:.0f}×",
        _met(pipeline / consumption >= TARGETS["pipeline_margin"]),
    ))
    rss = keras["peak_rss"] / 2**30
    rows.append((
        f"peak resident memory while training at {train_size} px ≤ {TARGETS['peak_rss_gib']:.0f} GiB",
        f"{rss:.2f} GiB (PyTorch reference: {torch['peak_rss'] / 2**30:.2f} GiB)",
        f"{rss / TARGETS['peak_rss_gib']:.2f}× limit",
        _met(rss <= TARGETS["peak_rss_gib"]),
    ))
    return rows


def render(result):
    """benchmarks/README.md from `result` (everything in it comes from the measurement)."""
    machine = result["machine"]
    peak = max(result["calibration_before"]["best"], result["calibration_after"]["best"])
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/run_all.py from benchmarks/results.json. Do not edit by hand: "
        "rerun `python benchmarks/run_all.py`. -->",
        "",
        f"Generated by `{result['command']}` on {machine['date']}"
        + (" (**quick mode**: fewer rounds, training at 128 px only)" if result["quick"] else "")
        + f", in {result['seconds'] / 60:.0f} minutes.",
        "",
        f"- machine: {machine['cpu']}, {machine['cpus']} CPUs, ISA {', '.join(machine['isa'])}, "
        f"{machine['memory_gib']} GiB; load average at start {machine['load_average']}",
        f"- software: python {machine['python']}, tensorflow {machine['tensorflow']} (oneDNN opts "
        f"{machine['onednn_opts']}), keras {machine['keras']}, torch {machine['torch']}, "
        f"ai-edge-litert {machine['ai_edge_litert']}; tfcyclegan at {result['code']}",
        f"- threads: {result['threads']} everywhere (TensorFlow intra-op, torch.set_num_threads, LiteRT)",
        f"- calibration (GFLOP/s of a 2048² float32 matmul, TensorFlow): before "
        f"{result['calibration_before']['best']:.0f} best / {result['calibration_before']['median']:.0f} median, "
        f"after {result['calibration_after']['best']:.0f} / {result['calibration_after']['median']:.0f}. "
        f"\"Peak\" below is {peak:.0f} GFLOP/s, the best of these.",
        "- method: every candidate runs in its own process, is warmed up, and is timed interleaved "
        "with the others (A B A B ...); **min** is the least-disturbed run (what the code costs), "
        "**median** what a busy machine gives. The machine is shared: treat differences under ~5% as noise.",
        "- the PyTorch reference is `benchmarks/torch_reference.py`, our re-implementation of the authors' "
        "networks and `optimize_parameters` (their code is not vendored); its fidelity is checked below.",
        "",
        "## Targets (issue #9)",
        "",
        "| target | measured | ratio | |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in summary(result)]

    lines += ["", "## Training step", "",
              "Paper configuration: ResNet-9 ngf 64 generators, 70×70 PatchGAN ndf 64, LSGAN, identity 0.5, "
              "pool 50, Adam, batch 1 (ResNet-9 at both sizes). One step consumes 2 images (x and y). "
              "GFLOP/s counts 1.9 TFLOP per step at 256 px (0.475 at 128).",
              "",
              "| px | candidate | min s | median s | runs | images/s | GFLOP/s | × peak | × PyTorch (min) | "
              "× PyTorch (median) | peak RSS GiB |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    calibration = {"best": peak}
    for size in sorted(result["train"], key=int):
        measured = result["train"][size]
        table = bench_train.rows({"sizes": {size: measured}, "calibration_before": calibration,
                                  "calibration_after": calibration})
        for row in table:
            lines.append(
                f"| {row['size']} | {row['candidate']} | {row['min_s']:.2f} | {row['median_s']:.2f} | {row['n']} | "
                f"{row['images_per_s']:.3f} | {row['gflops']:.0f} | {row['of_peak']:.2f} | "
                f"{_fmt(row['vs_reference_min'])} | {_fmt(row['vs_reference_median'])} | {row['peak_rss_gib']:.2f} |"
            )
    lines += ["", "`keras` is tfcyclegan as shipped (`train_on_batch`, default TensorFlow settings); "
              "`keras_jit` the same with `jit_compile=True`; `keras_bf16` the `mixed_bfloat16` policy "
              "(AVX512_BF16; not the paper's float32). `torch` is the reference iteration, 2 threads."]

    forward = result["forward"]
    lines += ["", "## Generator forward (issue #2)", "",
              f"One ResNet-9 ngf 64 forward, {forward['size']}×{forward['size']}, batch 1, "
              f"{common.generator_gflop(forward['size']):.1f} GFLOP.", "",
              "| candidate | min s | median s | runs | GFLOP/s | × peak | × PyTorch (min) | × PyTorch (median) |",
              "|---|---|---|---|---|---|---|---|"]
    for row in bench_generator.forward_rows(forward, peak):
        lines.append(
            f"| {row['candidate']} | {row['min_s']:.3f} | {row['median_s']:.3f} | {row['n']} | {row['gflops']:.0f} | "
            f"{row['of_peak']:.2f} | {_fmt(row['vs_torch_min'])} | {_fmt(row['vs_torch_median'])} |"
        )

    deploy = result["deploy"]
    bf16 = "avx512_bf16" in machine["isa"]
    lines += ["", "## Deployable inference paths", "",
              f"{deploy['size']}×{deploy['size']}, batch 1, {deploy['threads']} threads; TFLite files run on "
              f"LiteRT's CPU path (XNNPACK); `saved_model_bf16` is the SavedModel exported with "
              f"`--saved-model-dtype bfloat16` (bfloat16 arithmetic, native on CPUs with AVX512_BF16 or "
              f"AMX, emulated and slower on others; this one {'has' if bf16 else 'lacks'} AVX512_BF16). "
              f"PSNR against Keras float32 on two synthetic scenes, "
              f"{deploy['weights']} weights (on trained weights the quantized PSNR is what users see). "
              "Time ratios are against the PyTorch forward measured in the same rounds; × peak is the "
              f"{common.generator_gflop(deploy['size']):.1f} GFLOP of a forward per second (min time) over "
              "the float32 matmul peak (bfloat16 and int8 arithmetic can exceed 1).", "",
              "| runner | min s | median s | × PyTorch (min) | × PyTorch (median) | GFLOP/s | × peak | MB | "
              "× fp32 file | PSNR dB |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for row in bench_generator.deploy_rows(deploy, peak):
        psnr = row["psnr_db"]
        psnr = "–" if psnr is None or row["runner"] in ("keras", "torch") else (
            "∞" if psnr == float("inf") else f"{psnr:.1f}")
        lines.append(
            f"| {row['runner']} | {row['min_s']:.3f} | {row['median_s']:.3f} | {row['time_vs_torch_min']:.2f} | "
            f"{row['time_vs_torch_median']:.2f} | {row['gflops']:.0f} | {row['of_peak']:.2f} | "
            f"{_fmt(row['mb'], 1)} | {_fmt(row['size_vs_fp32'], 3)} | {psnr} |"
        )

    lines += ["", "## Input pipeline", "",
              "`tfcyclegan.data.unpaired_dataset` at the paper's setting (400×300 JPEGs, resize 286, crop 256, "
              "flip, batch 1), measured alone with both cores (bench_data.py): "
              + ", ".join(f"{r:.0f}" for r in result["pipeline"]) + " images/s."]

    lines += ["", "## Fidelity of the PyTorch harness", "",
              "| check | value | |", "|---|---|---|"]
    for check, value, passed in result["fidelity"]:
        shown = f"{value:,}" if isinstance(value, int) else f"{value:.1e}"
        lines.append(f"| {check} | {shown} | {'ok' if passed else '**FAIL**'} |")

    lines += ["", "## Reproduce", "",
              "```",
              "python benchmarks/run_all.py [--quick]     # everything, regenerates this file",
              "python benchmarks/bench_train.py --sizes 256 --candidates torch,keras,keras_jit",
              "python benchmarks/bench_train.py --sizes 256 --candidates keras@HEAD~1,keras   # before/after a change",
              "python benchmarks/bench_generator.py       # forward + deployable paths",
              "python benchmarks/torch_reference.py       # harness fidelity checks, a few reference steps",
              "python benchmarks/bench_data.py            # input pipeline details",
              "python benchmarks/bench_inference.py       # inference details (Keras baseline)",
              "python benchmarks/bench_isa.py --readme    # native vs AVX2 vs the reference (the isa block below)",
              "TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/bench_conv_gradients.py  # each conv's gradient: TF's vs kernels.conv's",
              "```", ""]
    return "\n".join(lines)


def _isa_block(readme):
    """The native-vs-AVX2 tables bench_isa.py wrote into `readme` (kept across runs), or None."""
    import re

    try:
        with open(readme) as f:
            text = f.read()
    except OSError:
        return None
    from benchmarks import bench_isa

    match = re.search(re.escape(bench_isa.BEGIN) + ".*?" + re.escape(bench_isa.END), text, re.S)
    return match.group(0) if match else None


def _keep_isa_block(readme, block):
    if block:
        from benchmarks import bench_isa

        bench_isa.write_readme(block, readme)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes: fewer rounds, 128 px training only")
    parser.add_argument("--readme", default=os.path.join(HERE, "README.md"))
    parser.add_argument("--json", default=os.path.join(HERE, "results.json"))
    parser.add_argument("--from-json", default=None, help="regenerate the README from saved results only")
    args = parser.parse_args(argv)
    previous = _isa_block(args.readme)
    if args.from_json:
        import json

        with open(args.from_json) as f:
            result = json.load(f)
    else:
        result = measure(QUICK if args.quick else FULL)
        common.save_json(result, args.json)
    text = render(result)
    with open(args.readme, "w") as f:
        f.write(text)
    _keep_isa_block(args.readme, previous)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
