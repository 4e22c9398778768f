import keras
import numpy as np
import pytest

from tfcyclegan.layers import (
    BlurPool2D,
    Cropping2D,
    InputSizeCheck,
    InstanceNormalization,
    ReflectionPadding2D,
    ResidualBlock,
    Upsampling2x,
    kernel_initializer,
)


def _round_trip(layer):
    return layer.__class__.from_config(layer.get_config())


def test_instance_norm_matches_numpy(rng):
    x = rng.normal(3.0, 2.0, (2, 5, 7, 4)).astype("float32")
    y = np.asarray(InstanceNormalization()(x))
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)  # biased, like PyTorch
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3, None], ids=["one", "three", "unknown"])
@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
def test_instance_norm_training_path_equals_inference_path(rng, batch, affine):
    # Training uses the fused batch-norm kernel per image (one image, a split
    # batch, or with the batch size unknown (None) the images as channels of one),
    # inference builtin ops; outputs and gradients must agree.
    import tensorflow as tf

    layer = InstanceNormalization(center=affine, scale=affine)
    layer.build((None, None, None, 6))
    if affine:
        layer.gamma.assign(rng.normal(1.0, 0.3, 6))
        layer.beta.assign(rng.normal(0.0, 0.3, 6))
    x = tf.constant(rng.normal(2.0, 1.5, (batch or 2, 9, 7, 6)).astype("float32"))
    upstream = tf.constant(rng.normal(size=x.shape).astype("float32"))

    def run(x, upstream, training):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * upstream)
        return [y] + tape.gradient(loss, [x] + layer.trainable_variables)

    results = {}
    for training in (False, True):
        step = lambda x, upstream: run(x, upstream, training)  # noqa: E731
        if batch is None:
            spec = tf.TensorSpec((None, 9, 7, 6), "float32")
            step = tf.function(step, input_signature=[spec, spec])
        results[training] = [np.asarray(t) for t in step(x, upstream)]
    for inference, training in zip(results[False], results[True]):
        np.testing.assert_allclose(training, inference, atol=1e-4)


def test_instance_norm_training_path_takes_unknown_batch_size(rng):
    import tensorflow as tf

    layer = InstanceNormalization()
    spec = tf.TensorSpec((None, None, None, 4), "float32")
    normalize = tf.function(lambda x: layer(x, training=True), input_signature=[spec])
    for batch in (1, 2):
        x = rng.normal(size=(batch, 5, 6, 4)).astype("float32")
        np.testing.assert_allclose(
            np.asarray(normalize(x)), np.asarray(layer(x, training=True)), atol=1e-5
        )
        np.testing.assert_allclose(
            np.asarray(normalize(x)), np.asarray(layer(x, training=False)), atol=1e-5
        )
    # Static sizes survive (a following Conv2D needs the channel count).
    assert normalize.get_concrete_function().structured_outputs.shape.as_list() == [None, None, None, 4]
    static = tf.function(lambda x: layer(x, training=True))
    assert static.get_concrete_function(tf.TensorSpec((3, 5, 6, 4))).structured_outputs.shape == (3, 5, 6, 4)


@pytest.mark.parametrize("onednn", [True, False])
def test_instance_norm_inference_graphs_fuse_under_onednn_only(rng, monkeypatch, onednn):
    import tensorflow as tf

    from tfcyclegan import kernels
    from tfcyclegan.kernels import cpu

    monkeypatch.setattr(cpu, "eigen_convolutions", lambda: not onednn)
    layer = InstanceNormalization(center=True, scale=True)
    x = rng.normal(2.0, 3.0, size=(2, 5, 6, 4)).astype("float32")
    layer.build(x.shape)
    layer.set_weights([rng.normal(size=4).astype("float32") for _ in range(2)])
    eager = np.asarray(layer(x, training=False))  # builtin ops

    def fused_in_graph():
        graph = tf.function(lambda t: layer(t, training=False))
        ops = graph.get_concrete_function(tf.TensorSpec(x.shape)).graph.get_operations()
        np.testing.assert_allclose(np.asarray(graph(x)), eager, atol=1e-5)
        return any(op.type == "FusedBatchNormV3" for op in ops)

    assert fused_in_graph() is onednn
    with kernels.portable_ops():  # graphs for LiteRT: builtin ops only
        assert fused_in_graph() is False
    with kernels.disabled("fused_norm"):
        assert fused_in_graph() is False


def test_instance_norm_has_no_weights_by_default():
    layer = InstanceNormalization()
    layer.build((None, None, None, 8))
    assert layer.weights == []
    affine = InstanceNormalization(center=True, scale=True)
    affine.build((None, None, None, 8))
    assert sorted(w.name for w in affine.weights) == ["beta", "gamma"]


