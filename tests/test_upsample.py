"""ResnetGenerator(upsample=...): resize-convolution and CUT's anti-aliased sampling.

Also the blur layers against straightforward numpy versions of CUT's
`Downsample` / `Upsample` (taesungp/contrastive-unpaired-translation,
`models/networks.py`), and `quality.checkerboard_score`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcyclegan import export
from tfcyclegan.config import ModelConfig
from tfcyclegan.layers import BlurPool2D, Upsampling2x
from tfcyclegan.networks import ResnetGenerator, build_generator, size_requirement
from tfcyclegan.quality import checkerboard_score, period2_fraction
from tfcyclegan.torch_import import export_state_dict, load_state_dict

MODES = ("transpose", "resize_conv", "antialias")
NEW_MODES = ("resize_conv", "antialias")


def tiny(mode, **kwargs):
    kwargs = {"ngf": 4, "n_blocks": 1, "seed": 0, **kwargs}
    return ResnetGenerator(upsample=mode, **kwargs)


# --- numpy versions of CUT's blur layers (NHWC, float64) ----------------------

def _binomial(size):
    row = {3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}[size]
    filt = np.outer(row, row)
    return filt / filt.sum()


def cut_downsample(x):
    """CUT's Downsample(filt_size=3, stride=2, pad_type='reflect')."""
    x = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    filt = _binomial(3)
    out_h, out_w = (x.shape[1] - 3) // 2 + 1, (x.shape[2] - 3) // 2 + 1
    out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
            out[:, i, j, :] = np.einsum("nhwc,hw->nc", patch, filt)
    return out


def cut_upsample(x):
    """CUT's Upsample(filt_size=4, stride=2, pad_type='repl'), step by step.

    replicate pad 1 -> conv_transpose2d(filter * stride**2, stride 2,
    padding 1 + pad_size = 2) -> [1:, 1:] -> [:-1, :-1] (even filter).
    """
    x = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="edge")
    filt = _binomial(4) * 4
    n, h, w, c = x.shape
    full = np.zeros((n, 2 * (h - 1) + 4, 2 * (w - 1) + 4, c))
    for i in range(h):
        for j in range(w):
            full[:, 2 * i : 2 * i + 4, 2 * j : 2 * j + 4, :] += (
                x[:, i, j, None, None, :] * filt[None, :, :, None]
            )
    full = full[:, 2:-2, 2:-2, :]  # conv_transpose2d's padding=2
    return full[:, 1:, 1:, :][:, :-1, :-1, :]


@pytest.mark.parametrize("shape", [(2, 8, 12, 3), (1, 6, 6, 2)])
@pytest.mark.parametrize("training", [False, True])
def test_blur_pool_matches_cuts_downsample(rng, shape, training):
    x = rng.normal(size=shape).astype("float32")
    got = np.asarray(BlurPool2D()(x, training=training))
    np.testing.assert_allclose(got, cut_downsample(x.astype(np.float64)), atol=1e-6)
    assert got.shape == (shape[0], shape[1] // 2, shape[2] // 2, shape[3])


def test_bilinear_upsampling_matches_cuts_upsample(rng):
    x = rng.normal(size=(2, 5, 7, 3)).astype("float32")
    expected = cut_upsample(x.astype(np.float64))
    assert expected.shape == (2, 10, 14, 3)
    np.testing.assert_allclose(np.asarray(Upsampling2x("bilinear")(x)), expected, atol=1e-6)


def test_nearest_upsampling_repeats_pixels(rng):
    x = rng.normal(size=(2, 3, 5, 4)).astype("float32")
    expected = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(np.asarray(Upsampling2x("nearest")(x)), expected)


# --- the generator ------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [(8, 8), (20, 36), (48, 32)])
def test_output_shapes_at_several_sizes(mode, size):
    net = tiny(mode)
    x = np.zeros((2, *size, 3), "float32")
    assert tuple(net(x).shape) == (2, *size, 3)
    assert tuple(net(x, training=True).shape) == (2, *size, 3)
    assert size_requirement(net) == (4, 8)


@pytest.mark.parametrize("mode", NEW_MODES)
def test_sizes_that_are_not_multiples_of_4_are_named(mode):
    with pytest.raises(ValueError, match=r"multiples of 4 .* Received: height=30"):
        tiny(mode)(np.zeros((1, 30, 32, 3), "float32"))


def test_every_option_has_the_same_parameters():
    counts = {mode: ResnetGenerator(ngf=8, n_blocks=2, upsample=mode).count_params() for mode in MODES}
    assert len(set(counts.values())) == 1, counts
    layers = {mode: [layer.name for layer in tiny(mode).layers] for mode in MODES}
    assert "up0_resize" in layers["resize_conv"] and "down1_blur" in layers["antialias"]
    assert "up0_crop" in layers["transpose"] and "up0_crop" not in layers["antialias"]


def test_bad_upsample_is_named():
    with pytest.raises(ValueError, match=r"`upsample` must be one of .* upsample='bilinear'"):
        ResnetGenerator(upsample="bilinear")
    with pytest.raises(ValueError, match=r"interpolation='bicubic'"):
        Upsampling2x("bicubic")


@pytest.mark.parametrize("mode", MODES)
def test_build_generator_honours_config_upsample(mode):
    config = ModelConfig(generator="resnet_1blocks", ngf=4, upsample=mode)
    net = build_generator(config, 3, 3, seed=0)
    assert net.upsample == mode and net.get_config()["upsample"] == mode


def test_unet_refuses_other_upsampling():
    config = ModelConfig(generator="unet_128", ngf=4, upsample="resize_conv")
    with pytest.raises(ValueError, match=r"unet_128 uses transposed .* upsample='resize_conv'"):
        build_generator(config, 3, 3)


@pytest.mark.parametrize("mode", NEW_MODES)
def test_config_and_keras_file_round_trip(mode, tmp_path, rng):
    net = tiny(mode, name="G")
    clone = ResnetGenerator.from_config(net.get_config())
    assert clone.get_config() == net.get_config()
    x = rng.uniform(-1, 1, (2, 16, 24, 3)).astype("float32")
    net.save(tmp_path / "g.keras")
    loaded = keras.saving.load_model(tmp_path / "g.keras")
    assert loaded.upsample == mode
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(net(x)))


