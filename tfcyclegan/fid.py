"""FID and KID as the papers report them: pytorch-fid's Inception in Keras.

The Fréchet Inception Distance (Heusel et al. 2017) and the Kernel Inception
Distance (Bińkowski et al. 2018) compare two sets of images through the
2048-d pool features of one particular network: the TensorFlow InceptionV3
graph of 2015-12-05 that the original FID code used. `pytorch-fid`
(mseitzer/pytorch-fid) ported that graph and its weights to PyTorch, and most
image-translation papers since (CUT among them) report FID with it. This module
rebuilds that network in Keras and reads its weights, so the numbers we print
are the numbers in those papers:

- `FIDInceptionV3`: the network, NHWC, always float32, returning the pool3
  features. It takes images in [-1, 1] (what our generators produce) by
  default; `input_range=(0, 1)` takes what pytorch-fid takes.
- `fid_weights_path`, `load_fid_weights`, `load_fid_inception`: the weights,
  pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` state_dict, downloaded
  once into the Keras cache, or given as a file (`--fid-weights`): the `.pth`
  (read with torch), or an `.npz` / `.safetensors` of the same state_dict,
  which need no torch.
- `compute_features`: the network over an iterable of image batches.
- `feature_statistics`, `frechet_distance`, `frechet_inception_distance`: FID.
- `kernel_inception_distance`: KID, as torch-fidelity and clean-fid define it.

Porting notes (checked against pytorch-fid's own network in tests/test_fid.py):

- The FID network is not torchvision's InceptionV3: the pooling branches of
  the A, C and first E blocks average without counting the zero padding (what
  TensorFlow's SAME average pooling does, so Keras's `padding="same"` is
  right), the last E block (`Mixed_7c`) max-pools in that branch, batch norm
  uses eps 0.001, and the classifier has 1008 classes (unused here).
- Every padded convolution has stride 1 and an odd kernel with symmetric
  padding `(k - 1) // 2`, which is exactly Keras's `padding="same"`; the
  strided ones are unpadded (`"valid"`).
- pytorch-fid resizes with `F.interpolate(mode="bilinear",
  align_corners=False)`: half-pixel centres and no antialiasing, which is
  `tf.image.resize(method="bilinear", antialias=False)` (Keras's `Resizing`),
  including when it shrinks an image. Resizing commutes with the affine map to
  [-1, 1], so taking [-1, 1] inputs changes nothing but rounding.
- Layer names are the PyTorch module paths (`Mixed_5b.branch1x1.conv`), so a
  state_dict key is the Keras layer name plus the parameter name.
"""

import collections
import collections.abc
import os
import pathlib
import warnings

import keras
import numpy as np

from tfcyclegan.torch_import import read_state_dict, strip_data_parallel

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FEATURE_DIM = 2048
# pytorch-fid's (and TensorFlow's FID code's) input size.
_INPUT_SIZE = 299

# =============================================================================
# The network
# =============================================================================


def _conv_bn(x, filters, kernel_size, name, strides=1, padding="valid"):
    """torchvision's BasicConv2d: convolution without bias, batch norm, ReLU."""
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        dtype="float32",
        name=f"{name}.conv",
    )(x)
    # The TensorFlow graph's batch norm epsilon; Keras's default is also 1e-3,
    # but the number is what makes the features match, so it is spelled out.
    x = keras.layers.BatchNormalization(epsilon=1e-3, dtype="float32", name=f"{name}.bn")(x)
    return keras.layers.ReLU(dtype="float32", name=f"{name}.relu")(x)


def _concat(branches, name):
    return keras.layers.Concatenate(axis=-1, dtype="float32", name=f"{name}.concat")(branches)


def _avg_pool_3x3(x, name):
    # SAME average pooling divides by the number of real pixels in the window,
    # which is pytorch-fid's `count_include_pad=False` patch.
    return keras.layers.AveragePooling2D(
        3, strides=1, padding="same", dtype="float32", name=f"{name}.avg_pool"
    )(x)


