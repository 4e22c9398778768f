"""Files that are not what `load_translator` / `export` expect: one clear error each.

Each message says what is wrong and names the file (a .keras file of another kind: the model).

Serving-side errors (bytes that are not an image, images above max_pixels,
requests above max_batch_size) are in test_export.py beside the signatures.
"""

import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcyclegan import export
from tfcyclegan.networks import ResnetGenerator


@pytest.fixture(scope="module")
def tflite_bytes():
    keras.utils.set_random_seed(0)
    return export.convert_tflite(ResnetGenerator(ngf=4, n_blocks=1, seed=0))


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    """A Keras model that is not a tfcyclegan one, as .keras and as .tflite."""
    root = tmp_path_factory.mktemp("other")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="classifier")
    model.save(root / "classifier.keras")
    function = tf.function(lambda x: model(x), input_signature=[tf.TensorSpec([1, 4])])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], model
    )
    (root / "classifier.tflite").write_bytes(converter.convert())
    return root


def test_tflite_of_another_model(other_model):
    path = other_model / "classifier.tflite"
    message = f"{path} is not a tfcyclegan generator: it has no 'tfcyclegan' metadata"
    with pytest.raises(ValueError, match=re.escape(message)):
        export.load_translator(path)


@pytest.mark.parametrize(
    "cut, message",
    [
        (lambda data: data[: len(data) // 2], "is a truncated or corrupt TFLite model"),
        (lambda data: data[:200], "is a truncated or corrupt TFLite model"),
        (lambda data: b"", r"is not a TFLite model \(no 'TFL3' identifier\)"),
        (lambda data: b"PK\x03\x04 a zip, say" * 8, r"is not a TFLite model"),
    ],
)
def test_truncated_or_corrupt_tflite(tflite_bytes, tmp_path, cut, message):
    path = tmp_path / "model.tflite"
    path.write_bytes(cut(tflite_bytes))
    with pytest.raises(ValueError, match=re.escape(str(path)) + " " + message):
        export.load_translator(path)


def test_intact_tflite_still_loads(tflite_bytes, tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(tflite_bytes)
    assert export.load_translator(path)(np.zeros((5, 7, 3), np.float32)).shape == (5, 7, 3)


@pytest.mark.slow
def test_keras_file_of_another_model(other_model):
    message = r"Sequential 'classifier' is not a tfcyclegan .*'size_check' layer"
    with pytest.raises(ValueError, match=message):
        export.load_translator(other_model / "classifier.keras")
    with pytest.raises(ValueError, match="is not a tfcyclegan"):
        export.export(other_model / "classifier.keras", other_model / "out", verbose=False)


def test_truncated_keras_file(other_model, tmp_path):
    data = (other_model / "classifier.keras").read_bytes()
    path = tmp_path / "cut.keras"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(f"Cannot load {path} as a Keras model")):
        export.load_translator(path)


def test_unreadable_export_report(tmp_path):
    (tmp_path / "export_report.json").write_text('{"saved_models": ')
    with pytest.raises(ValueError, match=re.escape(f"Cannot read {tmp_path / 'export_report.json'}")):
        export.load_translator(tmp_path)


def test_export_folder_without_the_direction(tmp_path):
    (tmp_path / "export_report.json").write_text('{"saved_models": {"a2b": "cyclegan_a2b/1"}}')
    with pytest.raises(ValueError, match=r"has no SavedModel for direction 'b2a' \(it has: \['a2b'\]\)"):
        export.load_translator(tmp_path, direction="b2a")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"No model at {tmp_path / 'gone.tflite'}")):
        export.load_translator(tmp_path / "gone.tflite")
    assert not os.path.exists(tmp_path / "gone.tflite")
