"""Export-time forms of a generator: the same function, in ops a runtime runs faster.

Training, checkpoints and weight import keep the network as the authors wrote
it; an exporter may call `subpixel_upsampling(generator)` on its float32 copy
to get a network that computes the same outputs with other ops.

Sub-pixel upsampling (Shi et al. 2016, "Real-Time Single Image and Video
Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural
Network"): a stride-2 transposed convolution followed by the crop that makes
it PyTorch's `ConvTranspose2d(kernel, stride 2, padding p)` equals a stride-1
convolution producing 4 x filters channels, one group per output phase
(dy, dx), followed by a depth-to-space of block 2. In a dynamic-size TFLite
file the transposed convolution's output shape is computed at run time, and
LiteRT's XNNPACK delegate does not take a TRANSPOSE_CONV whose output shape is
not a constant: it ran on the reference CPU kernels, splitting the graph. A
CONV_2D and a DEPTH_TO_SPACE have no shape input and stay delegated.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops


def subpixel_taps(kernel_size, padding):
    """The 1-D map from a stride-2 transposed convolution to its sub-pixel convolution.

    PyTorch's `ConvTranspose2d(k, stride 2, padding p)` (with the output
    padding that makes the output 2H long) computes, for output phase d in
    {0, 1} and input position m,

        out[2m + d] = sum over taps t with (d + p - t) even of x[m + (d + p - t) / 2] * w[t],

    a stride-1 correlation of x with a short kernel per phase.

    Returns:
        (size, before, after, entries): the sub-pixel kernel's length, the
        zero padding it needs before and after the input, and
        [(phase d, sub-pixel tap j, transposed tap t), ...] meaning tap j of
        phase d's kernel is tap t of the transposed kernel.
    """
    pairs = [
        (d, (d + padding - t) // 2, t)
        for d in (0, 1)
        for t in range(kernel_size)
        if (d + padding - t) % 2 == 0
    ]
    low = min(r for _, r, _ in pairs)
    high = max(r for _, r, _ in pairs)
    return high - low + 1, -low, high, [(d, r - low, t) for d, r, t in pairs]


def subpixel_kernel(kernel, bias, padding):
    """Kernel and bias of the sub-pixel convolution equal to a transposed one.

    Args:
        kernel: a Keras `Conv2DTranspose` kernel, (k, k, filters, in_channels).
        bias: its bias (filters,), or None.
        padding: the crop p of PyTorch's `ConvTranspose2d(k, 2, p)` (see above).

    Returns:
        (kernel (n, n, in_channels, 4 * filters), bias (4 * filters,) or None),
        channel group dy * 2 + dx holding output phase (dy, dx), the order of
        `tf.nn.depth_to_space`.
    """
    kernel = np.asarray(kernel)
    size_h, size_w, filters, channels = kernel.shape
    if size_h != size_w:
        raise ValueError(f"Expected a square kernel. Received: kernel shape {kernel.shape}")
    n, _, _, taps = subpixel_taps(size_h, padding)
    out = np.zeros((n, n, channels, 4 * filters), kernel.dtype)
    for dy, jy, ty in taps:
        for dx, jx, tx in taps:
            group = dy * 2 + dx
            out[jy, jx, :, group * filters : (group + 1) * filters] += kernel[ty, tx].T
    if bias is not None:
        bias = np.tile(np.asarray(bias), 4)
    return out, bias


@keras.saving.register_keras_serializable(package="tfcyclegan")
class SubpixelConv2DTranspose(keras.layers.Layer):
    """PyTorch's `ConvTranspose2d(kernel, stride 2, padding)` as a convolution and a
    depth-to-space: 2x height and width, the same outputs.

    Built by `subpixel_upsampling` from a Keras `Conv2DTranspose` and its crop;
    its weights are computed from theirs (`subpixel_kernel`), not trained.

    Args:
        filters: output channels.
        kernel_size: the transposed convolution's kernel size.
        padding: the transposed convolution's padding (its crop).
        use_bias: whether there is a bias.
        **kwargs: standard layer arguments.
    """

    def __init__(self, filters, kernel_size, padding, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.padding = int(padding)
        self.use_bias = bool(use_bias)
        if not 0 <= self.padding <= self.kernel_size - 2:
            raise ValueError(
                "SubpixelConv2DTranspose needs 0 <= padding <= kernel_size - 2 (an output "
                f"of exactly 2x the input). Received: kernel_size={kernel_size}, padding={padding}"
            )
        self._size, self._before, self._after, _ = subpixel_taps(self.kernel_size, self.padding)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.kernel = self.add_weight(
            shape=(self._size, self._size, channels, 4 * self.filters), name="kernel"
        )
        self.bias = (
            self.add_weight(shape=(4 * self.filters,), initializer="zeros", name="bias")
            if self.use_bias
            else None
        )

    def call(self, inputs):
        # TensorFlow's (and TFLite's) "same" padding of a stride-1 convolution
        # puts (n - 1) // 2 zeros before and the rest after: what the phases
        # need for the kernels used here (k = 3 or 4 with padding 1); other
        # cases pad explicitly.
        before, after = self._before, self._after
        if before == (self._size - 1) // 2 and after == self._size - 1 - before:
            padding = "same"
        else:
            inputs = ops.pad(inputs, [[0, 0], [before, after], [before, after], [0, 0]])
            padding = "valid"
        x = ops.conv(inputs, ops.cast(self.kernel, inputs.dtype), padding=padding)
        if self.bias is not None:
            x = x + ops.cast(self.bias, x.dtype)
        return tf.nn.depth_to_space(x, 2)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (n, None if h is None else 2 * h, None if w is None else 2 * w, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "padding": self.padding,
            "use_bias": self.use_bias,
        }


def _upsampling_pairs(generator):
    """{Conv2DTranspose: its Cropping2D} for each stride-2 transposed convolution
    whose only consumer is a crop to exactly 2x its input (`_Builder.upsample`)."""
    pairs = {}
    for layer in generator.layers:
        if not isinstance(layer, keras.layers.Conv2DTranspose):
            continue
        kernel = layer.kernel_size
        if (
            tuple(layer.strides) != (2, 2)
            or layer.padding != "valid"
            or tuple(layer.dilation_rate) != (1, 1)
            or layer.output_padding is not None
            or kernel[0] != kernel[1]
            or layer.data_format != "channels_last"
            or len(layer._outbound_nodes) != 1
        ):
            continue
        crop = layer._outbound_nodes[0].operation
        if not isinstance(crop, keras.layers.Cropping2D):
            continue
        (top, bottom), (left, right) = crop.cropping
        # The "valid" output is 2H + k - 2 long; keeping [p : 2H + p] is PyTorch's.
        if (top, bottom) == (left, right) and top + bottom == kernel[0] - 2:
            pairs[layer] = crop
    return pairs


def subpixel_upsampling(generator):
    """`generator` with each stride-2 transposed convolution (and its crop) computed as
    a convolution and a depth-to-space (`SubpixelConv2DTranspose`); the other layers
    are shared, not copied.

    The result is a plain functional model with the same inputs, outputs (to
    float32 rounding: the products are the same, summed in another order) and
    `size_check` layer; it is what an exporter converts, never what is trained
    or saved. A generator without such layers is returned as it is.
    """
    pairs = _upsampling_pairs(generator)
    if not pairs:
        return generator
    crops = {id(crop) for crop in pairs.values()}

    def clone(layer):
        if layer in pairs:
            replacement = SubpixelConv2DTranspose(
                layer.filters,
                layer.kernel_size[0],
                pairs[layer].cropping[0][0],
                use_bias=layer.use_bias,
                dtype=layer.dtype_policy,
                name=layer.name,
            )
            replacement.build(layer.input.shape)
            bias = layer.bias.numpy() if layer.use_bias else None
            kernel, bias = subpixel_kernel(layer.kernel.numpy(), bias, pairs[layer].cropping[0][0])
            replacement.set_weights([kernel] + ([bias] if bias is not None else []))
            return replacement
        if id(layer) in crops:
            return keras.layers.Identity(name=layer.name, dtype=layer.dtype_policy)
        return layer

    return keras.models.clone_model(generator, clone_function=clone)

