"""Tests for tfcyclegan.data, on real files written to tmp_path (16-64 px)."""

import logging
import os
import re
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import noise_image, save_image
from tfcyclegan import data
from tfcyclegan.config import DataConfig

SMALL = DataConfig(load_size=24, crop_size=16)

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


# --- helpers ---------------------------------------------------------------


def _quadrants(width=16, height=12):
    """An RGB image with a different colour in each quadrant."""
    array = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    array[:h, :w], array[:h, w:], array[h:, :w], array[h:, w:] = RED, GREEN, BLUE, YELLOW
    return array


def _quadrant_centres(array):
    height, width = array.shape[:2]
    ys, xs = (height // 4, 3 * height // 4), (width // 4, 3 * width // 4)
    return [array[y, x] for y in ys for x in xs]


def _png(width, height, bit_depth, colour_type, rows=b""):
    """Raw PNG bytes: lets us write 16-bit RGB (Pillow cannot) and bomb headers."""

    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _domain(folder, rng, count, width=32, height=32, ext=".png"):
    return [
        save_image(folder / f"img{i}{ext}", noise_image(rng, width, height)) for i in range(count)
    ]


def _batches(dataset, count):
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(count)]


# --- listing ----------------------------------------------------------------


def test_image_extensions_are_lowercase_with_dot():
    assert isinstance(data.IMAGE_EXTENSIONS, tuple)
    assert all(e.startswith(".") and e == e.lower() for e in data.IMAGE_EXTENSIONS)
    assert {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif"} <= set(
        data.IMAGE_EXTENSIONS
    )


def test_list_images_recursive_sorted_skips_hidden_and_others(tmp_path, rng):
    image = noise_image(rng, 8, 8)
    save_image(tmp_path / "b.png", image)
    save_image(tmp_path / "sub" / "a.JPG", image, format="JPEG")
    save_image(tmp_path / "sub" / "deeper" / "c.bmp", image)
    save_image(tmp_path / ".hidden.png", image)
    save_image(tmp_path / ".ipynb_checkpoints" / "d.png", image)
    (tmp_path / "notes.txt").write_text("hi")
    found = data.list_images(tmp_path)
    assert found == sorted(found)
    assert [p[len(str(tmp_path)) + 1:] for p in found] == [
        "b.png", "sub/a.JPG", "sub/deeper/c.bmp"]


def test_missing_folder_names_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        data.list_images(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        data.resolve_domains(domain_a=missing, domain_b=tmp_path)


def test_folder_without_images_counts_what_it_holds(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.txt").write_text("x")
    (tmp_path / "meta.json").write_text("{}")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))) as info:
        data.list_images(tmp_path)
    assert "found 0 images; 3 files: 2 .txt, 1 .json; 1 hidden entry ignored" in str(
        info.value)


def test_a_file_is_not_a_folder(tmp_path, rng):
    path = save_image(tmp_path / "a.png", noise_image(rng, 8, 8))
    with pytest.raises(NotADirectoryError, match=re.escape(path)):
        data.list_images(path)


# --- decoding: formats, modes, orientation ------------------------------------


@pytest.mark.parametrize(
    "ext, options, tolerance",
    [
        (".jpg", {"quality": 95}, 12),
        (".png", {}, 0),
        (".bmp", {}, 0),
        (".gif", {}, 0),
        (".webp", {"lossless": True}, 0),
        (".tiff", {}, 0),
        (".ppm", {}, 0),
    ],
)
def test_formats_decode_to_rgb(tmp_path, ext, options, tolerance):
    path = save_image(tmp_path / f"image{ext}", _quadrants(), **options)
    image = data.load_image(path)
    assert image.shape == (12, 16, 3) and image.dtype == np.uint8
    for got, want in zip(_quadrant_centres(image), [RED, GREEN, BLUE, YELLOW]):
        np.testing.assert_allclose(got, want, atol=tolerance)


