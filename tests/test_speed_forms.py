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


# --- NarrowConv2D: the generator's last layer, with a faster gradient on Eigen -------


@pytest.mark.parametrize("kernel_size,shape", [(7, (2, 20, 18, 6)), (3, (1, 9, 11, 4))])
def test_narrow_conv_gradient_equals_the_convolutions(kernel_size, shape):
    import tensorflow as tf

    from tfcyclegan.layers import _narrow_conv

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    kernel = tf.constant(rng.normal(size=(kernel_size, kernel_size, shape[-1], 3)).astype(np.float32))
    weights = tf.constant(rng.normal(size=(1, shape[1] - kernel_size + 1, shape[2] - kernel_size + 1, 3)),
                          tf.float32)
    grads = []
    for conv in (lambda a, k: tf.nn.conv2d(a, k, 1, "VALID"), _narrow_conv):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = conv(x, kernel)
            loss = tf.reduce_sum(y * y * weights)
        grads.append([y] + tape.gradient(loss, [x, kernel]))
    for a, b in zip(*grads):
        scale = float(tf.reduce_max(tf.abs(a)))
        np.testing.assert_allclose(b.numpy() / scale, a.numpy() / scale, atol=TOLERANCE)


def test_narrow_conv2d_takes_its_gradient_path_only_where_it_pays(monkeypatch):
    import tensorflow as tf

    from tfcyclegan import layers

    calls = []
    monkeypatch.setattr(layers, "_narrow_conv", lambda x, k: calls.append(1) or tf.nn.conv2d(x, k, 1, "VALID"))
    layer = layers.NarrowConv2D(3, 7)
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 4)).astype(np.float32)
    expected = keras.layers.Conv2D(3, 7)
    expected.build(x.shape)
    layer.build(x.shape)
    layer.set_weights([w + 0.1 for w in expected.get_weights()])
    expected.set_weights(layer.get_weights())
    for eigen, training, used in ((True, True, 1), (True, False, 0), (False, True, 0)):
        monkeypatch.setattr(layers, "_eigen_convolutions", lambda: eigen)
        calls.clear()
        np.testing.assert_allclose(layer(x, training=training), expected(x), atol=TOLERANCE)
        assert len(calls) == used, (eigen, training)


def test_resnet_generator_head_is_narrow_and_keeps_its_weights_name():
    from tfcyclegan.layers import NarrowConv2D

    generator = ResnetGenerator(ngf=4, n_blocks=1, seed=0)
    head = generator.get_layer("head_conv")
    assert isinstance(head, NarrowConv2D) and head.kernel.path == "head_conv/kernel"


def test_narrow_conv2d_gradient_reaches_its_variables_eagerly(monkeypatch):
    import tensorflow as tf

    from tfcyclegan import layers

    monkeypatch.setattr(layers, "_eigen_convolutions", lambda: True)
    x = tf.constant(np.random.default_rng(0).normal(size=(1, 12, 12, 4)).astype(np.float32))
    narrow, plain = layers.NarrowConv2D(3, 7), keras.layers.Conv2D(3, 7)
    narrow.build(x.shape), plain.build(x.shape)
    plain.set_weights(narrow.get_weights())
    grads = []
    for layer in (narrow, plain):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(x, training=True)))
        grads.append(tape.gradient(loss, layer.trainable_variables))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
