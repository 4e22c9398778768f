import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.conftest import DATA
from tfcyclegan.networks import (
    ColorGenerator,
    PatchDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    UnetGenerator,
)
from tfcyclegan.torch_import import load_state_dict

REFERENCE = DATA / "reference"
MANIFEST = json.loads((REFERENCE / "manifest.json").read_text())["configs"]

# The reference outputs come from the authors' PyTorch code; float32 vs float64
# differs there by up to 4e-6 (manifest.json), so 1e-4 is a faithful port.
FIDELITY_ATOL = 1e-4

REFERENCE_NETWORKS = {
    "a_resnet_ngf8_nb2": lambda: ResnetGenerator(ngf=8, n_blocks=2),
    "b_resnet_ngf16_nb9": lambda: ResnetGenerator(ngf=16, n_blocks=9),
    "c_resnet_6blocks_ngf16": lambda: ResnetGenerator(ngf=16, n_blocks=6),
    "d_patchgan_ndf8_nl3": lambda: PatchDiscriminator(ndf=8, n_layers=3),
    "e_unet_128_ngf8": lambda: UnetGenerator(ngf=8, num_downs=7),
}


def nhwc(array):
    return array.transpose(0, 2, 3, 1)


@pytest.mark.parametrize("name", sorted(REFERENCE_NETWORKS))
def test_matches_pytorch_reference(name):
    reference = dict(np.load(REFERENCE / f"{name}.npz"))
    network = REFERENCE_NETWORKS[name]()
    assert network.count_params() == MANIFEST[name]["n_params"]
    load_state_dict(network, reference)
    output = np.asarray(network(nhwc(reference["__input__"])))
    expected = nhwc(reference["__output__"])
    assert output.shape == expected.shape
    np.testing.assert_allclose(output, expected, rtol=0, atol=FIDELITY_ATOL)


@pytest.mark.parametrize("name", sorted(REFERENCE_NETWORKS))
def test_training_mode_matches_pytorch_reference(name):
    # Instance norm takes a fused kernel in training; the numbers must not move.
    reference = dict(np.load(REFERENCE / f"{name}.npz"))
    network = REFERENCE_NETWORKS[name]()
    load_state_dict(network, reference)
    output = np.asarray(network(nhwc(reference["__input__"]), training=True))
    np.testing.assert_allclose(output, nhwc(reference["__output__"]), rtol=0, atol=FIDELITY_ATOL)


@pytest.mark.parametrize(
    "build, count",
    [
        (lambda: ResnetGenerator(ngf=64, n_blocks=9), 11_378_179),
        (lambda: ResnetGenerator(ngf=64, n_blocks=6), 7_837_699),
        (lambda: PatchDiscriminator(ndf=64, n_layers=3), 2_764_737),
        (lambda: UnetGenerator(ngf=64, num_downs=8), 54_409_603),
        (lambda: UnetGenerator(ngf=64, num_downs=7), 41_825_667),
        # pix2pix's own log prints 54.414 M for its batch-norm unet_256.
        (lambda: UnetGenerator(ngf=64, num_downs=8, norm="batch"), 54_413_955),
        (lambda: PixelDiscriminator(ndf=64), 8_705),
    ],
    ids=["resnet9", "resnet6", "patchgan70", "unet256", "unet128", "unet256_bn", "pixel"],
)
def test_parameter_counts_equal_the_reference(build, count):
    # PyTorch counts parameters, not buffers: compare trainable weights.
    network = build()
    assert sum(int(np.prod(w.shape)) for w in network.trainable_weights) == count


def test_full_cycle_gan_parameter_count():
    # The README of the reference: 2 G + 2 D = 28,285,832.
    assert 2 * 11_378_179 + 2 * 2_764_737 == 28_285_832


@pytest.mark.parametrize(
    "network, size, out",
    [
        (lambda: ResnetGenerator(ngf=4, n_blocks=1), (20, 36), (20, 36, 3)),
        (lambda: UnetGenerator(ngf=4, num_downs=5), (32, 64), (32, 64, 3)),
        (lambda: PatchDiscriminator(ndf=4), (256, 256), (30, 30, 1)),
        (lambda: PatchDiscriminator(ndf=4), (70, 70), (6, 6, 1)),
        (lambda: PixelDiscriminator(ndf=4), (5, 7), (5, 7, 1)),
        (lambda: ColorGenerator(ngf=4), (1, 3), (1, 3, 3)),
    ],
)
def test_any_valid_size_and_output_shapes(network, size, out):
    net = network()
    assert net.input_shape == (None, None, None, 3)
    y = net(np.zeros((2, *size, 3), "float32"))
    assert tuple(y.shape) == (2, *out)


