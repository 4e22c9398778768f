"""Full int8 quantization: calibration images and instance-norm equalization.

Full int8 gives each activation tensor one scale, measured on representative
images (`calibration_set`). On trained weights the channels of a convolution's
output differ in scale by up to ~20x, so the statistics of the instance norm
after it (squared deviations, their mean, rsqrt) lost the small channels and
full int8 fell to ~29 dB PSNR against float32. Instance norm does not see a
per-channel scale or shift of its input, so `equalize_instance_norm` rescales
those convolutions to channels of one scale: the generator computes the same
function in float, and int8 keeps every channel. Each norm of that copy then
divides by at least a variance int8 can hold (a floor of two levels of its
input), so that one image's nearly flat channel cannot stretch the int8 range
of rsqrt for all the others, and its stem sees each photo at unit contrast, so
that a faint photo is not held by a few of the levels textured ones need.
`tflite.convert_tflite` does all of it for mode "int8".
"""

import collections
import dataclasses
import logging
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfcyclegan import imaging
from tfcyclegan.export.loading import sample_folder
from tfcyclegan.export.runtime import pad_numpy
from tfcyclegan.layers import InstanceNormalization


def calibration_set(
    representative_images, channels, multiple, min_size, max_images=16, max_side=256
):
    """Representative images as a list of float32 [1, H, W, C] arrays in [-1, 1].

    At most `max_images`, shrunk to fit `max_side` (calibration measures value
    ranges, which do not need full resolution) and reflect-padded to a valid size.
    """
    if representative_images is None:
        raise ValueError(
            "mode='int8' quantizes activations and needs representative images to measure "
            "their ranges: pass representative_images (a folder or a list of images)."
        )
    if isinstance(representative_images, (str, os.PathLike)):
        arrays = sample_folder(representative_images, max_images, channels)
    else:
        arrays = [np.asarray(a) for a in representative_images][:max_images]
        if arrays and arrays[0].ndim == 4:
            arrays = [image for batch in arrays for image in batch][:max_images]
    if not arrays:
        raise ValueError("`representative_images` holds no images.")
    batch = []
    for array in arrays:
        if array.ndim != 3 or array.shape[-1] != channels:
            raise ValueError(
                f"Representative images must be (height, width, {channels}) arrays. "
                f"Received: shape={array.shape}"
            )
        if array.dtype == np.uint8:
            array = imaging.to_float_array(array)
        array = _shrink(array.astype(np.float32), max_side)
        batch.append(pad_numpy(array[None], multiple, min_size))
    return batch


def _shrink(image, max_side):
    """Downscales an HWC float image in [-1, 1] so its longer side is at most `max_side`."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return tf.image.resize(image, size, method="area", antialias=True).numpy()


EQUALIZE_MIN_PSNR = 60.0
"""Least PSNR (dB) of an equalized generator against the original, in float, on the
calibration images. The rescale is exact up to float32 rounding (~95 dB measured on
trained ResNets), so a copy below it computes another function: a convolution output
used by more than its instance norm."""


MAX_EPSILON = 0.01
"""Largest epsilon (per channel) of an equalized norm, whose input channels have a
typical variance of 1: below one int8 level of its variance."""


FLOOR_LEVELS = 2.0
"""An equalized norm's variance floor: the square of this many int8 levels of its input."""


STATISTIC_MARGIN = 2.0
"""How far beyond the calibration images' values a norm's per-image statistics'
int8 ranges reach (`_statistic_ranges`)."""


CONTRAST_DELTA = (2.0 / 255.0) ** 2
"""Added to a photo's variance before the stem's contrast normalization
(`_normalize_stem_contrast`): one pixel level, so a flat photo is scaled by at most 127.5."""


FLAT_RANGE = 2.0 / 255.0
"""Images whose values span less (one uint8 level, in [-1, 1]) are flat."""


class LossyInt8Error(ValueError):
    """Full int8 of a generator whose instance norms cannot be equalized.

    Without equalization, full int8 loses the small channels before each
    instance norm (16 dB PSNR against float32 measured on a trained ResNet-6),
    so `convert_tflite` and `export` refuse to write it unless
    `allow_lossy_int8=True` (`--allow-lossy-int8`).
    """


