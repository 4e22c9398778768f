"""Reflection padding and cropping in the forms runtimes run fastest.

- Reflection padding as one-row slices and a concatenation, in graphs traced for
  LiteRT: its XNNPACK delegate has no MIRROR_PAD, so each one split a TFLite
  generator into a separate CPU-kernel island (20 in a ResNet-9); with slices the
  whole network is delegated, 0.63 -> 0.55 s per 256 px image on 2 threads.
  TensorFlow runs both equally fast; training keeps the mirror pad, whose gradient
  is one op where the slices' would be many slow `StridedSliceGrad`s.
- A crop as one `slice` instead of Keras's indexing (a strided slice), whose
  gradient kernel on CPU (`StridedSliceGrad`) is slow: ~34 ms for the
  2x257x257x64 crop after a generator's last transposed convolution, ~270 ms (2%)
  of a training step at 256 px. The gradient of `slice` is a plain pad, ~1.5 ms.
"""

from keras import ops


def reflect_by_concatenation(x, pad_height, pad_width):
    """Reflection padding as slices and a concatenation (builtin ops XNNPACK takes)."""
    for axis, pad in ((1, pad_height), (2, pad_width)):
        if pad:
            def row(start):
                index = [slice(None)] * 4
                index[axis] = slice(start, start + 1)  # start is never -1 here
                return x[tuple(index)]

            # [a b c d] padded by 2 is [c b | a b c d | c b]: the edge is not repeated.
            before = [row(i) for i in range(pad, 0, -1)]
            after = [row(-1 - i) for i in range(1, pad + 1)]
            x = ops.concatenate(before + [x] + after, axis=axis)
    return x


def crop_by_slice(layer, inputs):
    """A channels-last `Cropping2D`'s outputs as one slice (None for channels-first)."""
    if layer.data_format != "channels_last":
        return None
    layer.compute_output_shape(inputs.shape)  # Keras's own check of a crop too large
    (top, bottom), (left, right) = layer.cropping
    shape = ops.shape(inputs)
    # Sizes are ints where the shape is known, else tensors; no -1, which
    # would hide the static channel count (Keras then compiles the next
    # convolution with XLA, which TFLite cannot convert).
    size = [shape[0], shape[1] - top - bottom, shape[2] - left - right, shape[3]]
    return ops.slice(inputs, [0, top, left, 0], size)