def test_instance_norm_float16_does_not_overflow(rng):
    # Squares of 300 overflow float16 (max 65504); statistics must be float32.
    x = rng.normal(0.0, 300.0, (1, 8, 8, 3)).astype("float16")
    layer = InstanceNormalization(dtype="mixed_float16")
    y = np.asarray(layer(x))
    assert y.dtype == np.float16
    assert np.isfinite(y).all()
    expected = (x - x.astype("float32").mean((1, 2), keepdims=True)) / x.astype(
        "float32").std((1, 2), keepdims=True)
    np.testing.assert_allclose(y.astype("float32"), expected, atol=1e-2)


def test_instance_norm_variance_floor_divides_by_at_least_the_floor_and_is_never_saved(rng):
    # Int8 export's copies set it (export.quantization); a channel above it is untouched.
    x = np.concatenate(
        [rng.normal(0.0, 2.0, (1, 6, 6, 1)), rng.normal(0.0, 0.01, (1, 6, 6, 1))], axis=-1
    ).astype("float32")
    layer = InstanceNormalization()
    layer.variance_floor = np.float32(0.25)
    y = np.asarray(layer(x))
    centred = x - x.mean(axis=(1, 2), keepdims=True)
    var = np.maximum(x.var(axis=(1, 2), keepdims=True), 0.25)
    np.testing.assert_allclose(y, centred / np.sqrt(var + 1e-5), atol=1e-5)
    assert y[..., 1].std() < 0.03  # the small channel is not stretched to unit variance
    assert "variance_floor" not in layer.get_config()
    assert _round_trip(layer).variance_floor is None


def test_instance_norm_statistic_ranges_clip_the_statistics_to_them(rng):
    # As int8 does (FakeQuant ops the TFLite converter takes the ranges from).
    x = rng.normal(0.5, 3.0, (1, 6, 6, 2)).astype("float32")
    layer = InstanceNormalization()
    layer.variance_floor = np.float32(0.0)
    layer.statistic_ranges = {"mean": 0.1, "variance": 20.0, "rsqrt": 2.0}
    y = np.asarray(layer(x))
    mean = np.clip(x.mean(axis=(1, 2), keepdims=True), -0.1, 0.1)
    centred = x - mean
    var = (centred**2).mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y, centred / np.sqrt(var + 1e-5), atol=0.03)  # 8-bit statistics
    assert np.abs(y.mean(axis=(1, 2))).max() > 0.05  # the clipped mean leaves an offset


def test_instance_norm_rejects_bad_arguments():
    with pytest.raises(ValueError, match="epsilon=0"):
        InstanceNormalization(epsilon=0)
    with pytest.raises(ValueError, match="NHWC inputs"):
        InstanceNormalization().build((None, 8))


def test_cropping_matches_keras_cropping(rng):
    import tensorflow as tf

    x = tf.constant(rng.normal(size=(2, 9, 8, 3)).astype("float32"))
    cropping = ((1, 2), (0, 3))
    ours, theirs = Cropping2D(cropping), keras.layers.Cropping2D(cropping)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_ours, y_theirs = ours(x), theirs(x)
    np.testing.assert_array_equal(np.asarray(y_ours), np.asarray(y_theirs))
    np.testing.assert_array_equal(
        np.asarray(tape.gradient(y_ours, x)), np.asarray(tape.gradient(y_theirs, x))
    )
    assert ours.compute_output_shape((2, 9, 8, 3)) == (2, 6, 5, 3)
    spec = tf.TensorSpec((None, None, None, 3))
    dynamic = tf.function(ours, input_signature=[spec])
    np.testing.assert_array_equal(np.asarray(dynamic(x)), np.asarray(y_theirs))
    # The channel count stays static (a following Conv2D needs it).
    assert dynamic.get_concrete_function().structured_outputs.shape.as_list() == [None, None, None, 3]


def test_cropping_needs_larger_input():
    with pytest.raises(ValueError, match="should be smaller"):
        Cropping2D(((2, 2), (0, 0)))(np.zeros((1, 4, 5, 1), "float32"))


@pytest.mark.parametrize("padding", [(2, 3), (1, 0), (0, 4)])
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("portable", [False, True], ids=["mirror_pad", "slices_for_litert"])
def test_reflection_padding_matches_numpy(rng, padding, training, portable):
    import contextlib

    import tensorflow as tf

    from tfcyclegan import kernels

    x = rng.normal(size=(2, 5, 6, 2)).astype("float32")
    layer = ReflectionPadding2D(padding)
    (ph, pw) = padding
    expected = np.pad(x, [(0, 0), (ph, ph), (pw, pw), (0, 0)], mode="reflect")
    with kernels.portable_ops() if portable else contextlib.nullcontext():
        np.testing.assert_array_equal(np.asarray(layer(x, training=training)), expected)
        # Height and width unknown when traced, as in an exported generator.
        spec = tf.TensorSpec((None, None, None, 2))
        traced = tf.function(lambda t: layer(t, training=training), input_signature=[spec])
        np.testing.assert_array_equal(np.asarray(traced(x)), expected)
        ops = {op.type for op in traced.get_concrete_function().graph.get_operations()}
    # Slices and a concatenation for LiteRT's XNNPACK (no MIRROR_PAD) outside training.
    assert ("MirrorPad" in ops) is (training or not portable)


