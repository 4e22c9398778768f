"""Image files to pixels, with Pillow.

`open_image` reads only the header, so oversized images are refused before any
pixel is decoded; `decode` gives a Pillow image in mode RGB or L with the EXIF
orientation applied and 16-bit data scaled; `load_image` reads one file into a
uint8 array. A file that is not a usable image raises `BadImageError`, whose
`reason` says why, for people.
"""

import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from tfcyclegan.config import DataConfig

# EXIF orientations 5-8 rotate by 90 degrees, so width and height swap.
_EXIF_ORIENTATION = 0x0112
_ROTATED_ORIENTATIONS = (5, 6, 7, 8)


class BadImageError(Exception):
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


def open_image(fp, max_pixels, extension=""):
    """Reads the header of the image in binary file `fp`; raises `BadImageError`.

    Pillow only parses the header here, so the pixel count is checked before
    any pixel is decoded: a 30000 x 30000 PNG is a few hundred bytes on disk
    and 2.7 GB in memory.
    """
    try:
        image = Image.open(fp)
    except Image.DecompressionBombError as error:
        # Pillow refuses above 2 * Image.MAX_IMAGE_PIXELS by itself, before we
        # see the size; it names the size in its message.
        raise BadImageError(
            f"too many pixels, refused before decoding (possible decompression "
            f"bomb): {error} (Pillow's own limit, PIL.Image.MAX_IMAGE_PIXELS, "
            f"applies on top of max_pixels)"
        ) from None
    except UnidentifiedImageError:
        fp.seek(0)
        raise BadImageError(_not_an_image_reason(fp.read(64), extension)) from None
    width, height = image.size
    if width * height > max_pixels:
        raise BadImageError(
            f"too many pixels, refused before decoding (possible decompression "
            f"bomb): {width}x{height} = {width * height} pixels > "
            f"max_pixels={max_pixels}"
        )
    if width < 1 or height < 1:
        raise BadImageError(f"empty image: {width}x{height} pixels")
    return image


def oriented_size(image):
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


def decode(fp, channels, max_pixels, extension="", draft=False):
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
        BadImageError: with the reason, when the file is not a usable image.
    """
    image = open_image(fp, max_pixels, extension)
    try:
        if draft and image.format == "JPEG":
            # DCT scaling still reads the whole entropy-coded stream, so
            # truncation is still detected, at a fraction of the cost.
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
        if image.mode == "F":
            raise BadImageError(
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
    except BadImageError:
        raise
    except OSError as error:
        raise BadImageError(f"truncated or corrupt: {error}") from None
    except Exception as error:  # Any decoder failure means a bad file.
        raise BadImageError(
            f"corrupt or unsupported: {type(error).__name__}: {error}"
        ) from None


def to_array(image):
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
            return to_array(decode(f, channels, max_pixels, extension))
        except BadImageError as error:
            raise ValueError(f"Cannot read image {path}: {error.reason}") from None
