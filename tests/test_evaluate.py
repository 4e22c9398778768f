"""tfcyclegan.evaluate: the paired metrics against numpy computations written out here,
the test split's three layouts on real files (16 px), the report files, and the errors.

Translators are plain functions (identity, a brightness shift): what is measured here is
the measuring, not a model.
"""

import csv
import json
import socket

import keras
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from tests.conftest import noise_image, save_image
from tfcyclegan import cli, evaluate, inception

SIZE = 16
# The cap for identical images (evaluate.paired_metrics): one level off in one pixel of 256x256.
PSNR_CAP = 10 * np.log10(255.0**2 * 256 * 256)


def _pixels(images):
    """[-1, 1] floats -> 0-255 float64 pixels, rounded and clipped as a saved PNG would be."""
    return np.clip(np.round((np.asarray(images, np.float64) + 1) * 127.5), 0, 255)


def _psnr(output, target):
    mse = np.mean((_pixels(output) - _pixels(target)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def _ssim(output, target):
    """SSIM (Wang et al. 2004) of one HxWxC pair of 0-255 images: an 11x11 Gaussian window of
    sigma 1.5 over the valid positions, k1 = 0.01, k2 = 0.03, averaged over pixels and channels."""
    x, y = _pixels(output), _pixels(target)
    offsets = np.arange(11) - 5.0
    g = np.exp(-(offsets**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()

    def local_mean(image):
        return np.einsum("ijcab,ab->ijc", sliding_window_view(image, (11, 11), axis=(0, 1)), window)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = local_mean(x), local_mean(y)
    vx, vy, cxy = local_mean(x * x) - mx**2, local_mean(y * y) - my**2, local_mean(x * y) - mx * my
    ssim_map = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return ssim_map.mean()


def _smooth(rng, n, height=SIZE, width=SIZE):
    """Images with structure (SSIM of noise against noise is ~0 and checks little)."""
    walk = np.cumsum(np.cumsum(rng.normal(size=(n, height, width, 3)), axis=1), axis=2)
    walk -= walk.min(axis=(1, 2, 3), keepdims=True)
    return (walk / walk.max(axis=(1, 2, 3), keepdims=True) * 1.8 - 0.9).astype(np.float32)


# --- paired_metrics --------------------------------------------------------------


def test_psnr_ssim_and_l1_match_numpy(rng):
    targets = _smooth(rng, 3, 16, 24)
    outputs = np.clip(targets + rng.normal(0, 0.05, targets.shape), -1, 1).astype(np.float32)
    outputs[2] = np.clip(targets[2] + 20 / 127.5, -1, 1)  # brighter: SSIM's luminance term
    metrics = evaluate.paired_metrics(outputs, targets)
    assert sorted(metrics) == ["l1", "psnr_db", "ssim"]
    for i in range(3):
        assert metrics["psnr_db"][i] == pytest.approx(_psnr(outputs[i], targets[i]), rel=1e-5)
        assert metrics["ssim"][i] == pytest.approx(_ssim(outputs[i], targets[i]), rel=1e-4)
        l1 = np.mean(np.abs(_pixels(outputs[i]) - _pixels(targets[i]))) / 255
        assert metrics["l1"][i] == pytest.approx(l1, rel=1e-5)
    assert 0 < metrics["ssim"].min() and metrics["ssim"].max() < 1  # neither trivial nor identical


def test_outputs_are_rounded_to_pixels_before_measuring(rng):
    targets = _pixels(_smooth(rng, 2)) / 127.5 - 1  # exactly on the 8-bit levels
    outputs = targets + 0.4 / 127.5  # less than half a level off: the same PNG
    metrics = evaluate.paired_metrics(outputs.astype(np.float32), targets.astype(np.float32))
    np.testing.assert_allclose(metrics["psnr_db"], PSNR_CAP)  # capped: JSON has no infinity
    np.testing.assert_allclose(metrics["ssim"], 1.0, rtol=1e-6)
    np.testing.assert_array_equal(metrics["l1"], 0.0)


# --- The test split on disk ------------------------------------------------------


def _folders(root, rng, names_a, names_b):
    """testA/ and testB/ of 16 px noise images."""
    for letter, names in (("A", names_a), ("B", names_b)):
        for name in names:
            save_image(root / f"test{letter}" / name, noise_image(rng, SIZE, SIZE))
    return root


def _loaded(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float32) / 127.5 - 1


def test_testa_and_testb_pairing_by_name_are_ground_truth(tmp_path, rng):
    root = _folders(tmp_path, rng, ["1.png", "2.png", "3.png"], ["1.png", "2.png", "3.png"])
    split = evaluate.load_test_split(root, "a2b", image_size=SIZE)
    assert split.form == "folders" and split.names == ["1.png", "2.png", "3.png"]
    assert split.inputs.shape == split.targets.shape == (3, SIZE, SIZE, 3)
    # Loaded at their own size: the pixels of the files, A in, B as the truth and the reals.
    np.testing.assert_allclose(split.inputs[1], _loaded(root / "testA" / "2.png"), atol=1e-6)
    np.testing.assert_allclose(split.targets[1], _loaded(root / "testB" / "2.png"), atol=1e-6)
    np.testing.assert_array_equal(split.reals, split.targets)
    backwards = evaluate.load_test_split(root, "b2a", image_size=SIZE, max_images=2)
    np.testing.assert_array_equal(backwards.inputs, split.targets[:2])
    np.testing.assert_array_equal(backwards.targets, split.inputs[:2])


def test_the_aligned_layout_splits_each_image_into_input_and_truth(tmp_path, rng):
    a, b = noise_image(rng, SIZE, SIZE), noise_image(rng, SIZE, SIZE)
    save_image(tmp_path / "test" / "0.png", np.concatenate([a, b], axis=1))
    split = evaluate.load_test_split(tmp_path, image_size=SIZE)
    assert split.form == "aligned" and split.names == ["0.png"]
    np.testing.assert_allclose(split.inputs[0], a / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(split.targets[0], b / 127.5 - 1, atol=1e-6)


def test_folders_that_do_not_pair_are_unpaired(tmp_path, rng):
    root = _folders(tmp_path, rng, ["horse1.png", "horse2.png"], ["zebra1.png", "zebra2.png", "zebra3.png"])
    split = evaluate.load_test_split(root, image_size=8)
    assert split.form == "unpaired" and split.targets is None
    assert split.inputs.shape == (2, 8, 8, 3) and split.reals.shape == (3, 8, 8, 3)


def test_a_root_without_test_images_is_named(tmp_path):
    (tmp_path / "trainA").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no test split: expected test/ .* or testA/ and testB/"):
        evaluate.load_test_split(tmp_path)


# --- evaluate --------------------------------------------------------------------


def test_evaluate_writes_the_report_the_table_the_csv_and_the_cases(tmp_path, rng):
    root = _folders(tmp_path / "data", rng, ["a.png", "b.png", "c.png"], ["a.png", "b.png", "c.png"])
    out = tmp_path / "eval"
    report = evaluate.evaluate(lambda x: x, root, fid=False, image_size=SIZE, out_dir=out, verbose=False)
    split = evaluate.load_test_split(root, image_size=SIZE)
    expected = [_psnr(split.inputs[i], split.targets[i]) for i in range(3)]
    assert (report.count, report.image_size, report.direction) == (3, SIZE, "a2b")
    assert [entry["psnr_db"] for entry in report.per_image] == pytest.approx(expected, rel=1e-5)
    assert report.paired["psnr_db"]["mean"] == pytest.approx(np.mean(expected), rel=1e-5)
    assert report.paired["psnr_db"]["std"] == pytest.approx(np.std(expected), rel=1e-4)
    assert report.fid is None and "not computed" in report.fid_note

    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["data"] == {"root": str(root), "form": "folders"} and saved["count"] == 3
    assert saved["paired"] == report.paired
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert [row["name"] for row in rows] == ["a.png", "b.png", "c.png"]
    assert [float(row["psnr_db"]) for row in rows] == pytest.approx(expected, rel=1e-5)
    table = (out / "evaluation.md").read_text()
    assert "| images | PSNR dB | SSIM | L1 | FID |" in table and f"| translated | {np.mean(expected):.2f} ±" in table
    # cases.png: the worst and the best (of 3: all three), input | output | truth, 16 px each.
    cases = np.asarray(Image.open(out / "cases.png"))
    assert cases.shape[1] == 3 * SIZE and cases.shape[0] > 3 * SIZE  # a header above the rows


def test_the_cases_grid_shows_the_worst_translation_first(rng):
    targets = _smooth(rng, 4)
    outputs = np.stack([np.clip(targets[i] + rng.normal(0, 0.02 * (1 + 3 * (i == 2)), targets[i].shape), -1, 1)
                        for i in range(4)]).astype(np.float32)
    split = evaluate.TestSplit(form="aligned", names=list("abcd"), inputs=targets, targets=targets, reals=targets)
    metrics = evaluate.paired_metrics(outputs, targets)
    per_image = [{"name": n, "psnr_db": p} for n, p in zip("abcd", metrics["psnr_db"])]
    picture = evaluate.cases_grid(split, outputs, per_image, count=1)
    rows = picture[-2 * SIZE:]  # below the header: the worst, then the best
    np.testing.assert_array_equal(rows[:SIZE, SIZE:2 * SIZE], _pixels(outputs[2]))
    best = int(np.argmax(metrics["psnr_db"]))
    np.testing.assert_array_equal(rows[SIZE:, SIZE:2 * SIZE], _pixels(outputs[best]))


def test_without_ground_truth_there_are_no_paired_numbers(tmp_path, rng):
    root = _folders(tmp_path / "data", rng, ["x.png", "y.png"], ["z.png"])
    report = evaluate.evaluate(lambda x: x, root, fid=False, image_size=SIZE, out_dir=tmp_path / "eval",
                               verbose=False)
    assert report.paired is None and report.per_image == []
    assert report.row()["PSNR dB"] == "-" and report.row()["FID"] == "-"
    assert not (tmp_path / "eval" / "per_image.csv").exists()
    assert (tmp_path / "eval" / "cases.png").exists()


def test_a_bad_direction_is_named(tmp_path, rng):
    root = _folders(tmp_path, rng, ["1.png"], ["1.png"])
    with pytest.raises(ValueError, match="Received: direction='sideways'"):
        evaluate.evaluate(lambda x: x, root, direction="sideways", fid=False, verbose=False)


def test_missing_fid_weights_fail_before_anything_is_translated(tmp_path, rng):
    root = _folders(tmp_path, rng, ["1.png"], ["1.png"])
    calls = []

    def translator(images):
        calls.append(len(images))
        return images

    with pytest.raises(FileNotFoundError, match="No FID Inception weights file at"):
        evaluate.evaluate(translator, root, fid_weights=tmp_path / "missing.pth", image_size=SIZE,
                          verbose=False)
    assert calls == []


# --- Beside the untouched input ---------------------------------------------------


def _near_pairs(root, rng, count=3):
    """testA/ and testB/ pairing by name, B = A plus a little noise: the input is already close
    to the truth, so a translator that adds more noise makes it worse."""
    for i in range(count):
        a = _pixels(_smooth(rng, 1)[0]).astype(np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
        save_image(root / "testA" / f"{i}.png", a)
        save_image(root / "testB" / f"{i}.png", b)
    return root


def _noisy(images):
    noise = np.random.default_rng(1).normal(0, 0.2, images.shape)
    return np.clip(images + noise, -1, 1).astype(np.float32)


def test_an_unchanged_input_scores_exactly_the_inputs_numbers_and_no_warning(tmp_path, rng):
    root = _near_pairs(tmp_path / "data", rng)
    report = evaluate.evaluate(lambda x: x, root, fid=False, image_size=SIZE, out_dir=tmp_path / "eval",
                               verbose=False)
    split = evaluate.load_test_split(root, image_size=SIZE)
    expected = np.mean([_psnr(split.inputs[i], split.targets[i]) for i in range(3)])
    assert report.baseline["psnr_db"]["mean"] == pytest.approx(expected, rel=1e-5)
    assert report.paired == report.baseline  # the same images measured the same way
    assert report.worse_than_input is False and report.warning() is None
    assert "warning:" not in report.summary() and f"(input {expected:.2f})" in report.summary()
    saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert saved["baseline"] == report.baseline and saved["worse_than_input"] is False
    table = (tmp_path / "eval" / "evaluation.md").read_text()
    assert f"| untouched input | {expected:.2f} ±" in table and "warning:" not in table


def test_a_translator_that_adds_noise_is_warned_about_from_the_cli(tmp_path, rng, monkeypatch, capsys):
    root = _near_pairs(tmp_path / "data", rng)
    # The command line's own path, with a plain function standing in for the model artifact.
    monkeypatch.setattr(evaluate, "load_translator", lambda model, **kwargs: _noisy)
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", "noisy", "--data", str(root), "--image-size", str(SIZE), "--no-fid",
            "--out", str(out)]
    assert cli.main(argv) == cli.EXIT_OK
    saved = json.loads((out / "evaluation.json").read_text())
    ours, inputs = saved["paired"]["psnr_db"]["mean"], saved["baseline"]["psnr_db"]["mean"]
    assert ours < inputs - 3 and saved["worse_than_input"] is True
    printed = capsys.readouterr().out.splitlines()
    warnings = [line for line in printed if line.startswith("warning:")]
    assert warnings == [
        f"warning: the translations score below the untouched inputs (PSNR {ours:.2f} dB < {inputs:.2f} dB; "
        f"SSIM {saved['paired']['ssim']['mean']:.3f} < {saved['baseline']['ssim']['mean']:.3f}): "
        "the model makes these images worse"
    ]
    assert f"PSNR dB {ours:.2f} ± " in printed[0] and f"(input {inputs:.2f})" in printed[0]
    assert warnings[0] in (out / "evaluation.md").read_text()


def test_inputs_that_cannot_be_compared_with_the_truth_have_no_baseline():
    rng = np.random.default_rng(0)
    gray, color = _smooth(rng, 2)[..., :1], _smooth(rng, 2)  # a 1 -> 3 channel model
    split = evaluate.TestSplit(form="aligned", names=["0", "1"], inputs=gray, targets=color, reals=color)
    report = evaluate.evaluate(lambda x: np.repeat(x, 3, axis=-1), split, fid=False, verbose=False)
    assert report.paired is not None and report.baseline is None and report.worse_than_input is None
    assert "input" not in report.summary() and "untouched input" not in report.to_markdown()


# --- FID offline -----------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """keras.utils.get_file as it runs without network: the real download, from a closed port of
    this machine, into an empty cache. Returns where the file would have been cached."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    get_file = keras.utils.get_file
    cache = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(cache))
    monkeypatch.setattr(keras.utils, "get_file", lambda **kwargs: get_file(
        **{**kwargs, "origin": f"http://127.0.0.1:{port}/{inception.FID_WEIGHTS_FILE}", "cache_dir": str(cache)}))
    return cache / "models" / inception.FID_WEIGHTS_FILE


def test_offline_the_other_metrics_are_written_and_the_skip_is_explained(tmp_path, rng, offline):
    root = _near_pairs(tmp_path / "data", rng)
    out = tmp_path / "eval"
    report = evaluate.evaluate(lambda x: x, root, image_size=SIZE, out_dir=out, verbose=False)
    assert report.fid is None and report.kid is None and report.paired is not None
    note = report.fid_note
    assert note.startswith("skipped: Could not download the FID Inception weights") and "\n" not in note
    assert inception.FID_WEIGHTS_URL in note and "Connection refused" in note
    assert "--fid-weights PATH" in note and str(offline) in note
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["paired"] == report.paired and saved["fid"] is None and saved["fid_note"] == note


def test_offline_the_cli_says_in_one_line_that_fid_was_skipped(tmp_path, rng, offline, monkeypatch, capsys):
    root = _near_pairs(tmp_path / "data", rng)
    monkeypatch.setattr(evaluate, "load_translator", lambda model, **kwargs: lambda x: x)
    out = tmp_path / "eval"
    assert cli.main(["evaluate", "--model", "m", "--data", str(root), "--image-size", str(SIZE),
                     "--out", str(out)]) == cli.EXIT_OK
    assert json.loads((out / "evaluation.json").read_text())["paired"]["psnr_db"]["mean"] > 0
    skipped = [line for line in capsys.readouterr().out.splitlines() if "FID" in line]
    assert len(skipped) == 1 and skipped[0].startswith("FID/KID: skipped")
    assert inception.FID_WEIGHTS_URL in skipped[0] and "--fid-weights" in skipped[0]


def test_offline_fid_asked_for_fails_loudly_before_translating(tmp_path, rng, offline, monkeypatch, capsys):
    root = _near_pairs(tmp_path / "data", rng)
    calls = []
    monkeypatch.setattr(evaluate, "load_translator", lambda model, **kwargs: lambda x: calls.append(x) or x)
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", "m", "--data", str(root), "--image-size", str(SIZE), "--fid", "--out", str(out)]
    assert cli.main(argv) == cli.EXIT_FAILED
    error = capsys.readouterr().err
    assert error.startswith("tfcyclegan evaluate: error: Could not download the FID Inception weights from "
                            + inception.FID_WEIGHTS_URL)
    assert "--fid-weights PATH" in error and calls == [] and not out.exists()
    with pytest.raises(OSError, match="Could not download the FID Inception weights"):
        evaluate.evaluate(lambda x: x, root, fid=True, image_size=SIZE, verbose=False)


def test_without_torch_to_read_the_cached_pth_fid_is_skipped_unless_asked_for(tmp_path, rng, monkeypatch):
    root = _folders(tmp_path, rng, ["1.png", "2.png"], ["1.png", "2.png"])

    def no_torch(weights=None):
        raise ImportError("Reading pt_inception-2015-12-05-6726825d.pth needs PyTorch: pip install ...")

    monkeypatch.setattr(inception, "load_fid_inception", no_torch)
    report = evaluate.evaluate(lambda x: x, root, image_size=SIZE, verbose=False)
    assert report.fid is None and report.fid_note.startswith("skipped: Reading pt_inception")
    with pytest.raises(ImportError, match="needs PyTorch"):
        evaluate.evaluate(lambda x: x, root, fid=True, image_size=SIZE, verbose=False)


def test_fid_is_none_true_or_false(tmp_path, rng):
    root = _folders(tmp_path, rng, ["1.png"], ["1.png"])
    with pytest.raises(ValueError, match="Received: fid='yes'"):
        evaluate.evaluate(lambda x: x, root, fid="yes", verbose=False)


def test_no_fid_and_fid_exclude_each_other(capsys):
    assert cli.main(["evaluate", "--model", "m", "--data", "d", "--fid", "--no-fid"]) == cli.EXIT_USAGE
    assert "not allowed with argument" in capsys.readouterr().err
