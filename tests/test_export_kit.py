"""The deployment kit in export/: TF Serving client and configs, the LiteRT runner.

TF Serving itself cannot run here, so its two APIs are played by small stand-ins
that do what TF Serving does with a request for our SavedModel: decode the REST
JSON (`{"b64": ...}` for inputs whose name ends in `_bytes`) or the gRPC
TensorProto, run the signature, and answer in TF Serving's response format.
"""

import ast
import base64
import concurrent.futures
import http.server
import importlib.util
import io
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from PIL import Image

from tfcyclegan import export, imaging
from tfcyclegan.models import translate_with
from tfcyclegan.networks import ResnetGenerator
from tfcyclegan.synthetic import draw_scene

# End to end: exported models served over REST/gRPC and run by LiteRT. make test-fast skips the file.
pytestmark = pytest.mark.slow

KIT = pathlib.Path(__file__).resolve().parents[1] / "export"
MODEL = "cyclegan_a2b"


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"kit_{name}", KIT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


client = load_script("serving_client")
litert_translate = load_script("litert_translate")


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(0)
    return ResnetGenerator(ngf=4, n_blocks=1, seed=0, name="G")


@pytest.fixture(scope="module")
def models(generator, tmp_path_factory):
    """A SavedModel version folder and .tflite files of `generator`."""
    root = tmp_path_factory.mktemp("kit")
    version = export.export_saved_model(generator, root, MODEL)
    tflite = {}
    for name, uint8_io in (("fp32", False), ("fp32_uint8", True)):
        tflite[name] = root / f"{MODEL}_{name}.tflite"
        tflite[name].write_bytes(export.convert_tflite(generator, uint8_io=uint8_io))
    return version, tflite


@pytest.fixture(scope="module")
def signature(models):
    loaded = tf.saved_model.load(os.fspath(models[0]))
    signature = loaded.signatures["serving_default"]
    signature._loaded = loaded  # keep the variables alive
    return signature


def photos(sizes=((37, 50), (24, 32))):
    rng = np.random.default_rng(0)
    images = []
    for height, width in sizes:
        buffer = io.BytesIO()
        draw_scene(rng, "summer", width, height).save(buffer, "PNG")
        images.append(buffer.getvalue())
    return images


def expected_pngs(generator, images):
    """What the model should answer: the decoded translation of each image."""
    results = []
    for data in images:
        pixels = tf.io.decode_image(data, channels=3).numpy()
        translated = translate_with(generator, pixels[None] / 127.5 - 1.0)[0]
        results.append(np.clip(np.round((translated + 1) * 127.5), 0, 255).astype(np.uint8))
    return results


def assert_pngs_match(pngs, expected):
    assert len(pngs) == len(expected)
    for png, pixels in zip(pngs, expected):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        decoded = tf.io.decode_png(png).numpy()
        assert decoded.shape == pixels.shape
        assert np.abs(decoded.astype(int) - pixels).max() <= 1


# --- TF Serving stand-ins ---------------------------------------------------------


def _decode_b64(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, dict):  # {"image_bytes": {"b64": ...}}
        return _decode_b64(value[client.INPUT])
    raise ValueError(f"not a binary value: {value!r}")


def rest_predict(signature, body):
    """TF Serving's REST predict for a single-input, single-output signature."""
    if "instances" in body:
        values, row_format = [_decode_b64(v) for v in body["instances"]], True
    else:
        inputs = body["inputs"]
        inputs = inputs[client.INPUT] if isinstance(inputs, dict) else inputs
        values, row_format = [_decode_b64(v) for v in inputs], False
    outputs = signature(image_bytes=tf.constant(values))[client.OUTPUT].numpy()
    # One named output: TF Serving omits its name and lists the values.
    encoded = [{"b64": base64.b64encode(o).decode()} for o in outputs]
    return {"predictions": encoded} if row_format else {"outputs": encoded}


@pytest.mark.parametrize("row_format", [True, False])
def test_rest_round_trip(signature, generator, row_format):
    images = photos()
    body = client.build_rest_request(images, row_format=row_format)
    wire = json.loads(json.dumps(body))  # what travels
    assert wire["signature_name"] == "serving_default"
    answer = json.dumps(rest_predict(signature, wire))
    assert_pngs_match(client.parse_rest_response(answer), expected_pngs(generator, images))


