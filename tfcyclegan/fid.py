"""FID and KID as the papers report them, on pytorch-fid's Inception features.

The Fréchet Inception Distance (Heusel et al. 2017) and the Kernel Inception
Distance (Bińkowski et al. 2018) compare two sets of images through the
2048-d pool features of pytorch-fid's Inception network (rebuilt in Keras,
with its weights, in `tfcyclegan.inception`):

- `compute_features`: the network over an iterable of image batches.
- `feature_statistics`, `frechet_distance`, `frechet_inception_distance`: FID,
  as pytorch-fid computes it.
- `kernel_inception_distance`: KID, as torch-fidelity and clean-fid define it.

    from tfcyclegan import fid, inception
    network = inception.load_fid_inception()   # downloads pytorch-fid's weights once
    fake = fid.compute_features(network, generated_batches)
    real = fid.compute_features(network, real_batches)
    fid.frechet_inception_distance(fake, real)

The network's names (`FIDInceptionV3`, `load_fid_inception`, ...) were this
module's before the network had its own, and are still importable from here.
"""

import collections
import collections.abc
import warnings

import keras
import numpy as np

from tfcyclegan.checks import check_int
from tfcyclegan.inception import (
    FEATURE_DIM,
    FID_WEIGHTS_FILE,
    FID_WEIGHTS_URL,
    FIDInceptionV3,
    fid_weights_cache_path,
    fid_weights_path,
    load_fid_inception,
    load_fid_weights,
)

# The metrics, and the network's names (see the module docstring).
__all__ = [
    "FEATURE_DIM",
    "FID_WEIGHTS_FILE",
    "FID_WEIGHTS_URL",
    "FIDInceptionV3",
    "KernelInceptionDistance",
    "compute_features",
    "feature_statistics",
    "fid_weights_cache_path",
    "fid_weights_path",
    "frechet_distance",
    "frechet_inception_distance",
    "kernel_inception_distance",
    "load_fid_inception",
    "load_fid_weights",
]

# =============================================================================
# Features
# =============================================================================


def compute_features(model, batches, verbose=1):
    """Runs `model` over image batches and stacks the features.

    Args:
        model: a `FIDInceptionV3` (with weights loaded).
        batches: an iterable of image batches, each `(batch, height, width,
            3)` in the model's `input_range` (numpy arrays, tensors, or a
            `tf.data.Dataset` of image batches). Sizes may differ between
            batches.
        verbose: 1 shows a Keras progress bar, 0 nothing.

    Returns:
        float32 numpy array `(num_images, 2048)`.

    Raises:
        ValueError: a batch is not a `(batch, height, width, 3)` array, e.g. a
            dataset of `(images, labels)` pairs.
    """
    try:
        total = len(batches)
    except TypeError:  # generators; datasets of unknown cardinality
        total = None
    progress = keras.utils.Progbar(total, unit_name="batch") if verbose else None
    features = []
    for step, batch in enumerate(batches, start=1):
        if isinstance(batch, (tuple, list, collections.abc.Mapping)):
            raise ValueError(
                "compute_features takes batches of images, not tuples or dicts; map a "
                "dataset of pairs to its images first, e.g. ds.map(lambda x, y: x). "
                f"Received a batch of type {type(batch).__name__} (batch {step})."
            )
        shape = tuple(getattr(batch, "shape", np.shape(batch)))
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(
                "compute_features needs batches of RGB images shaped (batch, height, "
                f"width, 3). Received: shape={shape} (batch {step})."
            )
        features.append(np.asarray(model.predict_on_batch(batch), dtype=np.float32))
        if progress is not None:
            progress.update(step)
    if not features:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    return np.concatenate(features, axis=0)


# =============================================================================
# FID
# =============================================================================


def feature_statistics(features):
    """Mean and covariance of features, in float64, as pytorch-fid computes them.

    Args:
        features: `(num_images, dim)` array, at least 2 rows.

    Returns:
        `(mu, sigma)`: `(dim,)` and `(dim, dim)` float64 arrays
        (`np.cov(rowvar=False)`: the unbiased covariance).
    """
    features = _as_features(features, "features")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _as_features(features, name):
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(
            f"`{name}` must be a (num_images, dim) array with at least 2 images. "
            f"Received: shape={features.shape}"
        )
    if not np.isfinite(features).all():
        raise ValueError(f"`{name}` has non-finite values (NaN or inf).")
    return features