def test_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, BLUE, GREEN)]
    path = str(tmp_path / "anim.gif")
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    image = data.load_image(path)
    assert (image == RED).all()


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    # Pillow's convert() would clip 4096 to 255; scaled it is 4096 / 257 = 16.
    values = np.array([[0, 4096], [32896, 65535]], np.uint16)
    path = str(tmp_path / "gray16.png")
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    image = data.load_image(path)
    np.testing.assert_array_equal(image[..., 0], [[0, 16], [128, 255]])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_16_bit_rgb_png(tmp_path):
    pixel = np.array([65535, 32896, 0], ">u2").tobytes()
    rows = b"".join(b"\x00" + pixel * 4 for _ in range(3))
    path = tmp_path / "rgb16.png"
    path.write_bytes(_png(4, 3, 16, 2, rows))
    image = data.load_image(path)
    assert image.shape == (3, 4, 3)
    np.testing.assert_array_equal(image[0, 0], [255, 128, 0])


def test_16_bit_tiff(tmp_path):
    path = str(tmp_path / "gray16.tiff")
    Image.fromarray(np.full((4, 4), 4096, np.uint16)).save(path)
    assert (data.load_image(path) == 16).all()


@pytest.mark.parametrize(
    "mode, colour, expected",
    [
        ("L", 100, (100, 100, 100)),
        ("LA", (100, 7), (100, 100, 100)),
        ("RGBA", (10, 20, 30, 0), (10, 20, 30)),  # Alpha dropped, as in the reference.
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
        ("1", 1, (255, 255, 255)),
        ("I;16", 65535, (255, 255, 255)),
    ],
)
def test_modes_become_rgb(tmp_path, mode, colour, expected):
    ext = ".jpg" if mode == "CMYK" else ".png"
    path = str(tmp_path / f"image{ext}")
    options = {"quality": 100} if ext == ".jpg" else {}
    Image.new(mode, (6, 4), colour).save(path, **options)
    image = data.load_image(path)
    assert image.shape == (4, 6, 3)
    np.testing.assert_allclose(image[2, 3], expected, atol=3)


@pytest.mark.parametrize("transparency", [False, True])
def test_palette_images_become_rgb(tmp_path, transparency):
    image = Image.new("P", (6, 4), 1)
    image.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    path = str(tmp_path / "palette.png")
    image.save(path, **({"transparency": 0} if transparency else {}))
    decoded = data.load_image(path)
    np.testing.assert_array_equal(decoded[0, 0], [200, 100, 50])


def test_exif_orientation_is_applied(tmp_path):
    # Stored 20 wide x 10 high, left half red; orientation 6 means "rotate 90
    # degrees clockwise to display", so the displayed image is 10 x 20 with
    # the red half on top.
    array = np.zeros((10, 20, 3), np.uint8)
    array[:, :10], array[:, 10:] = RED, BLUE
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save_image(tmp_path / "phone.jpg", array, quality=95, exif=exif)
    image = data.load_image(path)
    assert image.shape == (20, 10, 3)
    np.testing.assert_allclose(image[3, 5], RED, atol=12)
    np.testing.assert_allclose(image[16, 5], BLUE, atol=12)
    report = data.check_images([path], SMALL)
    assert report.sizes == ((10, 20),)


def test_channels_1_uses_luma(tmp_path):
    path = save_image(tmp_path / "red.png", np.full((4, 4, 3), RED, np.uint8))
    image = data.load_image(path, channels=1)
    assert image.shape == (4, 4, 1)
    assert image[0, 0, 0] == 76  # Pillow's ITU-R 601: 0.299 * 255.


def test_channels_1_pipeline(tmp_path, rng):
    _domain(tmp_path / "a", rng, 2)
    _domain(tmp_path / "b", rng, 2)
    config = SMALL.replace(channels=1)
    result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=0)
    x, y = next(iter(result.dataset))
    assert x.shape == (1, 16, 16, 1) and y.shape == (1, 16, 16, 1)


# --- sources and layouts ------------------------------------------------------


