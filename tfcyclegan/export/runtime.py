"""Running a model on disk: what `tfcyclegan translate` and the parity checks use.

`load_translator` opens any model form (run folder, `.keras`, SavedModel,
`.tflite`, `.onnx`, export folder) as a `Translator` that maps float32 images
in [-1, 1] of any size to their translations. It imports none of the exporters.
"""

import contextlib
import importlib
import json
import logging
import os
import pathlib

import numpy as np
import tensorflow as tf

from tfcyclegan import fileio, imaging
from tfcyclegan.config import parse_direction
from tfcyclegan.export.graph_check import check_saved_model_ops
from tfcyclegan.export.loading import channels_of, is_saved_model_dir, load_generators, version_dirs
from tfcyclegan.models import translate_with

METADATA_NAME = "tfcyclegan"
"""Name of the JSON metadata entry in exported .tflite files."""


REPORT_NAME = "export_report.json"


REPORT_MODELS = "models"
"""Key of `export_report.json` holding one entry per model name exported into the folder."""


ONNX_INPUT = "images"
ONNX_OUTPUT = "output_images"
"""The tensor names of exported `.onnx` files (those of the TFLite files' `translate`)."""


@contextlib.contextmanager
def quiet_logger(name):
    """Raises the Python logger `name` to ERROR for the duration (a converter's chatter)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def require_module(name, needed_for, install):
    """`import name`, or an ImportError saying what needs it and how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(f"{needed_for} needs {name}, which is not installed: {install}.") from error


