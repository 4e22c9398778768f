"""Full int8 on trained-like weights: instance-norm equalization (tfcyclegan.export.quantization).

The output channels of a convolution differ in scale (stds spread 4-20x per
layer on CycleGANs trained at 64 px), and int8 has one scale per tensor: the
instance norm after such a convolution loses the small channels. This tiny
generator, with its channels spread 10x, gives plain int8 21 dB PSNR against
float32 and the equalized one 38 dB (measured), so the tests need no training.
"""

import contextlib
import json

import numpy as np
import pytest
import tensorflow as tf

from tfcyclegan import export
from tfcyclegan.export import quantization, tflite
from tfcyclegan.export.parity import psnr
from tfcyclegan.layers import InstanceNormalization
from tfcyclegan.models import translate_with
from tfcyclegan.networks import ResnetGenerator
from tfcyclegan.synthetic import draw_scene

# End to end: int8 TFLite conversions of a trained-like generator. make test-fast skips the file.
pytestmark = pytest.mark.slow

SIZE = 32

# Measured on this fixture (seed 0): plain int8 20.8 dB, equalized 38.0 dB
# against float32. The bounds leave a margin to both.
EQUALIZED_MIN_PSNR = 33.0
PLAIN_MAX_PSNR = 31.0


def _scenes(count, seed):
    rng = np.random.default_rng(seed)
    pixels = np.stack([np.asarray(draw_scene(rng, "summer", SIZE, SIZE)) for _ in range(count)])
    return pixels.astype(np.float32) / 127.5 - 1.0


def _conv_norm_pairs(generator):
    """(conv, norm) of the tiny ResNet: stem, downsampling, blocks, upsampling."""
    by_name = {layer.name: layer for layer in generator.layers}
    pairs = []
    for layer in generator.layers:
        if isinstance(layer, InstanceNormalization):
            pairs.append((by_name[layer.name.replace("_norm", "_conv")], layer))
        for conv, norm in (("conv1", "norm1"), ("conv2", "norm2")):
            if hasattr(layer, norm):
                pairs.append((getattr(layer, conv), getattr(layer, norm)))
    return pairs


@pytest.fixture(scope="module")
def trained_like():
    """A ResNet generator (ngf 8, 2 blocks) in the paper's initialization (normal,
    0.02), its convolutions' output channels rescaled 0.3x-3x (a 10x spread, as
    training makes them: 4-20x measured)."""
    generator = ResnetGenerator(ngf=8, n_blocks=2, seed=0, name="G")
    generator(tf.zeros((1, SIZE, SIZE, 3)))
    rng = np.random.default_rng(0)
    for conv, _ in _conv_norm_pairs(generator):
        kernel, bias = conv.get_weights()
        factors = np.geomspace(10**-0.5, 10**0.5, bias.shape[0]).astype(np.float32)
        rng.shuffle(factors)
        # Output channels: the last kernel axis of Conv2D, the third of Conv2DTranspose.
        transpose = isinstance(conv, tf.keras.layers.Conv2DTranspose)
        conv.set_weights([kernel * (factors[:, None] if transpose else factors), bias * factors])
    return generator


@pytest.fixture(scope="module")
def images():
    calibration = list(_scenes(8, seed=1)[:, None])
    return calibration, _scenes(4, seed=2)


@contextlib.contextmanager
def _exact(equalized, keep_floors=False):
    """The equalized copy without its int8 adjustments (8-bit statistics, and
    unless `keep_floors` the variance floors): the rescale alone, exact in float."""
    norms = [norm for _, norm in _conv_norm_pairs(equalized.generator)]
    kept = [(norm.variance_floor, norm.statistic_ranges) for norm in norms]
    for norm in norms:
        norm.statistic_ranges = None
        if not keep_floors:
            norm.variance_floor = None
    try:
        yield equalized.generator
    finally:
        for norm, (floor, ranges) in zip(norms, kept):
            norm.variance_floor, norm.statistic_ranges = floor, ranges