def _inception_a(x, pool_features, name):
    branch1x1 = _conv_bn(x, 64, 1, f"{name}.branch1x1")

    branch5x5 = _conv_bn(x, 48, 1, f"{name}.branch5x5_1")
    branch5x5 = _conv_bn(branch5x5, 64, 5, f"{name}.branch5x5_2", padding="same")

    branch3x3dbl = _conv_bn(x, 64, 1, f"{name}.branch3x3dbl_1")
    branch3x3dbl = _conv_bn(branch3x3dbl, 96, 3, f"{name}.branch3x3dbl_2", padding="same")
    branch3x3dbl = _conv_bn(branch3x3dbl, 96, 3, f"{name}.branch3x3dbl_3", padding="same")

    branch_pool = _conv_bn(_avg_pool_3x3(x, name), pool_features, 1, f"{name}.branch_pool")
    return _concat([branch1x1, branch5x5, branch3x3dbl, branch_pool], name)


def _inception_b(x, name):
    branch3x3 = _conv_bn(x, 384, 3, f"{name}.branch3x3", strides=2)

    branch3x3dbl = _conv_bn(x, 64, 1, f"{name}.branch3x3dbl_1")
    branch3x3dbl = _conv_bn(branch3x3dbl, 96, 3, f"{name}.branch3x3dbl_2", padding="same")
    branch3x3dbl = _conv_bn(branch3x3dbl, 96, 3, f"{name}.branch3x3dbl_3", strides=2)

    branch_pool = keras.layers.MaxPooling2D(
        3, strides=2, dtype="float32", name=f"{name}.max_pool"
    )(x)
    return _concat([branch3x3, branch3x3dbl, branch_pool], name)


def _inception_c(x, channels_7x7, name):
    c7 = channels_7x7
    branch1x1 = _conv_bn(x, 192, 1, f"{name}.branch1x1")

    branch7x7 = _conv_bn(x, c7, 1, f"{name}.branch7x7_1")
    branch7x7 = _conv_bn(branch7x7, c7, (1, 7), f"{name}.branch7x7_2", padding="same")
    branch7x7 = _conv_bn(branch7x7, 192, (7, 1), f"{name}.branch7x7_3", padding="same")

    branch7x7dbl = _conv_bn(x, c7, 1, f"{name}.branch7x7dbl_1")
    for i, (filters, kernel) in enumerate(
        [(c7, (7, 1)), (c7, (1, 7)), (c7, (7, 1)), (192, (1, 7))], start=2
    ):
        branch7x7dbl = _conv_bn(
            branch7x7dbl, filters, kernel, f"{name}.branch7x7dbl_{i}", padding="same"
        )

    branch_pool = _conv_bn(_avg_pool_3x3(x, name), 192, 1, f"{name}.branch_pool")
    return _concat([branch1x1, branch7x7, branch7x7dbl, branch_pool], name)


def _inception_d(x, name):
    branch3x3 = _conv_bn(x, 192, 1, f"{name}.branch3x3_1")
    branch3x3 = _conv_bn(branch3x3, 320, 3, f"{name}.branch3x3_2", strides=2)

    branch7x7x3 = _conv_bn(x, 192, 1, f"{name}.branch7x7x3_1")
    branch7x7x3 = _conv_bn(branch7x7x3, 192, (1, 7), f"{name}.branch7x7x3_2", padding="same")
    branch7x7x3 = _conv_bn(branch7x7x3, 192, (7, 1), f"{name}.branch7x7x3_3", padding="same")
    branch7x7x3 = _conv_bn(branch7x7x3, 192, 3, f"{name}.branch7x7x3_4", strides=2)

    branch_pool = keras.layers.MaxPooling2D(
        3, strides=2, dtype="float32", name=f"{name}.max_pool"
    )(x)
    return _concat([branch3x3, branch7x7x3, branch_pool], name)


