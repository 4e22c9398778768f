"""tfcyclegan.export: SavedModel and TFLite exports, parity, loading, errors.

One tiny CycleGAN (ngf 4, one residual block) is trained for a few steps on
synthetic landscapes and exported once per module in every format; the tests
read that export.
"""

import io
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import TINY_MODEL as TINY
from tfcyclegan import export
from tfcyclegan.export import report as export_report
from tfcyclegan.export import saved_model
from tfcyclegan.layers import InputSizeCheck
from tfcyclegan.models import CycleGAN, translate_with
from tfcyclegan.networks import size_requirement
from tfcyclegan.synthetic import draw_scene

# End to end: one trained model exported in every format, and TFLite conversions. make test-fast skips the file.
pytestmark = pytest.mark.slow

SIZE = 32

# Quantized variants are not bounded by export(); these sanity bounds hold with
# a wide margin on the tiny model (measured: fp16 ~85 dB, dynamic_int8 ~55 dB,
# int8 ~31 dB). fp16 weights carry ~3 significant digits, int8 activations
# 8 bits per tensor, so a real regression (wrong scale, broken calibration,
# the -14-level bias once seen with uint8 outputs) falls far below them.
MIN_PSNR_DB = {"fp16": 50.0, "dynamic_int8": 35.0, "int8": 22.0}

# Ops the TFLite files may hold: every one a builtin with kernels in LiteRT's
# CPU runtime. A new op here deserves a look at phone support first.
EXPECTED_OPS = {
    "ADD",
    "CAST",
    "CONCATENATION",
    "CONV_2D",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "MAXIMUM",  # int8's variance floors; a builtin in XNNPACK, the GPU delegate and NNAPI
    "MEAN",
    "MINIMUM",
    "MUL",
    "PACK",
    "PAD",
    "QUANTIZE",
    "RELU",
    "ROUND",
    "RSQRT",
    "SHAPE",
    "SQUARED_DIFFERENCE",
    "SLICE",
    "STRIDED_SLICE",
    "SUB",
    "TANH",
    "TRANSPOSE_CONV",
}


