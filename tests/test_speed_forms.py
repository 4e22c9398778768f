"""tfcyclegan.kernels.subpixel and .conv: faster forms compute what the plain network computes."""

import keras
import numpy as np
import pytest

from tfcyclegan import export
from tfcyclegan.kernels.subpixel import (
    SubpixelConv2DTranspose,
    subpixel_kernel,
    subpixel_taps,
    subpixel_upsampling,
)
from tfcyclegan.layers import Conv2D, Cropping2D
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


@pytest.mark.slow
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


# --- kernels.conv: convolutions with a faster gradient on TensorFlow's Eigen path ----


# (kernel, input shape, output channels): both kernel-gradient forms (few output
# channels: the upstream gradient's patches; wide: shifted inputs), odd sizes,
# a batch of one and of three.
GRADIENT_CASES = [
    (7, (2, 20, 18, 6), 3),
    (3, (1, 9, 11, 4), 3),
    (3, (2, 12, 11, 40), 40),
    (3, (1, 9, 13, 33), 34),
    (4, (3, 10, 10, 5), 64),
]


@pytest.mark.parametrize("kernel_size,shape,filters", GRADIENT_CASES)
@pytest.mark.parametrize("static", [True, False], ids=["static", "dynamic"])
def test_valid_conv_gradient_equals_tensorflows(kernel_size, shape, filters, static):
    import tensorflow as tf

    from tfcyclegan.kernels.conv import _valid_conv

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    kernel = tf.constant(rng.normal(size=(kernel_size, kernel_size, shape[-1], filters)).astype(np.float32))
    out_shape = (shape[0], shape[1] - kernel_size + 1, shape[2] - kernel_size + 1, filters)
    weights = tf.constant(rng.normal(size=out_shape).astype(np.float32))

    def run(conv, x, kernel, weights):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = conv(x, kernel)
            loss = tf.reduce_sum(y * y * weights)
        return [y] + tape.gradient(loss, [x, kernel])

    def traced(conv):
        if static:
            return run(conv, x, kernel, weights)
        # Batch, height and width unknown when traced.
        signature = [tf.TensorSpec([None, None, None, shape[-1]]), tf.TensorSpec(kernel.shape),
                     tf.TensorSpec([None, None, None, filters])]
        return tf.function(lambda *args: run(conv, *args), input_signature=signature)(x, kernel, weights)

    expected = traced(lambda a, k: tf.nn.conv2d(a, k, 1, "VALID"))
    actual = traced(_valid_conv)
    for a, b in zip(expected, actual):
        scale = float(tf.reduce_max(tf.abs(a)))
        np.testing.assert_allclose(b.numpy() / scale, a.numpy() / scale, atol=TOLERANCE)


def test_gradient_cases_cover_both_kernel_gradient_forms():
    from tfcyclegan.kernels.conv import _PATCHES_UP_TO

    assert {k * k * f <= _PATCHES_UP_TO for k, _, f in GRADIENT_CASES} == {True, False}


def test_conv2d_takes_its_gradient_path_only_where_it_pays(monkeypatch):
    import tensorflow as tf

    from tfcyclegan import kernels
    from tfcyclegan.kernels import conv as eigen_conv
    from tfcyclegan.kernels import cpu

    calls = []
    monkeypatch.setattr(eigen_conv, "_valid_conv", lambda x, k: calls.append(1) or tf.nn.conv2d(x, k, 1, "VALID"))
    rng = np.random.default_rng(0)
    # Enough input channels, and an RGB input (a stem), where the forms are slower.
    for channels, wide_enough in ((eigen_conv._MIN_INPUT_CHANNELS, True), (3, False)):
        layer = Conv2D(3, 7)
        x = rng.normal(size=(1, 16, 16, channels)).astype(np.float32)
        expected = keras.layers.Conv2D(3, 7)
        expected.build(x.shape)
        layer.build(x.shape)
        layer.set_weights([w + 0.1 for w in expected.get_weights()])
        expected.set_weights(layer.get_weights())
        for eigen, training, used in ((True, True, wide_enough), (True, False, False), (False, True, False)):
            monkeypatch.setattr(cpu, "eigen_convolutions", lambda: eigen)
            calls.clear()
            np.testing.assert_allclose(layer(x, training=training), expected(x), atol=TOLERANCE)
            assert len(calls) == used, (channels, eigen, training)
            with kernels.disabled("conv_gradients"):
                calls.clear()
                layer(x, training=training)
                assert not calls


