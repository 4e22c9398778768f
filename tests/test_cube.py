"""tfcyclegan.export.cube: a colour generator as a `.cube` 3D LUT, and its export.

The LUT is checked against the generator with a trilinear interpolation written
here, independently of the library's `apply_lut`: three nested linear
interpolations (red, then green, then blue) instead of the eight-corner sum.
"""

import shutil
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcyclegan import cli, export
from tfcyclegan.config import ModelConfig
from tfcyclegan.export import cube
from tfcyclegan.export.tflite import tflite_ops
from tfcyclegan.models import CycleGAN
from tfcyclegan.networks import ColorGenerator, ResnetGenerator
from tfcyclegan.synthetic import draw_scene

# The model's output against the LUT applied trilinearly, on [0, 1]: the
# interpolation error of a smooth look between grid points 1/32 apart.
# Measured on the trained-like generator below: 0.24/255 on the photo (its largest change of
# colour 0.10); over 20,000 uniformly random colours, where the look bends most, 2.1/255.
LUT_TOLERANCE = 2 / 255

# A known, non-symmetric colour matrix on [0, 1] RGB (rows: output R, G, B) and offset,
# every output within [0, 1], so no clipping.
MATRIX = np.array([[0.80, 0.15, 0.05], [0.00, 0.90, 0.10], [0.20, 0.00, 0.60]])
OFFSET = np.array([0.0, 0.0, 0.1])

# Ops a colour generator's .tflite files hold, every one a LiteRT builtin: the clip is fused
# into the ADD; CAST, MUL, SUB, ROUND, MINIMUM and RELU are the uint8 files' pixel conversions.
EXPECTED_OPS = {"ADD", "CAST", "CONV_2D", "DEQUANTIZE", "LEAKY_RELU", "MINIMUM", "MUL", "QUANTIZE", "RELU",
                "ROUND", "SUB"}


def matrix_generator():
    """A `ColorGenerator` computing MATRIX @ rgb + OFFSET on [0, 1] colours.

    With no hidden layer the change r(x) is one 1x1 convolution: on [-1, 1]
    (x = 2p - 1) the output is x + (M - I) x + (M 1 + 2c - 1).
    """
    generator = ColorGenerator(ngf=4, n_layers=0, name="matrix")
    kernel = (MATRIX - np.eye(3)).T.reshape(1, 1, 3, 3)  # [in, out]
    bias = MATRIX.sum(axis=1) + 2 * OFFSET - 1
    generator.set_weights([kernel.astype("float32"), bias.astype("float32")])
    return generator


def trained_like(seed=0, name="G"):
    """A 3-layer `ColorGenerator` with He-scaled hidden weights and a last layer
    giving changes of ~0.1-0.3: a smooth, bending look, not the identity."""
    generator = ColorGenerator(ngf=16, seed=seed, name=name)
    set_trained_like_weights(generator, seed)
    return generator


def set_trained_like_weights(generator, seed):
    rng = np.random.default_rng(seed)
    weights = []
    for w in generator.get_weights():
        fan_in = w.shape[2] if w.ndim == 4 else None
        if fan_in is None:
            weights.append(rng.normal(0, 0.05, w.shape))
        elif w.shape[-1] == 3:  # the change
            weights.append(rng.normal(0, 0.15 / np.sqrt(fan_in), w.shape))
        else:
            weights.append(rng.normal(0, np.sqrt(2 / fan_in), w.shape))
    generator.set_weights([w.astype("float32") for w in weights])


def trilinear(table, pixels):
    """`pixels` (N, 3) RGB in [0, 1] through `table` ([b, g, r]): lerp along r, then g, then b."""
    n = table.shape[0] - 1
    out = np.empty(pixels.shape, np.float64)
    for k, (r, g, b) in enumerate(np.asarray(pixels, np.float64)):
        i = [min(int(v * n), n - 1) for v in (r, g, b)]
        t = [v * n - j for v, j in zip((r, g, b), i)]
        cell = table[i[2]:i[2] + 2, i[1]:i[1] + 2, i[0]:i[0] + 2]  # (b, g, r, 3), 2x2x2
        along_r = cell[:, :, 0] * (1 - t[0]) + cell[:, :, 1] * t[0]
        along_g = along_r[:, 0] * (1 - t[1]) + along_r[:, 1] * t[1]
        out[k] = along_g[0] * (1 - t[2]) + along_g[1] * t[2]
    return out


