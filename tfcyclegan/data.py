"""Images in, unpaired training batches out.

A CycleGAN learns from two unpaired sets of images, domain A (the paper's X) and
domain B (Y). This module turns either set, given as

- a folder of images (searched recursively),
- the authors' dataset layout (`root/trainA`, `root/trainB`, `root/testA`,
  `root/testB`, e.g. `horse2zebra/`), or
- a TensorFlow Datasets split (`tfds:cycle_gan/horse2zebra`),

into a `tf.data.Dataset` of `(x, y)` batches for `model.fit`: float32 in [-1, 1],
NHWC, each domain shuffled and repeated on its own.

How an image becomes a training example, in order:

1. **Check** (files only, at start-up): every file is opened and decoded once
   (`check_images`), so a truncated JPEG or a text file named `.jpg` is reported
   with its path before training starts, not as a TensorFlow error hours in.
2. **Decode** with Pillow: EXIF orientation applied, any mode (palette, CMYK,
   16-bit, alpha, ...) converted to RGB or grayscale, GIFs give their first
   frame. Pillow, not `tf.io.decode_image`, because TensorFlow ignores EXIF
   orientation (phone photos come out sideways) and cannot read TIFF, and
   because the reference resizes with Pillow, which we then match exactly.
   It is not slower: in `benchmarks/bench_data.py` Pillow's decode + bicubic
   resize beats `tf.io.decode_jpeg` + `tf.image.resize(..., "bicubic",
   antialias=True)` on CPU.
3. **Resize** (deterministic, Pillow bicubic), exactly the reference's
   `get_transform` (junyanz/pytorch-CycleGAN-and-pix2pix, `data/base_dataset.py`)
   for each `DataConfig.preprocess` mode.
4. **Cache** (`DataConfig.cache`): decoded, resized uint8 images kept in memory.
5. **Augment** (training only, after the cache, so every epoch sees new crops):
   random `crop_size` crop, random horizontal flip, seeded per image with
   stateless ops so a seed gives the same batches on every run.
6. **Scale** to [-1, 1]: `x / 127.5 - 1`, the reference's `Normalize(0.5, 0.5)`.

Evaluation (`training=False`, `preprocess_for_eval`, `load_eval_images`) uses
the same steps without randomness: the random crop becomes a centre crop and
there is no flip.

Messages go through the standard `logging` module (logger `tfcyclegan.data`):
what was found and ignored at INFO, skipped files and enlarged images at WARNING.
"""

import collections
import concurrent.futures
import dataclasses
import io
import logging
import math
import os
import threading
from typing import Callable, NamedTuple, Optional

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps, UnidentifiedImageError, features

from tfcyclegan import imaging
from tfcyclegan.config import DataConfig

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (
    ".bmp",
    ".gif",
    ".jpeg",
    ".jpg",
    ".png",
    ".ppm",
    ".tif",
    ".tiff",
    ".webp",
)
"""Lowercase extensions `list_images` accepts (matched case-insensitively).

The reference's list plus `.gif` and `.webp`. Everything here is decoded by
Pillow; other files are ignored, and counted in messages.
"""

# The preprocess modes that end in a random (training) or centre (evaluation)
# crop of `crop_size`; the others keep the resized image whole.
_CROP_MODES = ("resize_and_crop", "crop", "scale_width_and_crop")

# EXIF orientations 5-8 rotate by 90 degrees, so width and height swap.
_EXIF_ORIENTATION = 0x0112
_ROTATED_ORIENTATIONS = (5, 6, 7, 8)


# ---------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------


def _scan(directory):
    """Walks `directory` for images.

    Returns:
        (sorted image paths, `Counter` of the other files' extensions,
        number of hidden files and folders skipped).
    """
    root = os.fspath(directory)
    if not os.path.exists(root):
        raise FileNotFoundError(f"Image folder not found: {root}")
    if not os.path.isdir(root):
        raise NotADirectoryError(
            f"Expected a folder of images, but this is a file: {root}"
        )
    images, ignored, hidden = [], collections.Counter(), 0
    # Symlinked folders are followed (datasets are often assembled from
    # links), so remember where we have been to survive link cycles.
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        # Hidden folders (.git, .ipynb_checkpoints) and files (.DS_Store,
        # macOS's `._photo.jpg` resource forks, which end in .jpg but are not
        # images) never hold training data.
        kept = []
        for name in dirnames:
            if name.startswith("."):
                hidden += 1
            else:
                kept.append(name)
        dirnames[:] = sorted(kept)
        for name in filenames:
            if name.startswith("."):
                hidden += 1
                continue
            extension = os.path.splitext(name)[1].lower()
            if extension in IMAGE_EXTENSIONS:
                images.append(os.path.join(dirpath, name))
            else:
                ignored[extension or "(no extension)"] += 1
    return sorted(images), ignored, hidden


def _describe_ignored(ignored, hidden):
    """'3 files: 2 .txt, 1 .json; 1 hidden entry ignored' (or '0 files')."""
    total = sum(ignored.values())  # `ignored` maps extension -> count.
    text = f"{total} other file{'s' if total != 1 else ''}"
    if total:
        counts = sorted(ignored.items(), key=lambda item: (-item[1], item[0]))
        text += ": " + ", ".join(f"{count} {ext}" for ext, count in counts)
    if hidden:
        text += f"; {hidden} hidden entr{'ies' if hidden != 1 else 'y'} ignored"
    return text