def _float_tensors(flatbuffer):
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    return sum(
        tensor.type == schema.TensorType.FLOAT32
        for subgraph in model.subgraphs
        for tensor in subgraph.tensors
    )


def _outputs(flatbuffer, inputs):
    from tfcyclegan.export.runtime import TFLiteRunner

    return TFLiteRunner(flatbuffer, num_threads=2)(inputs)


def test_equalized_int8_keeps_quality_and_builtin_ops(trained_like, images):
    calibration, inputs = images
    reference = translate_with(trained_like, inputs)
    flatbuffer = tflite.convert_tflite(
        trained_like, "int8", representative_images=calibration, input_size=(SIZE, SIZE)
    )
    tflite.check_builtin_ops(flatbuffer)
    assert _float_tensors(flatbuffer) == 2  # fully integer: only the float input and output
    assert psnr(_outputs(flatbuffer, inputs), reference) > EQUALIZED_MIN_PSNR
    metadata = export.read_tflite_metadata(flatbuffer)
    assert metadata["equalized_norms"] == 9


def test_plain_int8_breaks_on_the_same_weights(trained_like, images):
    """The cause: without equalization, full int8 on these weights is far worse."""
    calibration, inputs = images
    reference = translate_with(trained_like, inputs)
    with tflite.tflite_saved_model(trained_like, (SIZE, SIZE)) as saved_model_dir:
        plain = tflite._convert(saved_model_dir, "translate", "int8", calibration, False)
    plain = tflite.add_tflite_metadata(plain, {"size_multiple": 4, "min_size": 8})
    assert psnr(_outputs(plain, inputs), reference) < PLAIN_MAX_PSNR


def test_equalization_is_the_same_function_in_float(trained_like, images):
    calibration, inputs = images
    equalized = quantization.equalize_instance_norm(trained_like, calibration)
    assert len(equalized.pairs) == 9
    assert equalized.generator is not trained_like
    assert max(equalized.spread) > 2  # what int8's per-tensor scales could not hold
    # Exact up to float32 rounding: the copy's norms take epsilon per channel.
    assert equalized.psnr_db >= quantization.EQUALIZE_MIN_PSNR
    with _exact(equalized) as copy:
        np.testing.assert_allclose(
            translate_with(copy, inputs), translate_with(trained_like, inputs), atol=1e-2
        )
    # As converted: int8's statistics rounded to 8 bits (and floors) move it a little.
    assert 40.0 < equalized.converted_psnr_db < equalized.psnr_db
    # The original is untouched.
    assert equalized.generator.get_weights()[0] is not trained_like.get_weights()[0]


def test_equalization_skips_generators_without_instance_norm(images):
    calibration, _ = images
    generator = ResnetGenerator(ngf=4, n_blocks=1, norm="batch", seed=0)
    generator(tf.zeros((1, SIZE, SIZE, 3)))
    equalized = quantization.equalize_instance_norm(generator, calibration)
    assert equalized.generator is generator and equalized.pairs == []


def test_equalization_refuses_a_wrong_pairing(trained_like, images):
    calibration, _ = images
    # A bound no copy can meet stands for a pairing that changed the function.
    equalized = quantization.equalize_instance_norm(trained_like, calibration, min_psnr=float("inf"))
    assert equalized.generator is trained_like and equalized.pairs == []
    assert "dB PSNR < inf dB" in equalized.refused


# --- Low-contrast calibration images; generators that cannot be equalized ----


def _low_contrast(images, contrast=0.05):
    """Foggy or overexposed photos: values within `contrast` of a light grey."""
    return [np.clip(0.5 + contrast * image, -1.0, 1.0) for image in images]


