"""Subtle photographic looks on real photos: a benchmark task with ground truth.

A colourist's look (a grade, a film emulation, a white balance) is a fixed
per-pixel change of colour and tone. `make_look_dataset` builds the unpaired
task a user with such a look has: domain A is crops of real photos, domain B
other crops of the same photos with the look applied, and the test split is
crops of photos that no training crop came from, each with its true graded
version (testA/NAME and testB/NAME), so PSNR against the truth measures whether
a model learned the look or painted over the photo.

The photos are those scikit-image ships in its wheel (`photos()`, no download;
`pip install scikit-image`, or the package's `bench` extra); any list of RGB
arrays works as well.
"""

import os
import pathlib

import numpy as np

from tfcyclegan import fileio
from tfcyclegan.checks import check_int

TRAIN_PHOTOS = ("astronaut", "coffee", "motorcycle")
"""scikit-image's photos that training crops come from."""
TEST_PHOTOS = ("chelsea", "rocket")
"""scikit-image's photos that only test crops come from."""


def _luma(rgb):
    return rgb @ np.array([0.299, 0.587, 0.114])


def _saturate(rgb, amount):
    luma = _luma(rgb)[..., None]
    return luma + amount * (rgb - luma)


def teal_orange(rgb):
    """A blockbuster grade: an S-curve, shadows towards teal, highlights towards orange, +30% saturation."""
    rgb = rgb * rgb * (3.0 - 2.0 * rgb)  # smoothstep: darker shadows, brighter highlights
    tone = _luma(rgb)[..., None] - 0.5
    rgb = rgb + tone * np.array([0.3, 0.04, -0.3]) + np.array([0.02, 0.0, 0.0])
    return np.clip(_saturate(rgb, 1.3), 0.0, 1.0)


def faded_film(rgb):
    """A faded print: lifted blacks, dimmer whites, warmer, 35% less saturated, green in the shadows."""
    rgb = 0.12 + 0.78 * rgb
    rgb = rgb ** np.array([0.8, 0.95, 1.25])  # warmer: red up, blue down, most in the mids
    shadows = np.clip(0.5 - _luma(rgb), 0.0, None)[..., None]
    rgb = rgb + shadows * np.array([-0.04, 0.12, 0.0])
    return np.clip(_saturate(rgb, 0.65), 0.0, 1.0)


LOOKS = {"teal_orange": teal_orange, "faded_film": faded_film}
"""The looks by name: functions of float RGB in [0, 1], per pixel."""


def apply_look(image, look):
    """`image` (uint8 RGB, `[..., 3]`) with the look `look` (a `LOOKS` name or function), as uint8."""
    function = LOOKS[look] if isinstance(look, str) else look
    graded = function(np.asarray(image, np.float64) / 255.0)
    return np.round(np.clip(graded, 0.0, 1.0) * 255.0).astype(np.uint8)


def photos(names):
    """scikit-image's bundled photos `names` (see `TRAIN_PHOTOS`), as uint8 RGB arrays.

    Raises:
        ImportError: scikit-image is not installed (the message says how to add it).
    """
    try:
        from skimage import data
    except ImportError as error:
        raise ImportError(
            "The look benchmark's photos are scikit-image's: `pip install scikit-image` "
            "(or `pip install tfcyclegan[bench]`), or pass your own photos as arrays."
        ) from error
    loaders = {"motorcycle": lambda: data.stereo_motorcycle()[0]}
    images = []
    for name in names:
        loader = loaders.get(name) or getattr(data, name, None)
        if loader is None:
            raise ValueError(f"scikit-image ships no photo named {name!r}. Received: {name!r}")
        images.append(np.asarray(loader()))
    return images


def _crops(rng, photo, count, size, short_side):
    """`count` random `size`-px squares of `photo` scaled so its short side is `short_side`."""
    from PIL import Image

    height, width = photo.shape[:2]
    scale = short_side / min(height, width)
    resized = np.asarray(Image.fromarray(photo).resize(
        (max(size, round(width * scale)), max(size, round(height * scale))), Image.LANCZOS))
    tops = rng.integers(0, resized.shape[0] - size + 1, count)
    lefts = rng.integers(0, resized.shape[1] - size + 1, count)
    return [resized[t : t + size, s : s + size] for t, s in zip(tops, lefts)]


