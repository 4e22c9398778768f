"""`export()`: what `tfcyclegan export` runs, and the report it writes.

Several models may be exported into one folder (different `model_name`s):
`export_report.json` keeps one entry per model name under "models" (its top
level repeats the latest export's entry, the report's form before), and
`models.config` serves them all. An export replaces only what it writes.
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import time

from tfcyclegan import methods
from tfcyclegan.checks import check_int
from tfcyclegan.config import check_choice, check_choices
from tfcyclegan.export.cube import LUT_SIZE, carries_lut, check_per_pixel, export_cube
from tfcyclegan.export.loading import as_float32, channels_of, generators_of, load_keras, training_size
from tfcyclegan.export.onnx import ONNX_OPSET, check_onnx_extra, convert_onnx, onnx_metadata
from tfcyclegan.export.parity import (
    FLOAT_TOLERANCE,
    cube_parity,
    onnx_parity,
    parity_images,
    saved_model_parity,
    second_size,
    tflite_parity,
)
from tfcyclegan.export.quantization import LossyInt8Error, calibration_set
from tfcyclegan.export.runtime import REPORT_MODELS, REPORT_NAME, report_entries
from tfcyclegan.export.saved_model import (
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_PIXELS,
    SAVED_MODEL_DTYPES,
    check_model_name,
    check_version,
    export_saved_model,
    write_serving_config,
)
from tfcyclegan.export.tflite import (
    DEFAULT_INPUT_SIDE,
    TFLITE_IO,
    TFLITE_MODES,
    check_input_size,
    convert_variant,
    default_input_size_of,
    gpu_compatibility,
    tflite_saved_model,
    valid_size,
)
from tfcyclegan.export.web import (
    DEFAULT_WEB_MODE,
    WEB_DIR,
    check_web_generator,
    check_web_mode,
    model_file_name,
    write_web_app,
)
from tfcyclegan.fileio import atomic_write
from tfcyclegan.networks import size_requirement

FORMATS = ("saved_model", "tflite", "onnx", "cube", "web")
DEFAULT_FORMATS = ("saved_model", "tflite")
"""What `export` writes unless told, and `cube` (a 3D LUT) too when every generator is an
RGB `ColorGenerator`: the only generator a LUT can carry (`export.cube`). `onnx` only when
asked for: it needs the `onnx` extra (tf2onnx, onnx, onnxruntime)."""


DYNAMIC_INT8_NOTE = (
    "dynamic_int8 files are for size, not speed: they quantize activations on the fly "
    "in every op, and on CPUs the fp32/fp16 XNNPACK path is faster (measured ~4x). "
    "Not exported unless asked for; fp16 is half the size at fp32 quality and speed."
)

DEFAULT_TFLITE_MODES = ("fp32", "fp16")
"""TFLite modes `export` writes unless told (plus int8 when given representative data).

