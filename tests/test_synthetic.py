"""Tests for tfcyclegan.synthetic: the generated summer/winter demo dataset."""

import numpy as np
import pytest
from PIL import Image

from tfcyclegan import data
from tfcyclegan.config import DataConfig
from tfcyclegan.synthetic import draw_scene, make_demo_dataset


def _load(folder):
    return np.stack([np.asarray(Image.open(p)) for p in data.list_images(folder)])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_train=24, n_test=6, size=32)


def test_layout_and_counts(demo):
    assert sorted(p.name for p in demo.iterdir()) == ["testA", "testB", "trainA", "trainB"]
    for folder, count, prefix in [
        ("trainA", 24, "summer_"), ("trainB", 24, "winter_"),
        ("testA", 6, "summer_"), ("testB", 6, "winter_"),
    ]:
        files = sorted((demo / folder).iterdir())
        assert len(files) == count
        assert all(f.name.startswith(prefix) and f.suffix == ".png" for f in files)
        with Image.open(files[0]) as image:
            assert (image.size, image.mode) == ((32, 32), "RGB")


def test_loads_through_the_pipeline(demo):
    domains = data.resolve_domains(data=demo)
    config = DataConfig(load_size=36, crop_size=32, batch_size=4)
    result = data.unpaired_dataset(domains.a, domains.b, config, seed=0)
    assert (result.size_a, result.size_b, result.steps_per_epoch) == (24, 24, 6)
    x, y = next(iter(result.dataset))
    assert x.shape == y.shape == (4, 32, 32, 3)


def test_deterministic_from_the_seed(tmp_path):
    first = make_demo_dataset(tmp_path / "one", n_train=3, n_test=2, size=32, seed=5)
    again = make_demo_dataset(tmp_path / "two", n_train=3, n_test=2, size=32, seed=5)
    other = make_demo_dataset(tmp_path / "three", n_train=3, n_test=2, size=32, seed=6)
    more = make_demo_dataset(tmp_path / "four", n_train=5, n_test=2, size=32, seed=5)
    for folder in ("trainA", "trainB", "testA", "testB"):
        np.testing.assert_array_equal(_load(first / folder), _load(again / folder))
        assert not np.array_equal(_load(first / folder), _load(other / folder))
    # Each split has its own stream: more training images leave the test set alone.
    np.testing.assert_array_equal(_load(first / "testB"), _load(more / "testB"))
    np.testing.assert_array_equal(_load(first / "trainA"), _load(more / "trainA")[:3])


def _hill_line(image, season):
    """Median over columns of the first row of hill or ground (not sky)."""
    pixels = image.astype(int)
    if season == "summer":
        land = pixels[..., 1] - pixels[..., 2] > 40  # Green above blue.
    else:
        land = pixels.mean(axis=-1) > 200  # Snow is brighter than the grey sky.
    return float(np.median(np.argmax(land, axis=0)))


def test_layouts_vary_and_are_unpaired(demo):
    summer = [_hill_line(image, "summer") for image in _load(demo / "trainA")]
    winter = [_hill_line(image, "winter") for image in _load(demo / "trainB")]
    assert len(set(summer)) > 5 and len(set(winter)) > 5
    # Drawn independently: image i of A and image i of B have unrelated layouts.
    assert np.mean(np.abs(np.subtract(summer, winter)) > 1) > 0.5


def test_domains_differ_in_colour(demo):
    a = _load(demo / "trainA").astype(np.float32)
    b = _load(demo / "trainB").astype(np.float32)
    sky_a, sky_b = a[:, :4].mean(axis=(0, 1, 2)), b[:, :4].mean(axis=(0, 1, 2))
    ground_a, ground_b = a[:, -3:].mean(axis=(0, 1, 2)), b[:, -3:].mean(axis=(0, 1, 2))
    # Summer: blue sky, green ground.
    assert sky_a[2] - sky_a[0] > 80
    assert ground_a[1] - max(ground_a[0], ground_a[2]) > 40
    # Winter: grey sky, snow: brighter ground with little colour.
    assert sky_b[2] - sky_b[0] < 25
    assert ground_b.mean() > ground_a.mean() + 50
    assert ground_b.max() - ground_b.min() < 30


def test_refuses_to_mix_with_existing_files(tmp_path):
    make_demo_dataset(tmp_path, n_train=4, n_test=1, size=16)
    with pytest.raises(FileExistsError, match="trainA"):
        make_demo_dataset(tmp_path, n_train=2, n_test=1, size=16)
    make_demo_dataset(tmp_path, n_train=2, n_test=1, size=16, overwrite=True)
    assert len(list((tmp_path / "trainA").iterdir())) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_train": 0}, "n_train"),
        ({"size": 4}, "size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=f"Received: {message}="):
        make_demo_dataset(tmp_path, **kwargs)


def test_draw_scene_any_size():
    image = draw_scene(np.random.default_rng(0), "winter", 40, 30)
    assert image.size == (40, 30)
    with pytest.raises(ValueError, match="season='autumn'"):
        draw_scene(np.random.default_rng(0), "autumn", 8, 8)
