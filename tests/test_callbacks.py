"""tfcyclegan.callbacks with a tiny CycleGAN (one residual block of 4 filters, 16 px) fitted
eagerly for a few steps: the sample grids and checkpoints they write to disk, and a Ctrl-C.

The callbacks run in training's order: Checkpointing first (it advances the step counter
the others read).
"""

import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import TINY_MODEL
from tfcyclegan import callbacks, imaging
from tfcyclegan.models import CycleGAN

SIZE = 16


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = CycleGAN.from_model_config(TINY_MODEL, pool_size=2, seed=0)
    # Eager: tracing the training step would take most of each test's time.
    model.compile(run_eagerly=True)
    model.build((None, SIZE, SIZE, 3))
    return model


def _images(n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (n, SIZE, SIZE, 3)).astype(np.float32)


def _pairs():
    return tf.data.Dataset.from_tensor_slices((_images(4, 1), _images(4, 2))).batch(1).repeat()


def _checkpointing(model, directory, step, **kwargs):
    return callbacks.Checkpointing(model.training_checkpoint(step=step), directory, step, **kwargs)


def _indexed(directory):
    """The checkpoint prefixes written in `directory`, in order."""
    return sorted((p[: -len(".index")] for p in os.listdir(directory) if p.endswith(".index")),
                  key=lambda name: int(name.rsplit("-", 1)[1]))


# --- sample_grid ----------------------------------------------------------------------


def test_the_sample_grid_shows_both_cycles(model):
    x, y = _images(2, 3), _images(2, 4)
    picture = callbacks.sample_grid(model, x, y, labels=False)
    assert picture.shape == (2 * SIZE, 6 * SIZE, 3) and picture.dtype == np.uint8
    # x | G(x) | F(G(x)) | y | F(y) | G(F(y)), one row per sample.
    np.testing.assert_array_equal(picture[SIZE:, :SIZE], imaging.to_uint8_array(x[1]))
    np.testing.assert_array_equal(picture[:SIZE, SIZE:2 * SIZE],
                                  imaging.to_uint8_array(np.asarray(model.translate(x[:1], "a2b"))[0]))
    np.testing.assert_array_equal(picture[:SIZE, 3 * SIZE:4 * SIZE], imaging.to_uint8_array(y[0]))
    labelled = callbacks.sample_grid(model, x, y)
    assert labelled.shape[0] > picture.shape[0]  # a header names the columns
    np.testing.assert_array_equal(labelled[-2 * SIZE:], picture)


def test_the_sample_grid_needs_as_many_x_as_y_of_one_size(model):
    with pytest.raises(ValueError, match=r"Received: x of shape \(2, 16, 16, 3\), y of shape \(1, 16, 16, 3\)"):
        callbacks.sample_grid(model, _images(2, 0), _images(1, 0))


# --- SampleGrid and Checkpointing in fit ------------------------------------------------


@pytest.mark.slow
def test_fit_writes_grids_and_checkpoints_at_steps_and_epoch_ends(model, tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    fit_callbacks = [
        _checkpointing(model, tmp_path / "checkpoints", step, every_n_steps=3, keep=2,
                       epoch_directory=tmp_path / "checkpoints" / "epochs", save_epoch_every=2,
                       steps_per_epoch=2),
        callbacks.SampleGrid(_images(2, 5), _images(2, 6), tmp_path / "samples", every_n_steps=3,
                             log_dir=tmp_path / "logs", step=step),
    ]
    model.fit(_pairs(), epochs=2, steps_per_epoch=2, callbacks=fit_callbacks, verbose=0)
    assert int(step.numpy()) == 4

    samples = tmp_path / "samples"
    assert sorted(os.listdir(samples)) == ["epoch_0001.png", "epoch_0002.png", "latest.png", "step_0000003.png"]
    latest = np.asarray(Image.open(samples / "latest.png"))
    np.testing.assert_array_equal(latest, np.asarray(Image.open(samples / "epoch_0002.png")))
    assert latest.shape[1] == 6 * SIZE and latest.shape[0] > 2 * SIZE
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "logs"))

    # Saved at step 2 (epoch end), 3 (every 3 steps) and 4 (epoch end); the last 2 kept.
    checkpoints = tmp_path / "checkpoints"
    assert _indexed(checkpoints) == ["ckpt-3", "ckpt-4"]
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-4")
    assert tf.train.load_variable(str(checkpoints / "ckpt-3"), "step/.ATTRIBUTES/VARIABLE_VALUE") == 3
    assert _indexed(checkpoints / "epochs") == ["epoch-2"]  # every 2nd epoch, never rotated


def test_epoch_checkpoints_need_their_folder_and_the_epoch_length(model, tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    with pytest.raises(ValueError, match=r"`save_epoch_every` needs `epoch_directory` and `steps_per_epoch`\. "
                                         r"Received: epoch_directory=None, steps_per_epoch=2"):
        _checkpointing(model, tmp_path, step, save_epoch_every=1, steps_per_epoch=2)


# --- Ctrl-C -------------------------------------------------------------------------------


class _CtrlC(keras.callbacks.Callback):
    """Presses Ctrl-C `times` times after training step `at` (1-based)."""

    def __init__(self, at, times=1):
        super().__init__()
        self.at, self.times, self.seen = at, times, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_stops_after_the_step_and_a_checkpoint_is_saved(model, tmp_path):
    before = signal.getsignal(signal.SIGINT)
    step = tf.Variable(0, dtype=tf.int64)
    stop = callbacks.GracefulStop(message="stopping (test)")
    fit_callbacks = [
        _checkpointing(model, tmp_path / "checkpoints", step),
        callbacks.SampleGrid(_images(1, 5), _images(1, 6), tmp_path / "samples", step=step),
        _CtrlC(at=2),
        stop,
    ]
    model.fit(_pairs(), epochs=1, steps_per_epoch=6, callbacks=fit_callbacks, verbose=0)
    assert stop.stopped and int(step.numpy()) == 2
    assert _indexed(tmp_path / "checkpoints") == ["ckpt-2"]
    # Mid-epoch, the grid is named by its step, not as a whole epoch.
    assert sorted(os.listdir(tmp_path / "samples")) == ["latest.png", "step_0000002.png"]
    assert signal.getsignal(signal.SIGINT) is before  # the previous handler is back


def test_a_second_ctrl_c_interrupts_at_once(model, capsys):
    before = signal.getsignal(signal.SIGINT)
    stop = callbacks.GracefulStop(message="stopping (test)")
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(_pairs(), epochs=1, steps_per_epoch=6, callbacks=[_CtrlC(at=1, times=2), stop], verbose=0)
    finally:
        signal.signal(signal.SIGINT, before)  # fit raised: no on_train_end restored it
    assert stop.stopped
    assert "stopping (test)" in capsys.readouterr().err


# --- Throughput and Evaluation -----------------------------------------------------------


def test_throughput_adds_images_per_second_to_the_logs():
    throughput = callbacks.Throughput(batch_size=4)
    throughput.on_epoch_begin(0)
    rates = []
    for batch in range(3):
        logs = {}
        throughput.on_train_batch_end(batch, logs)
        rates.append(logs["images/s"])
    assert all(rate > 0 for rate in rates)


@pytest.mark.parametrize("every", [0, 1.5, True])
def test_evaluation_needs_a_whole_number_of_epochs(every):
    message = rf"`every_n_epochs` must be an integer >= 1\. Received: every_n_epochs={every}"
    with pytest.raises(ValueError, match=message):
        callbacks.Evaluation("data/facades", every_n_epochs=every)