def list_images(directory):
    """Lists the images under `directory`, recursively, sorted by path.

    Files are chosen by extension (`IMAGE_EXTENSIONS`, any case); hidden files
    and folders (names starting with `.`) are skipped. Whether each file really
    is a readable image is `check_images`' job.

    Args:
        directory: a folder (str or path-like).

    Returns:
        A sorted list of file paths (str).

    Raises:
        FileNotFoundError: the folder does not exist, or holds no image files
            (the message counts what it holds instead, by extension).
        NotADirectoryError: `directory` is a file.
    """
    images, ignored, hidden = _scan(directory)
    if not images:
        # "other files" here are all the files, as none is an image.
        found = _describe_ignored(ignored, hidden).replace(" other file", " file", 1)
        raise FileNotFoundError(
            f"No images in {os.fspath(directory)}: found 0 images; {found}. "
            f"Accepted extensions: {', '.join(IMAGE_EXTENSIONS)}."
        )
    return images


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------


class _BadImage(Exception):
    """A file that is not a usable image; `reason` says why, for people."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _not_an_image_reason(head, extension):
    if not head:
        return "empty file (0 bytes)"
    if extension == ".webp" and not features.check("webp"):
        return "WebP file, but this Pillow build has no WebP support"
    if b"\x00" not in head:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return f"not an image: looks like text ({text[:32]!r})"
    return f"not an image: unknown format (starts with {head[:8].hex(' ')})"


def _open(fp, max_pixels, extension=""):
    """Reads the header of the image in binary file `fp`; raises `_BadImage`.

    Pillow only parses the header here, so the pixel count is checked before
    any pixel is decoded: a 30000 x 30000 PNG is a few hundred bytes on disk
    and 2.7 GB in memory.
    """
    try:
        image = Image.open(fp)
    except Image.DecompressionBombError as error:
        # Pillow refuses above 2 * Image.MAX_IMAGE_PIXELS by itself, before we
        # see the size; it names the size in its message.
        raise _BadImage(
            f"too many pixels, refused before decoding (possible decompression "
            f"bomb): {error} (Pillow's own limit, PIL.Image.MAX_IMAGE_PIXELS, "
            f"applies on top of max_pixels)"
        ) from None
    except UnidentifiedImageError:
        fp.seek(0)
        raise _BadImage(_not_an_image_reason(fp.read(64), extension)) from None
    width, height = image.size
    if width * height > max_pixels:
        raise _BadImage(
            f"too many pixels, refused before decoding (possible decompression "
            f"bomb): {width}x{height} = {width * height} pixels > "
            f"max_pixels={max_pixels}"
        )
    if width < 1 or height < 1:
        raise _BadImage(f"empty image: {width}x{height} pixels")
    return image


def _oriented_size(image):
    """(width, height) after the EXIF orientation is applied."""
    width, height = image.size
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # A broken EXIF block is found again when decoding.
        orientation = 1
    if orientation in _ROTATED_ORIENTATIONS:
        return height, width
    return width, height


def _sixteen_to_eight_bit(image):
    # Pillow's convert() clips 16-bit values to 255 instead of scaling them
    # (the reference, which calls convert("RGB"), turns 16-bit PNGs white), so
    # we scale 0..65535 to 0..255 ourselves. Mode "I" is what older Pillows
    # and some TIFFs give for 16-bit data; it is read as 16-bit too.
    values = np.asarray(image).astype(np.float32)
    values = np.clip(values, 0, 65535) / 257.0
    return Image.fromarray(np.round(values).astype(np.uint8), mode="L")


def _decode(fp, channels, max_pixels, extension="", draft=False):
    """Decodes the image in `fp` to a Pillow image in mode RGB or L.

    Applies the EXIF orientation, takes a GIF's first frame and converts every
    mode the way the reference's `Image.open(path).convert("RGB")` does
    (alpha is dropped, not composited, as there), except that 16-bit images
    are scaled rather than clipped. `channels=1` then converts to grayscale
    with Pillow's ITU-R 601 luma, like the reference's `Grayscale(1)`.

    Args:
        fp: a binary file object.
        channels: 3 (RGB) or 1 (grayscale).
        max_pixels: larger images are refused before decoding.
        extension: the file's extension, for messages.
        draft: let JPEGs decode at reduced size (enough to validate a file).

    Raises:
        _BadImage: with the reason, when the file is not a usable image.
    """
    image = _open(fp, max_pixels, extension)
    try:
        if draft and image.format == "JPEG":
            # DCT scaling still reads the whole entropy-coded stream, so
            # truncation is still detected, at a fraction of the cost.
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
        if image.mode == "F":
            raise _BadImage(
                "unsupported pixel format: 32-bit floating point (mode F) has no "
                "standard 0-255 range; save it as 8- or 16-bit"
            )
        ImageOps.exif_transpose(image, in_place=True)
        if image.mode.startswith("I;16") or image.mode == "I":
            image = _sixteen_to_eight_bit(image)
        if image.mode == "P" and "transparency" in image.info:
            # Pillow warns when a palette's transparency is dropped directly.
            image = image.convert("RGBA")
        if channels == 1:
            return image if image.mode == "L" else image.convert("RGB").convert("L")
        return image if image.mode == "RGB" else image.convert("RGB")
    except _BadImage:
        raise
    except OSError as error:
        raise _BadImage(f"truncated or corrupt: {error}") from None
    except Exception as error:  # Any decoder failure means a bad file.
        raise _BadImage(
            f"corrupt or unsupported: {type(error).__name__}: {error}"
        ) from None


def _to_array(image):
    """uint8 HxWxC array of a Pillow image in mode RGB or L."""
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def load_image(path, channels=3, max_pixels=DataConfig.max_pixels):
    """Reads one image at its own size, the way the pipeline decodes it.

    For translating images and for the CLI: EXIF orientation applied, any
    format and mode converted, no resizing.

    Args:
        path: the image file.
        channels: 3 for RGB, 1 for grayscale.
        max_pixels: larger images are refused before decoding.

    Returns:
        uint8 array of shape (height, width, channels).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the file is not a usable image; the message says why.
    """
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3. Received: channels={channels!r}")
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    with open(path, "rb") as f:
        try:
            return _to_array(_decode(f, channels, max_pixels, extension))
        except _BadImage as error:
            raise ValueError(f"Cannot read image {path}: {error.reason}") from None


# ---------------------------------------------------------------------------
# Geometry: the reference's get_transform, deterministic part
# ---------------------------------------------------------------------------


def _resized_size(width, height, config):
    """The (width, height) the deterministic resize gives, before any crop."""
    mode, load, crop = config.preprocess, config.load_size, config.crop_size
    if mode == "resize_and_crop":
        return load, load
    if mode in ("scale_width", "scale_width_and_crop"):
        # Reference `__scale_width`: width to load_size, aspect kept, but the
        # height never below crop_size.
        if width == load and height >= crop:
            return width, height
        return load, int(max(load * height / width, crop))
    if mode == "crop":
        # The reference's RandomCrop fails on images smaller than the crop;
        # we enlarge them (aspect kept) so the short side is crop_size.
        short = min(width, height)
        if short >= crop:
            return width, height
        return (
            max(crop, round(width * crop / short)),
            max(crop, round(height * crop / short)),
        )
    # "none": reference `__make_power_2(base=4)`, but never below 4 pixels.
    return max(4, int(round(width / 4) * 4)), max(4, int(round(height / 4) * 4))


def _output_size(width, height, config):
    """(width, height) of the finished example."""
    if config.preprocess in _CROP_MODES:
        return config.crop_size, config.crop_size
    return _resized_size(width, height, config)


def _is_enlarged(width, height, config):
    """Whether an image is smaller than the networks' input and so enlarged."""
    return config.preprocess != "none" and min(width, height) < config.crop_size


