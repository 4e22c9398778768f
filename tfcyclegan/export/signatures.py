"""The SavedModel's serving signatures, in TensorFlow ops only (they run in TF Serving).

Decoding of request bytes (with the image size checked from the header before
any pixel is decoded), reflect-padding to a size the generator takes,
normalisation, cropping back and PNG encoding are all in the graph, so TF
Serving, `saved_model_cli` and `tf.saved_model.load` run them without
tfcyclegan installed.
"""

import tensorflow as tf

from tfcyclegan import imaging
from tfcyclegan.export.loading import channels_of
from tfcyclegan.networks import size_requirement


def _check_pixels(height, width, max_pixels, what):
    pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
    return tf.debugging.Assert(
        pixels <= max_pixels,
        [
            f"{what} is too large: height x width must be at most {max_pixels} pixels "
            "(export with a larger max_pixels to allow it). Received height, width:",
            height,
            width,
        ],
    )


def _be(b, offset, count):
    """Big-endian unsigned integer of `count` bytes of uint8 vector `b` at `offset`."""
    value = tf.constant(0, tf.int64)
    for i in range(count):
        value = value * 256 + tf.cast(b[offset + i], tf.int64)
    return value


def _le(b, offset, count, signed=False):
    value = tf.constant(0, tf.int64)
    for i in reversed(range(count)):
        value = value * 256 + tf.cast(b[offset + i], tf.int64)
    if signed:
        value = tf.where(value >= 2 ** (8 * count - 1), value - 2 ** (8 * count), value)
    return value


def _header_size(data, index):
    """(height, width) from a PNG, GIF, BMP or JPEG header, before decoding.

    (-1, -1) for WebP and JPEG XL.

    Decoding a 30000 x 30000 PNG takes 2.7 GB, and the file may be a few
    hundred bytes: the size is checked before any pixel is decoded (WebP and
    JPEG XL, which TensorFlow also decodes, are checked after decoding).
    Anything else fails here, naming the image's position in the request.
    """
    b = tf.io.decode_raw(data, tf.uint8, fixed_length=32)

    def starts_with(*magic, at=0):
        return tf.reduce_all(tf.equal(b[at : at + len(magic)], magic))

    is_png = starts_with(0x89, 0x50, 0x4E, 0x47)  # \x89PNG
    is_gif = starts_with(0x47, 0x49, 0x46, 0x38)  # GIF8
    is_bmp = starts_with(0x42, 0x4D)  # BM
    is_jpeg = starts_with(0xFF, 0xD8, 0xFF)
    is_webp = starts_with(0x52, 0x49, 0x46, 0x46) & starts_with(0x57, 0x45, 0x42, 0x50, at=8)
    is_jxl = starts_with(0xFF, 0x0A) | starts_with(0, 0, 0, 0x0C, 0x4A, 0x58, 0x4C, 0x20)
    known = is_png | is_gif | is_bmp | is_jpeg | is_webp | is_jxl
    check = tf.debugging.Assert(
        known,
        [
            "An entry of image_bytes is not a JPEG, PNG, GIF, BMP or WebP image. Its index "
            "(from 0) and first bytes:",
            index,
            b[:8],
        ],
        summarize=8,
    )

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0], shape[1]

    with tf.control_dependencies([check]):
        return tf.case(
            [
                (is_png, lambda: (_be(b, 20, 4), _be(b, 16, 4))),
                (is_gif, lambda: (_le(b, 8, 2), _le(b, 6, 2))),
                (is_bmp, lambda: (tf.abs(_le(b, 22, 4, True)), _le(b, 18, 4, True))),
                (is_jpeg, jpeg),
            ],
            default=lambda: (tf.constant(-1, tf.int64), tf.constant(-1, tf.int64)),
            exclusive=True,
        )


def _decode(data, index, channels, max_pixels):
    """Encoded image -> uint8 [H, W, channels]; grayscale, RGB and alpha converted."""
    height, width = _header_size(data, index)
    with tf.control_dependencies(
        [_check_pixels(height, width, max_pixels, "An image in image_bytes")]
    ):
        pixels = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
    have = tf.shape(pixels)[-1]
    if channels == 3:
        pixels = tf.cond(
            have < 3,
            lambda: tf.image.grayscale_to_rgb(pixels[..., :1]),
            lambda: pixels[..., :3],  # alpha is dropped, as tfcyclegan.data does
        )
    else:
        pixels = tf.cond(
            have < 3,
            lambda: pixels[..., :1],
            lambda: tf.image.rgb_to_grayscale(pixels[..., :3]),
        )
    pixels = tf.ensure_shape(pixels, [None, None, channels])
    shape = tf.shape(pixels)
    with tf.control_dependencies(
        [_check_pixels(shape[0], shape[1], max_pixels, "An image in image_bytes")]
    ):
        return tf.identity(pixels)


class ServingFunctions:
    """The SavedModel's signatures around one generator."""

    def __init__(self, generator, max_pixels):
        self.generator = generator
        self.multiple, self.min_size = size_requirement(generator)
        self.in_channels, self.out_channels = channels_of(generator)
        self.max_pixels = int(max_pixels)

    def _run(self, images):
        # Signatures do not enforce the channel count (TF Serving passes any
        # shape through): say what is wrong before a convolution does.
        shape = tf.shape(images)
        checks = [
            tf.debugging.Assert(
                shape[3] == self.in_channels,
                [
                    f"Expected images with {self.in_channels} channels (NHWC). Received shape:",
                    shape,
                ],
                summarize=4,
            ),
            _check_pixels(shape[1], shape[2], self.max_pixels, "An image"),
        ]
        with tf.control_dependencies(checks):
            padded, size = imaging.pad_to_multiple(images, self.multiple, self.min_size)
        outputs = tf.cast(self.generator(padded, training=False), tf.float32)
        return imaging.crop_to(outputs, size)

    def translate(self, images):
        return {"output_images": self._run(images)}

    def translate_uint8(self, pixels):
        return {"output_pixels": imaging.to_uint8(self._run(imaging.to_float(pixels)))}

    def serving_default(self, image_bytes):
        def one(index):
            pixels = _decode(image_bytes[index], index, self.in_channels, self.max_pixels)
            output = imaging.to_uint8(self._run(imaging.to_float(pixels[None])))[0]
            return tf.io.encode_png(output)

        # One image at a time: images of one request may differ in size.
        indices = tf.range(tf.shape(image_bytes)[0])
        outputs = tf.map_fn(one, indices, fn_output_signature=tf.TensorSpec([], tf.string))
        return {"output_bytes": outputs}

    def signatures(self):
        c_in = self.in_channels
        return {
            "serving_default": (
                self.serving_default,
                [tf.TensorSpec([None], tf.string, name="image_bytes")],
            ),
            "translate": (
                self.translate,
                [tf.TensorSpec([None, None, None, c_in], tf.float32, name="images")],
            ),
            "translate_uint8": (
                self.translate_uint8,
                [tf.TensorSpec([None, None, None, c_in], tf.uint8, name="pixels")],
            ),
        }
