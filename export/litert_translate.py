"""Translate images with a tfcyclegan .tflite file, using only LiteRT, numpy and Pillow.

    python litert_translate.py cyclegan_a2b_fp16_uint8.tflite photo.jpg --out translated/
    python litert_translate.py cyclegan_a2b_int8_uint8.tflite photos/ --threads 4

What a device-side app does, in Python, without TensorFlow (`pip install
ai-edge-litert numpy pillow`):

1. read the model's "tfcyclegan" metadata (JSON in the .tflite flatbuffer):
   the size multiple the generator needs (4 for ResNet generators, 2**num_downs
   for U-Nets), its channels, and whether it takes uint8 pixels or float32 in
   [-1, 1]; `--multiple` overrides it for files without metadata;
2. decode each image with Pillow (EXIF orientation applied, RGB or grayscale);
3. reflect-pad bottom and right to a valid size (like the Python API and the
   SavedModel do), resize the input tensor, run (XNNPACK, `--threads`), crop
   back, and write a PNG.
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from PIL import Image, ImageOps

METADATA_NAME = "tfcyclegan"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def read_metadata(model_bytes, name=METADATA_NAME):
    """The JSON metadata entry `name` of a .tflite flatbuffer, or None.

    Besides the size multiple, it holds "default_input_size": the input shape
    stored in the file, at which it runs without resizing the input first.

    Raises:
        ValueError: not a TFLite file, or a truncated or corrupt one.
    """
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(model_bytes)
    if data[4:8] != b"TFL3":  # every TFLite flatbuffer's file identifier
        raise ValueError("not a TFLite model (no 'TFL3' identifier)")
    try:
        model = schema.Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name().decode() == name:
                return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    except Exception as error:  # struct.error, IndexError, UnicodeDecodeError, JSONDecodeError
        raise ValueError(f"a truncated or corrupt TFLite model ({type(error).__name__})") from None
    return None


def _mirror_indices(size, target):
    # Reflect (d c b | a b c d | c b a), periodically: any padding amount works.
    period = max(2 * size - 2, 1)
    position = np.arange(target) % period
    return np.where(position < size, position, period - position)


def pad_reflect(image, multiple, min_size=1):
    """HWC `image` reflect-padded at the bottom and right to a size the model takes.

    Each side becomes the smallest multiple of `multiple` that is at least its
    size and `min_size`: the numpy twin of `tfcyclegan.imaging.pad_to_multiple`
    (this runner must not import TensorFlow; a test keeps the two equal).
    """
    height, width = image.shape[:2]

    def round_up(value):
        return -(-value // multiple) * multiple

    def target(size):
        return max(round_up(size), round_up(min_size))

    rows = _mirror_indices(height, target(height))
    cols = _mirror_indices(width, target(width))
    return image[rows][:, cols]


class LiteRTTranslator:
    """A .tflite generator that translates uint8 HWC images of any size.

    Args:
        model_path: the .tflite file.
        num_threads: CPU threads.
        xnnpack: use the XNNPACK delegate (LiteRT's default CPU path).
        multiple: size multiple, for files without tfcyclegan metadata.
    """

    def __init__(self, model_path, num_threads=None, xnnpack=True, multiple=None):
        model_bytes = pathlib.Path(model_path).read_bytes()
        try:
            self.metadata = read_metadata(model_bytes) or {}
        except ValueError as error:
            raise ValueError(f"{model_path} is {error}.") from None
        self.multiple = multiple or self.metadata.get("size_multiple")
        if not self.multiple:
            raise ValueError(
                f"{model_path} has no tfcyclegan metadata, so the size multiple is unknown: "
                "pass --multiple (4 for ResNet generators, 2**num_downs for U-Nets)."
            )
        self.min_size = self.metadata.get("min_size", self.multiple)
        resolver = (
            OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        self.interpreter = Interpreter(
            model_content=model_bytes,
            num_threads=num_threads,
            experimental_op_resolver_type=resolver,
        )
        detail = self.interpreter.get_input_details()[0]
        self.input_index = detail["index"]
        self.uint8 = detail["dtype"] == np.uint8
        self.fixed = (
            [int(d) for d in detail["shape_signature"][1:3]]
            if min(detail["shape_signature"]) > 0
            else None
        )
        self.channels = int(detail["shape_signature"][-1])
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self._shape = None

    def __call__(self, pixels):
        """uint8 (H, W, C) pixels -> translated uint8 (H, W, C_out) pixels."""
        height, width = pixels.shape[:2]
        padded = pad_reflect(pixels, self.multiple, self.min_size)
        if self.fixed and list(padded.shape[:2]) != self.fixed:
            raise ValueError(
                f"This model has a fixed input size {self.fixed}; the image is {height}x{width} "
                f"(padded {padded.shape[0]}x{padded.shape[1]}). Resize images first, or use a "
                "dynamic-size export."
            )
        batch = padded[None]
        if self.uint8:
            batch = np.ascontiguousarray(batch, dtype=np.uint8)
        else:
            batch = batch.astype(np.float32) / 127.5 - 1.0
        if batch.shape != self._shape:
            self.interpreter.resize_tensor_input(self.input_index, list(batch.shape), strict=False)
            self.interpreter.allocate_tensors()
            self._shape = batch.shape
        self.interpreter.set_tensor(self.input_index, batch)
        self.interpreter.invoke()
        output = self.interpreter.get_tensor(self.output_index)[0, :height, :width]
        if output.dtype != np.uint8:
            output = np.clip(np.round((output + 1.0) * 127.5), 0, 255).astype(np.uint8)
        return output


def load_pixels(path, channels):
    """uint8 (H, W, channels) pixels, EXIF orientation applied (as tfcyclegan.data does)."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        image = image.convert("L" if channels == 1 else "RGB")
        pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def save_pixels(pixels, path):
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)


def list_inputs(path):
    path = pathlib.Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
        return files
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"No such file or folder: {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the .tflite file")
    parser.add_argument("input", help="an image or a folder of images")
    parser.add_argument("--out", default="translated", help="folder for the PNGs")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--no-xnnpack", action="store_true", help="plain LiteRT kernels")
    parser.add_argument(
        "--multiple", type=int, default=None, help="size multiple (files without metadata)"
    )
    args = parser.parse_args(argv)

    try:
        translator = LiteRTTranslator(args.model, args.threads, not args.no_xnnpack, args.multiple)
        files = list_inputs(args.input)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        try:
            pixels = load_pixels(path, translator.channels)
        except OSError as error:  # Pillow's UnidentifiedImageError is an OSError.
            print(f"skipped {path}: {error}", file=sys.stderr)
            continue
        start = time.perf_counter()
        try:
            output = translator(pixels)
        except ValueError as error:
            print(f"error: {path}: {error}", file=sys.stderr)
            return 2
        milliseconds = 1000 * (time.perf_counter() - start)
        target = out / f"{path.stem}.png"
        save_pixels(output, target)
        print(f"{path} -> {target} ({pixels.shape[1]}x{pixels.shape[0]}, {milliseconds:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
