"""ResNet generators that start as the identity (`global_skip`, `layers.GlobalSkip`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcyclegan.config import Config, ModelConfig
from tfcyclegan.export import tflite
from tfcyclegan.export.parity import psnr
from tfcyclegan.export.runtime import TFLiteRunner
from tfcyclegan.models import translate_with
from tfcyclegan.networks import MobileResnetGenerator, ResnetGenerator, build_generator

MODES = ("transpose", "resize_conv", "antialias")


def skip_generator(cls=ResnetGenerator, **kwargs):
    return cls(**{"ngf": 4, "n_blocks": 1, "seed": 0, "global_skip": True, **kwargs})


def nudge_head(generator, scale=0.05, seed=1):
    """Gives the zero-initialized head small weights, as a little training would."""
    head = generator.get_layer("head_conv")
    rng = np.random.default_rng(seed)
    head.set_weights([rng.normal(0, scale, w.shape).astype("float32") for w in head.get_weights()])


@pytest.mark.parametrize("color_branch", [False, True])
@pytest.mark.parametrize("cls", [ResnetGenerator, MobileResnetGenerator])
@pytest.mark.parametrize("mode", MODES)
def test_starts_as_the_identity(cls, mode, color_branch, rng):
    x = rng.uniform(-1, 1, (2, 16, 24, 3)).astype("float32")
    generator = skip_generator(cls, upsample=mode, color_branch=color_branch)
    np.testing.assert_array_equal(np.asarray(generator(x)), x)


def test_the_color_branch_is_per_pixel_and_sees_absolute_colour(rng):
    generator = skip_generator(color_branch=True, init_type="kaiming")
    change = generator.get_layer("color_change")
    change.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in change.get_weights()])
    # Without the ResNet branch (its head at zero) the output is a function of each pixel's colour.
    x = rng.uniform(-1, 1, (1, 16, 16, 3)).astype("float32")
    order = rng.permutation(16 * 16)
    shuffled = x.reshape(1, -1, 3)[:, order].reshape(x.shape)
    out, out_shuffled = np.asarray(generator(x)), np.asarray(generator(shuffled))
    np.testing.assert_allclose(out.reshape(1, -1, 3)[:, order].reshape(x.shape), out_shuffled, atol=1e-6)
    # A colour cast of the whole image changes the change (instance norm would remove it).
    assert not np.allclose(np.asarray(generator(x + 0.2)) - (x + 0.2), out - x, atol=1e-3)


def test_only_the_head_starts_differently_and_outputs_stay_in_range(rng):
    plain = ResnetGenerator(ngf=4, n_blocks=1, seed=0)
    skip = skip_generator()
    for a, b in zip(plain.weights, skip.weights):
        if "head_conv" in a.path:
            assert not np.any(b.numpy())
        else:  # the other layers draw the same initial weights
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    nudge_head(skip, scale=5.0)
    out = np.asarray(skip(rng.uniform(-1, 1, (1, 16, 16, 3)).astype("float32")))
    assert out.min() >= -1.0 and out.max() <= 1.0 and out.min() == -1.0 and out.max() == 1.0


def test_gradients_reach_every_weight(rng):
    generator = skip_generator()
    x = tf.constant(rng.uniform(-1, 1, (1, 16, 16, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(generator(x, training=True) - 0.5))
    gradients = tape.gradient(loss, generator.trainable_weights)
    head = [g for w, g in zip(generator.trainable_weights, gradients) if "head_conv" in w.path]
    # At zero the head learns first; the layers before it get gradients once it has moved.
    assert all(np.any(g.numpy()) for g in head)
    nudge_head(generator)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(generator(x, training=True) - 0.5))
    assert all(np.any(g.numpy()) for g in tape.gradient(loss, generator.trainable_weights))


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="same channels.*input_channels=3, output_channels=1"):
        skip_generator(output_channels=1)
    with pytest.raises(ValueError, match="needs `global_skip=True`"):
        skip_generator(global_skip=False, color_branch=True)
    with pytest.raises(ValueError, match="global_skip=1"):
        ModelConfig(global_skip=1)
    with pytest.raises(ValueError, match="`global_skip` is for ResNet generators; unet_128"):
        build_generator(ModelConfig(generator="unet_128", global_skip=True), 3, 3)
    with pytest.raises(ValueError, match="`global_skip` is for ResNet generators; color"):
        ModelConfig(generator="color", global_skip=True)
    with pytest.raises(ValueError, match="needs `global_skip=True`.*color_branch=True, global_skip=False"):
        ModelConfig(generator="unet_128", color_branch=True)


def test_config_builds_it_and_the_keras_file_round_trips(tmp_path, rng):
    config = ModelConfig(generator="resnet_1blocks", ngf=4, upsample="resize_conv", global_skip=True,
                         color_branch=True)
    assert Config.from_dict(Config(model=config).to_dict()).model.color_branch is True
    generator = build_generator(config, 3, 3, seed=0, name="G")
    nudge_head(generator)
    generator.save(tmp_path / "g.keras")
    loaded = keras.saving.load_model(tmp_path / "g.keras")
    assert loaded.global_skip is True
    x = rng.uniform(-1, 1, (2, 16, 20, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(generator(x)))


@pytest.mark.slow
@pytest.mark.parametrize("mode, min_psnr", [("fp32", 60.0), ("fp16", 45.0), ("int8", 30.0)])
def test_exports_to_tflite_with_builtin_ops(mode, min_psnr, rng):
    generator = skip_generator(upsample="resize_conv", ngf=8, color_branch=True, init_type="kaiming")
    nudge_head(generator)
    change = generator.get_layer("color_change")
    change.set_weights([np.full(w.shape, 0.02, "float32") for w in change.get_weights()])
    images = rng.uniform(-1, 1, (6, 1, 32, 32, 3)).astype("float32")
    flatbuffer = tflite.convert_tflite(generator, mode, representative_images=list(images[:4]),
                                       input_size=(32, 32))
    tflite.check_builtin_ops(flatbuffer)
    inputs = images[4:, 0]
    assert psnr(TFLiteRunner(flatbuffer, num_threads=1)(inputs), translate_with(generator, inputs)) > min_psnr


def test_discriminators_can_have_their_own_norm():
    from tfcyclegan.layers import InstanceNormalization
    from tfcyclegan.networks import build_discriminator

    def norms(config):
        return sum(isinstance(layer, InstanceNormalization) for layer in build_discriminator(config, 3).layers)

    assert norms(ModelConfig(ndf=4)) == 3  # the 70x70 PatchGAN: after its 2nd, 3rd and 4th conv
    assert norms(ModelConfig(ndf=4, d_norm="none")) == 0
    assert ModelConfig(d_norm="none").norm == "instance"  # the generators keep theirs
    with pytest.raises(ValueError, match="d_norm='group'"):
        ModelConfig(d_norm="group")