@dataclasses.dataclass
class Equalized:
    """What `equalize_instance_norm` made.

    Attributes:
        generator: the rescaled copy (or the generator itself when `pairs` is
            empty). The copy is for conversion only: its norms' epsilon is
            per channel (see `equalize_instance_norm`), which its config
            cannot state, so it is not for saving.
        pairs: (convolution name, norm name) of every rescaled pair.
        psnr_db: the copy against the original in float32 on the calibration
            images (None when no copy was checked); also set when the copy
            was refused.
        spread: per pair, the largest over the smallest channel std before
            rescaling (what per-tensor int8 ranges could not hold).
        refused: why equalization could not apply (None when it did, or when
            there was nothing to equalize): full int8 of `generator` is then
            lossy (`LossyInt8Error`).
        converted_psnr_db: the copy as it is converted (its norms' variance
            floors and 8-bit statistics) against the original, as `psnr_db`;
            `psnr_db` is the copy without them (the exact rescale).
        stem_contrast: the name of the convolution that sees its input at unit
            contrast in the copy (`_normalize_stem_contrast`), or None.
    """

    generator: object
    pairs: list
    psnr_db: float = None
    spread: list = dataclasses.field(default_factory=list)
    refused: str = None
    converted_psnr_db: float = None
    stem_contrast: str = None

    def lossy_int8_error(self, min_psnr=EQUALIZE_MIN_PSNR):
        """The `LossyInt8Error` to raise for a refused equalization."""
        return LossyInt8Error(
            f"Full int8 of generator {self.generator.name!r} would be lossy: its instance "
            f"norms cannot be equalized ({self.refused}), and without equalization full int8 "
            "loses the channels of small scale before each norm (16 dB PSNR against float32 "
            "measured on a trained ResNet-6). Write it anyway with allow_lossy_int8=True "
            "(CLI: --allow-lossy-int8), or export the other modes (fp32, fp16)."
        )


def equalize_instance_norm(generator, calibration, min_psnr=EQUALIZE_MIN_PSNR):
    """A copy of `generator` whose convolutions feeding instance norm have channels of
    unit scale and zero mean on `calibration`: the same function, int8-friendly.

    Full int8 gives each activation tensor one scale. After a trained
    convolution, channel stds differ by 4-20x (measured on CycleGANs trained
    at 64 px), and the instance norm after it squares them: the small channels
    round to a few levels, their variance to ~0, rsqrt saturates, and whole
    feature maps break (max abs error ~1 on [-1, 1]). Instance norm removes a
    per-channel shift and scale of its input, so each such convolution's
    output channel c is divided by its typical std s_c and its bias shifted by
    the channel's mean: int8 then sees channels of one scale.

    Epsilon is the one thing instance norm does see: (x - m) / sqrt(v + eps)
    of the rescaled channel is (x - m) / sqrt(v + eps * s_c^2) of the original.
    On an image where a channel is nearly flat (v near eps: fog, sky, a
    feature the image lacks) that changes its output by up to ~40%; a trained
    ResNet-6 fell to 52 dB against itself with two low-contrast calibration
    photos, and the copy was refused. So the copy's norms add eps / s_c^2 per
    channel, which makes the rescale exact (to float32 rounding) on any image.
    A channel is scaled up by at most sqrt(`MAX_EPSILON` / eps), so that the
    added epsilon stays under `MAX_EPSILON` (a smaller channel is mostly
    epsilon in its norm). Small channels are scaled as far as that, not left
    as they are: on real photos a ResNet's stem had one channel of std ~0.03,
    and leaving it cost full int8 1.5-4 dB on two trained ResNets
    (benchmarks/bench_int8_trained.py).

    The copy's stem (its first convolution, when a norm follows it) sees its
    input at unit contrast per image (`_normalize_stem_contrast`), so that a
    low-contrast photo fills the int8 ranges the textured ones set.

    A norm is paired with the convolution called just before it (through
    layers such as cropping), with as many channels; the copy is checked
    against the original on `calibration` and refused if it differs by more
    than `min_psnr` dB (a convolution output used by more than its norm).

    After the check, each norm of the copy gets a variance floor of
    `FLOOR_LEVELS` int8 levels of its input (`InstanceNormalization.variance_floor`).
    On an image where a channel spans fewer levels (the stem's colour channels
    on a photo without that colour), int8 holds nothing of it to amplify; without
    the floor, its rsqrt reaches 1 / sqrt(eps) and rsqrt's one int8 scale loses
    every other channel's (relative error 7x measured at a trained ResNet-9's
    stem on a cat photo). The floor changes the float function only on such
    channels (`Equalized.converted_psnr_db`), and gave 2-3.5 dB on three
    trained ResNets. Their per-image statistics (mean, variance, rsqrt) get
    int8 ranges `STATISTIC_MARGIN` times their calibration values
    (`_statistic_ranges`).

    Args:
        generator: a float32 generator.
        calibration: float32 [1, H, W, C] arrays in [-1, 1] (`calibration_set`).
        min_psnr: the check's bound.

    Returns:
        An `Equalized`: its `pairs` empty when there was nothing to do or the
        copy was refused (then `refused` says why).
    """
    convs = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)
    found = [
        layer
        for layer in generator._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, (*convs, InstanceNormalization))
    ]
    if not any(isinstance(layer, InstanceNormalization) for layer in found):
        return Equalized(generator, [])
    try:
        copy = generator.__class__.from_config(generator.get_config())
        copy.set_weights(generator.get_weights())
    except Exception as error:  # A model that cannot be rebuilt from its config.
        return _refused(generator, f"it cannot be copied: {error}")
    stem = _normalize_stem_contrast(copy, calibration, convs)
    calls, outputs = _recorded_calls(copy, calibration, convs)

    pairs, spread, floors = [], [], []
    for conv, norm, stats in _conv_norm_pairs(calls):
        if not conv.use_bias or norm.epsilon is None:
            continue
        centre = np.mean(stats.means, axis=0)
        typical = np.mean(stats.variances, axis=0)
        live = typical > 0
        scale = np.where(live, 1.0 / np.sqrt(np.where(live, typical, 1.0)), 1.0)
        scale = np.minimum(scale, np.sqrt(MAX_EPSILON / norm.epsilon))
        kernel, bias = conv.get_weights()
        # Output channels: last kernel axis of Conv2D, the third of Conv2DTranspose.
        axis_scale = scale[:, None] if isinstance(conv, keras.layers.Conv2DTranspose) else scale
        conv.set_weights([kernel * axis_scale, (bias - centre) * scale])
        # The copy only: a per-channel constant in the graph (ADD of a vector).
        norm.epsilon = (norm.epsilon * scale**2).astype(np.float32)
        pairs.append((conv.name, norm.name))
        spread.append(float(np.sqrt(typical[live].max() / typical[live].min())) if live.any() else 1.0)
        # The copy's input range on the calibration images: int8's one scale.
        span = np.max((stats.maxima - centre) * scale) - np.min((stats.minima - centre) * scale)
        floor = (FLOOR_LEVELS * span / 255.0) ** 2
        ranges = _statistic_ranges(stats, centre, scale, span, floor, norm.epsilon)
        floors.append((norm, np.float32(floor), ranges))
    if not pairs:
        return Equalized(generator, [])
    # A flat image (one pixel level) is left out of the check: the norms see
    # 0 / 0 there and the generator's output is float32 noise (input noise of
    # 1e-6 moved a trained ResNet-6's output by 22 dB), which no copy matches.
    checked = [i for i, image in enumerate(calibration) if np.ptp(image) >= FLAT_RANGE]
    checked = checked or list(range(len(calibration)))

    def quality():
        copied = np.concatenate([_flat(copy(calibration[i], training=False)) for i in checked])
        return round(_psnr(copied, np.concatenate([outputs[i] for i in checked])), 2)

    exact = quality()
    if exact < min_psnr:
        return _refused(
            generator,
            f"the rescaled copy differs from it by {exact:.1f} dB PSNR < {min_psnr:.0f} dB "
            "on the calibration images, so a convolution output is used by more than its "
            "instance norm",
            exact,
        )
    for norm, floor, ranges in floors:
        norm.variance_floor = floor
        norm.statistic_ranges = ranges
    return Equalized(copy, pairs, exact, spread, converted_psnr_db=quality(), stem_contrast=stem)


