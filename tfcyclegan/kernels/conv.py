"""Faster forms of `layers.Conv2D` (Keras's `Conv2D`): a training gradient suited to
TensorFlow's Eigen path, and Winograd tiles for wide 3x3 convolutions in graphs
(`kernels.winograd`).

TensorFlow's Eigen kernels (the CPU path AVX2 machines run; see `kernels.cpu`)
compute a convolution's forward pass near the matmul peak, and its gradients
well below it. For stride-1 "valid" convolutions (every convolution after the
networks' explicit padding) the gradients are recomputed here from forward
convolutions and matrix products: `_valid_conv` and its two kernel-gradient
forms. Where Winograd tiles apply (the residual blocks), all three run through
them: the forward, the input's gradient (a forward convolution) and the
kernel's (`winograd.kernel_gradient`); the residual blocks' convolutions read
their reflection pad in the tiles' gather (`reflect_padded_call`,
`_reflect_padded_winograd`). Under oneDNN, whose own backprop kernels are fast,
only convolutions that take Winograd tiles get these forms in training. Under
`mixed_bfloat16` the residual blocks' convolutions run as float32 tiles of their
bfloat16 operands (`_bfloat16_by_float32_tiles`), the rest as bfloat16 Conv2D.
Measurements: docs/cpu_paths.md, benchmarks/bench_conv_gradients.py,
benchmarks/bench_winograd.py.
"""

import keras
import tensorflow as tf
from keras import ops

from tfcyclegan.kernels import cpu, switches, winograd


def _winograd_applies(x, kernel_shape, strides=(1, 1), dilation_rate=(1, 1), padding="valid"):
    """Whether the convolution of x by a kernel of this shape runs as Winograd tiles:
    where they apply (3x3, stride 1, "valid", >= 256 channels, images not too
    small: the residual blocks), inside graphs only. Run eagerly, the form's small
    ops each paid a dispatch, which cost more than the arithmetic saved (a .keras
    model translating 30 images eagerly took 34 s instead of 22; measured when the
    transforms were ~700 ops a convolution, before they were one called function)."""
    return (
        switches.enabled("winograd")
        and not tf.executing_eagerly()
        and winograd.applies(kernel_shape, strides, dilation_rate, padding, x.shape)
    )


def _forward(x, kernel):
    """A stride-1 "valid" convolution as a forward kernel: Winograd tiles where they
    apply, else Conv2D."""
    if _winograd_applies(x, kernel.shape):
        return winograd.conv3x3(x, kernel)
    return tf.nn.conv2d(x, kernel, 1, "VALID")


def _input_gradient(upstream, kernel):
    """d/dx of a stride-1 "valid" convolution: the full correlation of the upstream
    gradient with the flipped kernel, as a forward convolution (Eigen's forward
    kernels run near the matmul peak; its backprop-input kernel does not)."""
    kh, kw = kernel.shape[0], kernel.shape[1]
    padded = tf.pad(upstream, [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]])
    flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
    return _forward(padded, flipped)


