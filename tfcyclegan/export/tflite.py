"""TFLite / LiteRT conversion: builtin ops only, metadata, GPU-delegate notes.

`convert_tflite` makes one flatbuffer per quantization mode (fp32, fp16,
dynamic-range int8, full int8 calibrated on representative images), with
float or uint8 tensors, checks that every operator is a TFLite builtin (phone
runtimes ship without the Flex delegate) and stores what a runner needs (the
size multiple, tensor names, range, default size) as JSON metadata "tfcyclegan".

Full int8 first equalizes the convolutions that feed instance norm, on the
calibration images (`quantization.equalize_instance_norm`, which says why).
"""

import contextlib
import io
import json
import logging
import os
import re
import tempfile

import numpy as np
import tensorflow as tf

from tfcyclegan import imaging, kernels
from tfcyclegan.config import check_choice
from tfcyclegan.export.loading import as_float32, channels_of, generators_of, is_generator
from tfcyclegan.export.quantization import calibration_set, equalize_instance_norm
from tfcyclegan.export.runtime import METADATA_NAME, quiet_logger
from tfcyclegan.export.saved_model import write_archive
from tfcyclegan.kernels.subpixel import subpixel_upsampling
from tfcyclegan.networks import size_requirement
from tfcyclegan.version import __version__

TFLITE_MODES = ("fp32", "fp16", "dynamic_int8", "int8")


TFLITE_IO = ("float32", "uint8")


DEFAULT_INPUT_SIDE = 256
"""Side of the default input size of dynamic-size files when the training size is unknown.

The paper's crop size; rounded up to the generator's size multiple.
"""


class NonBuiltinOpsError(ValueError):
    """A TFLite model needs ops that are not TFLite builtins (Flex or custom)."""

    def __init__(self, message, ops):
        super().__init__(message)
        self.ops = list(ops)


def _flatbuffer_utils():
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils


def tflite_ops(tflite_bytes):
    """Sorted names of the operators in a .tflite flatbuffer (custom ops by their custom name)."""
    utils = _flatbuffer_utils()
    model = utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    names = set()
    for subgraph in model.subgraphs:
        for op in subgraph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            names.add(_opcode_name(code))
    return sorted(names)


def _opcode_name(code):
    from tensorflow.lite.python import schema_py_generated as schema

    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode
        return custom.decode() if isinstance(custom, bytes) else str(custom)
    for name, value in vars(schema.BuiltinOperator).items():
        if value == builtin and not name.startswith("_"):
            return name
    return f"BUILTIN_{builtin}"


