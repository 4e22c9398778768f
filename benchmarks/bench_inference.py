"""Inference latency of the paper's generator: Keras, SavedModel, TFLite variants, ONNX runtimes.

Prints, for ResNet-9 at ngf=64 (the paper's 256 px generator, random weights:
latency does not depend on them) on 256 x 256 images, batch 1:

- file sizes of the SavedModel and of each TFLite variant (fp32, fp16,
  dynamic_int8, int8 calibrated on synthetic scenes, and fp32 with a fixed
  256 x 256 input instead of a dynamic one), and of the `.onnx` file;
- latency per image of Keras (the model in a `tf.function`), the reloaded
  SavedModel's `translate` signature, each TFLite file on LiteRT's CPU path
  (XNNPACK, `--threads` threads) and the `.onnx` file (`export.convert_onnx`)
  in onnxruntime and OpenVINO (float32, and bfloat16 where the CPU has it:
  OpenVINO's own default there), measured interleaved (every runner once per
  round, several rounds) so a busy machine slows all of them alike;
- ratios to Keras and to the SavedModel, and each path's PSNR against Keras float32;

between two matmul calibration lines (GFLOP/s of a 2048^2 float32 matmul), so
figures from different machines can be compared. No asserts: run and read.

    python benchmarks/bench_inference.py [--size 256] [--ngf 64] [--blocks 9]
        [--threads 2] [--rounds 3] [--iters 3] [--model runs/NAME]

`build_runners`, `measure_latency`, `quality` and `run` are importable (the
benchmarks table builds on `run`).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common  # noqa: E402
from tfcyclegan import export, imaging  # noqa: E402
from tfcyclegan.networks import ResnetGenerator  # noqa: E402
from tfcyclegan.synthetic import draw_scene  # noqa: E402

TFLITE_VARIANTS = ("fp32", "fp16", "dynamic_int8", "int8", "fp32_fixed")

ONNX_RUNTIMES = ("onnxruntime", "openvino")
"""Runtimes given the `.onnx` file (the `onnx` extra, and `openvino`: the `bench` extra);
one that is not installed is left out with a note."""


def scenes(count, size, seed=0):
    """float32 (count, size, size, 3) synthetic landscapes in [-1, 1]."""
    rng = np.random.default_rng(seed)
    pixels = np.stack([np.asarray(draw_scene(rng, "summer", size, size)) for _ in range(count)])
    return imaging.to_float_array(pixels)


def _folder_bytes(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _tflite_runner(flatbuffer, shape, threads):
    """A callable running one float32 batch of `shape` through a LiteRT interpreter (XNNPACK)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
    detail = interpreter.get_input_details()[0]
    if list(detail["shape"]) != list(shape):
        interpreter.resize_tensor_input(detail["index"], list(shape), strict=False)
    interpreter.allocate_tensors()
    output = interpreter.get_output_details()[0]["index"]

    def run(images):
        interpreter.set_tensor(detail["index"], images)
        interpreter.invoke()
        return interpreter.get_tensor(output)

    return run


