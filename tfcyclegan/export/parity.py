"""Parity: every exported artifact against the Keras model on the same images.

Max abs error and PSNR (peak-to-peak 2 for [-1, 1] images, which equals PSNR
on 0-255 pixels). SavedModel, fp32 TFLite and ONNX are bounded by `FLOAT_TOLERANCE`;
fp16, int8, bfloat16 and `.cube` LUTs are reported, not bounded, because their
error depends on the weights and images (a LUT's, on how far the look bends
between its grid points).

Each float artifact's entry also has "ms_per_image": one run over the parity
images after a first (warm-up) run, on this machine, in the runtime's default
threads (TFLite: 2). It places the artifacts side by side; it is not a
benchmark (benchmarks/bench_inference.py is).
"""

import math
import os
import time

import numpy as np
import tensorflow as tf

from tfcyclegan import imaging
from tfcyclegan.export.cube import apply_lut
from tfcyclegan.export.loading import sample_folder
from tfcyclegan.export.runtime import OnnxRunner, TFLiteRunner
from tfcyclegan.models import translate_with
from tfcyclegan.synthetic import draw_scene

FLOAT_TOLERANCE = 1e-4
"""Max abs difference allowed between Keras and the SavedModel / fp32 TFLite / ONNX outputs."""


def psnr(a, b, peak_to_peak=2.0):
    """PSNR in dB of `a` against `b` for values spanning `peak_to_peak` (inf when equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak_to_peak**2 / mse)


def _compare(output, reference, bound=None):
    output = np.asarray(output, np.float32)
    reference = np.asarray(reference, np.float32)
    value = psnr(output, reference)
    entry = {
        "max_abs": float(np.max(np.abs(output - reference))),
        # JSON has no infinity: identical outputs are recorded as null.
        "psnr_db": None if math.isinf(value) else round(value, 2),
    }
    if bound is not None:
        entry["bound"] = bound
        entry["ok"] = entry["max_abs"] <= bound
    return entry


def _timed(fn, images):
    """(fn(images), milliseconds per image of a second run): the first run warms up
    (allocation, a runtime's first-shape planning)."""
    fn(images)
    start = time.perf_counter()
    outputs = fn(images)
    return outputs, round(1000.0 * (time.perf_counter() - start) / len(images), 2)


def second_size(size, multiple, min_size):
    """Another valid (height, width) than `size`, of another aspect ratio: `size` less one
    multiple in height and two in width, or more where that would be below `min_size`.

    What a dynamic-size artifact is run at besides the parity size, to show that its
    height and width are not fixed.
    """
    height, width = size
    height = height - multiple if height - multiple >= min_size else height + multiple
    width = width - 2 * multiple if width - 2 * multiple >= min_size else width + 2 * multiple
    return height, width


def parity_images(
    channels, size=(64, 64), count=4, direction="a2b", seed=0, folder=None, multiple=1, min_size=1
):
    """float32 (count, H, W, C) images in [-1, 1] for parity checks.

    From `folder` (the representative images: a sample, each resized to `size`)
    or, without one, deterministic synthetic landscapes (summer for a2b, winter
    for b2a; `tfcyclegan.synthetic`), grayscale for 1-channel generators.
    """
    from PIL import Image

    height, width = size
    if folder is not None:
        images = []
        for pixels in sample_folder(folder, count, channels):
            image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
            images.append(np.asarray(image.resize((width, height), Image.Resampling.BICUBIC)))
        pixels = np.stack(images)
    else:
        rng = np.random.default_rng(seed)
        season = "summer" if direction == "a2b" else "winter"
        images = []
        for _ in range(count):
            image = draw_scene(rng, season, width, height)
            images.append(np.asarray(image.convert("L") if channels == 1 else image))
        pixels = np.stack(images)
        if channels not in (1, 3):
            pixels = np.repeat(pixels[..., :1], channels, axis=-1)
    pixels = pixels.reshape(pixels.shape[:3] + (channels,))
    return imaging.to_float_array(pixels)


def saved_model_parity(version_dir, generator, images, bounded=True):
    """Runs the reloaded SavedModel's three signatures against Keras on `images`.

    `bounded=False` records the differences without bounds (a bfloat16 export
    against the float32 model).
    """
    loaded = tf.saved_model.load(os.fspath(version_dir))
    reference = translate_with(generator, images)
    translate, ms = _timed(
        lambda x: loaded.signatures["translate"](images=tf.constant(x))["output_images"].numpy(),
        images,
    )
    pixels = imaging.to_uint8_array(images)
    reference_pixels = imaging.to_uint8_array(translate_with(generator, imaging.to_float_array(pixels)))
    uint8 = loaded.signatures["translate_uint8"](pixels=tf.constant(pixels))[
        "output_pixels"
    ].numpy()
    encoded = [tf.io.encode_png(p).numpy() for p in pixels]
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(encoded))[
        "output_bytes"
    ].numpy()
    decoded = np.stack([tf.io.decode_png(o).numpy() for o in outputs])
    # uint8 outputs may differ by one level where float noise crosses a rounding edge.
    level = 1.0 / 127.5 + 1e-6 if bounded else None
    return {
        "translate": {**_compare(translate, reference, FLOAT_TOLERANCE if bounded else None), "ms_per_image": ms},
        "translate_uint8": _compare(imaging.to_float_array(uint8), imaging.to_float_array(reference_pixels), level),
        "serving_default": _compare(imaging.to_float_array(decoded), imaging.to_float_array(reference_pixels), level),
    }


def tflite_parity(tflite_bytes, generator, images, bound=None):
    """Runs a .tflite file against Keras on `images` (uint8 files on the images' pixels)."""
    runner = TFLiteRunner(tflite_bytes, num_threads=2)
    if runner.uint8:
        # Compare on what the uint8 model sees: the images as pixels.
        images = imaging.to_float_array(imaging.to_uint8_array(images))
    reference = translate_with(generator, images)
    outputs, ms = _timed(runner, images)
    if runner.uint8:
        reference = imaging.to_float_array(imaging.to_uint8_array(reference))
        if bound is not None:
            bound = bound + 1.0 / 127.5
    return {**_compare(outputs, reference, bound), "ms_per_image": ms}


def onnx_parity(onnx_bytes, generator, images, bound=FLOAT_TOLERANCE):
    """Runs an .onnx file in onnxruntime against Keras on each of `images`.

    Args:
        onnx_bytes: the serialized model (`convert_onnx`).
        generator: the Keras generator it was made from.
        images: a list of float32 (N, H, W, C) batches, e.g. the parity images at
            two sizes (one file runs them all: its height and width are dynamic).
        bound: the max abs error allowed (None: reported only).

    Returns:
        "HxW" -> the entry of the batch of that size (with "ms_per_image").
    """
    runner = OnnxRunner(onnx_bytes)
    entries = {}
    for batch in images:
        outputs, ms = _timed(runner, batch)
        entry = _compare(outputs, translate_with(generator, batch), bound)
        entries["x".join(map(str, batch.shape[1:3]))] = {**entry, "ms_per_image": ms}
    return entries


def cube_parity(table, generator, images):
    """A 3D LUT's `table` (`export.cube`), applied trilinearly, against Keras on `images`."""
    reference = translate_with(generator, images)
    outputs = apply_lut(table, (np.asarray(images, np.float64) + 1.0) / 2.0) * 2.0 - 1.0
    return _compare(outputs, reference)
