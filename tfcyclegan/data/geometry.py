"""The deterministic part of the reference's `get_transform`: resize and crop.

Sizes (`resized_size`, `output_size`, `is_enlarged`) are worked out from
`(width, height)` alone, so files can be judged from their headers; `resize`
applies the resize of `DataConfig.preprocess` (and, for evaluation, the centre
crop) to a Pillow image. `preprocess_for_eval` and `load_eval_images` prepare
images outside tf.data exactly as the evaluation pipeline does. Training's
random crop and flip run in tf.data (`pipeline`).
"""

import numpy as np
from PIL import Image

from tfcyclegan import imaging
from tfcyclegan.data import decoding

# The preprocess modes that end in a random (training) or centre (evaluation)
# crop of `crop_size`; the others keep the resized image whole.
CROP_MODES = ("resize_and_crop", "crop", "scale_width_and_crop")


def resized_size(width, height, config):
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


def output_size(width, height, config):
    """(width, height) of the finished example."""
    if config.preprocess in CROP_MODES:
        return config.crop_size, config.crop_size
    return resized_size(width, height, config)


def is_enlarged(width, height, config):
    """Whether an image is smaller than the networks' input and so enlarged."""
    return config.preprocess != "none" and min(width, height) < config.crop_size


def resize(image, config, centre_crop):
    """Applies the deterministic resize (and, for evaluation, the centre crop)."""
    size = resized_size(image.width, image.height, config)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    if centre_crop and config.preprocess in CROP_MODES:
        crop = config.crop_size
        # torchvision's CenterCrop rounds the offset the same way.
        left = int(round((image.width - crop) / 2.0))
        top = int(round((image.height - crop) / 2.0))
        image = image.crop((left, top, left + crop, top + crop))
    return image


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
        decoding.to_array(
            resize(_as_pil(image, config.channels), config, centre_crop=True)
        )
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
    images = [decoding.load_image(p, config.channels, config.max_pixels) for p in paths]
    return preprocess_for_eval(images, config)
