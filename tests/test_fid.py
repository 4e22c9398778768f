"""FID / KID: our Keras Inception, Fréchet distance and KID against the references.

The references are the packages themselves, installed by the test extra:
pytorch-fid (its `InceptionV3` and `calculate_frechet_distance`) and
clean-fid (its KID, `kernel_distance`); torch-fidelity's KID, whose seeded
subsets we reproduce, is written out below (the package itself installs a
top-level `tests` package that shadows ours). The network is compared with
the same random, seeded state_dict loaded into both, since the real weights
are a download. Everything runs offline; tests that need a reference skip
when it is not installed.
"""

import sys
import unittest.mock
import warnings

import keras
import numpy as np
import pytest

from tfcyclegan import fid
from tfcyclegan.fid import (
    FID_WEIGHTS_URL,
    FIDInceptionV3,
    compute_features,
    feature_statistics,
    fid_weights_path,
    frechet_distance,
    frechet_inception_distance,
    kernel_inception_distance,
    load_fid_inception,
    load_fid_weights,
)
from tfcyclegan.torch_import import write_state_dict

# float32 through 94 convolutions in two frameworks: measured at most 1.3e-5
# on features of mean 1.5 and max 18. A wrong pooling branch, batch-norm eps
# or antialiased resize moves them by 0.05 to 5.
FEATURE_ATOL = 1e-4
# pytorch-fid's scipy sqrtm against our eigen-decomposition: measured 1e-8
# relative on singular products (fewer images than dimensions), 1e-15 otherwise.
FID_RTOL = 1e-6


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
    inception = pytorch_fid("inception")
    weights = _random_fid_state_dict(torchvision, np.random.default_rng(20151205))
    # pytorch-fid downloads its weights while building: hand it ours instead.
    with unittest.mock.patch.object(
        inception,
        "load_state_dict_from_url",
        return_value={key: torch.from_numpy(value) for key, value in weights.items()},
    ):
        net = inception.InceptionV3([3], resize_input=True, normalize_input=True)
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_compute_features_over_batches_and_datasets(model):
    import tensorflow as tf

    images = np.random.default_rng(3).uniform(-1.0, 1.0, (3, 64, 64, 3)).astype(np.float32)
    expected = np.asarray(model.predict_on_batch(images))
    from_list = compute_features(model, [images[:2], images[2:]], verbose=0)
    from_dataset = compute_features(
        model, tf.data.Dataset.from_tensor_slices(images).batch(2), verbose=0
    )
    assert from_list.dtype == np.float32
    np.testing.assert_allclose(from_list, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(from_dataset, expected, rtol=0, atol=1e-5)
    pairs = tf.data.Dataset.from_tensor_slices((images, images)).batch(2)
    with pytest.raises(ValueError, match="not tuples"):
        compute_features(model, pairs, verbose=0)
    with pytest.raises(ValueError, match=r"\(batch, height, width, 3\)"):
        compute_features(model, [images[0]], verbose=0)


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
    cached = tmp_path / fid.FID_WEIGHTS_FILE
    calls = []

    def get_file(**kwargs):
        calls.append(kwargs)
        return str(cached)

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    assert fid_weights_path() == cached
    assert calls == [{"fname": fid.FID_WEIGHTS_FILE, "origin": FID_WEIGHTS_URL,
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


# --- FID ---------------------------------------------------------------------------


def _feature_sets(n, dim, seed):
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.1, 2.0, dim)
    # ReLU-like non-negative features, as pool3's, two different distributions.
    return (
        np.abs(rng.normal(size=(n, dim))) * scales,
        np.abs(rng.normal(0.2, 1.0, size=(n + 7, dim))) * scales,
    )


@pytest.mark.parametrize("n, dim", [(400, 32), (50, 128)], ids=["full-rank", "singular"])
def test_frechet_distance_matches_pytorch_fid(n, dim):
    fid_score = pytorch_fid("fid_score")
    features1, features2 = _feature_sets(n, dim, seed=dim)
    mu1, sigma1 = feature_statistics(features1)
    mu2, sigma2 = feature_statistics(features2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's `disp` deprecation and singular-matrix notes
        expected = fid_score.calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    ours = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert ours == pytest.approx(float(expected), rel=FID_RTOL)
    assert frechet_inception_distance(features1, features2) == ours
    # The square roots of the null space's rounding noise: 3e-8 of the trace.
    self_distance = frechet_distance(mu1, sigma1, mu1, sigma1)
    assert self_distance == pytest.approx(0.0, abs=1e-6 * np.trace(sigma1))


def test_frechet_distance_adds_eps_when_the_product_fails(monkeypatch):
    features1, features2 = _feature_sets(100, 8, seed=0)
    stats = (*feature_statistics(features1), *feature_statistics(features2))
    plain = frechet_distance(*stats)
    real = fid._trace_sqrt_product
    offsets = []

    def fails_once(sigma1, sigma2):
        if not offsets:
            offsets.append(None)
            raise np.linalg.LinAlgError("Eigenvalues did not converge")
        offsets.append(sigma1[0, 0] - stats[1][0, 0])
        return real(sigma1, sigma2)

    monkeypatch.setattr(fid, "_trace_sqrt_product", fails_once)
    with pytest.warns(RuntimeWarning, match="adding 1e-06 to their diagonals"):
        with_eps = frechet_distance(*stats)
    assert offsets[1] == pytest.approx(1e-6)
    assert with_eps == pytest.approx(plain, rel=1e-4)


def test_frechet_distance_rejects_what_is_not_a_covariance():
    mu = np.zeros(3)
    with pytest.raises(ValueError, match="different feature dimensions"):
        frechet_distance(mu, np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match=r"mu1 must be \(dim,\) and sigma1 \(dim, dim\)"):
        frechet_distance(mu, np.eye(4), mu, np.eye(3))
    with pytest.raises(ValueError, match="sigma2 is not symmetric"):
        frechet_distance(mu, np.eye(3), mu, np.triu(np.ones((3, 3))))
    with pytest.raises(ValueError, match="positive semi-definite"):
        frechet_distance(mu, np.eye(3), mu, np.diag([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance(mu, np.eye(3), mu + np.nan, np.eye(3))
    with pytest.raises(ValueError, match=r"at least 2 images. Received: shape=\(1, 3\)"):
        feature_statistics(np.ones((1, 3)))


# --- KID -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [60, 30], ids=["subsets", "capped"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kid_matches_clean_fid(n, dtype):
    _import_torchvision()
    cleanfid = pytest.importorskip("cleanfid.fid")
    features1, features2 = (f.astype(dtype) for f in _feature_sets(n, 16, seed=4))
    # clean-fid draws from numpy's global generator, the second set first.
    np.random.seed(7)
    expected = cleanfid.kernel_distance(features1, features2, num_subsets=20, max_subset_size=50)
    ours = kernel_inception_distance(features2, features1, num_subsets=20, subset_size=50, seed=7)
    # clean-fid computes in the features' dtype, we in float64.
    assert ours.mean == pytest.approx(expected, rel=1e-10 if dtype == np.float64 else 1e-5)


def _written_out_kid(features1, features2, num_subsets, subset_size, seed):
    """KID from its definition, one kernel value at a time, with
    torch-fidelity's draws (`kid_features_to_metric`: a RandomState(seed),
    the first set's subset, then the second's) and its mean and std."""
    dim = features1.shape[1]
    m = min(subset_size, len(features1), len(features2))
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(num_subsets):
        x = features1[rng.choice(len(features1), m, replace=False)]
        y = features2[rng.choice(len(features2), m, replace=False)]

        def k(a, b):
            return (float(np.dot(a, b)) / dim + 1.0) ** 3

        xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
        yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
        xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
        values.append((xx + yy) / (m * (m - 1)) - 2.0 * xy / (m * m))
    return np.mean(values), np.std(values)


@pytest.mark.parametrize("subset_size", [8, 1000], ids=["subsets", "capped"])
def test_kid_is_torch_fidelitys_estimate_with_its_subsets(subset_size):
    features1, features2 = _feature_sets(12, 5, seed=5)
    ours = kernel_inception_distance(
        features1, features2, num_subsets=4, subset_size=subset_size, seed=3
    )
    expected = _written_out_kid(
        features1, features2, num_subsets=4, subset_size=subset_size, seed=3
    )
    assert ours.mean == pytest.approx(expected[0], rel=1e-10)
    assert ours.std == pytest.approx(expected[1], rel=1e-8)
    # Capped: 12 images in the smaller set, 12 per subset; the larger (19) varies.
    assert ours.std > 0


def test_kid_of_whole_sets_has_no_spread():
    features1, features2 = _feature_sets(12, 5, seed=5)
    whole = kernel_inception_distance(features1, features2[:12], num_subsets=3)
    assert whole.std == pytest.approx(0.0, abs=1e-12)  # the whole sets each time


def test_kid_arguments():
    features1, features2 = _feature_sets(10, 4, seed=6)
    with pytest.raises(ValueError, match="`subset_size` must be an integer >= 2. Received: s"):
        kernel_inception_distance(features1, features2, subset_size=1)
    with pytest.raises(ValueError, match="`num_subsets` must be an integer >= 1"):
        kernel_inception_distance(features1, features2, num_subsets=0)
    with pytest.raises(ValueError, match="different feature dimensions"):
        kernel_inception_distance(features1, features2[:, :3])
