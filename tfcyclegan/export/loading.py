"""Loading the generators to deploy: `.keras` files, run folders, loaded models.

Also the copies export makes of a generator (float32 for a mixed-precision
model, bfloat16 arithmetic for `export_saved_model(compute_dtype=...)`), and
what export reads from disk besides a model: a sample of a folder of images.
"""

import json
import logging
import os
import pathlib

import keras

from tfcyclegan import legacy, methods, runs
from tfcyclegan.config import parse_direction
from tfcyclegan.data import list_images, load_image
from tfcyclegan.networks import PatchDiscriminator, PixelDiscriminator, size_requirement

logger = logging.getLogger(__name__)


def _describe_model(model):
    return f"{type(model).__name__} {model.name!r}"


def keras_file(path):
    """The `.keras` file that `path` stands for (a run folder: its model.keras).

    A run folder without model.keras (killed before its end) has no such
    file: load it with `load_keras`, which restores its latest checkpoint.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"No model at {path}: expected a .keras file or a run folder."
        )
    if path.is_dir():
        candidate = path / "model.keras"
        if candidate.is_file():
            return candidate
        if runs.is_run_folder(path):
            raise FileNotFoundError(
                f"The run folder {path} has no model.keras yet (it was stopped before its "
                "end); `load_keras` restores its latest checkpoint instead."
            )
        if is_saved_model_dir(path) or version_dirs(path):
            raise ValueError(
                f"{path} is a SavedModel, which has no Keras generators to export again. "
                "Export from the .keras file or run folder it was made from (to translate "
                "with it, use `load_translator`)."
            )
        found = sorted(p.name for p in path.iterdir())[:8]
        raise FileNotFoundError(
            f"The folder {path} has no model.keras (nor config.json), so it is not a run folder. "
            f"It holds: {found or 'nothing'}. Pass a .keras file or a run folder."
        )
    if path.suffix in (".tflite", ".onnx"):
        kind = "a TFLite" if path.suffix == ".tflite" else "an ONNX"
        raise ValueError(
            f"{path} is {kind} file: it is already exported, and has no Keras model to export "
            "again. Export from the .keras file or run folder it was made from (to translate "
            f"with it: `tfcyclegan translate --model FILE{path.suffix}`)."
        )
    if path.suffix != ".keras":
        raise ValueError(
            f"Expected a .keras file or a run folder. Received: {path} "
            f"(a {path.suffix or 'extensionless'} file). A PyTorch .pth generator must first become a .keras file: "
            "`tfcyclegan import-torch FILE`."
        )
    return path


def is_generator(model):
    """Whether `model` is a tfcyclegan generator (it tells which image sizes it takes)."""
    if not isinstance(model, keras.Model):
        return False
    try:
        size_requirement(model)
    except ValueError:
        return False
    return True


def generators_of(model, direction="both"):
    """The generators in an already loaded model: a trained model of any method, or one generator.

    A model gives the generators of its method's directions (`Method.generators`):
    a CycleGAN G ("a2b") and F ("b2a"); pix2pix and CUT only G ("a2b"); a
    `Distill` run its student G, in its teacher's direction. A single
    generator has no direction of its own; it is keyed by `direction` ("a2b"
    when `direction="both"`).
    """
    direction = parse_direction(direction, allow_both=True)
    record = methods.method_of(model)
    if record is not None:
        found = record.generators(model)
        if direction == "both":
            return found
        if direction not in found:
            raise ValueError(
                f"{_describe_model(model)} ({record.name}) learned the {' and '.join(found)} "
                f"direction only. Received: direction={direction!r}"
            )
        return {direction: found[direction]}
    if isinstance(model, (PatchDiscriminator, PixelDiscriminator)):
        raise ValueError(
            f"This is a discriminator ({_describe_model(model)}), which has nothing to "
            "deploy: export a CycleGAN or pix2pix model (.keras or run folder) or a generator."
        )
    if is_generator(model):
        return {"a2b" if direction == "both" else direction: model}
    if isinstance(model, keras.Model):
        raise ValueError(
            f"{_describe_model(model)} is not a tfcyclegan model or generator (it has no "
            "'size_check' layer). Export a CycleGAN, a Pix2Pix, a ResnetGenerator / "
            "UnetGenerator, or a generator from `tfcyclegan import-torch`."
        )
    raise ValueError(
        f"Expected a keras.Model (CycleGAN, Pix2Pix or generator) or a path. Received: {model!r}"
    )


def load_generators(path, direction="both", checkpoint=None, epoch=None):
    """Loads the generators to deploy from a file or run folder.

    Args:
        path: a `.keras` file of a trained `CycleGAN` (G is "a2b", F "b2a"), a
            `.keras` file of one generator (e.g. from `tfcyclegan import-torch`),
            or a run folder `runs/NAME/` at any state (see `load_keras`).
        direction: "a2b", "b2a" or "both" ("x2y"/"y2x" are accepted too).
        checkpoint: for a run folder, a checkpoint name (`ckpt-1200`).
        epoch: for a run folder, an epoch's checkpoint.

    Returns:
        A dict mapping "a2b" / "b2a" to `keras.Model` generators.

    Raises:
        FileNotFoundError: nothing at `path`, or a folder that is not a run.
        ValueError: not a Keras file, not loadable, a discriminator, not a
            tfcyclegan model, or no such checkpoint.
    """
    direction = parse_direction(direction, allow_both=True)
    model = load_keras(path, checkpoint=checkpoint, epoch=epoch)
    try:
        return generators_of(model, direction)
    except ValueError as error:
        if os.fspath(path) in str(error):
            raise
        raise ValueError(f"{path}: {error}") from None


def load_keras(path, checkpoint=None, epoch=None):
    """The Keras model at `path`: a `.keras` file, or a run folder at any state.

    A run folder gives its newest state (`runs.load_run_model`): `model.keras`,
    or the latest checkpoint when the run was stopped before its end or
    `model.keras` is older; `checkpoint` or `epoch` picks another checkpoint.
    """
    if os.path.isdir(path) and runs.is_run_folder(path):
        return runs.load_run_model(path, checkpoint=checkpoint, epoch=epoch)
    if checkpoint is not None or epoch is not None:
        raise ValueError(
            f"A checkpoint or epoch can only be chosen in a run folder. Received: {path} "
            f"with checkpoint={checkpoint!r}, epoch={epoch!r}"
        )
    keras_path = keras_file(path)
    legacy.check_archive(keras_path)
    try:
        # compile=False: deployment needs no optimizer state, and skipping it is faster.
        return legacy.load_model(keras_path, compile=False)
    except Exception as error:  # Keras raises many types for a bad archive.
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise ValueError(
            f"Cannot load {keras_path} as a Keras model: {type(error).__name__}: {first_line}"
        ) from error


def training_size(path_or_model):
    """(height, width) the model was trained on, when it can be told; else None.

    Read from a CycleGAN's image pools (built with the training size) or, for a
    run folder, from `config.json`'s `data.crop_size`.
    """
    model = path_or_model
    if isinstance(model, (str, os.PathLike)):
        config = pathlib.Path(model) / "config.json"
        if config.is_file():
            try:
                crop = json.loads(config.read_text())["data"]["crop_size"]
                return int(crop), int(crop)
            except (KeyError, TypeError, ValueError):
                return None
        return None
    pool = getattr(model, "pool_x", None)
    images = getattr(pool, "images", None)
    if images is not None and len(images.shape) == 4:
        return int(images.shape[1]), int(images.shape[2])
    return None


def _rebuilt(generator, dtype):
    """A copy of `generator` with dtype policy `dtype` and the same weights."""
    config = generator.get_config()
    config["dtype"] = dtype
    copy = generator.__class__.from_config(config)
    copy.set_weights(generator.get_weights())
    return copy


def as_float32(generator):
    """The generator computing in float32 (a mixed-precision one is rebuilt)."""
    if generator.dtype_policy.compute_dtype == "float32":
        return generator
    try:
        return _rebuilt(generator, "float32")
    except Exception:  # A plain functional model keeps its policy.
        logger.warning(
            "Exporting %s with its %s policy (could not rebuild it in float32).",
            generator.name,
            generator.dtype_policy.name,
        )
        return generator


def with_compute_dtype(generator, compute_dtype):
    """The generator computing in `compute_dtype` ("float32" or "bfloat16")."""
    if compute_dtype == "float32":
        return as_float32(generator)
    if generator.dtype_policy.compute_dtype == compute_dtype:
        return generator
    try:
        return _rebuilt(generator, "mixed_" + compute_dtype)
    except Exception as error:
        raise ValueError(
            f"Cannot rebuild {generator.name} ({type(generator).__name__}) to compute in "
            f"{compute_dtype}: {error}. Export it in float32."
        ) from error


def channels_of(generator):
    return int(generator.input_shape[-1]), int(generator.output_shape[-1])


def is_saved_model_dir(path):
    return (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()


def version_dirs(path):
    return sorted(
        (int(p.name), p)
        for p in path.iterdir()
        if p.is_dir() and p.name.isdigit() and is_saved_model_dir(p)
    )


def sample_folder(folder, count, channels):
    """Up to `count` images spread evenly over `folder`'s sorted files, as uint8 arrays."""
    paths = list_images(folder)
    step = max(1, len(paths) // count)
    return [load_image(p, channels=channels) for p in paths[::step][:count]]