def check_builtin_ops(tflite_bytes):
    """The operator names of a .tflite model; raises if any is not a TFLite builtin.

    Flex ops (TensorFlow kernels, named `Flex...`) need the Select TF ops
    delegate and custom ops need their own kernels; neither ships with the
    LiteRT runtimes of phones.

    Returns:
        Sorted operator names, e.g. ["CONCATENATION", "CONV_2D", ...].

    Raises:
        NonBuiltinOpsError: (a ValueError) naming the offending ops.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    builtin_names = {n for n in vars(schema.BuiltinOperator) if not n.startswith("_")} - {"CUSTOM"}
    names = tflite_ops(tflite_bytes)
    bad = [name for name in names if name not in builtin_names]
    if bad:
        flex = [n for n in bad if n.startswith("Flex")]
        hint = (
            " Flex ops are TensorFlow kernels run by the Select TF ops delegate, which "
            "phone runtimes do not include."
            if flex
            else ""
        )
        raise NonBuiltinOpsError(
            f"The TFLite model uses ops that are not TFLite builtins: {', '.join(bad)}.{hint} "
            "Replace the layers that produce them with builtin-friendly ops.",
            bad,
        )
    return names


@contextlib.contextmanager
def tflite_saved_model(generator, input_size, int8_pixels=False):
    """A temporary SavedModel with the two signatures .tflite files are made from.

    `translate` (float32 [-1, 1]) and `translate_uint8` (pixels): the bare
    generator, without the padding of the serving signatures (a runner pads).

    With `int8_pixels`, `translate_uint8` is written for full-int8 conversion.
    There, rounding and clipping in the graph would run on int8 values and
    cost ~12 dB of PSNR (measured); instead the output is pinned to [0, 255]
    by a FakeQuant op and the converter's uint8 output then has scale 1 and
    zero point 0: its values are the pixels.

    Dynamic-size files compute each transposed convolution as a convolution
    and a depth-to-space (`kernels.subpixel.subpixel_upsampling`, the same outputs): a
    TRANSPOSE_CONV whose output shape is computed at run time is not taken by
    LiteRT's XNNPACK delegate and made these files ~14% slower than
    fixed-size ones; with the sub-pixel form they are as fast (benchmarks/README.md).
    Fixed-size files keep TRANSPOSE_CONV, which XNNPACK and GPU delegates run.

    Layers are traced in their portable forms (`kernels.portable_ops`): LiteRT
    runs a CONV_2D faster than the Winograd form's small ops (and int8
    quantization of its transformed values would cost precision), and has no
    fused batch norm in training mode for instance normalization.
    """
    channels, _ = channels_of(generator)
    # int8 TANH has a fixed output range; any other last op (the colour generator's
    # clipped sum) gets its range from calibration, which the converter scaled wrongly
    # for the pixel output below (17.96 dB against float, measured); pinning it to
    # [-1, 1] gives 50.2 dB (and would cost a tanh generator 20 dB: only the others).
    pin_output = not _ends_in_tanh(generator)
    if input_size is None:
        shape = [None, None, None, channels]
        generator = subpixel_upsampling(generator)
    else:
        shape = [1, *input_size, channels]

    def translate(images):
        return {"output_images": generator(images, training=False)}

    def translate_uint8(pixels):
        outputs = generator(imaging.to_float(pixels), training=False)
        if int8_pixels:
            if pin_output:
                outputs = tf.quantization.fake_quant_with_min_max_args(outputs, min=-1.0, max=1.0, num_bits=8)
            # outputs * 127.5 + 127.5, not (outputs + 1) * 127.5: the latter
            # gave a bias of -14 levels after quantization (measured).
            pixels = tf.quantization.fake_quant_with_min_max_args(
                outputs * 127.5 + 127.5, min=0.0, max=255.0, num_bits=8
            )
            return {"output_pixels": pixels}
        return {"output_pixels": imaging.to_uint8(outputs)}

    endpoints = {
        "translate": (translate, [tf.TensorSpec(shape, tf.float32, name="images")]),
        "translate_uint8": (translate_uint8, [tf.TensorSpec(shape, tf.uint8, name="pixels")]),
    }
    with tempfile.TemporaryDirectory(prefix="tfcyclegan-tflite-") as tmp:
        with kernels.portable_ops():
            write_archive(tmp, endpoints)
        yield tmp


def _ends_in_tanh(generator):
    """Whether `generator`'s output layer is a tanh (every generator's but the colour one)."""
    activation = getattr(generator.layers[-1], "activation", None)
    return getattr(activation, "__name__", None) == "tanh"


def _check_mode(mode):
    check_choice("mode", mode, TFLITE_MODES)


def check_input_size(input_size, multiple, min_size, name="input_size"):
    if input_size is None:
        return None
    if (
        not isinstance(input_size, (tuple, list))
        or len(input_size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in input_size)
    ):
        raise ValueError(
            f"`{name}` must be None or (height, width). Received: {name}={input_size!r}"
        )
    if any(v % multiple or v < min_size for v in input_size):
        raise ValueError(
            f"`{name}` must be multiples of {multiple}, at least {min_size}. "
            f"Received: {name}={tuple(input_size)}"
        )
    return tuple(input_size)


def valid_size(size, multiple, min_size):
    """(height, width) `size` rounded up to a size the generator takes."""
    return tuple(max(-(-int(v) // multiple) * multiple, min_size) for v in size)


def with_default_shape(tflite_bytes, size):
    """`tflite_bytes` whose input and output tensors store shape [1, H, W, C].

    The converter stores a dynamic-size file's input as [1, 1, 1, C], and
    allocating tensors at that shape fails in XNNPACK ("failed to reshape
    runtimeNode"): a 1 x 1 image is smaller than the generator's padding, so
    every runner had to resize the input first. With a valid default shape,
    `Interpreter(model_path=...).allocate_tensors()` works as it does for any
    other model. The shape signature stays [-1, -1, -1, C], so resizing to
    other sizes works as before: only the stored default changes, the graph
    does not (intermediate tensors get their shapes when tensors are allocated).
    """
    utils = _flatbuffer_utils()
    model = utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    height, width = size
    for signature in model.signatureDefs or []:
        subgraph = model.subgraphs[signature.subgraphIndex]
        for entry in list(signature.inputs or []) + list(signature.outputs or []):
            tensor = subgraph.tensors[entry.tensorIndex]
            dims = None if tensor.shapeSignature is None else list(tensor.shapeSignature)
            if dims is not None and len(dims) == 4 and dims[1] < 0 and dims[2] < 0:
                tensor.shape = np.array([1, height, width, dims[3]], np.int32)
    return bytes(utils.convert_object_to_bytearray(model))


def _converter_error(error):
    """A ValueError naming the ops a conversion failed on, for builtin-only conversions."""
    text = str(error)
    ops = []
    for label in ("TF Select ops:", "Custom ops:"):
        for match in re.finditer(re.escape(label) + r"\s*([^\n]+)", text):
            ops += [op.strip() for op in match.group(1).split(",") if op.strip()]
    ops = sorted(set(ops))
    if ops:
        return NonBuiltinOpsError(
            "The generator uses TensorFlow ops with no TFLite builtin kernel: "
            f"{', '.join(ops)}. Phone runtimes ship without the Flex (Select TF ops) "
            "delegate, so tfcyclegan exports builtin ops only; replace the layers that "
            "produce these ops.",
            ops,
        )
    return None


def _convert(saved_model_dir, signature, mode, calibration, uint8_io):
    converter = tf.lite.TFLiteConverter.from_saved_model(
        os.fspath(saved_model_dir), signature_keys=[signature]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # INT8 only: fail rather than keep a float kernel for an op without an
        # int8 one (a silent float fallback would defeat the int8 accelerators).
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

        def representative_dataset():
            for image in calibration:
                if uint8_io:
                    yield [imaging.to_uint8_array(image)]
                else:
                    yield [image]

        converter.representative_dataset = representative_dataset
        if uint8_io:
            # The input is uint8 in the graph already (cast exactly); the
            # output becomes uint8 here (see `tflite_saved_model`).
            converter.inference_output_type = tf.uint8
    try:
        with quiet_logger("absl"):  # the converter's absl warnings
            return converter.convert()
    except Exception as error:
        mapped = _converter_error(error)
        if mapped is not None:
            raise mapped from None
        raise


def _metadata(generator, mode, uint8_io, input_size, default_size, direction=None):
    multiple, min_size = size_requirement(generator)
    in_channels, out_channels = channels_of(generator)
    io_name = "uint8" if uint8_io else "float32"
    return {
        "format": "tfcyclegan-tflite/1",
        "signature": "translate_uint8" if uint8_io else "translate",
        "input": "pixels" if uint8_io else "images",
        "output": "output_pixels" if uint8_io else "output_images",
        "dtype": io_name,
        "range": [0, 255] if uint8_io else [-1.0, 1.0],
        "size_multiple": multiple,
        "min_size": min_size,
        "input_channels": in_channels,
        "output_channels": out_channels,
        "input_size": None if input_size is None else list(input_size),
        "default_input_size": list(default_size),
        "mode": mode,
        "direction": direction,
        "generator": generator.name,
        "tfcyclegan_version": __version__,
    }


def add_tflite_metadata(tflite_bytes, metadata, name=METADATA_NAME):
    """`tflite_bytes` with metadata entry `name` holding `metadata` as JSON (replaced if present)."""
    from tensorflow.lite.python import schema_py_generated as schema

    utils = _flatbuffer_utils()
    model = utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), np.uint8)
    model.metadata = model.metadata or []
    for entry in model.metadata:
        if entry.name.decode() == name:
            model.buffers[entry.buffer] = buffer
            break
    else:
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name.encode()
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    return bytes(utils.convert_object_to_bytearray(model))


def convert_tflite(
    generator,
    mode="fp32",
    representative_images=None,
    uint8_io=False,
    input_size=None,
    direction=None,
    default_input_size=None,
    allow_lossy_int8=False,
):
    """Converts a generator to a TFLite / LiteRT flatbuffer of builtin ops only.

    Args:
        generator: a tfcyclegan generator.
        mode: "fp32"; "fp16" (float16 weights, half the size, float compute on
            CPU, float16 on GPUs); "dynamic_int8" (int8 weights, float
            activations); "int8" (int8 weights and activations, calibrated on
            `representative_images`; what NPUs / DSPs need; the convolutions
            before instance norms are equalized first, see
            `equalize_instance_norm`).
        representative_images: for "int8": a folder of images (a sample of up
            to 16 is used) or a list of HWC arrays, uint8 or float in [-1, 1];
            best from the input domain at about the training size (the A|B
            images of an aligned test folder cost ~8 dB, measured).
        uint8_io: take uint8 pixels in [0, 255] and return uint8 pixels (the
            conversion to and from [-1, 1] baked in), so a phone app passes
            camera pixels directly. Signature `translate_uint8`; otherwise
            `translate` with float32 in [-1, 1].
        input_size: None (height and width dynamic: resize the input tensor to
            any valid size), or (height, width) for a fixed-size, batch-1 model,
            which GPU delegates prefer (no shape arithmetic in the graph).
        direction: recorded in the metadata ("a2b" / "b2a").
        default_input_size: (height, width) a dynamic-size file stores as its
            input shape, so that it runs without resizing first (its shape
            signature stays dynamic); best the training size. Default:
            `input_size` for fixed-size files, else 256 x 256 rounded up to
            the size multiple. Recorded in the metadata as "default_input_size".
        allow_lossy_int8: for "int8", convert a generator whose instance norms
            cannot be equalized anyway, with a warning (its metadata says why
            in "equalization_refused"); by default that is a `LossyInt8Error`.

    Returns:
        The .tflite flatbuffer (bytes), with metadata "tfcyclegan" (JSON: size
        multiple, tensor names, dtype, range, default input size, ...).

    Raises:
        NonBuiltinOpsError: the generator needs non-builtin (Flex/custom) ops.
        LossyInt8Error: mode "int8" and the generator's instance norms cannot be
            equalized (`equalize_instance_norm`), unless `allow_lossy_int8`.
    """
    _check_mode(mode)
    if not is_generator(generator):
        generators_of(generator)
    generator = as_float32(generator)
    multiple, min_size = size_requirement(generator)
    input_size = check_input_size(input_size, multiple, min_size)
    default_size = _check_default_size(generator, input_size, default_input_size)
    calibration = None
    if mode == "int8":
        calibration = calibration_set(
            representative_images, channels_of(generator)[0], multiple, min_size
        )
    with tflite_saved_model(generator, input_size, mode == "int8" and uint8_io) as saved_model_dir:
        flatbuffer, _, _ = convert_variant(
            saved_model_dir, generator, mode, calibration, uint8_io, input_size, direction,
            default_size, allow_lossy_int8,
        )
        return flatbuffer


def _check_default_size(generator, input_size, default_input_size):
    """The default input size to store: valid, and the fixed size of a fixed-size file."""
    multiple, min_size = size_requirement(generator)
    default_input_size = check_input_size(
        default_input_size, multiple, min_size, name="default_input_size"
    )
    if input_size is not None:
        if default_input_size not in (None, input_size):
            raise ValueError(
                "A fixed-size file takes only its `input_size`, which is also its default: "
                f"leave `default_input_size` unset. Received: input_size={input_size}, "
                f"default_input_size={default_input_size}"
            )
        return input_size
    return default_input_size or default_input_size_of(generator)


def default_input_size_of(generator, size=None):
    """`size` (e.g. the training size), else `DEFAULT_INPUT_SIDE` squared, rounded up
    to a size the generator takes."""
    multiple, min_size = size_requirement(generator)
    return valid_size(size or (DEFAULT_INPUT_SIDE, DEFAULT_INPUT_SIDE), multiple, min_size)


def convert_variant(
    saved_model_dir, generator, mode, calibration, uint8_io, input_size, direction, default_size,
    allow_lossy_int8=False,
):
    """(flatbuffer with metadata, its operator names, the metadata).

    For mode "int8", `generator` is first equalized on `calibration`
    (`equalize_instance_norm`) and converted from its own temporary
    SavedModel; `saved_model_dir` serves the other modes. Where equalization
    cannot apply, a `LossyInt8Error`, unless `allow_lossy_int8`.
    """
    signature = "translate_uint8" if uint8_io else "translate"
    equalized = None
    if mode == "int8" and calibration is not None:
        equalized = equalize_instance_norm(generator, calibration)
        if equalized.refused is not None:
            if not allow_lossy_int8:
                raise equalized.lossy_int8_error()
            logging.getLogger(__name__).warning(
                "Writing lossy full int8 of %s (allow_lossy_int8): %s.",
                generator.name, equalized.refused,
            )
    if equalized is not None and equalized.pairs:
        with tflite_saved_model(equalized.generator, input_size, uint8_io) as equalized_dir:
            flatbuffer = _convert(equalized_dir, signature, mode, calibration, uint8_io)
    else:
        flatbuffer = _convert(saved_model_dir, signature, mode, calibration, uint8_io)
    ops = check_builtin_ops(flatbuffer)
    if input_size is None:
        flatbuffer = with_default_shape(flatbuffer, default_size)
    metadata = _metadata(generator, mode, uint8_io, input_size, default_size, direction)
    if equalized is not None:
        metadata["equalized_norms"] = len(equalized.pairs)
        if equalized.refused is not None:
            metadata["equalization_refused"] = equalized.refused
    return add_tflite_metadata(flatbuffer, metadata), ops, metadata


def gpu_compatibility(tflite_bytes):
    """What may keep a .tflite model (partly) off the GPU delegate.

    Returns a dict:
        analyzer: the "GPU COMPATIBILITY WARNING" lines of
            `tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)`.
        integer_ops: ops computing on integer tensors (shape arithmetic at
            run time: SHAPE, PACK, STRIDED_SLICE on int32, ...). The
            GPU delegate runs float tensors only, so these stay on the CPU and
            split the graph.
        dynamic_shape: the input has unknown dimensions; GPU delegates need a
            fixed size (convert with `input_size=(H, W)`).

    Note: in the TensorFlow 2.21 and ai-edge-litert 2.x wheels the analyzer's
    GPU check prints "looks compatible" even for Flex ops, so `analyzer` being
    empty proves little; check on a device (e.g. LiteRT's benchmark tool with
    `--use_gpu=true`).
    """
    from tensorflow.lite.python import schema_py_generated as schema

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            tf.lite.experimental.Analyzer.analyze(
                model_content=tflite_bytes, gpu_compatibility=True
            )
        text = out.getvalue()
    except Exception as error:  # The analyzer is experimental.
        text = f"GPU COMPATIBILITY WARNING: analyzer failed: {error}"
    analyzer = sorted(
        {
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if "GPU COMPATIBILITY WARNING" in line
        }
    )

    utils = _flatbuffer_utils()
    model = utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    integer_types = {schema.TensorType.INT32, schema.TensorType.INT64, schema.TensorType.BOOL}
    integer_ops = set()
    dynamic = False
    for subgraph in model.subgraphs:
        tensors = subgraph.tensors
        for index in subgraph.inputs:
            signature = tensors[index].shapeSignature
            dynamic |= signature is not None and any(d < 0 for d in signature)
        for op in subgraph.operators or []:
            outputs = [tensors[i] for i in op.outputs if i >= 0]
            if outputs and all(t.type in integer_types for t in outputs):
                integer_ops.add(_opcode_name(model.operatorCodes[op.opcodeIndex]))
    return {
        "analyzer": analyzer,
        "integer_ops": sorted(integer_ops),
        "dynamic_shape": bool(dynamic),
    }