def _onnxruntime_runner(path, threads):
    """A callable running float32 batches through onnxruntime's CPU provider."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda images: session.run(None, {name: images})[0]


def _openvino_runners(path, shape, threads):
    """{name: callable}: the .onnx file compiled by OpenVINO for the CPU at `shape`.

    "openvino" computes in float32. OpenVINO's CPU plugin computes in bfloat16
    by default where the CPU has it (AVX512_BF16 / AMX: `compile_model(path, "CPU")`
    gives that), which is "openvino_bf16", measured only there. The model is
    reshaped to the static `shape` first, as OpenVINO advises for a known size
    (and as the TFLite runners are allocated at it).
    """
    import openvino as ov

    core = ov.Core()
    precisions = {"openvino": "f32"}
    if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        precisions["openvino_bf16"] = "bf16"
    runners = {}
    for name, precision in precisions.items():
        model = core.read_model(path)
        model.reshape(list(shape))
        compiled = core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
        })
        request = compiled.create_infer_request()
        runners[name] = lambda images, request=request: request.infer([images])[0].copy()
    return runners


def build_runners(
    generator, workdir, size=256, threads=2, variants=TFLITE_VARIANTS, calibration=None,
    onnx_runtimes=ONNX_RUNTIMES,
):
    """Exports `generator` and returns ({name: callable(images) -> outputs}, {name: bytes on disk}).

    Names: "keras", "saved_model" (float32), "saved_model_bf16" (bfloat16
    arithmetic), "tflite_<variant>" for each of `variants`, and for the
    `.onnx` file "onnxruntime", "openvino" (float32) and "openvino_bf16"
    (where the CPU has bfloat16) for each of `onnx_runtimes` installed.
    """
    workdir = os.fspath(workdir)
    keras_call = tf.function(lambda x: generator(x, training=False))
    runners = {"keras": lambda images: keras_call(images).numpy()}
    sizes = {}

    for name, dtype in (("saved_model", "float32"), ("saved_model_bf16", "bfloat16")):
        version = export.export_saved_model(
            generator, workdir, name, overwrite=True, compute_dtype=dtype
        )
        # Its `translate` signature, what TF Serving's Predict runs.
        runners[name] = export.load_translator(version)
        sizes[name] = _folder_bytes(version)

    shape = (1, size, size, generator.input_shape[-1])
    for variant in variants:
        mode = variant.replace("_fixed", "")
        input_size = (size, size) if variant.endswith("_fixed") else None
        flatbuffer = export.convert_tflite(
            generator, mode, representative_images=calibration, input_size=input_size
        )
        sizes[f"tflite_{variant}"] = len(flatbuffer)
        runners[f"tflite_{variant}"] = _tflite_runner(flatbuffer, shape, threads)

    installed = [name for name in onnx_runtimes if _installed(name)]
    for name in sorted(set(onnx_runtimes) - set(installed)):
        print(f"note: {name} is not installed; its row is left out (pip install 'tfcyclegan[bench]')")
    if installed and _installed("tf2onnx"):
        path = os.path.join(workdir, "generator.onnx")
        with open(path, "wb") as file:
            file.write(export.convert_onnx(generator))
        if "onnxruntime" in installed:
            runners["onnxruntime"] = _onnxruntime_runner(path, threads)
            sizes["onnxruntime"] = os.path.getsize(path)
        if "openvino" in installed:
            for name, run in _openvino_runners(path, shape, threads).items():
                runners[name] = run
                sizes[name] = os.path.getsize(path)
    return runners, sizes


def _installed(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def measure_latency(runners, image, rounds=3, iters=3, warmup=1):
    """Milliseconds per call of each runner on `image` (a batch of one), interleaved.

    Every round runs each runner `iters` times in turn; returns {name:
    {"median_ms", "min_ms"}} over all timed calls.
    """
    for run in runners.values():
        for _ in range(warmup):
            run(image)
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            for _ in range(iters):
                start = time.perf_counter()
                run(image)
                times[name].append(1000 * (time.perf_counter() - start))
    return {
        name: {"median_ms": statistics.median(values), "min_ms": min(values)}
        for name, values in times.items()
    }


def quality(runners, images, reference="keras"):
    """PSNR (dB) and max abs error of each runner against `reference` on `images`, one at a time."""
    results = {}
    expected = np.concatenate([runners[reference](images[i : i + 1]) for i in range(len(images))])
    for name, run in runners.items():
        outputs = np.concatenate([run(images[i : i + 1]) for i in range(len(images))])
        results[name] = {
            "psnr_db": export.psnr(outputs, expected),
            "max_abs": float(np.max(np.abs(outputs - expected))),
        }
    return results


def run(
    size=256, ngf=64, blocks=9, threads=2, rounds=3, iters=3, variants=TFLITE_VARIANTS, model=None
):
    """Everything the script prints, as a dict.

    `model`: a .keras file or run folder whose "a2b" generator is measured
    instead of a randomly initialised ResNet (`ngf`, `blocks` are then ignored).
    Quantization PSNR means little on random weights; on trained ones it is
    what users see.
    """
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    result = {
        "config": dict(
            size=size, ngf=ngf, blocks=blocks, threads=threads, rounds=rounds, iters=iters
        )
    }
    result["calibration_before"] = common.matmul_gflops()
    if model is None:
        generator = ResnetGenerator(ngf=ngf, n_blocks=blocks, seed=0, name="G")
        result["config"]["weights"] = "random (seed 0)"
    else:
        generator = export.load_generators(model, "a2b")["a2b"]
        result["config"].update(
            ngf=getattr(generator, "ngf", None), blocks=getattr(generator, "n_blocks", None)
        )
        result["config"]["weights"] = os.fspath(model)
    calibration = list(scenes(4, size, seed=1))
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        runners, sizes = build_runners(generator, workdir, size, threads, variants, calibration)
        result["export_seconds"] = time.perf_counter() - start
        result["bytes"] = sizes
        images = scenes(2, size, seed=2)
        result["quality"] = quality(runners, images)
        result["latency"] = measure_latency(runners, images[:1], rounds, iters)
    result["calibration_after"] = common.matmul_gflops()
    return result


def print_result(result):
    config = result["config"]
    print(common.calibration_line("before", result["calibration_before"]))
    print(
        f"ResNet-{config['blocks']} ngf={config['ngf']} ({config['weights']} weights), "
        f"{config['size']}x{config['size']}, batch 1, {config['threads']} threads, "
        f"{config['rounds']} rounds x {config['iters']} calls "
        f"(export and conversions took {result['export_seconds']:.0f}s)"
    )
    keras_ms = result["latency"]["keras"]["median_ms"]
    saved_ms = result["latency"]["saved_model"]["median_ms"]
    fp32_bytes = result["bytes"].get("tflite_fp32")
    print(
        f"{'runner':<22}{'size MB':>9}{'x fp32':>8}{'median ms':>11}{'min ms':>9}{'x keras':>9}"
        f"{'x SM':>7}{'PSNR dB':>9}"
    )
    for name, latency in result["latency"].items():
        size = result["bytes"].get(name)
        size_text = "" if size is None else f"{size / 1e6:.2f}"
        ratio = "" if size is None or not fp32_bytes else f"{size / fp32_bytes:.2f}"
        psnr = result["quality"][name]["psnr_db"]
        psnr_text = "" if name == "keras" else ("inf" if psnr == float("inf") else f"{psnr:.1f}")
        print(
            f"{name:<22}{size_text:>9}{ratio:>8}{latency['median_ms']:>11.1f}{latency['min_ms']:>9.1f}"
            f"{latency['median_ms'] / keras_ms:>9.2f}{latency['median_ms'] / saved_ms:>7.2f}{psnr_text:>9}"
        )
    print(common.calibration_line("after", result["calibration_after"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument(
        "--model", default=None, help="a trained .keras / run folder instead of random weights"
    )
    args = parser.parse_args(argv)
    print_result(
        run(
            args.size,
            args.ngf,
            args.blocks,
            args.threads,
            args.rounds,
            args.iters,
            model=args.model,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
