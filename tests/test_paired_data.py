"""Tests for paired data (pix2pix): sources, checks and the paired pipeline, on
real files written to tmp_path (12-40 px)."""

import logging
import re

import numpy as np
import pytest
from PIL import Image

from tests.conftest import noise_image, save_image
from tfcyclegan import data, imaging
from tfcyclegan.config import DataConfig
from tfcyclegan.synthetic import draw_pair, make_paired_dataset

# No resize: the crop (training) or centre crop (evaluation) is all that
# happens to a 20x20 image, so pixels can be compared exactly.
CROP = DataConfig(load_size=12, crop_size=12, preprocess="crop")
# Pixels pass unchanged (16x12 is a multiple of 4), for evaluation passes.
AS_IS = DataConfig(preprocess="none", flip=False)


# --- helpers ---------------------------------------------------------------


def _aligned(folder, rng, count, width=16, height=12, b_of=None):
    """`count` A|B files; B is `b_of(A)`, or noise of its own. Returns [(A, B)]."""
    halves = []
    for i in range(count):
        a = noise_image(rng, width, height)
        b = noise_image(rng, width, height) if b_of is None else b_of(a)
        save_image(folder / f"{i:03d}.png", np.concatenate([a, b], axis=1))
        halves.append((a, b))
    return halves


def _pixels(images):
    """[-1, 1] floats back to the uint8 pixels they came from (exact)."""
    return imaging.to_uint8_array(np.asarray(images))


def _batches(dataset, count=None):
    dataset = dataset if count is None else dataset.take(count)
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def _assert_same_batches(first, second):
    assert len(first) == len(second)
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


# --- the aligned layout -----------------------------------------------------


def test_aligned_split_is_left_a_right_b(tmp_path, rng):
    halves = _aligned(tmp_path / "facades" / "train", rng, 3)
    source = data.resolve_pairs(data=tmp_path / "facades")
    assert source.layout == "aligned" and len(source.pairs) == 3
    result = data.paired_dataset(source, AS_IS.replace(batch_size=2), training=False)
    assert (result.size, result.steps_per_epoch, result.skipped) == (3, 2, ())
    batches = _batches(result.dataset)
    x = np.concatenate([_pixels(x) for x, _ in batches])
    y = np.concatenate([_pixels(y) for _, y in batches])
    np.testing.assert_array_equal(x, np.stack([a for a, _ in halves]))
    np.testing.assert_array_equal(y, np.stack([b for _, b in halves]))


def test_aligned_split_folder_or_source_or_root(tmp_path, rng):
    _aligned(tmp_path / "root" / "train", rng, 1)
    _aligned(tmp_path / "root" / "val", rng, 2)
    assert len(data.resolve_pairs(data=tmp_path / "root", split="val").pairs) == 2
    # A split's folder is aligned data; the root itself would mix splits.
    assert data.paired_dataset(tmp_path / "root" / "val", AS_IS, training=False).size == 2
    with pytest.raises(ValueError, match=r"looks like a dataset root.*train/, val/"):
        data.paired_dataset(tmp_path / "root", AS_IS)


@pytest.mark.parametrize("flip", [True, False])
def test_x_and_y_get_the_same_crop_and_flip(tmp_path, rng, flip):
    # B is A inverted, so y == -x exactly as long as x and y are cropped and
    # flipped alike, whatever crop and flip each pair gets.
    _aligned(tmp_path / "train", rng, 4, width=20, height=20, b_of=lambda a: 255 - a)
    config = CROP.replace(batch_size=4, flip=flip)
    crops = set()
    for seed in range(4):
        for cache in (False, True):
            result = data.paired_dataset(
                tmp_path / "train", config.replace(cache=cache), seed=seed, decode_check=False
            )
            for x, y in _batches(result.dataset, 6):
                np.testing.assert_array_equal(_pixels(y), 255 - _pixels(x))
                crops.update(image.tobytes() for image in _pixels(x))
    # 4 images x 9 crop positions x 2 flips: many different crops were drawn.
    assert len(crops) > 40


