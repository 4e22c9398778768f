"""FID / KID: features, the Fréchet distance and KID against the references.

The references are the packages themselves, installed by the test extra:
pytorch-fid (its `calculate_frechet_distance`) and clean-fid (its KID,
`kernel_distance`); torch-fidelity's KID, whose seeded subsets we reproduce,
is written out below (the package itself installs a top-level `tests`
package that shadows ours). The network itself is tests/test_inception.py's.
Everything runs offline; tests that need a reference skip when it is not
installed.
"""

import warnings

import numpy as np
import pytest

from tests.test_inception import _import_torchvision, pytorch_fid
from tfcyclegan import fid
from tfcyclegan.fid import (
    compute_features,
    feature_statistics,
    frechet_distance,
    frechet_inception_distance,
    kernel_inception_distance,
)
from tfcyclegan.inception import FIDInceptionV3

# pytorch-fid's scipy sqrtm against our eigen-decomposition: measured 1e-8
# relative on singular products (fewer images than dimensions), 1e-15 otherwise.
FID_RTOL = 1e-6


# --- Features ---------------------------------------------------------------------


@pytest.mark.slow
def test_compute_features_over_batches_and_datasets():
    import tensorflow as tf

    model = FIDInceptionV3(resize_input=False)  # its own random weights: any will do
    images = np.random.default_rng(3).uniform(-1.0, 1.0, (3, 80, 80, 3)).astype(np.float32)
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