def _trace_sqrt_product(sigma1, sigma2):
    """Tr(sqrtm(sigma1 @ sigma2)) for covariance matrices, by eigen-decomposition.

    sigma1 @ sigma2 has the same eigenvalues as the symmetric positive
    semi-definite R @ sigma2 @ R, with R = sigma1^(1/2) (AB and BA share their
    eigenvalues), and the trace of the principal square root is the sum of the
    eigenvalues' square roots. Two symmetric eigen-decompositions need no
    SciPy, are faster than `scipy.linalg.sqrtm` at 2048 dimensions, and stay
    well defined when the product is singular, as it always is with fewer
    images than dimensions (a CycleGAN test set has 100 to 1000), where
    `sqrtm` warns that the matrix may have no square root.

    Returns:
        `(trace, negative)`: `negative` is the most negative eigenvalue of
        sigma1 or of the product, relative to the largest of the same matrix;
        for covariance matrices it is rounding noise (about -1e-15).
    """
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    product = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2.0)
    tiny = np.finfo(np.float64).tiny
    negative = min(
        w.min() / max(abs(w).max(), tiny),
        eigenvalues.min() / max(abs(eigenvalues).max(), tiny),
        0.0,
    )
    return np.sqrt(np.clip(eigenvalues, 0.0, None)).sum(), negative


