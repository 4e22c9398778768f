"""The bad-input battery: the `tfcyclegan` command given what users really give it.

Every case drives `cli.main([...])` and expects exit code 1 (failed) or 2 (bad
flags) with a message on standard error that names the file or flag at fault,
and never a Python or TensorFlow traceback (`--debug` shows one). The
README's "Reliability" section lists these cases; keep the two in step.

Serving-side bad inputs (bytes that are not an image, images above
max_pixels, requests above max_batch_size, sent to the SavedModel's
signatures) are tested beside the signatures in test_export.py, and bad model
files for the library in test_export_errors.py.
"""

import errno
import os
import shutil
import struct
import zlib

import keras
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import TINY_MODEL_FLAGS
from tfcyclegan import cli, fileio
from tfcyclegan.synthetic import make_demo_dataset

# End to end: every case runs the CLI on a trained run (`world`). make test-fast skips the file.
pytestmark = pytest.mark.slow

TINY = [*TINY_MODEL_FLAGS,
        "--load-size", "16", "--crop-size", "16", "--seed", "0", "--num-samples", "1", "--pool-size", "2",
        "--progress", "0", "--epochs", "1", "--epochs-decay", "0", "--steps-per-epoch", "2", "--no-validate"]


def _huge_png(path, width=20000, height=20000):
    """A PNG whose header claims width x height pixels (a decompression bomb), a few bytes long."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Paths to good and bad things: a dataset, a trained run, files of every wrong kind."""
    root = tmp_path_factory.mktemp("world")
    w = {"root": root, "data": str(make_demo_dataset(root / "data", n_train=3, n_test=1, size=16))}
    runs = root / "runs"
    assert cli.main(["train", "--data", w["data"], "--runs-dir", str(runs), "--name", "good", *TINY]) == 0
    w["run"] = runs / "good"
    (root / "empty").mkdir()
    (root / "a_file.txt").write_text("not a folder")
    photos = root / "photos"
    photos.mkdir()
    Image.new("RGB", (20, 12), "green").save(photos / "fine.png")
    w["photos"] = photos
    (root / "not_images").mkdir()
    (root / "not_images" / "fake.png").write_bytes(b"these bytes are no image at all")
    (root / "bomb").mkdir()
    _huge_png(root / "bomb" / "bomb.png")
    # Bad data for training: a domain with one corrupt file.
    bad_data = root / "bad_data"
    shutil.copytree(w["data"], bad_data)
    (bad_data / "trainA" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    w["bad_data"] = bad_data
    # Model files of the wrong kind.
    classifier = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="classifier")
    classifier.save(root / "classifier.keras")
    function = tf.function(lambda x: classifier(x), input_signature=[tf.TensorSpec([1, 4])])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], classifier)
    (root / "classifier.tflite").write_bytes(converter.convert())
    keras_bytes = (w["run"] / "model.keras").read_bytes()
    (root / "truncated.keras").write_bytes(keras_bytes[: len(keras_bytes) // 2])
    (root / "model.keras.txt").write_bytes(keras_bytes)
    return w


def _run_copy(world, name, edit):
    """A copy of the trained run, changed by `edit(path)`."""
    run = world["root"] / "edited" / name
    shutil.copytree(world["run"], run)
    edit(run)
    return run


def _truncate_checkpoint(run):
    os.remove(run / "model.keras")  # as a run killed before its end
    data = next((run / "checkpoints").glob("ckpt-*.data-*"))
    data.write_bytes(data.read_bytes()[:100])


def _truncate_model_keras(run):
    shutil.rmtree(run / "checkpoints")  # model.keras is all the run has
    data = (run / "model.keras").read_bytes()
    (run / "model.keras").write_bytes(data[: len(data) // 2])


def _folder_with(world, name, *files):
    """A folder holding `files` (the user's own), made once."""
    folder = world["root"] / name
    folder.mkdir(exist_ok=True)
    for file in files:
        (folder / file).write_bytes(b"the user's own file")
    return folder


REFERENCE_NPZ = os.path.join(os.path.dirname(__file__), "data", "reference", "a_resnet_ngf8_nb2.npz")


def _garble(name, text):
    def edit(run):
        (run / name).write_text(text)

    return edit


# (case, argv from the world, text the message must contain, exit code)
CASES = [
    ("train: missing dataset folder", lambda w: ["train", "--data", str(w["root"] / "nope")],
     "Dataset folder not found: {root}/nope", 1),
    ("train: empty dataset folder", lambda w: ["train", "--data", str(w["root"] / "empty")], "{root}/empty", 1),
    ("train: a file where a folder is expected", lambda w: ["train", "--data", str(w["root"] / "a_file.txt")],
     "{root}/a_file.txt", 1),
    ("train: a missing domain folder", lambda w: ["train", "--domain-a", w["data"] + "/trainA",
                                                   "--domain-b", str(w["root"] / "no_b")], "{root}/no_b", 1),
    ("train: a corrupt image without --skip-bad-files", lambda w: ["train", "--data", str(w["bad_data"]),
                                                                  "--runs-dir", str(w["root"] / "r1"), *TINY],
     "corrupt.png", 1),
    ("train: a bad flag value (negative epochs)", lambda w: ["train", "--data", w["data"], "--epochs", "-1"],
     "epochs=-1", 1),
    ("train: a flag of the wrong type", lambda w: ["train", "--data", w["data"], "--crop-size", "big"],
     "--crop-size", 2),
    ("train --resume: not a run folder", lambda w: ["train", "--resume", str(w["root"] / "empty")],
     "{root}/empty is not a tfcyclegan run folder", 1),
    ("train --resume: config.json edited into garbage",
     lambda w: ["train", "--resume", str(_run_copy(w, "cfg", _garble("config.json", "{ngf: 4,")))],
     "config.json is not a valid run config", 1),
    ("train --resume: config.json with a value of the wrong type",
     lambda w: ["train", "--resume", str(_run_copy(w, "cfg2", _garble("config.json", '{"model": {"ngf": "many"}}')))],
     "ngf='many'", 1),
    ("train --resume: run.json edited into garbage",
     lambda w: ["train", "--resume", str(_run_copy(w, "runjson", _garble("run.json", "[1, 2")))],
     "run.json is not valid JSON", 1),
    ("train --resume: a truncated checkpoint",
     lambda w: ["train", "--resume", str(_run_copy(w, "ckpt", _truncate_checkpoint))],
     "Cannot read checkpoint", 1),
    ("translate: a truncated checkpoint of a killed run",
     lambda w: ["translate", "--model", str(_run_copy(w, "ckpt2", _truncate_checkpoint)),
                "--input", str(w["photos"]), "--out", str(w["root"] / "o1")], "Cannot read checkpoint", 1),
    ("translate: missing input", lambda w: ["translate", "--model", str(w["run"]), "--input",
                                            str(w["root"] / "nope"), "--out", str(w["root"] / "o2")],
     "Input not found: {root}/nope", 1),
    ("translate: empty input folder", lambda w: ["translate", "--model", str(w["run"]), "--input",
                                                 str(w["root"] / "empty"), "--out", str(w["root"] / "o3")],
     "No images in {root}/empty", 1),
    ("translate: a file where the output folder is expected",
     lambda w: ["translate", "--model", str(w["run"]), "--input", str(w["photos"]),
                "--out", str(w["root"] / "a_file.txt")], "{root}/a_file.txt", 1),
    ("translate: non-image bytes", lambda w: ["translate", "--model", str(w["run"]), "--input",
                                              str(w["root"] / "not_images"), "--out", str(w["root"] / "o4")],
     "fake.png", 1),
    ("translate: an oversized image (decompression bomb)",
     lambda w: ["translate", "--model", str(w["run"]), "--input", str(w["root"] / "bomb"),
                "--out", str(w["root"] / "o5")], "bomb.png", 1),
    ("translate: no model there", lambda w: ["translate", "--model", str(w["root"] / "gone.keras"), "--input",
                                             str(w["photos"]), "--out", str(w["root"] / "o6")],
     "No model at {root}/gone.keras", 1),
    ("translate: a folder that is not a run", lambda w: ["translate", "--model", str(w["photos"]), "--input",
                                                         str(w["photos"]), "--out", str(w["root"] / "o7")],
     "{root}/photos has no model.keras (nor config.json)", 1),
    ("translate: a .keras file of another model",
     lambda w: ["translate", "--model", str(w["root"] / "classifier.keras"), "--input", str(w["photos"]),
                "--out", str(w["root"] / "o8")], "is not a tfcyclegan model", 1),
    ("translate: a truncated .keras file",
     lambda w: ["translate", "--model", str(w["root"] / "truncated.keras"), "--input", str(w["photos"]),
                "--out", str(w["root"] / "o9")], "Cannot load {root}/truncated.keras as a Keras model", 1),
    ("translate: a model file with the wrong extension",
     lambda w: ["translate", "--model", str(w["root"] / "model.keras.txt"), "--input", str(w["photos"]),
                "--out", str(w["root"] / "o10")], "{root}/model.keras.txt", 1),
    ("translate: a .tflite of another model",
     lambda w: ["translate", "--model", str(w["root"] / "classifier.tflite"), "--input", str(w["photos"]),
                "--out", str(w["root"] / "o11")], "{root}/classifier.tflite is not a tfcyclegan generator", 1),
    ("translate: an epoch the run does not have",
     lambda w: ["translate", "--model", str(w["run"]), "--epoch", "40", "--input", str(w["photos"]),
                "--out", str(w["root"] / "o12")], "has no checkpoint of epoch 40", 1),
    ("translate: --epoch with a .keras file",
     lambda w: ["translate", "--model", str(w["run"] / "model.keras"), "--epoch", "1", "--input",
                str(w["photos"]), "--out", str(w["root"] / "o13")], "can only be chosen in a run folder", 1),
    ("translate: --checkpoint and --epoch together",
     lambda w: ["translate", "--model", str(w["run"]), "--epoch", "1", "--checkpoint", "ckpt-2", "--input",
                str(w["photos"]), "--out", str(w["root"] / "o14")], "not allowed with argument", 2),
    ("translate: a tile too small", lambda w: ["translate", "--model", str(w["run"]), "--input", str(w["photos"]),
                                               "--out", str(w["root"] / "o15"), "--tile", "8"], "tile=8", 1),
    ("translate: an overlap as large as the tile",
     lambda w: ["translate", "--model", str(w["run"]), "--input", str(w["photos"]), "--out",
                str(w["root"] / "o16"), "--tile", "64", "--tile-overlap", "64"], "tile_overlap=64", 1),
    ("translate: batch size 0", lambda w: ["translate", "--model", str(w["run"]), "--input", str(w["photos"]),
                                           "--out", str(w["root"] / "o17"), "--batch-size", "0"],
     "batch_size=0", 1),
    ("export: a file where the export folder is expected",
     lambda w: ["export", "--model", str(w["run"]), "--out", str(w["root"] / "a_file.txt" / "export"),
                "--format", "saved_model", "--no-parity"], "{root}/a_file.txt", 1),
    ("export: a .tflite file as the model", lambda w: ["export", "--model", str(w["root"] / "classifier.tflite"),
                                                       "--out", str(w["root"] / "e2")], "classifier.tflite", 1),
    ("evaluate: missing dataset", lambda w: ["evaluate", "--model", str(w["run"]), "--data",
                                             str(w["root"] / "nope"), "--no-fid", "--out", str(w["root"] / "ev")],
     "{root}/nope", 1),
    ("check-data: an image above --max-pixels", lambda w: ["check-data", "--domain-a", str(w["photos"]),
                                                           "--domain-b", str(w["photos"]), "--max-pixels", "100"],
     "", 1),
    ("translate: --out is the input folder",
     lambda w: ["translate", "--model", str(w["run"]), "--input", str(w["photos"]), "--out", str(w["photos"])],
     "would be the input folder or inside it", 1),
    ("translate: --out inside the input folder",
     lambda w: ["translate", "--model", str(w["run"]), "--input", str(w["photos"]), "--out",
                str(w["photos"] / "out")], "would be the input folder or inside it", 1),
    ("translate: a file of an output's name in --out, without --overwrite",
     lambda w: ["translate", "--model", str(w["run"]), "--input", str(w["photos"]), "--out",
                str(_folder_with(w, "taken", "fine.png"))], "already exist in {root}/taken", 1),
    ("translate: a run folder whose model.keras is truncated",
     lambda w: ["translate", "--model", str(_run_copy(w, "cut_short", _truncate_model_keras)),
                "--input", str(w["photos"]), "--out", str(w["root"] / "o18")],
     "not a .keras archive (a .keras file is a zip): truncated or corrupt?", 1),
    ("train: a crop size the generator cannot take",
     lambda w: ["train", "--data", w["data"], "--runs-dir", str(w["root"] / "r_crop"), *TINY,
                "--load-size", "36", "--crop-size", "30"], "Received: crop_size=30", 1),
    ("import-torch: an existing --out without --overwrite",
     lambda w: ["import-torch", REFERENCE_NPZ, "--out", str(_folder_with(w, "imported", "G.keras") / "G.keras")],
     "G.keras already exists", 1),
    ("evaluate: --max-images 0", lambda w: ["evaluate", "--model", str(w["run"]), "--data", w["data"],
                                            "--no-fid", "--max-images", "0"], "max_images=0", 1),
    ("demo: a negative step count", lambda w: ["demo", "--steps", "-1", "--out", str(w["root"] / "demo")],
     "steps=-1", 1),
    ("an unknown command", lambda w: ["transalte"], "invalid choice: 'transalte'", 2),
]


@pytest.mark.parametrize("case, argv, message, code", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_a_message_not_a_traceback(world, case, argv, message, code, capsys):
    assert cli.main(argv(world)) == code, case
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and "tensorflow/core" not in err, err[-3000:]
    if code == 1 and "check-data" not in case and "non-image" not in case and "oversized" not in case:
        lines = [line for line in err.splitlines() if line.startswith("tfcyclegan ")]
        assert len(lines) == 1 and ": error: " in lines[0], err[-3000:]
    text = (captured.out + err) if case.startswith(("translate: non", "translate: an over", "check")) else err
    assert message.format(root=world["root"]) in text, text[-3000:]


def test_debug_shows_the_traceback(world):
    with pytest.raises(FileNotFoundError, match="Input not found"):
        cli.main(["translate", "--debug", "--model", str(world["run"]), "--input", str(world["root"] / "nope"),
                  "--out", str(world["root"] / "o")])


def test_unreadable_image_mid_training_names_the_file(world, monkeypatch, capsys):
    """A file that becomes unreadable after the start-up check (e.g. on a network disk)."""
    from tfcyclegan.data import pipeline

    read_image = pipeline.read_image

    def flaky(name, data, channels, max_pixels):
        if name.decode().endswith("trainA/summer_0001.png"):
            raise ValueError(f"Cannot read image {name.decode()}: image file is truncated")
        return read_image(name, data, channels, max_pixels)

    monkeypatch.setattr(pipeline, "read_image", flaky)
    argv = ["train", "--data", world["data"], "--runs-dir", str(world["root"] / "mid"), *TINY]
    argv[argv.index("--steps-per-epoch") + 1] = "6"
    assert cli.main(argv) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "trainA/summer_0001.png: image file is truncated" in err.splitlines()[-1], err[-2000:]


def test_bad_files_are_skipped_and_listed_with_skip_bad_files(world, caplog):
    argv = ["train", "--data", str(world["bad_data"]), "--runs-dir", str(world["root"] / "skip"),
            "--skip-bad-files", *TINY]
    assert cli.main(argv) == cli.EXIT_OK
    assert "corrupt.png" in caplog.text  # logged as a warning (standard error outside pytest)


@pytest.mark.parametrize("command", ["train", "translate"])
def test_disk_full_names_the_file(world, command, monkeypatch, capsys):
    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", os.fspath(path))

    def full_image(image, path, *args, **kwargs):
        full(path)

    if command == "train":
        monkeypatch.setattr(fileio, "atomic_write", full)
        argv = ["train", "--data", world["data"], "--runs-dir", str(world["root"] / "full"), *TINY]
        where = str(world["root"] / "full")
    else:
        monkeypatch.setattr(Image.Image, "save", full_image)
        argv = ["translate", "--model", str(world["run"]), "--input", str(world["photos"]),
                "--out", str(world["root"] / "full_out")]
        where = str(world["root"] / "full_out" / "fine.png")
    assert cli.main(argv) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "No space left on device" in err and where in err and "Traceback" not in err, err[-2000:]
    if command == "translate":
        assert not os.path.exists(where) and os.listdir(world["root"] / "full_out") == []  # no half image


def test_the_battery_is_listed_in_the_readme():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    count = len(CASES) + 5  # + the mid-training, --skip-bad-files, disk-full (2) and --debug tests
    assert f"{count} bad inputs" in readme
    for case, *_ in CASES:
        assert case in readme, case