def test_authors_layout_by_split(tmp_path, rng):
    for folder in ("trainA", "trainB", "testA", "testB"):
        _domain(tmp_path / "horse2zebra" / folder, rng, 2, 16, 16)
    train = data.resolve_domains(data=tmp_path / "horse2zebra")
    test = data.resolve_domains(data=str(tmp_path / "horse2zebra"), split="test")
    assert train.a.name.endswith("trainA") and train.b.name.endswith("trainB")
    assert test.a.name.endswith("testA") and test.b.name.endswith("testB")
    assert all("/testA/" in p for p in test.a.paths) and len(test.a.paths) == 2


def test_layout_missing_domain_folder(tmp_path, rng):
    _domain(tmp_path / "trainA", rng, 1, 8, 8)
    (tmp_path / "extra").mkdir()
    found = r"trainB.*Found folders: \['extra', 'trainA'\]"
    with pytest.raises(FileNotFoundError, match=found):
        data.resolve_domains(data=tmp_path)


def test_two_folders_and_file_lists(tmp_path, rng):
    a = _domain(tmp_path / "a", rng, 3, 16, 16)
    _domain(tmp_path / "b", rng, 2, 16, 16)
    domains = data.resolve_domains(domain_a=a[:2], domain_b=tmp_path / "b")
    assert domains.a.paths == tuple(a[:2]) and len(domains.b.paths) == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"data": "x", "tfds_name": "cycle_gan/horse2zebra"},
        {"data": "x", "domain_a": "y"},
    ],
)
def test_resolve_domains_needs_exactly_one_form(kwargs):
    with pytest.raises(ValueError, match="exactly one of"):
        data.resolve_domains(**kwargs)


def test_resolve_domains_needs_both_domains(tmp_path):
    with pytest.raises(ValueError, match="Both `domain_a` and `domain_b`"):
        data.resolve_domains(domain_a=tmp_path)


def test_tfds_spec_is_not_a_single_domain():
    with pytest.raises(ValueError, match="resolve_domains"):
        data.as_source("tfds:cycle_gan/horse2zebra")


def test_tfds_source_mocked(caplog):
    tfds = pytest.importorskip("tensorflow_datasets")
    domains = data.resolve_domains(data="tfds:cycle_gan/horse2zebra", split="test")
    assert (domains.a.tfds_name, domains.a.tfds_split) == ("cycle_gan/horse2zebra", "testA")
    assert domains.b.tfds_split == "testB"
    # mock_data makes the real builder (tfds.builder, download_and_prepare,
    # as_dataset) serve random PNGs of 5-50 px instead of downloading.
    config = DataConfig(load_size=20, crop_size=16, preprocess="crop", batch_size=2)
    with tfds.testing.mock_data(num_examples=5), caplog.at_level(logging.WARNING):
        result = data.unpaired_dataset(domains.a, domains.b, config, seed=0)
        batches = _batches(result.dataset, 4)
        evaluation = data.unpaired_dataset(domains.a, domains.b, config, training=False)
        assert sum(len(x) for x, _ in evaluation.dataset) == 5
    assert (result.size_a, result.size_b, result.steps_per_epoch) == (5, 5, 2)
    for x, y in batches:
        assert x.shape == y.shape == (2, 16, 16, 3)
    # Images under 16 px are enlarged, and that is logged once per domain.
    assert "enlarged" in caplog.text and "tfds:cycle_gan/horse2zebra/testA#" in caplog.text


# --- preprocessing ----------------------------------------------------------