def _statistic_ranges(stats, centre, scale, span, floor, epsilon):
    """The int8 ranges of an equalized norm's per-image statistics (see
    `InstanceNormalization.statistic_ranges`): `STATISTIC_MARGIN` times their
    largest values on the calibration images, rsqrt at most 1 / sqrt(floor), the
    mean at least one int8 level of the input (`span` / 255: one calibration image
    has means of 0 after the shift).

    Calibration sees each statistic once per image and channel (16 x C values,
    against 16 x H x W x C for a feature map), so another photo's exceed their
    calibrated ranges: a trained ResNet-9's stem rsqrt reached 1.34x its range
    on a held-out photo, and the channel came out 25% too weak.
    """
    variance = np.maximum(stats.variances * scale**2, floor)
    rsqrt = 1.0 / np.sqrt(variance + epsilon)
    return {
        "mean": float(max(STATISTIC_MARGIN * np.max(np.abs((stats.means - centre) * scale)), span / 255.0)),
        "variance": float(STATISTIC_MARGIN * np.max(variance)),
        "rsqrt": float(min(STATISTIC_MARGIN * np.max(rsqrt), 1.0 / np.sqrt(floor + np.min(epsilon)))),
    }


def _normalize_stem_contrast(copy, calibration, convs):
    """Makes the copy's first convolution see its input at unit contrast, if an
    instance norm follows it; returns that convolution's name, or None.

    The stem convolution sees the photo as it is, so its outputs on a
    low-contrast photo (sky, fog) span a fraction of the int8 range the
    textured photos set: centred values of 0.17 steps per std, and variances
    rounded to a few levels, were the largest int8 error left on real photos
    (relative error 1.4 at a trained ResNet-9's stem rsqrt). So the stem
    computes conv((x - m) * r) with m each input channel's mean and
    r = 1 / sqrt(mean((x - m)^2) + `CONTRAST_DELTA`), one number per image; its
    norm adds eps * r^2 for eps, which is exact: reflection padding carries the
    shift, the norm removes it, and the scale r is the equalization argument
    per image. A convolution with zero padding would not carry the shift
    exactly, so only a "valid" one (after its own padding layer) is changed.
    """
    record = _recorded_calls(copy, calibration[:1], convs)[0][0]
    pair = next(iter(_conv_norm_pairs([record])), None)
    first = next((layer for layer, _, _ in record if isinstance(layer, convs)), None)
    if pair is None or pair[0] is not first or first.padding != "valid":
        return None
    conv, norm = pair[0], pair[1]
    conv_call, norm_call = type(conv).call, type(norm).call
    scale = []  # r of the image in flight: set by the convolution, taken by its norm

    def contrast_normalized(inputs, *args, **kwargs):
        mean = ops.mean(inputs, axis=(1, 2), keepdims=True)
        centred = inputs - mean
        # centred * centred: see `InstanceNormalization.call`.
        r = ops.rsqrt(ops.mean(centred * centred, axis=(1, 2, 3), keepdims=True) + CONTRAST_DELTA)
        scale.append(r)
        return conv_call(conv, centred * r, *args, **kwargs)

    def with_image_epsilon(inputs, *args, **kwargs):
        epsilon = norm.epsilon
        r = scale.pop()
        norm.epsilon = epsilon * (r * r)  # r * r: LiteRT's SQUARE has no int8 kernel
        try:
            return norm_call(norm, inputs, *args, **kwargs)
        finally:
            norm.epsilon = epsilon

    conv.call, norm.call = contrast_normalized, with_image_epsilon
    return conv.name