def _resize(image, config, centre_crop):
    """Applies the deterministic resize (and, for evaluation, the centre crop)."""
    size = _resized_size(image.width, image.height, config)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    if centre_crop and config.preprocess in _CROP_MODES:
        crop = config.crop_size
        # torchvision's CenterCrop rounds the offset the same way.
        left = int(round((image.width - crop) / 2.0))
        top = int(round((image.height - crop) / 2.0))
        image = image.crop((left, top, left + crop, top + crop))
    return image


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BadImage:
    """A file that cannot be used, and why.

    Args:
        path: the file.
        reason: what is wrong, for people ("truncated or corrupt: ...").
    """

    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class ImageReport:
    """What `check_images` found.

    Args:
        good: paths of the readable images, in the order given.
        sizes: `(width, height)` of each good image after EXIF orientation,
            aligned with `good`.
        bad: a `BadImage` for every file that cannot be used.
        enlarged: good images smaller than `crop_size` on their short side,
            which the pipeline enlarges.
        crop_size: the crop size `enlarged` was judged against.
    """

    good: tuple
    sizes: tuple
    bad: tuple
    enlarged: tuple = ()
    crop_size: int = 0

    @property
    def ok(self):
        """True when every file is a usable image."""
        return not self.bad

    @property
    def num_checked(self):
        return len(self.good) + len(self.bad)


def _check_one(path, config, decode):
    """Returns (width, height) of a good image, or a BadImage."""
    extension = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as f:
            # The size from the header: a decoded draft would be smaller.
            size = _oriented_size(_open(f, config.max_pixels, extension))
            if decode:
                f.seek(0)
                _decode(f, config.channels, config.max_pixels, extension, draft=True)
            return size
    except _BadImage as error:
        return BadImage(path, error.reason)
    except OSError as error:
        return BadImage(path, f"cannot read the file: {error.strerror or error}")