def make_look_dataset(root, look="teal_orange", train_photos=None, test_photos=None, n_train=400,
                      n_test=40, size=72, test_size=64, short_side=192, seed=0, overwrite=False):
    """Writes an unpaired look task with ground truth: trainA/, trainB/, testA/, testB/.

    Args:
        root: the dataset folder to write (the CycleGAN layout `tfcyclegan
            train --dataroot` reads).
        look: a `LOOKS` name or a function of float RGB in [0, 1].
        train_photos: uint8 RGB arrays the training crops come from; default
            scikit-image's `TRAIN_PHOTOS`.
        test_photos: arrays only the test crops come from; default `TEST_PHOTOS`.
        n_train: crops per training domain; A's and B's are drawn apart, so no
            B crop is the graded version of an A crop.
        n_test: test crops, spread over the test photos.
        size: the training crops' size (the models crop `size - 8` from them).
        test_size: the test crops' size.
        short_side: each photo is first scaled so its short side is this, so a
            crop holds a part of a scene, not a texture.
        seed: the crops' positions.
        overwrite: replace an existing `root`.

    Returns:
        `root` as a `pathlib.Path`.

    Raises:
        FileExistsError: `root` exists and holds files, without `overwrite`.
    """
    for name, value, minimum in (("n_train", n_train, 1), ("n_test", n_test, 1), ("size", size, 8),
                                 ("test_size", test_size, 8), ("short_side", short_side, 8)):
        check_int(name, value, minimum)
    if short_side < max(size, test_size):
        raise ValueError(f"`short_side` must be at least the crop sizes ({max(size, test_size)}). "
                         f"Received: short_side={short_side}")
    if isinstance(look, str) and look not in LOOKS:
        raise ValueError(f"`look` must be one of {list(LOOKS)} or a function. Received: look={look!r}")
    root = pathlib.Path(root)
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise FileExistsError(f"{root} already holds files; pass overwrite=True to replace them.")
    train_photos = photos(TRAIN_PHOTOS) if train_photos is None else list(train_photos)
    test_photos = photos(TEST_PHOTOS) if test_photos is None else list(test_photos)
    for name, group in (("train_photos", train_photos), ("test_photos", test_photos)):
        if not group or any(np.asarray(p).ndim != 3 or np.asarray(p).shape[2] != 3 for p in group):
            raise ValueError(f"`{name}` must be a non-empty list of RGB arrays [height, width, 3]. "
                             f"Received shapes: {[np.shape(p) for p in group]}")
    rng = np.random.default_rng(seed)
    for folder in ("trainA", "trainB", "testA", "testB"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for old in (root / folder).iterdir():
            old.unlink()
    for domain, graded in (("trainA", False), ("trainB", True)):
        index = 0
        for photo, count in zip(train_photos, _shares(n_train, len(train_photos))):
            for crop in _crops(rng, np.asarray(photo), count, size, short_side):
                pixels = apply_look(crop, look) if graded else crop
                fileio.write_png(root / domain / f"{index:04d}.png", pixels)
                index += 1
    index = 0
    for photo, count in zip(test_photos, _shares(n_test, len(test_photos))):
        for crop in _crops(rng, np.asarray(photo), count, test_size, short_side):
            fileio.write_png(root / "testA" / f"{index:04d}.png", crop)
            fileio.write_png(root / "testB" / f"{index:04d}.png", apply_look(crop, look))
            index += 1
    return root


def _shares(total, parts):
    """`total` split into `parts` counts that differ by at most one."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def input_psnr(root):
    """The untouched test inputs' mean PSNR (dB) against their truth in `root`'s testA/testB."""
    from tfcyclegan.data import load_image

    scores = []
    for name in sorted(os.listdir(os.path.join(root, "testA"))):
        a = load_image(os.path.join(root, "testA", name), channels=3).astype(np.float64)
        b = load_image(os.path.join(root, "testB", name), channels=3).astype(np.float64)
        scores.append(10 * np.log10(255.0**2 / max(np.mean((a - b) ** 2), 1e-12)))
    return float(np.mean(scores))


__all__ = ["LOOKS", "TEST_PHOTOS", "TRAIN_PHOTOS", "apply_look", "faded_film", "input_psnr",
           "make_look_dataset", "photos", "teal_orange"]
