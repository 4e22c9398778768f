"""Building blocks shared by the generators and discriminators.

Everything here is NHWC, accepts any height and width, and uses only ops that
TFLite runs as builtins (MIRROR_PAD, MEAN, RSQRT, ...), so networks built from
these layers export to phones without the Flex delegate.

tfcyclegan runs on Keras's TensorFlow backend only (tf.data input, graph
state in tf.Variables, SavedModel/TFLite export). The layers are written in
`keras.ops` where the op exists there, in the plain forms the papers draw.
Where a layer has a faster form (Winograd tiles, a fused kernel, an
XNNPACK-friendly pad), its `call` asks `tfcyclegan.kernels` for it first; the
saved files name only the classes here.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfcyclegan import kernels
from tfcyclegan.checks import check_int


def _as_pair(value, name):
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return tuple(value)
    raise ValueError(
        f"`{name}` must be an int or a pair of ints. Received: {name}={value!r}"
    )


@keras.saving.register_keras_serializable(package="tfcyclegan")
class Conv2D(keras.layers.Conv2D):
    """Keras's `Conv2D`, the networks' convolution.

    `tfcyclegan.kernels` may compute it in a faster form where it runs (Winograd
    tiles, CPU-friendly gradients: `kernels.conv`), with the same numbers to
    float32 rounding. Its weights are saved under Keras's own name (`conv2d`).

    Args:
        **kwargs: as `keras.layers.Conv2D`.
    """

    def call(self, inputs, training=None):
        outputs = kernels.conv2d(self, inputs, training)
        return super().call(inputs) if outputs is None else outputs


@keras.saving.register_keras_serializable(package="tfcyclegan")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads height and width by reflecting the image at its border.

    The CycleGAN generators pad this way (PyTorch's `ReflectionPad2d`) so that
    borders carry real image statistics instead of zeros, which avoids the dark
    frame zero padding leaves in translated images.

    Args:
        padding: int or `(pad_height, pad_width)`, added on both sides. Each
            must be smaller than the corresponding input dimension.
        **kwargs: standard layer arguments.
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = _as_pair(padding, "padding")
        if min(self.padding) < 0:
            raise ValueError(
                f"`padding` must be non-negative. Received: padding={padding!r}"
            )

    def call(self, inputs, training=None):
        ph, pw = self.padding
        for axis, pad in ((1, ph), (2, pw)):
            size = inputs.shape[axis]
            if size is not None and pad >= size:
                raise ValueError(
                    f"Reflection padding of {pad} needs a dimension larger than "
                    f"{pad}. Received: input shape {tuple(inputs.shape)}"
                )
        outputs = kernels.reflection_pad(self, inputs, training)
        if outputs is None:
            outputs = ops.pad(inputs, [[0, 0], [ph, ph], [pw, pw], [0, 0]], mode="reflect")
        return outputs

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        ph, pw = self.padding
        return (
            n,
            None if h is None else h + 2 * ph,
            None if w is None else w + 2 * pw,
            c,
        )

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="tfcyclegan")
class Cropping2D(keras.layers.Cropping2D):
    """Keras's `Cropping2D` (`tfcyclegan.kernels` may compute it as one slice, whose
    gradient is cheaper). Same arguments and outputs as `keras.layers.Cropping2D`."""

    def call(self, inputs):
        outputs = kernels.crop(self, inputs)
        return super().call(inputs) if outputs is None else outputs


@keras.saving.register_keras_serializable(package="tfcyclegan")
class InstanceNormalization(keras.layers.Layer):
    """Normalizes each image's channels over height and width.

    Matches PyTorch's `InstanceNorm2d(affine=False, track_running_stats=False)`,
    which CycleGAN uses: biased variance over H x W, the same in training and
    inference, no state. Equivalent to `GroupNormalization(groups=-1)` but
    computed in two passes (mean, then variance of the centred values), which is
    numerically closer to the reference than E[x^2] - E[x]^2. Only builtin
    TFLite ops (MEAN, RSQRT, ...). `tfcyclegan.kernels` may compute the same
    statistics by TensorFlow's fused batch-norm kernel (`kernels.norm`).

    Args:
        epsilon: added to the variance (1e-5, PyTorch's default).
        center: learn a per-channel offset (off in the reference).
        scale: learn a per-channel scale (off in the reference).
        **kwargs: standard layer arguments.

    Attributes:
        variance_floor: None, or the least variance the norm divides by (and
            squares by MUL, see `call`); set only on the copies int8 export
            converts (`export.quantization`), never saved.
        statistic_ranges: None, or {"mean": m, "variance": v, "rsqrt": r}: the
            int8 ranges of the per-image statistics ([-m, m], [0, v], [0, r]),
            fixed by FakeQuant ops; as `variance_floor`.
    """

    variance_floor = None
    statistic_ranges = None

    def __init__(self, epsilon=1e-5, center=False, scale=False, **kwargs):
        super().__init__(**kwargs)
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be > 0. Received: epsilon={epsilon!r}")
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "InstanceNormalization expects NHWC inputs with a known number of "
                f"channels. Received: input_shape={input_shape}"
            )
        channels = input_shape[-1]
        self.gamma = (
            self.add_weight(shape=(channels,), initializer="ones", name="gamma")
            if self.scale
            else None
        )
        self.beta = (
            self.add_weight(shape=(channels,), initializer="zeros", name="beta")
            if self.center
            else None
        )

    def call(self, inputs, training=None):
        outputs = kernels.instance_norm(self, inputs, training)
        if outputs is not None:
            return outputs
        # Statistics in float16 overflow (and lose precision in bfloat16), so
        # under mixed precision we upcast, normalize, and cast back.
        x = ops.cast(inputs, "float32")
        mean = self._pinned(ops.mean(x, axis=(1, 2), keepdims=True), "mean")
        centred = x - mean
        if self.variance_floor is None:
            variance = ops.mean(ops.square(centred), axis=(1, 2), keepdims=True)
        else:
            # An int8 copy: centred * centred, not square(centred). The TFLite
            # converter fuses square(x - mean) into SQUARED_DIFFERENCE, and the SUB
            # left with the final MUL as its one consumer takes that MUL's
            # (normalized) range: on a faint photo the centred values then round
            # to a few levels. Bitwise the same in float.
            variance = ops.mean(centred * centred, axis=(1, 2), keepdims=True)
            variance = self._pinned(ops.maximum(variance, self.variance_floor), "variance")
        outputs = centred * self._pinned(ops.rsqrt(variance + self.epsilon), "rsqrt")
        if self.gamma is not None:
            outputs = outputs * ops.cast(self.gamma, "float32")
        if self.beta is not None:
            outputs = outputs + ops.cast(self.beta, "float32")
        return ops.cast(outputs, self.compute_dtype)

    def _pinned(self, statistic, name):
        """`statistic` within its int8 range of `statistic_ranges`, if one is set."""
        bound = (self.statistic_ranges or {}).get(name)
        if bound is None:
            return statistic
        import tensorflow as tf  # only int8 export's copies (TensorFlow backend) pin ranges

        low = -bound if name == "mean" else 0.0
        return tf.quantization.fake_quant_with_min_max_args(statistic, min=low, max=bound, num_bits=8)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }


@keras.saving.register_keras_serializable(package="tfcyclegan")
class InputSizeCheck(keras.layers.Layer):
    """Rejects image sizes a network cannot take, naming size and requirement.

    Passes its input through unchanged. Where height and width are known (eager
    calls, `fit`/`predict` on fixed-size batches, export with a concrete shape)
    a bad size raises `ValueError` when the network is called, instead of a
    shape error from deep inside TensorFlow. Unknown sizes are not checked at
    run time: an assertion op would not run in TFLite.

    Args:
        multiple: height and width must be multiples of this.
        min_size: and at least this large.
        network: the network's name, for the message.
        **kwargs: standard layer arguments.
    """

    def __init__(self, multiple=1, min_size=1, network="network", **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)
        self.min_size = int(min_size)
        self.network = network

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        for size in (height, width):
            if size is None:
                continue
            if size % self.multiple or size < self.min_size:
                raise ValueError(
                    f"{self.network} needs height and width that are multiples of "
                    f"{self.multiple} and at least {self.min_size}. Received: "
                    f"height={height}, width={width} (input shape "
                    f"{tuple(inputs.shape)}). Resize, crop or pad the images, e.g. "
                    f"to {max(self.min_size, size // self.multiple * self.multiple)}."
                )
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "multiple": self.multiple,
            "min_size": self.min_size,
            "network": self.network,
        }


@keras.saving.register_keras_serializable(package="tfcyclegan")
class GlobalSkip(keras.layers.Layer):
    """A generator's output as its input plus a learned change: `clip(x + residual, -1, 1)`.

    With the residual branch's last convolution zero-initialized, the
    generator starts as the identity, so training moves the image away from
    the input rather than building it from noise (the subtle-look regime:
    colour grading, white balance, film emulation). The sum runs in float32
    (like the paper's tanh head) under mixed precision; the clip keeps
    outputs in the images' [-1, 1]. Builtin TFLite ops only (ADD, MINIMUM,
    MAXIMUM).

    Call it on `[image, residual]`, both `(batch, height, width, channels)`.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def call(self, inputs):
        image, residual = inputs
        return ops.clip(image + residual, -1.0, 1.0)


@keras.saving.register_keras_serializable(package="tfcyclegan")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras's `BatchNormalization` with PyTorch's moving variance (pix2pix).

    Both normalize a training batch with its biased variance (divided by the
    n values per channel). PyTorch's `BatchNorm2d` then moves its running
    variance towards the unbiased one (divided by n - 1), Keras towards the
    biased one. With pix2pix's batches of one image the inner U-Net levels
    have few values per channel (n = 4 at 2x2), so Keras's moving variance
    would end up 25% low there, and inference with the moving statistics
    would differ from the authors'. Outside training this is Keras's layer.

    Args:
        **kwargs: as `keras.layers.BatchNormalization`.
    """

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        # Statistics in float32, as Keras's layer computes them.
        inputs = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        mean, variance = self._moments(inputs, None)
        count = ops.cast(ops.size(inputs), inputs.dtype) / ops.cast(ops.size(mean), inputs.dtype)
        unbiased = variance * count / ops.maximum(count - 1.0, 1.0)
        momentum = self.momentum
        self.moving_mean.assign(
            ops.cast(self.moving_mean, inputs.dtype) * momentum + mean * (1.0 - momentum)
        )
        self.moving_variance.assign(
            ops.cast(self.moving_variance, inputs.dtype) * momentum + unbiased * (1.0 - momentum)
        )
        outputs = ops.batch_normalization(
            inputs,
            mean,
            variance,
            axis=self.axis,
            offset=ops.cast(self.beta, inputs.dtype) if self.center else None,
            scale=ops.cast(self.gamma, inputs.dtype) if self.scale else None,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)


def normalization(norm, name, dtype=None):
    """The normalization layer for `norm` (`instance`, `batch`), or None for `none`."""
    if norm == "instance":
        return InstanceNormalization(epsilon=1e-5, dtype=dtype, name=name)
    if norm == "batch":
        # PyTorch's BatchNorm2d: momentum 0.1 of the new value = Keras's 0.9.
        return BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=dtype, name=name)
    if norm == "none":
        return None
    raise ValueError(
        f"`norm` must be one of ['instance', 'batch', 'none']. Received: norm={norm!r}"
    )


def kernel_initializer(init_type="normal", init_gain=0.02, seed=None):
    """The reference's `init_weights` choices as Keras initializers.

    `normal` is the paper's N(0, init_gain). `xavier` and `kaiming` use
    untruncated normals like PyTorch's `xavier_normal_` (gain `init_gain`) and
    `kaiming_normal_` (fan in, a=0).
    """
    if init_type == "normal":
        return keras.initializers.RandomNormal(0.0, init_gain, seed=seed)
    if init_type == "xavier":
        return keras.initializers.VarianceScaling(
            init_gain**2, "fan_avg", "untruncated_normal", seed=seed
        )
    if init_type == "kaiming":
        return keras.initializers.VarianceScaling(
            2.0, "fan_in", "untruncated_normal", seed=seed
        )
    if init_type == "orthogonal":
        return keras.initializers.Orthogonal(gain=init_gain, seed=seed)
    raise ValueError(
        "`init_type` must be one of ['normal', 'xavier', 'kaiming', 'orthogonal']. "
        f"Received: init_type={init_type!r}"
    )


def _distinct(initializer, index):
    """A copy of `initializer` that draws different values for each `index`.

    A Keras 3 initializer returns the same values every time it is called, so
    two layers sharing one would start identical. A seeded one gets the seed
    `seed + index` (repeatable); an unseeded one a fresh default seed.
    """
    config = initializer.get_config()
    if "seed" in config:
        if config["seed"] is not None:
            config["seed"] = int(config["seed"]) + index
        return initializer.__class__.from_config(config)
    return initializer


@keras.saving.register_keras_serializable(package="tfcyclegan")
class ResidualBlock(keras.layers.Layer):
    """The ResNet generator's block: x + [pad, conv, norm, relu, (dropout), pad, conv, norm](x).

    As in the reference there is no activation after the addition.

    Args:
        filters: channels in and out.
        norm: `instance`, `batch` or `none`.
        dropout: rate of the dropout between the two convolutions (0 disables).
        use_bias: give the convolutions biases (the reference does unless norm
            is `batch`, whose offset makes a bias redundant).
        kernel_initializer: initializer of both convolutions.
        **kwargs: standard layer arguments.
    """

    def __init__(
        self,
        filters,
        norm="instance",
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_int("filters", filters, 1)
        if not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.filters = filters
        self.norm = norm
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

        def conv(name, index):
            return Conv2D(
                filters,
                3,
                padding="valid",
                use_bias=use_bias,
                kernel_initializer=_distinct(self.kernel_initializer, index),
                bias_initializer="zeros",
                dtype=self.dtype_policy,
                name=name,
            )

        self.pad = ReflectionPadding2D(1, dtype=self.dtype_policy, name="pad")
        self.conv1 = conv("conv1", 0)
        self.norm1 = normalization(norm, "norm1", self.dtype_policy)
        self.drop = (
            keras.layers.Dropout(self.dropout, name="dropout") if self.dropout else None
        )
        self.conv2 = conv("conv2", 1)
        self.norm2 = normalization(norm, "norm2", self.dtype_policy)

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            raise ValueError(
                f"ResidualBlock with filters={self.filters} needs inputs with "
                f"{self.filters} channels. Received: input_shape={input_shape}"
            )
        self.pad.build(input_shape)
        padded = self.pad.compute_output_shape(input_shape)
        self.conv1.build(padded)
        self.conv2.build(padded)
        for norm in (self.norm1, self.norm2):
            if norm is not None:
                norm.build(input_shape)

    def call(self, inputs, training=None):
        x = self._padded_conv(self.conv1, inputs, training)
        if self.norm1 is not None:
            x = self.norm1(x, training=training)
        x = ops.relu(x)
        if self.drop is not None:
            x = self.drop(x, training=training)
        x = self._padded_conv(self.conv2, x, training)
        if self.norm2 is not None:
            x = self.norm2(x, training=training)
        return inputs + x

    def _padded_conv(self, conv, x, training):
        """conv(pad(x)), or the two at once where `tfcyclegan.kernels` has that form."""
        outputs = kernels.reflect_padded_conv2d(conv, x, 1, training)
        return conv(self.pad(x), training=training) if outputs is None else outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "norm": self.norm,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


# The [1, 2, 1] binomial filter of CUT's blur pool (Zhang 2019, "Making
# Convolutional Networks Shift-Invariant Again"), as the outer product / 16.
_BLUR_1D = (1.0, 2.0, 1.0)


@keras.saving.register_keras_serializable(package="tfcyclegan")
class BlurPool2D(keras.layers.Layer):
    """Anti-aliased stride-2 downsampling: blur with [1, 2, 1] x [1, 2, 1] / 16, then subsample.

    CUT's `Downsample` (taesungp/contrastive-unpaired-translation,
    `models/networks.py`, defaults `filt_size=3, stride=2, pad_type='reflect'`):
    reflection pad 1, then a depthwise convolution with the fixed binomial
    filter and stride 2. A stride-2 convolution alone aliases: it keeps every
    other pixel of whatever high frequencies its input has. Blurring first
    removes most of them, which makes the generator closer to shift-invariant.

    The filter is a constant, not a weight: nothing to train, save or import.
    TFLite runs it as DEPTHWISE_CONV_2D (the reflection pad as slices, see
    `ReflectionPadding2D`). Even heights and widths halve exactly; odd ones
    become `ceil(size / 2)`, as in CUT.

    Args:
        **kwargs: standard layer arguments.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pad = ReflectionPadding2D(1, dtype=self.dtype_policy, name="pad")

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "BlurPool2D expects NHWC inputs with a known number of channels. "
                f"Received: input_shape={input_shape}"
            )
        self.pad.build(input_shape)
        blur = np.outer(_BLUR_1D, _BLUR_1D)
        blur = blur / blur.sum()
        # (kh, kw, channels, multiplier 1): the same filter for every channel.
        self._kernel = np.tile(blur[:, :, None, None], (1, 1, input_shape[-1], 1)).astype(
            "float32"
        )

    def call(self, inputs, training=None):
        x = self.pad(inputs, training=training)
        # Binomial weights (multiples of 1/16) are exact in float16 and bfloat16.
        kernel = ops.cast(self._kernel, x.dtype)
        return ops.depthwise_conv(x, kernel, strides=2, padding="valid")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else (h + 1) // 2, None if w is None else (w + 1) // 2, c)


