"""CUT / FastCUT: PatchNCE against a written-out numpy reference, the sampler, training, round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcyclegan.config import ModelConfig
from tfcyclegan.models.cut import CUT, PatchSampler, encoder_layer_names, patch_nce_loss
from tfcyclegan.networks import ResnetGenerator


def numpy_patch_nce(q, k, temperature, batch):
    """CUT's eq. 2 written out: for each patch, -log softmax of the positive among
    [q_i.k_i, q_i.k_j (j != i, same image), and -10 in place of j == i]."""
    losses = []
    patches = len(q) // batch
    for b in range(batch):
        qb, kb = q[b * patches : (b + 1) * patches], k[b * patches : (b + 1) * patches]
        for i in range(patches):
            negatives = [(-10.0 if j == i else float(qb[i] @ kb[j])) for j in range(patches)]
            logits = np.array([float(qb[i] @ kb[i])] + negatives) / temperature
            losses.append(np.log(np.sum(np.exp(logits - logits.max()))) + logits.max() - logits[0])
    return np.array(losses)


def normalised(rng, shape):
    x = rng.normal(size=shape)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("batch, patches, temperature", [(1, 5, 0.07), (3, 4, 0.07), (2, 6, 0.5)])
def test_patch_nce_equals_the_formula(rng, batch, patches, temperature):
    q, k = normalised(rng, (batch * patches, 8)), normalised(rng, (batch * patches, 8))
    ours = patch_nce_loss(q, k, temperature, batch).numpy()
    np.testing.assert_allclose(ours, numpy_patch_nce(q, k, temperature, batch), rtol=1e-5, atol=1e-5)


def test_patch_nce_is_low_when_queries_match_their_keys(rng):
    k = normalised(rng, (16, 32))
    matched = patch_nce_loss(k, k, 0.07).numpy().mean()
    shuffled = patch_nce_loss(k[::-1], k, 0.07).numpy().mean()
    assert matched < 0.1 < shuffled


def test_patch_nce_does_not_differentiate_the_keys(rng):
    q, k = tf.Variable(normalised(rng, (6, 4))), tf.Variable(normalised(rng, (6, 4)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(patch_nce_loss(q, k))
    grad_q, grad_k = tape.gradient(loss, [q, k])
    assert grad_k is None and np.abs(grad_q.numpy()).sum() > 0


def test_sampler_shares_positions_and_normalises(rng):
    sampler = PatchSampler([3, 5], units=16, seed=0)
    sampler.build()
    features = [tf.constant(rng.normal(size=(2, 4, 4, 3)), tf.float32),
                tf.constant(rng.normal(size=(2, 2, 2, 5)), tf.float32)]
    ids = sampler.sample_ids(features, 6, tf.constant([1, 2]))
    assert [int(tf.size(i)) for i in ids] == [6, 4]  # capped at 2x2 positions
    assert len(set(ids[0].numpy().tolist())) == 6  # distinct positions
    outputs = sampler(features, ids)
    assert [tuple(o.shape) for o in outputs] == [(12, 16), (8, 16)]
    # x / (|x| + 1e-7), as the authors' Normalize: with N(0, 0.02) weights |x| is ~3e-3.
    np.testing.assert_allclose(np.linalg.norm(outputs[0].numpy(), axis=-1), 1.0, rtol=1e-4)
    # The same ids give the same positions for another set of maps (query i <-> key i).
    again = sampler(features, ids)
    np.testing.assert_allclose(again[1].numpy(), outputs[1].numpy())


@pytest.mark.parametrize(
    "upsample, expected",
    [
        ("transpose", ["stem_pad", "down0_conv", "down1_norm", "block2", "block6"]),
        ("antialias", ["stem_pad", "down0_conv", "down1_conv", "block0", "block4"]),
    ],
)
def test_encoder_layers_are_the_authors_indices(upsample, expected):
    generator = ResnetGenerator(ngf=4, n_blocks=9, upsample=upsample)
    assert encoder_layer_names(generator) == expected
    with pytest.raises(ValueError, match="nce_layers"):
        encoder_layer_names(generator, (0, 40))


def tiny_cut(mode="cut", seed=0):
    config = ModelConfig(generator="resnet_1blocks", ngf=4, ndf=4, discriminator="n_layers", n_layers_d=1)
    model = CUT.from_model_config(config, mode=mode, seed=seed, nce_layers=(0, 4, 8, 10), num_patches=16,
                                  units=8)
    model.compile()
    return model


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["cut", "fastcut"])
def test_cut_and_fastcut_train_with_plain_fit(rng, mode):
    model = tiny_cut(mode)
    x = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    y = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    before = [w.numpy().copy() for w in model.H.weights]
    history = model.fit(x, y, batch_size=2, epochs=2, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert any(np.abs(w.numpy() - b).max() > 0 for w, b in zip(model.H.weights, before))  # H learns
    # CUT has the identity NCE term on Y, FastCUT does not (and weighs NCE 10).
    assert (history.history["NCE_Y"][-1] > 0) == (mode == "cut")
    assert model.objective["lambda_nce"] == (1.0 if mode == "cut" else 10.0)


def test_evaluate_computes_the_losses_without_updates_or_randomness(rng):
    model = tiny_cut()
    x = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    y = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    before = [w.numpy().copy() for w in model.weights]
    first = model.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    second = model.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    assert first == second and all(first[name] > 0 for name in ("G_GAN", "NCE", "NCE_Y", "D_real", "D_fake"))
    assert all(np.array_equal(w.numpy(), b) for w, b in zip(model.weights, before))
    fake = model.G(x)  # the NCE term is the formula's on fixed positions
    assert first["NCE"] == pytest.approx(float(model.nce_loss(x, fake, training=False)), rel=1e-5)


@pytest.mark.slow
def test_cut_round_trips_through_a_keras_file(rng, tmp_path):
    model = tiny_cut()
    x = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    model.fit(x, x, batch_size=2, epochs=1, verbose=0)
    path = tmp_path / "cut.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.translate(x), model.translate(x), atol=1e-6)
    assert loaded.objective == model.objective and loaded.nce_layers == model.nce_layers


@pytest.mark.slow
def test_checkpoint_restores_the_next_step_exactly(rng, tmp_path):
    x = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    first = tiny_cut(seed=1)
    first.train_on_batch(x, x)
    first.training_checkpoint().write(str(tmp_path / "ckpt"))
    expected = first.train_on_batch(x, x, return_dict=True)
    second = tiny_cut(seed=7)
    second.training_checkpoint().read(str(tmp_path / "ckpt")).assert_existing_objects_matched()
    got = second.train_on_batch(x, x, return_dict=True)
    for name in ("NCE", "G_GAN", "D_real"):
        assert got[name] == pytest.approx(expected[name], rel=1e-4), name


def test_a_generator_too_small_for_the_authors_layers_is_refused_with_layers_that_fit():
    config = ModelConfig(method="fastcut", generator="resnet_4blocks", upsample="antialias", ngf=4, ndf=4,
                         discriminator="n_layers", n_layers_d=1)
    # Anti-aliased with 4 blocks, the encoder has layers 0 to 15: the authors' 16 is out.
    with pytest.raises(ValueError, match=r"index 16 is outside .* \(tfcyclegan train: --nce-layers 0,4,8,12\)"):
        CUT.from_model_config(config, mode="fastcut")
    model = CUT.from_model_config(config.replace(nce_layers=(0, 4, 8, 12)), mode="fastcut")
    assert model.nce_layers == (0, 4, 8, 12)  # from the config
    assert CUT.from_model_config(config, mode="fastcut", nce_layers=(0, 4)).nce_layers == (0, 4)


def test_a_generator_without_a_resnet_encoder_is_refused():
    config = ModelConfig(method="cut", generator="color", ngf=4, ndf=4, discriminator="n_layers", n_layers_d=1)
    with pytest.raises(ValueError, match=r"encoder features of a ResNet generator .* ColorGenerator 'G' has no"):
        CUT.from_model_config(config)


def test_bad_arguments_are_refused():
    generator = ResnetGenerator(ngf=4, n_blocks=1)
    discriminator = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(1, 3)])
    with pytest.raises(ValueError, match="mode='cyclegan'"):
        CUT(generator, discriminator, mode="cyclegan")
    with pytest.raises(ValueError, match="num_patches=0"):
        CUT(generator, discriminator, num_patches=0)
    # The authors' layers 12 and 16 are residual blocks 1 and 5 (0-based 2, 6): one block is too few.
    with pytest.raises(ValueError, match=r"index 12 is outside the generator's encoder \(0 to 10\)"):
        CUT(generator, discriminator)
    model = CUT(generator, discriminator, nce_layers=(0, 4, 8))
    with pytest.raises(ValueError, match="direction='b2a'"):
        model.translate(np.zeros((8, 8, 3)), "b2a")


def test_networks_and_config_of_the_wrong_type_are_refused():
    generator = ResnetGenerator(ngf=4, n_blocks=1)
    with pytest.raises(ValueError, match="`discriminator` must be a keras.Model. Received: discriminator='D'"):
        CUT(generator, "D", nce_layers=(0, 4))
    with pytest.raises(ValueError, match="`config` must be a ModelConfig. Received: dict"):
        CUT.from_model_config({"generator": "resnet_1blocks"})


def test_both_weights_zero_is_refused():
    model = tiny_cut()
    with pytest.raises(ValueError, match="lambda_nce=0.0, lambda_gan=0.0"):
        model.compile(lambda_gan=0.0, lambda_nce=0.0)


def test_without_the_gan_term_the_discriminator_is_neither_called_nor_trained(rng):
    model = tiny_cut()
    model.compile(lambda_gan=0.0)
    before = [w.numpy().copy() for w in model.D.weights]
    x = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    y = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    logs = model.fit(x, y, batch_size=2, epochs=1, verbose=0).history
    for weight, old in zip(model.D.weights, before):
        np.testing.assert_array_equal(weight.numpy(), old)
    assert int(model.discriminator_groups[0][0].iterations) == 0
    assert logs["G_GAN"][-1] == logs["D_real"][-1] == logs["D_fake"][-1] == 0.0
    assert logs["NCE"][-1] > 0


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_cut_trains_in_mixed_precision_with_float32_losses_and_variables(tmp_path, policy):
    from tfcyclegan import training
    from tfcyclegan.config import Config, DataConfig
    from tfcyclegan.synthetic import make_demo_dataset

    data = make_demo_dataset(tmp_path / "data", n_train=4, n_test=2, size=32)
    config = Config.for_method("cut")
    config = config.replace(
        model=config.model.replace(generator="resnet_5blocks", ngf=4, ndf=4, discriminator="n_layers",
                                   n_layers_d=1),
        data=DataConfig(load_size=36, crop_size=32, batch_size=1),
        train=config.train.replace(epochs=1, epochs_decay=0, steps_per_epoch=3, seed=1, num_samples=1,
                                   mixed_precision=policy, checkpoint_every=0),
    )
    try:
        result = training.train(config, tmp_path / "run", training.DataSpec(data=str(data)), verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model = result.model
    assert all(np.isfinite(values[-1]) for values in result.history.values())
    half = policy.split("_")[1]
    assert {layer.compute_dtype for layer in model.G.layers if layer.weights} == {half}
    # float16 trains with loss scaling (its gradients underflow otherwise); bfloat16 needs none.
    wrapped = [isinstance(o, keras.optimizers.LossScaleOptimizer) for o in model.optimizers]
    assert wrapped == [policy == "mixed_float16"] * 2
    assert all(w.dtype == "float32" for w in model.G.weights + model.H.weights + model.D.weights)
    x = np.zeros((1, 32, 32, 3), np.float32)
    assert model.translate(x).dtype == np.float32  # deployable output stays float32
