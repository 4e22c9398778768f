"""End-to-end tests of the `tfcyclegan` command, called as `main([...])`."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import TINY_MODEL_FLAGS
from tfcyclegan import cli
from tfcyclegan.config import Config
from tfcyclegan.synthetic import make_demo_dataset

TINY_FLAGS = [
    *TINY_MODEL_FLAGS,
    "--load-size", "36", "--crop-size", "32", "--seed", "3", "--num-samples", "2", "--pool-size", "3",
    "--progress", "0",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return str(make_demo_dataset(tmp_path_factory.mktemp("data"), n_train=8, n_test=3, size=32))


def checkpoint_values(path):
    reader = tf.train.load_checkpoint(path)
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name.startswith(("G/", "F/", "D_X/", "D_Y/", "optimizer_", "pool_"))
    }


@pytest.mark.slow
def test_train_then_resume_with_more_epochs(tmp_path, dataset):
    runs = str(tmp_path / "runs")
    code = cli.main(["train", "--data", dataset, "--runs-dir", runs, "--name", "t", "--epochs", "1",
                     "--epochs-decay", "0", "--steps-per-epoch", "3", *TINY_FLAGS])
    assert code == cli.EXIT_OK
    run = os.path.join(runs, "t")
    assert Config.load(os.path.join(run, "config.json")).model.generator == "resnet_1blocks"
    assert os.path.exists(os.path.join(run, "samples", "epoch_0001.png"))
    # Resuming with a longer schedule continues from step 3.
    code = cli.main(["train", "--resume", run, "--epochs", "2", "--progress", "0"])
    assert code == cli.EXIT_OK
    assert os.path.exists(os.path.join(run, "samples", "epoch_0002.png"))
    assert tf.train.latest_checkpoint(os.path.join(run, "checkpoints")).endswith("ckpt-6")


def test_flags_override_the_config_file_and_presets(tmp_path):
    config_file = tmp_path / "c.json"
    Config().replace(model=Config().model.replace(ngf=32)).save(config_file)
    args = cli.build_parser().parse_args(
        ["train", "--data", "d", "--config", str(config_file), "--image-size", "128", "--ndf", "16", "--no-flip"]
    )
    config = cli.config_from_args(args)
    assert config.model.ngf == 32 and config.model.ndf == 16
    assert config.model.generator == "resnet_6blocks"  # the paper's 128 px preset
    assert (config.data.crop_size, config.data.load_size, config.data.flip) == (128, 143, False)


@pytest.mark.parametrize("model", ["cyclegan", "pix2pix", "cut", "fastcut"])
def test_preset_paper_is_the_published_config_and_recommended_changes_only_what_was_measured(model):
    def parsed(*flags):
        return cli.config_from_args(cli.build_parser().parse_args(["train", "--data", "d", "--method", model, *flags]))

    assert parsed() == parsed("--preset", "paper") == Config.for_method(model)
    recommended = parsed("--preset", "recommended")
    if model == "cyclegan":
        assert recommended == Config().replace(model=Config().model.replace(upsample="resize_conv"))
    else:
        assert recommended == Config.for_method(model)
    # Flags still override a preset.
    assert parsed("--preset", "recommended", "--upsample", "transpose").model.upsample == "transpose"


def test_preset_look_is_the_colour_mode_and_only_where_measured():
    def parsed(*flags):
        return cli.config_from_args(cli.build_parser().parse_args(["train", "--data", "d", *flags]))

    look = parsed("--preset", "look")
    assert (look.model.generator, look.model.init_type, look.model.d_norm) == ("color", "kaiming", "none")
    assert look.train == Config().train and look.data == Config().data
    with pytest.raises(ValueError, match=r"'look' is for the methods \['cyclegan'\]; cut has no such"):
        parsed("--method", "cut", "--preset", "look")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "d", "--config", "c.json", "--preset", "paper"],
         "--config and --preset both pick the starting settings; give one. Received: --config c.json --preset paper"),
        (["train", "--resume", "r", "--preset", "recommended"], "drop --config/--preset/--image-size"),
        (["train", "--runs-dir", "r"], "Say where the images are"),
        (["train", "--data", "/no/such/root"], "Dataset folder not found: /no/such/root"),
        (["train", "--data", "d", "--crop-size", "300"], "crop_size=300, load_size=286"),
        (["train", "--data", "d", "--netG", "resnet_x"], "generator='resnet_x'"),
        (["train", "--resume", "/no/such/run"], "not a tfcyclegan run folder"),
        (["check-data", "--domain-a", "/no/a", "--domain-b", "/no/b"], "/no/a"),
    ],
)
def test_user_errors_give_a_message_and_exit_1(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == cli.EXIT_FAILED
    assert message in capsys.readouterr().err


def test_bad_flags_exit_2(capsys):
    assert cli.main(["train", "--pool-size", "many"]) == cli.EXIT_USAGE
    assert "invalid int value: 'many'" in capsys.readouterr().err
    assert cli.main(["train", "--norm", "layer"]) == cli.EXIT_USAGE


@pytest.mark.slow
def test_resume_refuses_another_architecture(tmp_path, dataset, capsys):
    runs = str(tmp_path / "runs")
    cli.main(["train", "--data", dataset, "--runs-dir", runs, "--name", "t", "--epochs", "1",
              "--epochs-decay", "0", "--steps-per-epoch", "1", *TINY_FLAGS])
    code = cli.main(["train", "--resume", os.path.join(runs, "t"), "--ngf", "8", "--progress", "0"])
    assert code == cli.EXIT_FAILED
    assert "model.ngf: 4 -> 8" in capsys.readouterr().err


def test_check_data_lists_bad_files(tmp_path, capsys):
    for letter in "AB":
        folder = tmp_path / f"train{letter}"
        folder.mkdir()
        Image.new("RGB", (8, 8), "red").save(folder / "good.png")
    (tmp_path / "trainB" / "broken.jpg").write_bytes(b"not a jpeg at all")
    assert cli.main(["check-data", "--data", str(tmp_path)]) == cli.EXIT_FAILED
    out = capsys.readouterr().out
    assert "broken.jpg" in out


def _train_command(dataset, runs, name, *extra):
    return [sys.executable, "-m", "tfcyclegan", "train", "--data", dataset, "--runs-dir", runs,
            "--name", name, "--epochs", "2", "--epochs-decay", "2", "--steps-per-epoch", "10",
            "--checkpoint-every", "3", "--deterministic", "--no-validate", "--sample-every", "0",
            *TINY_FLAGS, *extra]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path, dataset):
    runs = str(tmp_path / "runs")
    subprocess.run(_train_command(dataset, runs, "straight"), check=True, capture_output=True)

    killed = os.path.join(runs, "killed")
    process = subprocess.Popen(_train_command(dataset, runs, "killed"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    index = os.path.join(killed, "checkpoints", "checkpoint")
    deadline = time.time() + 240
    # Kill as soon as a mid-epoch checkpoint (step 3, 6 or 9 of 10) is the latest.
    while time.time() < deadline and process.poll() is None:
        latest = tf.train.latest_checkpoint(os.path.dirname(index)) if os.path.exists(index) else None
        if latest and int(latest.rsplit("-", 1)[1]) % 10:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert not os.path.exists(os.path.join(killed, "model.keras"))  # it really died mid-run

    # What was trained is usable at once: the latest checkpoint is the model.
    assert cli.main(["translate", "--model", killed, "--input", os.path.join(dataset, "testA"),
                     "--out", str(tmp_path / "translated")]) == cli.EXIT_OK
    assert len(os.listdir(tmp_path / "translated")) == 3
    assert cli.main(["export", "--model", killed, "--out", str(tmp_path / "export"), "--format",
                     "saved_model", "--direction", "a2b"]) == cli.EXIT_OK

    subprocess.run([sys.executable, "-m", "tfcyclegan", "train", "--resume", killed, "--progress", "0"],
                   check=True, capture_output=True)
    straight = checkpoint_values(os.path.join(runs, "straight", "checkpoints", "ckpt-40"))
    resumed = checkpoint_values(os.path.join(killed, "checkpoints", "ckpt-40"))
    assert straight.keys() == resumed.keys() and len(straight) > 50
    for name, value in straight.items():
        # Deterministic mode: the same ops in the same order; allow float round-off.
        np.testing.assert_allclose(resumed[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, dataset):
    runs = str(tmp_path_factory.mktemp("runs"))
    assert cli.main(["train", "--data", dataset, "--runs-dir", runs, "--name", "t", "--epochs", "1",
                     "--epochs-decay", "0", "--steps-per-epoch", "2", *TINY_FLAGS]) == cli.EXIT_OK
    return os.path.join(runs, "t")


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name, (w, h) in {"wide.png": (37, 21), "tall.jpg": (18, 45), "sub/square.png": (32, 32),
                         "tiny.bmp": (5, 3)}.items():
        os.makedirs(folder / os.path.dirname(name), exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / name)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return folder


def _check_translated(output, odd_images):
    for name in ("wide.png", "tall.jpg", "sub/square.png", "tiny.bmp"):
        source, result = Image.open(odd_images / name), Image.open(output / name)
        assert result.size == source.size, name  # any size in, the same size out


@pytest.mark.slow
def test_translate_a_folder_of_odd_sized_images_with_every_model_form(tmp_path, trained_run, odd_images, capsys):
    assert cli.main(["export", "--model", trained_run, "--out", str(tmp_path / "export"),
                     "--direction", "a2b", "--tflite-mode", "fp32", "--tflite-io", "float32"]) == cli.EXIT_OK
    tflite = next((tmp_path / "export" / "tflite").glob("*.tflite"))
    models = {
        "run": trained_run,
        "keras": os.path.join(trained_run, "model.keras"),
        "saved_model": str(tmp_path / "export" / "cyclegan_a2b"),
        "tflite": str(tflite),
    }
    for form, model in models.items():
        output = tmp_path / form
        code = cli.main(["translate", "--model", model, "--input", str(odd_images), "--out", str(output)])
        # The broken file is reported, not fatal; the exit code says something failed.
        assert code == cli.EXIT_FAILED, form
        assert "broken.png" in capsys.readouterr().out
        _check_translated(output, odd_images)
        # Tiled (in numpy, around each model form): the same sizes back.
        code = cli.main(["translate", "--model", model, "--input", str(odd_images), "--out",
                         str(tmp_path / f"{form}_tiled"), "--tile", "16", "--tile-overlap", "4"])
        assert code == cli.EXIT_FAILED, form
        assert "in tiles" in capsys.readouterr().out
        _check_translated(tmp_path / f"{form}_tiled", odd_images)
    keras_out = np.asarray(Image.open(tmp_path / "keras" / "wide.png"), np.int16)
    for form in ("run", "saved_model", "tflite"):
        other = np.asarray(Image.open(tmp_path / form / "wide.png"), np.int16)
        assert np.abs(other - keras_out).max() <= 1, form  # same model, rounding only


@pytest.mark.slow
def test_translate_one_file_in_the_other_direction(tmp_path, trained_run, odd_images):
    code = cli.main(["translate", "--model", trained_run, "--direction", "b2a",
                     "--input", str(odd_images / "wide.png"), "--out", str(tmp_path)])
    assert code == cli.EXIT_OK
    assert Image.open(tmp_path / "wide.png").size == (37, 21)


@pytest.mark.slow
def test_export_refuses_to_overwrite_a_version(tmp_path, trained_run, capsys):
    argv = ["export", "--model", trained_run, "--out", str(tmp_path), "--format", "saved_model",
            "--direction", "a2b", "--no-parity"]
    assert cli.main(argv) == cli.EXIT_OK
    assert cli.main(argv) == cli.EXIT_FAILED
    assert "These exports exist" in capsys.readouterr().err
    assert cli.main([*argv, "--version", "2"]) == cli.EXIT_OK
    assert sorted(os.listdir(tmp_path / "cyclegan_a2b")) == ["1", "2"]


@pytest.mark.slow
def test_export_bfloat16_saved_model(tmp_path, trained_run):
    argv = ["export", "--model", trained_run, "--out", str(tmp_path), "--format", "saved_model",
            "--direction", "a2b", "--saved-model-dtype", "bfloat16"]
    assert cli.main(argv) == cli.EXIT_OK
    report = json.loads((tmp_path / "export_report.json").read_text())
    assert report["saved_model_dtype"] == "bfloat16"
    assert report["parity"]["a2b"]["saved_model/translate"]["psnr_db"] > 30.0


def test_import_torch_then_translate(tmp_path, odd_images):
    reference = os.path.join(os.path.dirname(__file__), "data", "reference", "a_resnet_ngf8_nb2.npz")
    out = tmp_path / "G.keras"
    assert cli.main(["import-torch", reference, "--out", str(out), "--netG", "resnet_2blocks"]) == cli.EXIT_OK
    code = cli.main(["translate", "--model", str(out), "--input", str(odd_images / "sub"),
                     "--out", str(tmp_path / "out")])
    assert code == cli.EXIT_OK
    assert Image.open(tmp_path / "out" / "square.png").size == (32, 32)


@pytest.mark.slow
def test_demo_runs_end_to_end_on_tiny_settings(tmp_path, capsys):
    code = cli.main(["demo", "--out", str(tmp_path / "demo"), "--steps", "4", "--size", "32"])
    assert code == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "Done in" in out and "translated photos" in out
    assert (tmp_path / "demo" / "run" / "samples" / "latest.png").exists()
    assert len(os.listdir(tmp_path / "demo" / "translated")) == 8
    assert (tmp_path / "demo" / "export" / "export_report.json").exists()


@pytest.mark.slow
def test_ctrl_c_stops_after_a_step_saves_and_resumes(tmp_path, dataset):
    runs = str(tmp_path / "runs")
    command = _train_command(dataset, runs, "c")
    command[command.index("--steps-per-epoch") + 1] = "200"  # long enough to interrupt
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    index = os.path.join(runs, "c", "checkpoints", "checkpoint")
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None and not os.path.exists(index):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == cli.EXIT_INTERRUPTED, stderr[-2000:]
    assert "Stopping after this step" in stderr and "Resume with: tfcyclegan train --resume" in stderr
    run = os.path.join(runs, "c")
    assert os.path.exists(os.path.join(run, "model.keras"))
    stopped_at = int(tf.train.latest_checkpoint(os.path.join(run, "checkpoints")).rsplit("-", 1)[1])
    assert 3 <= stopped_at < 800
    # The run continues from where Ctrl-C left it.
    # (--no-deterministic: op determinism is process-wide and would turn XLA off
    # for every later test in this process.)
    code = cli.main(["train", "--resume", run, "--epochs", "0", "--epochs-decay", "1",
                     "--steps-per-epoch", "200", "--progress", "0", "--no-deterministic"])
    assert code == cli.EXIT_OK


@pytest.fixture(scope="module")
def mixed_sizes(tmp_path_factory):
    """A dataset whose images have several sizes and aspect ratios."""
    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(1)
    for folder, sizes in {"trainA": [(40, 32), (32, 44), (36, 36)], "trainB": [(44, 36), (32, 32)],
                          "testA": [(40, 36), (32, 40)], "testB": [(36, 44), (48, 32)]}.items():
        (root / folder).mkdir()
        for i, (w, h) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / folder / f"{i}.png")
    return str(root)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["scale_width", "scale_width_and_crop", "crop", "none"])
def test_every_preprocess_mode_trains_end_to_end(tmp_path, mixed_sizes, mode):
    flags = [f for f in TINY_FLAGS]
    flags[flags.index("--load-size") + 1] = "32"
    flags[flags.index("--crop-size") + 1] = "28" if mode == "scale_width_and_crop" else "32"
    code = cli.main(["train", "--data", mixed_sizes, "--runs-dir", str(tmp_path), "--name", "r", "--preprocess",
                     mode, "--epochs", "1", "--epochs-decay", "0", "--steps-per-epoch", "3", "--no-validate",
                     *flags])
    assert code == cli.EXIT_OK
    assert os.path.exists(tmp_path / "r" / "samples" / "epoch_0001.png")
    assert tf.train.latest_checkpoint(str(tmp_path / "r" / "checkpoints")).endswith("ckpt-3")


@pytest.mark.slow
def test_a_run_without_model_keras_translates_and_exports_any_epoch(tmp_path, dataset, capsys):
    runs = str(tmp_path / "runs")
    assert cli.main(["train", "--data", dataset, "--runs-dir", runs, "--name", "t", "--epochs", "1",
                     "--epochs-decay", "1", "--steps-per-epoch", "2", "--keep-checkpoints", "1",
                     "--save-epoch-every", "1", *TINY_FLAGS]) == cli.EXIT_OK
    run = os.path.join(runs, "t")
    os.remove(os.path.join(run, "model.keras"))  # as a run killed before its end
    photo = os.path.join(dataset, "testA")
    outputs = {}
    for choice in ([], ["--epoch", "1"], ["--checkpoint", "epoch-2"], ["--checkpoint", "ckpt-4"]):
        out = tmp_path / "_".join(choice or ["latest"])
        assert cli.main(["translate", "--model", run, "--input", photo, "--out", str(out), *choice]) == 0
        outputs[tuple(choice)] = np.asarray(Image.open(next(out.iterdir())), np.int16)
    assert np.array_equal(outputs[()], outputs[("--checkpoint", "ckpt-4")])
    assert np.array_equal(outputs[()], outputs[("--checkpoint", "epoch-2")])
    assert not np.array_equal(outputs[()], outputs[("--epoch", "1")])
    assert cli.main(["export", "--model", run, "--epoch", "1", "--out", str(tmp_path / "export"),
                     "--format", "saved_model", "--direction", "a2b", "--no-parity"]) == cli.EXIT_OK
    assert cli.main(["translate", "--model", run, "--epoch", "9", "--input", photo,
                     "--out", str(tmp_path / "x")]) == cli.EXIT_FAILED
    assert "has no checkpoint of epoch 9. It has: ['ckpt-4']; epochs [1, 2]." in capsys.readouterr().err


def test_help_imports_no_tensorflow():
    code = ("import sys, tfcyclegan.cli as c\n"
            "for argv in ([], ['train'], ['translate'], ['export'], ['evaluate'], ['ablate']):\n"
            "    try: c.main([*argv, '--help'])\n"
            "    except SystemExit: pass\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_keras_classes_are_registered_whatever_is_imported_first(tmp_path, trained_run):
    model = os.path.join(trained_run, "model.keras")
    # (`import keras, tfcyclegan` registers at once; these two rely on the import hook.)
    for first in ("import tfcyclegan; import keras",
                  "from tfcyclegan.layers import InstanceNormalization; import keras"):
        code = f"{first}\nprint(type(keras.saving.load_model({model!r})).__name__)"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
        assert result.stdout.strip() == "CycleGAN", (first, result.stderr[-2000:])


# === one vocabulary: --method, --model, --out, --direction, --progress / --verbose ===

NOTE = "the old spelling goes in the next release"


def parse(argv):
    return cli.build_parser().parse_args(argv)


def test_method_names_the_method_and_says_nothing(capsys):
    args = parse(["train", "--data", "d", "--method", "pix2pix"])
    assert cli.config_from_args(args).model.method == "pix2pix"
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "argv, attribute, value, note",
    [
        (["train", "--data", "d", "--model", "cut"], "method", "cut", "note: --model cut is now --method cut"),
        (["train", "--data", "d", "--verbose", "0"], "progress", 0, "note: --verbose 0 is now --progress 0"),
        (["translate", "--model", "m", "--input", "i", "--output", "o"], "out", "o",
         "note: --output o is now --out o"),
        (["ablate", "--data", "d", "--quiet"], "progress", 0, "note: --quiet is now --progress 0"),
    ],
)
def test_old_spellings_still_work_with_a_one_line_note(argv, attribute, value, note, capsys):
    assert getattr(parse(argv), attribute) == value
    assert capsys.readouterr().err == f"{note}; {NOTE}\n"


def test_train_model_old_spelling_still_picks_the_methods_defaults(capsys):
    assert cli.config_from_args(parse(["train", "--data", "d", "--model", "cut"])) == Config.for_method("cut")
    assert cli.main(["train", "--data", "d", "--model", "runs/h2z"]) == cli.EXIT_USAGE
    assert "argument --model: invalid choice: 'runs/h2z'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["translate", "--model", "m", "--input", "i"],
        ["export", "--model", "m"],
        ["evaluate", "--model", "m", "--data", "d"],
        ["ablate", "--data", "d"],
        ["import-torch", "G.pth"],
        ["demo"],
    ],
)
def test_out_is_the_output_of_every_command(command, capsys):
    assert parse([*command, "--out", "there"]).out == "there"
    assert capsys.readouterr().err == ""


def test_translate_needs_out_once(capsys):
    assert cli.main(["translate", "--model", "m", "--input", "i"]) == cli.EXIT_USAGE
    assert "the arguments --out is required" in capsys.readouterr().err
    assert cli.main(["translate", "--model", "m", "--input", "i", "--out", "a", "--output", "b"]) == cli.EXIT_USAGE
    assert "argument --output: not allowed with argument --out" in capsys.readouterr().err


@pytest.mark.parametrize("spelling, expected", [("a2b", "a2b"), ("AtoB", "a2b"), ("atob", "a2b"), ("x2y", "a2b"),
                                                ("b2a", "b2a"), ("BtoA", "b2a"), ("btoa", "b2a"), ("B2A", "b2a")])
def test_one_direction_vocabulary_in_every_command(spelling, expected, capsys):
    assert parse(["translate", "--model", "m", "--input", "i", "--out", "o", "--direction", spelling]).direction \
        == expected
    assert parse(["evaluate", "--model", "m", "--data", "d", "--direction", spelling]).direction == expected
    assert parse(["export", "--model", "m", "--out", "o", "--direction", spelling]).direction == expected
    assert parse(["distill", "--teacher", "t", "--direction", spelling]).teacher_direction == expected
    # Which side of a pair is x: read the same way, stored in config.json's AtoB/BtoA.
    config = cli.config_from_args(parse(["train", "--data", "d", "--method", "pix2pix", "--direction", spelling]))
    assert config.data.direction == {"a2b": "AtoB", "b2a": "BtoA"}[expected]
    assert capsys.readouterr().err == ""


def test_both_directions_only_where_a_command_can_do_both(capsys):
    assert parse(["export", "--model", "m", "--out", "o", "--direction", "Both"]).direction == "both"
    assert parse(["export", "--model", "m", "--out", "o"]).direction == "both"
    assert cli.main(["translate", "--model", "m", "--input", "i", "--out", "o", "--direction", "both"]) \
        == cli.EXIT_USAGE
    assert ("argument --direction: `direction` must be one of ['a2b', 'b2a'] (or 'AtoB'/'BtoA', 'x2y'/'y2x'). "
            "Received: direction='both'") in capsys.readouterr().err
    assert cli.main(["train", "--data", "d", "--direction", "up"]) == cli.EXIT_USAGE
    assert "Received: direction='up'" in capsys.readouterr().err
    # The library reads directions with the same function.
    from tfcyclegan.config import data_direction, parse_direction

    assert parse_direction("BtoA") == "b2a" and data_direction("b2a") == "BtoA"
    with pytest.raises(ValueError, match=r"\['a2b', 'b2a', 'both'\] .*Received: direction='AtoC'"):
        parse_direction("AtoC", allow_both=True)


def test_verbose_shows_tensorflows_logs_and_progress_sets_keras_verbosity(capsys):
    for argv in (["-v", "train", "--data", "d"], ["train", "--data", "d", "--verbose"],
                 ["train", "-v", "--data", "d"], ["translate", "-v", "--model", "m", "--input", "i", "--out", "o"]):
        args = parse(argv)
        assert args.show_logs is True, argv
        # -v is TensorFlow's logs only: --progress keeps its default (the terminal's choice).
        assert getattr(args, "progress", None) is None, argv
    args = parse(["train", "--data", "d", "--progress", "2"])
    assert (args.show_logs, args.progress) == (False, 2)
    assert parse(["distill", "--teacher", "t", "--progress", "0"]).progress == 0
    assert parse(["demo", "--progress", "0"]).progress == 0
    assert capsys.readouterr().err == ""
    assert cli.main(["train", "--data", "d", "--verbose", "3"]) == cli.EXIT_USAGE
    assert "argument -v/--verbose: invalid choice: 3" in capsys.readouterr().err


def test_image_size_preset_is_the_librarys():
    from tfcyclegan.config import for_image_size

    args = parse(["train", "--data", "d", "--image-size", "128"])
    assert cli.config_from_args(args) == for_image_size(Config(), 128)
    with pytest.raises(ValueError, match=r"`image_size` must be an integer >= 1. Received: image_size=0"):
        for_image_size(Config(), 0)


def test_distill_resume_refuses_a_run_that_is_not_a_student(trained_run, capsys):
    assert cli.main(["distill", "--resume", trained_run, "--progress", "0"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "is a cyclegan run, not a student run: resume it with `tfcyclegan train --resume" in err