_UPSAMPLING_INTERPOLATIONS = ("nearest", "bilinear")


@keras.saving.register_keras_serializable(package="tfcyclegan")
class Upsampling2x(keras.layers.Layer):
    """Doubles height and width without weights: nearest neighbour or bilinear.

    The generators' alternatives to a stride-2 transposed convolution, whose
    uneven overlap paints a period-2 checkerboard (Odena et al. 2016,
    "Deconvolution and Checkerboard Artifacts"); a convolution after this
    layer learns what the transposed one did.

    - `nearest` repeats each pixel 2 x 2 (the resize Odena et al. found best
      before a convolution). Computed as 4 copies along channels then a
      depth-to-space: TFLite's DEPTH_TO_SPACE and CONCATENATION, which
      XNNPACK delegates, and no shape arithmetic.
    - `bilinear` with half-pixel centres, edges clamped: each output pixel is
      3/4 of its nearest input pixel and 1/4 of the next one, per axis.
      This is exactly CUT's blur `Upsample` (its defaults: replicate pad 1,
      stride-2 depthwise transposed convolution with the [1, 3, 3, 1] x
      [1, 3, 3, 1] / 16 filter, cropped to 2H x 2W), computed as one
      RESIZE_BILINEAR op. Equivalently: nearest x2, then the [1, 2, 1]
      binomial blur of `BlurPool2D` without the stride.

    Args:
        interpolation: `nearest` or `bilinear`.
        **kwargs: standard layer arguments.
    """

    def __init__(self, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        if interpolation not in _UPSAMPLING_INTERPOLATIONS:
            raise ValueError(
                f"`interpolation` must be one of {list(_UPSAMPLING_INTERPOLATIONS)}. "
                f"Received: interpolation={interpolation!r}"
            )
        self.interpolation = interpolation

    def call(self, inputs):
        if self.interpolation == "nearest":
            # depth_to_space(block 2) puts channel group (dy * 2 + dx) at
            # (2y + dy, 2x + dx); four identical groups repeat each pixel.
            return tf.nn.depth_to_space(ops.concatenate([inputs] * 4, axis=-1), 2)
        shape = ops.shape(inputs)
        outputs = tf.image.resize(
            inputs, (shape[1] * 2, shape[2] * 2), method="bilinear", antialias=False
        )
        # tf.image.resize computes bilinear in float32 whatever the input.
        return ops.cast(outputs, inputs.dtype)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else 2 * h, None if w is None else 2 * w, c)

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation}