def test_reflection_padding_needs_larger_input():
    with pytest.raises(ValueError, match=r"Reflection padding of 3 .* input shape \(1, 3, 8, 1\)"):
        ReflectionPadding2D(3)(np.zeros((1, 3, 8, 1), "float32"))
    with pytest.raises(ValueError, match="padding=-1"):
        ReflectionPadding2D(-1)
    with pytest.raises(ValueError, match=r"padding=\(1, 2, 3\)"):
        ReflectionPadding2D((1, 2, 3))


def test_input_size_check_names_size_and_multiple():
    check = InputSizeCheck(4, 8, "ResnetGenerator")
    assert check(np.zeros((1, 8, 12, 3))).shape == (1, 8, 12, 3)
    with pytest.raises(ValueError, match=r"multiples of 4 .* Received: height=10, width=12"):
        check(np.zeros((1, 10, 12, 3)))
    with pytest.raises(ValueError, match=r"at least 8\. Received: height=4"):
        check(np.zeros((1, 4, 4, 3)))


def test_residual_block_is_identity_plus_branch(rng):
    block = ResidualBlock(4, kernel_initializer="zeros")
    x = rng.normal(size=(1, 6, 6, 4)).astype("float32")
    # With zero weights the branch is norm(0) = 0, so the block is the identity.
    np.testing.assert_allclose(np.asarray(block(x)), x, atol=1e-6)
    assert len(block.trainable_weights) == 4  # two kernels, two biases


def test_residual_block_rejects_channel_mismatch():
    with pytest.raises(ValueError, match=r"filters=8 needs inputs with 8 channels"):
        ResidualBlock(8)(np.zeros((1, 8, 8, 4), "float32"))


@pytest.mark.parametrize(
    "layer",
    [
        InstanceNormalization(epsilon=1e-3, center=True),
        Cropping2D(((1, 0), (2, 1))),
        ReflectionPadding2D((1, 2)),
        InputSizeCheck(8, 16, "net"),
        ResidualBlock(8, norm="batch", dropout=0.5, use_bias=False),
        BlurPool2D(),
        Upsampling2x("bilinear"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    clone = _round_trip(layer)
    assert clone.get_config() == layer.get_config()


def test_kernel_initializers_follow_the_reference():
    w = np.asarray(kernel_initializer("normal", 0.02, seed=1)((64, 64, 3, 3)))
    assert abs(w.std() - 0.02) < 1e-3 and abs(w.mean()) < 1e-3
    # xavier_normal with gain g: std = g * sqrt(2 / (fan_in + fan_out)).
    w = np.asarray(kernel_initializer("xavier", 1.0, seed=1)((3, 3, 32, 32)))
    assert abs(w.std() - np.sqrt(2 / (2 * 9 * 32))) < 5e-3
    w = np.asarray(kernel_initializer("kaiming", 0.02, seed=1)((3, 3, 32, 32)))
    assert abs(w.std() - np.sqrt(2 / (9 * 32))) < 1e-2
    w = np.asarray(kernel_initializer("orthogonal", 1.0, seed=1)((16, 16)))
    np.testing.assert_allclose(w @ w.T, np.eye(16), atol=1e-5)
    with pytest.raises(ValueError, match="init_type='uniform'"):
        kernel_initializer("uniform")


def test_blur_pool_keeps_constants_and_halves_even_sizes(rng):
    # The filter sums to 1 and the padding reflects: a constant stays itself.
    x = np.full((1, 8, 12, 3), 0.7, "float32")
    np.testing.assert_allclose(np.asarray(BlurPool2D()(x)), np.full((1, 4, 6, 3), 0.7), atol=1e-6)
    assert BlurPool2D().compute_output_shape((None, 7, None, 3)) == (None, 4, None, 3)
    with pytest.raises(ValueError, match="known number of channels"):
        BlurPool2D().build((None, None, None, None))


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsampling_keeps_dtype_and_doubles_sizes(interpolation):
    layer = Upsampling2x(interpolation, dtype="mixed_float16")
    y = layer(np.ones((2, 3, 5, 4), "float32"))
    assert y.dtype == "float16" and tuple(y.shape) == (2, 6, 10, 4)
    assert layer.compute_output_shape((None, None, 5, 4)) == (None, None, 10, 4)
