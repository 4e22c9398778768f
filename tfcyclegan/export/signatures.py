"""The SavedModel's serving signatures, in TensorFlow ops only (they run in TF Serving).

Decoding of request bytes (with the image size checked from the header before
any pixel is decoded, and a JPEG's EXIF orientation applied as training did),
reflect-padding to a size the generator takes, normalisation, cropping back
and PNG encoding are all in the graph, so TF Serving, `saved_model_cli` and
`tf.saved_model.load` run them without tfcyclegan installed. Every signature
refuses requests of more than `max_batch_size` images and images of more than
`max_pixels` pixels with InvalidArgument, saying which.
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


def _check_batch(batch, max_batch_size, what):
    return tf.debugging.Assert(
        batch <= max_batch_size,
        [
            f"The request holds too many {what}: at most {max_batch_size} per request "
            "(split it, or export with a larger max_batch_size). Received batch size:",
            batch,
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
    """(height, width, is_jpeg) from a PNG, GIF, BMP or JPEG header, before decoding.

    (-1, -1, False) for WebP and JPEG XL.

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
        height, width = tf.case(
            [
                (is_png, lambda: (_be(b, 20, 4), _be(b, 16, 4))),
                (is_gif, lambda: (_le(b, 8, 2), _le(b, 6, 2))),
                (is_bmp, lambda: (tf.abs(_le(b, 22, 4, True)), _le(b, 18, 4, True))),
                (is_jpeg, jpeg),
            ],
            default=lambda: (tf.constant(-1, tf.int64), tf.constant(-1, tf.int64)),
            exclusive=True,
        )
        return height, width, is_jpeg


# --- EXIF orientation ---------------------------------------------------------
#
# Phones store photos as the sensor saw them and say in the JPEG's EXIF block
# how to turn them upright. Training decoded with Pillow's `exif_transpose`;
# TensorFlow's decoders ignore EXIF, so without this a portrait photo would be
# translated lying on its side. Parsed here with TensorFlow ops (the signature
# must run in TF Serving): the JPEG segments up to the first APP1 "Exif" one,
# its TIFF header (byte order), IFD0, and tag 0x0112 in it.

# EXIF comes right after SOI (or JFIF's APP0) by the standard; others may put
# a few APPn segments first.
_MAX_JPEG_SEGMENTS = 32
_MAX_IFD_ENTRIES = 1024  # an APP1 segment (<= 64 KiB) holds at most ~5400 entries
_ORIENTATION_TAG = 0x0112
_EXIF_MAGIC = (0x45, 0x78, 0x69, 0x66, 0, 0)  # "Exif\0\0"


def _exif_orientation(data):
    """The EXIF orientation (1-8) of JPEG bytes `data`: 1 when absent or unreadable."""
    # Zeros after the end: reads past it (a truncated or hostile file) give 0, never an error.
    b = tf.concat([tf.io.decode_raw(data, tf.uint8), tf.zeros([16], tf.uint8)], 0)
    size = tf.size(b, out_type=tf.int64) - 16
    last = size + 15

    def uint(position, count, little=False):
        """Unsigned integers of `count` bytes at `position` (a scalar or a vector)."""
        index = tf.minimum(position[..., None] + tf.range(count, dtype=tf.int64), last)
        values = tf.cast(tf.gather(b, index), tf.int64)
        weights = tf.where(
            little,
            tf.constant([256**i for i in range(count)], tf.int64),
            tf.constant([256**i for i in reversed(range(count))], tf.int64),
        )
        return tf.reduce_sum(values * weights, -1)

    # Segments: 0xFF, marker, 2-byte big-endian length (which counts itself), payload.
    def searching(position, found):
        return ~found & (position + 10 <= size)

    def next_segment(position, found):
        index = tf.minimum(position + tf.range(10, dtype=tf.int64), last)
        head = tf.cast(tf.gather(b, index), tf.int64)
        marker = head[1]
        is_segment = (head[0] == 0xFF) & (marker != 0xDA) & (marker != 0xD9)
        is_exif = is_segment & (marker == 0xE1) & tf.reduce_all(head[4:] == _EXIF_MAGIC)
        length = head[2] * 256 + head[3]
        following = tf.where(is_segment & (length >= 2), position + 2 + length, size)
        return tf.where(is_exif, position, following), is_exif

    start = tf.constant(2, tf.int64)  # after SOI (FF D8)
    position, found = tf.while_loop(
        searching, next_segment, (start, tf.constant(False)),
        maximum_iterations=_MAX_JPEG_SEGMENTS,
    )
    tiff = position + 10  # after FF E1, the length and "Exif\0\0"
    order = uint(tiff, 2)
    little = tf.equal(order, 0x4949)  # "II"; "MM" (0x4D4D) is big-endian
    valid = found & (little | tf.equal(order, 0x4D4D)) & tf.equal(uint(tiff + 2, 2, little), 42)
    ifd = tiff + uint(tiff + 4, 4, little)
    count = tf.minimum(uint(ifd, 2, little), _MAX_IFD_ENTRIES)
    entries = ifd + 2 + 12 * tf.range(count, dtype=tf.int64)
    is_orientation = tf.equal(uint(entries, 2, little), _ORIENTATION_TAG)
    # A SHORT value sits in the first two bytes of the entry's 4-byte value field.
    values = uint(entries + 8, 2, little)
    # Without the tag: 0, or int64's minimum for an empty IFD; neither is an orientation.
    value = tf.reduce_max(tf.where(is_orientation, values, tf.zeros_like(values)))
    orientation = tf.where(valid & (value >= 1) & (value <= 8), value, 1)
    return tf.cast(orientation, tf.int32)