def _kernel_gradient_by_upstream_patches(x, upstream, kernel_shape):
    """d/dkernel when the kernel has few output channels: every input pixel against the
    kh x kw window of upstream gradients that saw it, one
    (cin x pixels) @ (pixels x kh*kw*cout) product."""
    kh, kw, cin, cout = kernel_shape
    padded = tf.pad(upstream, [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]])
    patches = tf.image.extract_patches(padded, [1, kh, kw, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")
    product = tf.matmul(
        tf.reshape(x, [-1, cin]), tf.reshape(patches, [-1, kh * kw * cout]), transpose_a=True
    )
    return tf.reverse(tf.transpose(tf.reshape(product, [cin, kh, kw, cout]), [1, 2, 0, 3]), [0, 1])


def _kernel_gradient_by_shifted_inputs(x, upstream, kernel_shape):
    """d/dkernel when both channel counts are wide: (cout x pixels) @ (pixels x cin)
    products, one per kernel tap, with no copy of the input.

    Row-major, an image's input is a (height * width, cin) matrix, and the
    pixels tap (i, j) multiplies are its rows from i * width + j on, *if* the
    upstream gradient is given the input's height and width (kh - 1 rows and
    kw - 1 columns of zeros): the window's rows that wrap into the next image
    row meet zeros. Slicing rows of a matrix copies nothing. The zeros cost
    (height * width) / (output height * output width) more arithmetic: 6% at
    64 x 64 with 3 x 3.
    """
    kh, kw, cin, cout = kernel_shape
    static = None not in x.shape[:3]
    width = x.shape[2] if static else tf.shape(x)[2]
    offsets = [i * width + j for i in range(kh) for j in range(kw)]
    # One product per image and tap where the shapes are static (on two images' rows
    # at once the kernel gradient ran ~10% slower, 2 threads, AVX2); otherwise the
    # whole batch as one matrix, whose windows wrapping into the next image meet its
    # zero rows.
    images = x.shape[0] if static else 1
    inputs = tf.reshape(x, [images, -1, cin])
    upstream = tf.pad(upstream, [[0, 0], [0, kh - 1], [0, kw - 1], [0, 0]])
    # The last offsets[-1] rows are zeros: dropped, so that the last tap's window
    # ends at the input's last pixel.
    length = tf.shape(inputs)[1] - offsets[-1]
    upstream = tf.reshape(upstream, [images, -1, cout])[:, :length]
    # Transposed here, batched: a 2-D transpose in front of a matmul is folded into
    # it by TensorFlow's graph optimizer, and MatMul(transpose_a=True) runs ~15% slower.
    upstream = tf.transpose(upstream, [0, 2, 1])
    taps = []
    for n in range(images):
        # Rows of one image, then windows of its rows: slices of the leading axis
        # alias their input, a slice of two axes at once copies.
        rows = inputs[n]
        taps.append(tf.stack([tf.matmul(upstream[n], rows[o:o + length]) for o in offsets]))
    taps = tf.add_n(taps)
    return tf.transpose(tf.reshape(taps, [kh, kw, cout, cin]), [0, 1, 3, 2])


# Below this many output values per input pixel (kh * kw * cout) the kernel's
# gradient goes through the upstream gradient's patches, above it through shifted
# inputs: a (cout x pixels) @ (pixels x cin) product is slow when cout is a few
# channels (the generator's last layer: 7 * 7 * 3 = 147), and the patches are
# large when it is not (a residual block: 3 * 3 * 256 = 2304).
_PATCHES_UP_TO = 256


# With fewer input channels the products of either form have too few columns to
# run fast: a stem's 7x7 convolution of RGB images (3 channels) took 2.4x longer.
_MIN_INPUT_CHANNELS = 16


@tf.custom_gradient
def _valid_conv(x, kernel):
    """A stride-1 "valid" convolution whose gradient runs as a forward convolution
    and matrix products instead of TensorFlow's Eigen backprop kernels."""
    outputs = _forward(x, kernel)

    def gradient(upstream):
        kh, kw, cin, cout = kernel.shape
        if _winograd_applies(x, kernel.shape):
            kernel_gradient = winograd.kernel_gradient(x, upstream)
        elif kh * kw * cout <= _PATCHES_UP_TO:
            kernel_gradient = _kernel_gradient_by_upstream_patches(x, upstream, kernel.shape)
        else:
            kernel_gradient = _kernel_gradient_by_shifted_inputs(x, upstream, kernel.shape)
        return _input_gradient(upstream, kernel), kernel_gradient

    return outputs, gradient


def _reflect_padded_winograd(x, kernel, padding):
    """The 3x3 convolution of x reflection-padded by `padding` on each side, its
    forward and both gradients through Winograd tiles, with no padded copy of x,
    made or kept: the tiles' windows are gathered from x (`winograd.conv3x3`'s
    `reflect`), and the padded input's gradient is folded back onto x."""
    paddings = [[0, 0], [padding, padding], [padding, padding], [0, 0]]

    @tf.custom_gradient
    def conv(x, kernel):
        def gradient(upstream):
            padded_gradient = _input_gradient(upstream, kernel)
            input_gradient = tf.raw_ops.MirrorPadGrad(
                input=padded_gradient, paddings=paddings, mode="REFLECT"
            )
            return input_gradient, winograd.kernel_gradient(x, upstream, padding)

        return winograd.conv3x3(x, kernel, padding), gradient

    return conv(x, kernel)


def call(layer, inputs, training=None):
    """A `Conv2D` layer's outputs in a faster form, or None where the plain one runs.

    In training, on the Eigen path, float32, stride 1, "valid", with at least
    `_MIN_INPUT_CHANNELS` input channels, the input's gradient is computed as
    a forward convolution of the padded upstream gradient with the flipped
    kernel, and the kernel's as matrix products (`_valid_conv`), equal to
    ~1e-6 relative. Forward and backward, batch of 2, one core, AVX2
    (docs/cpu_paths.md), TensorFlow's kernels -> these forms: the ResNet head
    (7x7, 64 -> 3 at 256 px) 1901 -> 269 ms, a residual block's 3x3 256 -> 256
    at 64 px 319 -> 263 ms, resize-conv upsampling 1180 -> 656 ms, the
    PatchGAN's logits (4x4, 512 -> 1) 86 -> 5 ms; with 3 input channels (the
    stem) they are slower (173 -> 423 ms), hence the minimum. oneDNN's own
    backprop kernels are faster than these forms.

    Inside a graph (a tf.function, `fit`, `predict`, a SavedModel), 3x3
    stride-1 "valid" convolutions of >= 256 channels on images of at least
    32 x 32 outputs (the residual blocks) run as Winograd F(4x4, 3x3) tiles
    (0.55-0.82 of the direct convolution's time, ~1e-5 relative error), in
    inference and in training, where the input's and the kernel's gradients
    take them too, on either TensorFlow path. Nowhere else, and not where
    TensorFlow sees a GPU or TPU (`cpu.cpus_only()`).
    """
    if training and _custom_gradient(layer, inputs):
        # A tensor, not the variable: tf.custom_gradient then needs no `variables`
        # argument, and the kernel's gradient reaches the variable through its read.
        outputs = _valid_conv(inputs, tf.convert_to_tensor(layer.kernel))
    elif not training and _winograd(layer, inputs):
        outputs = winograd.conv3x3(inputs, tf.convert_to_tensor(layer.kernel))
    else:
        return None
    return _biased_activated(layer, outputs)


def reflect_padded_call(layer, inputs, padding, training=None):
    """`layer` applied to `inputs` reflection-padded by `padding` rows and columns on
    each side, where Winograd tiles apply: then no padded copy of `inputs` is made,
    nor kept for the backward pass in training (4.3 MB per residual convolution and
    image at 256 px: ~0.3 GiB of a CycleGAN step's peak memory). None elsewhere,
    and before the layer is built: the caller pads and calls the layer."""
    if not (switches.enabled("reflect_gather") and layer.built) or inputs.shape.rank != 4:
        return None
    n, height, width, channels = inputs.shape
    padded = tf.TensorSpec(
        [n, *(None if size is None else size + 2 * padding for size in (height, width)), channels],
        inputs.dtype,
    )
    if _winograd(layer, padded):  # (where it applies, so does `_custom_gradient`)
        kernel = tf.convert_to_tensor(layer.kernel)
        if training:
            return _biased_activated(layer, _reflect_padded_winograd(inputs, kernel, padding))
        return _biased_activated(layer, winograd.conv3x3(inputs, kernel, padding))
    if _bfloat16_winograd(layer, padded):
        return _biased_activated(layer, _bfloat16_by_float32_tiles(inputs, layer.kernel, padding, training))
    return None


def _bfloat16_winograd(layer, inputs):
    """Whether a bfloat16 layer (`mixed_bfloat16`) whose float32 twin would take
    Winograd tiles takes them in float32 (`_bfloat16_by_float32_tiles`): not with
    AMX, whose bfloat16 convolutions should beat float32 tiles (not measured)."""
    return (
        keras.backend.backend() == "tensorflow"
        and not cpu.amx()
        and layer.compute_dtype == "bfloat16"
        and inputs.dtype == tf.bfloat16
        and layer.data_format == "channels_last"
        and layer.groups == 1
        and cpu.cpus_only()
        and _winograd_applies(inputs, layer.kernel.shape, layer.strides, layer.dilation_rate, layer.padding)
    )


def _bfloat16_by_float32_tiles(x, kernel, padding, training):
    """A bfloat16 residual convolution (x reflection-padded by `padding`) computed as
    float32 Winograd tiles of its bfloat16 input and kernel, rounded to bfloat16.

    Under `mixed_bfloat16` the residual blocks' 3x3 256 -> 256 convolutions were
    the one place float32 beat bfloat16 on AVX512_BF16: forward + both gradients,
    1 thread, 85 ms as float32 tiles against 108 ms for oneDNN's bfloat16 kernels
    (2 x 64 x 64 outputs; docs/cpu_paths.md, "bfloat16"). Tiles in bfloat16 are
    not an option: their transforms multiply rounding errors by up to 64 (9x the
    direct bfloat16 convolution's error, measured). The numbers are the plain
    bfloat16 layer's: the same bfloat16 operands, multiplied and summed in
    float32 either way, outputs and gradients rounded to bfloat16.
    """
    # The kernel as the layer reads it (Keras casts it to bfloat16 in a
    # mixed-precision call), so its gradient is rounded as the plain form's.
    kernel = tf.cast(tf.convert_to_tensor(kernel), tf.float32)
    x = tf.cast(x, tf.float32)
    if training:
        outputs = _reflect_padded_winograd(x, kernel, padding)
    else:
        outputs = winograd.conv3x3(x, kernel, padding)
    return tf.cast(outputs, tf.bfloat16)


def _biased_activated(layer, outputs):
    if layer.use_bias:
        outputs = outputs + ops.reshape(layer.bias, (1, 1, 1, layer.filters))
    return outputs if layer.activation is None else layer.activation(outputs)


def _winograd(layer, inputs):
    return _tensorflow_cpu_float32_nhwc(layer, inputs) and _winograd_applies(
        inputs, layer.kernel.shape, layer.strides, layer.dilation_rate, layer.padding
    )


def _tensorflow_cpu_float32_nhwc(layer, inputs):
    """What every form needs: TensorFlow on CPUs only, float32, NHWC, one group."""
    return (
        keras.backend.backend() == "tensorflow"
        and layer.compute_dtype == "float32"
        and inputs.dtype == tf.float32
        and layer.data_format == "channels_last"
        and layer.groups == 1
        and cpu.cpus_only()
    )


def _custom_gradient(layer, inputs):
    """Whether training takes `_valid_conv`: on the Eigen path for every stride-1
    "valid" convolution of enough input channels; under oneDNN, whose backprop
    kernels run near its forward's speed, only where Winograd tiles apply."""
    if not (
        switches.enabled("conv_gradients")
        and _tensorflow_cpu_float32_nhwc(layer, inputs)
        and tuple(layer.strides) == (1, 1)
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.padding == "valid"
    ):
        return False
    if cpu.eigen_convolutions():
        return (inputs.shape[-1] or 0) >= _MIN_INPUT_CHANNELS
    return _winograd_applies(inputs, layer.kernel.shape)
