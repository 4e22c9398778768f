"""ONNX export: a generator as one `.onnx` file for onnxruntime, OpenVINO and other ONNX runtimes.

The route is Keras 3's own `model.export(path, format="onnx")`: with the
TensorFlow backend it traces the model's call as a `tf.function` and converts
it with tf2onnx (which Keras patches for numpy 2). It is the maintained path
for Keras 3 models, takes a dynamic input signature, and needs no SavedModel
on disk; the file is then given tfcyclegan's tensor names, named dynamic
dimensions and metadata (`onnx` only edits the protobuf).

The file holds the bare generator, like a `.tflite` file: float32 NHWC images
in [-1, 1] whose height and width are multiples of the size multiple (at least
the minimum size), batch, height and width dynamic. Its runner pads and crops
(`runtime.OnnxRunner`); the size rule and what a runner needs are in the
model's `metadata_props` (`onnx_metadata`).
"""

import contextlib
import json
import os
import tempfile
import warnings

from tfcyclegan import kernels
from tfcyclegan.checks import check_int
from tfcyclegan.export.loading import as_float32, channels_of, generators_of, is_generator
from tfcyclegan.export.runtime import ONNX_INPUT, ONNX_OUTPUT, quiet_logger, require_module
from tfcyclegan.networks import size_requirement
from tfcyclegan.version import __version__

ONNX_OPSET = 17
"""The ONNX opset of exported files.

17 is run by every maintained runtime (onnxruntime since 1.12, OpenVINO since
2022.3, TensorRT since 8.6) and holds every op the generators need (Conv,
ConvTranspose, Pad in reflect mode, Resize, DepthToSpace); a newer opset would
add nothing these graphs use and lock out older runtimes.
"""

ONNX_FORMAT = "tfcyclegan-onnx/1"

_EXTRA_HINT = "pip install 'tfcyclegan[onnx]' (tf2onnx, onnx, onnxruntime)"


def check_onnx_extra(run=True):
    """Raises an ImportError naming the `onnx` extra unless tf2onnx and onnx (and, with
    `run`, onnxruntime) are installed: what `export` checks before any work."""
    for name in ("tf2onnx", "onnx") + (("onnxruntime",) if run else ()):
        require_module(name, "Exporting ONNX files" if name != "onnxruntime" else
                       "Checking exported ONNX files (parity)", _EXTRA_HINT)


def onnx_metadata(generator, direction=None, method=None, opset=ONNX_OPSET):
    """The `metadata_props` of an exported generator: str -> str (ONNX stores strings).

    Numbers and lists are JSON; `runtime.OnnxRunner` reads "size_multiple" and
    "min_size" (the sizes the file takes, `networks.size_requirement`).
    """
    multiple, min_size = size_requirement(generator)
    in_channels, out_channels = channels_of(generator)
    values = {
        "format": ONNX_FORMAT,
        "input": ONNX_INPUT,
        "output": ONNX_OUTPUT,
        "layout": "NHWC",
        "dtype": "float32",
        "range": [-1.0, 1.0],
        "size_multiple": multiple,
        "min_size": min_size,
        "input_channels": in_channels,
        "output_channels": out_channels,
        "direction": direction,
        "method": method,
        "generator": generator.name,
        "opset": opset,
        "tfcyclegan_version": __version__,
    }
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in values.items()
        if value is not None
    }


def convert_onnx(generator, direction=None, method=None, opset=ONNX_OPSET):
    """Converts a generator to an ONNX model with dynamic batch, height and width.

    Args:
        generator: a tfcyclegan generator (any family; mixed-precision ones are
            exported as float32 copies).
        direction: recorded in the metadata ("a2b" / "b2a").
        method: recorded in the metadata ("cyclegan", "pix2pix", ...).
        opset: the ONNX opset (`ONNX_OPSET`, 17).

    Returns:
        The serialized ONNX model (bytes): input `images`, output
        `output_images`, float32 NHWC [batch, height, width, C] in [-1, 1],
        with `onnx_metadata` as its `metadata_props`.

    Raises:
        ImportError: tf2onnx or onnx is missing (the `onnx` extra).
    """
    if not is_generator(generator):
        generators_of(generator)  # raises the right message
    check_int("opset", opset, 13, hint="tf2onnx converts to opset 13 or newer")
    check_onnx_extra(run=False)
    import keras
    import onnx

    generator = as_float32(generator)
    channels = channels_of(generator)
    spec = keras.InputSpec(shape=(None, None, None, channels[0]), dtype="float32", name=ONNX_INPUT)
    with tempfile.TemporaryDirectory(prefix="tfcyclegan-onnx-") as tmp:
        path = os.path.join(tmp, "generator.onnx")
        # The plain Keras graph: the speed forms are TensorFlow's (Winograd tiles are
        # small ops an ONNX runtime runs slower than its own Conv; the fused norm is a
        # training-mode batch norm), and every ONNX runtime has reflect Pad.
        with kernels.disabled(), _quiet_conversion():
            generator.export(path, format="onnx", input_signature=[spec], opset_version=opset,
                             verbose=False)
        model = onnx.load(path)
    _name_tensors(model.graph, channels)
    del model.metadata_props[:]
    for key, value in onnx_metadata(generator, direction, method, opset).items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = f"tfcyclegan {__version__} generator {generator.name}"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _name_tensors(graph, channels):
    """Names the graph's input and output as the TFLite files do (`images` ->
    `output_images`) and their dimensions `batch`, `height`, `width`.

    tf2onnx names them after the traced function (`args_0`, `Identity:0`) with
    anonymous dynamic dimensions (`unk__678`). `channels`: (input, output) channels.
    """
    assert len(graph.input) == 1 and len(graph.output) == 1, (graph.input, graph.output)
    renames = {graph.input[0].name: ONNX_INPUT, graph.output[0].name: ONNX_OUTPUT}
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    for value in graph.value_info:
        value.name = renames.get(value.name, value.name)
    for value, depth in zip((graph.input[0], graph.output[0]), channels):
        value.name = renames[value.name]
        dims = value.type.tensor_type.shape.dim
        for dim, name in zip(dims, ("batch", "height", "width")):
            dim.Clear()
            dim.dim_param = name
        dims[3].Clear()
        dims[3].dim_value = depth


@contextlib.contextmanager
def _quiet_conversion():
    """Hides tf2onnx's INFO lines and Keras's numpy-2 patch warning for the duration."""
    with quiet_logger("tf2onnx"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield
