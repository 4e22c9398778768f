"""Keras callbacks for training a CycleGAN: pictures, checkpoints, throughput, Ctrl-C.

All of them work with plain `model.fit`:

    model.fit(data, epochs=..., steps_per_epoch=..., callbacks=[
        SampleGrid(x_samples, y_samples, "run/samples"),
        Checkpointing(model.training_checkpoint(step=step), "run/checkpoints", step),
        Throughput(batch_size=1),
        GracefulStop(),
    ])
"""

import errno
import glob
import os
import shutil
import signal
import sys
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from tfcyclegan import fileio, imaging
from tfcyclegan.checks import check_int


def sample_grid(model, x, y, labels=True):
    """A picture of what the model does, as a uint8 HxWx3 array.

    One row per sample, the columns the model chooses (`sample_columns`): for
    a CycleGAN x, G(x), F(G(x)) | y, F(y), G(F(y)) (the forward cycle, then
    the backward one); for pix2pix x, G(x), y. With `labels`, a header names
    the columns.

    Args:
        model: a `CycleGAN` or `Pix2Pix` (any model with `sample_columns`).
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
    named = model.sample_columns(x, y)
    return imaging.grid([images for _, images in named], [label for label, _ in named] if labels else None)


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
        self._last_step = None

    def _current_step(self):
        source = self.step if self.step is not None else self.model.optimizer.iterations
        return int(source.numpy())

    def _write(self, name, step):
        os.makedirs(self.directory, exist_ok=True)
        grid = sample_grid(self.model, self.x, self.y)
        fileio.write_png(os.path.join(self.directory, name), grid)
        fileio.write_png(os.path.join(self.directory, "latest.png"), grid)
        if self.log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(os.fspath(self.log_dir))
            with self._writer.as_default():
                tf.summary.image("samples", grid[None], step=step)
            self._writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        if self.every_n_steps:
            step = self._current_step()
            if self._last_step is not None and _crossed(self._last_step, step, self.every_n_steps):
                self._write(f"step_{step:07d}.png", step)
            elif self._last_step is None and step % self.every_n_steps == 0:
                self._write(f"step_{step:07d}.png", step)
            self._last_step = step

    def on_epoch_end(self, epoch, logs=None):
        step = self._current_step()
        # After a Ctrl-C the "epoch end" comes mid-epoch: name the grid by step.
        name = f"step_{step:07d}.png" if self.model.stop_training else f"epoch_{epoch + 1:04d}.png"
        self._write(name, step)


def _crossed(before, after, every):
    """Whether a multiple of `every` lies in (before, after]: steps may advance
    several at a time (Keras `steps_per_execution`)."""
    return bool(every) and after // every > before // every


class Checkpointing(keras.callbacks.Callback):
    """Saves training checkpoints with `tf.train.CheckpointManager`.

    A checkpoint is written every `every_n_steps` steps, at the end of every
    epoch and when training stops (also after Ctrl-C). TensorFlow writes the
    data files first and only then points the `checkpoint` index at them, so a
    process killed mid-write leaves the previous checkpoint in use. The
    recent ones rotate (`keep`); with `save_epoch_every`, the checkpoint of
    every K-th epoch is also kept in `epoch_directory` as `epoch-N`, never
    rotated away.

    The step counter follows Keras's batch index, so it stays exact when the
    model runs several steps per call (`compile(steps_per_execution=k)`):
    Keras then calls back once per k steps.

    Args:
        checkpoint: the `tf.train.Checkpoint` to save (e.g.
            `CycleGAN.training_checkpoint(step=step)`).
        directory: where checkpoints go.
        step: an integer variable set by this callback after every training
            step; it numbers the checkpoints and tells a resumed run where it
            is. Include it in `checkpoint`.
        every_n_steps: also save every this many steps; 0 saves only at epoch
            ends and when training stops.
        keep: how many recent checkpoints to keep.
        epoch_directory: where the kept epoch checkpoints go.
        save_epoch_every: keep the checkpoint of every this many epochs
            (0: none).
        steps_per_epoch: steps of a whole epoch; an epoch checkpoint is only
            written at a whole epoch's end (not at a Ctrl-C mid-epoch).
    """

    def __init__(self, checkpoint, directory, step, every_n_steps=0, keep=3,
                 epoch_directory=None, save_epoch_every=0, steps_per_epoch=None):
        super().__init__()
        if save_epoch_every and (epoch_directory is None or not steps_per_epoch):
            raise ValueError(
                "`save_epoch_every` needs `epoch_directory` and `steps_per_epoch`. Received: "
                f"epoch_directory={epoch_directory!r}, steps_per_epoch={steps_per_epoch!r}"
            )
        self.step = step
        self.every_n_steps = int(every_n_steps)
        self.save_epoch_every = int(save_epoch_every)
        self.steps_per_epoch = steps_per_epoch
        self.manager = tf.train.CheckpointManager(checkpoint, os.fspath(directory), max_to_keep=keep)
        self.epoch_manager = None
        if self.save_epoch_every:
            self.epoch_manager = tf.train.CheckpointManager(
                checkpoint, os.fspath(epoch_directory), max_to_keep=None, checkpoint_name="epoch"
            )
        self._saved_at = None
        self._epoch_start = None

    def save(self):
        step = int(self.step.numpy())
        if step != self._saved_at:
            _save_or_explain(self.manager, step)
            self._saved_at = step

    def on_train_begin(self, logs=None):
        per_call = getattr(self.model, "steps_per_execution", 1) or 1
        steps = (self.params or {}).get("steps")
        if per_call > 1 and steps and steps % per_call:
            # Keras runs whole executions: an epoch would overrun by the rest,
            # shifting every later epoch, schedule and checkpoint.
            raise ValueError(
                f"Keras runs {per_call} steps per call, so an epoch of {steps} steps would run "
                f"{-(-steps // per_call) * per_call}. Received: steps_per_epoch={steps} is not a "
                f"multiple of steps_per_execution={per_call}."
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = int(self.step.numpy())

    def on_train_batch_end(self, batch, logs=None):
        before = int(self.step.numpy())
        if self._epoch_start is None:  # called outside fit's epoch loop
            self._epoch_start = before - batch
        # `batch` is the index (within this fit's epoch) of the last step run.
        after = self._epoch_start + batch + 1
        self.step.assign(after)
        if _crossed(before, after, self.every_n_steps):
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save()
        step = int(self.step.numpy())
        if self.epoch_manager is not None and step and step % self.steps_per_epoch == 0:
            number = step // self.steps_per_epoch
            if number % self.save_epoch_every == 0:
                _save_or_explain(self.epoch_manager, number)

    def on_train_end(self, logs=None):
        self.save()


def _save_or_explain(manager, number):
    """`manager.save(number)`; a failed write (a full disk, a quota) raises an OSError
    naming the checkpoint and the cause, and leaves no half-written `*_temp` folder
    (TensorFlow writes a checkpoint there, then renames it: the earlier ones stay)."""
    try:
        manager.save(checkpoint_number=number)
    except (tf.errors.OpError, OSError) as error:
        for leftover in glob.glob(os.path.join(manager.directory, "*_temp*")):
            shutil.rmtree(leftover, ignore_errors=True)
        cause = str(getattr(error, "message", error)).strip().splitlines()[0][-300:]
        raise OSError(
            getattr(error, "errno", None) or errno.EIO,
            f"Cannot write checkpoint {number} in {manager.directory}: {cause}. The earlier "
            "checkpoints are intact; free space and resume with `tfcyclegan train --resume`.",
        ) from None


class Evaluation(keras.callbacks.Callback):
    """Runs `tfcyclegan.evaluate` on a test split every few epochs; TensorBoard scalars.

    The test split is loaded once; every `every_n_epochs` epochs the model
    translates it and PSNR / SSIM / L1 (with ground truth) and FID / KID
    (with `fid_weights`) are written as scalars `evaluation/<metric>` to
    `log_dir` and printed.

    Args:
        data: a dataset root with a test split (see `evaluate.load_test_split`).
        every_n_epochs: how often (epochs).
        log_dir: TensorBoard folder, or None for printing only.
        direction: "a2b" or "b2a".
        image_size: test images are resized to this.
        fid_weights: FID Inception weights file; None: no FID / KID.
        max_images: at most this many test images.
        step: a `tf.Variable` step counter for the x axis (default: the epoch).
    """

    def __init__(self, data, every_n_epochs, log_dir=None, direction="a2b", image_size=256,
                 fid_weights=None, max_images=None, step=None):
        super().__init__()
        every_n_epochs = check_int("every_n_epochs", every_n_epochs, 1)
        self.data = data
        self.every_n_epochs = every_n_epochs
        self.direction = direction
        self.image_size = image_size
        self.fid_weights = fid_weights
        self.max_images = max_images
        self.step = step
        self.writer = None if log_dir is None else tf.summary.create_file_writer(log_dir)
        self._split = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        from tfcyclegan import evaluate

        if self._split is None:
            self._split = evaluate.load_test_split(
                self.data, self.direction, self.image_size, max_images=self.max_images
            )
        report = evaluate.evaluate(
            lambda images: self.model.translate(images, self.direction), self._split,
            fid=self.fid_weights is not None, fid_weights=self.fid_weights, verbose=False,
        )
        scalars = {f"{name}": stats["mean"] for name, stats in (report.paired or {}).items()}
        if report.fid is not None:
            scalars.update(fid=report.fid, kid=report.kid["mean"])
        step = epoch + 1 if self.step is None else int(self.step.numpy())
        if self.writer is not None:
            with self.writer.as_default():
                for name, value in scalars.items():
                    tf.summary.scalar(f"evaluation/{name}", value, step=step)
            self.writer.flush()
        print(f"\nEvaluation after epoch {epoch + 1}: {report.summary()}")


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
    """Makes the first Ctrl-C (SIGINT) or SIGTERM stop training after the current step.

    Keras then runs the callbacks' `on_train_end`, so `Checkpointing` saves
    where training stopped. SIGTERM is what `docker stop`, Kubernetes, Slurm
    and `timeout` send before they kill: it is treated like Ctrl-C. A second
    signal interrupts at once.

    Attributes:
        stopped: True once a signal stopped training.
        signal: the number of the signal that did (None until one does).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, message=None):
        super().__init__()
        self.message = message or "Stopping after this step and saving a checkpoint (Ctrl-C again to abort)."
        self.stopped = False
        self.signal = None
        self._previous = {}

    def _handler(self, signum, frame):
        if self.stopped:
            raise KeyboardInterrupt
        self.stopped = True
        self.signal = signum
        self.model.stop_training = True
        print(f"\n{self.message}", file=sys.stderr, flush=True)

    def on_train_begin(self, logs=None):
        # Signal handlers can only be set from the main thread.
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handler) for number in self.SIGNALS}

    def on_train_end(self, logs=None):
        for number, previous in self._previous.items():
            if previous is not None:  # None: a handler not set from Python
                signal.signal(number, previous)
        self._previous = {}
