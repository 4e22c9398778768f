"""DiffAugment (tfcyclegan.augment) and the models that apply it to what D sees."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_MODEL
from tfcyclegan import augment
from tfcyclegan.config import Config, TrainConfig
from tfcyclegan.models import CycleGAN

SIZE = 16


def test_policies_are_parsed_and_bad_ones_named():
    assert augment.parse_policy("translation, cutout") == ("translation", "cutout")
    assert augment.parse_policy(["color"]) == ("color",)
    assert augment.parse_policy("") == augment.parse_policy(None) == ()
    assert TrainConfig(diff_augment=" cutout,color").diff_augment == "cutout,color"
    for bad in ("blur", "cutout,cutout", 3):
        with pytest.raises(ValueError, match=r"diff_augment="):
            TrainConfig(diff_augment=bad)


def test_pix2pix_refuses_it():
    config = Config.for_method("pix2pix")
    with pytest.raises(ValueError, match=r"`diff_augment` is for the methods \['cyclegan', 'cut', 'fastcut'\]"):
        Config(model=config.model, data=config.data, train=config.train.replace(diff_augment="cutout"))


def test_translation_shifts_each_image_and_fills_with_zeros():
    images = tf.reshape(tf.range(2 * SIZE * SIZE * 1, dtype=tf.float32), (2, SIZE, SIZE, 1)) + 1.0
    out = augment.diff_augment(images, ("translation",), keras.random.SeedGenerator(3)).numpy()
    for image, shifted in zip(images.numpy()[..., 0], out[..., 0]):
        # Some shift (dy, dx) within 1/8 of the size maps image onto shifted, zeros elsewhere.
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                expected = np.zeros_like(image)
                src = image[max(dy, 0) : SIZE + min(dy, 0), max(dx, 0) : SIZE + min(dx, 0)]
                expected[max(-dy, 0) : SIZE + min(-dy, 0), max(-dx, 0) : SIZE + min(-dx, 0)] = src
                matches.append(np.array_equal(expected, shifted))
        assert sum(matches) == 1


def test_cutout_zeroes_one_square_of_half_the_size():
    images = tf.ones((4, SIZE, SIZE, 3))
    out = augment.diff_augment(images, ("cutout",), keras.random.SeedGenerator(0)).numpy()
    for image in out:
        zero = np.argwhere(image[..., 0] == 0)
        rows, cols = zero[:, 0], zero[:, 1]
        # A square of 8 x 8, clipped at the border: a full rectangle of zeros.
        assert len(zero) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert rows.max() - rows.min() + 1 <= SIZE // 2 and cols.max() - cols.min() + 1 <= SIZE // 2
        assert np.all(image[..., 1:] == image[..., :1])  # every channel alike


def test_color_changes_colours_and_every_op_passes_gradients(rng):
    images = tf.constant(rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32"))
    seeds = keras.random.SeedGenerator(1)
    with tf.GradientTape() as tape:
        tape.watch(images)
        out = augment.diff_augment(images, augment.POLICIES, seeds)
        loss = tf.reduce_sum(out * out)
    gradient = tape.gradient(loss, images)
    assert out.shape == images.shape and not np.allclose(out.numpy(), images.numpy())
    assert np.all(np.isfinite(gradient.numpy())) and np.any(gradient.numpy())


def test_same_seed_same_draws_and_each_call_draws_anew():
    images = tf.ones((2, SIZE, SIZE, 3))
    first = [augment.diff_augment(images, ("translation", "cutout"), keras.random.SeedGenerator(7)) for _ in "ab"]
    np.testing.assert_array_equal(first[0].numpy(), first[1].numpy())
    seeds = keras.random.SeedGenerator(7)
    a, b = (augment.diff_augment(images, ("cutout",), seeds).numpy() for _ in "ab")
    assert not np.array_equal(a, b)


def _batches(count, seed):
    rng = np.random.default_rng(seed)
    return [tuple(rng.uniform(-1, 1, (1, SIZE, SIZE, 3)).astype("float32") for _ in "xy") for _ in range(count)]


def _model(policy):
    keras.utils.set_random_seed(5)
    model = CycleGAN.from_model_config(TINY_MODEL, pool_size=2, seed=5)
    model.compile(diff_augment=policy)
    model.build((None, SIZE, SIZE, 3))
    return model


def test_a_cyclegan_trains_with_it_and_the_keras_file_keeps_it(tmp_path):
    model = _model("translation,cutout")
    plain = _model("")
    for x, y in _batches(2, 0):
        logs = model.train_on_batch(x, y, return_dict=True)
        plain_logs = plain.train_on_batch(x, y, return_dict=True)
    assert all(np.isfinite(v) for v in logs.values())
    # Same weights, same data: only the augmentation makes D's losses differ.
    assert logs["D_Y"] != pytest.approx(plain_logs["D_Y"])
    assert "diff_augment" not in plain.get_compile_config()
    model.save(tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").diff_augment == ("translation", "cutout")


@pytest.mark.slow
def test_resume_repeats_the_augmentations_exactly(tmp_path):
    steps = _batches(5, 1)
    straight = _model("translation,cutout")
    for x, y in steps:
        straight.train_on_batch(x, y)
    first = _model("translation,cutout")
    for x, y in steps[:2]:
        first.train_on_batch(x, y)
    path = first.training_checkpoint().write(str(tmp_path / "ckpt"))
    resumed = _model("translation,cutout")
    resumed.training_checkpoint().read(path).assert_consumed()
    for x, y in steps[2:]:
        resumed.train_on_batch(x, y)
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
