"""Deployment: SavedModels for TF Serving, TFLite / LiteRT files for phones, parity-checked.

What a trained generator becomes, and what each artifact takes:

- **SavedModel** (`export_saved_model`), in TF Serving's layout
  `OUT/<model_name>/<version>/`, with three signatures:

  | signature         | input                                 | output                         |
  |-------------------|---------------------------------------|--------------------------------|
  | `serving_default` | `image_bytes`: string [N], encoded    | `output_bytes`: string [N], PNG|
  | `translate`       | `images`: float32 [N, H, W, C], [-1,1]| `output_images`: same, [-1, 1] |
  | `translate_uint8` | `pixels`: uint8 [N, H, W, C]          | `output_pixels`: uint8         |

  Encoded images may be JPEG, PNG, GIF, BMP or WebP, each of its own size
  (JPEGs turned upright by their EXIF orientation, as the training pipeline
  does); H x W of the float and uint8 signatures may be any size. Requests
  are bounded: at most `max_pixels` per image and `max_batch_size` images.

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
  `"tfcyclegan"` (JSON, `read_tflite_metadata`). The stored default input
  shape is the training size, so `allocate_tensors()` works before any resize.

- **ONNX** (`convert_onnx`, `--format onnx`, the `onnx` extra): the bare
  generator through Keras 3's `model.export(format="onnx")` (tf2onnx), opset
  17, input `images` -> `output_images`, float32 NHWC in [-1, 1], batch, height
  and width dynamic (multiples of the size multiple, like the .tflite files);
  the size rule, direction, method, opset and version in its `metadata_props`.
  For onnxruntime and OpenVINO; `load_translator` runs it in onnxruntime.

- **3D LUT** (`export_cube`): a `ColorGenerator` (per-pixel colour looks)
  sampled on a 33^3 grid of colours, as an Adobe / Resolve `.cube` file that
  colour tools and ffmpeg's `lut3d` apply; written by default for colour
  generators, refused for any other (no LUT carries a look that sees
  neighbouring pixels).

- **Web page** (`--format web`, `export.web`): a static folder (index.html, a
  small script, fixed-size uint8 .tflite files, LiteRT.js shipped in this
  package) that translates photos in the browser, in tiles of the file's
  size; `tfcyclegan app` serves it on localhost.

- **Parity** (`export` writes `export_report.json`): every artifact against the
  Keras model on the same images; max abs error and PSNR (peak-to-peak 2 for
  [-1, 1] images, which equals PSNR on 0-255 pixels). Bounds: SavedModel,
  fp32 TFLite and ONNX (at two sizes) within `FLOAT_TOLERANCE` (1e-4) of Keras, checked on every
  export; fp16 and int8 are reported, not bounded, because their error depends
  on the weights and images. Exporting another model into the same folder
  merges `models.config` and the report (one entry per model name); nothing
  an earlier export wrote is replaced unless `overwrite`.

The modules, one job each (the runtime imports none of the exporters):

    loading      .keras files and run folders -> generators; float32/bfloat16 copies
    signatures   in-graph decoding and the three serving signatures
    saved_model  the SavedModel writer (TF Serving layout, atomic versions)
    tflite       TFLite conversion, metadata, builtin-op and GPU-delegate checks
    quantization full int8: calibration images, instance-norm equalization
    onnx         ONNX conversion (Keras 3 -> tf2onnx), metadata_props
    runtime      Translator, the LiteRT and onnxruntime runners, load_translator (`translate` uses this)
    cube         a colour generator as a `.cube` 3D LUT (read, write, apply)
    web          the browser page: its files, model.json, LiteRT.js (webapp/)
    parity       artifacts against Keras
    report       export() and ExportReport
"""

import importlib

# Names are imported from their module on first use (PEP 562), so that
# importing `tfcyclegan.export.runtime` (what `translate` needs) does not load
# the exporters, and `tfcyclegan --help` does not pay for them.
_PUBLIC = {
    "config": ("DIRECTIONS",),
    "cube": ("LUT_SIZE", "apply_lut", "export_cube", "read_cube", "sample_lut"),
    "loading": ("generators_of", "load_generators", "training_size"),
    "quantization": ("LossyInt8Error",),
    "onnx": ("ONNX_OPSET", "convert_onnx", "onnx_metadata"),
    "parity": ("FLOAT_TOLERANCE", "onnx_parity", "parity_images", "psnr", "saved_model_parity", "tflite_parity"),
    "report": ("DEFAULT_FORMATS", "FORMATS", "ExportReport", "export"),
    "runtime": ("METADATA_NAME", "REPORT_NAME", "Translator", "load_translator", "read_tflite_metadata"),
    "saved_model": ("DEFAULT_MAX_BATCH_SIZE", "DEFAULT_MAX_PIXELS", "SAVED_MODEL_DTYPES", "export_saved_model", "serving_config"),
    "web": ("LITERTJS_VERSION", "WEB_MODES", "write_web_app"),
    "tflite": (
        "TFLITE_IO",
        "TFLITE_MODES",
        "NonBuiltinOpsError",
        "add_tflite_metadata",
        "check_builtin_ops",
        "convert_tflite",
        "gpu_compatibility",
        "tflite_ops",
    ),
}
_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    package = "tfcyclegan" if module == "config" else __name__
    value = getattr(importlib.import_module(f"{package}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
