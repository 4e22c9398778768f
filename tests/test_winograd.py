"""Winograd F(4x4, 3x3) in inference and in training: numbers against float64 (forward,
input and kernel gradients, with and without the reflection pad), where it engages,
and that exported LiteRT graphs keep the direct convolution."""

import tempfile

import numpy as np
import pytest
import tensorflow as tf

from tfcyclegan import export, kernels
from tfcyclegan.kernels import cpu, winograd
from tfcyclegan.kernels.conv import _reflect_padded_winograd, _valid_conv
from tfcyclegan.kernels.conv import _winograd_applies as form_applies
from tfcyclegan.layers import Conv2D, ResidualBlock
from tfcyclegan.networks import ResnetGenerator

CHANNELS = winograd.MIN_CHANNELS
# Float32 Winograd error, relative to the output's largest magnitude (module docstring:
# ~1e-5 measured; the direct convolution's is ~3e-7).
RELATIVE = 5e-5


@pytest.fixture
def any_size(monkeypatch):
    """Winograd on the tiny images of these tests too (`MIN_PIXELS` is about speed)."""
    monkeypatch.setattr(winograd, "MIN_PIXELS", 0)


@pytest.fixture(params=[True, False], ids=["batched", "36_matmuls"])
def products(request, monkeypatch):
    """Both forms of the 36 products: this process's TensorFlow path picks one (oneDNN:
    one batched matmul; Eigen: 36 matmuls), and each is checked whichever it is."""
    monkeypatch.setattr(winograd, "_batched", lambda: request.param)


def test_the_transforms_are_the_papers_matrices_applied_to_rows_and_columns():
    # Lavin and Gray's F(4x4, 3x3): Y = A^T [(G g G^T) * (B^T d B)] A is the valid
    # correlation of a 6x6 window d by a 3x3 kernel g. The forms here apply each
    # transform to both axes at once, as its Kronecker product with itself on the
    # flattened window; the kernel gradient's upstream transform is its transpose.
    rng = np.random.default_rng(1)
    d, g = rng.standard_normal((6, 6)), rng.standard_normal((3, 3))
    bt, big_g, at = (np.array(m) for m in (winograd._BT, winograd._G, winograd._AT))
    kron = {
        name: winograd._kronecker(m, tf.float64).numpy() for name, m in (("bt", bt), ("g", big_g), ("at", at))
    }
    np.testing.assert_allclose(kron["bt"] @ d.reshape(36), (bt @ d @ bt.T).reshape(36), atol=1e-12)
    np.testing.assert_allclose(kron["g"] @ g.reshape(9), (big_g @ g @ big_g.T).reshape(36), atol=1e-12)
    np.testing.assert_array_equal(winograd._kernel_transform(tf.float64).numpy(), kron["g"])
    product = (kron["g"] @ g.reshape(9)) * (kron["bt"] @ d.reshape(36))
    correlation = [[(d[i:i + 3, j:j + 3] * g).sum() for j in range(4)] for i in range(4)]
    np.testing.assert_allclose((kron["at"] @ product).reshape(4, 4), correlation, atol=1e-12)
    np.testing.assert_allclose(
        kron["at"].T @ product[:16], (at.T @ product[:16].reshape(4, 4) @ at).reshape(36), atol=1e-12
    )


def _case(rng, shape, cout=CHANNELS):
    x = rng.standard_normal(shape).astype(np.float32)
    kernel = (rng.standard_normal((3, 3, shape[-1], cout)) / np.sqrt(9 * shape[-1])).astype(np.float32)
    exact = tf.nn.conv2d(x.astype(np.float64), kernel.astype(np.float64), 1, "VALID").numpy()
    return x, kernel, exact


def _relative_error(got, exact):
    assert got.shape == exact.shape
    return np.abs(got - exact).max() / np.abs(exact).max()


def _op_types(function, *specs):
    graph = tf.function(function).get_concrete_function(*specs).graph
    types = {op.type for op in graph.get_operations()}
    for function_def in graph.as_graph_def().library.function:  # the branches of a tf.cond
        types.update(node.op for node in function_def.node_def)
    return types


