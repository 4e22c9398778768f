"""tfcyclegan.export.forms: export-time forms compute what the trained network computes."""

import keras
import numpy as np
import pytest

from tfcyclegan import export
from tfcyclegan.export.forms import (
    SubpixelConv2DTranspose,
    subpixel_kernel,
    subpixel_taps,
    subpixel_upsampling,
)
from tfcyclegan.layers import Cropping2D
from tfcyclegan.networks import ResnetGenerator, UnetGenerator

# The parity bound of the float32 paths (products are the same, summed in another order).
TOLERANCE = 1e-5


def _transposed(kernel_size, padding, filters, use_bias=True):
    """PyTorch's ConvTranspose2d(kernel_size, 2, padding) as the networks build it."""
    conv = keras.layers.Conv2DTranspose(
        filters, kernel_size, strides=2, padding="valid", use_bias=use_bias,
        kernel_initializer=keras.initializers.RandomNormal(0, 0.5, seed=1),
        bias_initializer=keras.initializers.RandomNormal(0, 0.5, seed=2),
    )
    extra = kernel_size - 2 - padding
    crop = Cropping2D(((padding, extra), (padding, extra)))
    return conv, crop


@pytest.mark.parametrize("kernel_size,padding", [(3, 1), (4, 1), (3, 0), (4, 2)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_subpixel_layer_equals_transposed_convolution(kernel_size, padding, use_bias):
    conv, crop = _transposed(kernel_size, padding, 5, use_bias)
    x = np.random.default_rng(0).normal(size=(2, 7, 9, 6)).astype(np.float32)
    expected = crop(conv(x)).numpy()
    assert expected.shape == (2, 14, 18, 5)
    layer = SubpixelConv2DTranspose(5, kernel_size, padding, use_bias=use_bias)
    layer.build(x.shape)
    weights = conv.get_weights()
    kernel, bias = subpixel_kernel(weights[0], weights[1] if use_bias else None, padding)
    layer.set_weights([kernel] + ([bias] if use_bias else []))
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=TOLERANCE)


def test_subpixel_taps_of_the_resnet_upsampling():
    # ConvTranspose2d(3, 2, padding 1, output_padding 1): out[2m] = x[m] w[1],
    # out[2m + 1] = x[m] w[2] + x[m + 1] w[0]; a 2-tap kernel, one zero after.
    size, before, after, taps = subpixel_taps(3, 1)
    assert (size, before, after) == (2, 0, 1)
    assert sorted(taps) == [(0, 0, 1), (1, 0, 2), (1, 1, 0)]


def test_subpixel_layer_rejects_a_padding_that_does_not_double():
    with pytest.raises(ValueError, match="0 <= padding <= kernel_size - 2"):
        SubpixelConv2DTranspose(4, 3, 2)


@pytest.mark.parametrize(
    "generator,shape",
    [
        (lambda: ResnetGenerator(ngf=8, n_blocks=2, seed=0), (2, 32, 48, 3)),
        (lambda: UnetGenerator(num_downs=5, ngf=8, seed=0), (1, 64, 32, 3)),
    ],
)
def test_subpixel_generator_equals_the_generator(generator, shape):
    generator = generator()
    for layer in generator.layers:  # non-zero biases, so that their mapping is tested too
        if isinstance(layer, keras.layers.Conv2DTranspose) and layer.use_bias:
            layer.bias.assign(np.linspace(-0.5, 0.5, layer.filters, dtype=np.float32))
    fast = subpixel_upsampling(generator)
    kinds = {type(layer) for layer in fast.layers}
    assert keras.layers.Conv2DTranspose not in kinds and SubpixelConv2DTranspose in kinds
    # The size rule travels with the shared size_check layer.
    assert fast.get_layer("size_check") is generator.get_layer("size_check")
    x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    np.testing.assert_allclose(
        fast(x, training=False).numpy(), generator(x, training=False).numpy(), atol=TOLERANCE
    )


def test_generator_without_transposed_convolutions_is_returned_as_is():
    generator = ResnetGenerator(ngf=4, n_blocks=1, upsample="resize_conv", seed=0)
    assert subpixel_upsampling(generator) is generator


def test_dynamic_size_tflite_has_no_transpose_conv_and_matches_keras():
    from ai_edge_litert.interpreter import Interpreter

    generator = ResnetGenerator(ngf=8, n_blocks=1, seed=0, name="G")
    dynamic = export.convert_tflite(generator)
    assert "TRANSPOSE_CONV" not in export.tflite_ops(dynamic)
    assert "DEPTH_TO_SPACE" in export.tflite_ops(dynamic)
    fixed = export.convert_tflite(generator, input_size=(32, 32))
    assert "TRANSPOSE_CONV" in export.tflite_ops(fixed)
    runner = Interpreter(model_content=dynamic, num_threads=2).get_signature_runner("translate")
    for shape in ((1, 32, 32, 3), (2, 24, 40, 3)):
        images = np.random.default_rng(shape[1]).uniform(-1, 1, shape).astype(np.float32)
        np.testing.assert_allclose(
            runner(images=images)["output_images"],
            generator(images, training=False).numpy(),
            atol=export.FLOAT_TOLERANCE,
        )