def _inception_e(x, name, pool):
    branch1x1 = _conv_bn(x, 320, 1, f"{name}.branch1x1")

    branch3x3 = _conv_bn(x, 384, 1, f"{name}.branch3x3_1")
    branch3x3 = _concat(
        [
            _conv_bn(branch3x3, 384, (1, 3), f"{name}.branch3x3_2a", padding="same"),
            _conv_bn(branch3x3, 384, (3, 1), f"{name}.branch3x3_2b", padding="same"),
        ],
        f"{name}.branch3x3",
    )

    branch3x3dbl = _conv_bn(x, 448, 1, f"{name}.branch3x3dbl_1")
    branch3x3dbl = _conv_bn(branch3x3dbl, 384, 3, f"{name}.branch3x3dbl_2", padding="same")
    branch3x3dbl = _concat(
        [
            _conv_bn(branch3x3dbl, 384, (1, 3), f"{name}.branch3x3dbl_3a", padding="same"),
            _conv_bn(branch3x3dbl, 384, (3, 1), f"{name}.branch3x3dbl_3b", padding="same"),
        ],
        f"{name}.branch3x3dbl",
    )

    if pool == "max":
        # The FID graph's last block max-pools here (likely a bug in that
        # graph, but it is the network every reported FID used).
        pooled = keras.layers.MaxPooling2D(
            3, strides=1, padding="same", dtype="float32", name=f"{name}.max_pool"
        )(x)
    else:
        pooled = _avg_pool_3x3(x, name)
    branch_pool = _conv_bn(pooled, 192, 1, f"{name}.branch_pool")
    return _concat([branch1x1, branch3x3, branch3x3dbl, branch_pool], name)


@keras.saving.register_keras_serializable(package="tfcyclegan")
class FIDInceptionV3(keras.Model):
    """pytorch-fid's FID Inception network: images in, 2048-d pool3 features out.

    The same computation as `pytorch_fid.inception.InceptionV3([3],
    resize_input=True, normalize_input=True)`, in NHWC and float32 whatever
    the global dtype policy (FID numbers must not depend on mixed precision).
    The network is built with random weights; `load_fid_weights` or
    `load_fid_inception` give it pytorch-fid's.

    Inputs are `(batch, height, width, 3)` RGB images with values in
    `input_range`. The default, `(-1, 1)`, is what tfcyclegan's generators and
    data pipelines produce; pytorch-fid takes `(0, 1)`, and `(0, 255)` takes
    8-bit pixel values. The network maps the range onto the [-1, 1] its
    weights expect, after resizing, as pytorch-fid does.

    Args:
        resize_input: resize every image to 299x299 (bilinear, half-pixel
            centres, no antialiasing: pytorch-fid's `F.interpolate`) before
            the network. With `False`, images go in at their own size, which
            must be at least 75x75. Defaults to `True`.
        input_range: `(low, high)`, the values of black and white in the
            inputs. Defaults to `(-1.0, 1.0)`.
        **kwargs: forwarded to `keras.Model` (`name`, ...).
    """

    def __init__(self, resize_input=True, input_range=(-1.0, 1.0), **kwargs):
        if not isinstance(resize_input, bool):
            raise ValueError(
                f"FIDInceptionV3: `resize_input` must be True or False. "
                f"Received: resize_input={resize_input!r}"
            )
        low, high = _check_range(input_range)
        dtype = kwargs.pop("dtype", None)
        if dtype is not None and keras.dtype_policies.get(dtype).name != "float32":
            raise ValueError(
                "FIDInceptionV3 always computes in float32, so that FID does not depend "
                f"on mixed precision. Received: dtype={dtype!r}"
            )
        kwargs.setdefault("name", "fid_inception_v3")

        # === Graph ===
        images = keras.Input((None, None, 3), dtype="float32", name="images")
        x = images
        if resize_input:
            x = keras.layers.Resizing(
                _INPUT_SIZE,
                _INPUT_SIZE,
                interpolation="bilinear",
                antialias=False,
                dtype="float32",
                name="resize",
            )(x)
        if (low, high) != (-1.0, 1.0):
            scale = 2.0 / (high - low)
            x = keras.layers.Rescaling(
                scale, offset=-1.0 - low * scale, dtype="float32", name="to_unit_range"
            )(x)

        # Block 0 and 1 of pytorch-fid: the stem up to the second max pool.
        x = _conv_bn(x, 32, 3, "Conv2d_1a_3x3", strides=2)
        x = _conv_bn(x, 32, 3, "Conv2d_2a_3x3")
        x = _conv_bn(x, 64, 3, "Conv2d_2b_3x3", padding="same")
        x = keras.layers.MaxPooling2D(3, strides=2, dtype="float32", name="maxpool1")(x)
        x = _conv_bn(x, 80, 1, "Conv2d_3b_1x1")
        x = _conv_bn(x, 192, 3, "Conv2d_4a_3x3")
        x = keras.layers.MaxPooling2D(3, strides=2, dtype="float32", name="maxpool2")(x)
        # Block 2: 35x35 and 17x17 (up to the auxiliary classifier's input).
        x = _inception_a(x, 32, "Mixed_5b")
        x = _inception_a(x, 64, "Mixed_5c")
        x = _inception_a(x, 64, "Mixed_5d")
        x = _inception_b(x, "Mixed_6a")
        x = _inception_c(x, 128, "Mixed_6b")
        x = _inception_c(x, 160, "Mixed_6c")
        x = _inception_c(x, 160, "Mixed_6d")
        x = _inception_c(x, 192, "Mixed_6e")
        # Block 3: 8x8, then the global average ("pool3").
        x = _inception_d(x, "Mixed_7a")
        x = _inception_e(x, "Mixed_7b", pool="avg")
        x = _inception_e(x, "Mixed_7c", pool="max")
        features = keras.layers.GlobalAveragePooling2D(dtype="float32", name="pool3")(x)
        super().__init__(inputs=images, outputs=features, **kwargs)

        # === Config ===
        self.resize_input = resize_input
        self.input_range = (low, high)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "resize_input": self.resize_input,
            "input_range": list(self.input_range),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_range(input_range):
    try:
        low, high = (float(v) for v in input_range)
    except (TypeError, ValueError):
        low = high = None
    if low is None or not np.isfinite([low, high]).all() or not high > low:
        raise ValueError(
            "FIDInceptionV3: `input_range` must be (low, high) with finite "
            f"low < high, e.g. (-1, 1) or (0, 1). Received: input_range={input_range!r}"
        )
    return low, high


