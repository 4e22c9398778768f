"""Tensor helpers for images of any size: range conversion, padding, cropping.

Generators need heights and widths that are multiples of 4 (ResNet) or
2**num_downs (U-Net). To translate an image of any size we reflect-pad it up
to the next multiple, translate, and crop the result back. These functions are
pure TensorFlow so the exported SavedModels carry them in the graph; the
`*_array` range conversions are their numpy twins, for code that runs models.
"""

import numpy as np
import tensorflow as tf


def to_float(images_uint8):
    """uint8 pixels in [0, 255] -> float32 in [-1, 1] (the networks' range)."""
    return tf.cast(images_uint8, tf.float32) / 127.5 - 1.0


def to_uint8(images):
    """float in [-1, 1] -> uint8 pixels, rounded and clipped."""
    pixels = (tf.cast(images, tf.float32) + 1.0) * 127.5
    return tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)


def to_float_array(pixels):
    """`to_float` for numpy arrays: pixels in [0, 255] -> float32 in [-1, 1]."""
    return np.asarray(pixels).astype(np.float32) / 127.5 - 1.0


def to_uint8_array(images):
    """`to_uint8` for numpy arrays: float in [-1, 1] -> uint8 pixels, rounded and clipped."""
    return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def valid_size(size, multiple, min_size=1):
    """The smallest length >= `size` and >= `min_size` that is a multiple of `multiple`.

    Works on Python ints and on int32 tensors (inside a SavedModel's graph).
    """
    def round_up(value):
        return (value + multiple - 1) // multiple * multiple

    return tf.maximum(round_up(size), round_up(min_size))


def _mirror_indices(size, target):
    """Row (or column) indices of `target` pixels reflecting `size` ones forever.

    Like "reflect" padding (d c b | a b c d | c b a), continued periodically so
    any amount of padding works, even on a one-pixel image.
    """
    period = tf.maximum(2 * size - 2, 1)
    position = tf.range(target) % period
    return tf.where(position < size, position, period - position)


def pad_to_multiple(images, multiple, min_size=1):
    """Reflect-pads NHWC `images` at the bottom and right to a size a generator takes.

    Each of height and width becomes `valid_size(size, multiple, min_size)`.
    Reflection keeps borders natural (the generators themselves pad this way).
    Images already of a valid size pass through unchanged.

    Returns:
        `(padded, (height, width))`, the original size for `crop_to`.
    """
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    rows = _mirror_indices(height, valid_size(height, multiple, min_size))
    cols = _mirror_indices(width, valid_size(width, multiple, min_size))
    padded = tf.gather(tf.gather(images, rows, axis=1), cols, axis=2)
    return padded, (height, width)


def crop_to(images, size):
    """Crops NHWC `images` back to `size` = (height, width) from the top left."""
    height, width = size
    return images[:, :height, :width, :]


_LABEL_HEIGHT = 14


def grid(columns, labels=None):
    """A picture of image columns side by side, one row per image, as uint8 HxWx3.

    Args:
        columns: sequences of NHWC images in [-1, 1] (arrays or tensors), the
            same N, height and width; grayscale is shown as RGB.
        labels: one caption per column, drawn in a white header; None: no header.
    """
    from PIL import Image, ImageDraw

    cells = [to_uint8_array(np.asarray(column, np.float32)) for column in columns]
    cells = [np.repeat(c, 3, axis=-1) if c.shape[-1] == 1 else c for c in cells]
    rows = [np.concatenate([c[i] for c in cells], axis=1) for i in range(len(cells[0]))]
    picture = np.concatenate(rows, axis=0)
    if labels is None:
        return picture
    width = cells[0].shape[2]
    lines = [_wrap(str(label), max(1, (width - 2) // 6)) for label in labels]
    header = Image.new("RGB", (picture.shape[1], _LABEL_HEIGHT * max(map(len, lines))), "white")
    draw = ImageDraw.Draw(header)
    for i, label_lines in enumerate(lines):
        for j, line in enumerate(label_lines):
            draw.text((i * width + 2, 1 + j * _LABEL_HEIGHT), line, fill="black")
    return np.concatenate([np.asarray(header), picture], axis=0)


def _wrap(label, chars):
    """`label` in lines of at most `chars` characters (Pillow's default font: 6 px each),
    broken after "_" or "+" where possible."""
    lines = []
    while len(label) > chars:
        cut = max(label.rfind("_", 0, chars), label.rfind("+", 0, chars)) + 1 or chars
        lines.append(label[:cut])
        label = label[cut:]
    return lines + [label]
