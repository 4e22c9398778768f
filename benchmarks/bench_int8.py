"""Quantized TFLite files on trained weights: size, LiteRT latency, PSNR (issue #18).

For a trained run's generator (a2b) and its aligned test split, every variant
side by side in one process, between two calibration lines:

- fp32, fp16, dynamic_int8;
- int8_plain: full int8 as exported before issue #18 (no equalization);
- int8: full int8 as exported now (instance-norm equalization,
  `quantization.equalize_instance_norm`), calibrated on input-domain images at the
  training size (the A halves of train/), and `int8_uint8` (pixel I/O);
- int8_abcal: the same, calibrated on the test folder's A|B images, as
  `--representative-data data/test` does on an aligned dataset;
- int8_float_norm (with --float-island): the plain int8 file with the
  instance-norm ops kept in float (QuantizationDebugger denylist; builtin ops,
  but no longer fully integer);
- int16x8 is tried and reported: LiteRT has no int16 SQUARED_DIFFERENCE.

Figures: file size; latency on LiteRT (XNNPACK, `--threads`), fixed-size
file and dynamic-size file at the training size, min / median over
interleaved rounds; PSNR against Keras float32 and max abs error; PSNR / SSIM
against the ground truth (`evaluate.paired_metrics`).

    python benchmarks/bench_int8.py --run /tmp/abl/study/runs/cyclegan --data /tmp/abl/data
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if not __package__:  # run as a script
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import common  # noqa: E402

NORM_OPS = ("MEAN", "SQUARED_DIFFERENCE", "RSQRT", "ADD", "SUB", "MUL")


def _input_domain(data, size, count, channels=3):
    """`count` A halves of `data`/train (aligned A|B), resized to `size`, as [1, S, S, C]."""
    import numpy as np
    import tensorflow as tf

    from tfcyclegan import imaging
    from tfcyclegan.export.loading import sample_folder

    arrays = []
    for pixels in sample_folder(os.path.join(data, "train"), count, channels):
        half = imaging.to_float_array(pixels[:, : pixels.shape[1] // 2])
        arrays.append(tf.image.resize(half, (size, size), method="area", antialias=True).numpy())
    return [np.asarray(a, np.float32)[None] for a in arrays]


def _runner(flatbuffer, size, threads):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
    detail = interpreter.get_input_details()[0]
    shape = [1, size, size, int(detail["shape_signature"][-1])]
    if list(detail["shape"]) != shape:
        interpreter.resize_tensor_input(detail["index"], shape, strict=False)
    interpreter.allocate_tensors()
    output = interpreter.get_output_details()[0]
    uint8 = detail["dtype"].__name__ == "uint8"

    def run(image):
        import numpy as np

        from tfcyclegan import imaging

        interpreter.set_tensor(detail["index"], imaging.to_uint8_array(image) if uint8 else image)
        interpreter.invoke()
        result = interpreter.get_tensor(output["index"])
        return imaging.to_float_array(result) if result.dtype == np.uint8 else result

    return run


def _float_island(generator, size, calibration):
    """Plain int8 with the instance-norm ops in float (denylisted), fixed size."""
    import tensorflow as tf

    from tfcyclegan.export import tflite

    with tflite.tflite_saved_model(generator, (size, size)) as saved_model_dir:
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=["translate"])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image] for image in calibration)
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(NORM_OPS))
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([image] for image in calibration[:2]),
            debug_options=options,
        )
        flatbuffer = debugger.get_nondebug_quantized_model()
    tflite.check_builtin_ops(flatbuffer)
    return flatbuffer


def _int16x8(generator, size, calibration, threads):
    """The 16x8 conversion and whether LiteRT runs it: (bytes, error or None)."""
    import tensorflow as tf

    from tfcyclegan.export import tflite

    with tflite.tflite_saved_model(generator, (size, size)) as saved_model_dir:
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=["translate"])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        converter.representative_dataset = lambda: ([image] for image in calibration)
        flatbuffer = converter.convert()
    try:
        _runner(flatbuffer, size, threads)(calibration[0])
    except RuntimeError as error:
        return flatbuffer, str(error).strip().splitlines()[0]
    return flatbuffer, None


def build(run, data, calibration_count=16, threads=2, float_island=True, log=common.log):
    """The variants' flatbuffers (fixed and dynamic size) and their quality; a dict."""
    import numpy as np

    from tfcyclegan.evaluate import load_test_split, paired_metrics
    from tfcyclegan.export import quantization, tflite
    from tfcyclegan.export.loading import as_float32, generators_of, training_size
    from tfcyclegan.export.parity import psnr
    from tfcyclegan.models import translate_with
    from tfcyclegan.training import load_run_model

    size = (training_size(run) or (256, 256))[0]
    generator = as_float32(generators_of(load_run_model(run), "a2b")["a2b"])
    split = load_test_split(data, "a2b", size)
    reference = translate_with(generator, split.inputs)
    domain = _input_domain(data, size, calibration_count)
    aligned = quantization.calibration_set(os.path.join(data, "test"), 3, *_requirement(generator))

    def plain_int8(input_size):
        with tflite.tflite_saved_model(generator, input_size) as saved_model_dir:
            flatbuffer = tflite._convert(saved_model_dir, "translate", "int8", domain, False)
        if input_size is None:
            flatbuffer = tflite.with_default_shape(flatbuffer, (size, size))
        return tflite.add_tflite_metadata(flatbuffer, {"size_multiple": 4})

    recipes = {
        "fp32": lambda s: tflite.convert_tflite(generator, "fp32", input_size=s),
        "fp16": lambda s: tflite.convert_tflite(generator, "fp16", input_size=s),
        "dynamic_int8": lambda s: tflite.convert_tflite(generator, "dynamic_int8", input_size=s),
        "int8_plain": plain_int8,
        "int8": lambda s: tflite.convert_tflite(generator, "int8", domain, input_size=s),
        "int8_uint8": lambda s: tflite.convert_tflite(generator, "int8", domain, uint8_io=True, input_size=s),
        "int8_abcal": lambda s: tflite.convert_tflite(generator, "int8", aligned, input_size=s),
    }
    files = {}
    for name, recipe in recipes.items():
        log(f"converting {name}")
        files[name] = {"fixed": recipe((size, size)), "dynamic": recipe(None)}
    if float_island:
        log("converting int8_float_norm (QuantizationDebugger)")
        files["int8_float_norm"] = {"fixed": _float_island(generator, size, domain)}
    log("converting int16x8")
    int16, int16_error = _int16x8(generator, size, domain, threads)

    equalized = quantization.equalize_instance_norm(generator, domain)
    truth = paired_metrics(reference, split.targets)
    quality = {"keras_fp32": {"psnr_truth": float(truth["psnr_db"].mean()),
                              "ssim_truth": float(truth["ssim"].mean())}}
    for name, forms in files.items():
        run_one = _runner(forms["fixed"], size, threads)
        outputs = np.concatenate([run_one(split.inputs[i : i + 1]) for i in range(len(split.inputs))])
        metrics = paired_metrics(outputs, split.targets)
        quality[name] = {
            "psnr_fp32": psnr(outputs, reference),
            "max_abs": float(np.max(np.abs(outputs - reference))),
            "psnr_truth": float(metrics["psnr_db"].mean()),
            "ssim_truth": float(metrics["ssim"].mean()),
        }
    return {
        "run": os.fspath(run), "size": size, "test_images": len(split.inputs),
        "calibration": f"{len(domain)} A halves of {data}/train at {size} px",
        "files": files, "quality": quality,
        "int16x8": {"bytes": len(int16), "error": int16_error},
        "equalized": {"pairs": len(equalized.pairs), "psnr_db": equalized.psnr_db,
                      "spread_max": max(equalized.spread, default=None)},
        "image": split.inputs[:1],
    }


