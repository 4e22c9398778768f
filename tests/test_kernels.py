"""tfcyclegan.kernels: the one seam between the plain networks and their faster forms."""

import re
from pathlib import Path

import numpy as np
import pytest

from tfcyclegan import kernels

PACKAGE = Path(__file__).parent.parent / "tfcyclegan"


def test_the_model_code_names_no_speed_form():
    # Layers, networks and models ask `kernels` and nothing below it (issue #26).
    files = [PACKAGE / "layers.py", PACKAGE / "networks.py", *sorted((PACKAGE / "models").glob("*.py"))]
    pattern = re.compile(r"\b(cpu|winograd|portable|eigen_conv|EigenConv2D|kernels\.\w+\.)")
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not pattern.search(line), f"{path.name}:{number}: {line.strip()}"


def test_unknown_forms_are_refused():
    with pytest.raises(ValueError, match=r"Unknown kernel forms \['tiles'\]"):
        with kernels.disabled("tiles"):
            pass
    with pytest.raises(ValueError, match="Unknown kernel form 'tiles'"):
        kernels.enabled("tiles")


def test_switches_nest_and_end_with_their_blocks():
    assert kernels.enabled("winograd") and not kernels.enabled("reflect_concat")
    with kernels.disabled("winograd"):
        assert not kernels.enabled("winograd") and kernels.enabled("fused_norm")
        with kernels.disabled():
            assert not any(kernels.enabled(form) for form in kernels.FORMS)
        assert kernels.enabled("fused_norm")
    assert kernels.enabled("winograd")
    with kernels.portable_ops():
        # Graphs for LiteRT: no TensorFlow-only kernel, the XNNPACK-friendly pad.
        on = {form for form in kernels.FORMS if kernels.enabled(form)}
        assert on == {"slice_crop", "batched_calls", "reflect_concat"}
        with kernels.disabled("reflect_concat"):
            assert not kernels.enabled("reflect_concat")
    assert not kernels.portable()


def _graph_op_types(function, spec):
    import tensorflow as tf

    return {op.type for op in tf.function(function).get_concrete_function(spec).graph.get_operations()}


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_disabled_gives_the_plain_graph_and_the_same_numbers(monkeypatch, training):
    import tensorflow as tf

    from tfcyclegan.kernels import cpu, winograd
    from tfcyclegan.networks import ResnetGenerator

    monkeypatch.setattr(winograd, "MIN_PIXELS", 0)  # tiles on tiny images too
    monkeypatch.setattr(cpu, "eigen_convolutions", lambda: False)  # oneDNN's choices
    # ngf 64: residual convolutions of 256 channels, where the tiles apply.
    generator = ResnetGenerator(ngf=64, n_blocks=1, seed=0)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    spec = tf.TensorSpec(images.shape)

    def run(x):
        return generator(x, training=training)

    fast = _graph_op_types(run, spec)
    with kernels.disabled():
        plain = _graph_op_types(run, spec)
        expected = tf.function(run)(images).numpy()
    assert "FusedBatchNormV3" in fast and "FusedBatchNormV3" not in plain
    assert "MirrorPad" in plain and "Conv2D" in plain
    assert {"PartitionedCall", "StatefulPartitionedCall"} & fast  # the Winograd function
    assert not {"PartitionedCall", "StatefulPartitionedCall"} & plain
    got = tf.function(run)(images).numpy()
    assert np.abs(got - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())


def test_batched_calls_fuse_only_same_sized_batches_of_instance_norm_networks():
    import keras
    import tensorflow as tf

    from tfcyclegan.kernels import batching

    calls = []

    class Counting(keras.layers.Layer):
        def call(self, x):
            calls.append(x.shape[0])
            return x * 2.0

    inputs = keras.Input((None, None, 1))
    network = keras.Model(inputs, Counting()(inputs))
    calls.clear()  # the symbolic call that built it
    a, b = tf.ones((1, 4, 4, 1)), tf.ones((2, 4, 4, 1))
    outputs = kernels.batched_calls(network, [a, b])
    assert calls == [3] and [o.shape[0] for o in outputs] == [1, 2]
    calls.clear()
    kernels.batched_calls(network, [a, tf.ones((1, 6, 4, 1))])  # sizes differ
    assert calls == [1, 1]
    calls.clear()
    with kernels.disabled("batched_calls"):
        kernels.batched_calls(network, [a, b])
    assert calls == [1, 2]
    normed = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
    assert batching.fusable(network) and not batching.fusable(normed)
