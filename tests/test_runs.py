"""tfcyclegan.runs: run folders on disk, their config and run.json, and the choice of a
checkpoint, with real (tiny) TensorFlow checkpoints and no model.

The configs under tests/data/run_configs/ are run folders' `config.json` files as
tfcyclegan wrote them before the structure change of #26 (make_configs.py there): they
must keep loading.
"""

import json
import os
import shutil

import pytest
import tensorflow as tf

from tests.conftest import DATA, tiny_config
from tfcyclegan import runs
from tfcyclegan.config import Config

OLD_CONFIGS = DATA / "run_configs"


def _run_folder(path, config=None):
    """A run folder as far as `runs` looks: config.json and run.json."""
    path.mkdir(parents=True, exist_ok=True)
    (config or tiny_config()).save(path / runs.CONFIG_FILE)
    (path / runs.RUN_FILE).write_text(json.dumps({"data": {"data": "/data/h2z"}, "steps_per_epoch": 3}))
    return path


def _checkpoints(run, steps=(), epochs=()):
    """Writes real checkpoints `ckpt-STEP` (the last one named in the `checkpoint` index)
    and kept `epochs/epoch-N`, as `callbacks.Checkpointing` does, of one variable."""
    value = tf.Variable(0)
    checkpoint = tf.train.Checkpoint(value=value)
    paths = runs.RunPaths(str(run))
    manager = tf.train.CheckpointManager(checkpoint, paths.checkpoints, max_to_keep=None)
    for step in steps:
        value.assign(step)
        manager.save(checkpoint_number=step)
    epoch_manager = tf.train.CheckpointManager(checkpoint, paths.epoch_checkpoints, max_to_keep=None,
                                               checkpoint_name="epoch")
    for epoch in epochs:
        value.assign(1000 + epoch)
        epoch_manager.save(checkpoint_number=epoch)


def _value(prefix):
    """What `_checkpoints` stored in the checkpoint at `prefix`."""
    return int(tf.train.load_variable(prefix, "value/.ATTRIBUTES/VARIABLE_VALUE"))


# --- Run folders ------------------------------------------------------------------


def test_run_paths_name_the_files_of_a_run_folder():
    paths = runs.RunPaths("runs/h2z")
    assert (paths.config, paths.run, paths.model, paths.history) == (
        os.path.join("runs/h2z", "config.json"), os.path.join("runs/h2z", "run.json"),
        os.path.join("runs/h2z", "model.keras"), os.path.join("runs/h2z", "history.csv"))
    assert paths.epoch_checkpoints == os.path.join("runs/h2z", "checkpoints", "epochs")
    assert (paths.samples, paths.logs) == (os.path.join("runs/h2z", "samples"), os.path.join("runs/h2z", "logs"))


def test_a_run_folder_is_a_folder_with_a_config(tmp_path):
    run = _run_folder(tmp_path / "run")
    assert runs.is_run_folder(run) and runs.is_run_folder(str(run))
    assert not runs.is_run_folder(tmp_path / "missing")
    assert not runs.is_run_folder(run / runs.CONFIG_FILE)  # the file, not a folder
    (tmp_path / "empty").mkdir()
    assert not runs.is_run_folder(tmp_path / "empty")


def test_load_run_config_reads_what_was_saved(tmp_path):
    config = tiny_config(steps_per_epoch=5)
    assert runs.load_run_config(_run_folder(tmp_path / "run", config)) == config


@pytest.mark.parametrize("name", sorted(p.stem for p in OLD_CONFIGS.glob("*.json")))
def test_config_files_of_older_runs_still_load(tmp_path, name):
    run = tmp_path / name
    run.mkdir()
    shutil.copy(OLD_CONFIGS / f"{name}.json", run / runs.CONFIG_FILE)
    config = runs.load_run_config(run)
    method = {"cyclegan_recommended": "cyclegan"}.get(name, name)
    assert config.model.method == method
    saved = json.loads((OLD_CONFIGS / f"{name}.json").read_text())
    assert config.model.generator == saved["model"]["generator"]
    assert config.train.epochs == saved["train"]["epochs"]
    assert config.data.crop_size == saved["data"]["crop_size"]
    if method == "distill":
        assert config.distill.teacher == "/home/me/runs/horse2zebra"
        assert config.distill.direction == "b2a" and config.distill.lambda_feature == 10.0
    assert Config.from_json(config.to_json()) == config


def test_a_folder_without_config_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is not a tfcyclegan run folder: config.json is missing"):
        runs.load_run_config(tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "is not a valid run config: Config is not valid JSON"),
        ('{"model": {"ngf": 4}, "optimizer": {}}',
         r"is not a valid run config: Unknown config sections: \['optimizer'\]"),
        ('{"model": {"ngf": -4}}', "is not a valid run config: .*Received: ngf=-4"),
    ],
)
def test_a_garbled_config_is_named_with_its_path(tmp_path, text, message):
    (tmp_path / runs.CONFIG_FILE).write_text(text)
    with pytest.raises(ValueError, match=message) as raised:
        runs.load_run_config(tmp_path)
    assert str(tmp_path / runs.CONFIG_FILE) in str(raised.value)