@pytest.mark.parametrize(
    "preprocess, shape",
    [
        ("resize_and_crop", (16, 16)),
        ("crop", (16, 16)),
        ("scale_width", (18, 24)),  # width 24; height 24 * 30 / 40 = 18.
        ("scale_width_and_crop", (16, 16)),
        ("none", (32, 40)),  # 30 rounds to 32, a multiple of 4.
    ],
)
def test_preprocess_mode_shapes(tmp_path, rng, preprocess, shape):
    _domain(tmp_path / "a", rng, 2, width=40, height=30)
    _domain(tmp_path / "b", rng, 1, width=40, height=30)
    config = SMALL.replace(preprocess=preprocess)
    result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=0)
    for x, y in _batches(result.dataset, 3):
        assert x.shape == y.shape == (1, *shape, 3)
        assert x.dtype == np.float32 and -1.0 <= x.min() and x.max() <= 1.0
    evaluation = data.load_eval_images(data.list_images(tmp_path / "a"), config)
    assert evaluation.shape == (2, *shape, 3)


def test_scale_width_keeps_height_at_least_crop_size(tmp_path, rng):
    path = save_image(tmp_path / "wide.png", noise_image(rng, 64, 8))
    out = data.load_eval_images([path], SMALL.replace(preprocess="scale_width"))
    assert out.shape == (1, 16, 24, 3)  # max(24 * 8 / 64, 16) = 16.


def test_eval_matches_the_reference_exactly(tmp_path, rng):
    # The reference: Resize((load, load), BICUBIC) with Pillow, here a centre
    # crop for evaluation, then (x / 255 - 0.5) / 0.5.
    path = save_image(tmp_path / "a.png", noise_image(rng, 40, 30))
    expected = Image.open(path).convert("RGB").resize((24, 24), Image.Resampling.BICUBIC)
    expected = np.asarray(expected.crop((4, 4, 20, 20)), np.float32) / 127.5 - 1.0
    np.testing.assert_array_equal(data.load_eval_images([path], SMALL)[0], expected)


def test_training_crop_is_a_crop_of_the_reference_resize(tmp_path, rng):
    path_a = save_image(tmp_path / "a" / "a.png", noise_image(rng, 40, 30))
    save_image(tmp_path / "b" / "b.png", noise_image(rng, 40, 30))
    resized = np.asarray(
        Image.open(path_a).resize((24, 24), Image.Resampling.BICUBIC), np.float32
    ) / 127.5 - 1.0
    config = SMALL.replace(flip=False)
    result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=3)
    crops = [x[0] for x, _ in _batches(result.dataset, 4)]
    for crop in crops:
        assert any(
            np.array_equal(crop, resized[top:top + 16, left:left + 16])
            for top in range(9) for left in range(9)
        )


def test_values_span_minus_one_to_one(tmp_path):
    array = np.zeros((8, 8, 3), np.uint8)
    array[:, 4:] = 255
    save_image(tmp_path / "a" / "a.png", array)
    save_image(tmp_path / "b" / "b.png", array)
    config = SMALL.replace(preprocess="none")
    x, y = next(iter(data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config).dataset))
    assert x.dtype == tf.float32
    assert float(tf.reduce_min(x)) == -1.0 and float(tf.reduce_max(x)) == 1.0


@pytest.mark.parametrize("flip", [True, False])
def test_flip(tmp_path, flip):
    # Left half black, right half white; no crop in "none" mode, so a flipped
    # image is exactly the mirror.
    array = np.zeros((8, 8, 3), np.uint8)
    array[:, 4:] = 255
    save_image(tmp_path / "a" / "a.png", array)
    save_image(tmp_path / "b" / "b.png", array)
    config = SMALL.replace(preprocess="none", flip=flip)
    result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=0)
    flipped = [bool(x[0, 0, 0, 0] > 0) for x, _ in _batches(result.dataset, 40)]
    if flip:
        assert 5 < sum(flipped) < 35
    else:
        assert not any(flipped)


@pytest.mark.parametrize("cache", [True, False])
def test_augmentation_runs_after_the_cache(tmp_path, rng, decode_calls, cache):
    _domain(tmp_path / "a", rng, 1)
    _domain(tmp_path / "b", rng, 1)
    config = DataConfig(load_size=32, crop_size=16, cache=cache)
    result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=0)
    # The start-up check decodes each file once; the cache decodes each once more.
    assert len(decode_calls) == (4 if cache else 2)
    decode_calls.clear()
    # One image per domain: every step is a new epoch.
    crops = [x for x, _ in _batches(result.dataset, 8)]
    assert len({c.tobytes() for c in crops}) >= 6  # New crops every epoch...
    if cache:
        assert len(decode_calls) == 0  # ...from images decoded once, up front.
    else:
        assert len(decode_calls) >= 16


