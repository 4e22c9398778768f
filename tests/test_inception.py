"""The FID Inception network: ours against pytorch-fid's, its weights and config.

The reference is pytorch-fid's own `InceptionV3`, installed by the test
extra. The network is compared with the same random, seeded state_dict loaded
into both, since the real weights are a download. Everything runs offline;
tests that need a reference skip when it is not installed.
"""

import sys
import unittest.mock

import keras
import numpy as np
import pytest

from tfcyclegan import inception
from tfcyclegan.inception import (
    FID_WEIGHTS_URL,
    FIDInceptionV3,
    fid_weights_path,
    load_fid_inception,
    load_fid_weights,
)
from tfcyclegan.state_dict import write_state_dict

# float32 through 94 convolutions in two frameworks: measured at most 1.3e-5
# on features of mean 1.5 and max 18. A wrong pooling branch, batch-norm eps
# or antialiased resize moves them by 0.05 to 5.
FEATURE_ATOL = 1e-4

# --- The references -------------------------------------------------------------


def _import_torchvision():
    """torchvision beside the CPU build of torch in the test environment.

    PyPI's torchvision for torch 2.13.0 (0.28.0) is a CUDA build: its `_C.so`
    links libtorch_cuda.so, which the CPU torch has not, so its C++ ops do not
    load and `import torchvision` then fails ("operator torchvision::nms does
    not exist") while registering fake kernels for two of them. pytorch-fid
    needs only torchvision's Python modules, so we define those two op
    schemas (never called) and import again. With a torchvision whose ops
    load, nothing is changed.
    """
    torch = pytest.importorskip("torch")
    try:
        import torchvision
    except ImportError:
        pytest.skip("torchvision is not installed")
    except RuntimeError as err:
        if "torchvision::nms does not exist" not in str(err):
            raise
        for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        library = torch.library.Library("torchvision", "FRAGMENT")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _import_torchvision.library = library  # the definitions live as long as this does
        import torchvision
    return torchvision


def pytorch_fid(module):
    _import_torchvision()
    return pytest.importorskip(f"pytorch_fid.{module}")


def _random_fid_state_dict(torchvision, rng):
    """pytorch-fid's keys and shapes (its file is torchvision's Inception3 with
    1008 classes and no auxiliary head) with seeded random values."""
    template = torchvision.models.inception_v3(
        weights=None, aux_logits=False, num_classes=1008, init_weights=False
    ).state_dict()
    state_dict = {}
    for key, value in template.items():
        shape = tuple(value.shape)
        if key.endswith("num_batches_tracked"):
            array = value.numpy()
        elif key.endswith("conv.weight") or key == "fc.weight":
            fan_in = int(np.prod(shape[1:]))
            array = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)  # He: keeps the scale
        elif key.endswith("bn.weight"):
            array = rng.uniform(0.5, 1.5, shape)
        elif key.endswith(("bn.bias", "fc.bias")):
            array = rng.normal(0.0, 0.2, shape)
        elif key.endswith("running_mean"):
            array = rng.normal(0.0, 0.1, shape)
        else:  # running_var near 1: small variances would amplify rounding
            array = rng.uniform(0.8, 1.2, shape)
        state_dict[key] = np.asarray(array, dtype=value.numpy().dtype)
    return state_dict


@pytest.fixture(scope="module")
def reference():
    """pytorch-fid's InceptionV3([3], resize_input=True, normalize_input=True)
    with a random state_dict, and that state_dict (the file's keys)."""
    torchvision = _import_torchvision()
    torch = pytest.importorskip("torch")
    pytorch_inception = pytorch_fid("inception")
    weights = _random_fid_state_dict(torchvision, np.random.default_rng(20151205))
    # pytorch-fid downloads its weights while building: hand it ours instead.
    with unittest.mock.patch.object(
        pytorch_inception,
        "load_state_dict_from_url",
        return_value={key: torch.from_numpy(value) for key, value in weights.items()},
    ):
        net = pytorch_inception.InceptionV3([3], resize_input=True, normalize_input=True)
    return net.eval(), weights


@pytest.fixture(scope="module")
def model(reference):
    _, weights = reference
    return load_fid_weights(FIDInceptionV3(), weights)


def _torch_features(net, images01):
    import torch

    # One thread: beside TensorFlow's pool on two shared cores, torch's
    # two-thread first call takes seconds (one thread: 0.3 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            (pool3,) = net(torch.from_numpy(images01.transpose(0, 3, 1, 2).copy()))
    finally:
        torch.set_num_threads(threads)
    return pool3.reshape(len(images01), -1).numpy()


# --- The network against pytorch-fid's ------------------------------------------


@pytest.mark.parametrize(
    "size", [(64, 64), (256, 256), (341, 320)], ids=["up64", "up256", "down341x320"]
)
def test_features_match_pytorch_fid(reference, model, size):
    net, _ = reference
    images01 = np.random.default_rng(1).uniform(0.0, 1.0, (2, *size, 3)).astype(np.float32)
    expected = _torch_features(net, images01)
    ours = np.asarray(model.predict_on_batch(images01 * 2.0 - 1.0))
    assert ours.shape == expected.shape == (2, 2048)
    assert 0.5 < np.abs(expected).mean() < 10  # features neither vanish nor blow up
    np.testing.assert_allclose(ours, expected, rtol=0, atol=FEATURE_ATOL)


