"""Translating image files: what `tfcyclegan translate` does.

Any model form works (run folder at any state, `.keras`, SavedModel,
`.tflite`, `.onnx`; see `tfcyclegan.export.load_translator`), at any image size: the
translator pads to the size the generator needs and crops back.

Memory stays bounded whatever the folder holds: images are read one at a
time, consecutive images of one size are translated together (at most
`batch_size` of them are held), and large photos are translated in
overlapping tiles whose seams are blended (`translate_tiled`). Unreadable
files are listed and skipped, never fatal.

Tiling changes the result a little: instance normalization computes its
statistics per tile instead of over the whole photo. docs/large_images.md
measures how much (PSNR of tiled against whole-image output) and why the
defaults are what they are: tiles of 1024 px overlapping by 64, only for
images above `AUTO_TILE_MEGAPIXELS`.
"""

import dataclasses
import os
import sys

import numpy as np
from PIL import Image

from tfcyclegan import data as data_lib
from tfcyclegan import fileio, imaging
from tfcyclegan.checks import check_int
from tfcyclegan.export.runtime import load_translator

# Formats Pillow writes, by extension; anything else is written as PNG.
_WRITABLE = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}

DEFAULT_TILE = 1024
DEFAULT_TILE_OVERLAP = 64
AUTO_TILE_MEGAPIXELS = 1.5
"""With `tile=None`, images above this many megapixels are tiled (see docs/large_images.md)."""


@dataclasses.dataclass
class TranslateReport:
    """What `translate_files` did."""

    output_dir: str
    written: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)  # (path, reason)
    tiled: list = dataclasses.field(default_factory=list)  # inputs translated in tiles

    def summary(self):
        lines = [f"Translated {len(self.written)} image(s) into {self.output_dir}"]
        if self.tiled:
            lines[0] += f" ({len(self.tiled)} in tiles)"
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


def _check_outputs(inputs, input_path, output_dir, overwrite):
    """Refuses a translation that would write over the inputs or over files already there.

    The outputs may not go into the input folder or below it (a second run would
    translate the first one's results), nor onto an input file; two inputs may not
    map to one output name (`a.gif` and `a.png` both become `a.png`); and files
    already in `output_dir` under an output name are replaced only with `overwrite`.
    """
    source = os.path.realpath(input_path)
    target = os.path.realpath(output_dir)
    if os.path.isdir(source) and (target == source or target.startswith(source + os.sep)):
        raise ValueError(
            f"The output folder would be the input folder or inside it: translating {input_path} "
            f"into {output_dir} would mix results with the photos (and a second run would translate "
            "the results). Choose an output folder outside the input folder."
        )
    seen = {}
    existing = []
    for path, relative in inputs:
        out = os.path.join(target, _output_name(relative))
        if os.path.realpath(out) == os.path.realpath(path):
            raise ValueError(f"The output for {path} would be the file itself. Choose another output folder.")
        if out in seen:
            raise ValueError(
                f"{seen[out]} and {path} would both be written to {out}. Rename one of them, or "
                "translate them into separate folders."
            )
        seen[out] = path
        if os.path.lexists(out):
            existing.append(out)
    if existing and not overwrite:
        shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
        raise FileExistsError(
            f"{len(existing)} output file(s) already exist in {output_dir}: {shown}. Pass "
            "overwrite=True (tfcyclegan translate --overwrite) to replace them, or choose an "
            "empty output folder."
        )


def _output_name(relative):
    stem, extension = os.path.splitext(relative)
    return relative if extension.lower() in _WRITABLE else stem + ".png"


def _save(image, path):
    """Writes uint8 pixels to `path` atomically (a full disk leaves no half image)."""
    if image.shape[-1] == 1:
        image = image[..., 0]
    picture = Image.fromarray(image)
    extension = os.path.splitext(path)[1].lower()
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with fileio.atomic_path(path, suffix=extension) as tmp:
            if extension in (".jpg", ".jpeg"):
                picture.save(tmp, quality=95)
            else:
                picture.save(tmp)
    except OSError as error:  # the folder is a file, read-only, the disk is full...
        raise OSError(error.errno, f"Cannot write {path}: {error.strerror or error}") from None


