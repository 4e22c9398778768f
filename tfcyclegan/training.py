"""Training runs: a run folder, `model.fit`, checkpoints, and exact resume.

A run lives in one folder:

    runs/NAME/
      config.json        the effective Config (model, data, train)
      run.json           where the data came from, tfcyclegan version
      checkpoints/       tf.train.CheckpointManager: networks, optimizers,
                         pools, step (the last `keep_checkpoints`)
        epochs/          epoch-N every `save_epoch_every` epochs, never rotated
      samples/           PNG grids: x, G(x), F(G(x)) | y, F(y), G(F(y))
      logs/              TensorBoard: losses and sample grids
      history.csv        the per-epoch loss averages
      model.keras        the trained model (written at the end and on Ctrl-C)

`train` is what `tfcyclegan train` runs; `load_run_model` (from `runs`)
gives back any state of a run (the latest by default, or a chosen checkpoint
or epoch) as a compiled model (`CycleGAN` or `Pix2Pix`).
"""

import contextlib
import csv
import dataclasses
import io
import json
import os
import random
import shutil
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tfcyclegan import callbacks as callbacks_lib
from tfcyclegan import data as data_lib
from tfcyclegan import distribute, fileio, runs
from tfcyclegan.config import Config
from tfcyclegan.data.geometry import CROP_MODES
from tfcyclegan.kernels import cpu
from tfcyclegan.networks import size_requirement
from tfcyclegan.runs import (  # noqa: F401 (re-exported: training is where users look)
    CONFIG_FILE,
    MODEL_FILE,
    RUN_FILE,
    RunPaths,
    build_model,
    compile_arguments,
    load_run_config,
    load_run_model,
    read_run_info,
    restorable_model,
)
from tfcyclegan.version import __version__

# What a checkpoint's shapes depend on: resuming with other values cannot work.
_ARCHITECTURE = ("model.",)
_DATA_SHAPE = ("data.crop_size", "data.channels", "data.preprocess", "data.load_size")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Where a run's images come from (exactly one form), saved in `run.json`.

    Args:
        data: a dataset root in the authors' layout (`trainA/`, `trainB/`,
            optional `testA/`, `testB/`) or `"tfds:<name>"`.
        domain_a: a folder of domain A (X) images.
        domain_b: a folder of domain B (Y) images.
        tfds: a TFDS dataset name, e.g. `cycle_gan/horse2zebra`.
    """

    data: str = None
    domain_a: str = None
    domain_b: str = None
    tfds: str = None

    def __post_init__(self):
        given = [self.data, self.domain_a or self.domain_b, self.tfds]
        if sum(value is not None for value in given) != 1 or (
            (self.domain_a is None) != (self.domain_b is None)
        ):
            raise ValueError(
                "Give the data as exactly one of: a dataset root (--data), two "
                "folders (--domain-a and --domain-b) or a TFDS name (--tfds). "
                f"Received: data={self.data!r}, domain_a={self.domain_a!r}, "
                f"domain_b={self.domain_b!r}, tfds={self.tfds!r}"
            )

    def domains(self, split):
        """The two `ImageSource`s of `split` ("train" or "test"), unpaired."""
        if self.domain_a is not None:
            if split != "train":
                return None
            return data_lib.resolve_domains(domain_a=self.domain_a, domain_b=self.domain_b)
        return data_lib.resolve_domains(data=self.data, tfds_name=self.tfds, split=split)

    def test_domains(self):
        """The test split's domains, or None when the dataset has none."""
        if self.domain_a is not None:
            return None
        if self.data is not None and not self.data.startswith("tfds:"):
            root = self.data
            if not all(os.path.isdir(os.path.join(root, f"test{x}")) for x in "AB"):
                return None
        return self.domains("test")

    def pairs(self, split):
        """The aligned pairs of `split` (pix2pix), or None when there is no such split."""
        if self.tfds is not None or (self.data or "").startswith("tfds:"):
            raise ValueError(
                "Paired training (pix2pix) reads the authors' aligned layout (--data ROOT with "
                "train/ val/ test/) or two folders with matching file names (--domain-a, "
                f"--domain-b); TFDS is not supported for it. Received: tfds={self.tfds or self.data!r}"
            )
        if self.domain_a is not None:
            if split != "train":
                return None
            return data_lib.resolve_pairs(domain_a=self.domain_a, domain_b=self.domain_b)
        if split != "train" and not data_lib.has_split(self.data, split):
            return None
        return data_lib.resolve_pairs(data=self.data, split=split)

    def dataset(self, config, split, training, **kwargs):
        """The `UnpairedData` (CycleGAN) or `PairedData` (pix2pix) of `split`, or None.

        `config.data.direction` "BtoA" swaps the sides, for either kind.
        """
        channels = (config.model.input_channels, config.model.output_channels)
        if config.paired:
            source = self.pairs(split)
            if source is None:
                return None
            return data_lib.paired_dataset(
                source, config.data, training=training, direction=config.data.direction,
                channels=channels, **kwargs,
            )
        domains = self.domains(split) if split == "train" else self.test_domains()
        if domains is None:
            return None
        if config.data.direction == "BtoA":
            domains = domains[::-1]
        return data_lib.unpaired_dataset(
            *domains, config.data, training=training, channels=channels, **kwargs
        )

    def to_dict(self):
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass
class TrainResult:
    """What `train` returns."""

    run_dir: str
    model: keras.Model  # CycleGAN or Pix2Pix
    history: dict
    step: int
    interrupted: bool