def test_flip_mirrors_both_images(tmp_path):
    # A's left and right halves differ, and so do B's: a flipped pair shows
    # both mirrored, never just one.
    a = np.zeros((12, 12, 3), np.uint8)
    a[:, 6:] = 255
    b = np.zeros((12, 12, 3), np.uint8)
    b[:, :6] = (255, 0, 0)
    save_image(tmp_path / "train" / "pair.png", np.concatenate([a, b], axis=1))
    result = data.paired_dataset(tmp_path / "train", CROP.replace(batch_size=8), seed=0)
    (x, y), = _batches(result.dataset, 1)
    x, y = _pixels(x), _pixels(y)
    flipped = [bool(x[i, 0, 0, 0] == 255) for i in range(8)]
    assert 0 < sum(flipped) < 8
    for i, was_flipped in enumerate(flipped):
        np.testing.assert_array_equal(x[i], a[:, ::-1] if was_flipped else a)
        np.testing.assert_array_equal(y[i], b[:, ::-1] if was_flipped else b)


def test_odd_width_is_named_and_skippable(tmp_path, rng):
    _aligned(tmp_path / "train", rng, 2)
    odd = save_image(tmp_path / "train" / "odd.png", noise_image(rng, 33, 12))
    with pytest.raises(ValueError, match=re.escape(odd) + r": odd width: 33x12 px") as info:
        data.paired_dataset(tmp_path / "train", AS_IS)
    assert "skip_bad_files=True" in str(info.value)
    result = data.paired_dataset(
        tmp_path / "train", AS_IS.replace(skip_bad_files=True), training=False
    )
    assert result.size == 2
    assert [(b.path, b.reason.split(":")[0]) for b in result.skipped] == [(odd, "odd width")]


def test_unreadable_aligned_file_is_named(tmp_path, rng):
    _aligned(tmp_path / "train", rng, 1)
    (tmp_path / "train" / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"text\.png: not an image"):
        data.paired_dataset(tmp_path / "train", AS_IS)


# --- two folders --------------------------------------------------------------


def test_two_folders_pair_by_relative_name(tmp_path, rng):
    a1, b1 = noise_image(rng, 16, 12), noise_image(rng, 16, 12)
    a2, b2 = noise_image(rng, 16, 12), noise_image(rng, 16, 12)
    # Different extensions pair; so do the same names in subfolders.
    save_image(tmp_path / "a" / "001.png", a1)
    save_image(tmp_path / "b" / "001.bmp", b1)
    save_image(tmp_path / "a" / "sub" / "7.png", a2)
    save_image(tmp_path / "b" / "sub" / "7.tif", b2)
    source = data.resolve_pairs(domain_a=tmp_path / "a", domain_b=tmp_path / "b")
    assert source.layout == "folders" and not source.unmatched
    assert [tuple(p[len(str(tmp_path)) + 1:] for p in pair) for pair in source.pairs] == [
        ("a/001.png", "b/001.bmp"), ("a/sub/7.png", "b/sub/7.tif")]
    result = data.paired_dataset(source, AS_IS.replace(batch_size=2), training=False)
    (x, y), = _batches(result.dataset)
    np.testing.assert_array_equal(_pixels(x), np.stack([a1, a2]))
    np.testing.assert_array_equal(_pixels(y), np.stack([b1, b2]))
    # A pair of folders is a source too.
    same = data.paired_dataset((tmp_path / "a", tmp_path / "b"), AS_IS, training=False)
    assert same.size == 2


def test_files_without_a_partner_are_named_from_both_sides(tmp_path, rng):
    for name in ("001", "002", "003"):
        save_image(tmp_path / "a" / f"{name}.png", noise_image(rng, 16, 12))
    for name in ("001", "002", "004"):
        save_image(tmp_path / "b" / f"{name}.png", noise_image(rng, 16, 12))
    only_a, only_b = str(tmp_path / "a" / "003.png"), str(tmp_path / "b" / "004.png")
    source = data.resolve_pairs(domain_a=tmp_path / "a", domain_b=tmp_path / "b")
    with pytest.raises(ValueError, match="skip_bad_files=True") as info:
        data.paired_dataset(source, AS_IS)
    message = str(info.value)
    assert f"{only_a}: no partner: only in domain A" in message
    assert f"{only_b}: no partner: only in domain B" in message
    assert "004.*" in message and "003.*" in message
    result = data.paired_dataset(source, AS_IS.replace(skip_bad_files=True), seed=0)
    assert result.size == 2
    assert sorted(b.path for b in result.skipped) == [only_a, only_b]
    assert len(_batches(result.dataset, 3)) == 3


