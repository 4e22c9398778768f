"""pytorch-fid's Inception network in Keras, and its weights.

The Fréchet Inception Distance (Heusel et al. 2017) and the Kernel Inception
Distance (Bińkowski et al. 2018) compare two sets of images through the
2048-d pool features of one particular network: the TensorFlow InceptionV3
graph of 2015-12-05 that the original FID code used. `pytorch-fid`
(mseitzer/pytorch-fid) ported that graph and its weights to PyTorch, and most
image-translation papers since (CUT among them) report FID with it. This module
rebuilds that network in Keras and reads its weights, so that the numbers
`tfcyclegan.fid` prints are the numbers in those papers:

- `FIDInceptionV3`: the network, NHWC, always float32, returning the pool3
  features. It takes images in [-1, 1] (what our generators produce) by
  default; `input_range=(0, 1)` takes what pytorch-fid takes.
- `fid_weights_path`, `load_fid_weights`, `load_fid_inception`: the weights,
  pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` state_dict, downloaded
  once into the Keras cache (`fid_weights_cache_path`), or given as a file
  (`--fid-weights`): the `.pth` (read with torch), or an `.npz` /
  `.safetensors` of the same state_dict, which need no torch.

Porting notes (checked against pytorch-fid's own network in tests/test_inception.py):

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

import collections.abc
import os
import pathlib

import keras
import numpy as np

from tfcyclegan.state_dict import assign_state_dict, layer_keys, read_state_dict

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

# In the file but not needed for the pool features: the 1008-way classifier.
# Checked when present (a 1000-way one means torchvision's ImageNet
# Inception, which is not the FID network), allowed to be absent.
_OPTIONAL_KEYS = {"fc.weight": (1008, FEATURE_DIM), "fc.bias": (1008,)}


def fid_weights_cache_path():
    """Where `fid_weights_path()` keeps pytorch-fid's file once downloaded.

    Keras's cache: `$KERAS_HOME/models/`, else `~/.keras/models/` (Keras
    falls back to `/tmp/.keras/` when that folder is not writable).
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return pathlib.Path(home) / "models" / FID_WEIGHTS_FILE


def fid_weights_path(path=None):
    """The FID Inception weights file: `path`, or pytorch-fid's, downloaded once.

    Args:
        path: a weights file to use (what `--fid-weights` passes): the `.pth`,
            or an `.npz` / `.safetensors` of the same state_dict. `None`
            downloads `FID_WEIGHTS_URL` into the Keras cache
            (`fid_weights_cache_path()`) the first time and reuses it after
            that, with no network access.

    Returns:
        a `pathlib.Path` to the file.

    Raises:
        FileNotFoundError: `path` is not a file.
        OSError: the download failed (no network, say). The message names the
            URL, the `--fid-weights` flag and the cache.
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
            "an .npz or .safetensors of the same state_dict works too and needs no torch. "
            f"Or run once with network access: the file is then kept at {fid_weights_cache_path()}."
        ) from err


def torch_key_map(model):
    """state_dict key -> (Keras variable, is_kernel) for every FID weight.

    Layer names are pytorch-fid's module paths, so a layer's keys are its
    name and the parameter names.
    """
    keys = {}
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.BatchNormalization)):
            keys.update(layer_keys(layer.name, layer))
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
    state_dict = weights if isinstance(weights, collections.abc.Mapping) else read_state_dict(weights)
    # torchvision's ImageNet Inception has the same layer names, plus an
    # auxiliary classifier the FID network lacks: say so, as the keys alone
    # would not tell a user why their Inception file is refused.
    imagenet = any(key.startswith(("AuxLogits.", "module.AuxLogits.")) for key in state_dict)
    assign_state_dict(
        torch_key_map(model),
        state_dict,
        title="The state_dict is not pytorch-fid's FID Inception (pt_inception-2015-12-05):",
        optional=_OPTIONAL_KEYS,
        hint=(
            "It looks like torchvision's ImageNet InceptionV3, whose weights and "
            f"blocks differ from the FID network's: use {FID_WEIGHTS_URL}"
            if imagenet
            else None
        ),
    )
    return model


def load_fid_inception(weights=None, resize_input=True, input_range=(-1.0, 1.0)):
    """A `FIDInceptionV3` with pytorch-fid's weights.

    Args:
        weights: a state_dict or weights file (see `load_fid_weights`);
            `None` uses `fid_weights_path()`, which downloads pytorch-fid's
            file once.
        resize_input, input_range: see `FIDInceptionV3`.

    Returns:
        the network, ready for `tfcyclegan.fid.compute_features`.
    """
    model = FIDInceptionV3(resize_input=resize_input, input_range=input_range)
    if isinstance(weights, collections.abc.Mapping):
        return load_fid_weights(model, weights)
    path = fid_weights_path(weights)
    try:
        return load_fid_weights(model, path)
    except ValueError as error:  # name the file: the message lists keys only
        raise ValueError(f"{path}: {error}") from None