# =============================================================================
# Weights
# =============================================================================

# PyTorch BatchNorm2d's parameters and buffers and their Keras names.
_BATCH_NORM = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}
# In the file but not needed for the pool features: the 1008-way classifier.
# Checked when present (a 1000-way one means torchvision's ImageNet
# Inception, which is not the FID network), allowed to be absent.
_OPTIONAL_KEYS = {"fc.weight": (1008, FEATURE_DIM), "fc.bias": (1008,)}


def fid_weights_path(path=None):
    """The FID Inception weights file: `path`, or pytorch-fid's, downloaded once.

    Args:
        path: a weights file to use (what `--fid-weights` passes): the `.pth`,
            or an `.npz` / `.safetensors` of the same state_dict. `None`
            downloads `FID_WEIGHTS_URL` into the Keras cache
            (`~/.keras/models/`, or `$KERAS_HOME/models/`) the first time and
            reuses it after that, with no network access.

    Returns:
        a `pathlib.Path` to the file.

    Raises:
        FileNotFoundError: `path` is not a file.
        OSError: the download failed (no network, say). The message names the
            URL and the `--fid-weights` flag.
    """
    if path is not None:
        path = pathlib.Path(os.fspath(path)).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"No FID Inception weights file at {path} (--fid-weights). Pass "
                f"pytorch-fid's {FID_WEIGHTS_FILE} (from {FID_WEIGHTS_URL}), or an "
                ".npz / .safetensors of the same state_dict."
            )
        return path
    try:
        return pathlib.Path(
            keras.utils.get_file(
                fname=FID_WEIGHTS_FILE, origin=FID_WEIGHTS_URL, cache_subdir="models"
            )
        )
    except Exception as err:  # get_file wraps network errors in a bare Exception
        reason = str(err).strip().splitlines()
        raise OSError(
            "Could not download the FID Inception weights from "
            f"{FID_WEIGHTS_URL} ({type(err).__name__}: {reason[0] if reason else ''}). "
            "On a machine without internet access, fetch that file elsewhere and "
            "pass it with --fid-weights PATH (in Python: load_fid_inception(weights=PATH)); "
            "an .npz or .safetensors of the same state_dict works too and needs no torch."
        ) from err


def _torch_key_map(model):
    """state_dict key -> (Keras variable, is_kernel) for every FID weight."""
    keys = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for torch_name, keras_name in _BATCH_NORM.items():
                keys[f"{layer.name}.{torch_name}"] = (getattr(layer, keras_name), False)
        elif isinstance(layer, keras.layers.Conv2D):
            keys[f"{layer.name}.weight"] = (layer.kernel, True)
    return keys


