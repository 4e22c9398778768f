"""Distilled students against their teacher: MACs, parameters, LiteRT latency, size, PSNR (issue #18).

For a trained teacher run and its student runs (`tfcyclegan distill`), side by side in one
process:

- parameters of each generator, and MACs per image at `--size` (256) counted from the
  fixed-size fp32 TFLite graph: every CONV_2D (output pixels x kernel area x input channels x
  output channels), DEPTHWISE_CONV_2D (output pixels x kernel area x channels) and
  TRANSPOSE_CONV (*input* pixels x kernel area x input x output channels: the arithmetic a
  transposed convolution does; counting its output pixels, as PyTorch profilers do, gives
  the issue's 56.8 GMAC for ResNet-9 instead of 49.6);
- TFLite fp32 / fp16 / int8 (calibrated on `--calibration-images` A halves of train/, resized
  to `--size`; 4 by default: the converter's calibration of ResNet-9 at 256 px holds ~0.5 GB
  per image, and latency does not depend on it) file sizes, and their
  LiteRT latency (XNNPACK, `--threads`, batch 1) on a fixed `--size` file, plus the
  dynamic-size fp32 file resized to `--size`: min / median over interleaved rounds;
- PSNR of each student's output to the teacher's (Keras float32) on the test split at the
  training size, and each generator's PSNR / SSIM to the ground truth the synthetic pairs have.

Latency does not depend on the weights' values, so it is measured at 256 px although the
networks trained at 64 px. Prints one Markdown table; no asserts (a benchmark, not a test).

    python benchmarks/bench_distill.py --teacher runs/teacher --students runs/mobile runs/resnet \\
        --data pairs/
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if not __package__:  # run as a script
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import common  # noqa: E402
from benchmarks.bench_int8 import _input_domain, _runner  # noqa: E402


def tflite_macs(flatbuffer):
    """Multiply-accumulates of one run of a fixed-size .tflite model, from its convolutions."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    shapes = {t["index"]: tuple(t["shape"]) for t in interpreter.get_tensor_details()}
    total = 0
    for op in interpreter._get_ops_details():
        name, inputs, outputs = op["op_name"], op["inputs"], op["outputs"]
        if name == "CONV_2D":  # input, filter (O, kh, kw, I), bias
            _, kh, kw, cin = shapes[inputs[1]]
            total += np.prod(shapes[outputs[0]]) * kh * kw * cin
        elif name == "DEPTHWISE_CONV_2D":  # input, filter (1, kh, kw, C * multiplier), bias
            _, kh, kw, _ = shapes[inputs[1]]
            total += np.prod(shapes[outputs[0]]) * kh * kw
        elif name == "TRANSPOSE_CONV":  # output_shape, filter (O, kh, kw, I), input, bias
            cout, kh, kw, _ = shapes[inputs[1]]
            total += np.prod(shapes[inputs[2]]) * kh * kw * cout
    return int(total)


def generators(teacher_run, student_runs):
    """{label: generator}: the teacher's G, then each student's G (labelled with its run folder)."""
    from tfcyclegan.export.loading import as_float32
    from tfcyclegan.training import load_run_model

    found = {}
    teacher = load_run_model(teacher_run).generator("a2b")
    found[f"teacher {_describe(teacher)}"] = as_float32(teacher)
    for run in student_runs:
        model = load_run_model(run)
        objective = model.get_compile_config() or {}
        extra = f", λ_feature {objective['lambda_feature']:g}" if objective.get("lambda_feature") else ""
        found[f"student {_describe(model.G)}{extra} ({os.path.basename(os.path.normpath(run))})"] = (
            as_float32(model.G))
    return found


def _describe(generator):
    kind = "mobile ResNet" if type(generator).__name__ == "MobileResnetGenerator" else "ResNet"
    return f"{kind}-{generator.n_blocks} ngf {generator.ngf}"