def test_no_usable_pair_stops_even_when_skipping(tmp_path, rng):
    save_image(tmp_path / "a" / "1.png", noise_image(rng, 8, 8))
    save_image(tmp_path / "b" / "2.png", noise_image(rng, 8, 8))
    for skip in (False, True):
        with pytest.raises(ValueError, match=r"has no usable pairs: all 2 are bad"):
            data.paired_dataset((tmp_path / "a", tmp_path / "b"),
                                AS_IS.replace(skip_bad_files=skip))


def test_a_bad_file_drops_its_pair(tmp_path, rng, caplog):
    save_image(tmp_path / "a" / "1.png", noise_image(rng, 16, 12))
    save_image(tmp_path / "b" / "1.png", noise_image(rng, 16, 12))
    save_image(tmp_path / "a" / "2.png", noise_image(rng, 16, 12))
    (tmp_path / "b" / "2.png").write_bytes(b"")
    config = AS_IS.replace(skip_bad_files=True)
    with caplog.at_level(logging.WARNING, logger="tfcyclegan.data"):
        result = data.paired_dataset((tmp_path / "a", tmp_path / "b"), config, training=False)
    (bad,) = result.skipped
    assert bad.path == str(tmp_path / "b" / "2.png")
    assert bad.reason == f"empty file (0 bytes) (pair of {tmp_path / 'a' / '2.png'})"
    assert result.size == 1 and "skipping 1 unusable pair(s)" in caplog.text


def test_pair_sizes_follow_the_authors_resize(tmp_path, rng):
    # A 16x16 with B 32x32: resize_and_crop resizes both to load_size, as the
    # authors do; modes that keep sizes would misalign them, so they refuse.
    save_image(tmp_path / "a" / "1.png", noise_image(rng, 16, 16))
    save_image(tmp_path / "b" / "1.png", noise_image(rng, 32, 32))
    save_image(tmp_path / "a" / "2.png", noise_image(rng, 16, 16))
    save_image(tmp_path / "b" / "2.png", noise_image(rng, 16, 16))
    folders = (tmp_path / "a", tmp_path / "b")
    resized = DataConfig(load_size=20, crop_size=16, batch_size=2)
    (x, y), = _batches(data.paired_dataset(folders, resized, seed=0).dataset, 1)
    assert x.shape == y.shape == (2, 16, 16, 3)
    with pytest.raises(ValueError, match=r"1\.png: A is 16x16 px but its partner .*1\.png "
                                         r"is 32x32 px.*preprocess='crop'"):
        data.paired_dataset(folders, CROP.replace(crop_size=8))
    # Only the aspect ratio matters where the width is scaled.
    assert data.paired_dataset(folders, DataConfig(load_size=16, crop_size=16,
                               preprocess="scale_width"), training=False).size == 2
    report = data.check_pairs(data.resolve_pairs(domain_a=folders[0], domain_b=folders[1]),
                              CROP.replace(crop_size=8))
    assert not report.ok and len(report.good) == 1
    assert "Checked 2 pairs: 1 usable, 1 bad." in data.format_report(report)


def test_ambiguous_names_are_refused(tmp_path, rng):
    save_image(tmp_path / "a" / "001.png", noise_image(rng, 8, 8))
    save_image(tmp_path / "a" / "001.bmp", noise_image(rng, 8, 8))
    save_image(tmp_path / "b" / "001.png", noise_image(rng, 8, 8))
    with pytest.raises(ValueError, match=r"two files named 001\.\*.*ambiguous"):
        data.resolve_pairs(domain_a=tmp_path / "a", domain_b=tmp_path / "b")


# --- direction, channels, evaluation ----------------------------------------------