dynamic_int8 is left out: its int8-weight / float-activation convolutions
quantize their inputs at run time in every op, and on LiteRT's CPU path
(XNNPACK, 2 threads, x86) it took ~4x the time of fp32
(benchmarks/README.md); fp16 halves the file at fp32 speed and quality.
Ask for it with `tflite_modes=(..., "dynamic_int8")` when only size matters.
"""


@dataclasses.dataclass
class ExportReport:
    """What `export` wrote and measured. `to_dict()` is `export_report.json`.

    Attributes:
        out_dir: the export folder.
        model_name: the artifacts' name prefix; the key of this export's entry
            in `export_report.json`'s "models".
        saved_models: direction -> SavedModel version folder (relative to out_dir).
        saved_model_dtype: the SavedModels' arithmetic ("float32" / "bfloat16").
        tflite: direction -> variant ("fp32", "fp16_uint8", ...) -> {path, bytes,
            ops, gpu, metadata}.
        cubes: direction -> {path, bytes, lut_size}: the `.cube` 3D LUTs.
        onnx: direction -> {path, bytes, opset, metadata}: the `.onnx` files.
        web: direction -> {path, bytes, size, mode, ops}: the .tflite files of the
            web page (`export.web`, in the folder "web").
        parity: direction -> artifact -> {max_abs, psnr_db[, bound, ok][, ms_per_image]}
            (ONNX at two sizes: "onnx/HxW").
        parity_images: what the parity images were (source, shape).
        notes: what a reader of the numbers should know (e.g. why dynamic_int8
            is slow on CPUs, or that an int8 file was written lossy).
        errors: artifacts not written and why (a full int8 file that would be
            lossy, `LossyInt8Error`); `export` raises after writing the report.
        seconds: time taken.
    """

    out_dir: str
    model_name: str = "cyclegan"
    saved_models: dict = dataclasses.field(default_factory=dict)
    saved_model_dtype: str = "float32"
    tflite: dict = dataclasses.field(default_factory=dict)
    cubes: dict = dataclasses.field(default_factory=dict)
    onnx: dict = dataclasses.field(default_factory=dict)
    web: dict = dataclasses.field(default_factory=dict)
    parity: dict = dataclasses.field(default_factory=dict)
    parity_images: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self):
        """Every planned artifact written and all bounded parity checks passed."""
        return not self.errors and all(
            entry.get("ok", True) for checks in self.parity.values() for entry in checks.values()
        )

    def failures(self):
        return self.errors + [
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
        for direction, info in self.onnx.items():
            lines.append(
                f"  ONNX {direction}: {info['path']} (opset {info['opset']}, "
                f"{info['bytes'] / 1024:.1f} KiB)"
            )
        for direction, info in self.cubes.items():
            lines.append(f"  3D LUT {direction}: {info['path']} ({info['lut_size']}^3 points)")
        for direction, info in self.web.items():
            height, width = info["size"]
            lines.append(
                f"  Web page {direction}: {info['path']} ({info['mode']}, {height}x{width} tiles, "
                f"{info['bytes'] / 1024:.1f} KiB); serve it with `tfcyclegan app --model "
                f"{os.path.join(self.out_dir, WEB_DIR)}`"
            )
        images = self.parity_images
        if self.parity:
            lines.append(
                f"Parity vs Keras on {images.get('count')} images {images.get('shape')} "
                f"({images.get('source')}):"
            )
            lines.append(f"  {'artifact':<32}{'max abs':>10}{'PSNR dB':>10}{'ms/image':>10}  bound")
            for direction, checks in self.parity.items():
                for name, entry in checks.items():
                    bound = entry.get("bound")
                    verdict = (
                        ""
                        if bound is None
                        else f"<= {bound:.3g} {'ok' if entry['ok'] else 'FAILED'}"
                    )
                    db = "inf" if entry["psnr_db"] is None else f"{entry['psnr_db']:.2f}"
                    ms = entry.get("ms_per_image")
                    ms = "" if ms is None else f"{ms:.1f}"
                    lines.append(
                        f"  {direction + '/' + name:<32}{entry['max_abs']:>10.2e}{db:>10}{ms:>10}  {verdict}"
                    )
        lines += [f"Note: {note}" for note in self.notes]
        lines += [f"Not written: {error}" for error in self.errors]
        return "\n".join(lines)


def export(
    path_or_model,
    out_dir,
    formats=None,
    direction="both",
    tflite_modes=None,
    tflite_io=TFLITE_IO,
    representative_data=None,
    version=1,
    model_name=None,
    overwrite=False,
    max_pixels=DEFAULT_MAX_PIXELS,
    tflite_input_size=None,
    saved_model_dtype="float32",
    parity=True,
    parity_size=None,
    parity_count=4,
    verbose=True,
    max_batch_size=DEFAULT_MAX_BATCH_SIZE,
    allow_lossy_int8=False,
    web_mode=DEFAULT_WEB_MODE,
):
    """Exports generators for deployment and checks every artifact against Keras.

    Writes, under `out_dir`:

        <model_name>_a2b/<version>/     SavedModel for TF Serving (and _b2a)
        tflite/<model_name>_a2b_<mode>[_uint8].tflite
        onnx/<model_name>_a2b.onnx       ONNX, opset `ONNX_OPSET` (17), when asked for
        cube/<model_name>_a2b.cube       3D LUT (colour generators only)
        web/                             a page translating photos in the browser
                                         (`export.web`; "web" in `formats` only)
        models.config                    TF Serving config serving the SavedModels
        export_report.json               sizes, ops, GPU notes, parity

    Exporting into a folder that holds other models (other `model_name`s)
    keeps them: models.config gains the new SavedModels and the report an
    entry under "models" (see the module docstring). Every file is written
    atomically.

    Args:
        path_or_model: a `.keras` file (CycleGAN or generator), a run folder, or
            a loaded CycleGAN / generator.
        out_dir: the export folder.
        formats: any of "saved_model", "tflite", "onnx" (`export.onnx`: for
            onnxruntime and OpenVINO; needs the `onnx` extra), "cube" (a `.cube`
            3D LUT, `export.cube`: only a `ColorGenerator` has one), "web" (a
            static page running fixed-size .tflite files with LiteRT.js in the
            browser, `export.web`; RGB generators). Default `DEFAULT_FORMATS`,
            plus "cube" when the generators are colour ones.
        direction: "a2b", "b2a" or "both".
        tflite_modes: subset of `TFLITE_MODES`. Default: fp32, fp16, and
            int8 when `representative_data` is given (`DEFAULT_TFLITE_MODES`:
            dynamic_int8, ~4x slower than fp32 on CPUs, only when asked for).
        tflite_io: "float32" (float [-1, 1] tensors) and/or "uint8" (pixels).
        representative_data: folder of images: int8 calibration and the parity
            images.
        version: SavedModel version folder.
        model_name: prefix of the artifact names ("cyclegan" -> "cyclegan_a2b");
            default its method's `export_name` (`tfcyclegan.methods`: "pix2pix",
            "cut" for CUT and FastCUT, "student" for a distilled student), else
            "cyclegan".
        overwrite: replace existing versions / files of this model; otherwise
            they are an error. Other models in `out_dir` are never touched.
        max_pixels: the SavedModel's per-image size limit.
        saved_model_dtype: the SavedModel's arithmetic, "float32" or "bfloat16"
            (see `export_saved_model`; its parity is reported, not bounded).
        tflite_input_size: None for dynamic height/width, or (H, W) for
            fixed-size files (GPU delegates). Dynamic files store the training
            size (else `parity_size`, else 256 x 256), rounded up to the size
            multiple, as their default input shape. The web page's files are
            always fixed-size: this size, else that default (its tiles).
        parity: run the parity checks (raises if SavedModel / fp32 TFLite /
            ONNX exceed `FLOAT_TOLERANCE`; ONNX is checked at the parity size
            and at `parity.second_size` of it, to show its dynamic height and width).
        parity_size: (H, W) of the parity images; default the training size
            when known, else 256 x 256 (rounded up to the size multiple).
        parity_count: number of parity images.
        verbose: print the report.
        max_batch_size: the SavedModel's most images per request.
        allow_lossy_int8: write full int8 files of generators whose instance
            norms cannot be equalized (`convert_tflite`), with a note in the
            report; by default such a file is not written and `export` fails.
        web_mode: the web page's .tflite files: "fp16" (default), "fp32" or
            "int8" (calibrated on `representative_data`, which it needs).

    Returns:
        The `ExportReport` of this export; `out_dir/export_report.json` holds
        it as the entry of `model_name` (merged with that model's earlier one).

    Raises:
        RuntimeError: a SavedModel, fp32 TFLite or ONNX output differs from
            Keras by more than `FLOAT_TOLERANCE`, or a full int8 file would be
            lossy and `allow_lossy_int8` is False (the report and the other
            artifacts are written first).
        ImportError: "onnx" asked for without the `onnx` extra (before any work).
    """
    start = time.perf_counter()
    formats, tflite_modes, tflite_io = _check_request(
        formats, tflite_modes, tflite_io, representative_data, saved_model_dtype, version,
        model_name or "cyclegan", web_mode, parity,
    )
    check_int("max_pixels", max_pixels, 1)
    check_int("max_batch_size", max_batch_size, 1)
    model = load_keras(path_or_model) if _is_path(path_or_model) else path_or_model
    record = methods.method_of(model)
    if model_name is None:
        # A model's method names its files; a bare generator is a CycleGAN's.
        model_name = "cyclegan" if record is None else record.export_name
    generators = {d: as_float32(g) for d, g in generators_of(model, direction).items()}
    formats = _formats_for(formats, generators)
    if "web" in formats:
        for generator in generators.values():
            check_web_generator(generator)
    out_dir = pathlib.Path(out_dir)
    names = {d: f"{model_name}_{d}" for d in generators}
    plans = _tflite_plans(out_dir, names, tflite_modes, tflite_io) if "tflite" in formats else []
    cubes = {d: out_dir / "cube" / f"{name}.cube" for d, name in names.items()} if "cube" in formats else {}
    onnx_paths = {d: out_dir / "onnx" / f"{name}.onnx" for d, name in names.items()} if "onnx" in formats else {}
    _refuse_existing(out_dir, names, plans, formats, version, overwrite,
                     [*cubes.values(), *onnx_paths.values()])
    if "web" in formats and (out_dir / WEB_DIR).exists() and not overwrite:
        raise FileExistsError(
            f"A web page exists: {out_dir / WEB_DIR}. Replace it with overwrite=True "
            "(--overwrite), or choose another out_dir."
        )
    earlier = _earlier_entries(out_dir)
    trained = training_size(model)
    if trained is None and _is_path(path_or_model):
        trained = training_size(path_or_model)

    report = ExportReport(out_dir=os.fspath(out_dir), model_name=model_name)
    images = {}
    if parity:
        images = _parity_images(report, generators, parity_size or trained, parity_count,
                                representative_data)

    out_dir.mkdir(parents=True, exist_ok=True)
    if "saved_model" in formats:
        _export_saved_models(report, generators, names, images, version, overwrite, max_pixels,
                             saved_model_dtype, max_batch_size)
    if plans:
        _export_tflite(report, generators, plans, images, tflite_modes, representative_data,
                       tflite_input_size, trained or parity_size, allow_lossy_int8)
        if "dynamic_int8" in tflite_modes:
            report.notes.append(DYNAMIC_INT8_NOTE)
    if onnx_paths:
        # A bare generator's method is unknown: its metadata leaves "method" out.
        _export_onnx(report, generators, onnx_paths, images, record and record.name,
                     representative_data)
    if cubes:
        _export_cubes(report, generators, cubes, images)
    if "web" in formats:
        _export_web(report, generators, names, images, web_mode, representative_data,
                    tflite_input_size, trained or parity_size, parity_count, allow_lossy_int8)
    report.seconds = round(time.perf_counter() - start, 2)
    _write_report(out_dir, earlier, report)
    if verbose:
        print(report.summary())
    if not report.ok:
        raise RuntimeError(
            "Exported models are missing or differ from the Keras model beyond the stated "
            "bounds: "
            + "; ".join(report.failures())
            + f". See {out_dir / REPORT_NAME}."
        )
    return report


# --- The steps of `export`, in order ----------------------------------------


def _is_path(value):
    return isinstance(value, (str, os.PathLike))


def _check_request(
    formats, tflite_modes, tflite_io, representative_data, saved_model_dtype, version, model_name,
    web_mode=DEFAULT_WEB_MODE, parity=True,
):
    """Validates what `export` was asked for before any work: (formats, modes, io).

    `formats` stays None (the default set) until the generators are known: `_formats_for`.
    """
    formats = None if formats is None else check_choices("formats", formats, FORMATS)
    tflite_io = check_choices("tflite_io", tflite_io, TFLITE_IO)
    if tflite_modes is None:
        tflite_modes = DEFAULT_TFLITE_MODES + (("int8",) if representative_data else ())
    tflite_modes = check_choices("tflite_modes", tflite_modes, TFLITE_MODES)
    check_choice("saved_model_dtype", saved_model_dtype, SAVED_MODEL_DTYPES)
    if "tflite" in (formats or DEFAULT_FORMATS) and "int8" in tflite_modes and representative_data is None:
        raise ValueError(
            "tflite_modes includes 'int8', which needs representative_data: a folder of "
            "images like those the model will translate (a sample is used for calibration)."
        )
    check_web_mode(web_mode)
    if formats is not None and "web" in formats and web_mode == "int8" and representative_data is None:
        raise ValueError(
            "web_mode='int8' needs representative_data: a folder of images like those the "
            "model will translate (a sample is used for calibration)."
        )
    check_version(version)
    check_model_name(model_name)
    if "onnx" in (formats or ()):
        check_onnx_extra(parity)
    if representative_data is not None and not pathlib.Path(representative_data).is_dir():
        raise FileNotFoundError(
            f"representative_data must be a folder of images. Received: {representative_data}"
        )
    return formats, tflite_modes, tflite_io


def _formats_for(formats, generators):
    """The formats to write for `generators`: the default set, or the asked ones if they can be."""
    if formats is None:
        lut = all(carries_lut(g) for g in generators.values())
        return DEFAULT_FORMATS + (("cube",) if lut else ())
    if "cube" in formats:
        for generator in generators.values():
            check_per_pixel(generator)
    return formats


@dataclasses.dataclass(frozen=True)
class _TFLitePlan:
    """One .tflite file to write: a direction, a mode, float or uint8 tensors."""

    direction: str
    mode: str
    uint8_io: bool
    path: pathlib.Path

    @property
    def variant(self):
        return self.mode + ("_uint8" if self.uint8_io else "")


def _tflite_plans(out_dir, names, tflite_modes, tflite_io):
    return [
        _TFLitePlan(
            d, mode, uint8_io,
            out_dir / "tflite" / f"{names[d]}_{mode}{'_uint8' if uint8_io else ''}.tflite",
        )
        for d in names
        for mode in tflite_modes
        for uint8_io in (io_name == "uint8" for io_name in tflite_io)
    ]


def _refuse_existing(out_dir, names, plans, formats, version, overwrite, files):
    """Refuses to replace earlier exports before any work, not halfway through.

    `files`: the planned one-file artifacts besides the .tflite files (.cube, .onnx).
    """
    existing = [plan.path for plan in plans if plan.path.exists()]
    existing += [path for path in files if path.exists()]
    if "saved_model" in formats:
        existing += [
            out_dir / name / str(version)
            for name in names.values()
            if (out_dir / name / str(version)).exists()
        ]
    if existing and not overwrite:
        raise FileExistsError(
            f"These exports exist: {[os.fspath(p) for p in existing]}. Replace them with "
            "overwrite=True (--overwrite), or choose another version (--version) or out_dir."
        )


def _earlier_entries(out_dir):
    """model name -> report entry of the exports already in `out_dir` (read before any work)."""
    path = out_dir / REPORT_NAME
    if not path.is_file():
        return {}
    try:
        return report_entries(json.loads(path.read_text()))
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(
            f"Cannot read the report of the earlier exports, {path} ({error}); exporting "
            "would lose it. Repair or move it, then export again."
        ) from None


def _merged_entry(earlier, entry):
    """This export's report `entry` over the `earlier` one of the same model name.

    Artifacts this export did not write (another direction, format, mode or
    version) are still on disk: their entries stay.
    """
    if earlier is None:
        return entry
    merged = dict(entry)
    merged["saved_models"] = {**earlier.get("saved_models", {}), **entry["saved_models"]}
    merged["onnx"] = {**earlier.get("onnx", {}), **entry["onnx"]}
    for key in ("tflite", "cubes", "web", "parity"):
        old, new = earlier.get(key, {}), entry[key]
        merged[key] = {d: {**old.get(d, {}), **new.get(d, {})} for d in {**old, **new}}
    if not entry["saved_models"]:
        merged["saved_model_dtype"] = earlier.get("saved_model_dtype", entry["saved_model_dtype"])
    if not entry["parity_images"]:
        merged["parity_images"] = earlier.get("parity_images", {})
    merged["notes"] = list(dict.fromkeys([*earlier.get("notes", []), *entry["notes"]]))
    return merged


def _write_report(out_dir, earlier, report):
    """export_report.json: every model's entry under "models", the latest at the top level."""
    entry = _merged_entry(earlier.get(report.model_name), report.to_dict())
    entries = {**earlier, report.model_name: entry}
    content = {**entry, REPORT_MODELS: entries}
    atomic_write(out_dir / REPORT_NAME, json.dumps(content, indent=2) + "\n")


def _parity_images(report, generators, size, count, representative_data):
    """The images each direction's artifacts are compared on; recorded in `report`."""
    images = {}
    for d, generator in generators.items():
        multiple, min_size = size_requirement(generator)
        size = valid_size(size or (256, 256), multiple, min_size)
        images[d] = parity_images(
            channels_of(generator)[0], size, count, d, folder=representative_data
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
    return images


def _export_saved_models(
    report, generators, names, images, version, overwrite, max_pixels, saved_model_dtype,
    max_batch_size,
):
    """One SavedModel per direction, their parity, and TF Serving's models.config."""
    out_dir = pathlib.Path(report.out_dir)
    report.saved_model_dtype = saved_model_dtype
    for d, generator in generators.items():
        version_dir = export_saved_model(
            generator, out_dir, names[d], version, overwrite=overwrite,
            max_pixels=max_pixels, compute_dtype=saved_model_dtype,
            max_batch_size=max_batch_size,
        )
        report.saved_models[d] = os.fspath(version_dir.relative_to(out_dir))
        if d in images:
            checks = saved_model_parity(
                version_dir, generator, images[d], bounded=saved_model_dtype == "float32"
            )
            for name, entry in checks.items():
                report.parity[d][f"saved_model/{name}"] = entry
    write_serving_config(out_dir, names.values())


def _export_tflite(
    report, generators, plans, images, tflite_modes, representative_data, tflite_input_size,
    default_size, allow_lossy_int8=False,
):
    """Every planned .tflite file, written atomically, with its ops, GPU notes and parity.

    Dynamic-size files store `default_size` (the training size when known),
    rounded up to a valid size, as their default input shape. A full int8 file
    that would be lossy is not written (an entry in `report.errors`), unless
    `allow_lossy_int8` (then a note says so).
    """
    out_dir = pathlib.Path(report.out_dir)
    for d, generator in generators.items():
        multiple, min_size = size_requirement(generator)
        input_size = check_input_size(tflite_input_size, multiple, min_size)
        default = input_size or default_input_size_of(generator, default_size)
        calibration = None
        if "int8" in tflite_modes:
            calibration = calibration_set(
                representative_data, channels_of(generator)[0], multiple, min_size
            )
        with contextlib.ExitStack() as stack:
            saved_models = {}  # int8_pixels -> temporary SavedModel, made once
            for plan in (plan for plan in plans if plan.direction == d):
                int8_pixels = plan.mode == "int8" and plan.uint8_io
                if int8_pixels not in saved_models:
                    saved_models[int8_pixels] = stack.enter_context(
                        tflite_saved_model(generator, input_size, int8_pixels)
                    )
                try:
                    flatbuffer, ops, metadata = convert_variant(
                        saved_models[int8_pixels], generator, plan.mode, calibration,
                        plan.uint8_io, input_size, d, default, allow_lossy_int8,
                    )
                except LossyInt8Error as error:
                    report.errors.append(f"{d}/tflite/{plan.variant}: {error}")
                    continue
                if "equalization_refused" in metadata:
                    report.notes.append(
                        f"{d}/tflite/{plan.variant} is lossy full int8 (allow_lossy_int8): "
                        f"{metadata['equalization_refused']}; see its parity."
                    )
                plan.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(plan.path, flatbuffer)
                report.tflite.setdefault(d, {})[plan.variant] = {
                    "path": os.fspath(plan.path.relative_to(out_dir)),
                    "bytes": len(flatbuffer),
                    "ops": ops,
                    "gpu": gpu_compatibility(flatbuffer),
                    "metadata": metadata,
                }
                if d in images:
                    bound = FLOAT_TOLERANCE if plan.mode == "fp32" else None
                    report.parity[d][f"tflite/{plan.variant}"] = tflite_parity(
                        flatbuffer, generator, images[d], bound
                    )


def _export_cubes(report, generators, paths, images):
    """Each direction's `.cube` 3D LUT, written atomically, and its parity (the LUT
    interpolated trilinearly against the generator: reported, not bounded)."""
    out_dir = pathlib.Path(report.out_dir)
    for d, generator in generators.items():
        paths[d].parent.mkdir(parents=True, exist_ok=True)
        table = export_cube(generator, paths[d], title=paths[d].stem, size=LUT_SIZE)
        report.cubes[d] = {
            "path": os.fspath(paths[d].relative_to(out_dir)),
            "bytes": paths[d].stat().st_size,
            "lut_size": LUT_SIZE,
        }
        if d in images:
            report.parity[d]["cube"] = cube_parity(table, generator, images[d])


def _export_web(
    report, generators, names, images, web_mode, representative_data, tflite_input_size,
    default_size, parity_count, allow_lossy_int8=False,
):
    """The web page (`export.web`): one fixed-size uint8 .tflite file per direction,
    its parity against Keras at that size, and the page with LiteRT.js beside them.

    The files are fixed-size whether or not `tflite_input_size` is given (LiteRT.js
    runs no dynamic shapes); their size is the page's tile.
    """
    out_dir = pathlib.Path(report.out_dir)
    web_dir = out_dir / WEB_DIR
    web_dir.mkdir(parents=True, exist_ok=True)
    models = []
    for d, generator in generators.items():
        multiple, min_size = size_requirement(generator)
        # Instance norm sees each tile alone, so a tile much smaller than the photo
        # shows its seams (a model trained at 64 px, tiled at 64 on a 256 px photo):
        # the page tiles at least at DEFAULT_INPUT_SIDE unless asked otherwise.
        tile = None if default_size is None else tuple(max(side, DEFAULT_INPUT_SIDE) for side in default_size)
        size = check_input_size(tflite_input_size, multiple, min_size) or default_input_size_of(generator, tile)
        calibration = None
        if web_mode == "int8":
            calibration = calibration_set(representative_data, 3, multiple, min_size)
        with tflite_saved_model(generator, size, int8_pixels=web_mode == "int8") as saved_model_dir:
            flatbuffer, ops, _ = convert_variant(
                saved_model_dir, generator, web_mode, calibration, True, size, d, size,
                allow_lossy_int8,
            )
        path = web_dir / model_file_name(names[d], web_mode, size)
        atomic_write(path, flatbuffer)
        models.append({"direction": d, "file": path.name, "size": size, "mode": web_mode})
        report.web[d] = {
            "path": os.fspath(path.relative_to(out_dir)),
            "bytes": len(flatbuffer),
            "size": list(size),
            "mode": web_mode,
            "ops": ops,
        }
        if d in images:
            checked = images[d]
            if tuple(checked.shape[1:3]) != tuple(size):
                checked = parity_images(3, size, parity_count, d, folder=representative_data)
            bound = FLOAT_TOLERANCE if web_mode == "fp32" else None
            report.parity[d][f"web/{web_mode}_uint8"] = tflite_parity(
                flatbuffer, generator, checked, bound
            )
    write_web_app(web_dir, models, title=f"tfcyclegan: {report.model_name}")


def _export_onnx(report, generators, paths, images, method, representative_data):
    """Each direction's `.onnx` file, written atomically, and its parity in onnxruntime
    at the parity size and at a second size (`parity.second_size`): one file, two sizes."""
    out_dir = pathlib.Path(report.out_dir)
    for d, generator in generators.items():
        model = convert_onnx(generator, direction=d, method=method)
        paths[d].parent.mkdir(parents=True, exist_ok=True)
        atomic_write(paths[d], model)
        report.onnx[d] = {
            "path": os.fspath(paths[d].relative_to(out_dir)),
            "bytes": len(model),
            "opset": ONNX_OPSET,
            "metadata": onnx_metadata(generator, d, method),
        }
        if d in images:
            multiple, min_size = size_requirement(generator)
            count, height, width, channels = images[d].shape
            other = parity_images(channels, second_size((height, width), multiple, min_size), count, d,
                                  folder=representative_data)
            for size, entry in onnx_parity(model, generator, [images[d], other]).items():
                report.parity[d][f"onnx/{size}"] = entry