@pytest.mark.parametrize(
    "shape",
    [
        (1, 18, 18, CHANNELS),  # 16 x 16 outputs: whole tiles
        (2, 13, 11, CHANNELS),  # 11 x 9: partial tiles, cropped
        (1, 3, 7, CHANNELS),  # a single output row
    ],
)
def test_matches_the_float64_convolution(rng, shape, products):
    x, kernel, exact = _case(rng, shape)
    assert _relative_error(winograd.conv3x3(tf.constant(x), tf.constant(kernel)).numpy(), exact) < RELATIVE
    dynamic = tf.function(
        lambda images: winograd.conv3x3(images, tf.constant(kernel)),
        input_signature=[tf.TensorSpec([None, None, None, CHANNELS], tf.float32)],
    )
    assert _relative_error(dynamic(x).numpy(), exact) < RELATIVE


@pytest.mark.parametrize("shape", [(1, 18, 18, CHANNELS), (2, 13, 11, CHANNELS), (1, 3, 7, CHANNELS)])
def test_kernel_gradient_matches_the_float64_one(rng, shape, products):
    x, kernel, exact = _case(rng, shape)
    upstream = rng.standard_normal(exact.shape).astype(np.float32)
    variable = tf.Variable(kernel.astype(np.float64))
    with tf.GradientTape() as tape:
        outputs = tf.nn.conv2d(x.astype(np.float64), variable, 1, "VALID")
    expected = tape.gradient(outputs, variable, output_gradients=upstream.astype(np.float64)).numpy()
    static = winograd.kernel_gradient(tf.constant(x), tf.constant(upstream)).numpy()
    assert _relative_error(static, expected) < RELATIVE
    unknown = tf.TensorSpec([None, None, None, CHANNELS], tf.float32)
    dynamic = tf.function(winograd.kernel_gradient, input_signature=[unknown, unknown])
    assert _relative_error(dynamic(x, upstream).numpy(), expected) < RELATIVE