def test_btoa_swaps_the_sides_for_training_and_evaluation(tmp_path, rng):
    _aligned(tmp_path / "train", rng, 3, width=20, height=20)
    config = CROP.replace(batch_size=3)
    for kwargs in (dict(seed=5), dict(training=False)):
        a_to_b = _batches(data.paired_dataset(tmp_path / "train", config, **kwargs).dataset, 2)
        b_to_a = _batches(data.paired_dataset(
            tmp_path / "train", config, direction="BtoA", **kwargs).dataset, 2)
        _assert_same_batches([(y, x) for x, y in a_to_b], b_to_a)
        # DataConfig.direction is the default.
        from_config = _batches(data.paired_dataset(
            tmp_path / "train", config.replace(direction="BtoA"), **kwargs).dataset, 2)
        _assert_same_batches(b_to_a, from_config)
    with pytest.raises(ValueError, match="Received: direction='a2b'"):
        data.paired_dataset(tmp_path / "train", config, direction="a2b")


def test_channels_are_those_of_x_and_y(tmp_path, rng):
    halves = _aligned(tmp_path / "train", rng, 1)
    a, b = halves[0]

    def luma(rgb):
        return np.asarray(Image.fromarray(rgb).convert("L"))[..., None]

    for direction, (expected_x, expected_y) in (("AtoB", (luma(a), b)), ("BtoA", (luma(b), a))):
        result = data.paired_dataset(
            tmp_path / "train", AS_IS, training=False, direction=direction, channels=(1, 3))
        (x, y), = _batches(result.dataset)
        np.testing.assert_array_equal(_pixels(x)[0], expected_x)
        np.testing.assert_array_equal(_pixels(y)[0], expected_y)
    # Grayscale files become RGB when the model expects 3 channels.
    gray = noise_image(rng, 16, 12, channels=1)
    save_image(tmp_path / "a" / "1.png", gray)
    save_image(tmp_path / "b" / "1.png", noise_image(rng, 16, 12))
    (x, y), = _batches(data.paired_dataset(
        (tmp_path / "a", tmp_path / "b"), AS_IS, training=False).dataset)
    np.testing.assert_array_equal(_pixels(x)[0], np.repeat(gray[..., None], 3, axis=-1))
    with pytest.raises(ValueError, match=r"pair \(x, y\).*channels=3"):
        data.paired_dataset(tmp_path / "train", AS_IS, channels=3)


def test_evaluation_is_deterministic_centred_and_one_pass(tmp_path, rng):
    halves = _aligned(tmp_path / "train", rng, 5, width=20, height=20)
    result = data.paired_dataset(tmp_path / "train", CROP.replace(batch_size=2), training=False)
    first, again = _batches(result.dataset), _batches(result.dataset)
    _assert_same_batches(first, again)
    _assert_same_batches(first, _batches(data.paired_dataset(
        tmp_path / "train", CROP.replace(batch_size=2), training=False).dataset))
    assert [x.shape[0] for x, _ in first] == [2, 2, 1] and result.steps_per_epoch == 3
    x = np.concatenate([_pixels(x) for x, _ in first])
    y = np.concatenate([_pixels(y) for _, y in first])
    # Sorted order, centre crop (offset 4 of 20 -> 12), no flip.
    np.testing.assert_array_equal(x, np.stack([a[4:16, 4:16] for a, _ in halves]))
    np.testing.assert_array_equal(y, np.stack([b[4:16, 4:16] for _, b in halves]))
    with pytest.raises(ValueError, match="needs a seeded training stream"):
        result.from_step(1)


# --- seeded streams ---------------------------------------------------------------


def test_from_step_resumes_exactly_without_decoding_skipped_pairs(tmp_path, rng, decode_calls):
    _aligned(tmp_path / "train", rng, 5, width=20, height=20)
    config = CROP.replace(batch_size=2)
    full = data.paired_dataset(tmp_path / "train", config, seed=3)
    assert full.steps_per_epoch == 2  # 5 // 2, as the reference's epoch
    expected = _batches(full.dataset, 10)
    _assert_same_batches(expected, _batches(full.dataset, 10))  # a second iterator
    _assert_same_batches(expected[6:], _batches(full.from_step(6), 4))
    decode_calls.clear()
    _batches(full.from_step(10_000), 4)
    # Decoding skipped steps would be 2 pairs x 10 000 steps; what is decoded
    # is the 8 pairs used plus an autotuned read-ahead that depends on timing.
    assert 8 <= len(decode_calls) < 400
    resumed = data.paired_dataset(tmp_path / "train", config, seed=3, start_step=6)
    _assert_same_batches(expected[6:], _batches(resumed.dataset, 4))
    other = _batches(data.paired_dataset(tmp_path / "train", config, seed=4).dataset, 10)
    assert any(not np.array_equal(x1, x2) for (x1, _), (x2, _) in zip(expected, other))


