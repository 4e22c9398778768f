"""Run folders as models: any checkpoint of a run, the latest by default.

A run folder (see `training`) holds `config.json`, `run.json`, rotating
checkpoints (`checkpoints/ckpt-STEP`, the last `keep_checkpoints`), kept
epoch checkpoints (`checkpoints/epochs/epoch-N`, every `save_epoch_every`
epochs, never rotated away) and, once training ends or is stopped with
Ctrl-C, `model.keras`. A run killed before its end (kill -9, preemption,
out of memory, or stopped because the samples look good) has checkpoints but
no up-to-date `model.keras`: `load_run_model` turns any of its checkpoints
into a model, so `translate`, `export` and `evaluate` take it at once.

This module sits below `training` (which writes runs) and `export` (which
reads them): it builds the model a config describes and restores weights.
"""

import dataclasses
import json
import os
import re
import sys

import tensorflow as tf

from tfcyclegan import fileio, legacy, methods
from tfcyclegan.checks import check_int
from tfcyclegan.config import Config
from tfcyclegan.data.geometry import CROP_MODES
from tfcyclegan.models import base
from tfcyclegan.schedules import LinearDecay

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"
MODEL_FILE = "model.keras"
EPOCHS_DIR = "epochs"
"""Sub-folder of `checkpoints/` with the epoch checkpoints `epoch-N` (never rotated)."""


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """The files and folders of a run folder."""

    root: str

    @property
    def config(self):
        return os.path.join(self.root, CONFIG_FILE)

    @property
    def run(self):
        return os.path.join(self.root, RUN_FILE)

    @property
    def checkpoints(self):
        return os.path.join(self.root, "checkpoints")

    @property
    def epoch_checkpoints(self):
        return os.path.join(self.checkpoints, EPOCHS_DIR)

    @property
    def samples(self):
        return os.path.join(self.root, "samples")

    @property
    def logs(self):
        return os.path.join(self.root, "logs")

    @property
    def history(self):
        return os.path.join(self.root, "history.csv")

    @property
    def model(self):
        return os.path.join(self.root, MODEL_FILE)


