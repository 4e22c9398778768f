"""Nothing a user owns is overwritten or lost (issue #28): run-folder locks, SIGTERM,
the history of an epoch whose checkpoint was written, a failed start's folder, and
translations that would write over the user's photos."""

import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from tfcyclegan import fileio, training
from tfcyclegan.config import Config, DataConfig, ModelConfig, TrainConfig
from tfcyclegan.synthetic import make_demo_dataset
from tfcyclegan.training import DataSpec

TINY = Config(
    model=ModelConfig(generator="resnet_1blocks", ngf=4, ndf=4, discriminator="n_layers", n_layers_d=1),
    data=DataConfig(load_size=36, crop_size=32),
    train=TrainConfig(epochs=1, epochs_decay=1, steps_per_epoch=3, checkpoint_every=0,
                      seed=1, num_samples=2, pool_size=3, validate=False),
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return str(make_demo_dataset(tmp_path_factory.mktemp("data"), n_train=6, n_test=3, size=32))


# --- run-folder locks -------------------------------------------------------------


def test_a_second_writer_of_a_folder_is_refused_with_the_first_ones_pid(tmp_path):
    folder = tmp_path / "run"
    with fileio.RunLock(folder, "run"):
        assert (folder / fileio.LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(RuntimeError, match=rf"process {os.getpid()} is writing this run"):
            with fileio.RunLock(folder, "run"):
                pass
    # Released, and nothing left behind: the lock was all the folder held.
    assert not folder.exists()
    with fileio.RunLock(folder, "run"):
        pass


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from tfcyclegan import fileio\n"
         f"lock = fileio.RunLock({str(folder)!r}).__enter__(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == b"locked"
        with pytest.raises(RuntimeError, match=rf"process {holder.pid} "):
            fileio.RunLock(folder).__enter__()
    finally:
        holder.kill()  # kill -9: no clean-up runs in the holder
        holder.wait()
    with fileio.RunLock(folder):  # the operating system released it
        pass


def test_resuming_a_run_another_process_trains_is_refused(tmp_path, dataset):
    run = tmp_path / "run"
    training.train(TINY, run, DataSpec(data=dataset), verbose=0)
    with fileio.RunLock(run, "run"):
        with pytest.raises(RuntimeError, match="is in use: process"):
            training.train(Config.load(run / "config.json"), run, resume=True, verbose=0)
    assert (run / fileio.LOCK_FILE).exists()  # the run's own lock file, unlocked


# --- SIGTERM saves like Ctrl-C ----------------------------------------------------


@pytest.mark.slow
def test_sigterm_stops_after_the_step_and_saves(tmp_path, dataset):
    runs = tmp_path / "runs"
    run = runs / "t"
    command = [
        sys.executable, "-m", "tfcyclegan", "train", "--data", dataset, "--runs-dir", str(runs),
        "--name", "t", "--netG", "resnet_1blocks", "--ngf", "4", "--ndf", "4", "--load-size", "36",
        "--crop-size", "32", "--epochs", "50", "--epochs-decay", "0", "--steps-per-epoch", "20",
        "--checkpoint-every", "0", "--sample-every", "1", "--no-validate",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if (run / "samples" / "latest.png").exists():  # the training loop runs
            process.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    _, err = process.communicate(timeout=240)
    err = err.decode()
    assert "saving a checkpoint" in err and "Resume with" in err, err[-2000:]
    from tfcyclegan.runs import select_checkpoint

    assert select_checkpoint(str(run)) is not None  # a checkpoint of where it stopped
    assert (run / "model.keras").exists()


# --- history.csv and checkpoints --------------------------------------------------


def test_history_rows_written_after_the_restored_checkpoint_are_dropped(tmp_path):
    history = tmp_path / "history.csv"
    index = tmp_path / "ckpt-8.index"
    rows = "epoch,G_adv,total\n0,1.0,2.0\n1,0.5,1.5\n2,0.4,1.4\n"
    history.write_text(rows)
    index.write_bytes(b"")
    os.utime(index, (1000, 1000))
    os.utime(history, (2000, 2000))  # killed after the row of epoch 2, before its checkpoint
    training._trim_history(str(history), 2, str(tmp_path / "ckpt-8"))
    assert history.read_text() == "epoch,G_adv,total\n0,1.0,2.0\n1,0.5,1.5\n"
    # Rows written before the checkpoint (a Ctrl-C's partial epoch) stay.
    history.write_text(rows)
    os.utime(history, (500, 500))
    training._trim_history(str(history), 2, str(tmp_path / "ckpt-8"))
    assert history.read_text() == rows


def test_an_epochs_history_row_is_written_before_its_checkpoint(tmp_path, dataset):
    # A kill -9 between the two must not lose the row: the CSV logger's epoch end
    # runs before Checkpointing's (callbacks run in list order).
    import tensorflow as tf

    from tfcyclegan.callbacks import Checkpointing

    paths = training.RunPaths(str(tmp_path / "run"))
    step = tf.Variable(0, dtype=tf.int64)
    callbacks = training._run_callbacks(
        TINY, paths, paths, tf.train.Checkpoint(step=step), step, None, True, False, (),
        DataSpec(data=dataset), 3,
    )
    names = [type(callback).__name__ for callback in callbacks]
    assert names.index("CSVLogger") < names.index(Checkpointing.__name__)


# --- a failed start does not block its name ---------------------------------------


def test_a_folder_without_a_checkpoint_does_not_block_a_fresh_start(tmp_path, dataset):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(TINY.to_json())  # a start that failed before its first step
    result = training.train(TINY, run, DataSpec(data=dataset), verbose=0)
    assert result.step == 6
    with pytest.raises(FileExistsError, match="already holds a run"):
        training.train(TINY, run, DataSpec(data=dataset), verbose=0)


# --- translate never writes over the user's photos ---------------------------------


def _photos(folder, names=("a.png", "b.jpg")):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (32, 32), (200, 30, 30)).save(folder / name)
    return folder


def _identity(images):
    return images


def test_translate_refuses_to_write_into_its_input_folder(tmp_path):
    from tfcyclegan.translate import translate_files

    photos = _photos(tmp_path / "photos")
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    for out in (photos, photos / "out"):
        with pytest.raises(ValueError, match="inside it"):
            translate_files(_identity, photos, out, progress=False)
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before


def test_translate_refuses_to_replace_files_unless_told(tmp_path):
    from tfcyclegan.translate import translate_files

    photos = _photos(tmp_path / "photos")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"the user's own file")
    with pytest.raises(FileExistsError, match=r"1 output file\(s\) already exist .*a\.png.*--overwrite"):
        translate_files(_identity, photos, out, progress=False)
    assert (out / "a.png").read_bytes() == b"the user's own file"
    report = translate_files(_identity, photos, out, progress=False, overwrite=True)
    assert len(report.written) == 2 and (out / "a.png").read_bytes() != b"the user's own file"


def test_translate_refuses_two_inputs_onto_one_output(tmp_path):
    from tfcyclegan.translate import translate_files

    photos = _photos(tmp_path / "photos", ("a.png", "a.ppm"))  # a.ppm is written as a.png
    with pytest.raises(ValueError, match="would both be written to"):
        translate_files(_identity, photos, tmp_path / "out", progress=False)


# --- counts that must be positive ----------------------------------------------------


def test_evaluate_refuses_a_max_images_below_one(tmp_path):
    from tfcyclegan.evaluate import evaluate, load_test_split

    for bad in (0, -2):
        with pytest.raises(ValueError, match=rf"`max_images` must be an integer >= 1. Received: max_images={bad}"):
            evaluate(_identity, str(tmp_path), max_images=bad, fid=False)
        with pytest.raises(ValueError, match="max_images"):
            load_test_split(str(tmp_path), max_images=bad)


def test_the_demo_refuses_a_negative_step_count(tmp_path):
    from tfcyclegan.demo import run_demo

    with pytest.raises(ValueError, match=r"`steps` must be an integer >= 1. Received: steps=-1"):
        run_demo(tmp_path / "demo", steps=-1, verbose=0)
    assert not (tmp_path / "demo").exists()  # refused before anything was written


# --- the same through the command line ----------------------------------------------


def test_cli_translate_into_its_input_folder_fails_and_leaves_the_photos(tmp_path, capsys):
    from tfcyclegan import cli

    photos = _photos(tmp_path / "photos")
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    code = cli.main(["translate", "--model", str(tmp_path / "no_model.keras"), "--input", str(photos),
                     "--out", str(photos)])
    assert code == cli.EXIT_FAILED
    assert "inside it" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before


def test_cli_train_resume_of_a_locked_run_names_the_other_process(tmp_path, dataset, capsys):
    from tfcyclegan import cli

    run = tmp_path / "run"
    training.train(TINY, run, DataSpec(data=dataset), verbose=0)
    with fileio.RunLock(run, "run"):
        assert cli.main(["train", "--resume", str(run), "--progress", "0"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert f"is in use: process {os.getpid()}" in err and "--debug" not in err


def test_a_crop_the_generator_cannot_take_is_refused_before_the_run_folder_is_written(tmp_path, dataset):
    config = TINY.replace(data=TINY.data.replace(crop_size=30))
    with pytest.raises(ValueError, match=r"multiples of 4 and at least \d+\. Received: crop_size=30.*--crop-size 28"):
        training.train(config, tmp_path / "run", DataSpec(data=dataset), verbose=0)
    assert not (tmp_path / "run").exists()  # nothing left to block the name


def test_a_truncated_model_keras_in_a_run_folder_is_named_as_such(tmp_path):
    from tfcyclegan.runs import load_run_model

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(TINY.to_json())
    legacy = os.path.join(os.path.dirname(__file__), "data", "legacy", "cyclegan_resnet.keras")
    with open(legacy, "rb") as f:
        (run / "model.keras").write_bytes(f.read()[:100_000])  # a copy cut short
    with pytest.raises(ValueError, match=r"not a \.keras archive .*truncated or corrupt\?"):
        load_run_model(run)


# --- a SavedModel is code ---------------------------------------------------------------


def test_a_savedmodel_with_file_ops_is_refused_before_anything_runs(tmp_path):
    import tensorflow as tf

    from tfcyclegan.export.runtime import load_translator

    victim = tmp_path / "written_by_the_model.txt"

    class Trojan(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
        def translate(self, images):
            tf.io.write_file(str(victim), "owned")
            return {"output_images": images}

    module = Trojan()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"translate": module.translate})
    with pytest.raises(ValueError, match=r"Refusing to run the SavedModel .*WriteFile \(in "):
        load_translator(tmp_path / "sm")
    assert not victim.exists()


def test_savedmodels_tfcyclegan_exports_pass_the_op_check(tmp_path):
    from tfcyclegan import export
    from tfcyclegan.export.graph_check import check_saved_model_ops, saved_model_ops
    from tfcyclegan.networks import ResnetGenerator

    version = export.export_saved_model(ResnetGenerator(ngf=4, n_blocks=1, seed=0), tmp_path, "G")
    check_saved_model_ops(version)
    ops = saved_model_ops(version)
    assert {"Conv2D", "DecodeImage", "EncodePng"} <= set(ops) and "SaveV2" not in ops


def test_exporting_a_tflite_file_says_it_is_already_exported(tmp_path):
    from tfcyclegan.export.loading import keras_file

    tflite = tmp_path / "G.tflite"
    tflite.write_bytes(b"TFL3")
    with pytest.raises(ValueError, match="is a TFLite file: it is already exported") as error:
        keras_file(tflite)
    assert "import-torch" not in str(error.value)


def test_a_crop_too_small_for_the_discriminator_is_refused_before_training(tmp_path, dataset):
    config = TINY.replace(data=TINY.data.replace(load_size=16, crop_size=16),
                          model=TINY.model.replace(discriminator="basic"))
    with pytest.raises(ValueError, match=r"D_\w+ \(PatchDiscriminator\) needs .* at least \d+\. Received: crop_size=16"):
        training.train(config, tmp_path / "run", DataSpec(data=dataset), verbose=0)
    assert not (tmp_path / "run").exists()


def test_progress_bars_only_on_a_terminal():
    import io

    from tfcyclegan.cli.args import default_progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert default_progress(Terminal()) == 1
    assert default_progress(io.StringIO()) == 2  # a log file: one plain line per epoch


def test_a_checkpoint_write_that_fails_is_named_and_leaves_no_temp_folder(tmp_path):
    import tensorflow as tf

    from tfcyclegan.callbacks import _save_or_explain

    class FullDisk:
        directory = str(tmp_path)

        def save(self, checkpoint_number):
            (tmp_path / f"ckpt-{checkpoint_number}_temp").mkdir()  # as TensorFlow's writer does
            raise tf.errors.OutOfRangeError(None, None, "{{function_node __wrapped__SaveV2}} File too large")

    (tmp_path / "ckpt-3.index").write_bytes(b"an earlier checkpoint")
    with pytest.raises(OSError, match=r"Cannot write checkpoint 6 in .*File too large\. The earlier checkpoints"):
        _save_or_explain(FullDisk(), 6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-3.index"]


def test_a_checkpoint_without_its_index_is_named_and_no_tensorflow_error_leaks(tmp_path, dataset, capfd):
    run = tmp_path / "run"
    training.train(TINY, run, DataSpec(data=dataset), verbose=0)
    for index in (run / "checkpoints").glob("*.index"):
        index.unlink()  # as a write cut short
    capfd.readouterr()
    with pytest.raises(FileNotFoundError, match=r"holds ckpt-\d+\.data-.* but no \.index file"):
        training.train(Config.load(run / "config.json"), run, resume=True, verbose=0)
    assert "Couldn't match files" not in capfd.readouterr().err


def test_translate_writes_no_terminal_codes_into_a_log(tmp_path, capsys):
    from tfcyclegan.translate import translate_files

    photos = _photos(tmp_path / "photos")
    translate_files(_identity, photos, tmp_path / "out", progress=True)
    out = capsys.readouterr().out  # not a terminal
    assert "\x1b[" not in out and "\r" not in out and "2/2" in out