def test_read_run_info_gives_run_json(tmp_path):
    run = _run_folder(tmp_path / "run")
    assert runs.read_run_info(run) == {"data": {"data": "/data/h2z"}, "steps_per_epoch": 3}


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2", "is not valid JSON"),
        ('["data"]', r"does not describe a run: expected an object with a 'data' object. Received: \['data'\]"),
        ('{"data": "/data/h2z"}', "does not describe a run"),
    ],
)
def test_a_garbled_run_json_is_named(tmp_path, text, message):
    (tmp_path / runs.RUN_FILE).write_text(text)
    with pytest.raises(ValueError, match=message):
        runs.read_run_info(tmp_path)


# --- Choosing a checkpoint --------------------------------------------------------


@pytest.fixture
def run(tmp_path):
    """A run of 3 steps an epoch: step checkpoints 3, 6 and 8, kept epochs 1 and 2."""
    folder = _run_folder(tmp_path / "run")
    _checkpoints(folder, steps=(3, 6, 8), epochs=(1, 2))
    return folder


def test_the_checkpoints_of_a_run_are_listed(run):
    steps, epochs = runs.step_checkpoints(run), runs.epoch_checkpoints(run)
    assert sorted(steps) == [3, 6, 8] and sorted(epochs) == [1, 2]
    assert steps[6] == os.path.join(str(run), "checkpoints", "ckpt-6")
    assert epochs[2] == os.path.join(str(run), "checkpoints", "epochs", "epoch-2")


def test_a_checkpoint_without_its_index_file_is_not_one(run):
    os.remove(run / "checkpoints" / "ckpt-3.index")  # a write cut short: data files only
    assert sorted(runs.step_checkpoints(run)) == [6, 8]
    assert runs.step_checkpoints(run / "nowhere") == {}


def test_the_latest_checkpoint_by_default(run):
    assert _value(runs.select_checkpoint(run)) == 8


def test_an_index_naming_a_deleted_checkpoint_falls_back_to_the_newest_there_is(run):
    for path in (run / "checkpoints").glob("ckpt-8.*"):
        os.remove(path)
    assert _value(runs.select_checkpoint(run)) == 6
    os.remove(run / "checkpoints" / "checkpoint")
    assert _value(runs.select_checkpoint(run)) == 6


def test_a_run_without_checkpoints_has_none(tmp_path):
    assert runs.select_checkpoint(_run_folder(tmp_path / "run")) is None


def test_checkpoints_by_name_or_path(run):
    assert _value(runs.select_checkpoint(run, checkpoint="ckpt-3")) == 3
    assert _value(runs.select_checkpoint(run, checkpoint="epoch-1")) == 1001
    prefix = str(run / "checkpoints" / "ckpt-6")
    assert runs.select_checkpoint(run, checkpoint=prefix) == prefix


def test_an_epoch_is_its_kept_checkpoint_or_the_step_checkpoint_at_its_end(run):
    assert _value(runs.select_checkpoint(run, epoch=2)) == 1002  # kept: checkpoints/epochs/epoch-2
    shutil.rmtree(run / "checkpoints" / "epochs")
    assert _value(runs.select_checkpoint(run, epoch=2)) == 6  # run.json: 3 steps an epoch


def test_a_missing_checkpoint_is_named_with_the_ones_there_are(run):
    there = r"It has: \['ckpt-3', 'ckpt-6', 'ckpt-8'\]; epochs \[1, 2\]\."
    with pytest.raises(ValueError, match=rf"has no checkpoint 'ckpt-5'\. {there}"):
        runs.select_checkpoint(run, checkpoint="ckpt-5")
    with pytest.raises(ValueError, match=rf"has no checkpoint of epoch 4\. {there}"):
        runs.select_checkpoint(run, epoch=4)


def test_without_run_json_an_epoch_needs_its_kept_checkpoint(run):
    os.remove(run / runs.RUN_FILE)
    shutil.rmtree(run / "checkpoints" / "epochs")
    with pytest.raises(ValueError, match=r"has no checkpoint of epoch 2\. .*epochs none kept \(train with "
                                         r"--save-epoch-every K\)"):
        runs.select_checkpoint(run, epoch=2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(checkpoint="ckpt-3", epoch=1),
         "Pass a checkpoint or an epoch, not both. Received: checkpoint='ckpt-3', epoch=1"),
        (dict(epoch=0), r"`epoch` must be an integer >= 1\. Received: epoch=0"),
        (dict(epoch=True), "Received: epoch=True"),
        (dict(epoch="2"), "Received: epoch='2'"),
    ],
)
def test_bad_choices_are_named(run, kwargs, message):
    with pytest.raises(ValueError, match=message):
        runs.select_checkpoint(run, **kwargs)


def test_a_truncated_checkpoint_is_named_when_read(run):
    prefix = runs.select_checkpoint(run)
    data = next((run / "checkpoints").glob("ckpt-8.data-*"))
    data.write_bytes(data.read_bytes()[:2])
    with pytest.raises(ValueError, match="Cannot read checkpoint .*ckpt-8 \\(truncated or corrupt\\?\\)"):
        runs.restore(tf.train.Checkpoint(value=tf.Variable(0)), prefix)


# --- load_run_model's errors before any model is built -------------------------------


def test_a_run_with_neither_checkpoints_nor_model_keras_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="has neither checkpoints nor model.keras"):
        runs.load_run_model(_run_folder(tmp_path / "run"))


def test_a_garbled_model_keras_is_named(tmp_path):
    run = _run_folder(tmp_path / "run")
    (run / runs.MODEL_FILE).write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"Cannot load .*model.keras as a Keras model"):
        runs.load_run_model(run)