@pytest.mark.parametrize(
    "kernel_shape, strides, padding, applies",
    [
        ((3, 3, CHANNELS, CHANNELS), (1, 1), "valid", True),
        ((3, 3, CHANNELS // 2, CHANNELS), (1, 1), "valid", False),  # measured slower
        ((3, 3, CHANNELS, CHANNELS // 2), (1, 1), "valid", False),
        ((4, 4, CHANNELS, CHANNELS), (1, 1), "valid", False),
        ((3, 3, CHANNELS, CHANNELS), (2, 2), "valid", False),
        ((3, 3, CHANNELS, CHANNELS), (1, 1), "same", False),
    ],
)
def test_applies_to_wide_stride_1_valid_3x3_only(kernel_shape, strides, padding, applies):
    assert winograd.applies(kernel_shape, strides, (1, 1), padding) is applies
    graph_input = tf.TensorSpec([1, None, None, kernel_shape[2]])

    def seam_says():
        # Whether the seam runs the form for a graph input (eagerly it never does).
        said = []
        tf.function(
            lambda x: said.append(form_applies(x, kernel_shape, strides, (1, 1), padding)) or x
        ).get_concrete_function(graph_input)
        return said[0]

    assert seam_says() == applies
    with kernels.portable_ops():
        assert not seam_says()
    with kernels.disabled("winograd"):
        assert not seam_says()
    assert seam_says() == applies  # the blocks ended


def test_images_of_fewer_output_pixels_keep_the_direct_form(rng):
    kernel_shape = (3, 3, CHANNELS, CHANNELS)

    def applies(height, width):
        return winograd.applies(kernel_shape, (1, 1), (1, 1), "valid", (1, height, width, CHANNELS))

    assert winograd.MIN_PIXELS == 32 * 32
    assert not applies(18, 18) and not applies(33, 34)  # 16 x 16, 31 x 32 outputs
    assert applies(34, 34) and applies(66, 18)  # 32 x 32, 64 x 16
    assert applies(None, None) and applies(None, 18)  # unknown: the image may be large
    layer = Conv2D(CHANNELS, 3)
    small = tf.constant(rng.standard_normal((1, 18, 18, CHANNELS)).astype(np.float32))
    # In a graph, in inference: the direct convolution's exact numbers.
    np.testing.assert_array_equal(
        tf.function(lambda x: layer(x, training=False))(small).numpy(), layer(small).numpy()
    )


@pytest.mark.parametrize("eigen_path", [True, False], ids=["eigen", "onednn"])
def test_conv2d_uses_it_in_graphs_for_inference_and_training_on_both_paths(
    rng, monkeypatch, any_size, eigen_path
):
    monkeypatch.setattr(cpu, "eigen_convolutions", lambda: eigen_path)
    layer = Conv2D(CHANNELS, 3, activation="relu")
    x = tf.constant(rng.standard_normal((1, 10, 10, CHANNELS)).astype(np.float32))
    graph = tf.function(lambda images, training: layer(images, training=training))
    trained = graph(x, training=True).numpy()
    inferred = graph(x, training=False).numpy()
    direct = layer(x, training=False).numpy()  # eagerly: the direct convolution
    expected = np.maximum(winograd.conv3x3(x, layer.kernel) + layer.bias, 0.0)
    # The same form, up to the graph optimizer's reordering of its sums.
    np.testing.assert_allclose(inferred, expected, rtol=0, atol=2e-6 * np.abs(expected).max())
    assert 0 < np.abs(inferred - direct).max() < RELATIVE * np.abs(direct).max()
    np.testing.assert_allclose(trained, expected, rtol=0, atol=2e-6 * np.abs(expected).max())
    with kernels.portable_ops():
        np.testing.assert_array_equal(
            tf.function(lambda images: layer(images, training=False))(x).numpy(), direct
        )
    spec = tf.TensorSpec([1, 10, 10, CHANNELS], tf.float32)

    def form(training):
        def step(images):
            with tf.GradientTape() as tape:
                tape.watch(images)
                outputs = layer(images, training=training)
            return outputs, tape.gradient(outputs, [images, layer.kernel])

        types = _op_types(step, spec)
        assert ("Conv2D" in types) != ("MatMul" in types), types
        if "Conv2D" in types:
            return "direct"
        assert not any(t.startswith("Conv2DBackprop") for t in types), types
        return "winograd"

    assert form(training=False) == "winograd"
    # Training too, on either path: the forward and both gradients through tiles,
    # no Conv2D or backprop kernel at all.
    assert form(training=True) == "winograd"
    with kernels.portable_ops():
        assert form(training=False) == "direct"


def test_convolutions_of_one_shape_call_one_function_not_inlined(rng, any_size):
    # Inlined into the caller, the form's ~700 ops per convolution made a training
    # graph too large (docs/cpu_paths.md): each shape is one function, called.
    weights = [tf.constant(_case(rng, (1, 10, 10, CHANNELS))[1]) for _ in range(3)]
    spec = tf.TensorSpec([1, 10, 10, CHANNELS], tf.float32)

    def three_convolutions(x):
        x = winograd.conv3x3(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), weights[0])
        x = winograd.conv3x3(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), weights[1])
        return winograd.conv3x3(x, weights[2])  # a smaller shape

    graph = tf.function(three_convolutions).get_concrete_function(spec).graph
    calls = [op for op in graph.get_operations() if op.type in ("PartitionedCall", "StatefulPartitionedCall")]
    called = [op.get_attr("f").name for op in calls]
    # The same shape, the same function. (A smaller one may take another, or one
    # traced earlier for unknown sizes: TensorFlow reuses traces of supertypes.)
    assert len(calls) == 3 and called[0] == called[1]
    assert "MatMul" not in {op.type for op in graph.get_operations()}
    library = {f.signature.name: f for f in graph.as_graph_def().library.function}
    for name in set(called):
        assert library[name].attr["_noinline"].b
        ops = [node.op for node in library[name].node_def]
        # The kernel's, the input's and the outputs' transforms as matmuls, and the 36
        # products (one batched matmul under oneDNN); a gather, a transpose, reshapes
        # and the gather's index arithmetic (the transforms written out were ~700 ops).
        products = {"MatMul": 36} if cpu.eigen_convolutions() else {"BatchMatMulV2": 1}
        assert ops.count("MatMul") == 3 + products.get("MatMul", 0)
        assert ops.count("BatchMatMulV2") == products.get("BatchMatMulV2", 0)
        assert len([op for op in ops if op != "Const"]) < 200, ops


def _with_gradients(conv, x, kernel, upstream):
    """[conv(x, kernel), d/dx, d/dkernel] for the upstream gradient `upstream`."""
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = conv(x, kernel)
    return [y] + tape.gradient(y, [x, kernel], output_gradients=upstream)


@pytest.mark.parametrize("static", [True, False], ids=["static", "dynamic"])
def test_training_gradients_match_float64(rng, any_size, static, products):
    x, kernel, _ = _case(rng, (2, 11, 9, CHANNELS))  # 9 x 7 outputs: partial tiles
    upstream = rng.standard_normal((2, 9, 7, CHANNELS)).astype(np.float32)

    in_float64 = (tf.constant(a, tf.float64) for a in (x, kernel, upstream))
    exact = _with_gradients(lambda a, k: tf.nn.conv2d(a, k, 1, "VALID"), *in_float64)
    unknown = [None, None, None, CHANNELS]  # batch, height and width unknown when traced
    spec = [
        tf.TensorSpec(x.shape if static else unknown),
        tf.TensorSpec(kernel.shape),
        tf.TensorSpec(upstream.shape if static else unknown),
    ]
    conv = tf.function(lambda *args: _with_gradients(_valid_conv, *args), input_signature=spec)
    # Forward, input and kernel gradients: three called Winograd functions, no
    # Conv2D anywhere and no per-tap products in the caller's graph.
    assert "Conv2D" not in _op_types(lambda *args: _with_gradients(_valid_conv, *args), *spec)
    caller = {op.type for op in conv.get_concrete_function().graph.get_operations()}
    assert "MatMul" not in caller and "PartitionedCall" in caller
    for got, want in zip(conv(x, kernel, upstream), exact):
        assert _relative_error(got.numpy(), want.numpy()) < RELATIVE


@pytest.mark.parametrize("static", [True, False], ids=["static", "dynamic"])
def test_reflect_padded_convolution_and_gradients_match_float64_pad_then_convolve(
    rng, any_size, static, products
):
    # The residual blocks' pad read from x by the tiles' gather: no padded copy.
    x = rng.standard_normal((2, 9, 7, CHANNELS)).astype(np.float32)  # 9 x 7 outputs: partial tiles
    kernel = (rng.standard_normal((3, 3, CHANNELS, CHANNELS)) / np.sqrt(9 * CHANNELS)).astype(np.float32)
    upstream = rng.standard_normal((2, 9, 7, CHANNELS)).astype(np.float32)

    def pad_then_convolve(x, kernel):
        return tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], "REFLECT"), kernel, 1, "VALID")

    exact = _with_gradients(pad_then_convolve, *(tf.constant(a, tf.float64) for a in (x, kernel, upstream)))
    unknown = [None, None, None, CHANNELS]
    spec = [tf.TensorSpec(a.shape if static or a is kernel else unknown) for a in (x, kernel, upstream)]
    conv = tf.function(
        lambda *args: _with_gradients(lambda a, k: _reflect_padded_winograd(a, k, 1), *args),
        input_signature=spec,
    )
    types = _op_types(conv.python_function, *spec)
    assert "MirrorPad" not in types and "Conv2D" not in types
    assert "MirrorPadGrad" in types  # the padded input's gradient folded back onto x
    for got, want in zip(conv(x, kernel, upstream), exact):
        assert _relative_error(got.numpy(), want.numpy()) < RELATIVE
    # Wider pads too (the forward; the generators pad by 1).
    wide = winograd.conv3x3(tf.constant(x), tf.constant(kernel), 2)
    padded = tf.pad(x.astype(np.float64), [[0, 0], [2, 2], [2, 2], [0, 0]], "REFLECT")
    exact = tf.nn.conv2d(padded, kernel.astype(np.float64), 1, "VALID")
    assert _relative_error(wide.numpy(), exact.numpy()) < RELATIVE
    # A pad as wide as the image cannot be a reflection (tf.pad refuses it too).
    narrow = tf.zeros([1, 2, 5, CHANNELS])
    with pytest.raises(ValueError, match=r"Reflection padding of 2 .* Received: input shape \(1, 2, 5"):
        winograd.conv3x3(narrow, tf.constant(kernel), 2)
    dynamic = tf.function(
        lambda a: winograd.conv3x3(a, tf.constant(kernel), 2),
        input_signature=[tf.TensorSpec(unknown, tf.float32)],
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="Reflection padding of 2"):
        dynamic(narrow)