def test_rest_response_with_named_outputs():
    png = b"\x89PNG fake"
    encoded = {"b64": base64.b64encode(png).decode()}
    assert client.parse_rest_response({"predictions": [{"output_bytes": encoded}]}) == [png]
    assert client.parse_rest_response({"outputs": {"output_bytes": [encoded]}}) == [png]
    with pytest.raises(client.ServingError, match="Unknown image"):
        client.parse_rest_response({"error": "Unknown image file format"})


def test_grpc_round_trip(signature, generator):
    from tensorflow_serving.apis import predict_pb2

    images = photos()
    request = client.build_predict_request(images, MODEL, version=1)
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert (request.model_spec.name, request.model_spec.signature_name) == (
        MODEL,
        "serving_default",
    )
    assert request.model_spec.version.value == 1
    values = tf.make_ndarray(request.inputs[client.INPUT])
    outputs = signature(image_bytes=tf.constant(values))[client.OUTPUT]
    response = predict_pb2.PredictResponse()
    response.outputs[client.OUTPUT].CopyFrom(tf.make_tensor_proto(outputs))
    response = predict_pb2.PredictResponse.FromString(response.SerializeToString())
    assert_pngs_match(client.parse_predict_response(response), expected_pngs(generator, images))


class _RestHandler(http.server.BaseHTTPRequestHandler):
    signature = None

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == f"/v1/models/{MODEL}:predict", self.path
        try:
            status, answer = 200, rest_predict(self.signature, body)
        except tf.errors.InvalidArgumentError as error:
            status, answer = 400, {"error": error.message}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def rest_server(signature):
    handler = type("Handler", (_RestHandler,), {"signature": signature})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_client_cli_over_rest(rest_server, generator, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    images = photos()
    for i, data in enumerate(images):
        (inputs / f"photo{i}.png").write_bytes(data)
    out = tmp_path / "out"
    assert (
        client.main(
            [os.fspath(inputs), "--url", rest_server, "--out", os.fspath(out), "--batch", "1"]
        )
        == 0
    )
    pngs = [(out / f"photo{i}_{MODEL}.png").read_bytes() for i in range(len(images))]
    assert_pngs_match(pngs, expected_pngs(generator, images))


def test_client_cli_reports_server_errors(rest_server, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a PNG at all")
    assert client.main([os.fspath(bad), "--url", rest_server, "--out", os.fspath(tmp_path)]) == 1
    assert "HTTP 400" in capsys.readouterr().err


def test_client_cli_over_grpc(signature, generator, tmp_path):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (the proto's name)
            values = tf.make_ndarray(request.inputs[client.INPUT])
            response = predict_pb2.PredictResponse()
            outputs = signature(image_bytes=tf.constant(values))[client.OUTPUT]
            response.outputs[client.OUTPUT].CopyFrom(tf.make_tensor_proto(outputs))
            return response

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        image = tmp_path / "photo.png"
        image.write_bytes(photos()[0])
        out = tmp_path / "out"
        assert (
            client.main([os.fspath(image), "--grpc", f"127.0.0.1:{port}", "--out", os.fspath(out)])
            == 0
        )
        assert_pngs_match(
            [(out / f"photo_{MODEL}.png").read_bytes()], expected_pngs(generator, photos()[:1])
        )
    finally:
        server.stop(None)


def test_client_cli_missing_input(tmp_path, capsys):
    assert client.main([os.fspath(tmp_path / "nope.jpg")]) == 2
    assert "No such file or folder" in capsys.readouterr().err


# --- configs ---------------------------------------------------------------------


def test_models_config_template_and_generated_config_parse(models):
    from tensorflow_serving.config import model_server_config_pb2

    generated = export.serving_config(["cyclegan_a2b", "cyclegan_b2a"])
    for text in ((KIT / "serving" / "models.config").read_text(), generated):
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
        entries = config.model_config_list.config
        assert [c.name for c in entries] == ["cyclegan_a2b", "cyclegan_b2a"]
        assert all(
            c.base_path == f"/models/{c.name}" and c.model_platform == "tensorflow" for c in entries
        )


def test_batching_parameters_template():
    # TF Serving's BatchingParameters proto is not in tensorflow-serving-api;
    # check the text-format fields by hand.
    known = {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"}
    lines = [
        line
        for line in (KIT / "serving" / "batching_parameters.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    fields = {}
    for line in lines:
        name, value = line.split("{")
        fields[name.strip()] = int(value.replace("value:", "").replace("}", ""))
    assert set(fields) == known and all(v > 0 for v in fields.values())


def test_kit_scripts_do_not_import_tfcyclegan():
    for name in ("serving_client", "litert_translate"):
        tree = ast.parse((KIT / f"{name}.py").read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert "tfcyclegan" not in imported, name
    assert "tensorflow" not in imported  # litert_translate: LiteRT, numpy, Pillow only


# --- LiteRT runner without TensorFlow ---------------------------------------------

NO_TENSORFLOW = textwrap.dedent("""
    import runpy, sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "tfcyclegan", "keras"):
                raise ImportError("blocked for this test: " + name)

    sys.meta_path.insert(0, Block())
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit:
        assert not {"tensorflow", "tfcyclegan", "keras"} & set(sys.modules), "imported"
        raise
    """)


@pytest.mark.parametrize("variant", ["fp32_uint8", "fp32"])
def test_litert_runner_without_tensorflow(models, generator, tmp_path, variant):
    inputs = tmp_path / "in"
    inputs.mkdir()
    images = photos(((37, 50), (24, 32), (6, 7)))
    for i, data in enumerate(images):
        (inputs / f"photo{i}.png").write_bytes(data)
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_TENSORFLOW,
            os.fspath(KIT / "litert_translate.py"),
            os.fspath(models[1][variant]),
            os.fspath(inputs),
            "--out",
            os.fspath(out),
            "--threads",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    expected = expected_pngs(generator, images)
    for i, pixels in enumerate(expected):
        result = np.asarray(Image.open(out / f"photo{i}.png"))
        assert result.shape == pixels.shape
        assert np.abs(result.astype(int) - pixels).max() <= 1


def test_litert_runner_pads_like_the_library():
    image = np.arange(5 * 7 * 1).reshape(5, 7, 1)
    padded = litert_translate.pad_reflect(image, 4, 8)
    assert padded.shape == (8, 8, 1)
    for height, width in ((5, 7), (37, 50), (1, 9), (12, 12), (10, 5)):
        image = np.random.default_rng(height).random((1, height, width, 3))
        reference, _ = imaging.pad_to_multiple(tf.constant(image), 4, 8)
        np.testing.assert_array_equal(litert_translate.pad_reflect(image[0], 4, 8), reference.numpy()[0])


def test_plain_litert_example_runs_at_the_default_size(models, generator):
    """README's LiteRT example, no resizing: the file stores 256 x 256, the default size."""
    from ai_edge_litert.interpreter import Interpreter

    assert litert_translate.read_metadata(models[1]["fp32"].read_bytes())["default_input_size"] == [
        256,
        256,
    ]
    interpreter = Interpreter(model_path=os.fspath(models[1]["fp32"]), num_threads=2)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    images = np.random.default_rng(0).uniform(-1, 1, detail["shape"]).astype(np.float32)
    interpreter.set_tensor(detail["index"], images)
    interpreter.invoke()
    output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(output, generator(images).numpy(), atol=export.FLOAT_TOLERANCE)


def test_litert_runner_refuses_a_truncated_file(models, tmp_path, capsys):
    path = tmp_path / "cut.tflite"
    path.write_bytes(models[1]["fp32"].read_bytes()[:300])
    image = tmp_path / "photo.png"
    image.write_bytes(photos()[0])
    assert litert_translate.main([os.fspath(path), os.fspath(image), "--out", os.fspath(tmp_path)]) == 2
    assert f"error: {path} is a truncated or corrupt TFLite model" in capsys.readouterr().err


def test_litert_runner_reads_the_metadata(models):
    translator = litert_translate.LiteRTTranslator(models[1]["fp32_uint8"], num_threads=1)
    assert (translator.multiple, translator.min_size, translator.uint8, translator.channels) == (
        4,
        8,
        True,
        3,
    )
    metadata = litert_translate.read_metadata(models[1]["fp32"].read_bytes())
    assert metadata == export.read_tflite_metadata(models[1]["fp32"].read_bytes())
