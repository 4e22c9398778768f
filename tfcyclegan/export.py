"""Deployment: SavedModels for TF Serving, TFLite / LiteRT files for phones, parity-checked.

What a trained generator becomes, and what each artifact takes:

- **SavedModel** (`export_saved_model`), in TF Serving's layout
  `OUT/<model_name>/<version>/`, with three signatures:

  | signature         | input                                 | output                         |
  |-------------------|---------------------------------------|--------------------------------|
  | `serving_default` | `image_bytes`: string [N], encoded    | `output_bytes`: string [N], PNG|
  | `translate`       | `images`: float32 [N, H, W, C], [-1,1]| `output_images`: same, [-1, 1] |
  | `translate_uint8` | `pixels`: uint8 [N, H, W, C]          | `output_pixels`: uint8         |

  Encoded images may be JPEG, PNG, GIF, BMP or WebP, each of its own size;
  H x W of the float and uint8 signatures may be any size.

  Decoding, reflect-padding to the size the generator needs, normalisation,
  cropping back and PNG encoding are all in the graph, written with TensorFlow
  ops only, so TF Serving, `saved_model_cli` and `tf.saved_model.load` run it
  without tfcyclegan installed. Names end in `_bytes` because TF Serving's REST
  API treats such tensors as binary (`{"b64": ...}`).

- **TFLite / LiteRT** (`convert_tflite`): `fp32`, `fp16` (float16 weights),
  `dynamic_int8` (int8 weights, float activations) and `int8` (weights and
  activations, calibrated on representative images). Builtin ops only - phone
  runtimes ship without the Flex (TensorFlow ops) delegate - and checked on the
  produced flatbuffer (`check_builtin_ops`). One signature, `translate`
  (`images` -> `output_images`, float32 in [-1, 1]) or, with `uint8_io=True`,
  `translate_uint8` (`pixels` -> `output_pixels`, uint8, the [0, 255] <->
  [-1, 1] conversion baked in). Height and width are dynamic: resize the input
  tensor to any multiple of the model's size multiple. The .tflite does not pad;
  its runner does (`load_translator`, `export/litert_translate.py`). The multiple
  and the rest of what a runner needs are stored in the file as metadata
  `"tfcyclegan"` (JSON, `read_tflite_metadata`).

- **Parity** (`export` writes `export_report.json`): every artifact against the
  Keras model on the same images; max abs error and PSNR (peak-to-peak 2 for
  [-1, 1] images, which equals PSNR on 0-255 pixels). Bounds: SavedModel and
  fp32 TFLite within `FLOAT_TOLERANCE` (1e-4) of Keras, checked on every
  export; fp16 and int8 are reported, not bounded, because their error depends
  on the weights and images.
"""

import contextlib
import dataclasses
import io
import json
import logging
import math
import os
import pathlib
import re
import shutil
import tempfile
import time
import uuid

import keras
import numpy as np
import tensorflow as tf

from tfcyclegan import imaging

# Importing model (and through it the networks) also registers them with
# Keras, so `.keras` files load.
from tfcyclegan.model import size_requirement, translate_with
from tfcyclegan.networks import PatchDiscriminator, PixelDiscriminator

logger = logging.getLogger(__name__)

DIRECTIONS = ("a2b", "b2a")
TFLITE_MODES = ("fp32", "fp16", "dynamic_int8", "int8")
TFLITE_IO = ("float32", "uint8")
FORMATS = ("saved_model", "tflite")
# The SavedModel's arithmetic. bfloat16 keeps float32 weights, inputs and
# outputs and convolves in bfloat16: ~2x faster on CPUs with AVX512_BF16 or
# AMX (Xeon since Cooper Lake, EPYC since Zen 4) and on TPUs; slower where
# bfloat16 is emulated (AVX2-only CPUs). See benchmarks/README.md.
SAVED_MODEL_DTYPES = ("float32", "bfloat16")

FLOAT_TOLERANCE = 1e-4
"""Max abs difference allowed between Keras and the SavedModel / fp32 TFLite outputs."""

DEFAULT_MAX_PIXELS = 2048 * 2048
"""Largest image (height x width) the SavedModel accepts per image.

At ngf=64 one full-resolution activation of a 2048 x 2048 image is 1 GiB of
float32; a server should refuse larger requests with a message rather than run
out of memory.
"""

METADATA_NAME = "tfcyclegan"
"""Name of the JSON metadata entry in exported .tflite files."""

REPORT_NAME = "export_report.json"

_DIRECTION_ALIASES = {"a2b": "a2b", "x2y": "a2b", "b2a": "b2a", "y2x": "b2a"}


# =============================================================================
# Loading generators
# =============================================================================


def _check_direction(direction, allow_both=True):
    if allow_both and direction == "both":
        return "both"
    if direction in _DIRECTION_ALIASES:
        return _DIRECTION_ALIASES[direction]
    choices = ["a2b", "b2a"] + (["both"] if allow_both else [])
    raise ValueError(
        f"`direction` must be one of {choices} (or 'x2y'/'y2x'). Received: direction={direction!r}"
    )