def read_tflite_metadata(tflite_bytes, name=METADATA_NAME):
    """The JSON metadata entry `name` of a .tflite flatbuffer, or None.

    Raises:
        ValueError: the bytes are not a TFLite flatbuffer, or a truncated or
            corrupt one.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    data = bytearray(tflite_bytes)
    # Every TFLite flatbuffer has the file identifier "TFL3" at bytes 4-7.
    if data[4:8] != b"TFL3":
        raise ValueError("not a TFLite model (no 'TFL3' identifier)")
    try:
        model = schema.Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name().decode() == name:
                return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    except Exception as error:  # struct.error, IndexError, UnicodeDecodeError, JSONDecodeError
        raise ValueError(
            f"a truncated or corrupt TFLite model ({type(error).__name__}: {error})"
        ) from None
    return None


def report_entries(report):
    """model name -> entry of an `export_report.json` (a dict), oldest first.

    Since several models may be exported into one folder, the report keeps one
    entry per model name under "models"; its top level repeats the latest
    export's entry, as reports did before there were several (such a report is
    read as one model).
    """
    if REPORT_MODELS in report:
        return dict(report[REPORT_MODELS])
    return {report.get("model_name") or model_name_of(report): report}


def model_name_of(entry):
    """The model name of a report entry written before entries named their model."""
    for folder in entry.get("saved_models", {}).values():
        name = pathlib.PurePosixPath(folder).parts[0]
        for direction in ("a2b", "b2a"):
            if name.endswith("_" + direction):
                return name[: -len(direction) - 1]
    return "cyclegan"  # export()'s default


def pad_numpy(images, multiple, min_size):
    padded, _ = imaging.pad_to_multiple(np.asarray(images), multiple, min_size)
    return padded.numpy()


def _interpreter(model_content=None, model_path=None, num_threads=None):
    """A LiteRT interpreter (ai-edge-litert, or TensorFlow's deprecated one)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    # LiteRT announces its XNNPACK delegate on standard error whatever the log
    # level; hidden when TensorFlow's own logs are (the CLI's default).
    with fileio.native_stderr_silenced(fileio.native_logs_hidden()):
        return Interpreter(model_content=model_content, model_path=model_path, num_threads=num_threads)


class Translator:
    """Translates float32 NHWC images in [-1, 1] of any size with a loaded model.

    Call it with an (N, H, W, C) or (H, W, C) array; it returns the same shape.
    `kind` says what runs: "keras", "saved_model", "tflite" or "onnx".
    """

    def __init__(self, kind, fn, input_channels, source, batch_size=8):
        self.kind = kind
        self._fn = fn
        self.input_channels = input_channels
        self.source = source
        self.batch_size = batch_size

    def __call__(self, images):
        images = np.asarray(images, dtype=np.float32)
        single = images.ndim == 3
        if single:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != self.input_channels:
            raise ValueError(
                f"Expected images of shape (batch, height, width, {self.input_channels}) or "
                f"(height, width, {self.input_channels}). Received: shape={images.shape}"
            )
        outputs = [
            np.asarray(self._fn(images[i : i + self.batch_size]))
            for i in range(0, len(images), self.batch_size)
        ]
        result = np.concatenate(outputs) if outputs else np.zeros_like(images)
        return result[0] if single else result

    def __repr__(self):
        return f"Translator(kind={self.kind!r}, source={os.fspath(self.source)!r})"


class TFLiteRunner:
    """Runs a .tflite generator on float images of any size: pads, resizes, crops.

    `source` names the file in error messages.
    """

    def __init__(self, tflite_bytes, num_threads=None, multiple=None, source=None):
        what = "This .tflite file" if source is None else os.fspath(source)
        try:
            self.metadata = read_tflite_metadata(tflite_bytes) or {}
        except ValueError as error:
            raise ValueError(f"{what} is {error}.") from None
        self.multiple = multiple or self.metadata.get("size_multiple")
        if not self.multiple:
            raise ValueError(
                f"{what} is not a tfcyclegan generator: it has no '{METADATA_NAME}' "
                "metadata, which `tfcyclegan export` / `convert_tflite` write (the size "
                "multiple the model needs is unknown)."
            )
        self.min_size = self.metadata.get("min_size", self.multiple)
        try:
            self.interpreter = _interpreter(model_content=tflite_bytes, num_threads=num_threads)
        except (ValueError, RuntimeError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ValueError(
                f"{what} cannot be loaded by LiteRT (truncated or corrupt?): {first_line}"
            ) from None
        signatures = self.interpreter.get_signature_list()
        self.signature = next(iter(signatures))
        self.input_name = signatures[self.signature]["inputs"][0]
        self.output_name = signatures[self.signature]["outputs"][0]
        detail = self.interpreter.get_input_details()[0]
        self.input_index = detail["index"]
        self.uint8 = detail["dtype"] == np.uint8
        self.channels = int(detail["shape_signature"][-1])
        signature = [int(d) for d in detail["shape_signature"]]
        self.fixed_size = tuple(signature[1:3]) if min(signature) > 0 else None
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self._shape = None

    def _invoke(self, batch):
        if tuple(batch.shape) != self._shape:
            self.interpreter.resize_tensor_input(self.input_index, list(batch.shape), strict=False)
            with fileio.native_stderr_silenced(fileio.native_logs_hidden()):
                self.interpreter.allocate_tensors()
            self._shape = tuple(batch.shape)
        self.interpreter.set_tensor(self.input_index, batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)

    def __call__(self, images):
        height, width = images.shape[1:3]
        padded = pad_numpy(images, self.multiple, self.min_size)
        if self.uint8:
            padded = imaging.to_uint8_array(padded)
        if self.fixed_size:
            if padded.shape[1:3] != self.fixed_size:
                raise ValueError(
                    f"This .tflite file takes only "
                    f"{self.fixed_size[0]}x{self.fixed_size[1]} images "
                    f"(exported with a fixed input size). Received: {height}x{width}. Resize the "
                    "images, or use a file exported without tflite_input_size."
                )
            outputs = np.concatenate([self._invoke(padded[i : i + 1]) for i in range(len(padded))])
        else:
            outputs = self._invoke(np.ascontiguousarray(padded))
        if outputs.dtype == np.uint8:
            outputs = imaging.to_float_array(outputs)
        return outputs[:, :height, :width]


class OnnxRunner:
    """Runs an exported `.onnx` generator in onnxruntime on float images of any size:
    pads to the size its metadata asks for, runs, crops.

    `source` names the file in error messages; `num_threads` sets onnxruntime's
    intra-op threads (default: its own, one per core). CPU only: a GPU user
    makes an `onnxruntime.InferenceSession` with their providers (the file is
    the same).
    """

    def __init__(self, onnx_bytes, num_threads=None, source=None):
        what = "This .onnx file" if source is None else os.fspath(source)
        ort = require_module(
            "onnxruntime", "Running .onnx files", "pip install 'tfcyclegan[onnx]' (or onnxruntime)"
        )
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        try:
            self.session = ort.InferenceSession(
                onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(
                f"{what} cannot be loaded by onnxruntime (truncated, corrupt, or not ONNX?): {first_line}"
            ) from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if "size_multiple" not in self.metadata:
            raise ValueError(
                f"{what} is not a tfcyclegan generator: its metadata_props have no "
                "'size_multiple', which `tfcyclegan export --format onnx` / `convert_onnx` "
                "write (the size the model needs is unknown)."
            )
        self.multiple = int(self.metadata["size_multiple"])
        self.min_size = int(self.metadata.get("min_size", self.multiple))
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        self.channels = int(inputs[0].shape[-1])

    def __call__(self, images):
        height, width = images.shape[1:3]
        padded = np.ascontiguousarray(pad_numpy(images, self.multiple, self.min_size), np.float32)
        (outputs,) = self.session.run(None, {self.input_name: padded})
        return outputs[:, :height, :width]


def load_translator(path, direction="a2b", num_threads=None, batch_size=8, model_name=None,
                    checkpoint=None, epoch=None):
    """A callable translating float32 images in [-1, 1] of any size with a model on disk.

    Args:
        path: any of
            - a run folder or `.keras` file (CycleGAN: `direction` picks G or F;
              a single generator is used as is);
            - a SavedModel: TF Serving's model folder (the highest numbered
              version is used, as TF Serving does) or one version folder;
            - a `.tflite` file from `convert_tflite` (its metadata gives the size
              multiple);
            - an `.onnx` file from `convert_onnx`, run in onnxruntime (the `onnx`
              extra; its metadata gives the size multiple);
            - an export folder (`export_report.json`): the SavedModel of
              `model_name` for `direction`.
            SavedModels, .tflite and .onnx files hold one direction; `direction`
            is ignored for them.
        direction: "a2b" or "b2a".
        num_threads: TFLite interpreter / onnxruntime threads (default: the
            runtime's).
        batch_size: images per call.
        model_name: for an export folder holding several models (exports
            with different `model_name`s): which one. Not needed when it
            holds one.
        checkpoint: for a run folder, a checkpoint name (`ckpt-1200`,
            `epoch-60`) instead of the newest state.
        epoch: for a run folder, the checkpoint of this epoch.

    Returns:
        A `Translator`: `translator(images)` maps (N, H, W, C) or (H, W, C)
        float32 arrays in [-1, 1] to the same shape; images are reflect-padded
        to a size the generator takes and cropped back.

    Raises:
        FileNotFoundError: nothing at `path`.
        ValueError: `path` is not a model tfcyclegan can run (a file of
            another model, truncated, corrupt), or the export folder has no
            such model / direction; the message names the file.
        ImportError: an `.onnx` file and no onnxruntime.
    """
    direction = parse_direction(direction)
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"No model at {path}: expected a run folder, .keras, SavedModel folder, .tflite or "
            ".onnx file."
        )
    if (checkpoint is not None or epoch is not None) and not path.is_dir():
        raise ValueError(
            f"A checkpoint or epoch can only be chosen in a run folder. Received: {path} "
            f"with checkpoint={checkpoint!r}, epoch={epoch!r}"
        )
    if path.is_file() and path.suffix == ".tflite":
        runner = TFLiteRunner(path.read_bytes(), num_threads=num_threads, source=path)
        return Translator("tflite", runner, runner.channels, path, batch_size)
    if path.is_file() and path.suffix == ".onnx":
        runner = OnnxRunner(path.read_bytes(), num_threads=num_threads, source=path)
        return Translator("onnx", runner, runner.channels, path, batch_size)
    if path.is_dir() and (path / REPORT_NAME).is_file() and not (path / "model.keras").exists():
        entry = _report_entry(path, model_name)
        saved = entry.get("saved_models", {}).get(direction)
        if saved is None:
            raise ValueError(
                f"The export at {path} has no SavedModel for direction {direction!r} "
                f"(it has: {sorted(entry.get('saved_models', {})) or 'none'})."
            )
        return load_translator(path / saved, direction, num_threads, batch_size)
    if path.is_dir() and (is_saved_model_dir(path) or version_dirs(path)):
        version_dir = path if is_saved_model_dir(path) else version_dirs(path)[-1][1]
        check_saved_model_ops(version_dir)  # a SavedModel is code: read before it is run
        loaded = tf.saved_model.load(os.fspath(version_dir))
        if "translate" not in loaded.signatures:
            raise ValueError(
                f"The SavedModel at {version_dir} has no 'translate' signature; it was not "
                f"made by tfcyclegan.export. Signatures: {sorted(loaded.signatures)}"
            )
        signature = loaded.signatures["translate"]
        channels = int(signature.structured_input_signature[1]["images"].shape[-1])

        def run(images):
            return signature(images=tf.constant(images))["output_images"].numpy()

        translator = Translator("saved_model", run, channels, version_dir, batch_size)
        translator._loaded = loaded  # keeps the variables alive
        return translator
    generator = load_generators(path, direction, checkpoint=checkpoint, epoch=epoch)[direction]
    return Translator(
        "keras",
        lambda images: translate_with(generator, images),
        channels_of(generator)[0],
        path,
        batch_size,
    )


def _report_entry(export_dir, model_name):
    """The report entry of `model_name` in an export folder (the only one when None)."""
    report_path = export_dir / REPORT_NAME
    try:
        entries = report_entries(json.loads(report_path.read_text()))
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"Cannot read {report_path}: {error}") from None
    if model_name is None:
        if len(entries) > 1:
            folders = [
                pathlib.PurePosixPath(folder).parts[0]
                for entry in entries.values()
                for folder in entry.get("saved_models", {}).values()
            ]
            example = f" (e.g. {export_dir / folders[0]})" if folders else ""
            raise ValueError(
                f"The export at {export_dir} holds several models: {sorted(entries)}. Choose "
                f"one with model_name=..., or pass its SavedModel folder{example}."
            )
        return next(iter(entries.values()))
    if model_name not in entries:
        raise ValueError(
            f"The export at {export_dir} has no model {model_name!r}. It has: "
            f"{sorted(entries)}. Received: model_name={model_name!r}"
        )
    return entries[model_name]