def check_images(paths, config=None, *, decode=True, workers=None, progress=False):
    """Opens every image once and reports each one that cannot be used.

    Finds empty files, files that are not images (e.g. text named `.jpg`),
    truncated or corrupt images, unsupported pixel formats and images over
    `config.max_pixels` (refused from the header, before decoding). Runs in
    threads: Pillow releases the GIL while decoding.

    Args:
        paths: image files, or a folder (listed with `list_images`).
        config: a `DataConfig` (for `max_pixels`, `channels`, `crop_size`);
            defaults to `DataConfig()`.
        decode: decode every image, which is what finds truncated files
            (JPEGs are decoded at reduced size, which still reads every byte).
            `False` checks headers only: much faster on large photos, and a
            truncated file then stops the pipeline later, with its path.
        workers: threads; defaults to the number of CPUs.
        progress: show a progress bar (for the command line).

    Returns:
        An `ImageReport`; `format_report(report)` makes it printable.
    """
    config = DataConfig() if config is None else config
    if isinstance(paths, (str, os.PathLike)):
        paths = list_images(paths)
    paths = [os.fspath(p) for p in paths]
    workers = workers or os.cpu_count() or 1
    bar = None
    if progress:
        import keras  # Only for the progress bar; keeps `import data` light.

        bar = keras.utils.Progbar(len(paths), unit_name="image")
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for i, result in enumerate(
            pool.map(lambda p: _check_one(p, config, decode), paths), start=1
        ):
            results.append(result)
            if bar is not None and (i % 64 == 0 or i == len(paths)):
                bar.update(i)
    good, sizes, bad, enlarged = [], [], [], []
    for path, result in zip(paths, results):
        if isinstance(result, BadImage):
            bad.append(result)
            continue
        good.append(path)
        sizes.append(result)
        if _is_enlarged(*result, config):
            enlarged.append(path)
    return ImageReport(
        good=tuple(good),
        sizes=tuple(sizes),
        bad=tuple(bad),
        enlarged=tuple(enlarged),
        crop_size=config.crop_size,
    )


