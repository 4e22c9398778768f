"""tfcyclegan.export.onnx: every generator family as an .onnx file, run in onnxruntime.

Each family is converted once (ngf 4, weights moved off their initialization so that a
zero-initialized head does not make the output trivially the input) and run at two sizes
and two batch sizes against Keras, within the export's `FLOAT_TOLERANCE`.
"""

import json
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcyclegan import cli, export
from tfcyclegan.config import ModelConfig
from tfcyclegan.export.loading import keras_file
from tfcyclegan.export.onnx import ONNX_OPSET, convert_onnx
from tfcyclegan.export.parity import FLOAT_TOLERANCE, parity_images, second_size
from tfcyclegan.export.runtime import OnnxRunner
from tfcyclegan.models import CycleGAN, translate_with
from tfcyclegan.networks import build_generator, size_requirement
from tfcyclegan.version import __version__

onnx = pytest.importorskip("onnx", reason="the onnx extra: pip install 'tfcyclegan[onnx]'")

# Every generator family and option that changes the graph: ResNet upsampling (transposed,
# resize-conv, CUT's anti-aliased), the global skip with the colour branch, the U-Nets (one
# with batch norm, run in inference mode), a distilled student, the per-pixel colour network.
FAMILIES = {
    "resnet_transpose": dict(generator="resnet_2blocks"),
    "resnet_resize_conv": dict(generator="resnet_2blocks", upsample="resize_conv"),
    "resnet_antialias": dict(generator="resnet_2blocks", upsample="antialias"),
    "resnet_skip_color": dict(generator="resnet_2blocks", global_skip=True, color_branch=True),
    "unet_128_batch_norm": dict(generator="unet_128", norm="batch"),
    "unet_256": dict(generator="unet_256"),
    "mobile_resnet": dict(generator="mobile_resnet_2blocks"),
    "color": dict(generator="color"),
}


def moved_generator(seed=0, **config):
    """A tiny generator (ngf 4) whose trainable weights are moved off their initialization."""
    generator = build_generator(ModelConfig(ngf=4, **config), 3, 3, seed=seed)
    rng = np.random.default_rng(seed)
    for weight in generator.trainable_weights:
        weight.assign(weight + rng.normal(0.0, 0.1, weight.shape).astype("float32"))
    return generator


