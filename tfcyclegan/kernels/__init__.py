"""The seam between the networks as the papers draw them and the faster forms they run in.

`layers.py`, `networks.py` and `models/` are plain Keras. Where a layer has a
faster form, its `call` asks this package once (`kernels.conv2d(self, x,
training)`, ...) and computes its plain form when the answer is None. Which
form runs is decided here, and only here, from where the call runs:

| form              | what                                             | where it runs                          |
|-------------------|--------------------------------------------------|----------------------------------------|
| `winograd`        | 3x3 convolutions of >= 256 channels as Winograd  | TensorFlow graphs on CPUs, float32     |
|                   | F(4x4, 3x3) tiles (`winograd`)                   | (the ResNet generator's residual blocks)|
|                   |                                                  | and, under mixed_bfloat16, the blocks  |
|                   |                                                  | as float32 tiles of bfloat16 operands  |
| `conv_gradients`  | convolution gradients as forward convolutions    | training on TensorFlow's Eigen path;   |
|                   | and matrix products (`conv`)                     | under oneDNN where Winograd applies    |
| `reflect_gather`  | a residual block's reflection pad read by the    | where `winograd` applies               |
|                   | Winograd tiles' gather, no padded copy (`conv`)  |                                        |
| `fused_norm`      | instance norm as FusedBatchNormV3 (`norm`)       | training; inference graphs under oneDNN|
| `slice_crop`      | a crop as one slice, whose gradient is a pad     | everywhere                             |
| `batched_calls`   | calls of one network on several batches as one   | the models' objectives, no batch norm  |
|                   | call on their concatenation (`batching`)         |                                        |
| `reflect_concat`  | reflection pad as slices and a concatenation     | graphs traced for LiteRT only          |
|                   | (XNNPACK has no MIRROR_PAD) (`padding`)          | (`portable_ops`)                       |
| sub-pixel         | transposed convolutions as a convolution and a   | dynamic-size TFLite files (`subpixel`, |
| upsampling        | depth-to-space                                   | called by the exporter)                |

Every form gives the plain form's numbers to float32 rounding (the tests
compare them). Saved files never name a form: the layers that ask are plain
classes, so a new form never breaks an old file.

Switches, both context managers valid in their thread or task, read when a
graph is traced:
- `disabled()` (or `disabled("winograd", ...)`): the plain forms, for tests and
  parity checks;
- `portable_ops()`: graphs for runtimes other than TensorFlow (LiteRT): no
  TensorFlow-only kernel (fused batch norm in training mode needs the Flex
  delegate; LiteRT runs a CONV_2D faster than Winograd's small ops), and the
  XNNPACK-friendly reflection pad.

`kernels.cpu` chooses TensorFlow's CPU path before TensorFlow is imported;
importing this package imports no TensorFlow.
Measurements behind each choice: docs/cpu_paths.md.
"""

from tfcyclegan.kernels.switches import FORMS, disabled, enabled, portable, portable_ops

# --- What the layers and models ask: outputs, or None for "compute the plain form" ---


def conv2d(layer, inputs, training=None):
    """A `Conv2D`'s outputs in a faster form (Winograd tiles, Eigen-path gradients), or None."""
    from tfcyclegan.kernels import conv

    return conv.call(layer, inputs, training)


def reflect_padded_conv2d(layer, inputs, padding, training=None):
    """`layer(reflection_pad(inputs, padding))` with no padded copy of `inputs`, or None."""
    from tfcyclegan.kernels import conv

    return conv.reflect_padded_call(layer, inputs, padding, training)


def instance_norm(layer, inputs, training=None):
    """An `InstanceNormalization`'s outputs as TensorFlow's fused kernel, or None."""
    from tfcyclegan.kernels import norm

    return norm.call(layer, inputs, training)


def reflection_pad(layer, inputs, training=None):
    """A `ReflectionPadding2D`'s outputs as slices and a concatenation, or None."""
    if training or not enabled("reflect_concat"):
        return None
    from tfcyclegan.kernels import padding

    return padding.reflect_by_concatenation(inputs, *layer.padding)


def crop(layer, inputs):
    """A `Cropping2D`'s outputs as one slice, or None."""
    if not enabled("slice_crop"):
        return None
    from tfcyclegan.kernels import padding

    return padding.crop_by_slice(layer, inputs)


def batched_calls(network, batches, training=None):
    """`[network(b) for b in batches]`, as one call on their concatenation where exact."""
    from tfcyclegan.kernels import batching

    return batching.call(network, batches, training)


__all__ = [
    "FORMS",
    "batched_calls",
    "conv2d",
    "crop",
    "disabled",
    "enabled",
    "instance_norm",
    "portable",
    "portable_ops",
    "reflect_padded_conv2d",
    "reflection_pad",
]