def test_cache_gives_the_same_stream(tmp_path, rng, decode_calls):
    _aligned(tmp_path / "train", rng, 3, width=20, height=20)
    config = DataConfig(load_size=16, crop_size=12, batch_size=2)
    plain = _batches(data.paired_dataset(tmp_path / "train", config, seed=1).dataset, 6)
    decode_calls.clear()
    cached = data.paired_dataset(tmp_path / "train", config.replace(cache=True), seed=1)
    assert len(decode_calls) == 3 + 3  # the check, then the cache: once per file
    _assert_same_batches(plain, _batches(cached.dataset, 6))
    assert len(decode_calls) == 6  # nothing decoded while iterating


def test_every_pair_once_per_epoch(tmp_path, rng):
    _aligned(tmp_path / "train", rng, 4, width=12, height=12, b_of=lambda a: 255 - a)
    config = CROP.replace(flip=False)
    result = data.paired_dataset(tmp_path / "train", config, seed=2)
    seen = [x.tobytes() for x, _ in _batches(result.dataset, 12)]
    epochs = [seen[0:4], seen[4:8], seen[8:12]]
    assert all(len(set(epoch)) == 4 for epoch in epochs)
    assert set(epochs[0]) == set(epochs[1]) == set(epochs[2])
    assert len({tuple(epoch) for epoch in epochs}) > 1  # reshuffled


# --- sources and checks -----------------------------------------------------------


def test_resolve_pairs_forms_and_errors(tmp_path, rng):
    with pytest.raises(ValueError, match="exactly one of"):
        data.resolve_pairs()
    with pytest.raises(ValueError, match="exactly one of"):
        data.resolve_pairs(data=tmp_path, domain_a=tmp_path)
    with pytest.raises(ValueError, match="Both `domain_a` and `domain_b`"):
        data.resolve_pairs(domain_a=tmp_path)
    with pytest.raises(ValueError, match="TFDS is not supported"):
        data.resolve_pairs(data="tfds:cycle_gan/facades")
    # The unpaired layout gets a hint towards the two-folder form.
    _aligned(tmp_path / "trainA", rng, 1)
    _aligned(tmp_path / "trainB", rng, 1)
    with pytest.raises(FileNotFoundError, match=r"train/ with A\|B images.*trainA/ and trainB/ "
                                                r"are the unpaired layout.*domain_a="):
        data.resolve_pairs(data=tmp_path)


def test_has_split(tmp_path, rng):
    _aligned(tmp_path / "aligned" / "train", rng, 1)
    (tmp_path / "aligned" / "test").mkdir()  # empty: no split
    save_image(tmp_path / "folders" / "A" / "test" / "1.png", noise_image(rng, 8, 8))
    save_image(tmp_path / "folders" / "B" / "test" / "1.png", noise_image(rng, 8, 8))
    assert data.has_split(tmp_path / "aligned", "train")
    assert not data.has_split(tmp_path / "aligned", "test")
    assert data.has_split(tmp_path / "folders", "test")
    assert not data.has_split(tmp_path / "folders", "train")
    assert not data.has_split(tmp_path / "missing", "train")


def test_check_pairs_reports_like_check_images(tmp_path, rng):
    _aligned(tmp_path / "train", rng, 2)
    odd = save_image(tmp_path / "train" / "odd.png", noise_image(rng, 9, 12))
    report = data.check_pairs(tmp_path / "train", DataConfig(crop_size=16, load_size=16))
    assert isinstance(report, data.PairReport) and not report.ok
    assert report.sizes == ((16, 12), (16, 12))  # each half
    assert len(report.enlarged) == 2  # 12 px high < crop_size
    text = data.format_report(report, title="Pairs")
    assert text.startswith("Pairs\nChecked 3 pairs: 2 usable, 1 bad.\n")
    assert f"{odd}: odd width: 9x12 px" in text and "A would be 4 px wide, B 5" in text


# --- the synthetic paired dataset --------------------------------------------------


def _edges(image):
    gray = np.asarray(image, np.float32).mean(-1)
    return np.hypot(np.diff(gray, axis=0)[:, :-1], np.diff(gray, axis=1)[:-1, :])


