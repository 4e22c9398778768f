import numpy as np
import pytest

from tfcyclegan import imaging
from tfcyclegan.models import translate_with
from tfcyclegan.networks import ResnetGenerator, UnetGenerator, size_requirement


@pytest.mark.parametrize(
    "size, multiple, min_size, expected",
    [(16, 4, 8, 16), (17, 4, 8, 20), (5, 4, 8, 8), (1, 4, 8, 8), (33, 32, 32, 64), (3, 32, 32, 32)],
)
def test_valid_size_is_the_smallest_multiple_at_least_the_minimum(size, multiple, min_size, expected):
    assert int(imaging.valid_size(size, multiple, min_size)) == expected


def test_pad_reflects_each_side_and_crop_undoes_it():
    x = np.arange(5 * 7).reshape(1, 5, 7, 1).astype("float32")
    padded, size = imaging.pad_to_multiple(x, 4, 8)
    assert padded.shape == (1, 8, 8, 1)
    np.testing.assert_array_equal(padded.numpy()[:, :, :8], np.pad(x, [(0, 0), (0, 3), (0, 1), (0, 0)], "reflect"))
    np.testing.assert_array_equal(imaging.crop_to(padded, size), x)
    one, _ = imaging.pad_to_multiple(np.ones((1, 1, 1, 1), "float32"), 4, 8)  # any amount
    assert one.shape == (1, 8, 8, 1)


def test_pixel_conversions_round_trip():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    np.testing.assert_array_equal(imaging.to_uint8(imaging.to_float(pixels)), pixels)


@pytest.mark.parametrize("shape", [(5, 3), (37, 50), (8, 8)])
def test_translate_any_size_resnet(shape):
    generator = ResnetGenerator(ngf=4, n_blocks=1)
    assert size_requirement(generator) == (4, 8)
    images = np.random.default_rng(0).uniform(-1, 1, (2, *shape, 3)).astype("float32")
    out = translate_with(generator, images)
    assert out.shape == images.shape and np.isfinite(out).all()


def test_translate_any_size_unet():
    generator = UnetGenerator(ngf=4, num_downs=5)
    assert size_requirement(generator) == (32, 32)
    images = np.zeros((1, 40, 9, 3), "float32")
    assert translate_with(generator, images).shape == images.shape


def test_size_requirement_needs_a_size_check_layer():
    import keras

    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 1)], name="plain")
    with pytest.raises(ValueError, match="'plain' takes: it has no 'size_check' layer"):
        size_requirement(model)
