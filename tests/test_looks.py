"""The look benchmark's task (tfcyclegan.looks): per-pixel looks, held-out photos, true grades."""

import numpy as np
import pytest

from tests.conftest import save_image
from tfcyclegan import evaluate, looks
from tfcyclegan.data import list_images, load_image


def _photos(rng, count, height=120, width=160):
    """Smooth, photo-like RGB images (gradients and blobs), uint8."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    photos = []
    for _ in range(count):
        a, b, c = rng.uniform(0.5, 3.0, 3)
        channels = [0.5 + 0.5 * np.sin(a * x + b * y + phase) * np.cos(c * y) for phase in rng.uniform(0, 6, 3)]
        photos.append(np.round(255 * np.stack(channels, -1)).astype(np.uint8))
    return photos


@pytest.mark.parametrize("look", sorted(looks.LOOKS))
def test_looks_are_per_pixel_and_change_the_image(look, rng):
    image = _photos(rng, 1)[0]
    graded = looks.apply_look(image, look)
    assert graded.dtype == np.uint8 and graded.shape == image.shape
    assert np.abs(graded.astype(int) - image).mean() > 10  # not a no-op
    # Per pixel: the same colour anywhere gives the same graded colour.
    flat, flat_graded = image.reshape(-1, 3), graded.reshape(-1, 3)
    order = rng.permutation(len(flat))
    np.testing.assert_array_equal(looks.apply_look(flat[order][None], look)[0], flat_graded[order])


def test_dataset_layout_unpaired_training_and_held_out_truth(tmp_path, rng):
    train, test = _photos(rng, 2), _photos(rng, 1)
    root = looks.make_look_dataset(tmp_path / "d", look="teal_orange", train_photos=train, test_photos=test,
                                   n_train=6, n_test=4, size=24, test_size=16, short_side=40, seed=3)
    names = {folder: [p.rsplit("/", 1)[1] for p in list_images(root / folder)]
             for folder in ("trainA", "trainB", "testA", "testB")}
    assert len(names["trainA"]) == len(names["trainB"]) == 6
    assert names["testA"] == names["testB"] and len(names["testA"]) == 4
    assert load_image(root / "trainA" / names["trainA"][0], channels=3).shape == (24, 24, 3)
    for name in names["testA"]:  # each test pair is a crop and its true grade
        a = load_image(root / "testA" / name, channels=3)
        np.testing.assert_array_equal(load_image(root / "testB" / name, channels=3), looks.apply_look(a, "teal_orange"))
    # No B crop is the grade of an A crop: the domains are unpaired.
    graded_a = {looks.apply_look(load_image(p, channels=3), "teal_orange").tobytes() for p in list_images(root / "trainA")}
    assert not graded_a & {load_image(p, channels=3).tobytes() for p in list_images(root / "trainB")}
    # The test split is what `evaluate` reads, paired by name; the input's own score is the baseline.
    split = evaluate.load_test_split(root, "a2b", 16)
    assert split.form == "folders" and len(split.inputs) == 4
    assert looks.input_psnr(root) == pytest.approx(
        float(np.mean(evaluate.paired_metrics(split.inputs, split.targets)["psnr_db"])), abs=1e-3)


def test_bad_arguments_are_named(tmp_path, rng):
    photos = _photos(rng, 1)
    with pytest.raises(ValueError, match="look=.sepia."):
        looks.make_look_dataset(tmp_path / "a", look="sepia", train_photos=photos, test_photos=photos)
    with pytest.raises(ValueError, match="short_side=16"):
        looks.make_look_dataset(tmp_path / "b", train_photos=photos, test_photos=photos, short_side=16)
    with pytest.raises(ValueError, match=r"test_photos.*\(10, 10\)"):
        looks.make_look_dataset(tmp_path / "c", train_photos=photos, test_photos=[np.zeros((10, 10), np.uint8)],
                                short_side=80)
    save_image(tmp_path / "full" / "x.png", photos[0])
    with pytest.raises(FileExistsError, match="overwrite=True"):
        looks.make_look_dataset(tmp_path / "full", train_photos=photos, test_photos=photos)


def test_scikit_image_photos_when_installed():
    pytest.importorskip("skimage", reason="the benchmark's photos come with scikit-image (the [bench] extra)")
    photos = looks.photos(looks.TRAIN_PHOTOS + looks.TEST_PHOTOS)
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 and min(p.shape[:2]) >= 192 for p in photos)
    with pytest.raises(ValueError, match="no photo named 'nothing'"):
        looks.photos(["nothing"])