def scenes(n, season, height=SIZE, width=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    pixels = np.stack([np.asarray(draw_scene(rng, season, width, height)) for _ in range(n)])
    return pixels.astype(np.float32) / 127.5 - 1.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(path of a trained tiny CycleGAN .keras, folder of representative PNGs)."""
    root = tmp_path_factory.mktemp("trained")
    keras.utils.set_random_seed(0)
    model = CycleGAN.from_model_config(TINY, pool_size=2, seed=0)
    model.compile()
    x, y = scenes(8, "summer", seed=1), scenes(8, "winter", seed=2)
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(4), epochs=2, verbose=0)
    path = root / "tiny.keras"
    model.save(path)
    representative = root / "representative"
    representative.mkdir()
    rng = np.random.default_rng(3)
    for i in range(6):
        draw_scene(rng, "summer", 48, 40).save(representative / f"summer_{i}.png")
    return path, representative


@pytest.fixture(scope="module")
def generators(trained):
    return export.load_generators(trained[0])


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """Both directions, every format, every TFLite mode, float and uint8 I/O."""
    path, representative = trained
    out = tmp_path_factory.mktemp("export") / "out"
    report = export.export(
        path, out, representative_data=representative, verbose=False,
        tflite_modes=export.TFLITE_MODES,
    )
    return out, report


def png_bytes(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def to_pixels(images):
    return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


# --- load_generators ---------------------------------------------------------


def test_load_generators_from_cyclegan_file(trained):
    both = export.load_generators(trained[0])
    assert sorted(both) == ["a2b", "b2a"]
    assert (both["a2b"].name, both["b2a"].name) == ("G", "F")
    assert list(export.load_generators(trained[0], direction="y2x")) == ["b2a"]


def test_load_generators_from_run_folder(trained, tmp_path):
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    shutil.copy(trained[0], run / "model.keras")
    (run / "config.json").write_text(json.dumps({"data": {"crop_size": 48}}))
    assert sorted(export.load_generators(run)) == ["a2b", "b2a"]
    assert export.training_size(run) == (48, 48)


def test_load_generators_from_single_generator_file(generators, tmp_path):
    path = tmp_path / "G.keras"
    generators["a2b"].save(path)
    assert list(export.load_generators(path)) == ["a2b"]
    # A lone generator has no direction of its own: it takes the one asked for.
    assert list(export.load_generators(path, "b2a")) == ["b2a"]


def test_load_generators_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model at"):
        export.load_generators(tmp_path / "nothing.keras")


def test_load_generators_folder_without_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(FileNotFoundError, match="has no model.keras"):
        export.load_generators(tmp_path)


def test_load_generators_wrong_extension(tmp_path):
    path = tmp_path / "latest_net_G.pth"
    path.write_bytes(b"\x00")
    with pytest.raises(ValueError, match="import-torch"):
        export.load_generators(path)


def test_load_generators_not_a_model(tmp_path):
    path = tmp_path / "fake.keras"
    path.write_text("not a zip archive")
    with pytest.raises(ValueError, match="Cannot load .*fake.keras as a Keras model"):
        export.load_generators(path)


def test_load_generators_discriminator_file(tmp_path):
    from tfcyclegan.networks import PatchDiscriminator

    path = tmp_path / "D.keras"
    PatchDiscriminator(ndf=4, n_layers=1, name="D_Y").save(path)
    with pytest.raises(ValueError, match="discriminator .*PatchDiscriminator 'D_Y'"):
        export.load_generators(path)


def test_load_generators_saved_model_is_refused(exported):
    out, _ = exported
    with pytest.raises(ValueError, match="is a SavedModel"):
        export.load_generators(out / "cyclegan_a2b")


def test_bad_direction(trained):
    with pytest.raises(ValueError, match="`direction` must be one of"):
        export.load_generators(trained[0], direction="left")


# --- the export and its parity report ------------------------------------------


def test_export_writes_every_artifact_and_the_report(exported):
    out, report = exported
    assert report.ok, report.failures()
    assert (out / "export_report.json").is_file()
    on_disk = json.loads((out / "export_report.json").read_text())
    assert on_disk["saved_models"] == {"a2b": "cyclegan_a2b/1", "b2a": "cyclegan_b2a/1"}
    for direction in ("a2b", "b2a"):
        assert (out / f"cyclegan_{direction}" / "1" / "saved_model.pb").is_file()
        variants = on_disk["tflite"][direction]
        assert sorted(variants) == sorted(
            m + s for m in export.TFLITE_MODES for s in ("", "_uint8")
        )
        for info in variants.values():
            assert (out / info["path"]).stat().st_size == info["bytes"]
    assert "cyclegan_b2a" in (out / "models.config").read_text()
    assert not list(out.rglob(".tmp-*")), "temporary folders left behind"


def test_saved_model_holds_each_weight_once(exported, generators):
    out, _ = exported
    weights = sum(w.numpy().nbytes for w in generators["a2b"].weights)
    saved = sum(
        f.stat().st_size
        for f in (out / "cyclegan_a2b" / "1" / "variables").glob("variables.data-*")
    )
    assert weights <= saved < 1.2 * weights


def test_parity_within_the_stated_bounds(exported):
    _, report = exported
    for direction, checks in report.parity.items():
        assert checks["saved_model/translate"]["max_abs"] <= export.FLOAT_TOLERANCE
        assert checks["tflite/fp32"]["max_abs"] <= export.FLOAT_TOLERANCE
        # uint8 outputs: the same pixels up to one level where float noise
        # crosses a rounding edge.
        for name in (
            "saved_model/translate_uint8",
            "saved_model/serving_default",
            "tflite/fp32_uint8",
        ):
            assert checks[name]["max_abs"] <= 1 / 127.5 + 1e-6, name
        for mode, minimum in MIN_PSNR_DB.items():
            for variant in (mode, mode + "_uint8"):
                psnr = checks[f"tflite/{variant}"]["psnr_db"]
                assert psnr is None or psnr > minimum, (direction, variant, psnr)


def test_report_summary_lists_every_artifact(exported):
    _, report = exported
    summary = report.summary()
    assert "a2b/tflite/int8_uint8" in summary and "SavedModel b2a" in summary
    # Why dynamic_int8 is slow on CPUs, in the report and its summary.
    assert report.notes == [export_report.DYNAMIC_INT8_NOTE]
    assert "Note: dynamic_int8 files are for size, not speed" in summary


def test_dynamic_int8_is_not_a_default_mode(tmp_path):
    # ~4x slower than fp32 on CPUs (report.DEFAULT_TFLITE_MODES): only when asked for.
    for representative, expected in ((None, ("fp32", "fp16")), (tmp_path, ("fp32", "fp16", "int8"))):
        _, modes, _ = export_report._check_request(
            ("tflite",), None, ("float32",), representative, "float32", 1, "cyclegan"
        )
        assert tuple(modes) == expected


def test_export_refuses_to_overwrite(exported, trained):
    out, _ = exported
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export.export(
            trained[0], out, formats=("saved_model",), direction="a2b", parity=False, verbose=False
        )


def test_int8_needs_representative_data(generators):
    with pytest.raises(ValueError, match="representative"):
        export.convert_tflite(generators["a2b"], mode="int8")
    with pytest.raises(ValueError, match="representative_data"):
        export.export(generators["a2b"], "unused", tflite_modes=("int8",), verbose=False)


def test_bad_mode(generators):
    with pytest.raises(ValueError, match="`mode` must be one of"):
        export.convert_tflite(generators["a2b"], mode="int4")


# --- TFLite: builtin ops, metadata, dynamic sizes -------------------------------


def test_tflite_files_use_builtin_ops_only(exported):
    out, report = exported
    for variants in report.tflite.values():
        for info in variants.values():
            ops = export.check_builtin_ops((out / info["path"]).read_bytes())
            assert set(ops) <= EXPECTED_OPS, set(ops) - EXPECTED_OPS
            assert "CONCATENATION" in ops
            # Dynamic-size files upsample by CONV_2D + DEPTH_TO_SPACE (XNNPACK keeps
            # those at run-time shapes); fixed-size ones by TRANSPOSE_CONV.
            dynamic = info["metadata"]["input_size"] is None
            assert ("TRANSPOSE_CONV" in ops) != dynamic and ("DEPTH_TO_SPACE" in ops) == dynamic
            # No MIRROR_PAD: XNNPACK lacks it, and each would split the graph.


class _Patches(keras.layers.Layer):
    """Space-to-depth through tf.image.extract_patches, which TFLite has no builtin for."""

    def call(self, x):
        patches = tf.image.extract_patches(x, [1, 2, 2, 1], [1, 2, 2, 1], [1, 1, 1, 1], "VALID")
        return tf.nn.depth_to_space(patches, 2)


def flex_generator():
    inputs = keras.Input((None, None, 3))
    x = InputSizeCheck(4, 8, name="size_check")(inputs)
    return keras.Model(inputs, _Patches()(x))


def test_generator_needing_flex_ops_is_refused():
    with pytest.raises(export.NonBuiltinOpsError, match="ExtractImagePatches") as info:
        export.convert_tflite(flex_generator())
    assert info.value.ops == ["ExtractImagePatches"]


def test_check_builtin_ops_names_flex_ops():
    generator = flex_generator()
    function = tf.function(lambda x: generator(x), input_signature=[tf.TensorSpec([1, 8, 8, 3])])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], generator
    )
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    with pytest.raises(export.NonBuiltinOpsError, match="FlexExtractImagePatches.*phone runtimes"):
        export.check_builtin_ops(converter.convert())


def test_tflite_metadata(exported):
    out, report = exported
    info = report.tflite["b2a"]["int8_uint8"]
    metadata = export.read_tflite_metadata((out / info["path"]).read_bytes())
    assert metadata == info["metadata"]
    assert metadata["size_multiple"] == 4 and metadata["min_size"] == 8
    assert (metadata["signature"], metadata["input"], metadata["output"]) == (
        "translate_uint8",
        "pixels",
        "output_pixels",
    )
    assert (metadata["dtype"], metadata["range"], metadata["direction"]) == (
        "uint8",
        [0, 255],
        "b2a",
    )


def test_one_tflite_file_runs_several_sizes(exported, generators):
    from ai_edge_litert.interpreter import Interpreter

    out, _ = exported
    interpreter = Interpreter(
        model_path=os.fspath(out / "tflite" / "cyclegan_a2b_fp32.tflite"), num_threads=2
    )
    runner = interpreter.get_signature_runner("translate")
    for height, width in ((48, 80), (64, 64)):
        images = scenes(2, "summer", height, width, seed=height)
        outputs = runner(images=images)["output_images"]
        expected = generators["a2b"](images).numpy()
        np.testing.assert_allclose(outputs, expected, atol=export.FLOAT_TOLERANCE)


def test_fixed_size_tflite_has_no_shape_arithmetic(generators, tmp_path):
    flatbuffer = export.convert_tflite(generators["a2b"], input_size=(32, 48))
    assert "SHAPE" not in export.tflite_ops(flatbuffer)
    gpu = export.gpu_compatibility(flatbuffer)
    assert gpu["integer_ops"] == [] and gpu["dynamic_shape"] is False
    assert export.read_tflite_metadata(flatbuffer)["input_size"] == [32, 48]
    path = tmp_path / "fixed.tflite"
    path.write_bytes(flatbuffer)
    translator = export.load_translator(path)
    images = scenes(2, "summer", 30, 45)  # padded to 32 x 48
    np.testing.assert_allclose(
        translator(images), translate_with(generators["a2b"], images), atol=export.FLOAT_TOLERANCE
    )
    with pytest.raises(ValueError, match="takes only 32x48 images"):
        translator(scenes(1, "summer", 40, 40))


def test_dynamic_tflite_has_no_shape_arithmetic(exported):
    # The sub-pixel upsampling (kernels/subpixel.py) has no run-time output shape to compute.
    _, report = exported
    gpu = report.tflite["a2b"]["fp32"]["gpu"]
    assert gpu["dynamic_shape"] is True and gpu["integer_ops"] == []


def test_fixed_size_must_be_valid(generators):
    with pytest.raises(ValueError, match="multiples of 4"):
        export.convert_tflite(generators["a2b"], input_size=(30, 32))


def test_dynamic_tflite_runs_at_its_default_size_without_resizing(exported, generators):
    """The plain LiteRT example: load, allocate, set an image of the default size, invoke.

    The converter stores a 1 x 1 input, at which XNNPACK fails to allocate;
    export stores the training size instead, keeping height and width dynamic.
    """
    from ai_edge_litert.interpreter import Interpreter

    out, report = exported
    for variant, info in report.tflite["a2b"].items():
        assert info["metadata"]["default_input_size"] == [SIZE, SIZE], variant  # trained on 32
        interpreter = Interpreter(model_path=os.fspath(out / info["path"]), num_threads=2)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        assert list(detail["shape"]) == [1, SIZE, SIZE, 3], variant
        assert list(detail["shape_signature"]) == [-1, -1, -1, 3], variant
        images = scenes(1, "summer", seed=7)
        batch = to_pixels(images) if detail["dtype"] == np.uint8 else images
        interpreter.set_tensor(detail["index"], batch)
        interpreter.invoke()
        output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        assert output.shape == (1, SIZE, SIZE, 3), variant
        if variant == "fp32":
            np.testing.assert_allclose(
                output, generators["a2b"](images).numpy(), atol=export.FLOAT_TOLERANCE
            )
            # Still dynamic: another size after resizing.
            images = scenes(2, "summer", 24, 40, seed=8)
            interpreter.resize_tensor_input(detail["index"], list(images.shape))
            interpreter.allocate_tensors()
            interpreter.set_tensor(detail["index"], images)
            interpreter.invoke()
            output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
            np.testing.assert_allclose(
                output, generators["a2b"](images).numpy(), atol=export.FLOAT_TOLERANCE
            )


def test_default_input_size_of_convert_tflite(generators):
    from ai_edge_litert.interpreter import Interpreter

    flatbuffer = export.convert_tflite(generators["a2b"], default_input_size=(16, 24))
    metadata = export.read_tflite_metadata(flatbuffer)
    assert (metadata["default_input_size"], metadata["input_size"]) == ([16, 24], None)
    detail = Interpreter(model_content=flatbuffer).get_input_details()[0]
    assert (list(detail["shape"]), list(detail["shape_signature"])) == (
        [1, 16, 24, 3],
        [-1, -1, -1, 3],
    )
    with pytest.raises(ValueError, match=r"`default_input_size` must be multiples of 4.*\(18, 24\)"):
        export.convert_tflite(generators["a2b"], default_input_size=(18, 24))
    with pytest.raises(ValueError, match="leave `default_input_size` unset"):
        export.convert_tflite(generators["a2b"], input_size=(32, 32), default_input_size=(16, 16))


# --- SavedModel signatures ----------------------------------------------------


@pytest.fixture(scope="module")
def loaded(exported):
    out, _ = exported
    return tf.saved_model.load(os.fspath(out / "cyclegan_a2b" / "1"))


def test_translate_signature_dynamic_sizes(loaded, generators):
    for height, width in ((48, 80), (64, 64), (37, 50)):
        images = scenes(2, "summer", height, width, seed=width)
        outputs = loaded.signatures["translate"](images=tf.constant(images))[
            "output_images"
        ].numpy()
        expected = translate_with(generators["a2b"], images)
        assert outputs.shape == images.shape
        np.testing.assert_allclose(outputs, expected, atol=export.FLOAT_TOLERANCE)


def test_translate_uint8_signature(loaded, generators):
    pixels = to_pixels(scenes(1, "summer", 24, 20))
    outputs = loaded.signatures["translate_uint8"](pixels=tf.constant(pixels))[
        "output_pixels"
    ].numpy()
    expected = to_pixels(translate_with(generators["a2b"], pixels / 127.5 - 1.0))
    assert outputs.dtype == np.uint8
    assert np.abs(outputs.astype(int) - expected).max() <= 1


def test_serving_default_mixed_formats_and_sizes(loaded, generators):
    rgb = to_pixels(scenes(1, "summer", 37, 50)[0])
    gray = (
        to_pixels(scenes(1, "summer", 21, 19, seed=4)[0]).mean(-1, keepdims=True).astype(np.uint8)
    )
    requests = [png_bytes(rgb), jpeg_bytes(rgb), png_bytes(gray)]
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(requests))[
        "output_bytes"
    ].numpy()
    assert len(outputs) == 3
    # Decoded as training decodes (Pillow): the signature's JPEG decoding matches it.
    decoded_inputs = [np.asarray(Image.open(io.BytesIO(r)).convert("RGB")) for r in requests]
    for output, pixels in zip(outputs, decoded_inputs):
        assert output[:8] == b"\x89PNG\r\n\x1a\n"
        result = tf.io.decode_png(output).numpy()
        expected = to_pixels(translate_with(generators["a2b"], pixels[None] / 127.5 - 1.0)[0])
        assert result.shape == pixels.shape
        assert np.abs(result.astype(int) - expected).max() <= 1


def exif_jpeg(image, orientation, byte_order):
    """JPEG bytes of a Pillow image with EXIF orientation `orientation` in IFD0.

    "big": written by Pillow (a JFIF APP0 first, then Exif with Make and Model
    before Orientation, as cameras write them); "little": an "II" TIFF header,
    as most phones write.
    """
    buffer = io.BytesIO()
    if byte_order == "big":
        exif = Image.Exif()
        exif[0x010F], exif[0x0110], exif[0x0112] = "Phone", "X", orientation
        image.save(buffer, "JPEG", quality=90, exif=exif)
    else:
        entries = struct.pack("<HHI4s", 0x010F, 2, 4, b"Cam\0") + struct.pack(
            "<HHIHH", 0x0112, 3, 1, orientation, 0
        )
        tiff = b"II*\0" + struct.pack("<IH", 8, 2) + entries + struct.pack("<I", 0)
        image.save(buffer, "JPEG", quality=90, exif=b"Exif\0\0" + tiff)
    return buffer.getvalue()


def test_serving_default_applies_exif_orientation_like_training(loaded, generators, tmp_path):
    from tfcyclegan.data import load_image

    image = draw_scene(np.random.default_rng(5), "summer", 40, 24)  # not square: 5-8 swap sides
    requests, expected = [], []
    for orientation in range(1, 9):
        for byte_order in ("big", "little"):
            data = exif_jpeg(image, orientation, byte_order)
            path = tmp_path / f"{orientation}_{byte_order}.jpg"
            path.write_bytes(data)
            pixels = load_image(path)  # what training sees: Pillow, exif_transpose
            assert pixels.shape == ((40, 24, 3) if orientation >= 5 else (24, 40, 3))
            requests.append(data)
            expected.append(to_pixels(translate_with(generators["a2b"], pixels[None] / 127.5 - 1)[0]))
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(requests))[
        "output_bytes"
    ].numpy()
    for i, (output, pixels) in enumerate(zip(outputs, expected)):
        result = tf.io.decode_png(output).numpy()
        assert result.shape == pixels.shape, i
        # JPEGs are decoded as Pillow decodes them (the accurate integer IDCT),
        # so up to float rounding the pixels are training's.
        assert np.abs(result.astype(int) - pixels).max() <= 1, i


def test_exif_orientation_of_broken_or_missing_exif_is_upright():
    from tfcyclegan.export.signatures import _exif_orientation

    def app1(tiff):
        return b"\xff\xd8\xff\xe1" + struct.pack(">H", len(tiff) + 8) + b"Exif\0\0" + tiff

    entry = struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0)
    assert int(_exif_orientation(app1(b"MM\0*" + struct.pack(">IH", 8, 1) + entry))) == 6
    # More entries than bytes: what is there is read, reads past the end are zeros.
    assert int(_exif_orientation(app1(b"MM\0*" + struct.pack(">IH", 8, 0xFFFF) + entry))) == 6
    for data in (
        b"",
        b"\xff\xd8",
        app1(b"MM\0*")[:-2],  # truncated in the TIFF header
        app1(b"MM\0*" + struct.pack(">IH", 0xFFFFFFF0, 1) + entry),  # IFD far past the end
        app1(b"XX\0*" + struct.pack(">IH", 8, 1) + entry),  # no byte order
        app1(b"MM\0*" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 9, 0)),
        b"\xff\xd8\xff\xe1\x00\x01" + b"Exif\0\0" * 4,  # a length that goes backwards
    ):
        assert int(_exif_orientation(data)) == 1, data


def test_serving_default_tiny_image(loaded):
    # Smaller than the generator's minimum (8): padded further, still answered.
    pixels = np.full((3, 5, 3), 128, np.uint8)
    output = loaded.signatures["serving_default"](image_bytes=tf.constant([png_bytes(pixels)]))
    assert tf.io.decode_png(output["output_bytes"][0]).shape == (3, 5, 3)


def test_serving_default_rejects_bytes_that_are_not_an_image(loaded):
    good = png_bytes(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="not a JPEG, PNG, GIF, BMP or WebP image"
    ):
        loaded.signatures["serving_default"](
            image_bytes=tf.constant([good, b"hello, not an image"])
        )


def test_serving_default_rejects_a_truncated_image(loaded):
    truncated = png_bytes(np.zeros((16, 16, 3), np.uint8))[:40]
    with pytest.raises(tf.errors.InvalidArgumentError, match="PNG"):
        loaded.signatures["serving_default"](image_bytes=tf.constant([truncated]))


def test_translate_rejects_wrong_dtype_and_channels(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        loaded.signatures["translate"](images=tf.zeros([1, 8, 8, 3], tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Expected images with 3 channels"):
        loaded.signatures["translate"](images=tf.zeros([1, 8, 8, 4]))


@pytest.fixture(scope="module")
def limited(generators, tmp_path_factory):
    """The signatures of a SavedModel taking at most 1000 pixels and 2 images per request."""
    version = export.export_saved_model(
        generators["a2b"], tmp_path_factory.mktemp("limited"), "small", max_pixels=1000,
        max_batch_size=2,
    )
    loaded = tf.saved_model.load(os.fspath(version))
    signatures = dict(loaded.signatures)
    signatures["_loaded"] = loaded  # keeps the variables alive
    return signatures


def test_max_pixels_guard(limited):
    signatures = limited
    # 37 x 50 = 1850 pixels: refused from the PNG header, before decoding.
    big = png_bytes(np.zeros((37, 50, 3), np.uint8))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="too large: height x width must be at most 1000"
    ):
        signatures["serving_default"](image_bytes=tf.constant([big]))
    # A JPEG's size comes from its header too.
    with pytest.raises(tf.errors.InvalidArgumentError, match="too large"):
        signatures["serving_default"](image_bytes=tf.constant([jpeg_bytes(np.zeros((37, 50, 3), np.uint8))]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="too large"):
        signatures["translate"](images=tf.zeros([1, 40, 40, 3]))
    ok = png_bytes(np.zeros((20, 30, 3), np.uint8))
    assert len(signatures["serving_default"](image_bytes=tf.constant([ok]))["output_bytes"]) == 1


def test_max_batch_size_guard(limited):
    signatures = limited
    message = r"too many images.*at most 2 per request.*Received batch size:\] \[3\]"
    ok = png_bytes(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        signatures["serving_default"](image_bytes=tf.constant([ok] * 3))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        signatures["translate"](images=tf.zeros([3, 8, 8, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        signatures["translate_uint8"](pixels=tf.zeros([3, 8, 8, 3], tf.uint8))
    assert signatures["translate"](images=tf.zeros([2, 8, 8, 3]))["output_images"].shape[0] == 2
    assert len(signatures["serving_default"](image_bytes=tf.constant([ok] * 2))["output_bytes"]) == 2


@pytest.mark.parametrize("name", ["max_batch_size", "max_pixels"])
def test_bad_limits(generators, tmp_path, name):
    with pytest.raises(ValueError, match=f"`{name}` must be an integer >= 1. Received: {name}=0"):
        export.export_saved_model(generators["a2b"], tmp_path, **{name: 0})
    with pytest.raises(ValueError, match=f"`{name}` must be an integer >= 1"):
        export.export(generators["a2b"], tmp_path, verbose=False, **{name: 0})


def _op_dtypes(concrete, op_type):
    """dtypes ("T") of every `op_type` node in a concrete function and its library."""
    graph = concrete.graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    return {tf.dtypes.as_dtype(n.attr["T"].type).name for n in nodes if n.op == op_type}


def test_bfloat16_saved_model(generators, tmp_path):
    generator = generators["a2b"]
    version_dir = export.export_saved_model(generator, tmp_path, "bf16", compute_dtype="bfloat16")
    translate = tf.saved_model.load(os.fspath(version_dir)).signatures["translate"]
    # float32 in and out; the convolutions really run in bfloat16.
    assert translate.structured_input_signature[1]["images"].dtype == tf.float32
    assert _op_dtypes(translate, "Conv2D") == {"bfloat16"}
    images = scenes(2, "summer", 48, 40, seed=5)
    outputs = translate(images=tf.constant(images))["output_images"].numpy()
    assert outputs.dtype == np.float32 and outputs.shape == images.shape
    expected = translate_with(generator, images)
    # bfloat16 keeps 8 significant bits: measured 59.6 dB (max abs 0.013) here.
    assert export.psnr(outputs, expected) > 35.0
    assert np.abs(outputs - expected).max() > export.FLOAT_TOLERANCE  # not float32 in disguise
    # The float32 export of the same generator stays float32.
    f32 = export.export_saved_model(generator, tmp_path, "f32")
    assert _op_dtypes(tf.saved_model.load(os.fspath(f32)).signatures["translate"], "Conv2D") == {
        "float32"
    }


def test_bfloat16_export_reports_unbounded_parity(trained, tmp_path):
    report = export.export(trained[0], tmp_path / "out", formats=("saved_model",), direction="a2b",
                           saved_model_dtype="bfloat16", parity_count=2, verbose=False)
    assert report.ok and report.saved_model_dtype == "bfloat16"
    checks = report.parity["a2b"]
    assert sorted(checks) == ["saved_model/serving_default", "saved_model/translate",
                              "saved_model/translate_uint8"]
    for entry in checks.values():
        assert "bound" not in entry and entry["psnr_db"] > 30.0
    assert "(bfloat16)" in report.summary()
    with pytest.raises(ValueError, match=r"`saved_model_dtype` must be one of .*Received: saved_model_dtype='float16'"):
        export.export(trained[0], tmp_path / "bad", saved_model_dtype="float16")
    with pytest.raises(ValueError, match=r"`compute_dtype` must be one of"):
        export.export_saved_model(export.load_generators(trained[0])["a2b"], tmp_path, compute_dtype="int8")


# --- versions on disk -----------------------------------------------------------


def test_existing_version_is_kept_unless_overwrite(generators, tmp_path):
    first = export.export_saved_model(generators["a2b"], tmp_path, "m", version=3)
    assert first == tmp_path / "m" / "3"
    marker = first / "marker"
    marker.write_text("v3")
    with pytest.raises(FileExistsError, match="Version 3 of m exists"):
        export.export_saved_model(generators["a2b"], tmp_path, "m", version=3)
    assert marker.exists()
    export.export_saved_model(generators["a2b"], tmp_path, "m", version=3, overwrite=True)
    assert not marker.exists() and (first / "saved_model.pb").is_file()
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["3"]


def test_crashed_export_leaves_no_version(generators, tmp_path, monkeypatch):
    def crash(out_dir, endpoints):
        pathlib.Path(out_dir).mkdir()
        (pathlib.Path(out_dir) / "saved_model.pb").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(saved_model, "write_archive", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_saved_model(generators["a2b"], tmp_path, "m", version=1)
    assert list((tmp_path / "m").iterdir()) == []


def test_exporting_another_model_keeps_the_earlier_one(generators, tmp_path):
    """Exports into one folder: each model keeps its artifacts, report entry and TF Serving config."""
    out = tmp_path / "exported"
    small = dict(direction="a2b", tflite_modes=("fp32",), tflite_io=("float32",), parity=False,
                 verbose=False)
    export.export(generators["a2b"], out, model_name="horse", **small)
    # An export from before reports had "models": its entry is kept under its model name.
    report = json.loads((out / "export_report.json").read_text())
    old_style = {k: v for k, v in report.items() if k not in ("models", "model_name")}
    (out / "export_report.json").write_text(json.dumps(old_style))
    assert export.load_translator(out).source == out / "horse_a2b" / "1"

    export.export(generators["b2a"], out, model_name="zebra", formats=("saved_model",), **small)
    config = (out / "models.config").read_text()
    assert saved_model.served_model_names(config) == ["horse_a2b", "zebra_a2b"]
    report = json.loads((out / "export_report.json").read_text())
    assert list(report["models"]) == ["horse", "zebra"]
    assert report["models"]["horse"]["saved_models"] == {"a2b": "horse_a2b/1"}
    assert report["models"]["horse"]["tflite"]["a2b"]["fp32"]["path"] == "tflite/horse_a2b_fp32.tflite"
    # The top level is the latest export, as the report was before (readers of it still work).
    assert report["model_name"] == "zebra" and report["saved_models"] == {"a2b": "zebra_a2b/1"}
    with pytest.raises(ValueError, match=r"holds several models: \['horse', 'zebra'\]\. Choose one with model_name"):
        export.load_translator(out)
    with pytest.raises(ValueError, match="has no model 'mule'"):
        export.load_translator(out, model_name="mule")
    assert export.load_translator(out, model_name="zebra").source == out / "zebra_a2b" / "1"

    # Re-exporting horse with overwrite replaces horse's artifacts only; its
    # entry keeps the fp32 file this export did not write (it is still there).
    zebra_files = {p: p.stat().st_mtime_ns for p in (out / "zebra_a2b").rglob("*") if p.is_file()}
    horse_pb = (out / "horse_a2b" / "1" / "saved_model.pb").stat().st_ino
    export.export(generators["a2b"], out, model_name="horse", overwrite=True,
                  **{**small, "tflite_modes": ("fp16",)})
    assert (out / "horse_a2b" / "1" / "saved_model.pb").stat().st_ino != horse_pb
    assert {p: p.stat().st_mtime_ns for p in (out / "zebra_a2b").rglob("*") if p.is_file()} == zebra_files
    after = json.loads((out / "export_report.json").read_text())
    assert after["models"]["zebra"] == report["models"]["zebra"]
    assert sorted(after["models"]["horse"]["tflite"]["a2b"]) == ["fp16", "fp32"]
    assert after["models"]["horse"] == {k: v for k, v in after.items() if k != "models"}
    assert saved_model.served_model_names((out / "models.config").read_text()) == [
        "horse_a2b", "zebra_a2b"
    ]
    assert not list(out.rglob(".*")), "temporary files left behind"


def test_unreadable_earlier_report_stops_the_export_before_any_work(generators, tmp_path):
    (tmp_path / "export_report.json").write_text("{not json")
    with pytest.raises(ValueError, match="Cannot read the report of the earlier exports"):
        export.export(generators["a2b"], tmp_path, formats=("saved_model",), parity=False,
                      verbose=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export_report.json"]


@pytest.mark.parametrize("version", [0, -1, "2", True])
def test_bad_version(generators, tmp_path, version):
    with pytest.raises(ValueError, match="`version` must be an integer >= 1"):
        export.export_saved_model(generators["a2b"], tmp_path, version=version)


def test_bad_model_name(generators, tmp_path):
    with pytest.raises(ValueError, match="`model_name` must be a folder name"):
        export.export_saved_model(generators["a2b"], tmp_path, model_name="../up")


# --- load_translator -----------------------------------------------------------


def test_load_translator_every_kind_odd_size(exported, trained, generators):
    out, _ = exported
    images = scenes(2, "winter", 37, 50, seed=9)
    expected = translate_with(generators["b2a"], images)
    sources = {
        "keras": trained[0],
        "saved_model": out / "cyclegan_b2a",  # the model folder: highest version
        "version": out / "cyclegan_b2a" / "1",
        "export": out,  # export folder: its SavedModel for the direction
        "tflite": out / "tflite" / "cyclegan_b2a_fp32.tflite",
    }
    for name, source in sources.items():
        translator = export.load_translator(source, direction="b2a")
        outputs = translator(images)
        assert outputs.shape == images.shape, name
        np.testing.assert_allclose(outputs, expected, atol=export.FLOAT_TOLERANCE, err_msg=name)
    # One image (HWC) in, one out; a uint8 .tflite file works on float images too.
    translator = export.load_translator(out / "tflite" / "cyclegan_b2a_fp32_uint8.tflite")
    output = translator(images[0])
    assert output.shape == images[0].shape
    assert np.abs(output - to_pixels(expected[0]) / 127.5 + 1.0).max() <= 1 / 127.5 + 1e-6


def test_load_translator_errors(tmp_path, exported):
    with pytest.raises(FileNotFoundError, match="No model at"):
        export.load_translator(tmp_path / "missing.tflite")
    translator = export.load_translator(exported[0] / "tflite" / "cyclegan_a2b_fp16.tflite")
    with pytest.raises(ValueError, match=r"Expected images of shape \(batch, height, width, 3\)"):
        translator(np.zeros((1, 8, 8, 4), np.float32))


def test_unet_and_imported_pix2pix_generators(tmp_path):
    """U-Nets need a multiple of 2**num_downs; a pix2pix import is a plain functional model."""
    from tfcyclegan.networks import UnetGenerator
    from tfcyclegan.torch_import import export_state_dict, import_generator

    keras.utils.set_random_seed(1)
    imported = import_generator(
        export_state_dict(UnetGenerator(num_downs=5, ngf=4, norm="batch", seed=0))
    )
    assert not isinstance(imported, UnetGenerator)  # plain functional: no size_multiple attribute
    assert size_requirement(imported) == (32, 32)
    images = scenes(2, "summer", 37, 50)  # padded to 64 x 64
    expected = translate_with(imported, images)
    assert expected.shape == images.shape
    version = export.export_saved_model(imported, tmp_path, "pix2pix")
    path = tmp_path / "pix2pix.tflite"
    path.write_bytes(export.convert_tflite(imported))
    for source in (version, path):
        np.testing.assert_allclose(
            export.load_translator(source)(images),
            expected,
            atol=export.FLOAT_TOLERANCE,
            err_msg=str(source),
        )


# --- a fresh process without tfcyclegan ------------------------------------------

FRESH = textwrap.dedent("""
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "tfcyclegan":
                raise ImportError("tfcyclegan must not be needed: " + name)

    sys.meta_path.insert(0, Block())
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    out, images_file, result_file = sys.argv[1:4]
    images = np.load(images_file)
    loaded = tf.saved_model.load(out + "/cyclegan_a2b/1")
    results = {
        "translate": loaded.signatures["translate"](images=tf.constant(images))["output_images"].numpy(),
    }
    png = tf.io.encode_png(np.round((images[0] + 1) * 127.5).astype(np.uint8)).numpy()
    answer = loaded.signatures["serving_default"](image_bytes=tf.constant([png]))
    results["png"] = tf.io.decode_png(answer["output_bytes"][0]).numpy()
    for variant in ("fp32", "fp16", "dynamic_int8", "int8", "fp32_uint8", "int8_uint8"):
        interpreter = Interpreter(model_path=f"{out}/tflite/cyclegan_a2b_{variant}.tflite")
        runner = interpreter.get_signature_runner("translate_uint8" if variant.endswith("uint8") else "translate")
        if variant.endswith("uint8"):
            pixels = np.round((images + 1) * 127.5).astype(np.uint8)
            results[variant] = runner(pixels=pixels)["output_pixels"].astype(np.float32) / 127.5 - 1
        else:
            results[variant] = runner(images=images)["output_images"]
    assert "tfcyclegan" not in sys.modules
    np.savez(result_file, **results)
    """)


def test_exports_run_in_a_fresh_process_without_tfcyclegan(exported, generators, tmp_path):
    out, _ = exported
    images = scenes(2, "summer", 32, 48, seed=11)
    np.save(tmp_path / "images.npy", images)
    subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH,
            os.fspath(out),
            os.fspath(tmp_path / "images.npy"),
            os.fspath(tmp_path / "r.npz"),
        ],
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=300,
    )
    results = np.load(tmp_path / "r.npz")
    expected = generators["a2b"](images).numpy()
    np.testing.assert_allclose(results["translate"], expected, atol=export.FLOAT_TOLERANCE)
    np.testing.assert_allclose(results["fp32"], expected, atol=export.FLOAT_TOLERANCE)
    assert np.abs(results["fp32_uint8"] - expected).max() <= 1 / 127.5 + 1e-6
    assert np.abs(results["png"].astype(int) - to_pixels(expected[0])).max() <= 1
    for variant, minimum in (("fp16", 50), ("dynamic_int8", 35), ("int8", 22), ("int8_uint8", 22)):
        assert export.psnr(results[variant], expected) > minimum, variant


def test_saved_model_cli_lists_the_three_signatures(exported):
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
    if not cli.exists():
        pytest.skip("saved_model_cli is not installed beside this Python")
    out, _ = exported
    shown = subprocess.run(
        [os.fspath(cli), "show", "--dir", os.fspath(out / "cyclegan_a2b" / "1"), "--all"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    for text in (
        "signature_def['serving_default']",
        "signature_def['translate']",
        "signature_def['translate_uint8']",
        "inputs['image_bytes']",
        "outputs['output_bytes']",
        "inputs['images']",
        "outputs['output_pixels']",
    ):
        assert text in shown, text