def test_channels_are_configurable():
    net = ResnetGenerator(input_channels=1, output_channels=3, ngf=4, n_blocks=1)
    assert tuple(net(np.zeros((1, 16, 16, 1), "float32")).shape) == (1, 16, 16, 3)


@pytest.mark.parametrize(
    "network, shape, match",
    [
        (lambda: ResnetGenerator(ngf=4, n_blocks=1), (1, 30, 32, 3),
         r"ResnetGenerator needs height and width that are multiples of 4 and at least 8\. "
         r"Received: height=30, width=32"),
        (lambda: UnetGenerator(ngf=4, num_downs=5), (1, 32, 48, 3),
         r"UnetGenerator needs .* multiples of 32 .* Received: height=32, width=48"),
        (lambda: PatchDiscriminator(ndf=4), (1, 16, 16, 3),
         r"PatchDiscriminator needs .* at least 24\. Received: height=16"),
    ],
)
def test_sizes_the_network_cannot_take_are_named(network, shape, match):
    with pytest.raises(ValueError, match=match):
        network()(np.zeros(shape, "float32"))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: ResnetGenerator(norm="layer"), "norm='layer'"),
        (lambda: ResnetGenerator(n_blocks=-1), "n_blocks=-1"),
        (lambda: UnetGenerator(num_downs=4), "num_downs=4"),
        (lambda: PatchDiscriminator(n_layers=0), "n_layers=0"),
        (lambda: PatchDiscriminator(ndf=2.5), "ndf=2.5"),
        (lambda: ColorGenerator(n_layers=-1), "n_layers=-1"),
        (lambda: ColorGenerator(output_channels=1), "input_channels=3, output_channels=1"),
    ],
)
def test_bad_arguments_are_named(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_initialization_is_the_papers():
    net = ResnetGenerator(ngf=16, n_blocks=2, seed=0)
    kernels = np.concatenate([w.numpy().ravel() for w in net.weights if "kernel" in w.path])
    biases = np.concatenate([w.numpy().ravel() for w in net.weights if "bias" in w.path])
    assert abs(kernels.std() - 0.02) < 5e-4
    assert not biases.any()
    # Same seed, same weights; distinct layers of one shape get distinct draws.
    again = ResnetGenerator(ngf=16, n_blocks=2, seed=0)
    np.testing.assert_array_equal(net.get_weights()[0], again.get_weights()[0])
    blocks = [w.numpy() for w in net.weights if "block" in w.path and "kernel" in w.path]
    assert len(blocks) == 4
    for i in range(4):
        for j in range(i):
            assert not np.array_equal(blocks[i], blocks[j])


SMALL_NETWORKS = {
    "resnet": lambda: ResnetGenerator(ngf=4, n_blocks=2, dropout=True, name="G"),
    "resnet_resize_conv": lambda: ResnetGenerator(ngf=4, n_blocks=1, upsample="resize_conv"),
    "resnet_antialias": lambda: ResnetGenerator(ngf=4, n_blocks=1, upsample="antialias"),
    "unet": lambda: UnetGenerator(ngf=4, num_downs=5, norm="batch", name="F"),
    "patch": lambda: PatchDiscriminator(ndf=4, n_layers=2, name="D_X"),
    "pixel": lambda: PixelDiscriminator(ndf=4, norm="none", name="D_Y"),
    "color": lambda: ColorGenerator(ngf=4, n_layers=2, seed=1, name="G"),
}


@pytest.mark.parametrize("kind", sorted(SMALL_NETWORKS))
def test_get_config_round_trip(kind):
    net = SMALL_NETWORKS[kind]()
    clone = net.__class__.from_config(net.get_config())
    assert clone.get_config() == net.get_config()
    assert clone.name == net.name
    assert clone.count_params() == net.count_params()


@pytest.mark.slow
def test_keras_file_reloads_in_a_fresh_process(tmp_path, rng):
    x = rng.uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    expected = {}
    for kind, build in SMALL_NETWORKS.items():
        net = build()
        net.save(tmp_path / f"{kind}.keras")
        expected[kind] = np.asarray(net(x, training=False))
    script = (
        "import sys, numpy as np, keras, tfcyclegan\n"
        "x = np.load(sys.argv[1] + '/x.npy')\n"
        f"for kind in {tuple(SMALL_NETWORKS)}:\n"
        "    net = keras.saving.load_model(f'{sys.argv[1]}/{kind}.keras')\n"
        "    np.save(f'{sys.argv[1]}/{kind}.npy', np.asarray(net(x, training=False)))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)
    for kind, value in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{kind}.npy"), value)


@pytest.mark.parametrize(
    "policy, atol",
    # Measured: float16 drifts ~1e-3, bfloat16 (8-bit mantissa) ~1e-2 on these nets.
    [("mixed_float16", 1e-2), ("mixed_bfloat16", 6e-2)],
)
@pytest.mark.parametrize("kind", ["resnet", "unet_instance", "patch"])
def test_mixed_precision_forward_is_finite_and_close(policy, atol, kind, rng):
    builders = {
        "resnet": lambda: ResnetGenerator(ngf=8, n_blocks=2),
        "unet_instance": lambda: UnetGenerator(ngf=8, num_downs=5),
        "patch": lambda: PatchDiscriminator(ndf=8),
    }
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    reference = builders[kind]()
    expected = np.asarray(reference(x))
    keras.config.set_dtype_policy(policy)
    mixed = builders[kind]()
    mixed.set_weights(reference.get_weights())
    output = mixed(x)
    assert output.dtype == "float32"  # last layer computes in float32
    output = np.asarray(output)
    assert np.isfinite(output).all()
    np.testing.assert_allclose(output, expected, atol=atol)


# --- ColorGenerator: per-pixel, the identity at the start ---------------------


def _with_random_weights(network, seed=0, scale=0.5):
    """`network` with every weight drawn anew (a trained-like colour generator, not the identity)."""
    rng = np.random.default_rng(seed)
    network.set_weights([rng.normal(0.0, scale, w.shape).astype("float32") for w in network.get_weights()])
    return network


def test_color_generator_starts_as_the_identity(rng):
    x = rng.uniform(-1, 1, (2, 9, 13, 3)).astype("float32")
    x[0, 0, :3] = [[-1, -1, -1], [1, 1, 1], [0, 0, 0]]  # the ends of the range pass too
    for generator in (ColorGenerator(ngf=8, seed=0), ColorGenerator(ngf=8, n_layers=0, init_type="kaiming")):
        np.testing.assert_array_equal(np.asarray(generator(x)), x)


def test_color_generator_is_per_pixel(rng):
    # Permuting the pixels of an image permutes its outputs: no pixel sees another.
    generator = _with_random_weights(ColorGenerator(ngf=8, seed=0))
    x = rng.uniform(-1, 1, (1, 6, 10, 3)).astype("float32")
    order = rng.permutation(60)
    shuffled = x.reshape(1, 60, 3)[:, order].reshape(x.shape)
    y = np.asarray(generator(x)).reshape(1, 60, 3)
    np.testing.assert_allclose(np.asarray(generator(shuffled)).reshape(1, 60, 3), y[:, order], atol=1e-6)
    # And the weights above make a real change, clipped to the images' range.
    assert np.abs(y - x.reshape(1, 60, 3)).max() > 0.1
    assert np.abs(y).max() <= 1.0


def test_color_generator_keras_file_round_trip(tmp_path, rng):
    generator = _with_random_weights(ColorGenerator(ngf=8, seed=0, name="G"))
    x = rng.uniform(-1, 1, (2, 8, 8, 3)).astype("float32")
    generator.save(tmp_path / "color.keras")
    loaded = keras.saving.load_model(tmp_path / "color.keras")
    assert isinstance(loaded, ColorGenerator) and loaded.get_config() == generator.get_config()
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(generator(x)))


def test_color_generator_mixed_precision_gives_float32(rng):
    x = rng.uniform(-1, 1, (1, 4, 4, 3)).astype("float32")
    reference = _with_random_weights(ColorGenerator(ngf=8))
    mixed = ColorGenerator(ngf=8, dtype="mixed_float16")
    mixed.set_weights(reference.get_weights())
    output = mixed(x)
    assert output.dtype == "float32"
    np.testing.assert_allclose(np.asarray(output), np.asarray(reference(x)), atol=1e-2)