def _keras_file(path):
    """The `.keras` file that `path` (a file or a run folder) stands for."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"No model at {path}: expected a .keras file or a run folder holding model.keras."
        )
    if path.is_dir():
        candidate = path / "model.keras"
        if candidate.is_file():
            return candidate
        if _is_saved_model_dir(path) or _version_dirs(path):
            raise ValueError(
                f"{path} is a SavedModel, which has no Keras generators to export again. "
                "Export from the .keras file or run folder it was made from (to translate "
                "with it, use `load_translator`)."
            )
        found = sorted(p.name for p in path.iterdir())[:8]
        raise FileNotFoundError(
            f"The folder {path} has no model.keras, so it is not a run folder. "
            f"It holds: {found}. Pass a .keras file or a run folder."
        )
    if path.suffix != ".keras":
        raise ValueError(
            f"Expected a .keras file or a run folder. Received: {path} "
            f"(a {path.suffix or 'extensionless'} file). A PyTorch .pth generator must first become a .keras file: "
            "`tfcyclegan import-torch FILE`."
        )
    return path


def _is_generator(model):
    return isinstance(model, keras.Model) and _size_check(model) is not None


def _size_check(model):
    try:
        return model.get_layer("size_check")
    except ValueError:
        return None


def _describe_model(model):
    return f"{type(model).__name__} {model.name!r}"


def generators_of(model, direction="both"):
    """The generators in an already loaded model: a `CycleGAN` or one generator.

    A single generator has no direction of its own; it is keyed by `direction`
    ("a2b" when `direction="both"`).
    """
    direction = _check_direction(direction)
    from tfcyclegan.model import CycleGAN

    if isinstance(model, CycleGAN):
        found = {"a2b": model.G, "b2a": model.F}
        return found if direction == "both" else {direction: found[direction]}
    if isinstance(model, (PatchDiscriminator, PixelDiscriminator)):
        raise ValueError(
            f"This is a discriminator ({_describe_model(model)}), which has nothing to "
            "deploy: export a CycleGAN (.keras or run folder) or a generator."
        )
    if _is_generator(model):
        return {"a2b" if direction == "both" else direction: model}
    if isinstance(model, keras.Model):
        raise ValueError(
            f"{_describe_model(model)} is not a tfcyclegan CycleGAN or generator (it has no "
            "'size_check' layer). Export a CycleGAN, a ResnetGenerator / UnetGenerator, or a "
            "generator from `tfcyclegan import-torch`."
        )
    raise ValueError(
        f"Expected a keras.Model (CycleGAN or generator) or a path. Received: {model!r}"
    )


def load_generators(path, direction="both"):
    """Loads the generators to deploy from a file or run folder.

    Args:
        path: a `.keras` file of a trained `CycleGAN` (G is "a2b", F "b2a"), a
            `.keras` file of one generator (e.g. from `tfcyclegan import-torch`),
            or a run folder `runs/NAME/` (its `model.keras` is loaded).
        direction: "a2b", "b2a" or "both" ("x2y"/"y2x" are accepted too).

    Returns:
        A dict mapping "a2b" / "b2a" to `keras.Model` generators.

    Raises:
        FileNotFoundError: nothing at `path`, or a folder without model.keras.
        ValueError: not a Keras file, not loadable, a discriminator, or not a
            tfcyclegan model.
    """
    direction = _check_direction(direction)
    return generators_of(_load_keras(path), direction)


def _load_keras(path):
    keras_path = _keras_file(path)
    try:
        # compile=False: deployment needs no optimizer state, and skipping it is faster.
        return keras.saving.load_model(keras_path, compile=False)
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


def _as_float32(generator):
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


def _with_compute_dtype(generator, compute_dtype):
    """The generator computing in `compute_dtype` ("float32" or "bfloat16")."""
    if compute_dtype == "float32":
        return _as_float32(generator)
    if generator.dtype_policy.compute_dtype == compute_dtype:
        return generator
    try:
        return _rebuilt(generator, "mixed_" + compute_dtype)
    except Exception as error:
        raise ValueError(
            f"Cannot rebuild {generator.name} ({type(generator).__name__}) to compute in "
            f"{compute_dtype}: {error}. Export it in float32."
        ) from error


def _channels(generator):
    return int(generator.input_shape[-1]), int(generator.output_shape[-1])


# =============================================================================
# In-graph image handling (TensorFlow ops only: runs in TF Serving)
# =============================================================================


def _check_pixels(height, width, max_pixels, what):
    pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
    return tf.debugging.Assert(
        pixels <= max_pixels,
        [
            f"{what} is too large: height x width must be at most {max_pixels} pixels "
            "(export with a larger max_pixels to allow it). Received height, width:",
            height,
            width,
        ],
    )


def _be(b, offset, count):
    """Big-endian unsigned integer of `count` bytes of uint8 vector `b` at `offset`."""
    value = tf.constant(0, tf.int64)
    for i in range(count):
        value = value * 256 + tf.cast(b[offset + i], tf.int64)
    return value


def _le(b, offset, count, signed=False):
    value = tf.constant(0, tf.int64)
    for i in reversed(range(count)):
        value = value * 256 + tf.cast(b[offset + i], tf.int64)
    if signed:
        value = tf.where(value >= 2 ** (8 * count - 1), value - 2 ** (8 * count), value)
    return value


def _header_size(data, index):
    """(height, width) from a PNG, GIF, BMP or JPEG header, before decoding.

    (-1, -1) for WebP and JPEG XL.

    Decoding a 30000 x 30000 PNG takes 2.7 GB, and the file may be a few
    hundred bytes: the size is checked before any pixel is decoded (WebP and
    JPEG XL, which TensorFlow also decodes, are checked after decoding).
    Anything else fails here, naming the image's position in the request.
    """
    b = tf.io.decode_raw(data, tf.uint8, fixed_length=32)

    def starts_with(*magic, at=0):
        return tf.reduce_all(tf.equal(b[at : at + len(magic)], magic))

    is_png = starts_with(0x89, 0x50, 0x4E, 0x47)  # \x89PNG
    is_gif = starts_with(0x47, 0x49, 0x46, 0x38)  # GIF8
    is_bmp = starts_with(0x42, 0x4D)  # BM
    is_jpeg = starts_with(0xFF, 0xD8, 0xFF)
    is_webp = starts_with(0x52, 0x49, 0x46, 0x46) & starts_with(0x57, 0x45, 0x42, 0x50, at=8)
    is_jxl = starts_with(0xFF, 0x0A) | starts_with(0, 0, 0, 0x0C, 0x4A, 0x58, 0x4C, 0x20)
    known = is_png | is_gif | is_bmp | is_jpeg | is_webp | is_jxl
    check = tf.debugging.Assert(
        known,
        [
            "An entry of image_bytes is not a JPEG, PNG, GIF, BMP or WebP image. Its index "
            "(from 0) and first bytes:",
            index,
            b[:8],
        ],
        summarize=8,
    )

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0], shape[1]

    with tf.control_dependencies([check]):
        return tf.case(
            [
                (is_png, lambda: (_be(b, 20, 4), _be(b, 16, 4))),
                (is_gif, lambda: (_le(b, 8, 2), _le(b, 6, 2))),
                (is_bmp, lambda: (tf.abs(_le(b, 22, 4, True)), _le(b, 18, 4, True))),
                (is_jpeg, jpeg),
            ],
            default=lambda: (tf.constant(-1, tf.int64), tf.constant(-1, tf.int64)),
            exclusive=True,
        )


def _decode(data, index, channels, max_pixels):
    """Encoded image -> uint8 [H, W, channels]; grayscale, RGB and alpha converted."""
    height, width = _header_size(data, index)
    with tf.control_dependencies(
        [_check_pixels(height, width, max_pixels, "An image in image_bytes")]
    ):
        pixels = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
    have = tf.shape(pixels)[-1]
    if channels == 3:
        pixels = tf.cond(
            have < 3,
            lambda: tf.image.grayscale_to_rgb(pixels[..., :1]),
            lambda: pixels[..., :3],  # alpha is dropped, as tfcyclegan.data does
        )
    else:
        pixels = tf.cond(
            have < 3,
            lambda: pixels[..., :1],
            lambda: tf.image.rgb_to_grayscale(pixels[..., :3]),
        )
    pixels = tf.ensure_shape(pixels, [None, None, channels])
    shape = tf.shape(pixels)
    with tf.control_dependencies(
        [_check_pixels(shape[0], shape[1], max_pixels, "An image in image_bytes")]
    ):
        return tf.identity(pixels)


class _ServingFunctions:
    """The SavedModel's signatures around one generator."""

    def __init__(self, generator, max_pixels):
        self.generator = generator
        self.multiple, self.min_size = size_requirement(generator)
        self.in_channels, self.out_channels = _channels(generator)
        self.max_pixels = int(max_pixels)

    def _run(self, images):
        # Signatures do not enforce the channel count (TF Serving passes any
        # shape through): say what is wrong before a convolution does.
        shape = tf.shape(images)
        checks = [
            tf.debugging.Assert(
                shape[3] == self.in_channels,
                [
                    f"Expected images with {self.in_channels} channels (NHWC). Received shape:",
                    shape,
                ],
                summarize=4,
            ),
            _check_pixels(shape[1], shape[2], self.max_pixels, "An image"),
        ]
        with tf.control_dependencies(checks):
            padded, size = imaging.pad_to_multiple(images, self.multiple, self.min_size)
        outputs = tf.cast(self.generator(padded, training=False), tf.float32)
        return imaging.crop_to(outputs, size)

    def translate(self, images):
        return {"output_images": self._run(images)}

    def translate_uint8(self, pixels):
        return {"output_pixels": imaging.to_uint8(self._run(imaging.to_float(pixels)))}

    def serving_default(self, image_bytes):
        def one(index):
            pixels = _decode(image_bytes[index], index, self.in_channels, self.max_pixels)
            output = imaging.to_uint8(self._run(imaging.to_float(pixels[None])))[0]
            return tf.io.encode_png(output)

        # One image at a time: images of one request may differ in size.
        indices = tf.range(tf.shape(image_bytes)[0])
        outputs = tf.map_fn(one, indices, fn_output_signature=tf.TensorSpec([], tf.string))
        return {"output_bytes": outputs}

    def signatures(self):
        c_in = self.in_channels
        return {
            "serving_default": (
                self.serving_default,
                [tf.TensorSpec([None], tf.string, name="image_bytes")],
            ),
            "translate": (
                self.translate,
                [tf.TensorSpec([None, None, None, c_in], tf.float32, name="images")],
            ),
            "translate_uint8": (
                self.translate_uint8,
                [tf.TensorSpec([None, None, None, c_in], tf.uint8, name="pixels")],
            ),
        }