def save_model_atomically(model, path):
    """`model.save(path)` through a temporary file, so `path` is never half written."""
    with fileio.atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def incompatible_changes(saved, requested):
    """The differences between two configs that a checkpoint cannot absorb."""
    return [
        line
        for line in saved.diff(requested)
        if line.startswith(_ARCHITECTURE) or line.split(":")[0] in _DATA_SHAPE
    ]


def _saved_data_spec(paths):
    data = read_run_info(paths.root)["data"]
    try:
        return DataSpec(**data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{paths.run} does not name the run's data: {error}") from None


def _check_run_folder(run_dir, config, data_spec, resume):
    """(paths, DataSpec) of a run about to start or resume; writes nothing."""
    paths = RunPaths(os.fspath(run_dir))
    if resume:
        saved = load_run_config(run_dir)
        changes = incompatible_changes(saved, config)
        if changes:
            raise ValueError(
                f"Cannot resume {run_dir} with a different architecture or image "
                "shape; its checkpoints would not fit. Differences (saved -> "
                "requested):\n  " + "\n  ".join(changes)
            )
        data_spec = data_spec or _saved_data_spec(paths)
    else:
        # A folder whose start failed before its first checkpoint holds nothing
        # trained: a fresh start of the same name takes it over.
        if os.path.exists(paths.config) and (
            runs.select_checkpoint(paths.root) is not None or os.path.exists(paths.model)
        ):
            raise FileExistsError(
                f"{run_dir} already holds a run. Resume it with --resume {run_dir}, "
                "or choose another --name."
            )
        if data_spec is None:
            raise ValueError("A new run needs data: pass a DataSpec.")
    return paths, data_spec


def _write_run_files(paths, config, data_spec, steps_per_epoch):
    """config.json and run.json: written once the data has been found and checked.

    run.json records the steps per epoch, so that `--epoch N` finds the
    checkpoint written at the end of epoch N.
    """
    os.makedirs(paths.root, exist_ok=True)
    fileio.atomic_write(paths.config, config.to_json() + "\n")
    info = {"data": data_spec.to_dict(), "tfcyclegan": __version__, "steps_per_epoch": steps_per_epoch}
    fileio.atomic_write(paths.run, json.dumps(info, indent=2) + "\n")


def _sample_images(config, data_spec, count):
    """The first `count` (x, y) pairs of the test split (or train split), deterministic.

    Read one pair at a time: without a crop (`scale_width`, `none`) images keep
    their own sizes, so they are centre-cropped to the largest size they all
    have before they form the grid's rows.
    """
    if count == 0:
        return None
    eval_config = config.replace(
        data=dataclasses.replace(config.data, batch_size=1, skip_bad_files=True)
    )
    stream = data_spec.dataset(eval_config, "test", training=False, decode_check=False)
    if stream is None:
        stream = data_spec.dataset(eval_config, "train", training=False, decode_check=False)
    pairs = [(x[0].numpy(), y[0].numpy()) for x, y in stream.dataset.take(count)]
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    height = min(image.shape[0] for image in xs + ys)
    width = min(image.shape[1] for image in xs + ys)
    return (
        np.stack([_centre_crop(x, height, width) for x in xs]),
        np.stack([_centre_crop(y, height, width) for y in ys]),
    )
def _centre_crop(image, height, width):
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return image[top : top + height, left : left + width]


def _with_seed(config):
    """Fills in a random seed so that a resumed run continues the same streams."""
    if config.train.seed is not None:
        return config
    return config.replace(train=config.train.replace(seed=random.randrange(2**31 - 1)))


def train(
    config,
    run_dir,
    data_spec=None,
    resume=False,
    verbose="auto",
    extra_callbacks=(),
    strategy=None,
):
    """Trains a CycleGAN or pix2pix model with `model.fit`, in a run folder that can be resumed.

    Args:
        config: a `Config`. When resuming, pass the run's own config
            (`load_run_config`), possibly with changed training settings;
            architecture or image-shape changes are refused, naming them.
        run_dir: the run folder (created for a new run).
        data_spec: a `DataSpec`; optional when resuming (the run's own).
        resume: continue from the run's latest checkpoint.
        verbose: Keras `fit` verbosity.
        extra_callbacks: more Keras callbacks.
        strategy: a `tf.distribute.Strategy` or a name (`config.train.strategy`
            if None). With several workers only the chief writes the run
            folder; the others checkpoint into a temporary folder, as
            TensorFlow's multi-worker guide does.

    Returns:
        A `TrainResult`.
    """
    if not isinstance(config, Config):
        raise ValueError(f"`config` must be a Config. Received: {type(config).__name__}")
    # First: a multi-worker strategy must exist before any other TensorFlow work.
    strategy = distribute.make_strategy(strategy or config.train.strategy)
    _check_batch_split(config, strategy)
    _check_preprocess(config)
    chief = distribute.is_chief(strategy)
    config = _with_seed(config)
    # One process per run folder: a second `train --resume` of the same run is
    # refused, naming the first one's PID (the OS frees the lock when it dies).
    with fileio.RunLock(run_dir, "run") if chief else contextlib.nullcontext():
        return _train(config, run_dir, data_spec, resume, verbose, extra_callbacks, strategy, chief)


def _train(config, run_dir, data_spec, resume, verbose, extra_callbacks, strategy, chief):
    paths, write_paths, data_spec = _run_folders(run_dir, config, data_spec, resume, chief)
    verbose = verbose if chief else 0
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.train.seed)

    # The data is found and checked, and the model built, before the run folder
    # is written: a typo in a path or a model the config cannot build must not
    # leave a half-made run behind that blocks the name.
    data = _run_data(config, data_spec, verbose, chief)
    model, step, checkpoint = restorable_model(config, strategy, data.steps_per_epoch)
    _check_crop_size(model, config)
    if verbose and config.train.mixed_precision == "mixed_bfloat16":
        # What bfloat16 was measured to gain on CPUs like this one (often little).
        note = cpu.mixed_bfloat16_note()
        if note:
            print(note)
    if chief:
        _write_run_files(paths, config, data_spec, data.steps_per_epoch)
    if resume:
        restored = _restore_latest(checkpoint, paths, step, verbose)
        if chief:
            # First the rows of a killed run (by the file's time), then today's
            # metric names for the rows to come (which rewrites the file).
            _trim_history(paths.history, int(step.numpy()) // data.steps_per_epoch, restored)
            runs.upgrade_history(paths.history)
    run_callbacks = _run_callbacks(
        config, paths, write_paths, checkpoint, step, data.samples, chief, resume, extra_callbacks,
        data_spec, data.steps_per_epoch,
    )
    history, done = _fit(model, data, step, config, strategy, run_callbacks, verbose)

    if chief:
        save_model_atomically(model, paths.model)
    else:
        shutil.rmtree(write_paths.root, ignore_errors=True)
    # Ctrl-C (GracefulStop) or any callback (e.g. EarlyStopping) may stop early.
    total_steps = config.train.total_epochs * data.steps_per_epoch
    interrupted = done < total_steps
    if interrupted and chief:  # whatever the verbosity: say how to go on
        print(
            f"Stopped at step {done} of {total_steps}; saved a checkpoint and {paths.model}.\n"
            f"Resume with: tfcyclegan train --resume {paths.root}",
            file=sys.stderr,
        )
    elif verbose:
        print(f"Finished at step {done} of {total_steps}. Model: {paths.model}")
    return TrainResult(
        run_dir=paths.root, model=model, history=history, step=done, interrupted=interrupted
    )


# --- The steps of `train`, in order ------------------------------------------


def _check_batch_split(config, strategy):
    replicas = strategy.num_replicas_in_sync
    if config.data.batch_size % replicas:
        raise ValueError(
            f"The batch is split over {replicas} replicas, so batch_size must be a "
            f"multiple of {replicas}. Received: batch_size={config.data.batch_size}"
        )


def _check_preprocess(config):
    if config.train.jit_compile and config.data.preprocess not in CROP_MODES:
        # XLA compiles one program per input shape; images of their own sizes
        # would recompile at (nearly) every step.
        raise ValueError(
            f"preprocess={config.data.preprocess!r} keeps each image's own size, which XLA "
            "would compile anew for every size. Received: jit_compile=True; train without "
            "--jit, or with a cropping preprocess mode."
        )


def _run_folders(run_dir, config, data_spec, resume, chief):
    """(paths of the run, paths this process writes to, the DataSpec).

    With several workers only the chief writes the run folder; the others
    checkpoint into a temporary folder, as TensorFlow's multi-worker guide does.
    """
    if chief:
        paths, data_spec = _check_run_folder(run_dir, config, data_spec, resume)
        return paths, paths, data_spec
    paths = RunPaths(os.fspath(run_dir))
    if data_spec is None:
        data_spec = _saved_data_spec(paths)
    return paths, RunPaths(tempfile.mkdtemp(prefix="tfcyclegan-worker-")), data_spec


@dataclasses.dataclass
class _RunData:
    """The datasets of a run."""

    training: object  # data.UnpairedData or data.PairedData
    validation: object  # the same kind, or None
    samples: tuple  # (x, y) numpy arrays for the sample grids, or None
    steps_per_epoch: int


def _run_data(config, data_spec, verbose, chief):
    train_config = config.train
    training = data_spec.dataset(
        config, "train", training=True, seed=train_config.seed,
        progress=verbose not in (0, 2, False),  # 2: plain lines, no redrawn bar
    )
    validation = data_spec.dataset(config, "test", training=False) if train_config.validate else None
    samples = _sample_images(config, data_spec, train_config.num_samples) if chief else None
    return _RunData(
        training=training,
        validation=validation,
        samples=samples,
        steps_per_epoch=train_config.steps_per_epoch or training.steps_per_epoch,
    )


def _trim_history(path, epochs_done, checkpoint_prefix):
    """Drops history.csv rows written after the checkpoint a run resumes from.

    The row of an epoch is written before its checkpoint (`_run_callbacks`), so
    a run killed between the two has a row of an epoch its checkpoint does not
    cover: that epoch runs again on resume and writes its row again. A run
    stopped mid-epoch (Ctrl-C, SIGTERM) wrote that epoch's partial row before its
    checkpoint too, and keeps it. So rows go only where the file changed after
    the checkpoint's index was written, and only those of epochs from
    `epochs_done` on.
    """
    index = f"{checkpoint_prefix}.index"
    if not os.path.exists(path) or (
        os.path.exists(index) and os.path.getmtime(path) <= os.path.getmtime(index)
    ):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "epoch" not in rows[0]:
        return
    column = rows[0].index("epoch")
    kept = [rows[0]] + [row for row in rows[1:] if row and int(float(row[column])) < epochs_done]
    if len(kept) != len(rows):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(kept)
        fileio.atomic_write(path, buffer.getvalue())


def _restore_latest(checkpoint, paths, step, verbose):
    latest = runs.select_checkpoint(paths.root)
    if latest is None:
        held = sorted(os.listdir(paths.checkpoints)) if os.path.isdir(paths.checkpoints) else []
        data = [name for name in held if ".data-" in name]
        if data:
            raise FileNotFoundError(
                f"{paths.root} has no complete checkpoint to resume from: {paths.checkpoints} holds "
                f"{', '.join(data[:4])} but no .index file (a checkpoint write was cut short). "
                "Start the run again under a new --name."
            )
        raise FileNotFoundError(
            f"{paths.root} has no checkpoint to resume from ({paths.checkpoints} is empty)."
        )
    runs.restore(checkpoint, latest).assert_existing_objects_matched()
    if verbose:
        print(f"Resumed {paths.root} from {latest} (step {int(step.numpy())}).")
    return latest


def _run_callbacks(
    config, paths, write_paths, checkpoint, step, samples, chief, resume, extra_callbacks, data_spec,
    steps_per_epoch,
):
    """The run's callbacks, in the order they must run."""
    train_config = config.train
    # First the history row of an epoch, then its checkpoint: a run killed between
    # the two repeats the epoch on resume (`_trim_history`) rather than losing its
    # row. The CSV logger has no per-step hooks, so Checkpointing still advances
    # `step` before the callbacks that read it.
    run_callbacks = [keras.callbacks.CSVLogger(paths.history, append=resume)] if chief else []
    run_callbacks += [
        callbacks_lib.Checkpointing(
            checkpoint,
            write_paths.checkpoints,
            step,
            every_n_steps=train_config.checkpoint_every,
            keep=train_config.keep_checkpoints,
            epoch_directory=write_paths.epoch_checkpoints if train_config.save_epoch_every else None,
            save_epoch_every=train_config.save_epoch_every,
            steps_per_epoch=steps_per_epoch,
        )
    ]
    if samples is not None:
        run_callbacks.append(
            callbacks_lib.SampleGrid(
                *samples,
                paths.samples,
                every_n_steps=train_config.sample_every,
                log_dir=os.path.join(paths.logs, "samples"),
                step=step,
            )
        )
    run_callbacks.append(callbacks_lib.Throughput(config.data.batch_size))
    if chief:
        run_callbacks.append(keras.callbacks.TensorBoard(paths.logs, update_freq="epoch"))
    if chief and train_config.evaluate_every:
        if data_spec.data is None or data_spec.data.startswith("tfds:"):
            raise ValueError(
                "--evaluate-every measures the test split of a dataset root (--data ROOT with "
                "test/ or testA/ testB/); this run's data has none."
            )
        run_callbacks.append(
            callbacks_lib.Evaluation(
                data_spec.data, train_config.evaluate_every,
                log_dir=os.path.join(paths.logs, "evaluation"), image_size=config.data.crop_size,
                fid_weights=train_config.fid_weights, step=step,
            )
        )
    return run_callbacks + [callbacks_lib.GracefulStop(), *extra_callbacks]


def _check_crop_size(model, config):
    """Refuses a crop a network of the model cannot take (a generator's multiple, a
    discriminator's smallest size), before anything is written or trained."""
    if config.data.preprocess not in CROP_MODES:
        return  # scale_width / none: `_sizes_the_generator_takes` crops to a size they take
    size = config.data.crop_size
    for network in model._flatten_layers(include_self=False, recursive=False):
        if not isinstance(network, keras.Model):
            continue
        try:
            multiple, min_size = size_requirement(network)
        except ValueError:  # a network without a size check (CUT's heads)
            continue
        if size % multiple or size < min_size:
            fits = max(size // multiple * multiple, -(-min_size // multiple) * multiple)
            raise ValueError(
                f"{network.name} ({type(network).__name__}) needs images whose height and width are "
                f"multiples of {multiple} and at least {min_size}. Received: crop_size={size}. "
                f"Use e.g. --crop-size {fits} (and a --load-size at least that large)."
            )


def _sizes_the_generator_takes(model, config):
    """A map over (x, y) batches that centre-crops them to sizes the generators take.

    The cropping modes give `crop_size` images; `scale_width` keeps the
    aspect ratio, so heights come out as they fall (e.g. 39 px), which a
    ResNet generator (a multiple of 4) cannot return at the same size: the
    cycle loss could not compare them (the reference fails there). Such
    images lose the few rows or columns above the nearest size it takes.
    """
    if config.data.preprocess in CROP_MODES:
        return lambda dataset: dataset
    multiple, min_size = size_requirement(model.G)

    def crop(images):
        shape = tf.shape(images)
        height = tf.maximum(shape[1] // multiple * multiple, min_size)
        width = tf.maximum(shape[2] // multiple * multiple, min_size)
        top, left = (shape[1] - height) // 2, (shape[2] - width) // 2
        return images[:, top : top + height, left : left + width]

    return lambda dataset: dataset.map(lambda x, y: (crop(x), crop(y)))


def _fit(model, data, step, config, strategy, run_callbacks, verbose):
    """Runs `fit` until the schedule's last step or a stop; (history, steps done).

    Keras starts epochs at their beginning; a run stopped mid-epoch first
    finishes that epoch with a shorter fit, then continues epoch by epoch.
    Each fit starts the data stream where the previous one left it.
    """
    steps_per_epoch = data.steps_per_epoch
    total_epochs = config.train.total_epochs
    total_steps = total_epochs * steps_per_epoch
    validation = data.validation
    fitted = _sizes_the_generator_takes(model, config)
    history = {}
    done = int(step.numpy())
    model.stop_training = False
    while done < total_steps and not model.stop_training:
        epoch, offset = divmod(done, steps_per_epoch)
        fit_args = dict(
            epochs=epoch + 1 if offset else total_epochs,
            initial_epoch=epoch,
            steps_per_epoch=steps_per_epoch - offset if offset else steps_per_epoch,
            validation_data=fitted(validation.dataset) if validation is not None else None,
            callbacks=run_callbacks,
            verbose=verbose,
        )
        if distribute.is_multi_worker(strategy):
            fit_history = distribute.fit_distributed(
                model, fitted(data.training.from_step(done)), strategy=strategy,
                global_batch_size=config.data.batch_size, **fit_args,
            )
        else:
            fit_history = model.fit(
                fitted(data.training.from_step(done)),
                validation_steps=validation.steps_per_epoch if validation is not None else None,
                shuffle=False,  # the stream shuffles itself, reproducibly
                **fit_args,
            )
        for key, values in fit_history.history.items():
            history.setdefault(key, []).extend(values)
        done = int(step.numpy())
    return history, done


__all__ = [
    "DataSpec",
    "RunPaths",
    "TrainResult",
    "build_model",
    "compile_arguments",
    "incompatible_changes",
    "load_run_config",
    "load_run_model",
    "save_model_atomically",
    "train",
]