def resize_short_side(image, size):
    """Resizes uint8 pixels so that the short side is `size` (bicubic, aspect kept).

    The reference's test-time resize (`Resize` with its default bicubic
    interpolation); its `scale_width` sets the width instead, which is the
    short side of landscape photos.
    """
    height, width = image.shape[:2]
    scale = size / min(height, width)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    if target == (width, height):
        return image
    squeeze = image.ndim == 3 and image.shape[-1] == 1
    picture = Image.fromarray(image[..., 0] if squeeze else image)
    resized = np.asarray(picture.resize(target, Image.Resampling.BICUBIC))
    return resized[..., None] if squeeze else resized


def _tile_starts(length, tile, overlap):
    """Starts of tiles of `tile` pixels covering `length`, overlapping by >= `overlap`."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(length, start, tile, total, overlap):
    """1-D blending weights of one tile: linear ramps where it overlaps a neighbour."""
    weights = np.ones(length, np.float32)
    if overlap == 0:
        return weights
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    if start > 0:  # a tile before this one
        weights[:overlap] = np.minimum(weights[:overlap], ramp)
    if start + tile < total:  # a tile after this one
        weights[-overlap:] = np.minimum(weights[-overlap:], ramp[::-1])
    return weights


def translate_tiled(translator, image, tile=DEFAULT_TILE, overlap=DEFAULT_TILE_OVERLAP, batch_size=1):
    """Translates one float32 HxWxC image in overlapping tiles, blending the seams.

    Each tile goes through `translator` on its own (so any model form works:
    Keras, SavedModel, .tflite); where tiles overlap, their outputs are mixed
    with linear ramps, so no seam shows as an edge. Memory is that of a
    `tile` x `tile` inference plus the output image.

    Args:
        translator: a callable on float32 (N, h, w, C) arrays in [-1, 1].
        image: float32 (H, W, C) in [-1, 1].
        tile: tile height and width in pixels.
        overlap: pixels shared by neighbouring tiles (< tile / 2).
        batch_size: tiles translated per call (memory grows with it).

    Returns:
        float32 (H, W, C_out) in [-1, 1].
    """
    tile = check_int("tile", tile, 16)
    if check_int("overlap", overlap, 0) >= tile // 2:
        raise ValueError(
            f"`overlap` must be an integer in [0, tile / 2). Received: overlap={overlap!r}, tile={tile}"
        )
    height, width = image.shape[:2]
    boxes = [
        (top, left)
        for top in _tile_starts(height, tile, overlap)
        for left in _tile_starts(width, tile, overlap)
    ]
    tile_h, tile_w = min(tile, height), min(tile, width)
    output = weight = None
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i : i + batch_size]
        batch = np.stack([image[t : t + tile_h, left : left + tile_w] for t, left in chunk])
        results = np.asarray(translator(batch), np.float32)
        if output is None:
            output = np.zeros((height, width, results.shape[-1]), np.float32)
            weight = np.zeros((height, width, 1), np.float32)
        for (top, left), result in zip(chunk, results):
            w = np.outer(
                _ramp(tile_h, top, tile_h, height, overlap), _ramp(tile_w, left, tile_w, width, overlap)
            )[..., None]
            output[top : top + tile_h, left : left + tile_w] += result * w
            weight[top : top + tile_h, left : left + tile_w] += w
    return output / weight


def _should_tile(shape, tile):
    """Whether an image of `shape` is tiled: `tile` 0 never, None above AUTO_TILE_MEGAPIXELS."""
    if tile == 0:
        return False
    if tile is None:
        return shape[0] * shape[1] > AUTO_TILE_MEGAPIXELS * 1e6
    return max(shape[:2]) > tile


def translate_files(
    model,
    input_path,
    output_dir,
    direction="a2b",
    batch_size=4,
    progress=True,
    num_threads=None,
    *,
    load_size=None,
    tile=None,
    tile_overlap=DEFAULT_TILE_OVERLAP,
    checkpoint=None,
    epoch=None,
    overwrite=False,
):
    """Translates an image file or a folder of images (recursively), in bounded memory.

    Nothing the user has is replaced: the outputs may not go into the input folder,
    and files already in `output_dir` under an output name are refused unless
    `overwrite` (each output is written atomically).

    Args:
        model: a run folder, `.keras` file, SavedModel, `.tflite` or `.onnx` file, or a
            translator callable from `load_translator`.
        input_path: an image file or a folder.
        output_dir: where the results go, under the same relative names.
        direction: `a2b` (G) or `b2a` (F).
        batch_size: consecutive images of one size translated per call.
        progress: show a progress bar.
        num_threads: CPU threads for a `.tflite` or `.onnx` model (default: all).
        load_size: resize each image so that its short side is this many
            pixels first (bicubic), as the reference's test preprocessing
            does; None keeps the images' sizes.
        tile: translate images in tiles of this many pixels; None tiles only
            images above `AUTO_TILE_MEGAPIXELS` (with `DEFAULT_TILE`), 0 never.
        tile_overlap: pixels shared by neighbouring tiles, blended.
        checkpoint: for a run folder, a checkpoint name instead of its newest state.
        epoch: for a run folder, the checkpoint of this epoch.
        overwrite: replace files already in `output_dir` under an output name.

    Returns:
        A `TranslateReport`.

    Raises:
        ValueError: the outputs would go into the input folder, onto an input,
            or two inputs onto one output name.
        FileExistsError: output files exist and `overwrite` is False.
    """
    check_int("batch_size", batch_size, 1)
    if load_size is not None:
        check_int("load_size", load_size, 1)
    if tile is not None:
        check_int("tile", tile, 0)
    if tile is not None and 0 < tile < 16:
        raise ValueError(f"`tile` must be 0 (never tile) or >= 16. Received: tile={tile!r}")
    check_int("tile_overlap", tile_overlap, 0)
    tile_size = tile or DEFAULT_TILE
    if tile_overlap >= tile_size // 2:
        raise ValueError(
            f"`tile_overlap` must be less than half the tile ({tile_size}). "
            f"Received: tile_overlap={tile_overlap}"
        )
    inputs = _inputs(input_path)
    _check_outputs(inputs, input_path, output_dir, overwrite)
    if callable(model):
        translator = model
    else:
        translator = load_translator(
            model, direction=direction, num_threads=num_threads, checkpoint=checkpoint, epoch=epoch
        )
    channels = getattr(translator, "input_channels", 3)
    report = TranslateReport(output_dir=os.fspath(output_dir))
    bar = None
    if progress:
        import keras

        # A redrawn bar on a terminal; in a log file one plain line at the end (no ANSI).
        bar = keras.utils.Progbar(len(inputs), unit_name="image", verbose=1 if sys.stdout.isatty() else 2)

    def write(pixels, relative):
        target = os.path.join(report.output_dir, _output_name(relative))
        _save(pixels, target)
        report.written.append(target)

    # Consecutive images of one size, at most `batch_size` of them.
    pending = []

    def flush():
        if not pending:
            return
        batch = imaging.to_float_array(np.stack([image for image, _ in pending]))
        for result, (_, relative) in zip(imaging.to_uint8_array(translator(batch)), pending):
            write(result, relative)
        if bar is not None:
            bar.add(len(pending))
        pending.clear()

    for path, relative in inputs:
        try:
            image = data_lib.load_image(path, channels=channels)
        except Exception as error:  # any unreadable file: report it and go on
            report.failed.append((path, str(error) or type(error).__name__))
            if bar is not None:
                bar.add(1)
            continue
        if load_size is not None:
            image = resize_short_side(image, load_size)
        if _should_tile(image.shape, tile):
            flush()
            # One tile per call: memory is what tiling is for.
            result = translate_tiled(translator, imaging.to_float_array(image), tile_size, tile_overlap)
            write(imaging.to_uint8_array(result), relative)
            report.tiled.append(path)
            if bar is not None:
                bar.add(1)
            continue
        if pending and pending[0][0].shape != image.shape:
            flush()
        pending.append((image, relative))
        if len(pending) == batch_size:
            flush()
    flush()
    return report