def build(teacher_run, student_runs, data, size=256, calibration_images=4, log=common.log):
    """Each generator's files, counts and quality; a dict."""
    import numpy as np

    from tfcyclegan.evaluate import load_test_split, paired_metrics
    from tfcyclegan.export import tflite
    from tfcyclegan.export.loading import training_size
    from tfcyclegan.export.parity import psnr
    from tfcyclegan.models import translate_with

    trained = (training_size(teacher_run) or (256, 256))[0]
    split = load_test_split(data, "a2b", trained)
    calibration = _input_domain(data, size, calibration_images)
    rows = {}
    teacher_outputs = None
    for label, generator in generators(teacher_run, student_runs).items():
        log(f"converting {label}")
        files = {
            "fp32": tflite.convert_tflite(generator, "fp32", input_size=(size, size)),
            "fp16": tflite.convert_tflite(generator, "fp16", input_size=(size, size)),
            "int8": tflite.convert_tflite(generator, "int8", calibration, input_size=(size, size)),
            "fp32_dynamic": tflite.convert_tflite(generator, "fp32", default_input_size=(size, size)),
        }
        outputs = translate_with(generator, split.inputs)
        if teacher_outputs is None:
            teacher_outputs = outputs
        truth = paired_metrics(outputs, split.targets)
        rows[label] = {
            "params": int(sum(np.prod(w.shape) for w in generator.weights)),
            "macs": tflite_macs(files["fp32"]),
            "files": files,
            "psnr_teacher": psnr(outputs, teacher_outputs),
            "psnr_truth": float(truth["psnr_db"].mean()),
            "ssim_truth": float(truth["ssim"].mean()),
        }
    return {"size": size, "trained": trained, "test_images": len(split.inputs), "rows": rows,
            "image": calibration[0]}


def measure(built, threads=2, rounds=5, iters=5, log=common.log):
    """min / median seconds per image of every file, interleaved (A B C A B C ...)."""
    runners = {(label, name): _runner(flatbuffer, built["size"], threads)
               for label, row in built["rows"].items() for name, flatbuffer in row["files"].items()}
    return common.interleave_calls(runners, built["image"], rounds, iters, log)


def table(built, latency):
    """The Markdown table: one row per generator, ratios against the teacher (the first row)."""
    rows = built["rows"]
    first = next(iter(rows))
    t_macs = rows[first]["macs"]
    t_ms = {name: latency[(first, name)]["median"] for name in rows[first]["files"]}
    lines = [
        f"| generator | params | GMAC @{built['size']} | MACs ÷ | fp32 ms (÷) | fp16 ms (÷) | int8 ms (÷) "
        f"| fp32 dynamic ms (÷) | fp32 / fp16 / int8 KB | PSNR to teacher dB | PSNR / SSIM to truth |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, row in rows.items():
        ms = []
        for name in ("fp32", "fp16", "int8", "fp32_dynamic"):
            entry = latency[(label, name)]
            ms.append(f"{entry['median'] * 1e3:.0f} ({t_ms[name] / entry['median']:.1f}×)")
        kb = " / ".join(f"{len(row['files'][n]) / 1024:.0f}" for n in ("fp32", "fp16", "int8"))
        to_teacher = "–" if label == first else f"{row['psnr_teacher']:.2f}"
        lines.append(
            f"| {label} | {row['params'] / 1e6:.3f} M | {row['macs'] / 1e9:.2f} | "
            f"{t_macs / row['macs']:.1f}× | {' | '.join(ms)} | {kb} | {to_teacher} | "
            f"{row['psnr_truth']:.2f} / {row['ssim_truth']:.3f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", required=True, help="the teacher's run folder")
    parser.add_argument("--students", nargs="+", required=True, help="student run folders (tfcyclegan distill)")
    parser.add_argument("--data", required=True, help="the aligned pairs (train/, test/) with ground truth")
    parser.add_argument("--size", type=int, default=256, help="latency and MACs at size x size (256)")
    parser.add_argument("--calibration-images", type=int, default=4, help="int8 calibration images (4)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    machine = common.machine_info()
    before = common.matmul_gflops()
    common.log(common.calibration_line("before", before))
    built = build(args.teacher, args.students, args.data, args.size, args.calibration_images)
    latency = measure(built, args.threads, args.rounds, args.iters)
    after = common.matmul_gflops()
    print(common.describe_machine(machine) + f"; code {common.code_version()}")
    print(common.calibration_line("before", before))
    print(
        f"teacher {args.teacher}; PSNR on {built['test_images']} test pairs of {args.data} at "
        f"{built['trained']} px (Keras float32); MACs and latency at {args.size}x{args.size}: LiteRT "
        f"XNNPACK, {args.threads} threads, batch 1, median of {args.rounds} interleaved rounds x "
        f"{args.iters} calls (÷: the teacher's time / this one's)"
    )
    print(table(built, latency))
    print(common.calibration_line("after", after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