def _refused(generator, reason, psnr_db=None):
    logging.getLogger(__name__).warning("Not equalizing %s for int8: %s.", generator.name, reason)
    return Equalized(generator, [], psnr_db, refused=reason)


def _recorded_calls(model, calibration, layer_types):
    """Runs `model` eagerly on each calibration image, recording the calls of its
    layers of `layer_types` and of its instance norms.

    Returns:
        (calls, outputs): per image, [(layer, input, output), ...] in the order
        of execution; the model's output per image, flattened.
    """
    layers = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, (*layer_types, InstanceNormalization))
    ]
    calls, record = [], None

    def recording(layer, call):
        def wrapped(inputs, *args, **kwargs):
            output = call(inputs, *args, **kwargs)
            record.append((layer, inputs, output))
            return output

        return wrapped

    previous = [layer.__dict__.get("call") for layer in layers]
    for layer in layers:
        # An instance attribute shadows the method for the eager calls below.
        layer.call = recording(layer, layer.call)
    outputs = []
    try:
        for image in calibration:
            record = []
            outputs.append(_flat(model(image, training=False)))
            calls.append(record)
    finally:
        for layer, call in zip(layers, previous):
            if call is None:
                del layer.call
            else:  # The copy's own override (`_normalize_stem_contrast`).
                layer.call = call
    return calls, outputs


ChannelStats = collections.namedtuple("ChannelStats", "means variances minima maxima")
"""A convolution output's per-image, per-channel statistics: (images, channels) arrays."""

def _conv_norm_pairs(calls):
    """(conv, norm, ChannelStats) of each norm and the convolution called just before
    it, with the per-image channel statistics of that convolution's output."""
    pairs = {}
    for record in calls:
        last = None
        for layer, inputs, output in record:
            if not isinstance(layer, InstanceNormalization):
                last = (layer, output)
                continue
            if last is not None and last[1].shape[-1] == inputs.shape[-1]:
                values = np.asarray(last[1], np.float64).reshape(-1, inputs.shape[-1])
                key = (id(last[0]), id(layer))
                entry = pairs.setdefault(key, (last[0], layer, [[] for _ in ChannelStats._fields]))
                for field, value in zip(
                    entry[2], (values.mean(axis=0), values.var(axis=0), values.min(axis=0), values.max(axis=0))
                ):
                    field.append(value)
            last = None
    return [
        (conv, norm, ChannelStats(*(np.stack(field) for field in fields)))
        for conv, norm, fields in pairs.values()
    ]


def _flat(tensor):
    return np.asarray(tensor, np.float64).reshape(-1)


def _psnr(a, b):
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(4.0 / mse)