# =============================================================================
# SavedModel (TF Serving)
# =============================================================================


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            "`version` must be an integer >= 1 (TF Serving loads numbered folders). "
            f"Received: version={version!r}"
        )


def _check_model_name(model_name):
    if not isinstance(model_name, str) or not re.fullmatch(
        r"[A-Za-z0-9][A-Za-z0-9_.-]*", model_name
    ):
        raise ValueError(
            "`model_name` must be a folder name of letters, digits, '_', '-' or '.', e.g. "
            f"'cyclegan_a2b'. Received: model_name={model_name!r}"
        )


def _write_archive(out_dir, endpoints):
    # The endpoints' functions carry the generator's variables. Calling
    # `archive.track(generator)` as well would save every weight twice (once
    # as Keras variables, once as the tf.Variables the functions capture):
    # a 92 MB SavedModel for 46 MB of ResNet-9 weights (measured).
    archive = keras.export.ExportArchive()
    for name, (fn, signature) in endpoints.items():
        archive.add_endpoint(name, fn, input_signature=signature)
    # Keras prints the endpoints otherwise; the report says what was written.
    with contextlib.redirect_stdout(io.StringIO()):
        archive.write_out(os.fspath(out_dir), verbose=False)


def _replace_dir(tmp, target, overwrite):
    """Moves `tmp` to `target` in one rename, so a reader never sees half a folder."""
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace it.")
        trash = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
        os.replace(target, trash)
        os.replace(tmp, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, target)