def model_colours(generator, pixels):
    """The generator's output for uint8 `pixels` (H, W, 3), as [0, 1] floats."""
    x = pixels[None].astype(np.float32) / 127.5 - 1.0
    return (np.asarray(generator(x), np.float64)[0] + 1.0) / 2.0


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A real image file (a synthetic landscape, PNG) and its pixels."""
    path = tmp_path_factory.mktemp("photo") / "scene.png"
    draw_scene(np.random.default_rng(4), "summer", 48, 40).save(path)
    return path, np.asarray(Image.open(path).convert("RGB"))


# --- the file -----------------------------------------------------------------


def test_cube_file_header_rows_and_red_fastest_order(tmp_path):
    path = tmp_path / "matrix.cube"
    cube.export_cube(matrix_generator(), path, title="warm matrix")
    lines = path.read_text().splitlines()
    assert lines[:4] == ['TITLE "warm matrix"', "LUT_3D_SIZE 33", "DOMAIN_MIN 0.0 0.0 0.0",
                         "DOMAIN_MAX 1.0 1.0 1.0"]
    rows = lines[4:]
    assert len(rows) == 33**3 == 35937
    assert all(len(v.split(".")[1]) == 6 for v in rows[1].split())  # 6 decimals
    values = np.array([[float(v) for v in row.split()] for row in rows])
    k = np.arange(33**3)
    inputs = np.stack([k % 33, k // 33 % 33, k // 33**2], axis=-1) / 32  # red fastest, blue slowest
    np.testing.assert_allclose(values, inputs @ MATRIX.T + OFFSET, atol=2e-6)
    # The matrix is not symmetric, so the other order would differ: row 1 is red's step.
    assert not np.allclose(MATRIX[:, 0], MATRIX[:, 2])
    np.testing.assert_allclose(values[1], MATRIX @ [1 / 32, 0, 0] + OFFSET, atol=2e-6)


def test_read_cube_gives_the_table_indexed_b_g_r(tmp_path):
    path = tmp_path / "matrix.cube"
    table = cube.export_cube(matrix_generator(), path)
    read = cube.read_cube(path)
    assert read.shape == (33, 33, 33, 3)
    np.testing.assert_allclose(read, table, atol=5e-7)  # 6 decimals
    np.testing.assert_allclose(read[2, 0, 1], MATRIX @ [1 / 32, 0, 2 / 32] + OFFSET, atol=2e-6)
    assert path.read_text().startswith('TITLE "matrix"')  # the file name by default


def test_an_untrained_generator_is_the_identity_lut(tmp_path):
    table = cube.export_cube(ColorGenerator(ngf=4, seed=0), tmp_path / "identity.cube")
    np.testing.assert_array_equal(table, cube.lut_grid())


def test_the_lut_on_a_real_image_matches_the_model(tmp_path, photo):
    path, pixels = photo
    generator = trained_like()
    cube.export_cube(generator, tmp_path / "look.cube")
    table = cube.read_cube(tmp_path / "look.cube")
    expected = model_colours(generator, pixels).reshape(-1, 3)
    assert np.abs(expected - pixels.reshape(-1, 3) / 255).max() > 0.05  # a real change of colour
    looked = trilinear(table, pixels.reshape(-1, 3) / 255)
    assert np.abs(looked - expected).max() <= LUT_TOLERANCE
    # The library's interpolation (export's parity) is the same function.
    np.testing.assert_allclose(cube.apply_lut(table, pixels / 255).reshape(-1, 3), looked, atol=1e-12)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is optional: not installed")
def test_ffmpeg_lut3d_applies_the_file_like_the_model(tmp_path, photo):
    path, pixels = photo
    generator = trained_like()
    cube.export_cube(generator, tmp_path / "look.cube")
    out = tmp_path / "looked.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path), "-vf",
                    f"lut3d=file={tmp_path / 'look.cube'}:interp=trilinear", "-pix_fmt", "rgb24", str(out)],
                   check=True)
    looked = np.asarray(Image.open(out).convert("RGB"), np.float64) / 255
    # ffmpeg rounds to 8 bits: half a level more than the interpolation's own error.
    assert np.abs(looked - model_colours(generator, pixels)).max() <= LUT_TOLERANCE + 0.5 / 255


# --- refusals -------------------------------------------------------------------


def test_a_generator_that_sees_neighbours_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"can only carry a per-pixel look.*ResnetGenerator 'G'.*--netG color"):
        cube.export_cube(ResnetGenerator(ngf=4, n_blocks=1, name="G"), tmp_path / "x.cube")
    assert not (tmp_path / "x.cube").exists()


def test_a_grayscale_colour_generator_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"maps RGB to RGB\. Received: .* channels \(1, 1\)"):
        cube.export_cube(ColorGenerator(1, 1, ngf=4), tmp_path / "x.cube")


@pytest.mark.slow
def test_a_grayscale_colour_generator_exports_without_a_cube_by_default(tmp_path):
    report = export.export(ColorGenerator(1, 1, ngf=4), tmp_path / "out", formats=None, tflite_modes=("fp32",),
                           tflite_io=("float32",), parity=False, verbose=False)
    assert report.cubes == {} and report.tflite and not (tmp_path / "out" / "cube").exists()


@pytest.mark.parametrize(
    "text, match",
    [
        ("LUT_1D_SIZE 4\n", r"line 1: a 1D LUT"),
        ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7, r"LUT_3D_SIZE n and n\*\*3 rows\. Received: LUT_3D_SIZE 2, 7 rows"),
        ("DOMAIN_MAX 2.0 2.0 2.0\nLUT_3D_SIZE 2\n", r"line 1: only the domain \[0, 1\]"),
        ("LUT_3D_SIZE 2\n0 0\n", r"line 2: a row has 3 numbers, this one 2"),
    ],
)
def test_read_cube_errors_name_the_line(tmp_path, text, match):
    path = tmp_path / "bad.cube"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        cube.read_cube(path)


def test_read_cube_takes_comments_and_resolves_input_range(tmp_path):
    rows = "".join(f"{r} {g} {b}\n" for b in (0, 1) for g in (0, 1) for r in (0, 1))
    path = tmp_path / "resolve.cube"
    path.write_text(f"# made by hand\nTITLE \"x\"\nLUT_3D_INPUT_RANGE 0.0 1.0\nLUT_3D_SIZE 2\n\n{rows}")
    np.testing.assert_array_equal(cube.read_cube(path), cube.lut_grid(2))


def test_export_refuses_a_cube_of_a_resnet_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="per-pixel look"):
        export.export(ResnetGenerator(ngf=4, n_blocks=1), tmp_path / "out", formats=("saved_model", "cube"),
                      verbose=False)
    assert not (tmp_path / "out").exists()


# --- export and the command line --------------------------------------------------


@pytest.fixture(scope="module")
def colour_cyclegan(tmp_path_factory):
    """A .keras CycleGAN whose G and F are trained-like colour generators."""
    config = ModelConfig(generator="color", ngf=16, ndf=4, discriminator="n_layers", n_layers_d=1)
    model = CycleGAN.from_model_config(config, pool_size=2, seed=0)
    model.compile()
    scenes = np.zeros((2, 8, 8, 3), np.float32)
    model.fit(tf.data.Dataset.from_tensor_slices((scenes, scenes)).batch(2), verbose=0)  # built, as trained
    set_trained_like_weights(model.G, 0)
    set_trained_like_weights(model.F, 1)
    path = tmp_path_factory.mktemp("colour") / "colour.keras"
    model.save(path)
    return path, model


@pytest.mark.slow
def test_every_tflite_mode_of_a_colour_generator_is_builtin_and_close(tmp_path, photo):
    """SavedModel and TFLite (fp32, fp16, dynamic_int8, int8) as for any generator, and the .cube."""
    representative = tmp_path / "representative"
    representative.mkdir()
    shutil.copy(photo[0], representative / "scene.png")
    report = export.export(trained_like(), tmp_path / "out", tflite_modes=export.TFLITE_MODES,
                           representative_data=representative, parity_size=(24, 32), verbose=False)
    assert report.ok
    parity = report.parity["a2b"]
    for name in ("saved_model/translate", "tflite/fp32", "tflite/fp32_uint8"):
        assert parity[name]["ok"], name
    # Sanity bounds (tests/test_export.py's), far below what this generator gives (measured:
    # fp16 99 dB, fp16_uint8 79, dynamic_int8 as fp32, int8 56, int8_uint8 51).
    for mode, floor in {"fp16": 50.0, "dynamic_int8": 35.0, "int8": 22.0}.items():
        for variant in (mode, mode + "_uint8"):
            psnr = parity[f"tflite/{variant}"]["psnr_db"]
            assert psnr is None or psnr > floor, (variant, psnr)
    for variant, info in report.tflite["a2b"].items():
        assert set(tflite_ops((tmp_path / "out" / info["path"]).read_bytes())) <= EXPECTED_OPS, variant
    # The .cube comes by default for a colour generator, with its parity (reported, not bounded).
    assert report.cubes["a2b"]["path"] == "cube/cyclegan_a2b.cube"
    assert (tmp_path / "out" / "cube" / "cyclegan_a2b.cube").is_file()
    assert parity["cube"]["max_abs"] <= 2 * LUT_TOLERANCE  # on [-1, 1]


def test_cli_export_writes_the_cubes_of_both_directions(tmp_path, colour_cyclegan, photo):
    path, model = colour_cyclegan
    out = tmp_path / "out"
    assert cli.main(["export", "--model", str(path), "--out", str(out), "--format", "cube"]) == cli.EXIT_OK
    assert sorted(p.name for p in (out / "cube").iterdir()) == ["cyclegan_a2b.cube", "cyclegan_b2a.cube"]
    assert not (out / "tflite").exists() and not (out / "cyclegan_a2b").exists()
    for direction, generator in (("a2b", model.G), ("b2a", model.F)):
        table = cube.read_cube(out / "cube" / f"cyclegan_{direction}.cube")
        pixels = photo[1]
        looked = trilinear(table, pixels.reshape(-1, 3) / 255)
        assert np.abs(looked - model_colours(generator, pixels).reshape(-1, 3)).max() <= LUT_TOLERANCE
    # Asked again, the files are kept unless --overwrite.
    assert cli.main(["export", "--model", str(path), "--out", str(out), "--format", "cube"]) == cli.EXIT_FAILED
    assert cli.main(["export", "--model", str(path), "--out", str(out), "--format", "cube",
                     "--overwrite"]) == cli.EXIT_OK


@pytest.mark.slow
def test_cli_default_export_of_a_colour_model_includes_the_cube(tmp_path, colour_cyclegan):
    path, _ = colour_cyclegan
    out = tmp_path / "out"
    assert cli.main(["export", "--model", str(path), "--out", str(out), "--direction", "a2b",
                     "--tflite-mode", "fp32", "--tflite-io", "float32", "--parity-size", "16x16"]) == cli.EXIT_OK
    assert (out / "cube" / "cyclegan_a2b.cube").is_file()
    assert (out / "tflite" / "cyclegan_a2b_fp32.tflite").is_file()
    assert (out / "cyclegan_a2b" / "1").is_dir()


def test_keras_reload_keeps_the_lut(tmp_path, colour_cyclegan):
    path, model = colour_cyclegan
    loaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_array_equal(cube.sample_lut(loaded.G), cube.sample_lut(model.G))