def test_resumed_stream_repeats_an_uninterrupted_one(tmp_path, rng, decode_calls):
    _domain(tmp_path / "a", rng, 3)
    _domain(tmp_path / "b", rng, 5)
    config = SMALL.replace(batch_size=2)
    full = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=4)
    expected = _batches(full.dataset, 9)
    # A second iterator of the same dataset gives the same stream (unlike
    # Dataset.shuffle's reshuffle_each_iteration), which resumes rely on.
    for (x1, y1), (x2, y2) in zip(expected, _batches(full.dataset, 9)):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    resumed = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=4, start_step=5)
    tail = _batches(resumed.dataset, 4)
    for (x1, y1), (x2, y2) in zip(expected[5:], tail):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    for (x1, y1), (x2, y2) in zip(expected[7:], _batches(full.from_step(7), 2)):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    with pytest.raises(ValueError, match="needs a seeded training stream"):
        data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config).from_step(1)


def test_resuming_far_into_a_run_decodes_no_skipped_image(tmp_path, rng, decode_calls):
    _domain(tmp_path / "a", rng, 3)
    _domain(tmp_path / "b", rng, 5)
    config = SMALL.replace(batch_size=2)
    far = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=4, start_step=10_000)
    decode_calls.clear()
    _batches(far.dataset, 4)
    # Decoding the skipped steps would be 2 domains x 2 images x 10 000 steps.
    # What is decoded is the 16 images used plus the pipeline's autotuned
    # read-ahead, whose depth depends on timing (25 seen on a loaded machine),
    # so the bound is loose on that side and tight on the one that matters.
    assert 16 <= len(decode_calls) < 400


def test_every_image_once_per_epoch_in_a_new_order(tmp_path, rng):
    _domain(tmp_path / "a", rng, 6)
    _domain(tmp_path / "b", rng, 6)
    config = SMALL.replace(flip=False, preprocess="none")  # images pass unchanged
    result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=1)
    seen = [x.tobytes() for x, _ in _batches(result.dataset, 18)]
    epochs = [seen[0:6], seen[6:12], seen[12:18]]
    assert all(len(set(epoch)) == 6 for epoch in epochs)
    assert set(epochs[0]) == set(epochs[1]) == set(epochs[2])
    assert len({tuple(epoch) for epoch in epochs}) > 1  # reshuffled


@pytest.mark.parametrize(
    "kwargs, match",
    [({"start_step": -1}, "start_step=-1"),
     ({"start_step": 2, "seed": None}, "needs training=True and a seed"),
     ({"start_step": 2, "training": False, "seed": 1}, "needs training=True and a seed")],
)
def test_start_step_needs_a_seeded_training_stream(tmp_path, rng, kwargs, match):
    _domain(tmp_path / "a", rng, 1)
    _domain(tmp_path / "b", rng, 1)
    with pytest.raises(ValueError, match=match):
        data.unpaired_dataset(tmp_path / "a", tmp_path / "b", SMALL, **kwargs)


def test_domains_may_have_different_channel_counts(tmp_path, rng):
    _domain(tmp_path / "a", rng, 2)
    _domain(tmp_path / "b", rng, 2)
    result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", SMALL, seed=0, channels=(1, 3))
    x, y = _batches(result.dataset, 1)[0]
    assert x.shape == (1, 16, 16, 1) and y.shape == (1, 16, 16, 3)
    with pytest.raises(ValueError, match="channels=4"):
        data.unpaired_dataset(tmp_path / "a", tmp_path / "b", SMALL, channels=(4, 3))


