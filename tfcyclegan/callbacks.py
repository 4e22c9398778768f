"""Keras callbacks for training a CycleGAN: pictures, checkpoints, throughput, Ctrl-C.

All of them work with plain `model.fit`:

    model.fit(data, epochs=..., steps_per_epoch=..., callbacks=[
        SampleGrid(x_samples, y_samples, "run/samples"),
        Checkpointing(model.training_checkpoint(step=step), "run/checkpoints", step),
        Throughput(batch_size=1),
        GracefulStop(),
    ])
"""

import os
import signal
import sys
import threading
import time

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from tfcyclegan import fileio, imaging

GRID_COLUMNS = ("x", "G(x)", "F(G(x))", "y", "F(y)", "G(F(y))")
_LABEL_HEIGHT = 14


def sample_grid(model, x, y, labels=True):
    """A picture of what the model does, as a uint8 HxWx3 array.

    One row per sample: x, G(x), F(G(x)) | y, F(y), G(F(y)). The first three
    columns show the forward cycle, the last three the backward one. With
    `labels`, a header names the columns.

    Args:
        model: a `CycleGAN`.
        x: images of X, float32 NHWC in [-1, 1].
        y: images of Y, the same number and size as `x`.
    """
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    if x.shape[0] != y.shape[0] or x.shape[1:3] != y.shape[1:3]:
        raise ValueError(
            "sample_grid needs as many x as y images, of one size. Received: "
            f"x of shape {x.shape}, y of shape {y.shape}"
        )
    fake_y = model.translate(x, "a2b")
    fake_x = model.translate(y, "b2a")
    columns = [x, fake_y, model.translate(fake_y, "b2a"), y, fake_x, model.translate(fake_x, "a2b")]
    columns = [_rgb(np.asarray(imaging.to_uint8(c))) for c in columns]
    rows = [np.concatenate([c[i] for c in columns], axis=1) for i in range(x.shape[0])]
    grid = np.concatenate(rows, axis=0)
    return _with_header(grid, x.shape[2]) if labels else grid


def _rgb(images):
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def _with_header(grid, column_width):
    header = Image.new("RGB", (grid.shape[1], _LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(header)
    for i, label in enumerate(GRID_COLUMNS):
        draw.text((i * column_width + 2, 1), label, fill="black")
    return np.concatenate([np.asarray(header), grid], axis=0)


def write_png(path, image):
    """Writes a uint8 image to `path` atomically (a reader never sees half a file)."""
    with fileio.atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


class SampleGrid(keras.callbacks.Callback):
    """Writes `sample_grid` PNGs during training, and to TensorBoard.

    Files: `directory/epoch_0001.png` after each epoch, `step_0000500.png`
    every `every_n_steps` steps (if > 0), and `latest.png`.

    Args:
        x: fixed images of X (float32 NHWC in [-1, 1]) shown in every grid.
        y: fixed images of Y, as many as `x`.
        directory: where the PNGs go (created if needed).
        every_n_steps: also write a grid every this many steps; 0 disables.
        log_dir: if given, also log the grids as TensorBoard images there.
        step: a variable counting training steps (defaults to the
            generators' optimizer's step counter).
    """

    def __init__(self, x, y, directory, every_n_steps=0, log_dir=None, step=None):
        super().__init__()
        self.x = np.asarray(x, np.float32)
        self.y = np.asarray(y, np.float32)
        self.directory = os.fspath(directory)
        self.every_n_steps = int(every_n_steps)
        self.log_dir = log_dir
        self.step = step
        self._writer = None

    def _current_step(self):
        source = self.step if self.step is not None else self.model.optimizer.iterations
        return int(source.numpy())

    def _write(self, name, step):
        os.makedirs(self.directory, exist_ok=True)
        grid = sample_grid(self.model, self.x, self.y)
        write_png(os.path.join(self.directory, name), grid)
        write_png(os.path.join(self.directory, "latest.png"), grid)
        if self.log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(os.fspath(self.log_dir))
            with self._writer.as_default():
                tf.summary.image("samples", grid[None], step=step)
            self._writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        if self.every_n_steps:
            step = self._current_step()
            if step % self.every_n_steps == 0:
                self._write(f"step_{step:07d}.png", step)

    def on_epoch_end(self, epoch, logs=None):
        step = self._current_step()
        # After a Ctrl-C the "epoch end" comes mid-epoch: name the grid by step.
        name = f"step_{step:07d}.png" if self.model.stop_training else f"epoch_{epoch + 1:04d}.png"
        self._write(name, step)


class Checkpointing(keras.callbacks.Callback):
    """Saves training checkpoints with `tf.train.CheckpointManager`.

    A checkpoint is written every `every_n_steps` steps, at the end of every
    epoch and when training stops (also after Ctrl-C). TensorFlow writes the
    data files first and only then points the `checkpoint` index at them, so a
    process killed mid-write leaves the previous checkpoint in use.

    Args:
        checkpoint: the `tf.train.Checkpoint` to save (e.g.
            `CycleGAN.training_checkpoint(step=step)`).
        directory: where checkpoints go.
        step: an integer variable incremented by this callback after every
            training step; it numbers the checkpoints and tells a resumed run
            where it is. Include it in `checkpoint`.
        every_n_steps: also save every this many steps; 0 saves only at epoch
            ends and when training stops.
        keep: how many recent checkpoints to keep.
    """

    def __init__(self, checkpoint, directory, step, every_n_steps=0, keep=3):
        super().__init__()
        self.step = step
        self.every_n_steps = int(every_n_steps)
        self.manager = tf.train.CheckpointManager(checkpoint, os.fspath(directory), max_to_keep=keep)
        self._saved_at = None

    def save(self):
        step = int(self.step.numpy())
        if step != self._saved_at:
            self.manager.save(checkpoint_number=step)
            self._saved_at = step

    def on_train_batch_end(self, batch, logs=None):
        self.step.assign_add(1)
        if self.every_n_steps and int(self.step.numpy()) % self.every_n_steps == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def on_train_end(self, logs=None):
        self.save()


class Throughput(keras.callbacks.Callback):
    """Adds `images/s` (both domains counted once per pair) to the logs.

    The rate is averaged since the second step of the epoch, so the first
    step's tracing and compilation do not distort it.

    Args:
        batch_size: image pairs per step (the global batch).
    """

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size
        self._start = None
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._steps = None, 0
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self._start is None:
            rate = self.batch_size / max(now - self._batch_start, 1e-9)
            self._start = now
        else:
            self._steps += 1
            rate = self._steps * self.batch_size / max(now - self._start, 1e-9)
        if logs is not None:
            logs["images/s"] = rate


class GracefulStop(keras.callbacks.Callback):
    """Makes the first Ctrl-C stop training after the current step.

    Keras then runs the callbacks' `on_train_end`, so `Checkpointing` saves
    where training stopped. A second Ctrl-C interrupts at once.

    Attributes:
        stopped: True once a Ctrl-C stopped training.
    """

    def __init__(self, message=None):
        super().__init__()
        self.message = message or "Stopping after this step and saving a checkpoint (Ctrl-C again to abort)."
        self.stopped = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.stopped:
            raise KeyboardInterrupt
        self.stopped = True
        self.model.stop_training = True
        print(f"\n{self.message}", file=sys.stderr, flush=True)

    def on_train_begin(self, logs=None):
        # Signal handlers can only be set from the main thread.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def on_train_end(self, logs=None):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
