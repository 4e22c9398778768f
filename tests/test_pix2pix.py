"""Pix2Pix: training, the paper's variants, serialization, checkpoints, errors.

Tiny models (32 px U-Net, ngf 4); the step's exactness against the authors'
code is in test_reference_steps.py.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcyclegan.config import ModelConfig
from tfcyclegan.models import Pix2Pix
from tfcyclegan.models.base import TorchAdam
from tfcyclegan.models.pix2pix import METRICS
from tfcyclegan.networks import PatchDiscriminator, UnetGenerator

SIZE = 32


def tiny_model(conditional=True, x_channels=3, y_channels=3, seed=0, **compile_kwargs):
    G = UnetGenerator(x_channels, y_channels, num_downs=5, ngf=4, norm="batch", seed=seed, name="G")
    d_channels = x_channels + y_channels if conditional else y_channels
    D = PatchDiscriminator(d_channels, ndf=4, n_layers=2, norm="batch", seed=seed + 1, name="D")
    model = Pix2Pix(G, D, conditional=conditional)
    model.compile(**compile_kwargs)
    return model


def pairs(n=4, batch=2, seed=0, x_channels=3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, SIZE, SIZE, x_channels)).astype("float32")
    y = np.tanh(x[..., :1] * 2 + x[..., -1:]).repeat(3, axis=-1)  # a pixelwise mapping
    return tf.data.Dataset.from_tensor_slices((x, y.astype("float32"))).batch(batch)


def values(variables):
    return [v.numpy().copy() for v in variables]


def same(before, variables):
    return all(np.array_equal(a, b.numpy()) for a, b in zip(before, variables))


@pytest.mark.slow
def test_fit_trains_both_networks_and_reports_every_loss():
    model = tiny_model()
    g_before, d_before = values(model.G.weights), values(model.D.weights)
    history = model.fit(pairs(), epochs=1, verbose=0).history
    assert sorted(history) == sorted(METRICS)
    assert all(np.isfinite(v[-1]) and v[-1] > 0 for v in history.values())
    assert not same(g_before, model.G.weights) and not same(d_before, model.D.weights)
    assert [int(o.iterations.numpy()) for o in model.optimizers] == [2, 2]
    logs = model.evaluate(pairs(), verbose=0, return_dict=True)
    assert logs["total"] == pytest.approx(logs["G_GAN"] + logs["G_L1"], rel=1e-5)


def test_evaluate_changes_nothing():
    model = tiny_model()
    before = values(model.weights)
    model.evaluate(pairs(), verbose=0)
    assert same(before, model.weights)  # moving statistics included


def test_l1_only_leaves_the_discriminator_untouched():
    model = tiny_model(lambda_gan=0.0)
    d_before, g_before = values(model.D.weights), values(model.G.trainable_weights)
    history = model.fit(pairs(), verbose=0).history
    assert same(d_before, model.D.weights)  # weights and moving statistics
    assert int(model.optimizers[1].iterations.numpy()) == 0
    assert not same(g_before, model.G.trainable_weights)
    assert history["G_GAN"][-1] == history["D_real"][-1] == history["D_fake"][-1] == 0.0
    assert history["G_L1"][-1] > 0


def test_cgan_only_has_no_l1_term():
    model = tiny_model(lambda_l1=0.0)
    logs = model.evaluate(pairs(), verbose=0, return_dict=True)
    assert logs["G_L1"] == 0.0 and logs["G_GAN"] > 0 and logs["total"] == logs["G_GAN"]


def test_weights_scale_the_terms():
    data = pairs()
    base_logs = tiny_model().evaluate(data, verbose=0, return_dict=True)
    logs = tiny_model(lambda_l1=10.0, lambda_gan=2.0).evaluate(data, verbose=0, return_dict=True)
    assert logs["G_L1"] == pytest.approx(base_logs["G_L1"] / 10, rel=1e-5)
    assert logs["G_GAN"] == pytest.approx(2 * base_logs["G_GAN"], rel=1e-5)


@pytest.mark.parametrize("gan_mode", ["lsgan", "hinge"])
def test_other_gan_modes_train(gan_mode):
    model = tiny_model(gan_mode=gan_mode)
    history = model.fit(pairs(2, 2), verbose=0).history
    assert all(np.isfinite(v[-1]) for v in history.values())


@pytest.mark.parametrize("conditional, d_channels", [(True, 1 + 3), (False, 3)])
def test_discriminator_judges_x_and_y_or_y_alone(conditional, d_channels):
    config = ModelConfig(
        generator="resnet_1blocks", ngf=4, ndf=4, discriminator="n_layers", n_layers_d=1,
        norm="batch", input_channels=1, output_channels=3,
    )
    model = Pix2Pix.from_model_config(config, conditional=conditional, seed=1)
    assert model.D.input_shape[-1] == d_channels
    assert (model.G.input_shape[-1], model.G.output_shape[-1]) == (1, 3)
    model.compile()
    data = tf.data.Dataset.from_tensors(
        (np.zeros((1, 16, 16, 1), "float32"), np.zeros((1, 16, 16, 3), "float32"))
    )
    assert np.isfinite(model.fit(data, verbose=0).history["D_fake"][-1])


def test_default_config_is_the_authors_pix2pix():
    from tfcyclegan.models.pix2pix import DEFAULT_CONFIG

    assert (DEFAULT_CONFIG.generator, DEFAULT_CONFIG.norm, DEFAULT_CONFIG.dropout) == (
        "unet_256", "batch", True)
    model = tiny_model()
    optimizer = model.optimizers[0]
    assert isinstance(optimizer, TorchAdam)
    assert float(optimizer.learning_rate) == pytest.approx(2e-4)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.5, 0.999, 1e-8)
    assert model.objective == {"gan_mode": "vanilla", "lambda_l1": 100.0, "lambda_gan": 1.0}


def test_torch_adam_steps_as_pytorch():
    # PyTorch's Adam on two steps, written out: eps after the bias correction.
    lr, b1, b2, eps = 2e-4, 0.5, 0.999, 1e-8
    gradients = [np.array([1e-3, -2e-7, 0.0, 5.0]), np.array([-1e-3, 3e-7, 0.0, 1.0])]
    variable = keras.Variable(np.zeros(4, "float32"))
    optimizer = TorchAdam(lr, beta_1=b1, beta_2=b2, epsilon=eps)
    expected, m, v = np.zeros(4), np.zeros(4), np.zeros(4)
    for t, g in enumerate(gradients, start=1):
        optimizer.apply([g.astype("float32")], [variable])
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
        expected -= lr / (1 - b1**t) * m / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-12)


def test_predict_is_g_and_translate_takes_any_size():
    model = tiny_model()
    x = np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), model.G(x), atol=1e-6)
    odd = x[:, :21, :30]
    out = model.translate(odd, direction="a2b")
    assert out.shape == odd.shape and np.abs(out).max() <= 1
    assert model.generator("x2y") is model.G


def test_keras_file_round_trip_translates_identically_and_keeps_compile_config(tmp_path):
    model = tiny_model(lambda_l1=50.0, gan_mode="lsgan")
    model.fit(pairs(), verbose=0)
    path = tmp_path / "pix2pix.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(1).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_array_equal(loaded.translate(x), model.translate(x))
    np.testing.assert_array_equal(
        loaded.D(np.concatenate([x, x], -1)), model.D(np.concatenate([x, x], -1))
    )
    assert loaded.conditional and loaded.objective == model.objective
    assert loaded.get_compile_config() == model.get_compile_config()
    assert isinstance(loaded.optimizers[1], TorchAdam)
    assert int(loaded.optimizer.iterations.numpy()) == 2


def test_config_round_trip():
    model = tiny_model(conditional=False)
    clone = Pix2Pix.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert not clone.conditional and clone.G.name == "G" and clone.D.input_shape[-1] == 3


def test_resume_from_training_checkpoint_equals_one_run(tmp_path):
    steps = list(pairs(8, 2, seed=3))

    def fresh():
        # Eager: three traced steps would take most of this test's time.
        return tiny_model(seed=5, run_eagerly=True)

    straight = fresh()
    for x, y in steps:
        straight.train_on_batch(x, y)

    first = fresh()
    for x, y in steps[:2]:
        first.train_on_batch(x, y)
    epoch = tf.Variable(7)
    path = first.training_checkpoint(epoch=epoch).write(str(tmp_path / "ckpt"))

    resumed = fresh()
    restored_epoch = tf.Variable(0)
    resumed.training_checkpoint(epoch=restored_epoch).read(path).assert_consumed()
    assert int(restored_epoch.numpy()) == 7
    assert [int(o.iterations.numpy()) for o in resumed.optimizers] == [2, 2]
    for x, y in steps[2:]:
        resumed.train_on_batch(x, y)
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_mixed_precision_trains_finitely():
    keras.config.set_dtype_policy("mixed_float16")
    model = tiny_model()
    assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in model.optimizers)
    history = model.fit(pairs(2, 2), verbose=0).history
    assert all(np.isfinite(v[-1]) for v in history.values())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m.compile(lambda_l1=-1.0), r"Received: lambda_l1=-1\.0"),
        (lambda m: m.compile(lambda_gan="1"), r"Received: lambda_gan='1'"),
        (lambda m: m.compile(lambda_l1=0, lambda_gan=0), "nothing to learn.*lambda_l1=0"),
        (lambda m: m.compile(gan_mode="wgan"), "Received: gan_mode='wgan'"),
        (lambda m: m.compile(generator_optimizer="adam"), "Received: 'adam'"),
        (lambda m: m.translate(np.zeros((8, 8, 3)), "b2a"), "one way.*direction='b2a'"),
        (lambda m: m.generator("y2x"), "Received: direction='y2x'"),
        (lambda m: Pix2Pix(m.G, m.D, conditional=False), "Received: a discriminator taking 6"),
        (lambda m: Pix2Pix(m.G, m.D, conditional=1), "Received: conditional=1"),
        (lambda m: Pix2Pix(m.G, "D"), "Received: discriminator='D'"),
        (lambda m: Pix2Pix.from_model_config({"ngf": 4}), "Received: dict"),
        (lambda m: m.fit(np.zeros((1, SIZE, SIZE, 3)), verbose=0), "Received: x=.*, y=None"),
    ],
)
def test_bad_arguments_are_named(call, match):
    model = tiny_model()
    with pytest.raises(ValueError, match=match):
        call(model)


def test_training_before_compile_is_refused():
    G = UnetGenerator(num_downs=5, ngf=4, norm="batch")
    model = Pix2Pix(G, PatchDiscriminator(6, ndf=4, n_layers=2, norm="batch"))
    with pytest.raises(RuntimeError, match="compile"):
        model.train_step((np.zeros((1, SIZE, SIZE, 3), "float32"),) * 2)