def test_same_seed_same_batches(tmp_path, rng):
    _domain(tmp_path / "a", rng, 3)
    _domain(tmp_path / "b", rng, 2)
    config = SMALL.replace(batch_size=2)

    def run(seed):
        result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=seed)
        return _batches(result.dataset, 6)  # Several epochs of both domains.

    first, again, other = run(7), run(7), run(8)
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert any(not np.array_equal(x1, x3) for (x1, _), (x3, _) in zip(first, other))


def test_files_are_read_when_drawn_not_when_shuffled(tmp_path, rng):
    # A whole-domain shuffle buffer must hold paths, not file contents: after
    # deleting every file but the two drawn first, the first batch still loads.
    a = _domain(tmp_path / "a", rng, 6, 8, 8)
    b = _domain(tmp_path / "b", rng, 6, 8, 8)
    config = SMALL.replace(preprocess="none", flip=False)
    first = _batches(data.unpaired_dataset(a, b, config, seed=1).dataset, 1)[0]
    result = data.unpaired_dataset(a, b, config, seed=1)
    drawn = [
        next(p for p in paths if np.array_equal(data.load_eval_images([p], config), x))
        for paths, x in ((a, first[0]), (b, first[1]))
    ]
    for path in a + b:
        if path not in drawn:
            os.remove(path)
    x, y = _batches(result.dataset, 1)[0]
    np.testing.assert_array_equal(x, first[0])
    np.testing.assert_array_equal(y, first[1])


@pytest.mark.parametrize("batch_size, steps", [(1, 5), (2, 2), (8, 1)])
def test_steps_per_epoch_follows_the_larger_domain(tmp_path, rng, batch_size, steps):
    _domain(tmp_path / "a", rng, 5, 16, 16)
    _domain(tmp_path / "b", rng, 3, 16, 16)
    config = SMALL.replace(batch_size=batch_size)
    result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config)
    assert (result.size_a, result.size_b, result.steps_per_epoch) == (5, 3, steps)
    assert result.skipped == ()
    assert result.dataset.element_spec[0].shape == (batch_size, 16, 16, 3)


def test_evaluation_is_finite_ordered_and_cycles_the_shorter_domain(tmp_path, rng):
    a = _domain(tmp_path / "a", rng, 3)
    b = _domain(tmp_path / "b", rng, 2)
    config = SMALL.replace(batch_size=2)
    result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, training=False)
    batches = list(result.dataset.as_numpy_iterator())
    assert result.steps_per_epoch == 2 and [len(x) for x, _ in batches] == [2, 1]
    xs = np.concatenate([x for x, _ in batches])
    ys = np.concatenate([y for _, y in batches])
    np.testing.assert_array_equal(xs, data.load_eval_images(a, config))
    np.testing.assert_array_equal(ys, data.load_eval_images(b + b[:1], config))


def test_preprocess_for_eval_accepts_arrays(rng):
    image = noise_image(rng, 40, 30)
    single = data.preprocess_for_eval(image, SMALL)
    batch = data.preprocess_for_eval([image, image[..., :1]], SMALL)
    assert single.shape == (1, 16, 16, 3) and batch.shape == (2, 16, 16, 3)
    assert single.dtype == np.float32
    with pytest.raises(ValueError, match=r"uint8.*dtype=float32"):
        data.preprocess_for_eval(image.astype(np.float32), SMALL)
    with pytest.raises(ValueError, match="different sizes"):
        data.preprocess_for_eval(
            [image, noise_image(rng, 20, 20)], SMALL.replace(preprocess="none")
        )


def test_feeds_keras_fit_and_evaluate(tmp_path, rng):
    import keras

    _domain(tmp_path / "a", rng, 3)
    _domain(tmp_path / "b", rng, 2)
    config = SMALL.replace(batch_size=2)
    train = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=0)
    evaluation = data.unpaired_dataset(
        tmp_path / "a", tmp_path / "b", config, training=False
    )
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 1)])
    model.compile(optimizer="sgd", loss="mae")
    history = model.fit(
        train.dataset, steps_per_epoch=train.steps_per_epoch, epochs=2, verbose=0
    )
    assert len(history.history["loss"]) == 2
    assert np.isfinite(model.evaluate(evaluation.dataset, verbose=0))


