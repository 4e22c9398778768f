"""`portable_ops()`: graphs traced for runtimes other than TensorFlow's own.

Inside TensorFlow graphs some layers take faster forms than their plain ones:
3x3 convolutions of >= 256 channels as Winograd tiles (`tfcyclegan.winograd`),
and instance normalization as TensorFlow's fused batch-norm kernel under oneDNN
(`layers.InstanceNormalization`). LiteRT runs neither well: it has no fused
batch norm in training mode (it would need the Flex delegate), and it runs a
convolution as one CONV_2D faster than as the Winograd form's small ops (25
against 54 ms at 64 x 64 x 256, 2 threads). The TFLite exporter traces inside
`portable_ops()`, where layers keep their plain forms.
"""

import contextlib
import contextvars

_portable = contextvars.ContextVar("tfcyclegan_portable_ops", default=False)


@contextlib.contextmanager
def portable_ops():
    """Inside this block, layers traced or run take their plain, portable forms."""
    token = _portable.set(True)
    try:
        yield
    finally:
        _portable.reset(token)


def active():
    """Whether a `portable_ops()` block is active in this thread or task."""
    return _portable.get()