def test_equalization_stays_exact_with_low_contrast_calibration_images(trained_like, images):
    """On a low-contrast image a channel's variance nears epsilon, where a rescaled
    channel with the norm's own epsilon differed by up to ~40% (36 dB against the
    original on this fixture, and the copy was refused); with epsilon per channel
    the copy is exact to float32 rounding (~108 dB measured)."""
    calibration, inputs = images
    calibration = calibration[2:] + _low_contrast(calibration[:2])
    equalized = quantization.equalize_instance_norm(trained_like, calibration)
    assert equalized.refused is None and len(equalized.pairs) == 9
    assert equalized.psnr_db > 90.0
    reference = translate_with(trained_like, inputs)
    flatbuffer = tflite.convert_tflite(
        trained_like, "int8", representative_images=calibration, input_size=(SIZE, SIZE)
    )
    assert export.read_tflite_metadata(flatbuffer)["equalized_norms"] == 9
    assert psnr(_outputs_litert(flatbuffer, inputs), reference) >= 30.0


def test_a_flat_calibration_image_does_not_refuse_equalization(trained_like, images):
    """On a one-colour image the norms see 0 / 0 and the output is float32 noise,
    which the check leaves out."""
    calibration, _ = images
    equalized = quantization.equalize_instance_norm(
        trained_like, calibration + [np.full_like(calibration[0], 0.3)]
    )
    assert equalized.refused is None and equalized.psnr_db > 90.0


# --- A colour channel flat on some photos; a channel near epsilon ------------


@pytest.fixture(scope="module")
def colour_channel():
    """`trained_like` whose first stem channel sees only colour differences, as
    trained stems do: on a grey photo it is exactly flat, on colour scenes strong."""
    generator = ResnetGenerator(ngf=8, n_blocks=2, seed=0, name="G_colour")
    generator(tf.zeros((1, SIZE, SIZE, 3)))
    conv = generator.get_layer("stem_conv")
    kernel, bias = conv.get_weights()
    kernel[..., 0] -= kernel[..., 0].mean(axis=2, keepdims=True)  # sums to 0 over RGB
    kernel[..., 0] *= 100.0  # std > 1: its norm's epsilon stays ~1e-5 after equalization
    conv.set_weights([kernel, bias])
    return generator


def _with_grey_photos(images):
    calibration, inputs = images
    grey = [image.mean(axis=-1, keepdims=True).repeat(3, axis=-1) for image in calibration[:2]]
    return calibration[2:] + grey, inputs


def test_variance_floors_keep_int8_when_a_channel_is_flat_on_a_calibration_photo(
    colour_channel, images, monkeypatch
):
    """On the grey photos the colour channel's variance is 0, so without a floor
    rsqrt's one int8 scale must reach 1 / sqrt(eps) = 316 and every other
    channel's rsqrt rounds to a few levels (18.5 dB measured; 38.1 dB with the
    floors). In float the floors change nothing here: a flat channel is 0 either
    way."""
    calibration, inputs = _with_grey_photos(images)
    equalized = quantization.equalize_instance_norm(colour_channel, calibration)
    assert equalized.refused is None
    norms = [norm for _, norm in _conv_norm_pairs(equalized.generator)]
    assert all(norm.variance_floor > 0 for norm in norms)
    grey = np.concatenate(calibration[-2:])
    with _exact(equalized) as copy:
        exact = translate_with(copy, grey)
    with _exact(equalized, keep_floors=True) as copy:
        floored = translate_with(copy, grey)
    assert psnr(floored, exact) > 90.0
    reference = translate_with(colour_channel, inputs)

    def int8_psnr():
        flatbuffer = tflite.convert_tflite(
            colour_channel, "int8", representative_images=calibration, input_size=(SIZE, SIZE)
        )
        return psnr(_outputs(flatbuffer, inputs), reference)

    assert int8_psnr() > EQUALIZED_MIN_PSNR
    monkeypatch.setattr(quantization, "FLOOR_LEVELS", 0.0)  # floors of 0: none
    assert int8_psnr() < 28.0