def test_works_with_tf_distribute(tmp_path, rng):
    _domain(tmp_path / "a", rng, 2)
    _domain(tmp_path / "b", rng, 2)
    config = SMALL.replace(batch_size=2)
    result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=0)
    policy = result.dataset.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    x, y = next(iter(strategy.experimental_distribute_dataset(result.dataset)))
    assert x.shape == (2, 16, 16, 3)


# --- bad input ---------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path, rng):
    """Domain A with two good images and three bad ones; domain B fine."""
    folder = tmp_path / "a"
    good = _domain(folder, rng, 2, ext=".jpg")
    truncated = folder / "truncated.jpg"
    whole = (folder / "img0.jpg").read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    text = folder / "notes.jpg"
    text.write_text("these are my notes, not a photo\n")
    _domain(tmp_path / "b", rng, 2)
    return {
        "good": good, "truncated": str(truncated), "empty": str(empty), "text": str(text)
    }


def test_check_images_lists_every_bad_file(bad_files):
    bad = [bad_files[k] for k in ("truncated", "empty", "text")]
    paths = sorted(bad_files["good"] + bad)
    report = data.check_images(paths, SMALL)
    reasons = {bad.path: bad.reason for bad in report.bad}
    assert set(report.good) == set(bad_files["good"]) and not report.ok
    assert reasons[bad_files["truncated"]].startswith("truncated or corrupt")
    assert reasons[bad_files["empty"]] == "empty file (0 bytes)"
    assert "looks like text" in reasons[bad_files["text"]]
    text = data.format_report(report)
    assert "Checked 5 image files: 2 readable, 3 bad." in text
    for key in ("truncated", "empty", "text"):
        assert bad_files[key] in text


def test_check_images_accepts_a_folder(bad_files, tmp_path):
    report = data.check_images(tmp_path / "a", SMALL, decode=False)
    # Headers only: the truncated JPEG's header is intact.
    assert len(report.bad) == 2 and report.num_checked == 5


def test_bad_files_stop_the_pipeline_with_their_list(bad_files, tmp_path):
    with pytest.raises(ValueError, match="skip_bad_files=True") as info:
        data.unpaired_dataset(tmp_path / "a", tmp_path / "b", SMALL)
    for key in ("truncated", "empty", "text"):
        assert bad_files[key] in str(info.value)


def test_bad_files_skipped_and_reported(bad_files, tmp_path, caplog):
    config = SMALL.replace(skip_bad_files=True)
    with caplog.at_level(logging.WARNING, logger="tfcyclegan.data"):
        result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=0)
    assert result.size_a == 2
    assert sorted(b.path for b in result.skipped) == sorted(
        bad_files[k] for k in ("truncated", "empty", "text"))
    assert "skipping 3 unreadable file(s)" in caplog.text
    assert bad_files["truncated"] in caplog.text
    assert len(_batches(result.dataset, 4)) == 4


def test_domain_with_only_bad_files(tmp_path, rng):
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "x.jpg").write_text("not an image")
    (folder / "y.png").write_bytes(b"")
    _domain(tmp_path / "b", rng, 1)
    for skip in (False, True):
        config = SMALL.replace(skip_bad_files=skip)
        message = re.escape(str(folder)) + r".* no readable images"
        with pytest.raises(ValueError, match=message):
            data.unpaired_dataset(folder, tmp_path / "b", config)


def test_missing_file_in_a_list(tmp_path, rng):
    good = _domain(tmp_path / "a", rng, 1)
    missing = str(tmp_path / "a" / "gone.png")
    with pytest.raises(ValueError, match=re.escape(missing) + ": cannot read the file"):
        data.unpaired_dataset(good + [missing], good, SMALL)