def test_conv2d_keeps_tensorflows_kernels_where_tensorflow_sees_an_accelerator(monkeypatch):
    import tensorflow as tf

    from tfcyclegan.kernels import cpu, winograd

    monkeypatch.setattr(cpu, "eigen_convolutions", lambda: True)
    monkeypatch.setattr(winograd, "MIN_PIXELS", 0)
    layer = Conv2D(winograd.MIN_CHANNELS, 3)
    spec = tf.TensorSpec([1, 10, 10, winograd.MIN_CHANNELS], tf.float32)

    def op_types(training):
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=training)
            return tape.gradient(y, [x, layer.kernel])

        graph = tf.function(step).get_concrete_function(spec).graph
        return {op.type for op in graph.get_operations()}

    # CPUs only (this machine): the CPU forms, Winograd tiles (a function call) and
    # the matmul gradients; no Conv2D or its backprop kernels.
    assert cpu.cpus_only()
    assert not {"Conv2D", "Conv2DBackpropFilter"} & op_types(training=True)
    with monkeypatch.context() as accelerator:  # as if a GPU were visible
        accelerator.setattr(cpu, "cpus_only", lambda: False)
        for training in (True, False):
            types = op_types(training)
            assert {"Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput"} <= types, training
            assert "PartitionedCall" not in types and "StatefulPartitionedCall" not in types


def test_resnet_generator_convolutions_keep_their_weights_names():
    generator = ResnetGenerator(ngf=4, n_blocks=1, seed=0)
    head = generator.get_layer("head_conv")
    assert type(head) is Conv2D and head.kernel.path == "head_conv/kernel"
    block = generator.get_layer("block0")
    assert type(block.conv1) is Conv2D and type(block.conv2) is Conv2D
    assert block.conv1.kernel.path == "block0/conv1/kernel"


def test_narrow_conv2d_files_still_load(tmp_path):
    """Functional `.keras` files whose config names a `NarrowConv2D` (a former name)."""
    from tfcyclegan.legacy import NarrowConv2D

    inputs = keras.Input((12, 12, 4))
    model = keras.Model(inputs, NarrowConv2D(3, 7, name="head_conv")(inputs))
    model.save(tmp_path / "old.keras")
    loaded = keras.saving.load_model(tmp_path / "old.keras")
    head = loaded.get_layer("head_conv")
    assert isinstance(head, Conv2D)
    x = np.random.default_rng(0).normal(size=(1, 12, 12, 4)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), model(x), atol=TOLERANCE)


def test_conv2d_gradient_reaches_its_variables_eagerly(monkeypatch):
    import tensorflow as tf

    from tfcyclegan.kernels import cpu

    monkeypatch.setattr(cpu, "eigen_convolutions", lambda: True)
    x = tf.constant(np.random.default_rng(0).normal(size=(1, 12, 12, 16)).astype(np.float32))
    for filters, kernel_size in ((3, 7), (64, 3)):  # both kernel-gradient forms
        eigen = Conv2D(filters, kernel_size)
        plain = keras.layers.Conv2D(filters, kernel_size)
        eigen.build(x.shape), plain.build(x.shape)
        plain.set_weights(eigen.get_weights())
        grads = []
        for layer in (eigen, plain):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(layer(x, training=True)))
            grads.append(tape.gradient(loss, layer.trainable_variables))
        for a, b in zip(*grads):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
