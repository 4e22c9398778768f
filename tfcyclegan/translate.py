"""Translating image files: what `tfcyclegan translate` does.

Any model form works (run folder, `.keras`, SavedModel, `.tflite`; see
`tfcyclegan.export.load_translator`), at any image size: the translator pads
to the size the generator needs and crops back. Images of one size are
batched together; unreadable files are reported and skipped, never fatal.
"""

import dataclasses
import os

import numpy as np
from PIL import Image

from tfcyclegan import data as data_lib
from tfcyclegan import imaging
from tfcyclegan.export.runtime import load_translator

# Formats Pillow writes, by extension; anything else is written as PNG.
_WRITABLE = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclasses.dataclass
class TranslateReport:
    """What `translate_files` did."""

    output_dir: str
    written: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)  # (path, reason)

    def summary(self):
        lines = [f"Translated {len(self.written)} image(s) into {self.output_dir}"]
        if self.failed:
            lines.append(f"{len(self.failed)} file(s) could not be translated:")
            lines += [f"  {path}: {reason}" for path, reason in self.failed]
        return "\n".join(lines)


def _inputs(input_path):
    """(path, path relative to the output folder) for every input image."""
    input_path = os.fspath(input_path)
    if os.path.isfile(input_path):
        return [(input_path, os.path.basename(input_path))]
    if not os.path.exists(input_path):
        raise FileNotFoundError(f"Input not found: {input_path}")
    return [(path, os.path.relpath(path, input_path)) for path in data_lib.list_images(input_path)]


def _output_name(relative):
    stem, extension = os.path.splitext(relative)
    return relative if extension.lower() in _WRITABLE else stem + ".png"


def _save(image, path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if image.shape[-1] == 1:
        image = image[..., 0]
    picture = Image.fromarray(image)
    if os.path.splitext(path)[1].lower() in (".jpg", ".jpeg"):
        picture.save(path, quality=95)
    else:
        picture.save(path)


def translate_files(
    model, input_path, output_dir, direction="a2b", batch_size=4, progress=True, num_threads=None
):
    """Translates an image file or a folder of images (recursively).

    Args:
        model: a run folder, `.keras` file, SavedModel or `.tflite` file, or a
            translator callable from `load_translator`.
        input_path: an image file or a folder.
        output_dir: where the results go, under the same relative names.
        direction: `a2b` (G) or `b2a` (F).
        batch_size: images of one size translated per call.
        progress: show a progress bar.
        num_threads: CPU threads for a `.tflite` model (default: all).

    Returns:
        A `TranslateReport`.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1. Received: batch_size={batch_size!r}")
    inputs = _inputs(input_path)
    if callable(model):
        translator = model
    else:
        translator = load_translator(model, direction=direction, num_threads=num_threads)
    channels = getattr(translator, "input_channels", 3)
    report = TranslateReport(output_dir=os.fspath(output_dir))
    bar = None
    if progress:
        import keras

        bar = keras.utils.Progbar(len(inputs), unit_name="image")

    # Group images by size so that a batch is one array.
    pending = {}

    def flush(size):
        group = pending.pop(size)
        batch = imaging.to_float_array(np.stack([image for image, _ in group]))
        pixels = imaging.to_uint8_array(translator(batch))
        for result, (_, relative) in zip(pixels, group):
            target = os.path.join(report.output_dir, _output_name(relative))
            _save(result, target)
            report.written.append(target)
        if bar is not None:
            bar.add(len(group))

    for path, relative in inputs:
        try:
            image = data_lib.load_image(path, channels=channels)
        except Exception as error:  # any unreadable file: report it and go on
            report.failed.append((path, str(error) or type(error).__name__))
            if bar is not None:
                bar.add(1)
            continue
        size = image.shape[:2]
        pending.setdefault(size, []).append((image, relative))
        if len(pending[size]) == batch_size:
            flush(size)
    for size in list(pending):
        flush(size)
    return report