def test_ignored_files_are_counted_in_the_log(tmp_path, rng, caplog):
    _domain(tmp_path / "a", rng, 1)
    (tmp_path / "a" / "labels.csv").write_text("x")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0")
    _domain(tmp_path / "b", rng, 1)
    with caplog.at_level(logging.INFO, logger="tfcyclegan.data"):
        data.unpaired_dataset(tmp_path / "a", tmp_path / "b", SMALL)
    assert (
        f"Domain A: 1 image in {tmp_path / 'a'}; not used: 1 other file: 1 .csv; "
        "1 hidden entry ignored" in caplog.text
    )


def test_check_images_progress_bar(tmp_path, rng, capsys):
    paths = _domain(tmp_path, rng, 3, 8, 8)
    assert data.check_images(paths, SMALL, progress=True).ok
    assert "3/3" in capsys.readouterr().out


def test_load_image_names_the_bad_file(bad_files):
    with pytest.raises(ValueError, match=re.escape(bad_files["truncated"]) + ": truncated"):
        data.load_image(bad_files["truncated"])


def test_file_broken_after_the_check_is_named(tmp_path, rng):
    _domain(tmp_path / "a", rng, 2)
    _domain(tmp_path / "b", rng, 2)
    result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", SMALL, seed=0)
    broken = tmp_path / "a" / "img1.png"
    broken.write_text("overwritten")
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(str(broken))):
        _batches(result.dataset, 8)


def test_small_images_are_enlarged_and_logged(tmp_path, rng, caplog):
    _domain(tmp_path / "a", rng, 1, width=10, height=8)
    _domain(tmp_path / "b", rng, 1)
    config = DataConfig(crop_size=16, preprocess="crop")
    with caplog.at_level(logging.WARNING, logger="tfcyclegan.data"):
        result = data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config, seed=0)
    assert "Domain A" in caplog.text and "smaller than crop_size=16" in caplog.text
    x, _ = next(iter(result.dataset))
    assert x.shape == (1, 16, 16, 3)


def test_decompression_bomb_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png(30000, 30000, 1, 0))  # 900 megapixels, a few bytes.
    report = data.check_images([path], DataConfig())
    assert "too many pixels" in report.bad[0].reason
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*too many pixels"):
        data.load_image(path)


def test_max_pixels_is_ours_to_set(tmp_path, rng):
    path = save_image(tmp_path / "a.png", noise_image(rng, 16, 16))
    report = data.check_images([path], DataConfig(max_pixels=100))
    assert "16x16 = 256 pixels > max_pixels=100" in report.bad[0].reason


def test_float_images_are_refused(tmp_path):
    path = str(tmp_path / "float.tiff")
    Image.fromarray(np.zeros((4, 4), np.float32)).save(path)
    report = data.check_images([path], SMALL)
    assert "mode F" in report.bad[0].reason


def test_unbatchable_sizes_are_explained(tmp_path, rng):
    save_image(tmp_path / "a" / "wide.png", noise_image(rng, 40, 20))
    save_image(tmp_path / "a" / "tall.png", noise_image(rng, 20, 40))
    _domain(tmp_path / "b", rng, 2)
    config = SMALL.replace(preprocess="scale_width", batch_size=2)
    with pytest.raises(ValueError, match=r"scale_width.*domain A.*batch_size=2"):
        data.unpaired_dataset(tmp_path / "a", tmp_path / "b", config)
    # Same-shaped images batch fine without a crop.
    result = data.unpaired_dataset(tmp_path / "b", tmp_path / "b", config)
    assert next(iter(result.dataset))[0].shape == (2, 24, 24, 3)


def test_unpaired_dataset_checks_its_arguments(tmp_path, rng):
    _domain(tmp_path / "a", rng, 1)
    with pytest.raises(ValueError, match="must be a DataConfig"):
        data.unpaired_dataset(tmp_path / "a", tmp_path / "a", {"crop_size": 16})
    with pytest.raises(ValueError, match=r"Received: seed=-1"):
        data.unpaired_dataset(tmp_path / "a", tmp_path / "a", SMALL, seed=-1)