def _requirement(generator):
    from tfcyclegan.networks import size_requirement

    return size_requirement(generator)


def measure(built, threads=2, rounds=5, iters=10, log=common.log):
    """min / median seconds per image of every file, interleaved (A B A B ...)."""
    runners = {
        (name, form): _runner(flatbuffer, built["size"], threads)
        for name, forms in built["files"].items()
        for form, flatbuffer in forms.items()
    }
    return common.interleave_calls(runners, built["image"], rounds, iters, log)


def table(built, latency):
    """The Markdown table of every variant."""
    quality = built["quality"]
    fp32 = len(built["files"]["fp32"]["fixed"])
    lines = [
        "| variant | KB | × fp32 | fixed ms min (median) | dynamic ms min (median) "
        "| PSNR vs fp32 dB | max abs | PSNR vs truth dB | SSIM vs truth |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    keras = quality["keras_fp32"]
    lines.append(f"| Keras float32 | – | – | – | – | ∞ | 0 | {keras['psnr_truth']:.2f} | {keras['ssim_truth']:.3f} |")
    for name, forms in built["files"].items():
        q = quality[name]

        def ms(form):
            entry = latency.get((name, form))
            return "–" if entry is None else f"{entry['min'] * 1e3:.2f} ({entry['median'] * 1e3:.2f})"

        kb = len(forms["fixed"]) / 1024
        lines.append(
            f"| {name} | {kb:.0f} | {len(forms['fixed']) / fp32:.2f} | {ms('fixed')} | {ms('dynamic')} "
            f"| {q['psnr_fp32']:.1f} | {q['max_abs']:.3f} | {q['psnr_truth']:.2f} | {q['ssim_truth']:.3f} |"
        )
    int16 = built["int16x8"]
    lines.append(
        f"| int16x8 | {int16['bytes'] / 1024:.0f} | {int16['bytes'] / fp32:.2f} | "
        f"does not run: {int16['error'] or 'ran'} | | | | | |"
    )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="/tmp/abl/study/runs/cyclegan", help="a trained run folder")
    parser.add_argument("--data", default="/tmp/abl/data", help="its aligned dataset (train/, test/)")
    parser.add_argument("--calibration-images", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--no-float-island", action="store_true")
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    machine = common.machine_info()
    before = common.matmul_gflops()
    common.log(common.calibration_line("before", before))
    built = build(args.run, args.data, args.calibration_images, args.threads, not args.no_float_island)
    latency = measure(built, args.threads, args.rounds, args.iters)
    after = common.matmul_gflops()
    print(common.describe_machine(machine) + f"; code {common.code_version()}")
    print(common.calibration_line("before", before))
    eq = built["equalized"]
    print(
        f"run {built['run']}, a2b, {built['size']} px, {built['test_images']} test images; "
        f"calibration: {built['calibration']}; LiteRT XNNPACK, {args.threads} threads, batch 1, "
        f"{args.rounds} rounds x {args.iters} calls; equalized {eq['pairs']} conv/norm pairs "
        f"(channel std spread up to {eq['spread_max']:.1f}x; float copy vs original {eq['psnr_db']} dB)"
    )
    print(table(built, latency))
    print(common.calibration_line("after", after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