def is_run_folder(path):
    """Whether `path` is a run folder (a folder with `config.json`)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG_FILE))


RENAMED_METRICS = {"G_adv": "G_GAN", "F_adv": "F_GAN"}
"""{old: new} metric names: CycleGAN reported its generators' adversarial terms as
`G_adv` / `F_adv` before every method called them `G_GAN` (tfcyclegan 0.x runs)."""


def upgrade_history(path):
    """Renames the `RENAMED_METRICS` columns in the header of a run's `history.csv`.

    Keras's `CSVLogger` appends a resumed run's rows under the header already
    in the file, in the sorted order of the metric names; the renamed ones
    sort where the old ones did, so only the header needs the new names.
    Returns whether the file changed (False when it is missing or current).
    """
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8", newline="") as f:
        header, *rows = f.read().split("\n", 1) or [""]
    columns = header.split(",")
    renamed = []
    for column in columns:
        prefix = "val_" if column.startswith("val_") else ""
        old = column[len(prefix):]
        renamed.append(prefix + RENAMED_METRICS.get(old, old))
    if renamed == columns:
        return False
    fileio.atomic_write(path, "\n".join([",".join(renamed), *rows]))
    return True


def load_run_config(run_dir):
    """The `Config` of a run folder; a missing or garbled `config.json` is named."""
    paths = RunPaths(os.fspath(run_dir))
    if not os.path.isfile(paths.config):
        raise FileNotFoundError(
            f"{run_dir} is not a tfcyclegan run folder: {CONFIG_FILE} is missing."
        )
    try:
        return Config.load(paths.config)
    except (ValueError, TypeError, UnicodeDecodeError) as error:
        raise ValueError(f"{paths.config} is not a valid run config: {error}") from None


def read_run_info(run_dir):
    """`run.json` as a dict (data source, version, steps per epoch); a garbled one is named."""
    path = RunPaths(os.fspath(run_dir)).run
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(info, dict) or not isinstance(info.get("data"), dict):
        raise ValueError(
            f"{path} does not describe a run: expected an object with a 'data' object. "
            f"Received: {str(info)[:80]}"
        )
    return info


def compile_arguments(config, steps_per_epoch):
    """`compile` arguments for a config's model: the authors' Adam with the paper's schedule.

    Both optimizers are `TorchAdam` with `config.train`'s learning rate held for
    `epochs` and decayed linearly to zero over `epochs_decay` (`LinearDecay`,
    stepped once per epoch of `steps_per_epoch` steps); the other arguments are
    the common settings and the method's `compile_settings` (`tfcyclegan.methods`).
    """
    record = methods.method(config.model.method)
    train = config.train

    def adam(name):
        schedule = LinearDecay(
            train.learning_rate,
            constant_steps=train.epochs * steps_per_epoch,
            decay_steps=train.epochs_decay * steps_per_epoch,
            update_every=steps_per_epoch,
        )
        return base.default_adam(schedule, train.beta_1, train.beta_2, name=name)

    arguments = dict(
        generator_optimizer=adam("generator_adam"),
        discriminator_optimizer=adam("discriminator_adam"),
    )
    for setting in methods.COMMON_COMPILE_SETTINGS + record.compile_settings:
        arguments[setting.split(".")[1]] = methods.setting_value(config, setting)
    return arguments


def build_uncompiled(config, dtype=None):
    """The model a `Config` describes, from its method's record, seeded by `config.train.seed`.

    A distillation run's teacher is loaded from its own run folder.
    """
    record = methods.method(config.model.method)
    arguments = dict(record.model_arguments)
    arguments.update({s.split(".")[1]: methods.setting_value(config, s) for s in record.build_settings})
    if record.data == methods.TEACHER:
        arguments["teacher"] = load_teacher(config.distill)
    return record.model_class.from_model_config(
        config=config.model, seed=config.train.seed, dtype=dtype, **arguments
    )


def build_model(config, strategy=None, steps_per_epoch=1):
    """The compiled model a `Config` describes, in `strategy`'s scope.

    `steps_per_epoch` places the learning-rate schedule's epochs. A
    distillation run's teacher is loaded from its own run folder.
    """
    strategy = strategy or tf.distribute.get_strategy()
    train = config.train
    dtype = None if train.mixed_precision == "none" else train.mixed_precision
    with strategy.scope():
        model = build_uncompiled(config, dtype=dtype)
        model.compile(**compile_arguments(config, steps_per_epoch))
    return model


def load_teacher(distill):
    """The teacher generator a `DistillConfig` names: G (a2b) or F (b2a) of its run folder.

    Raises:
        FileNotFoundError: the teacher folder is missing or not a run folder.
        ValueError: the run's method is not the one recorded, or it has no
            such direction, checkpoint or epoch.
    """
    teacher = distill.teacher
    if not is_run_folder(teacher):
        what = "does not exist" if not os.path.exists(teacher) else f"has no {CONFIG_FILE}"
        raise FileNotFoundError(
            f"The teacher {teacher} {what}: pass the run folder of a trained model "
            f"(runs/NAME, as `tfcyclegan train` made it). Received: teacher={teacher!r}"
        )
    method = load_run_config(teacher).model.method
    if method != distill.teacher_method:
        raise ValueError(
            f"The teacher {teacher} is a {method} run; this student was made for a "
            f"{distill.teacher_method} teacher. Received: teacher={teacher!r}"
        )
    model = load_run_model(
        teacher, checkpoint=distill.teacher_checkpoint, epoch=distill.teacher_epoch, verbose=False
    )
    try:
        return model.generator(distill.direction)
    except ValueError as error:
        raise ValueError(f"The teacher {teacher}: {error}") from None


def training_input_shape(config):
    """The batch shape a run's model is built for: the crop size, or any size without a crop.

    `scale_width` and `none` keep each image's aspect ratio, so the image
    pools are built for images of any height and width.
    """
    channels = config.model.input_channels
    if config.data.preprocess in CROP_MODES:
        size = config.data.crop_size
        return (None, size, size, channels)
    return (None, None, None, channels)


def restorable_model(config, strategy=None, steps_per_epoch=1):
    """(model, step, checkpoint): `build_model` built at the training size, with its checkpoint."""
    strategy = strategy or tf.distribute.get_strategy()
    model = build_model(config, strategy, steps_per_epoch)
    with strategy.scope():
        model.build(training_input_shape(config))
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        checkpoint = model.training_checkpoint(step=step)
    return model, step, checkpoint


# --- Choosing a checkpoint ----------------------------------------------------


def _prefixes(directory, name):
    """{number: prefix} of the checkpoints `name-N` in `directory` (complete ones only)."""
    if not os.path.isdir(directory):
        return {}
    found = {}
    for entry in os.listdir(directory):
        match = re.fullmatch(rf"{name}-(\d+)\.index", entry)
        if match:
            found[int(match.group(1))] = os.path.join(directory, entry[: -len(".index")])
    return found


def step_checkpoints(run_dir):
    """{step: prefix} of a run's rotating checkpoints `checkpoints/ckpt-STEP`."""
    return _prefixes(RunPaths(os.fspath(run_dir)).checkpoints, "ckpt")


def epoch_checkpoints(run_dir):
    """{epoch: prefix} of a run's kept epoch checkpoints `checkpoints/epochs/epoch-N`."""
    return _prefixes(RunPaths(os.fspath(run_dir)).epoch_checkpoints, "epoch")