def test_a_channel_near_epsilon_is_scaled_as_far_as_max_epsilon_allows(trained_like, images):
    """A channel of std ~0.003 (variance ~1 eps) is scaled up by
    sqrt(MAX_EPSILON / eps) = 31.6, not left at a few int8 levels; its norm's
    epsilon becomes MAX_EPSILON, and the copy stays exact."""
    calibration, _ = images
    generator = ResnetGenerator(ngf=8, n_blocks=2, seed=0, name="G_small")
    generator(tf.zeros((1, SIZE, SIZE, 3)))
    generator.set_weights(trained_like.get_weights())
    conv = generator.get_layer("stem_conv")
    kernel, bias = conv.get_weights()
    kernel[..., 1] *= 0.01
    conv.set_weights([kernel, bias])
    equalized = quantization.equalize_instance_norm(generator, calibration)
    assert equalized.refused is None and equalized.psnr_db > 90.0
    norm = equalized.generator.get_layer("stem_norm")
    cap = np.sqrt(quantization.MAX_EPSILON / 1e-5)
    np.testing.assert_allclose(norm.epsilon[1], quantization.MAX_EPSILON, rtol=1e-5)
    assert np.all(norm.epsilon <= quantization.MAX_EPSILON * (1 + 1e-6))
    scaled = equalized.generator.get_layer("stem_conv").get_weights()[0][..., 1]
    np.testing.assert_allclose(scaled, kernel[..., 1] * cap, rtol=1e-5)


def test_the_stem_sees_low_contrast_photos_at_unit_contrast(trained_like, images, monkeypatch):
    """The stem's outputs on a faint photo span a fraction of the int8 range the
    textured ones set; the copy's stem normalizes its input's contrast per image
    (exactly: its norm's epsilon follows), and int8 keeps ~5 dB more of it."""
    calibration, inputs = images
    faint = np.stack([0.3 + 0.1 * image for image in inputs])
    calibration = calibration + [0.3 + 0.1 * image for image in calibration[:2]]
    equalized = quantization.equalize_instance_norm(trained_like, calibration)
    assert equalized.stem_contrast == "stem_conv" and equalized.psnr_db > 90.0
    with _exact(equalized) as copy:
        np.testing.assert_allclose(
            translate_with(copy, faint), translate_with(trained_like, faint), atol=1e-3
        )
    reference = translate_with(trained_like, faint)

    def int8_psnr():
        flatbuffer = tflite.convert_tflite(
            trained_like, "int8", representative_images=calibration, input_size=(SIZE, SIZE)
        )
        assert _float_tensors(flatbuffer) == 2
        return psnr(_outputs(flatbuffer, faint), reference)

    # Measured: 30.3 dB normalized, 25.8 dB without.
    assert int8_psnr() > 28.5
    monkeypatch.setattr(quantization, "_normalize_stem_contrast", lambda *args: None)
    assert int8_psnr() < 27.5


def test_one_representative_image_is_enough_to_convert(trained_like, images):
    """With one calibration image every shifted mean is 0: its int8 range is at
    least one level of the norm's input, not [0, 0] (a FakeQuant error before)."""
    calibration, inputs = images
    flatbuffer = tflite.convert_tflite(
        trained_like, "int8", representative_images=calibration[:1], input_size=(SIZE, SIZE)
    )
    outputs = _outputs(flatbuffer, inputs)
    assert np.isfinite(outputs).all()
    assert psnr(outputs, translate_with(trained_like, inputs)) > 20.0


def test_a_first_convolution_without_its_own_norm_keeps_its_input(images):
    """The U-Net's first convolution has no norm (and zero padding): its input's
    contrast stays as it is, and the copy is still exact."""
    from tfcyclegan.networks import UnetGenerator

    calibration, _ = images
    generator = UnetGenerator(num_downs=5, ngf=4, seed=0)
    generator(tf.zeros((1, SIZE, SIZE, 3)))
    equalized = quantization.equalize_instance_norm(generator, calibration)
    assert equalized.stem_contrast is None
    assert equalized.pairs and equalized.psnr_db > 90.0