def _residual_block_step(rng, training, dtype=None):
    """(x, its TensorSpec, forward, step) of a ResidualBlock of CHANNELS on an 8 x 8 image:
    `step` returns the float32 outputs and the gradients for x and both kernels."""
    block = ResidualBlock(CHANNELS, dtype=dtype)
    x = tf.constant(rng.standard_normal((1, 8, 8, CHANNELS)).astype(np.float32))
    upstream = tf.constant(rng.standard_normal(x.shape).astype(np.float32))
    block.build(x.shape)

    def forward(images):
        return block(images, training=training)

    def step(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            outputs = tf.cast(forward(images), tf.float32)
        variables = [images, block.conv1.kernel, block.conv2.kernel]
        return [outputs] + tape.gradient(outputs, variables, output_gradients=upstream)

    return x, tf.TensorSpec(x.shape, tf.float32), forward, step


@pytest.mark.parametrize("training", [True, False])
def test_residual_block_convolutions_pad_by_the_gather_and_give_the_direct_numbers(rng, any_size, training):
    x, spec, forward, step = _residual_block_step(rng, training)
    # The pad (MirrorPad in training, a concatenation of slices in inference) is gone.
    pad = "MirrorPad" if training else "ConcatV2"
    assert not {pad, "Conv2D"} & _op_types(forward, spec)
    assert not {"MirrorPad", "Conv2D"} & _op_types(step, spec)
    with kernels.portable_ops():  # without Winograd tiles (as traced for LiteRT): pad, Conv2D
        assert {pad, "Conv2D"} <= _op_types(forward, spec)
    direct = step(x)  # eagerly: pad, then the direct convolution
    for got, want in zip(tf.function(step)(x), direct):
        assert _relative_error(got.numpy(), want.numpy()) < RELATIVE


@pytest.mark.parametrize("training", [True, False])
def test_mixed_bfloat16_blocks_take_float32_tiles_and_give_the_bfloat16_numbers(
    rng, any_size, training, monkeypatch
):
    # Under mixed_bfloat16 the blocks' convolutions run as float32 tiles of their
    # bfloat16 operands (kernels.conv._bfloat16_by_float32_tiles): bfloat16 in and
    # out, the numbers of the plain bfloat16 layers to bfloat16 rounding.
    x, spec, forward, step = _residual_block_step(rng, training, dtype="mixed_bfloat16")
    monkeypatch.setattr(cpu, "amx", lambda: False)
    types = _op_types(step, spec)
    assert not {"MirrorPad", "Conv2D"} & types and "GatherV2" in types
    assert forward(x).dtype == tf.bfloat16
    with kernels.disabled("winograd"):  # the plain bfloat16 layers: pad, then Conv2D
        assert {"MirrorPad", "Conv2D"} <= _op_types(step, spec)
        plain = tf.function(step)(x)
    # bfloat16 keeps 8 significant bits (~4e-3); two bfloat16 computations of a
    # block differed by up to 1.3e-2 (measured 0.5-0.9e-2 outputs, 0.4-1.3e-2 kernel
    # gradients, 256 channels at 32 x 32), against ~8e-2 from float32's.
    for got, want in zip(tf.function(step)(x), plain):
        assert _relative_error(got.numpy(), want.numpy()) < 3e-2


def test_mixed_bfloat16_blocks_keep_bfloat16_convolutions_with_amx(rng, any_size, monkeypatch):
    # AMX's bfloat16 convolutions should beat float32 tiles (not measured here).
    monkeypatch.setattr(cpu, "amx", lambda: True)
    block = ResidualBlock(CHANNELS, dtype="mixed_bfloat16")
    spec = tf.TensorSpec([1, 8, 8, CHANNELS], tf.float32)
    block.build(spec.shape)
    for training in (True, False):
        types = _op_types(lambda images: block(images, training=training), spec)
        assert {"MirrorPad", "Conv2D"} <= types and "GatherV2" not in types, training


@pytest.mark.slow
def test_generator_inference_moves_by_float32_noise_and_tflite_keeps_conv_2d(rng, any_size):
    # ngf 64: the residual blocks' convolutions have 256 channels, as at the paper's setting.
    generator = ResnetGenerator(ngf=64, n_blocks=1, seed=0)
    images = rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    fast = tf.function(lambda x: generator(x, training=False))(images).numpy()
    direct = generator(images, training=False).numpy()  # eagerly: the direct form
    assert 0 < np.abs(fast - direct).max() < 1e-4
    # The exported SavedModel (what TF Serving runs) computes Winograd's numbers.
    with tempfile.TemporaryDirectory() as folder:
        served = export.load_translator(export.export_saved_model(generator, folder, "G"))
        np.testing.assert_allclose(served(images), fast, rtol=0, atol=1e-5)
    ops = export.tflite_ops(export.convert_tflite(generator, input_size=(16, 16)))
    assert "CONV_2D" in ops
    assert "BATCH_MATMUL" not in ops and "FULLY_CONNECTED" not in ops