def load_fid_weights(model, weights):
    """Copies pytorch-fid's Inception state_dict into `model`, all or nothing.

    Args:
        model: a `FIDInceptionV3`.
        weights: a state_dict (mapping of PyTorch key to array, e.g. from
            `torch.load`), or the path of a `.pth` (read with
            `torch.load(weights_only=True)`, so it needs torch), `.npz` or
            `.safetensors` file holding one.

    Returns:
        `model`, for chaining.

    Raises:
        TypeError: `model` is not a `FIDInceptionV3`.
        ValueError: the state_dict does not fit, listing every missing key,
            unexpected key and shape mismatch (in PyTorch's layout). Nothing
            is assigned unless everything fits. `num_batches_tracked` buffers
            are ignored, and the classifier (`fc.*`) may be absent.
    """
    if not isinstance(model, FIDInceptionV3):
        raise TypeError(
            f"load_fid_weights needs a FIDInceptionV3. Received: {type(model).__name__}"
        )
    if isinstance(weights, collections.abc.Mapping):
        state_dict = weights
    else:
        state_dict = read_state_dict(weights)
    given = {
        key: value
        for key, value in strip_data_parallel(state_dict).items()
        if not key.endswith("num_batches_tracked")
    }
    expected = _torch_key_map(model)
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected) - set(_OPTIONAL_KEYS))
    mismatched = []
    values = {}
    for key in sorted(set(given) & (set(expected) | set(_OPTIONAL_KEYS))):
        value = np.asarray(given[key], dtype=np.float32)
        if key in _OPTIONAL_KEYS:
            wanted = _OPTIONAL_KEYS[key]
        else:
            variable, is_kernel = expected[key]
            wanted = tuple(int(d) for d in variable.shape)
            if is_kernel:  # Keras (kh, kw, in, out) is PyTorch (out, in, kh, kw)
                wanted = (wanted[3], wanted[2], wanted[0], wanted[1])
        if tuple(value.shape) != wanted:
            mismatched.append(f"{key}: got shape {tuple(value.shape)}, expected {wanted}")
        elif key in expected:
            values[key] = value.transpose(2, 3, 1, 0) if expected[key][1] else value
    if missing or unexpected or mismatched:
        lines = ["The state_dict is not pytorch-fid's FID Inception (pt_inception-2015-12-05):"]
        for title, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        ):
            if items:
                more = [f"... and {len(items) - 20} more"] if len(items) > 20 else []
                shown = items[:20] + more
                lines.append(f"  {title} ({len(items)}): " + ", ".join(shown))
        if any(key.startswith("AuxLogits.") for key in unexpected):
            lines.append(
                "  It looks like torchvision's ImageNet InceptionV3, whose weights and "
                f"blocks differ from the FID network's: use {FID_WEIGHTS_URL}"
            )
        raise ValueError("\n".join(lines))
    for key, value in values.items():
        expected[key][0].assign(value)
    return model


def load_fid_inception(weights=None, resize_input=True, input_range=(-1.0, 1.0)):
    """A `FIDInceptionV3` with pytorch-fid's weights.

    Args:
        weights: a state_dict or weights file (see `load_fid_weights`);
            `None` uses `fid_weights_path()`, which downloads pytorch-fid's
            file once.
        resize_input, input_range: see `FIDInceptionV3`.

    Returns:
        the network, ready for `compute_features`.
    """
    model = FIDInceptionV3(resize_input=resize_input, input_range=input_range)
    if isinstance(weights, collections.abc.Mapping):
        return load_fid_weights(model, weights)
    path = fid_weights_path(weights)
    try:
        return load_fid_weights(model, path)
    except ValueError as error:  # name the file: the message lists keys only
        raise ValueError(f"{path}: {error}") from None


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
    for name, value, minimum in (
        ("num_subsets", num_subsets, 1),
        ("subset_size", subset_size, 2),
        ("degree", degree, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(
                f"kernel_inception_distance: `{name}` must be an integer >= {minimum}. "
                f"Received: {name}={value!r}"
            )
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