def _outputs_litert(flatbuffer, inputs):
    """The file run by LiteRT's own interpreter, one image at a time."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer, num_threads=2)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    outputs = []
    for image in inputs:
        interpreter.set_tensor(source, image[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target)[0])
    return np.stack(outputs)


@pytest.fixture(scope="module")
def shortcut():
    """A generator whose convolution output also bypasses its norm: rescaling that
    convolution changes the function, so it cannot be equalized."""
    import keras

    from tfcyclegan.layers import Conv2D, InputSizeCheck

    inputs = keras.Input((None, None, 3))
    x = InputSizeCheck(4, 8, name="size_check")(inputs)
    features = Conv2D(8, 3, padding="same", name="conv")(x)
    x = InstanceNormalization(name="norm")(features)
    x = keras.layers.Add(name="shortcut")([x, features])
    x = Conv2D(3, 3, padding="same", activation="tanh", name="out")(x)
    generator = keras.Model(inputs, x, name="G_shortcut")
    rng = np.random.default_rng(0)
    kernel, bias = generator.get_layer("conv").get_weights()
    # Channels of different scales, as training makes them.
    kernel *= np.geomspace(0.05, 5.0, 8).astype(np.float32)
    generator.get_layer("conv").set_weights([kernel, rng.normal(0, 0.5, bias.shape)])
    return generator


def test_lossy_int8_is_an_error_naming_generator_psnr_and_flag(shortcut, images):
    calibration, _ = images
    equalized = quantization.equalize_instance_norm(shortcut, calibration)
    assert equalized.pairs == [] and equalized.generator is shortcut
    assert equalized.psnr_db < quantization.EQUALIZE_MIN_PSNR
    with pytest.raises(
        quantization.LossyInt8Error,
        match=r"'G_shortcut' would be lossy.*differs from it by \d+\.\d dB PSNR < 60 dB"
        r".*allow_lossy_int8=True \(CLI: --allow-lossy-int8\)",
    ):
        tflite.convert_tflite(shortcut, "int8", representative_images=calibration)


def test_allow_lossy_int8_writes_it_and_says_why(shortcut, images):
    calibration, _ = images
    flatbuffer = tflite.convert_tflite(
        shortcut, "int8", representative_images=calibration, allow_lossy_int8=True
    )
    metadata = export.read_tflite_metadata(flatbuffer)
    assert metadata["equalized_norms"] == 0
    assert "dB PSNR < 60 dB" in metadata["equalization_refused"]


def _image_folder(path, images):
    from PIL import Image

    path.mkdir()
    for i, image in enumerate(images):
        pixels = np.clip(np.round((image[0] + 1.0) * 127.5), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path / f"{i}.png")
    return path


def test_export_fails_the_lossy_int8_file_unless_allowed(shortcut, images, tmp_path):
    from tfcyclegan import cli

    calibration, _ = images
    folder = _image_folder(tmp_path / "photos", calibration)
    model_path = tmp_path / "shortcut.keras"
    shortcut.save(model_path)
    argv = ["export", "--model", str(model_path), "--format", "tflite", "--tflite-mode", "fp32",
            "--tflite-mode", "int8", "--tflite-io", "float32", "--representative-data", str(folder),
            "--no-parity"]
    refused = tmp_path / "refused"
    assert cli.main([*argv, "--out", str(refused)]) != 0
    assert sorted(p.name for p in (refused / "tflite").iterdir()) == ["cyclegan_a2b_fp32.tflite"]
    report = json.loads((refused / "export_report.json").read_text())
    assert len(report["errors"]) == 1
    assert report["errors"][0].startswith("a2b/tflite/int8: Full int8 of generator 'G_shortcut'")

    allowed = tmp_path / "allowed"
    assert cli.main([*argv, "--out", str(allowed), "--allow-lossy-int8"]) == 0
    assert (allowed / "tflite" / "cyclegan_a2b_int8.tflite").is_file()
    report = json.loads((allowed / "export_report.json").read_text())
    assert report["errors"] == []
    assert any("a2b/tflite/int8 is lossy full int8 (allow_lossy_int8)" in n for n in report["notes"])