def _edge_correlation(first, second):
    return np.corrcoef(_edges(first).ravel(), _edges(second).ravel())[0, 1]


@pytest.mark.parametrize("layout", ["aligned", "folders"])
def test_synthetic_pairs_layout_and_loading(tmp_path, layout):
    root = make_paired_dataset(tmp_path, n_train=6, n_test=2, size=32, layout=layout)
    if layout == "aligned":
        assert sorted(p.name for p in root.iterdir()) == ["test", "train"]
        files = sorted((root / "train").iterdir())
        with Image.open(files[0]) as image:
            assert (image.size, image.mode) == ((64, 32), "RGB")
    else:
        for side in "AB":
            for split, count in (("train", 6), ("test", 2)):
                names = sorted(p.name for p in (root / side / split).iterdir())
                assert names == [f"scene_{i:04d}.png" for i in range(count)]
    assert data.has_split(root, "test") and not data.has_split(root, "val")
    config = DataConfig(load_size=36, crop_size=32, batch_size=2)
    result = data.paired_dataset(data.resolve_pairs(data=root), config, seed=0)
    assert (result.size, result.steps_per_epoch) == (6, 3)
    test = data.paired_dataset(data.resolve_pairs(data=root, split="test"),
                               config.replace(preprocess="none"), training=False)
    (x, y), = _batches(test.dataset)
    assert x.shape == y.shape == (2, 32, 32, 3)


def test_synthetic_pairs_differ_only_in_style(tmp_path):
    root = make_paired_dataset(tmp_path, n_train=8, n_test=0, size=32, seed=1)
    result = data.paired_dataset(root / "train", AS_IS.replace(batch_size=8), training=False)
    (x, y), = _batches(result.dataset)
    x, y = _pixels(x), _pixels(y)
    # The same geometry: x's edges are where its own y's are, not another's.
    same = [_edge_correlation(x[i], y[i]) for i in range(8)]
    other = [_edge_correlation(x[i], y[(i + 1) % 8]) for i in range(8)]
    assert min(same) > 0.45 and max(other) < 0.35, (same, other)
    # Different styles: green summer ground, white winter snow.
    bottom = slice(28, 32)
    assert (x[:, bottom, :, 1] > x[:, bottom, :, 2] + 40).mean() > 0.5
    assert (y[:, bottom].min(axis=-1) > 200).mean() > 0.5


def test_synthetic_pairs_are_deterministic(tmp_path):
    def pixels(root):
        return [np.asarray(Image.open(p)) for p in data.list_images(root)]

    first = make_paired_dataset(tmp_path / "one", n_train=3, n_test=2, size=16, seed=5)
    again = make_paired_dataset(tmp_path / "two", n_train=3, n_test=2, size=16, seed=5)
    more = make_paired_dataset(tmp_path / "three", n_train=5, n_test=2, size=16, seed=5)
    other = make_paired_dataset(tmp_path / "four", n_train=3, n_test=2, size=16, seed=6)
    np.testing.assert_array_equal(pixels(first), pixels(again))
    np.testing.assert_array_equal(pixels(first / "test"), pixels(more / "test"))
    assert not np.array_equal(pixels(first), pixels(other))
    # The folders layout holds the same scenes as the aligned one.
    folders = make_paired_dataset(tmp_path / "five", n_train=3, n_test=2, size=16, seed=5,
                                  layout="folders")
    aligned = pixels(first / "train")[0]
    np.testing.assert_array_equal(aligned[:, :16], pixels(folders / "A" / "train")[0])
    np.testing.assert_array_equal(aligned[:, 16:], pixels(folders / "B" / "train")[0])
    summer, winter = draw_pair([5, 0, 0], 16, 16)
    np.testing.assert_array_equal(aligned, np.concatenate([summer, winter], axis=1))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_paired_dataset(tmp_path / "one", n_train=3, n_test=2, size=16, seed=5)
    make_paired_dataset(tmp_path / "one", n_train=2, n_test=1, size=16, seed=5, overwrite=True)
    assert len(data.list_images(tmp_path / "one")) == 3
    with pytest.raises(ValueError, match="Received: layout='unaligned'"):
        make_paired_dataset(tmp_path / "six", layout="unaligned")