@pytest.mark.parametrize("mode", NEW_MODES)
def test_training_path_equals_inference_path(mode, rng):
    # Reflection padding and instance norm take other ops in training.
    net = tiny(mode)
    x = rng.uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(net(x, training=True)), np.asarray(net(x)), atol=1e-5
    )


@pytest.mark.parametrize("policy, atol", [("mixed_float16", 1e-2), ("mixed_bfloat16", 6e-2)])
@pytest.mark.parametrize("mode", NEW_MODES)
def test_mixed_precision(mode, policy, atol, rng):
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    reference = ResnetGenerator(ngf=8, n_blocks=2, upsample=mode)
    expected = np.asarray(reference(x))
    keras.config.set_dtype_policy(policy)
    mixed = ResnetGenerator(ngf=8, n_blocks=2, upsample=mode)
    mixed.set_weights(reference.get_weights())
    for training in (False, True):
        output = mixed(x, training=training)
        assert output.dtype == "float32"
        assert np.isfinite(np.asarray(output)).all()
        np.testing.assert_allclose(np.asarray(output), expected, atol=atol)


@pytest.mark.parametrize("mode", NEW_MODES)
def test_gradients_reach_every_weight(mode, rng):
    net = tiny(mode)
    x = tf.constant(rng.uniform(-1, 1, (1, 16, 16, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(net(x, training=True) - 0.5))
    grads = tape.gradient(loss, net.trainable_weights)
    assert all(g is not None for g in grads)
    assert not net.non_trainable_weights  # the blur filters are constants


@pytest.mark.parametrize("mode", NEW_MODES)
def test_torch_state_dicts_are_refused(mode):
    net = tiny(mode, name="G")
    with pytest.raises(ValueError, match=rf"upsample='transpose' .* upsample='{mode}'"):
        export_state_dict(net)
    with pytest.raises(ValueError, match=rf"upsample='{mode}'"):
        load_state_dict(net, export_state_dict(tiny("transpose")))


# --- checkerboard -------------------------------------------------------------

def decoder(net):
    """The generator after its residual blocks: upsampling and head."""
    return keras.Model(net.get_layer("block0").output, net.output)


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_constant_features_give_a_checkerboard_only_with_transpose(norm, rng):
    # A constant feature map (random per channel) into the upsampling path.
    features = np.broadcast_to(rng.normal(size=(1, 1, 1, 16)), (1, 8, 8, 16)).astype("float32")
    scores = {}
    for mode in MODES:
        # Random weights of unit scale, so the transposed conv's overlap pattern is visible.
        net = tiny(mode, norm=norm, init_gain=1.0)
        output = np.asarray(decoder(net)(features))
        scores[mode] = checkerboard_score(output)
        if mode == "resize_conv":
            # Nearest x2 of a constant is constant; reflection-padded convs keep it so.
            np.testing.assert_allclose(output, output[:, :1, :1, :] * np.ones_like(output), atol=1e-6)
    # Measured ~0.3: the first transposed conv adds period 4 as well, off the lines.
    assert scores["transpose"] > 0.2, scores
    assert scores["resize_conv"] == 0.0
    # antialias zero-pads its convolutions (as CUT): border effects, no period 2.
    assert scores["antialias"] < 0.2 * scores["transpose"], scores


def test_checkerboard_score_definition(rng):
    y, x = np.mgrid[:16, :24]
    board = ((-1.0) ** (y + x))[None, :, :, None]
    stripes = ((-1.0) ** y)[None, :, :, None] * np.ones((1, 1, 1, 3))
    smooth = np.sin(2 * np.pi * x / 24)[None, :, :, None]
    np.testing.assert_allclose(period2_fraction(board), [1.0])
    np.testing.assert_allclose(period2_fraction(stripes), [1.0])
    np.testing.assert_allclose(period2_fraction(smooth), [0.0], atol=1e-12)
    assert checkerboard_score(np.zeros((16, 24, 3))) == 0.0
    # White noise: about (H + W - 1) / (H W - 1) of its energy on the lines.
    noise = rng.normal(size=(64, 16, 24, 1))
    assert abs(checkerboard_score(noise) - 39 / 383) < 0.02
    # Relative to a reference: adding a checkerboard raises the ratio above 1.
    truth = smooth + 0.1 * rng.normal(size=(1, 16, 24, 1))
    assert checkerboard_score(truth, reference=truth) == pytest.approx(1.0)
    assert checkerboard_score(truth + 0.2 * board, reference=truth) > 2.0


def test_checkerboard_score_errors():
    with pytest.raises(ValueError, match="even heights and widths"):
        checkerboard_score(np.zeros((1, 15, 16, 3)))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        checkerboard_score(np.zeros((16, 16)))
    with pytest.raises(ValueError, match="height and width of `images`"):
        checkerboard_score(np.ones((1, 16, 16, 3)), reference=np.ones((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="no period-2 energy"):
        checkerboard_score(np.random.rand(1, 16, 16, 3), reference=np.ones((1, 16, 16, 3)))


# --- export -------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_tflite_builtin_ops_dynamic_sizes_and_parity(mode, rng):
    from ai_edge_litert.interpreter import Interpreter

    net = tiny(mode)
    flatbuffer = export.convert_tflite(net, default_input_size=(32, 32))
    ops = export.check_builtin_ops(flatbuffer)
    assert "MIRROR_PAD" not in ops
    # Dynamic-size files upsample without TRANSPOSE_CONV (XNNPACK drops it at run-time
    # shapes): transposed convolutions are exported in sub-pixel form (kernels/subpixel.py).
    assert "TRANSPOSE_CONV" not in ops
    if mode == "antialias":
        assert {"DEPTHWISE_CONV_2D", "RESIZE_BILINEAR"} <= set(ops)
    else:  # resize_conv's nearest x2, the transposed convolutions' sub-pixel shuffle
        assert "DEPTH_TO_SPACE" in ops
    runner = Interpreter(model_content=flatbuffer, num_threads=1).get_signature_runner("translate")
    for height, width in ((32, 32), (24, 40)):
        x = rng.uniform(-1, 1, (1, height, width, 3)).astype("float32")
        output = runner(images=x)["output_images"]
        np.testing.assert_allclose(output, np.asarray(net(x)), atol=1e-4)


@pytest.mark.parametrize("mode", NEW_MODES)
def test_fixed_size_tflite_has_no_shape_arithmetic(mode):
    ops = export.tflite_ops(export.convert_tflite(tiny(mode), input_size=(32, 48)))
    assert "SHAPE" not in ops


@pytest.mark.parametrize("mode", NEW_MODES)
def test_saved_model_dynamic_sizes(mode, tmp_path, rng):
    from tfcyclegan.export.saved_model import export_saved_model

    net = tiny(mode)
    version = export_saved_model(net, tmp_path, model_name="g")
    translator = export.load_translator(version)
    for height, width in ((16, 16), (20, 28)):
        x = rng.uniform(-1, 1, (2, height, width, 3)).astype("float32")
        np.testing.assert_allclose(translator(x), np.asarray(net(x)), atol=1e-5)