def _check_moments(mu, sigma, name):
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"mu{name} must be (dim,) and sigma{name} (dim, dim). "
            f"Received: mu{name}.shape={mu.shape}, sigma{name}.shape={sigma.shape}"
        )
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"mu{name} or sigma{name} has non-finite values (NaN or inf).")
    scale = max(abs(sigma).max(), np.finfo(np.float64).tiny)
    if not np.allclose(sigma, sigma.T, rtol=1e-6, atol=1e-9 * scale):
        raise ValueError(
            f"sigma{name} is not symmetric, so not a covariance matrix. Received a "
            f"largest asymmetry of {abs(sigma - sigma.T).max():.3g}."
        )
    return mu, (sigma + sigma.T) / 2.0


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

        d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))

    `pytorch_fid.fid_score.calculate_frechet_distance`, with the matrix square
    root's trace taken by eigen-decomposition instead of `scipy.linalg.sqrtm`
    (see `_trace_sqrt_product`). The two agree to 1e-14 relative on full-rank
    covariances and to 1e-8 to 5e-8 on the singular ones of fewer images than
    dimensions (120 images of 2048 features: FID 1588.34714 against
    1588.34707), where both carry the rounding noise of the null space's
    square roots. As in pytorch-fid,
    if the trace cannot be computed (the eigen-decomposition does not converge
    or is not finite) `eps` is added to both diagonals, with a warning.

    Args:
        mu1, sigma1: mean `(dim,)` and covariance `(dim, dim)` of one set.
        mu2, sigma2: the same for the other set.
        eps: the diagonal offset used only when the plain computation fails.

    Returns:
        the distance, a Python float.

    Raises:
        ValueError: shapes that differ or do not fit, non-finite values, or
            sigmas that are not covariance matrices (not symmetric, or with a
            clearly negative eigenvalue: pytorch-fid's "Imaginary component").
    """
    mu1, sigma1 = _check_moments(mu1, sigma1, "1")
    mu2, sigma2 = _check_moments(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"The two sets have different feature dimensions. Received: "
            f"mu1.shape={mu1.shape}, mu2.shape={mu2.shape}"
        )
    diff = mu1 - mu2
    try:
        trace_covmean, negative = _trace_sqrt_product(sigma1, sigma2)
        failed = not np.isfinite(trace_covmean)
    except np.linalg.LinAlgError:
        failed = True
    if failed:
        warnings.warn(
            f"FID: the product of the covariances is too ill-conditioned; adding "
            f"{eps} to their diagonals (as pytorch-fid does).",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = np.eye(sigma1.shape[0]) * eps
        trace_covmean, negative = _trace_sqrt_product(sigma1 + offset, sigma2 + offset)
    # Rounding leaves eigenvalues of about -1e-15 relative; pytorch-fid
    # tolerates 1e-3 of imaginary part, i.e. eigenvalues down to -1e-6.
    if negative < -1e-6:
        raise ValueError(
            "sigma1 and sigma2 must be covariance matrices (positive semi-definite); "
            f"an eigenvalue of {negative:.3g} times the largest says they are not."
        )
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean)


def frechet_inception_distance(features1, features2):
    """FID between two sets of features: `frechet_distance` of their statistics."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


# =============================================================================
# KID
# =============================================================================

KernelInceptionDistance = collections.namedtuple("KernelInceptionDistance", ["mean", "std"])


def _polynomial_kernel(x, y, degree, gamma, coef0):
    return (x @ y.T * gamma + coef0) ** degree


def _mmd2_unbiased(k_xx, k_xy, k_yy):
    """The unbiased MMD^2 estimate: the within-set sums leave out the diagonal."""
    m = k_xx.shape[0]
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return within - 2.0 * k_xy.sum() / (m * m)


def kernel_inception_distance(
    features1,
    features2,
    num_subsets=100,
    subset_size=1000,
    degree=3,
    gamma=None,
    coef0=1.0,
    seed=2020,
):
    """KID: the unbiased MMD^2 with a polynomial kernel, averaged over subsets.

    The estimator of torch-fidelity (`kid_features_to_metric`) and clean-fid
    (`kernel_distance`): `num_subsets` times, draw `subset_size` rows of each
    set without replacement and compute the unbiased MMD^2 with the kernel
    k(x, y) = (gamma x.y + coef0)^degree; report the mean and standard
    deviation over subsets. With the same seed and at least `subset_size`
    images in each set, the subsets are torch-fidelity's (its `rng_seed`
    defaults to 2020 too). As in clean-fid, `subset_size` is capped at the
    smaller set's size (torch-fidelity refuses instead), so small test sets
    still give a number; a subset as large as both sets is the whole set every
    time, and the standard deviation is then 0. Computed in float64.

    Args:
        features1, features2: `(num_images, dim)` arrays, at least 2 rows each.
        num_subsets: how many subsets to average over. Defaults to 100.
        subset_size: images per subset. Defaults to 1000.
        degree, gamma, coef0: the kernel; `gamma=None` means `1 / dim`.
        seed: seeds the subset draws (`np.random.RandomState`, as
            torch-fidelity). Defaults to 2020.

    Returns:
        `KernelInceptionDistance(mean, std)`, Python floats. Values slightly
        below 0 are valid: the estimator is unbiased.
    """
    x_all = _as_features(features1, "features1")
    y_all = _as_features(features2, "features2")
    if x_all.shape[1] != y_all.shape[1]:
        raise ValueError(
            "The two sets have different feature dimensions. Received: "
            f"features1.shape={x_all.shape}, features2.shape={y_all.shape}"
        )
    num_subsets = check_int("num_subsets", num_subsets, 1, owner="kernel_inception_distance")
    subset_size = check_int("subset_size", subset_size, 2, owner="kernel_inception_distance")
    degree = check_int("degree", degree, 1, owner="kernel_inception_distance")
    if gamma is None:
        gamma = 1.0 / x_all.shape[1]
    m = min(subset_size, len(x_all), len(y_all))
    rng = np.random.RandomState(seed)
    mmds = np.empty(num_subsets)
    for i in range(num_subsets):
        # Two draws per subset, first set first: torch-fidelity's order.
        x = x_all[rng.choice(len(x_all), m, replace=False)]
        y = y_all[rng.choice(len(y_all), m, replace=False)]
        mmds[i] = _mmd2_unbiased(
            _polynomial_kernel(x, x, degree, gamma, coef0),
            _polynomial_kernel(x, y, degree, gamma, coef0),
            _polynomial_kernel(y, y, degree, gamma, coef0),
        )
    return KernelInceptionDistance(float(mmds.mean()), float(mmds.std()))