def tiny_cyclegan_file(folder):
    """A .keras CycleGAN of ngf-4 ResNets, built by one step of fit."""
    model = CycleGAN.from_model_config(
        ModelConfig(generator="resnet_1blocks", ngf=4, ndf=4, discriminator="n_layers", n_layers_d=1),
        pool_size=2, seed=0,
    )
    model.compile()
    images = np.zeros((2, 16, 16, 3), np.float32)
    model.fit(tf.data.Dataset.from_tensor_slices((images, images)).batch(2), verbose=0)
    path = folder / "tiny.keras"
    model.save(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_generator_family_runs_in_onnxruntime_at_two_sizes(family):
    generator = moved_generator(**FAMILIES[family])
    runner = OnnxRunner(convert_onnx(generator, direction="a2b", method="cyclegan"))
    multiple, min_size = size_requirement(generator)
    first = (min_size, min_size + multiple)
    sizes = {first: 2, second_size(first, multiple, min_size): 1}  # size -> batch: both dynamic
    assert len(set(sizes)) == 2
    for size, batch in sizes.items():
        images = parity_images(3, size, batch)
        outputs = runner(images)
        reference = keras.ops.convert_to_numpy(generator(images, training=False))
        assert outputs.shape == images.shape
        assert np.abs(outputs - reference).max() <= FLOAT_TOLERANCE, (family, size)
        assert np.abs(reference - images).max() > 0.01  # not trivially the identity


@pytest.mark.slow
def test_the_speed_forms_stay_out_of_the_file(monkeypatch):
    """Where TensorFlow would run Winograd tiles and the fused norm, the file holds the plain
    graph: one Conv per convolution, no MatMul (the tiles), no BatchNormalization (the norm)."""
    from collections import Counter

    from tfcyclegan.kernels import cpu, winograd
    from tfcyclegan.networks import ResnetGenerator

    monkeypatch.setattr(winograd, "MIN_PIXELS", 0)  # tiles on tiny images too
    monkeypatch.setattr(cpu, "eigen_convolutions", lambda: False)  # oneDNN's choices: the fused norm
    # ngf 64: residual convolutions of 256 channels, where the tiles apply (tests/test_kernels.py).
    generator = ResnetGenerator(ngf=64, n_blocks=1, seed=0)
    ops = Counter(node.op_type for node in onnx.load_from_string(convert_onnx(generator)).graph.node)
    assert ops["Conv"] == 6 and ops["ConvTranspose"] == 2  # 7x7, 2 down, 2 in the block, 7x7 out
    assert not {"MatMul", "BatchNormalization"} & set(ops), ops


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    """(path of a converted tiny ResNet, its generator)."""
    generator = moved_generator(generator="resnet_1blocks")
    path = tmp_path_factory.mktemp("onnx") / "g.onnx"
    path.write_bytes(convert_onnx(generator, direction="b2a", method="pix2pix"))
    return path, generator


@pytest.mark.slow
def test_the_file_states_its_opset_names_dimensions_and_metadata(onnx_file):
    path, generator = onnx_file
    model = onnx.load(path)
    assert [(o.domain, o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")] == [
        ("", ONNX_OPSET)
    ]
    for value, name in ((model.graph.input[0], "images"), (model.graph.output[0], "output_images")):
        assert value.name == name
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == ["batch", "height", "width", 3]
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    multiple, min_size = size_requirement(generator)
    assert metadata["size_multiple"] == str(multiple) and metadata["min_size"] == str(min_size)
    assert metadata["direction"] == "b2a" and metadata["method"] == "pix2pix"
    assert metadata["opset"] == str(ONNX_OPSET) and metadata["tfcyclegan_version"] == __version__
    assert json.loads(metadata["range"]) == [-1.0, 1.0] and metadata["layout"] == "NHWC"
    # What onnxruntime shows a user of the file.
    assert OnnxRunner(path.read_bytes()).metadata == metadata


@pytest.mark.slow
def test_load_translator_pads_and_crops_any_size(onnx_file):
    path, generator = onnx_file
    translator = export.load_translator(path, num_threads=1)
    assert translator.kind == "onnx"
    images = parity_images(3, (13, 22), 3)  # not multiples of 4: padded, run, cropped
    outputs = translator(images)
    assert outputs.shape == images.shape
    assert np.abs(outputs - translate_with(generator, images)).max() <= FLOAT_TOLERANCE


@pytest.mark.slow
def test_cli_export_writes_the_file_the_report_names_with_parity(tmp_path):
    model = tiny_cyclegan_file(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["export", "--model", str(model), "--out", str(out), "--format", "onnx",
                     "--parity-size", "32x32"]) == cli.EXIT_OK
    report = json.loads((out / "export_report.json").read_text())
    assert not (out / "tflite").exists() and not (out / "cyclegan_a2b").exists()
    for direction in ("a2b", "b2a"):
        entry = report["onnx"][direction]
        assert entry["path"] == f"onnx/cyclegan_{direction}.onnx"
        assert (out / entry["path"]).stat().st_size == entry["bytes"]
        assert entry["opset"] == ONNX_OPSET
        assert entry["metadata"]["method"] == "cyclegan" and entry["metadata"]["direction"] == direction
        parity = report["parity"][direction]
        # The parity size and a second one (dynamic height and width), each bounded and timed.
        assert sorted(parity) == ["onnx/28x24", "onnx/32x32"]
        for check in parity.values():
            assert check["ok"] and check["bound"] == FLOAT_TOLERANCE and check["ms_per_image"] > 0

    translated = tmp_path / "translated"
    source = tmp_path / "in"
    source.mkdir()
    Image.fromarray(np.full((20, 28, 3), 90, np.uint8)).save(source / "flat.png")
    assert cli.main(["translate", "--model", str(out / "onnx" / "cyclegan_a2b.onnx"),
                     "--input", str(source), "--out", str(translated)]) == cli.EXIT_OK
    assert Image.open(translated / "flat.png").size == (28, 20)

    # Asked again, the files are kept unless --overwrite.
    argv = ["export", "--model", str(model), "--out", str(out), "--format", "onnx", "--direction", "a2b",
            "--no-parity"]
    assert cli.main(argv) == cli.EXIT_FAILED
    assert cli.main([*argv, "--overwrite"]) == cli.EXIT_OK


@pytest.mark.parametrize("missing", ["tf2onnx", "onnx", "onnxruntime"])
def test_export_without_the_onnx_extra_says_how_to_install_it(tmp_path, monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` raises ImportError
    generator = build_generator(ModelConfig(generator="resnet_1blocks", ngf=4), 3, 3, seed=0)
    with pytest.raises(ImportError, match=rf"needs {missing}, .*pip install 'tfcyclegan\[onnx\]'"):
        export.export(generator, tmp_path / "out", formats=("onnx",), verbose=False)
    assert not (tmp_path / "out").exists()  # refused before any work


def test_running_an_onnx_file_without_onnxruntime_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    path = tmp_path / "g.onnx"
    path.write_bytes(b"not read: onnxruntime is asked for first")
    with pytest.raises(ImportError, match=r"Running \.onnx files needs onnxruntime, .*tfcyclegan\[onnx\]"):
        export.load_translator(path)


def test_an_onnx_file_of_another_model_is_refused(tmp_path):
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "other",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "other.onnx"
    # IR version 8 (opset 17's): onnx's default is newer than onnxruntime 1.31 reads.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    with pytest.raises(ValueError, match=f"{path} is not a tfcyclegan generator: its metadata_props"):
        export.load_translator(path)


@pytest.mark.slow
def test_a_truncated_onnx_file_is_refused(onnx_file, tmp_path):
    path = tmp_path / "truncated.onnx"
    path.write_bytes(onnx_file[0].read_bytes()[:1000])
    with pytest.raises(ValueError, match=f"{path} cannot be loaded by onnxruntime"):
        export.load_translator(path)


def test_an_onnx_file_is_not_exported_again(tmp_path):
    path = tmp_path / "g.onnx"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="is an ONNX file: it is already exported"):
        keras_file(path)