def format_report(report, title=None, max_listed=None):
    """Printable text for an `ImageReport`: counts, then every bad file.

    Args:
        report: from `check_images`.
        title: a first line, e.g. the domain's name.
        max_listed: list at most this many bad files (all by default).

    Returns:
        A string of lines (no trailing newline).
    """
    lines = [title] if title else []
    lines.append(
        f"Checked {report.num_checked} image file"
        f"{'s' if report.num_checked != 1 else ''}: {len(report.good)} readable, "
        f"{len(report.bad)} bad."
    )
    listed = report.bad if max_listed is None else report.bad[:max_listed]
    lines.extend(f"  {bad.path}: {bad.reason}" for bad in listed)
    if len(listed) < len(report.bad):
        lines.append(f"  ... and {len(report.bad) - len(listed)} more")
    if report.enlarged:
        lines.append(
            f"{len(report.enlarged)} image(s) smaller than crop_size="
            f"{report.crop_size} px will be enlarged, e.g. {report.enlarged[0]}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """One domain's images: files on disk or a TensorFlow Datasets split.

    Build one with `from_folder`, `from_files` or `from_tfds`; `resolve_domains`
    builds both domains from what a user typed.

    Args:
        name: what messages call it (a folder, or `tfds:<name>/<split>`).
        paths: the image files (file sources).
        ignored: other files in the folder, as `((extension, count), ...)`.
        hidden: hidden files and folders skipped in the folder.
        tfds_name: the TFDS dataset, e.g. `cycle_gan/horse2zebra`.
        tfds_split: its split, e.g. `trainA`.
        tfds_data_dir: where TFDS keeps its data (TFDS's default if None).
    """

    name: str
    paths: tuple = ()
    ignored: tuple = ()
    hidden: int = 0
    tfds_name: Optional[str] = None
    tfds_split: Optional[str] = None
    tfds_data_dir: Optional[str] = None

    @property
    def is_tfds(self):
        return self.tfds_name is not None

    @classmethod
    def from_folder(cls, folder):
        """All images under `folder` (see `list_images` for the errors)."""
        images, ignored, hidden = _scan(folder)
        if not images:
            list_images(folder)  # Raises the counted "found 0 images" error.
        return cls(
            name=os.fspath(folder),
            paths=tuple(images),
            ignored=tuple(sorted(ignored.items())),
            hidden=hidden,
        )

    @classmethod
    def from_files(cls, paths, name=None):
        """Exactly these image files (not checked for existence until used)."""
        paths = tuple(os.fspath(p) for p in paths)
        if not paths:
            raise ValueError(
                f"A domain needs at least one image file. Received: paths=[] "
                f"(name={name!r})"
            )
        return cls(name=name or f"{len(paths)} files", paths=paths)

    @classmethod
    def from_tfds(cls, name, split, data_dir=None):
        """A TFDS split, e.g. `from_tfds("cycle_gan/horse2zebra", "trainA")`."""
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"`tfds_name` must be a dataset name. Received: tfds_name={name!r}"
            )
        return cls(
            name=f"tfds:{name}/{split}",
            tfds_name=name,
            tfds_split=split,
            tfds_data_dir=None if data_dir is None else os.fspath(data_dir),
        )


class Domains(NamedTuple):
    """The two domains of an unpaired dataset: `a` (X) and `b` (Y)."""

    a: ImageSource
    b: ImageSource


def as_source(value):
    """An `ImageSource` from a source, a folder, or a list of image files."""
    if isinstance(value, ImageSource):
        return value
    if isinstance(value, (str, os.PathLike)):
        if os.fspath(value).startswith("tfds:"):
            raise ValueError(
                "A `tfds:` spec names a dataset with two domains; pass it as "
                "resolve_domains(data=...), or build one domain with "
                f"ImageSource.from_tfds(name, split). Received: {os.fspath(value)!r}"
            )
        return ImageSource.from_folder(value)
    if isinstance(value, (list, tuple)):
        return ImageSource.from_files(value)
    raise ValueError(
        "A domain must be a folder, a list of image files or an ImageSource. "
        f"Received: {type(value).__name__}"
    )


def resolve_domains(
    data=None,
    domain_a=None,
    domain_b=None,
    tfds_name=None,
    split="train",
    *,
    tfds_data_dir=None,
):
    """Finds the two domains from what the user gave; exactly one form of:

    - `data`: a dataset root in the authors' layout, where `<split>A/` and
      `<split>B/` are the domains (e.g. `horse2zebra/trainA`), or the string
      `"tfds:<name>"`, e.g. `"tfds:cycle_gan/horse2zebra"`;
    - `domain_a` and `domain_b`: two folders (or lists of image files);
    - `tfds_name`: a TFDS dataset whose splits are `<split>A` / `<split>B`
      (all `cycle_gan/*` configs).

    Args:
        data: dataset root or `tfds:` spec.
        domain_a: domain A (X) folder or files.
        domain_b: domain B (Y) folder or files.
        tfds_name: TFDS dataset name.
        split: `"train"` or `"test"` (any `<split>A`/`<split>B` pair works).
        tfds_data_dir: where TFDS keeps its data (TFDS's default if None).

    Returns:
        `Domains(a, b)` of `ImageSource`s; folders are listed now, so a wrong
        path fails here.
    """
    forms = [data, domain_a if domain_a is not None else domain_b, tfds_name]
    if sum(form is not None for form in forms) != 1:
        raise ValueError(
            "Give exactly one of `data` (dataset root or 'tfds:<name>'), "
            "`domain_a` + `domain_b`, or `tfds_name`. Received: "
            f"data={data!r}, domain_a={domain_a!r}, domain_b={domain_b!r}, "
            f"tfds_name={tfds_name!r}"
        )
    if not isinstance(split, str) or not split:
        raise ValueError(
            f"`split` must be a name like 'train'. Received: split={split!r}"
        )
    if isinstance(data, str) and data.startswith("tfds:"):
        tfds_name = data[len("tfds:"):]
        data = None
    if tfds_name is not None:
        return Domains(
            ImageSource.from_tfds(tfds_name, f"{split}A", tfds_data_dir),
            ImageSource.from_tfds(tfds_name, f"{split}B", tfds_data_dir),
        )
    if data is not None:
        root = os.fspath(data)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"Dataset folder not found: {root}")
        folders = [os.path.join(root, split + letter) for letter in "AB"]
        missing = [f for f in folders if not os.path.isdir(f)]
        if missing:
            found = sorted(
                d for d in os.listdir(root)
                if os.path.isdir(os.path.join(root, d)) and not d.startswith(".")
            )
            raise FileNotFoundError(
                f"Expected the authors' dataset layout with {split}A/ and {split}B/ "
                f"in {root}. Missing: {', '.join(missing)}. Found folders: {found}. "
                "For two arbitrary folders pass domain_a= and domain_b=."
            )
        return Domains(*(ImageSource.from_folder(f) for f in folders))
    if domain_a is None or domain_b is None:
        raise ValueError(
            "Both `domain_a` and `domain_b` are needed. Received: "
            f"domain_a={domain_a!r}, domain_b={domain_b!r}"
        )
    return Domains(as_source(domain_a), as_source(domain_b))


# ---------------------------------------------------------------------------
# The tf.data pipeline
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class UnpairedData:
    """An unpaired dataset ready for `model.fit`.

    Args:
        dataset: `tf.data.Dataset` of `(x, y)` float32 batches in [-1, 1],
            x from domain A and y from domain B. For training it repeats
            forever, so pass `steps_per_epoch` to `fit`.
        steps_per_epoch: batches per epoch: `max(size_a, size_b) // batch_size`
            (at least 1) for training, as in the reference; for evaluation,
            the number of batches in the (finite) dataset.
        size_a: images in domain A (after skipping bad files).
        size_b: images in domain B.
        skipped: a `BadImage` per file left out with `skip_bad_files=True`.
    """

    dataset: tf.data.Dataset
    steps_per_epoch: int
    size_a: int
    size_b: int
    skipped: tuple = ()
    _build: Optional[Callable] = dataclasses.field(default=None, repr=False, compare=False)

    def from_step(self, step):
        """The seeded training stream from batch `step` on, exactly as an
        uninterrupted stream continues there; no image is decoded to skip."""
        if self._build is None:
            raise ValueError(
                "from_step needs a seeded training stream (training=True, seed=...)."
            )
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"`step` must be an integer >= 0. Received: step={step!r}")
        return self._build(step)


def _checked_paths(source, config, letter, decode, progress):
    """Validates a file source; returns (good paths, sizes, skipped)."""
    report = check_images(source.paths, config, decode=decode, progress=progress)
    title = f"Domain {letter} ({source.name})"
    if not report.good:
        raise ValueError(
            f"{title} has no readable images: all {len(report.bad)} files are bad.\n"
            + format_report(report, max_listed=20)
        )
    if report.bad and not config.skip_bad_files:
        raise ValueError(
            format_report(report, title=title + " has unreadable files:")
            + "\nFix or remove them, or set DataConfig(skip_bad_files=True) to "
            "train without them."
        )
    if report.bad:
        logger.warning(
            "%s: skipping %d unreadable file(s) (skip_bad_files=True):\n%s",
            title,
            len(report.bad),
            "\n".join(f"  {b.path}: {b.reason}" for b in report.bad),
        )
    if report.enlarged:
        logger.warning(
            "%s: %d image(s) are smaller than crop_size=%d px and are enlarged "
            "(bicubic), e.g. %s",
            title,
            len(report.enlarged),
            config.crop_size,
            report.enlarged[0],
        )
    return report.good, report.sizes, report.bad


def _check_batchable(sizes, paths, config, letter):
    """Without a crop, images keep their own sizes and cannot share a batch."""
    if config.batch_size == 1 or config.preprocess in _CROP_MODES:
        return
    outputs = {}
    for path, size in zip(paths, sizes):
        outputs.setdefault(_output_size(*size, config), path)
    if len(outputs) > 1:
        examples = ", ".join(
            f"{w}x{h} ({path})" for (w, h), path in list(outputs.items())[:3]
        )
        raise ValueError(
            f"preprocess={config.preprocess!r} keeps each image's aspect ratio, so "
            f"domain {letter} gives {len(outputs)} different sizes (e.g. {examples}), "
            f"which cannot be stacked into batches. Received: batch_size="
            f"{config.batch_size}. Use batch_size=1, or a cropping mode such as "
            "preprocess='scale_width_and_crop'."
        )


def _make_loader(config, training, warn_enlarged, letter):
    """The Python function tf.numpy_function runs: (name, bytes) -> uint8."""
    warned = threading.Event()

    def load(name, data):
        name = name.decode("utf-8", "replace")
        try:
            image = _decode(io.BytesIO(data), config.channels, config.max_pixels)
        except _BadImage as error:
            # Surfaces as tf.errors.InvalidArgumentError with this message.
            raise ValueError(f"Cannot read image {name}: {error.reason}") from None
        if warn_enlarged and not warned.is_set() and _is_enlarged(*image.size, config):
            warned.set()
            logger.warning(
                "Domain %s: %s is %dx%d, smaller than crop_size=%d px; such images "
                "are enlarged (bicubic). Further ones are not logged.",
                letter, name, image.width, image.height, config.crop_size,
            )
        return _to_array(_resize(image, config, centre_crop=not training))

    return load


def _elements(source):
    """A source's images as index-addressable tensors: `(names, blobs, count)`.

    Files give their paths as names and no blobs (a file is read only when it
    is drawn). TFDS splits are read into memory as encoded bytes: training
    draws images by index, which a TFDS record stream cannot serve (the
    `cycle_gan/*` splits are tens to a few hundred MB encoded).
    """
    if not source.is_tfds:
        return tf.constant(list(source.paths)), None, len(source.paths)

    import tensorflow_datasets as tfds  # Slow to import; only TFDS users pay.

    builder = tfds.builder(source.tfds_name, data_dir=source.tfds_data_dir)
    logger.info("Preparing %s (downloads on first use).", source.tfds_name)
    builder.download_and_prepare()
    known = list(builder.info.splits.keys())
    if known and source.tfds_split not in known:
        raise ValueError(
            f"{source.tfds_name} has no split {source.tfds_split!r}. "
            f"Its splits: {sorted(known)}"
        )
    records = builder.as_dataset(
        split=source.tfds_split,
        shuffle_files=False,
        # Keep the encoded bytes: they decode below exactly like files do.
        decoders={"image": tfds.decode.SkipDecoding()},
    )
    blobs = [record["image"] for record in tfds.as_numpy(records)]
    if not blobs:
        raise ValueError(f"{source.name} is empty.")
    names = [f"{source.name}#{i}" for i in range(len(blobs))]
    return tf.constant(names), tf.constant(blobs), len(blobs)


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """A domain after checking, ready for decoding."""

    letter: str
    names: tf.Tensor  # Paths, or "tfds:<name>/<split>#<index>".
    blobs: Optional[tf.Tensor]  # Encoded images (TFDS), or None (read the path).
    size: int
    skipped: tuple
    is_tfds: bool  # Also: sizes were not known up front, so log in decode.


def _prepare(source, config, letter, decode_check, progress):
    """Checks a domain's files (or opens its TFDS split)."""
    skipped = ()
    if not source.is_tfds:
        paths, sizes, skipped = _checked_paths(
            source, config, letter, decode_check, progress
        )
        _check_batchable(sizes, paths, config, letter)
        source = dataclasses.replace(source, paths=tuple(paths))
        found = f"{len(paths)} image{'s' if len(paths) != 1 else ''} in {source.name}"
        if source.ignored or source.hidden:
            found += "; not used: " + _describe_ignored(dict(source.ignored), source.hidden)
        logger.info("Domain %s: %s", letter, found)
    names, blobs, size = _elements(source)
    return _Prepared(letter, names, blobs, size, tuple(skipped), source.is_tfds)


def _epoch_orders(size, seed, start):
    """Indices into a domain: a new permutation every epoch, from `start` on.

    Epoch e's order is a pure function of (seed, e), unlike
    `Dataset.shuffle(reshuffle_each_iteration=True)`, whose order changes with
    every iterator made from the dataset. So a resumed run that starts a new
    iterator at element `start` sees exactly the elements an uninterrupted
    run would, and skipping to it costs no decoding.
    """
    first_epoch, offset = divmod(start, size)

    def permutation(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(size, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        return tf.data.Dataset.from_tensor_slices(order)

    return tf.data.Dataset.range(first_epoch, 2**62).flat_map(permutation).skip(offset)


def _decoder(prepared, config, training):
    """index -> uint8 HxWxC image, decoded and resized by Pillow."""
    loader = _make_loader(config, training, prepared.is_tfds, prepared.letter)

    def decode(index):
        name = tf.gather(prepared.names, index)
        data = tf.io.read_file(name) if prepared.blobs is None else tf.gather(prepared.blobs, index)
        image = tf.numpy_function(loader, [name, data], tf.uint8, stateful=False)
        image.set_shape([None, None, config.channels])
        return image

    return decode


def _cached_decoder(prepared, config, training):
    """Like `_decoder`, from images decoded once, up front, into memory.

    The images live in one flat variable (plus offsets and shapes), so images
    of different sizes fit and the dataset graph stays small: a captured
    constant would be copied into every serialized copy of the graph.
    """
    decode = _decoder(prepared, config, training)
    decoded = tf.data.Dataset.range(prepared.size).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    arrays = [image for image in decoded.as_numpy_iterator()]
    shapes = np.array([a.shape for a in arrays], np.int64)
    offsets = np.concatenate([[0], np.cumsum([a.size for a in arrays])]).astype(np.int64)
    with tf.init_scope():
        store = tf.Variable(np.concatenate([a.ravel() for a in arrays]), trainable=False)
    logger.info(
        "Domain %s: cached %d decoded images (%.1f MB).",
        prepared.letter, len(arrays), offsets[-1] / 2**20,
    )
    shapes, offsets = tf.constant(shapes), tf.constant(offsets)

    def from_cache(index):
        flat = store[offsets[index] : offsets[index + 1]]
        return tf.reshape(flat, tf.gather(shapes, index))

    return from_cache


def _domain_pipeline(prepared, config, training, shuffle_seed, augment_seed, length, start=0):
    """One domain's images as a dataset of float32 HxWxC in [-1, 1]."""
    if training:
        indices = _epoch_orders(prepared.size, shuffle_seed, start)
    else:
        # The shorter domain cycles so both give `length` images.
        indices = tf.data.Dataset.range(length).map(lambda i: i % prepared.size)
    make = _cached_decoder if config.cache else _decoder
    images = indices.map(make(prepared, config, training), num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        # The element's position in the endless stream (across epochs) seeds
        # its crop and flip, so augmentation after the cache differs every
        # epoch and a resumed stream repeats an uninterrupted one exactly.
        augment = _make_augment(config, augment_seed)
        return images.enumerate(start=start).map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    # The reference's ToTensor() + Normalize(0.5, 0.5): [0, 255] -> [-1, 1].
    return images.map(imaging.to_float, num_parallel_calls=tf.data.AUTOTUNE)


def _make_augment(config, key):
    crop = config.crop_size if config.preprocess in _CROP_MODES else None

    def augment(index, image):
        seed = tf.stack([tf.constant(key, tf.int64), index])
        crop_seed, flip_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, num=2)
        )
        if crop is not None:
            image = tf.image.stateless_random_crop(
                image, [crop, crop, config.channels], seed=crop_seed
            )
        if config.flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
        return imaging.to_float(image)

    return augment


def _derive_seeds(seed):
    """Four independent 32-bit seeds (shuffle and augment, per domain)."""
    entropy = np.random.SeedSequence().entropy if seed is None else seed
    words = np.random.SeedSequence(entropy).generate_state(4)
    return [int(w) for w in words]


def unpaired_dataset(
    source_a,
    source_b,
    config,
    training=True,
    seed=None,
    *,
    decode_check=True,
    progress=False,
    start_step=0,
    channels=None,
):
    """Builds the `(x, y)` batch pipeline for two unpaired domains.

    Training: each domain runs through its images in a new random order every
    epoch, on its own (their sizes rarely match); images are decoded in
    parallel (or taken from the cache), then randomly cropped and flipped;
    batches of `config.batch_size` pairs repeat forever.
    Evaluation (`training=False`): sorted order, no randomness (centre crop, no
    flip), the shorter domain cycles to the longer one's length, and the
    dataset ends after one pass (the last batch may be smaller).

    File sources are checked first (`check_images`): bad files stop the build
    with a list of them, or are skipped and listed when
    `config.skip_bad_files` is set. TFDS records are not pre-checked; an
    unreadable one stops iteration with its index in the message.

    Without a crop (`scale_width`, `none`) images keep their own aspect
    ratios. Batches need one size, so with `batch_size` > 1 the files' output
    sizes are checked up front and differing ones raise a `ValueError`
    naming them (use `batch_size=1` or a cropping mode). TFDS sizes are not
    known up front; there, differing sizes fail when batched.

    With a `seed`, batches are the same on every run (tf.data determinism on;
    each image's crop and flip seeded by its position in the stream). The
    dataset shards by data under `tf.distribute`
    (`strategy.experimental_distribute_dataset`) and `batch_size` is the
    global batch; with several workers, give every worker the same seed so
    that their shards of the stream do not overlap. Decoding runs Python (Pillow,
    via `tf.numpy_function`), so the pipeline needs a Python host: fine for
    CPUs, GPUs and TPU VMs, not for the tf.data service.

    Args:
        source_a: domain A (X): an `ImageSource`, a folder, or a list of files.
        source_b: domain B (Y), the same.
        config: a `DataConfig`.
        training: random augmentation and an endless stream, or a single
            deterministic pass for evaluation.
        seed: int for repeatable batches; None draws fresh randomness.
        decode_check: decode every file at start-up to find truncated ones
            (`check_images(decode=...)`); False reads headers only.
        progress: show a progress bar while checking files.
        start_step: begin the training stream after this many batches, as an
            uninterrupted stream with the same seed would be there (resuming a
            run); only indices are skipped, no image is decoded for it.
        channels: `(channels of A, channels of B)` when the domains differ
            (e.g. grayscale to colour); default `config.channels` for both.

    Returns:
        An `UnpairedData`.
    """
    if not isinstance(config, DataConfig):
        raise ValueError(
            f"`config` must be a DataConfig. Received: {type(config).__name__}"
        )
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or seed < 0
    ):
        raise ValueError(
            f"`seed` must be a non-negative int or None. Received: seed={seed!r}"
        )
    source_a, source_b = as_source(source_a), as_source(source_b)
    if channels is None:
        channels = (config.channels, config.channels)
    if not isinstance(channels, (tuple, list)) or len(channels) != 2:
        raise ValueError(
            f"`channels` must be a pair (A, B), e.g. (1, 3). Received: channels={channels!r}"
        )
    config_a, config_b = (dataclasses.replace(config, channels=c) for c in channels)
    a = _prepare(source_a, config_a, "A", decode_check, progress)
    b = _prepare(source_b, config_b, "B", decode_check, progress)
    longest = max(a.size, b.size)
    shuffle_a, augment_a, shuffle_b, augment_b = _derive_seeds(seed)
    if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
        raise ValueError(f"`start_step` must be an integer >= 0. Received: start_step={start_step!r}")
    if start_step and (not training or seed is None):
        raise ValueError(
            "`start_step` resumes a seeded training stream; it needs training=True "
            f"and a seed. Received: training={training}, seed={seed}"
        )

    def build(step):
        start = step * config.batch_size
        x = _domain_pipeline(a, config_a, training, shuffle_a, augment_a, longest, start)
        y = _domain_pipeline(b, config_b, training, shuffle_b, augment_b, longest, start)
        ds = tf.data.Dataset.zip((x, y))
        # Training streams are endless, so dropping the remainder loses nothing
        # and gives a static batch dimension (XLA, even splits across replicas).
        ds = ds.batch(config.batch_size, drop_remainder=training)
        ds = ds.prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.deterministic = seed is not None or not training
        # Elements come from Python-decoded files, not from a file-reading
        # dataset, so FILE sharding has nothing to split: shard by data.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return ds.with_options(options)

    if training:
        steps = max(1, longest // config.batch_size)
    else:
        steps = math.ceil(longest / config.batch_size)
    return UnpairedData(
        dataset=build(start_step),
        steps_per_epoch=steps,
        size_a=a.size,
        size_b=b.size,
        skipped=a.skipped + b.skipped,
        _build=build if training and seed is not None else None,
    )


# ---------------------------------------------------------------------------
# Fixed evaluation images
# ---------------------------------------------------------------------------


def _as_pil(array, channels):
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (
        array.ndim == 3 and array.shape[-1] not in (1, 3, 4)
    ):
        raise ValueError(
            "Expected a uint8 image of shape (height, width) or (height, width, "
            f"1|3|4). Received: shape={array.shape}, dtype={array.dtype}"
        )
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    image = Image.fromarray(array)  # Mode L, RGB or RGBA.
    if channels == 1:
        return image if image.mode == "L" else image.convert("RGB").convert("L")
    return image.convert("RGB")


def preprocess_for_eval(images, config):
    """Prepares decoded images as the evaluation pipeline does, without randomness.

    The deterministic resize of `config.preprocess`, then a centre crop for the
    cropping modes; no flip. Gives exactly what `unpaired_dataset(...,
    training=False)` gives for the same images.

    Args:
        images: a uint8 image (HxW or HxWxC, C in 1, 3, 4; e.g. from
            `load_image`), a batch NxHxWxC, or a list of images of any sizes.
        config: a `DataConfig`.

    Returns:
        float32 array (N, height, width, config.channels) in [-1, 1].

    Raises:
        ValueError: an image is not uint8, or the images come out in different
            sizes (`scale_width` and `none` keep aspect ratios) and cannot be
            stacked.
    """
    if isinstance(images, np.ndarray) and images.ndim in (2, 3):
        images = [images]
    outputs = [
        _to_array(_resize(_as_pil(image, config.channels), config, centre_crop=True))
        for image in images
    ]
    if not outputs:
        raise ValueError("Received no images.")
    shapes = sorted({o.shape for o in outputs})
    if len(shapes) > 1:
        raise ValueError(
            f"With preprocess={config.preprocess!r} these images come out in "
            f"different sizes and cannot form one batch. Received output shapes: "
            f"{shapes[:4]}. Use a cropping preprocess mode, or images of one size."
        )
    return imaging.to_float_array(np.stack(outputs))


def load_eval_images(paths, config):
    """Reads image files and prepares them with `preprocess_for_eval`.

    For the fixed sample images a training run shows every epoch.

    Args:
        paths: image files.
        config: a `DataConfig` (for `channels`, `max_pixels` and the resize).

    Returns:
        float32 array (N, height, width, config.channels) in [-1, 1].
    """
    images = [load_image(p, config.channels, config.max_pixels) for p in paths]
    return preprocess_for_eval(images, config)