def export_saved_model(
    generator,
    out_dir,
    model_name="cyclegan_a2b",
    version=1,
    overwrite=False,
    max_pixels=DEFAULT_MAX_PIXELS,
    compute_dtype="float32",
):
    """Writes `generator` as a SavedModel for TF Serving at `out_dir/model_name/version/`.

    The version is written to a hidden temporary folder beside it and renamed
    into place, so a crashed export never leaves a partial version that TF
    Serving would try to load (it only looks at numeric folder names).

    Args:
        generator: a tfcyclegan generator (`keras.Model` with a "size_check" layer).
        out_dir: the models folder (TF Serving's `--model_base_path` is
            `out_dir/model_name`).
        model_name: TF Serving's model name and the folder name.
        version: positive integer version folder.
        overwrite: replace an existing version.
        max_pixels: largest height x width accepted per image; larger requests
            fail with InvalidArgument.
        compute_dtype: "float32" (the model's numbers), or "bfloat16" (float32
            weights and tensors in and out, bfloat16 arithmetic inside: about
            twice as fast on CPUs with AVX512_BF16 / AMX, slower on CPUs
            without; PSNR vs float32 measured 44 dB on random weights, 61 dB on
            a trained model).

    Returns:
        The version folder (`pathlib.Path`).
    """
    _check_version(version)
    _check_model_name(model_name)
    if not _is_generator(generator):
        generators_of(generator)  # raises the right message
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(
            f"`max_pixels` must be a positive integer. Received: max_pixels={max_pixels!r}"
        )
    _check_choice("compute_dtype", compute_dtype, SAVED_MODEL_DTYPES)
    generator = _with_compute_dtype(generator, compute_dtype)
    in_channels, _ = _channels(generator)
    if in_channels not in (1, 3):
        raise ValueError(
            "serving_default decodes images to 1 (grayscale) or 3 (RGB) channels. Received: "
            f"a generator taking {in_channels} channels."
        )
    root = pathlib.Path(out_dir) / model_name
    target = root / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"Version {version} of {model_name} exists at {target}. Pass another version "
            "(TF Serving serves the highest) or overwrite=True."
        )
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
        _write_archive(tmp, _ServingFunctions(generator, max_pixels).signatures())
        _replace_dir(tmp, target, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# =============================================================================
# TFLite / LiteRT
# =============================================================================


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
def _tflite_saved_model(generator, input_size, int8_pixels=False):
    """A temporary SavedModel with the two signatures .tflite files are made from.

    `translate` (float32 [-1, 1]) and `translate_uint8` (pixels): the bare
    generator, without the padding of the serving signatures (a runner pads).

    With `int8_pixels`, `translate_uint8` is written for full-int8 conversion.
    There, rounding and clipping in the graph would run on int8 values and
    cost ~12 dB of PSNR (measured); instead the output is pinned to [0, 255]
    by a FakeQuant op and the converter's uint8 output then has scale 1 and
    zero point 0: its values are the pixels.
    """
    channels, _ = _channels(generator)
    if input_size is None:
        shape = [None, None, None, channels]
    else:
        shape = [1, *input_size, channels]

    def translate(images):
        return {"output_images": generator(images, training=False)}

    def translate_uint8(pixels):
        outputs = generator(imaging.to_float(pixels), training=False)
        if int8_pixels:
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
        _write_archive(tmp, endpoints)
        yield tmp


def _check_mode(mode):
    _check_choice("mode", mode, TFLITE_MODES)


def _check_input_size(input_size, multiple, min_size):
    if input_size is None:
        return None
    if (
        not isinstance(input_size, (tuple, list))
        or len(input_size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in input_size)
    ):
        raise ValueError(
            f"`input_size` must be None or (height, width). Received: input_size={input_size!r}"
        )
    if any(v % multiple or v < min_size for v in input_size):
        raise ValueError(
            f"`input_size` must be multiples of {multiple}, at least {min_size}. "
            f"Received: input_size={tuple(input_size)}"
        )
    return tuple(input_size)


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


def _folder_sample(folder, count, channels):
    """Up to `count` images spread evenly over `folder`'s sorted files, as uint8 arrays."""
    from tfcyclegan.data import list_images, load_image

    paths = list_images(folder)
    step = max(1, len(paths) // count)
    return [load_image(p, channels=channels) for p in paths[::step][:count]]


def _calibration_set(
    representative_images, channels, multiple, min_size, max_images=16, max_side=256
):
    """Representative images as a list of float32 [1, H, W, C] arrays in [-1, 1].

    At most `max_images`, shrunk to fit `max_side` (calibration measures value
    ranges, which do not need full resolution) and reflect-padded to a valid size.
    """
    if representative_images is None:
        raise ValueError(
            "mode='int8' quantizes activations and needs representative images to measure "
            "their ranges: pass representative_images (a folder or a list of images)."
        )
    if isinstance(representative_images, (str, os.PathLike)):
        arrays = _folder_sample(representative_images, max_images, channels)
    else:
        arrays = [np.asarray(a) for a in representative_images][:max_images]
        if arrays and arrays[0].ndim == 4:
            arrays = [image for batch in arrays for image in batch][:max_images]
    if not arrays:
        raise ValueError("`representative_images` holds no images.")
    batch = []
    for array in arrays:
        if array.ndim != 3 or array.shape[-1] != channels:
            raise ValueError(
                f"Representative images must be (height, width, {channels}) arrays. "
                f"Received: shape={array.shape}"
            )
        if array.dtype == np.uint8:
            array = imaging.to_float_array(array)
        array = _shrink(array.astype(np.float32), max_side)
        batch.append(_pad_numpy(array[None], multiple, min_size))
    return batch


def _shrink(image, max_side):
    """Downscales an HWC float image in [-1, 1] so its longer side is at most `max_side`."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return tf.image.resize(image, size, method="area", antialias=True).numpy()


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
            # output becomes uint8 here (see `_tflite_saved_model`).
            converter.inference_output_type = tf.uint8
    try:
        with _quiet_tf():
            return converter.convert()
    except Exception as error:
        mapped = _converter_error(error)
        if mapped is not None:
            raise mapped from None
        raise


@contextlib.contextmanager
def _quiet_tf():
    """Silences the converter's absl warnings for the duration."""
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl_logger.setLevel(level)


def _metadata(generator, mode, uint8_io, input_size, direction=None):
    multiple, min_size = size_requirement(generator)
    in_channels, out_channels = _channels(generator)
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
        "mode": mode,
        "direction": direction,
        "generator": generator.name,
        "tfcyclegan_version": _version(),
    }


def _version():
    import tfcyclegan

    return tfcyclegan.__version__


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


def read_tflite_metadata(tflite_bytes, name=METADATA_NAME):
    """The JSON metadata entry `name` of a .tflite flatbuffer, or None."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(tflite_bytes), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == name:
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    return None


def convert_tflite(
    generator,
    mode="fp32",
    representative_images=None,
    uint8_io=False,
    input_size=None,
    direction=None,
):
    """Converts a generator to a TFLite / LiteRT flatbuffer of builtin ops only.

    Args:
        generator: a tfcyclegan generator.
        mode: "fp32"; "fp16" (float16 weights, half the size, float compute on
            CPU, float16 on GPUs); "dynamic_int8" (int8 weights, float
            activations); "int8" (int8 weights and activations, calibrated on
            `representative_images`; what NPUs / DSPs need).
        representative_images: for "int8": a folder of images (a sample of up
            to 16 is used) or a list of HWC arrays, uint8 or float in [-1, 1].
        uint8_io: take uint8 pixels in [0, 255] and return uint8 pixels (the
            conversion to and from [-1, 1] baked in), so a phone app passes
            camera pixels directly. Signature `translate_uint8`; otherwise
            `translate` with float32 in [-1, 1].
        input_size: None (height and width dynamic: resize the input tensor to
            any valid size), or (height, width) for a fixed-size, batch-1 model,
            which GPU delegates prefer (no shape arithmetic in the graph).
        direction: recorded in the metadata ("a2b" / "b2a").

    Returns:
        The .tflite flatbuffer (bytes), with metadata "tfcyclegan" (JSON: size
        multiple, tensor names, dtype, range, ...).

    Raises:
        NonBuiltinOpsError: the generator needs non-builtin (Flex/custom) ops.
    """
    _check_mode(mode)
    if not _is_generator(generator):
        generators_of(generator)
    generator = _as_float32(generator)
    multiple, min_size = size_requirement(generator)
    input_size = _check_input_size(input_size, multiple, min_size)
    calibration = None
    if mode == "int8":
        calibration = _calibration_set(
            representative_images, _channels(generator)[0], multiple, min_size
        )
    with _tflite_saved_model(generator, input_size, mode == "int8" and uint8_io) as saved_model_dir:
        flatbuffer, _, _ = _convert_variant(
            saved_model_dir, generator, mode, calibration, uint8_io, input_size, direction
        )
        return flatbuffer


def _convert_variant(
    saved_model_dir, generator, mode, calibration, uint8_io, input_size, direction
):
    """(flatbuffer with metadata, its operator names, the metadata)."""
    signature = "translate_uint8" if uint8_io else "translate"
    flatbuffer = _convert(saved_model_dir, signature, mode, calibration, uint8_io)
    ops = check_builtin_ops(flatbuffer)
    metadata = _metadata(generator, mode, uint8_io, input_size, direction)
    return add_tflite_metadata(flatbuffer, metadata), ops, metadata


# --- GPU delegate -------------------------------------------------------------


def gpu_compatibility(tflite_bytes):
    """What may keep a .tflite model (partly) off the GPU delegate.

    Returns a dict:
        analyzer: the "GPU COMPATIBILITY WARNING" lines of
            `tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)`.
        integer_ops: ops computing on integer tensors (the shape arithmetic of
            dynamic-size models: SHAPE, PACK, STRIDED_SLICE on int32, ...). The
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


# =============================================================================
# Running exported models (parity checks, `tfcyclegan translate --model`)
# =============================================================================


def _pad_numpy(images, multiple, min_size):
    padded, _ = imaging.pad_to_multiple(np.asarray(images), multiple, min_size)
    return padded.numpy()


def _interpreter(model_content=None, model_path=None, num_threads=None):
    """A LiteRT interpreter (ai-edge-litert, or TensorFlow's deprecated one)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    return Interpreter(model_content=model_content, model_path=model_path, num_threads=num_threads)


class Translator:
    """Translates float32 NHWC images in [-1, 1] of any size with a loaded model.

    Call it with an (N, H, W, C) or (H, W, C) array; it returns the same shape.
    `kind` says what runs: "keras", "saved_model" or "tflite".
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


class _TFLiteRunner:
    """Runs a .tflite generator on float images of any size: pads, resizes, crops."""

    def __init__(self, tflite_bytes, num_threads=None, multiple=None):
        self.metadata = read_tflite_metadata(tflite_bytes) or {}
        self.multiple = multiple or self.metadata.get("size_multiple")
        if not self.multiple:
            raise ValueError(
                "This .tflite file has no tfcyclegan metadata, so the size multiple it "
                "needs is unknown; pass multiple= (4 for ResNet generators, 2**num_downs "
                "for U-Nets)."
            )
        self.min_size = self.metadata.get("min_size", self.multiple)
        self.interpreter = _interpreter(model_content=tflite_bytes, num_threads=num_threads)
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
            self.interpreter.allocate_tensors()
            self._shape = tuple(batch.shape)
        self.interpreter.set_tensor(self.input_index, batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)

    def __call__(self, images):
        height, width = images.shape[1:3]
        padded = _pad_numpy(images, self.multiple, self.min_size)
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


def _is_saved_model_dir(path):
    return (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()


def _version_dirs(path):
    return sorted(
        (int(p.name), p)
        for p in path.iterdir()
        if p.is_dir() and p.name.isdigit() and _is_saved_model_dir(p)
    )


def load_translator(path, direction="a2b", num_threads=None, batch_size=8):
    """A callable translating float32 images in [-1, 1] of any size with a model on disk.

    Args:
        path: any of
            - a run folder or `.keras` file (CycleGAN: `direction` picks G or F;
              a single generator is used as is);
            - a SavedModel: TF Serving's model folder (the highest numbered
              version is used, as TF Serving does) or one version folder;
            - a `.tflite` file from `convert_tflite` (its metadata gives the size
              multiple);
            - an export folder (`export_report.json`): its SavedModel for
              `direction`.
            SavedModels and .tflite files hold one direction; `direction` is
            ignored for them.
        direction: "a2b" or "b2a".
        num_threads: TFLite interpreter threads (default: the runtime's).
        batch_size: images per call.

    Returns:
        A `Translator`: `translator(images)` maps (N, H, W, C) or (H, W, C)
        float32 arrays in [-1, 1] to the same shape; images are reflect-padded
        to a size the generator takes and cropped back.
    """
    direction = _check_direction(direction, allow_both=False)
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"No model at {path}: expected a run folder, .keras, SavedModel folder or .tflite file."
        )
    if path.is_file() and path.suffix == ".tflite":
        runner = _TFLiteRunner(path.read_bytes(), num_threads=num_threads)
        return Translator("tflite", runner, runner.channels, path, batch_size)
    if path.is_dir() and (path / REPORT_NAME).is_file() and not (path / "model.keras").exists():
        report = json.loads((path / REPORT_NAME).read_text())
        saved = report.get("saved_models", {}).get(direction)
        if saved is None:
            raise ValueError(f"The export at {path} has no SavedModel for direction {direction!r}.")
        return load_translator(path / saved, direction, num_threads, batch_size)
    if path.is_dir() and (_is_saved_model_dir(path) or _version_dirs(path)):
        version_dir = path if _is_saved_model_dir(path) else _version_dirs(path)[-1][1]
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
    generator = load_generators(path, direction)[direction]
    return Translator(
        "keras",
        lambda images: translate_with(generator, images),
        _channels(generator)[0],
        path,
        batch_size,
    )


# =============================================================================
# Parity
# =============================================================================


def psnr(a, b, peak_to_peak=2.0):
    """PSNR in dB of `a` against `b` for values spanning `peak_to_peak` (inf when equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak_to_peak**2 / mse)


def _compare(output, reference, bound=None):
    output = np.asarray(output, np.float32)
    reference = np.asarray(reference, np.float32)
    value = psnr(output, reference)
    entry = {
        "max_abs": float(np.max(np.abs(output - reference))),
        # JSON has no infinity: identical outputs are recorded as null.
        "psnr_db": None if math.isinf(value) else round(value, 2),
    }
    if bound is not None:
        entry["bound"] = bound
        entry["ok"] = entry["max_abs"] <= bound
    return entry


def parity_images(
    channels, size=(64, 64), count=4, direction="a2b", seed=0, folder=None, multiple=1, min_size=1
):
    """float32 (count, H, W, C) images in [-1, 1] for parity checks.

    From `folder` (the representative images: a sample, each resized to `size`)
    or, without one, deterministic synthetic landscapes (summer for a2b, winter
    for b2a; `tfcyclegan.synthetic`), grayscale for 1-channel generators.
    """
    from PIL import Image

    height, width = size
    if folder is not None:
        images = []
        for pixels in _folder_sample(folder, count, channels):
            image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
            images.append(np.asarray(image.resize((width, height), Image.Resampling.BICUBIC)))
        pixels = np.stack(images)
    else:
        from tfcyclegan.synthetic import draw_scene

        rng = np.random.default_rng(seed)
        season = "summer" if direction == "a2b" else "winter"
        images = []
        for _ in range(count):
            image = draw_scene(rng, season, width, height)
            images.append(np.asarray(image.convert("L") if channels == 1 else image))
        pixels = np.stack(images)
        if channels not in (1, 3):
            pixels = np.repeat(pixels[..., :1], channels, axis=-1)
    pixels = pixels.reshape(pixels.shape[:3] + (channels,))
    return imaging.to_float_array(pixels)


def saved_model_parity(version_dir, generator, images, bounded=True):
    """Runs the reloaded SavedModel's three signatures against Keras on `images`.

    `bounded=False` records the differences without bounds (a bfloat16 export
    against the float32 model).
    """
    loaded = tf.saved_model.load(os.fspath(version_dir))
    reference = translate_with(generator, images)
    translate = loaded.signatures["translate"](images=tf.constant(images))["output_images"].numpy()
    pixels = imaging.to_uint8_array(images)
    reference_pixels = imaging.to_uint8_array(translate_with(generator, imaging.to_float_array(pixels)))
    uint8 = loaded.signatures["translate_uint8"](pixels=tf.constant(pixels))[
        "output_pixels"
    ].numpy()
    encoded = [tf.io.encode_png(p).numpy() for p in pixels]
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(encoded))[
        "output_bytes"
    ].numpy()
    decoded = np.stack([tf.io.decode_png(o).numpy() for o in outputs])
    # uint8 outputs may differ by one level where float noise crosses a rounding edge.
    level = 1.0 / 127.5 + 1e-6 if bounded else None
    return {
        "translate": _compare(translate, reference, FLOAT_TOLERANCE if bounded else None),
        "translate_uint8": _compare(imaging.to_float_array(uint8), imaging.to_float_array(reference_pixels), level),
        "serving_default": _compare(imaging.to_float_array(decoded), imaging.to_float_array(reference_pixels), level),
    }


def tflite_parity(tflite_bytes, generator, images, bound=None):
    """Runs a .tflite file against Keras on `images` (uint8 files on the images' pixels)."""
    runner = _TFLiteRunner(tflite_bytes, num_threads=2)
    if runner.uint8:
        # Compare on what the uint8 model sees: the images as pixels.
        images = imaging.to_float_array(imaging.to_uint8_array(images))
    reference = translate_with(generator, images)
    outputs = runner(images)
    if runner.uint8:
        reference = imaging.to_float_array(imaging.to_uint8_array(reference))
        if bound is not None:
            bound = bound + 1.0 / 127.5
    return _compare(outputs, reference, bound)


# =============================================================================
# Export (what `tfcyclegan export` runs)
# =============================================================================


@dataclasses.dataclass
class ExportReport:
    """What `export` wrote and measured. `to_dict()` is `export_report.json`.

    Attributes:
        out_dir: the export folder.
        saved_models: direction -> SavedModel version folder (relative to out_dir).
        saved_model_dtype: the SavedModels' arithmetic ("float32" / "bfloat16").
        tflite: direction -> variant ("fp32", "fp16_uint8", ...) -> {path, bytes,
            ops, gpu, metadata}.
        parity: direction -> artifact -> {max_abs, psnr_db[, bound, ok]}.
        parity_images: what the parity images were (source, shape).
        seconds: time taken.
    """

    out_dir: str
    saved_models: dict = dataclasses.field(default_factory=dict)
    saved_model_dtype: str = "float32"
    tflite: dict = dataclasses.field(default_factory=dict)
    parity: dict = dataclasses.field(default_factory=dict)
    parity_images: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self):
        """All bounded parity checks passed."""
        return all(
            entry.get("ok", True) for checks in self.parity.values() for entry in checks.values()
        )

    def failures(self):
        return [
            f"{direction}/{name}: max abs {entry['max_abs']:.3g} > {entry['bound']:.3g}"
            for direction, checks in self.parity.items()
            for name, entry in checks.items()
            if not entry.get("ok", True)
        ]

    def to_dict(self):
        return dataclasses.asdict(self)

    def summary(self):
        """The report as a table a person reads."""
        lines = [f"Exported to {self.out_dir} in {self.seconds:.1f}s"]
        for direction, version_dir in self.saved_models.items():
            lines.append(f"  SavedModel {direction}: {version_dir} ({self.saved_model_dtype})")
        for direction, variants in self.tflite.items():
            for name, info in variants.items():
                gpu = info["gpu"]
                cpu_ops = ", ".join(gpu["integer_ops"]) or "-"
                lines.append(
                    f"  TFLite {direction} {name:<18} {info['bytes'] / 1024:9.1f} KiB  "
                    f"integer ops (CPU under GPU delegate): {cpu_ops}"
                )
        images = self.parity_images
        if self.parity:
            lines.append(
                f"Parity vs Keras on {images.get('count')} images {images.get('shape')} "
                f"({images.get('source')}):"
            )
            lines.append(f"  {'artifact':<32}{'max abs':>10}{'PSNR dB':>10}  bound")
            for direction, checks in self.parity.items():
                for name, entry in checks.items():
                    bound = entry.get("bound")
                    verdict = (
                        ""
                        if bound is None
                        else f"<= {bound:.3g} {'ok' if entry['ok'] else 'FAILED'}"
                    )
                    db = "inf" if entry["psnr_db"] is None else f"{entry['psnr_db']:.2f}"
                    lines.append(
                        f"  {direction + '/' + name:<32}{entry['max_abs']:>10.2e}{db:>10}  {verdict}"
                    )
        return "\n".join(lines)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")


def _check_choices(name, values, choices):
    values = (values,) if isinstance(values, str) else tuple(values)
    bad = [v for v in values if v not in choices]
    if bad or not values:
        raise ValueError(
            f"`{name}` must be a subset of {list(choices)}. Received: {name}={values!r}"
        )
    return values


def serving_config(model_names, base_path="/models"):
    """TF Serving's models.config text serving each of `model_names` from `base_path/NAME`."""
    blocks = "".join(
        "  config {\n"
        f'    name: "{name}"\n'
        f'    base_path: "{base_path}/{name}"\n'
        '    model_platform: "tensorflow"\n'
        "  }\n"
        for name in model_names
    )
    return "model_config_list {\n" + blocks + "}\n"


def export(
    path_or_model,
    out_dir,
    formats=FORMATS,
    direction="both",
    tflite_modes=None,
    tflite_io=TFLITE_IO,
    representative_data=None,
    version=1,
    model_name="cyclegan",
    overwrite=False,
    max_pixels=DEFAULT_MAX_PIXELS,
    tflite_input_size=None,
    saved_model_dtype="float32",
    parity=True,
    parity_size=None,
    parity_count=4,
    verbose=True,
):
    """Exports generators for deployment and checks every artifact against Keras.

    Writes, under `out_dir`:

        <model_name>_a2b/<version>/     SavedModel for TF Serving (and _b2a)
        tflite/<model_name>_a2b_<mode>[_uint8].tflite
        models.config                    TF Serving config serving the SavedModels
        export_report.json               sizes, ops, GPU notes, parity

    Args:
        path_or_model: a `.keras` file (CycleGAN or generator), a run folder, or
            a loaded CycleGAN / generator.
        out_dir: the export folder.
        formats: any of "saved_model", "tflite".
        direction: "a2b", "b2a" or "both".
        tflite_modes: subset of `TFLITE_MODES`. Default: fp32, fp16,
            dynamic_int8, and int8 when `representative_data` is given.
        tflite_io: "float32" (float [-1, 1] tensors) and/or "uint8" (pixels).
        representative_data: folder of images: int8 calibration and the parity
            images.
        version: SavedModel version folder.
        model_name: prefix of the artifact names ("cyclegan" -> "cyclegan_a2b").
        overwrite: replace existing versions / files; otherwise they are an error.
        max_pixels: the SavedModel's per-image size limit.
        saved_model_dtype: the SavedModel's arithmetic, "float32" or "bfloat16"
            (see `export_saved_model`; its parity is reported, not bounded).
        tflite_input_size: None for dynamic height/width, or (H, W) for
            fixed-size files (GPU delegates).
        parity: run the parity checks (raises if SavedModel / fp32 exceed
            `FLOAT_TOLERANCE`).
        parity_size: (H, W) of the parity images; default the training size
            when known, else 256 x 256 (rounded up to the size multiple).
        parity_count: number of parity images.
        verbose: print the report.

    Returns:
        An `ExportReport`; the same is written to `out_dir/export_report.json`.

    Raises:
        RuntimeError: a SavedModel or fp32 TFLite output differs from Keras by
            more than `FLOAT_TOLERANCE` (the report is written first).
    """
    start = time.perf_counter()
    formats = _check_choices("formats", formats, FORMATS)
    tflite_io = _check_choices("tflite_io", tflite_io, TFLITE_IO)
    if tflite_modes is None:
        tflite_modes = ("fp32", "fp16", "dynamic_int8") + (("int8",) if representative_data else ())
    tflite_modes = _check_choices("tflite_modes", tflite_modes, TFLITE_MODES)
    _check_choice("saved_model_dtype", saved_model_dtype, SAVED_MODEL_DTYPES)
    if "tflite" in formats and "int8" in tflite_modes and representative_data is None:
        raise ValueError(
            "tflite_modes includes 'int8', which needs representative_data: a folder of "
            "images like those the model will translate (a sample is used for calibration)."
        )
    _check_version(version)
    _check_model_name(model_name)
    if representative_data is not None and not pathlib.Path(representative_data).is_dir():
        raise FileNotFoundError(
            f"representative_data must be a folder of images. Received: {representative_data}"
        )

    model = path_or_model
    if isinstance(path_or_model, (str, os.PathLike)):
        model = _load_keras(path_or_model)
    generators = generators_of(model, direction)
    trained = training_size(model)
    if trained is None and isinstance(path_or_model, (str, os.PathLike)):
        trained = training_size(path_or_model)
    generators = {d: _as_float32(g) for d, g in generators.items()}

    out_dir = pathlib.Path(out_dir)
    names = {d: f"{model_name}_{d}" for d in generators}
    plans = []  # (direction, variant, mode, uint8_io, path)
    if "tflite" in formats:
        for d in generators:
            for mode in tflite_modes:
                for io_name in tflite_io:
                    variant = mode + ("_uint8" if io_name == "uint8" else "")
                    plans.append(
                        (
                            d,
                            variant,
                            mode,
                            io_name == "uint8",
                            out_dir / "tflite" / f"{names[d]}_{variant}.tflite",
                        )
                    )
    # Refuse before any work, not halfway through.
    existing = [p for *_, p in plans if p.exists()]
    if "saved_model" in formats:
        existing += [
            out_dir / names[d] / str(version)
            for d in generators
            if (out_dir / names[d] / str(version)).exists()
        ]
    if existing and not overwrite:
        raise FileExistsError(
            f"These exports exist: {[os.fspath(p) for p in existing]}. Replace them with "
            "overwrite=True (--overwrite), or choose another version (--version) or out_dir."
        )

    report = ExportReport(out_dir=os.fspath(out_dir))
    images = {}
    if parity:
        for d, generator in generators.items():
            multiple, min_size = size_requirement(generator)
            size = parity_size or trained or (256, 256)
            size = tuple(max(-(-s // multiple) * multiple, min_size) for s in size)
            images[d] = parity_images(
                _channels(generator)[0], size, parity_count, d, folder=representative_data
            )
            report.parity[d] = {}
        first = next(iter(images.values()))
        report.parity_images = {
            "source": (
                os.fspath(representative_data)
                if representative_data
                else "synthetic (tfcyclegan.synthetic)"
            ),
            "count": int(first.shape[0]),
            "shape": list(first.shape[1:]),
        }

    out_dir.mkdir(parents=True, exist_ok=True)
    if "saved_model" in formats:
        report.saved_model_dtype = saved_model_dtype
        for d, generator in generators.items():
            version_dir = export_saved_model(
                generator, out_dir, names[d], version, overwrite=overwrite,
                max_pixels=max_pixels, compute_dtype=saved_model_dtype,
            )
            report.saved_models[d] = os.fspath(version_dir.relative_to(out_dir))
            if parity:
                checks = saved_model_parity(
                    version_dir, generator, images[d], bounded=saved_model_dtype == "float32"
                )
                for name, entry in checks.items():
                    report.parity[d][f"saved_model/{name}"] = entry
        (out_dir / "models.config").write_text(serving_config(names.values()))

    for d, generator in generators.items() if plans else ():
        multiple, min_size = size_requirement(generator)
        input_size = _check_input_size(tflite_input_size, multiple, min_size)
        calibration = None
        if "int8" in tflite_modes:
            calibration = _calibration_set(
                representative_data, _channels(generator)[0], multiple, min_size
            )
        with contextlib.ExitStack() as stack:
            saved_models = {}  # int8_pixels -> temporary SavedModel
            for _, variant, mode, uint8_io, path in (plan for plan in plans if plan[0] == d):
                int8_pixels = mode == "int8" and uint8_io
                if int8_pixels not in saved_models:
                    saved_models[int8_pixels] = stack.enter_context(
                        _tflite_saved_model(generator, input_size, int8_pixels)
                    )
                flatbuffer, ops, metadata = _convert_variant(
                    saved_models[int8_pixels], generator, mode, calibration, uint8_io, input_size, d
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.tmp")
                tmp.write_bytes(flatbuffer)
                os.replace(tmp, path)
                report.tflite.setdefault(d, {})[variant] = {
                    "path": os.fspath(path.relative_to(out_dir)),
                    "bytes": len(flatbuffer),
                    "ops": ops,
                    "gpu": gpu_compatibility(flatbuffer),
                    "metadata": metadata,
                }
                if parity:
                    bound = FLOAT_TOLERANCE if mode == "fp32" else None
                    report.parity[d][f"tflite/{variant}"] = tflite_parity(
                        flatbuffer, generator, images[d], bound
                    )

    report.seconds = round(time.perf_counter() - start, 2)
    (out_dir / REPORT_NAME).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if verbose:
        print(report.summary())
    if not report.ok:
        raise RuntimeError(
            "Exported models differ from the Keras model beyond the stated bounds: "
            + "; ".join(report.failures())
            + f". See {out_dir / REPORT_NAME}."
        )
    return report