def _steps_per_epoch(run_dir):
    try:
        value = read_run_info(run_dir).get("steps_per_epoch")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def select_checkpoint(run_dir, checkpoint=None, epoch=None):
    """The checkpoint prefix of a run that `checkpoint` or `epoch` names, or the latest.

    Args:
        run_dir: a run folder.
        checkpoint: a checkpoint's name (`ckpt-1200`, `epoch-60`) or path
            prefix; None for the latest.
        epoch: an epoch number: its kept epoch checkpoint, or the rotating
            checkpoint written at that epoch's end if it is still there.

    Returns:
        A checkpoint path prefix, or None when the run has no checkpoint and
        neither argument was given.

    Raises:
        ValueError: both arguments given, or no such checkpoint (the message
            lists the ones there are).
    """
    run_dir = os.fspath(run_dir)
    if checkpoint is not None and epoch is not None:
        raise ValueError(
            f"Pass a checkpoint or an epoch, not both. Received: checkpoint={checkpoint!r}, epoch={epoch!r}"
        )
    steps, epochs = step_checkpoints(run_dir), epoch_checkpoints(run_dir)
    available = (
        f"It has: {[f'ckpt-{s}' for s in sorted(steps)] or 'no step checkpoints'}; "
        f"epochs {sorted(epochs) or 'none kept (train with --save-epoch-every K)'}."
    )
    if epoch is not None:
        epoch = check_int("epoch", epoch, 1)
        if epoch in epochs:
            return epochs[epoch]
        per_epoch = _steps_per_epoch(run_dir)
        if per_epoch is not None and epoch * per_epoch in steps:
            return steps[epoch * per_epoch]
        raise ValueError(f"{run_dir} has no checkpoint of epoch {epoch}. {available}")
    if checkpoint is not None:
        name = os.path.basename(os.fspath(checkpoint))
        candidates = [os.fspath(checkpoint)]
        match = re.fullmatch(r"(ckpt|epoch)-(\d+)", name)
        if match:
            kept = steps if match.group(1) == "ckpt" else epochs
            candidates.insert(0, kept.get(int(match.group(2)), ""))
        for candidate in candidates:
            if candidate and os.path.isfile(candidate + ".index"):
                return candidate
        raise ValueError(f"{run_dir} has no checkpoint {checkpoint!r}. {available}")
    # The state file's choice, checked here: tf.train.latest_checkpoint logs an ERROR
    # line of its own when the files it names are gone.
    state = tf.train.get_checkpoint_state(RunPaths(run_dir).checkpoints)
    latest = state.model_checkpoint_path if state else None
    if latest and not os.path.isabs(latest):
        latest = os.path.join(RunPaths(run_dir).checkpoints, latest)
    if latest and os.path.isfile(latest + ".index"):
        return latest
    # The index file is missing or points at a deleted checkpoint: take the newest there is.
    return steps[max(steps)] if steps else None


def restore(checkpoint, prefix):
    """Reads a checkpoint into a `tf.train.Checkpoint`; a corrupt or truncated one is named."""
    try:
        return checkpoint.read(prefix)
    except Exception as error:  # OpError, ValueError, IndexError ("Read less bytes than requested")...
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(
            f"Cannot read checkpoint {prefix} (truncated or corrupt?): {first_line[:300]}"
        ) from None


def load_run_model(run_dir, checkpoint=None, epoch=None, verbose=True):
    """A run folder as a compiled model (`CycleGAN`, `Pix2Pix`, `CUT`, `Distill`), at any state.

    By default the run's newest state: `model.keras` (the final artifact) when
    it is at least as new as the latest checkpoint, else the latest checkpoint
    (a run killed mid-training has no up-to-date `model.keras`), saying which
    one is used. `checkpoint` or `epoch` picks another one.

    Args:
        run_dir: a run folder.
        checkpoint: a checkpoint name (`ckpt-1200`, `epoch-60`) or path prefix.
        epoch: an epoch number (see `select_checkpoint`).
        verbose: print the one-line note when a checkpoint newer than
            `model.keras` is used.

    Raises:
        FileNotFoundError: not a run folder, or it has neither checkpoints nor
            `model.keras`.
        ValueError: no such checkpoint, a corrupt one, or a garbled config.
    """
    import keras

    paths = RunPaths(os.fspath(run_dir))
    config = load_run_config(run_dir)
    prefix = select_checkpoint(run_dir, checkpoint, epoch)
    chosen = checkpoint is not None or epoch is not None
    if prefix is None:
        if os.path.isfile(paths.model):
            return _load_keras_file(keras, paths.model)
        raise FileNotFoundError(f"{run_dir} has neither checkpoints nor {MODEL_FILE}.")
    if not chosen and os.path.isfile(paths.model):
        if os.path.getmtime(paths.model) >= os.path.getmtime(prefix + ".index"):
            return _load_keras_file(keras, paths.model)
        if verbose:
            print(
                f"{paths.model} is older than checkpoint {os.path.basename(prefix)}; using the checkpoint.",
                file=sys.stderr,
            )
    model, _, training_checkpoint = restorable_model(config)
    restore(training_checkpoint, prefix).expect_partial()
    return model


def _load_keras_file(keras, path):
    legacy.check_archive(path)
    try:
        return legacy.load_model(path)
    except Exception as error:  # Keras raises many types for a bad archive.
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(
            f"Cannot load {path} as a Keras model: {type(error).__name__}: {first_line[:300]}"
        ) from None


__all__ = [
    "RunPaths",
    "build_model",
    "compile_arguments",
    "epoch_checkpoints",
    "is_run_folder",
    "load_run_config",
    "load_teacher",
    "load_run_model",
    "read_run_info",
    "restorable_model",
    "select_checkpoint",
    "step_checkpoints",
    "upgrade_history",
]