# Each orientation as (transpose, flip up-down, flip left-right), in that
# order; index 0 and values outside 1-8 leave the image as it is. Lookups, not
# branches: a switch over eight image functions cost ~0.6 s per export (measured).
#   2 mirrored, 3 upside down, 4 mirrored upside down, 5 transposed,
#   6 turned 90 degrees clockwise to view, 7 transversed, 8 turned 90 counter-clockwise.
_TRANSPOSE = (False, False, False, False, False, True, True, True, True)
_FLIP_UP_DOWN = (False, False, False, True, True, False, False, True, True)
_FLIP_LEFT_RIGHT = (False, False, True, True, False, False, True, True, False)


def _orient(pixels, orientation):
    """`pixels` (H, W, C) turned upright for EXIF `orientation`, as Pillow's exif_transpose."""
    orientation = tf.where((orientation >= 1) & (orientation <= 8), orientation, 0)
    transpose = tf.gather(_TRANSPOSE, orientation)
    pixels = tf.transpose(pixels, tf.where(transpose, [1, 0, 2], [0, 1, 2]))
    flips = tf.stack(
        [tf.gather(_FLIP_UP_DOWN, orientation), tf.gather(_FLIP_LEFT_RIGHT, orientation)]
    )
    return tf.reverse(pixels, tf.boolean_mask(tf.constant([0, 1]), flips))


def _decode(data, index, channels, max_pixels):
    """Encoded image -> uint8 [H, W, channels]; EXIF orientation, grayscale, RGB and
    alpha converted as `tfcyclegan.data` does."""
    height, width, is_jpeg = _header_size(data, index)
    with tf.control_dependencies(
        [_check_pixels(height, width, max_pixels, "An image in image_bytes")]
    ):
        pixels = tf.cond(
            is_jpeg,
            # decode_image's JPEG default (the fast integer IDCT) differs from
            # Pillow, which training decoded with, by up to 8 levels; the
            # accurate one gives Pillow's pixels exactly (measured).
            lambda: tf.io.decode_jpeg(data, channels=0, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False),
        )
    # Other formats' EXIF (rare in PNG, WebP) is not read; Pillow would apply it.
    pixels = _orient(pixels, tf.where(is_jpeg, _exif_orientation(data), 1))
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

    def __init__(self, generator, max_pixels, max_batch_size):
        self.generator = generator
        self.multiple, self.min_size = size_requirement(generator)
        self.in_channels, self.out_channels = channels_of(generator)
        self.max_pixels = int(max_pixels)
        self.max_batch_size = int(max_batch_size)
        # One traced generator for every signature: three traces of a ResNet-9
        # whose residual blocks run as Winograd tiles (~1000 graph ops each) made
        # export, loading and the first request each several times slower.
        self._generate = tf.function(
            lambda images: self.generator(images, training=False),
            input_signature=[tf.TensorSpec([None, None, None, self.in_channels], tf.float32)],
        )

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
        outputs = tf.cast(self._generate(padded), tf.float32)
        return imaging.crop_to(outputs, size)

    def _batch_checked(self, tensor, what):
        # The whole batch goes through the generator at once: max_pixels bounds
        # one image, this bounds how many (memory grows with both).
        batch = tf.shape(tensor)[0]
        with tf.control_dependencies([_check_batch(batch, self.max_batch_size, what)]):
            return tf.identity(tensor)

    def translate(self, images):
        images = self._batch_checked(images, "images")
        return {"output_images": self._run(images)}

    def translate_uint8(self, pixels):
        pixels = self._batch_checked(pixels, "images")
        return {"output_pixels": imaging.to_uint8(self._run(imaging.to_float(pixels)))}

    def serving_default(self, image_bytes):
        def one(index):
            pixels = _decode(image_bytes[index], index, self.in_channels, self.max_pixels)
            output = imaging.to_uint8(self._run(imaging.to_float(pixels[None])))[0]
            return tf.io.encode_png(output)

        image_bytes = self._batch_checked(image_bytes, "images in image_bytes")
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