@pytest.mark.slow
def test_unit_range_inputs_as_pytorch_fid_takes_them(reference, model):
    net, _ = reference
    unit = FIDInceptionV3(input_range=(0, 1))
    unit.set_weights(model.get_weights())
    images01 = np.random.default_rng(2).uniform(0.0, 1.0, (2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(unit.predict_on_batch(images01)),
        _torch_features(net, images01),
        rtol=0,
        atol=FEATURE_ATOL,
    )


# --- Weights: files, strictness, download ---------------------------------------


@pytest.fixture(scope="module")
def blank():
    return FIDInceptionV3()


def _assert_same_weights(network, model):
    for ours, theirs in zip(network.weights, model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".pth", ".legacy.pth", ".safetensors"])
def test_weights_load_from_every_file_format(reference, model, blank, tmp_path, suffix):
    _, weights = reference
    path = tmp_path / f"pt_inception{suffix}"
    if suffix == ".legacy.pth":  # the pre-1.6 format of files as old as pytorch-fid's
        torch = pytest.importorskip("torch")
        torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, path,
                   _use_new_zipfile_serialization=False)
    elif suffix == ".pth":
        pytest.importorskip("torch")
        write_state_dict(weights, path)
    else:  # without the integer num_batches_tracked buffers, like a converted file
        write_state_dict(
            {k: v for k, v in weights.items() if not k.endswith("num_batches_tracked")}, path
        )
    for variable in blank.weights:
        variable.assign(np.zeros(variable.shape, np.float32))
    assert load_fid_weights(blank, path) is blank
    _assert_same_weights(blank, model)


@pytest.mark.slow
def test_load_fid_inception_from_a_file(reference, model, tmp_path):
    _, weights = reference
    path = write_state_dict(weights, tmp_path / "pt_inception.npz")
    _assert_same_weights(load_fid_inception(weights=path), model)


@pytest.mark.slow
def test_a_bad_state_dict_is_refused_listing_keys(reference, model):
    _, weights = reference
    bad = dict(weights)
    del bad["Mixed_6b.branch7x7_2.conv.weight"]
    bad["Mixed_6b.extra.weight"] = np.zeros(3, np.float32)
    bad["Conv2d_1a_3x3.conv.weight"] = np.zeros((32, 3, 5, 5), np.float32)
    bad["fc.weight"] = np.zeros((1000, 2048), np.float32)
    before = [np.asarray(w).copy() for w in model.weights[:2]]
    with pytest.raises(ValueError) as info:
        load_fid_weights(model, bad)
    message = str(info.value)
    assert "missing keys (1): Mixed_6b.branch7x7_2.conv.weight" in message
    assert "unexpected keys (1): Mixed_6b.extra.weight" in message
    assert "Conv2d_1a_3x3.conv.weight: got shape (32, 3, 5, 5), expected (32, 3, 3, 3)" in message
    assert "fc.weight: got shape (1000, 2048), expected (1008, 2048)" in message
    for old, new in zip(before, model.weights[:2]):  # all or nothing
        np.testing.assert_array_equal(old, np.asarray(new))


@pytest.mark.slow
def test_torchvisions_imagenet_inception_is_not_the_fid_network(model):
    torchvision = _import_torchvision()
    imagenet = torchvision.models.inception_v3(weights=None, init_weights=False).state_dict()
    with pytest.raises(ValueError, match="(?s)unexpected keys.*AuxLogits.*torchvision's ImageNet"):
        load_fid_weights(model, {k: v.numpy() for k, v in imagenet.items()})


def test_load_fid_weights_needs_the_fid_network():
    with pytest.raises(TypeError, match="needs a FIDInceptionV3. Received: Sequential"):
        load_fid_weights(keras.Sequential(), {})


def test_offline_download_error_names_the_url_and_the_flag(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception(f"URL fetch failure on {kwargs.get('origin')}: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(OSError) as info:
        fid_weights_path()
    assert FID_WEIGHTS_URL in str(info.value)
    assert "--fid-weights" in str(info.value)


def test_weights_come_from_the_keras_cache(monkeypatch, tmp_path):
    cached = tmp_path / inception.FID_WEIGHTS_FILE
    calls = []

    def get_file(**kwargs):
        calls.append(kwargs)
        return str(cached)

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    assert fid_weights_path() == cached
    assert calls == [{"fname": inception.FID_WEIGHTS_FILE, "origin": FID_WEIGHTS_URL,
                      "cache_subdir": "models"}]


def test_a_missing_weights_file_names_the_flag(tmp_path):
    with pytest.raises(FileNotFoundError, match="No FID Inception weights file at .*--fid-weights"):
        fid_weights_path(tmp_path / "nowhere.pth")


# --- The model's config ----------------------------------------------------------


def test_config_round_trip_and_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    net = FIDInceptionV3(input_range=(0, 255), resize_input=False, name="fid")
    assert net.get_config() == {
        "name": "fid", "trainable": True, "resize_input": False, "input_range": [0.0, 255.0]
    }
    assert {layer.dtype_policy.compute_dtype for layer in net.layers[1:]} == {"float32"}
    again = FIDInceptionV3.from_config(net.get_config())
    assert again.get_config() == net.get_config()
    assert [layer.name for layer in again.layers] == [layer.name for layer in net.layers]


@pytest.mark.slow
def test_keras_file_round_trip(model, tmp_path):
    path = tmp_path / "fid_inception.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, FIDInceptionV3)
    images = np.random.default_rng(4).uniform(-1.0, 1.0, (1, 80, 80, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(loaded(images, training=False)), np.asarray(model(images, training=False))
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_range": (1, -1)}, r"low < high.*Received: input_range=\(1, -1\)"),
        ({"input_range": 1}, "Received: input_range=1"),
        ({"resize_input": "yes"}, "Received: resize_input='yes'"),
        ({"dtype": "mixed_float16"}, "always computes in float32.*Received: dtype='mixed_float16'"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FIDInceptionV3(**kwargs)
