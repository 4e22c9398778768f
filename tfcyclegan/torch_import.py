"""Use the authors' PyTorch weights (state_dicts) in tfcyclegan, and go back.

The authors of CycleGAN and pix2pix publish their pretrained generators as
`latest_net_G.pth` files: plain state_dicts of the networks in their
`models/networks.py` (junyanz/pytorch-CycleGAN-and-pix2pix). This module

- works out the architecture from the keys and shapes: `infer_generator`,
  `infer_discriminator`;
- builds the matching tfcyclegan network and loads the weights, all or
  nothing: `import_generator`, `import_discriminator`, and `import_to_keras`
  (what `tfcyclegan import-torch` runs), which also saves a `.keras` file;
- writes a network's weights back under the PyTorch names and layouts:
  `export_state_dict`.

The key map (`torch_key_map`) is the single place that knows how the
authors' networks name their parameters; the fidelity tests and the importer
both go through `load_state_dict`. Files (`read_state_dict`,
`write_state_dict`), layouts and the all-or-nothing assignment are
`tfcyclegan.state_dict`'s, shared with the FID Inception's loader.

Batch norm at test time (pix2pix). The authors' `test.py` does not call
`model.eval()` unless given `--eval`, so their published pix2pix results use
BatchNorm with the statistics of each test image (batch size 1) and keep
Dropout active. `import_generator(..., bn_statistics="image")`, the default,
reproduces the normalization (deterministically: without the dropout noise);
`bn_statistics="moving"` uses the stored running averages, i.e. PyTorch's
`eval()` and `test.py --eval`. CycleGAN's models use instance norm, which has
no such choice.
"""

import collections.abc
import os
import pathlib

import keras
import numpy as np

from tfcyclegan import fileio
from tfcyclegan.config import parse_generator
from tfcyclegan.layers import InstanceNormalization
from tfcyclegan.networks import (
    PatchDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    UnetGenerator,
)
from tfcyclegan.state_dict import (
    IGNORED_SUFFIXES,
    assign_state_dict,
    layer_keys,
    read_state_dict,
    strip_data_parallel,
    variables_to_state_dict,
    write_state_dict,
)

# The public names. read_state_dict, strip_data_parallel and write_state_dict
# are tfcyclegan.state_dict's, still importable from here as before.
__all__ = [
    "export_state_dict",
    "import_discriminator",
    "import_generator",
    "import_to_keras",
    "infer_discriminator",
    "infer_generator",
    "load_state_dict",
    "read_state_dict",
    "strip_data_parallel",
    "torch_key_map",
    "write_state_dict",
]

# =============================================================================
# The key map
# =============================================================================

# Files saved before PyTorch 0.4 (and the authors' 2018 pretrained CycleGANs)
# carry running statistics for InstanceNorm layers that never use them; the
# authors' own loader (`__patch_instance_norm_state_dict`) drops them too.
_STALE_INSTANCE_NORM_BUFFERS = ("running_mean", "running_var")

def _resnet_layers(net):
    """(keras layer path, torch module prefix) pairs of a ResnetGenerator."""
    upsample = getattr(net, "upsample", "transpose")
    if upsample != "transpose":
        # The authors' CycleGAN / pix2pix generators upsample with transposed
        # convolutions only; the other modes have no layer-for-layer twin there.
        raise ValueError(
            f"Only ResnetGenerators with upsample='transpose' have PyTorch weights in "
            f"the authors' layout (their ConvTranspose2d); '{net.name}' has "
            f"upsample={upsample!r}, whose weights exist only in tfcyclegan. Save it "
            f"as a .keras file instead. Received: upsample={upsample!r}"
        )
    n = net.n_blocks
    pairs = [("stem_conv", "model.1"), ("stem_norm", "model.2")]
    for i in range(2):
        pairs += [(f"down{i}_conv", f"model.{4 + 3 * i}"), (f"down{i}_norm", f"model.{5 + 3 * i}")]
    # Dropout sits between the block's two convolutions and shifts the second.
    conv2, norm2 = (6, 7) if net.dropout else (5, 6)
    for b in range(n):
        block = f"model.{10 + b}.conv_block"
        pairs += [
            (f"block{b}/conv1", f"{block}.1"),
            (f"block{b}/norm1", f"{block}.2"),
            (f"block{b}/conv2", f"{block}.{conv2}"),
            (f"block{b}/norm2", f"{block}.{norm2}"),
        ]
    for i in range(2):
        pairs += [
            (f"up{i}_conv", f"model.{10 + n + 3 * i}"),
            (f"up{i}_norm", f"model.{11 + n + 3 * i}"),
        ]
    pairs.append(("head_conv", f"model.{17 + n}"))
    return pairs


def _unet_prefix(level):
    """The torch prefix of U-Net level `level` >= 1 (level 0 is `model.model.`)."""
    return "model.model.1.model." + "3.model." * (level - 1)


def _unet_layers(net):
    pairs = [("down0_conv", "model.model.0"), ("up0_conv", "model.model.3")]
    for i in range(1, net.num_downs):
        prefix = _unet_prefix(i)
        if i == net.num_downs - 1:  # innermost: [lrelu, conv] then [relu, convT, norm]
            pairs += [
                (f"down{i}_conv", f"{prefix}1"),
                (f"up{i}_conv", f"{prefix}3"),
                (f"up{i}_norm", f"{prefix}4"),
            ]
        else:  # [lrelu, conv, norm], submodule, [relu, convT, norm(, dropout)]
            pairs += [
                (f"down{i}_conv", f"{prefix}1"),
                (f"down{i}_norm", f"{prefix}2"),
                (f"up{i}_conv", f"{prefix}5"),
                (f"up{i}_norm", f"{prefix}6"),
            ]
    return pairs


def _patch_layers(net):
    pairs = [("conv0", "model.0")]
    for i in range(1, net.n_layers + 1):
        pairs += [(f"conv{i}", f"model.{2 + 3 * (i - 1)}"), (f"conv{i}_norm", f"model.{3 + 3 * (i - 1)}")]
    pairs.append(("logits_conv", f"model.{2 + 3 * net.n_layers}"))
    return pairs


def _pixel_layers(net):
    return [
        ("conv0", "net.0"),
        ("conv1", "net.2"),
        ("conv1_norm", "net.3"),
        ("logits_conv", "net.5"),
    ]


_LAYER_MAPS = (
    (ResnetGenerator, _resnet_layers),
    (UnetGenerator, _unet_layers),
    (PatchDiscriminator, _patch_layers),
    (PixelDiscriminator, _pixel_layers),
)


def _find_layer(net, path):
    layer = net
    for part in path.split("/"):
        found = None
        for candidate in (
            getattr(layer, "layers", None) or []
        ):  # functional networks list their layers
            if candidate.name == part:
                found = candidate
        if found is None:
            found = getattr(layer, part, None)  # a ResidualBlock's sublayers
        if found is None:
            return None
        layer = found
    return layer


def _mapped_layers(network):
    """(torch module prefix, keras layer) of every layer with a torch counterpart."""
    for cls, layers_of in _LAYER_MAPS:
        if isinstance(network, cls):
            break
    else:
        raise TypeError(
            "torch_key_map needs a ResnetGenerator, UnetGenerator, "
            f"PatchDiscriminator or PixelDiscriminator. Received: {type(network).__name__}"
        )
    for path, prefix in layers_of(network):
        layer = _find_layer(network, path)
        if layer is not None:  # norm="none" has no norm layers
            yield prefix, layer




def torch_key_map(network):
    """Maps every PyTorch state_dict key the network expects to its Keras variable.

    Returns:
        dict `torch_key -> (variable, is_kernel)`; kernels need the layout
        transpose. Norm layers without parameters (instance norm) have no keys,
        exactly like the reference.
    """
    keys = {}
    for prefix, layer in _mapped_layers(network):
        keys.update(layer_keys(prefix, layer))
    return keys


def load_state_dict(network, state_dict):
    """Copies a PyTorch state_dict into `network`, all or nothing.

    Like the authors' loader, it ignores `num_batches_tracked` and the unused
    running statistics that old files keep for instance-norm layers.

    Args:
        network: a tfcyclegan generator or discriminator.
        state_dict: mapping of PyTorch key to array (numpy or anything
            `np.asarray` accepts), e.g. from `torch.load` or an `.npz`.

    Raises:
        ValueError: listing every missing key, unexpected key and shape
            mismatch. Nothing is assigned unless everything matches.
    """
    stale = {
        f"{prefix}.{buffer}"
        for prefix, layer in _mapped_layers(network)
        if isinstance(layer, InstanceNormalization)
        for buffer in _STALE_INSTANCE_NORM_BUFFERS
    }
    assign_state_dict(
        torch_key_map(network),
        state_dict,
        title=f"The state_dict does not fit {network.__class__.__name__} '{network.name}':",
        ignored=stale,
    )


def export_state_dict(network):
    """The network's weights as a PyTorch state_dict: the reference's keys and layouts.

    The inverse of `load_state_dict`: `load_state_dict(net, export_state_dict(net))`
    is the identity, and the result loads into the authors' PyTorch network
    with the same options. `num_batches_tracked` is left out (PyTorch fills
    it in when it is missing).

    Args:
        network: a ResnetGenerator, UnetGenerator, PatchDiscriminator or
            PixelDiscriminator.

    Returns:
        dict of PyTorch key to float32 numpy array, in the network's layer order.
    """
    return variables_to_state_dict(torch_key_map(network))


# =============================================================================
# Architecture from the keys
# =============================================================================

_NAMES = {
    "resnet": "a ResNet generator (ResnetGenerator)",
    "unet": "a U-Net generator (UnetGenerator)",
    "patch": "a PatchGAN discriminator (NLayerDiscriminator)",
    "pixel": "a PixelGAN discriminator (PixelDiscriminator)",
}


def _clean(state_dict):
    """Keys as the authors' network names them: no `module.`, no bookkeeping."""
    return {
        key: np.asarray(value)
        for key, value in strip_data_parallel(state_dict).items()
        if not key.startswith("__") and not key.endswith(IGNORED_SUFFIXES)
    }


def _is_kernel(state_dict, key, size=None):
    value = state_dict.get(key)
    return (
        value is not None
        and value.ndim == 4
        and (size is None or tuple(value.shape[2:]) == (size, size))
    )


def _network_kind(state_dict):
    if any(key.startswith("model.model.") for key in state_dict):
        return "unet"
    if _is_kernel(state_dict, "model.1.weight", 7):  # model.0 is a ReflectionPad2d
        return "resnet"
    if _is_kernel(state_dict, "model.0.weight", 4):
        return "patch"
    if _is_kernel(state_dict, "net.0.weight", 1):
        return "pixel"
    return None


def _unrecognized(state_dict):
    keys = list(state_dict)[:6]
    return ValueError(
        "The state_dict does not look like a network from the authors' "
        "models/networks.py (ResnetGenerator, UnetGenerator, NLayerDiscriminator "
        f"or PixelDiscriminator). Its first keys: {keys}"
    )


def _norm_of(state_dict, norm_prefix, conv_prefix):
    """`batch` leaves an affine weight; instance norm leaves conv biases; `none` neither.

    Old instance-norm files also hold running statistics, so `running_mean`
    alone does not mean batch norm.
    """
    if f"{norm_prefix}.weight" in state_dict:
        return "batch"
    if f"{conv_prefix}.bias" in state_dict:
        return "instance"
    return "none"


def infer_generator(state_dict):
    """Reads a generator's architecture from its state_dict's keys and shapes.

    What the keys tell: ResNet or U-Net (`model.<i>.conv_block` or
    `model.model.`), the number of residual blocks or U-Net levels (nesting
    depth), ngf and the channels (weight shapes), the norm (batch norm leaves
    an affine `weight` on norm layers; instance norm none, but biases on the
    convolutions) and, for ResNets, dropout (it shifts `conv_block.5` to
    `conv_block.6`).

    What they cannot: a U-Net's dropout layers come after the last layer with
    parameters in each block, so they leave no trace; `dropout` is then the
    reference's default (on). It only matters when training.

    Args:
        state_dict: mapping of PyTorch key to array (a `module.` prefix is fine).

    Returns:
        dict with `netG` (`resnet_<n>blocks` or `unet_<size>`, the reference's
        name; `unet_<size>` is the image size the U-Net reduces to 1x1),
        `input_channels`, `output_channels`, `ngf`, `norm`, `dropout`, and
        `n_blocks` (ResNet) or `num_downs` (U-Net): the ResnetGenerator or
        UnetGenerator arguments.

    Raises:
        ValueError: the state_dict is a discriminator's or not recognized.
    """
    state_dict = _clean(state_dict)
    kind = _network_kind(state_dict)
    if kind == "resnet":
        return _infer_resnet(state_dict)
    if kind == "unet":
        return _infer_unet(state_dict)
    if kind is None:
        raise _unrecognized(state_dict)
    raise ValueError(
        f"The state_dict holds {_NAMES[kind]}, not a generator. The authors "
        "publish generators as latest_net_G.pth (or <name>.pth); use "
        "import_discriminator for a discriminator."
    )


def _infer_resnet(state_dict):
    stem = state_dict["model.1.weight"]
    blocks = sorted(
        {int(key.split(".")[1]) for key in state_dict if ".conv_block." in key}
    )
    n_blocks = len(blocks)
    if blocks != list(range(10, 10 + n_blocks)):
        raise _unrecognized(state_dict)
    head = f"model.{17 + n_blocks}.weight"
    if not _is_kernel(state_dict, head, 7):
        raise _unrecognized(state_dict)
    return {
        "netG": f"resnet_{n_blocks}blocks",
        "input_channels": int(stem.shape[1]),
        "output_channels": int(state_dict[head].shape[0]),
        "ngf": int(stem.shape[0]),
        "n_blocks": n_blocks,
        "norm": _norm_of(state_dict, "model.2", "model.1"),
        # A 4-D weight at position 6 is the second convolution pushed back by
        # Dropout (without it, position 6 is the norm).
        "dropout": n_blocks > 0 and _is_kernel(state_dict, "model.10.conv_block.6.weight"),
    }


def _infer_unet(state_dict):
    if not (
        _is_kernel(state_dict, "model.model.0.weight", 4)
        and _is_kernel(state_dict, "model.model.3.weight", 4)
    ):
        raise _unrecognized(state_dict)
    levels = 1
    while f"{_unet_prefix(levels)}1.weight" in state_dict:
        levels += 1
    down0 = state_dict["model.model.0.weight"]
    norm = _norm_of(state_dict, f"{_unet_prefix(1)}2", "model.model.0")
    return {
        "netG": f"unet_{2 ** levels}",
        "input_channels": int(down0.shape[1]),
        "output_channels": int(state_dict["model.model.3.weight"].shape[1]),
        "ngf": int(down0.shape[0]),
        "num_downs": levels,
        "norm": norm,
        "dropout": True,  # not in the keys: the reference's default (see docstring)
    }


def infer_discriminator(state_dict):
    """Reads a discriminator's architecture from its state_dict.

    Returns:
        dict with `netD` (`basic` for the 70x70 PatchGAN, `n_layers` for other
        depths, `pixel`), `input_channels`, `ndf`, `norm`, and `n_layers` for a
        PatchGAN: the PatchDiscriminator or PixelDiscriminator arguments.

    Raises:
        ValueError: the state_dict is a generator's or not recognized.
    """
    state_dict = _clean(state_dict)
    kind = _network_kind(state_dict)
    if kind == "patch":
        convs = sorted(
            int(key.split(".")[1])
            for key in state_dict
            if key.startswith("model.") and key.endswith(".weight") and state_dict[key].ndim == 4
        )
        n_layers = len(convs) - 2
        if n_layers < 1 or convs != [0] + [2 + 3 * i for i in range(n_layers + 1)]:
            raise _unrecognized(state_dict)
        first = state_dict["model.0.weight"]
        return {
            "netD": "basic" if n_layers == 3 else "n_layers",
            "input_channels": int(first.shape[1]),
            "ndf": int(first.shape[0]),
            "n_layers": n_layers,
            "norm": _norm_of(state_dict, "model.3", "model.2"),
        }
    if kind == "pixel":
        first = state_dict["net.0.weight"]
        return {
            "netD": "pixel",
            "input_channels": int(first.shape[1]),
            "ndf": int(first.shape[0]),
            "norm": _norm_of(state_dict, "net.3", "net.2"),
        }
    if kind is None:
        raise _unrecognized(state_dict)
    raise ValueError(
        f"The state_dict holds {_NAMES[kind]}, not a discriminator; use import_generator."
    )


# =============================================================================
# Importers
# =============================================================================

_BN_STATISTICS = ("image", "moving")


def _state_dict_of(source):
    if isinstance(source, collections.abc.Mapping):
        return dict(source)
    return read_state_dict(source)


def _naming(source, build):
    """Runs `build()`, putting the file's path in front of any ValueError."""
    try:
        return build()
    except ValueError as err:
        if isinstance(source, collections.abc.Mapping):
            raise
        raise ValueError(f"{os.fspath(source)}: {err}") from err


def _check_override(flag, value, inferred, holds):
    if value is not None and value != inferred:
        raise ValueError(
            f"`{flag}` does not match the file, which holds {holds}. Leave `{flag}` "
            f"out to use what the file holds. Received: {flag}={value!r}"
        )


def _with_zero_biases(network, state_dict):
    """Adds the biases that the reference's norm="none" convolutions lack.

    The reference gives convolutions a bias only with instance norm (and the
    last one always), so its norm="none" networks lack biases where
    tfcyclegan's have them. A zero bias is exactly no bias.
    """
    state_dict = dict(state_dict)
    for key, (variable, _) in torch_key_map(network).items():
        stem = key[: -len(".bias")]
        if key.endswith(".bias") and key not in state_dict and f"{stem}.weight" in state_dict:
            state_dict[key] = np.zeros(tuple(variable.shape), np.float32)
    return state_dict


def import_generator(
    source,
    *,
    netG=None,
    ngf=None,
    norm=None,
    dropout=None,
    bn_statistics="image",
    name="G",
    dtype=None,
):
    """A generator with the weights of a PyTorch CycleGAN / pix2pix state_dict.

    The architecture is read from the file (`infer_generator`); the optional
    arguments only confirm it (a conflict raises) or, for a U-Net's dropout,
    supply what the file cannot tell. Loading is strict: every weight of the
    network comes from the file and every tensor in the file is used.

    Args:
        source: a `.pth`/`.pt`, `.npz` or `.safetensors` path, or a state_dict.
        netG: `resnet_9blocks`, `resnet_6blocks`, `unet_256`, `unet_128` (or
            `resnet_<n>blocks`): must match the file.
        ngf: filters of the first layer: must match the file.
        norm: `instance`, `batch` or `none`: must match the file.
        dropout: for a U-Net, whether it has Dropout layers (default: on, as
            in the reference; only matters when training). For a ResNet it
            must match the file.
        bn_statistics: batch-norm generators only (pix2pix). `image` (default):
            normalize with each image's own statistics, as the authors'
            test.py does (it does not call `eval()`); the network is returned
            as a plain functional `keras.Model` whose norm layers are affine
            `InstanceNormalization`s, which for one image equal BatchNorm in
            training mode. Only U-Nets. `moving`: a `UnetGenerator` /
            `ResnetGenerator` with `norm="batch"` that uses the stored running
            statistics at inference, like PyTorch's `eval()` (`test.py
            --eval`); calling it with `training=True` gives the authors'
            test.py behaviour, dropout noise included.
        name: the network's name ("G", the paper's X -> Y generator).
        dtype: dtype policy of the network (default: the global policy).

    Returns:
        a `keras.Model` mapping NHWC images in [-1, 1] to [-1, 1].

    Raises:
        ValueError: the file cannot be read, is not a generator, conflicts
            with an argument, or does not fit (the message lists missing and
            unexpected keys and shape mismatches).
    """
    if bn_statistics not in _BN_STATISTICS:
        raise ValueError(
            f"`bn_statistics` must be one of {list(_BN_STATISTICS)}. "
            f"Received: bn_statistics={bn_statistics!r}"
        )
    if netG is not None:
        parse_generator(netG)  # a bad name is the flag's fault, not the file's
    state_dict = _clean(_state_dict_of(source))
    return _naming(source, lambda: _import_generator(
        state_dict, netG, ngf, norm, dropout, bn_statistics, name, dtype))


def _import_generator(state_dict, netG, ngf, norm, dropout, bn_statistics, name, dtype):
    arch = infer_generator(state_dict)
    holds = f"{arch['netG']} (ngf={arch['ngf']}, norm={arch['norm']!r})"
    if netG is not None:
        family, depth = parse_generator(netG)
        if depth != arch.get("n_blocks" if family == "resnet" else "num_downs"):
            _check_override("netG", netG, arch["netG"], holds)
    _check_override("ngf", ngf, arch["ngf"], holds)
    _check_override("norm", norm, arch["norm"], holds)
    if "n_blocks" in arch:
        _check_override(
            "dropout", dropout, arch["dropout"], f"a ResNet with dropout={arch['dropout']}"
        )
    elif dropout is not None:
        arch["dropout"] = bool(dropout)
    if arch["norm"] == "batch" and bn_statistics == "image" and "n_blocks" in arch:
        raise ValueError(
            "bn_statistics='image' is available for U-Net generators (pix2pix's); "
            "this file holds a ResNet generator with batch norm. Pass "
            "bn_statistics='moving' to use its running statistics (PyTorch's "
            "eval()), and call it with training=True for per-batch statistics. "
            f"Received: bn_statistics={bn_statistics!r}"
        )

    kwargs = {key: value for key, value in arch.items() if key != "netG"}
    cls = ResnetGenerator if "n_blocks" in arch else UnetGenerator
    network = cls(**kwargs, name=name, dtype=dtype)
    if arch["norm"] == "none":
        state_dict = _with_zero_biases(network, state_dict)
    load_state_dict(network, state_dict)
    if arch["norm"] == "batch" and bn_statistics == "image":
        return _with_image_statistics(network)
    return network


def _with_image_statistics(network):
    """A copy of a batch-norm network whose norms use each image's statistics.

    BatchNorm in training mode on one image normalizes with that image's mean
    and (biased) variance over height and width, then applies gamma and beta:
    exactly an affine instance norm. The running statistics go unused.
    """

    def clone(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            return InstanceNormalization(
                epsilon=layer.epsilon,
                center=True,
                scale=True,
                dtype=layer.dtype_policy,
                name=layer.name,
            )
        return layer.__class__.from_config(layer.get_config())

    def call(layer, *args, **kwargs):
        if isinstance(layer, InstanceNormalization):
            kwargs.pop("mask", None)  # recorded for BatchNormalization's signature
            kwargs.pop("training", None)
        return layer(*args, **kwargs)

    image_net = keras.models.clone_model(network, clone_function=clone, call_function=call)
    for layer in network.layers:
        copy = image_net.get_layer(layer.name)
        if isinstance(layer, keras.layers.BatchNormalization):
            copy.gamma.assign(layer.gamma)
            copy.beta.assign(layer.beta)
        elif layer.weights:
            copy.set_weights(layer.get_weights())
    return image_net


def import_discriminator(source, *, ndf=None, n_layers=None, norm=None, name="D", dtype=None):
    """A PatchGAN or PixelGAN discriminator with the weights of a PyTorch state_dict.

    The authors publish only generators; this reads discriminators of models
    trained with their code (`latest_net_D_A.pth`), e.g. to fine-tune.
    Arguments confirm the file (a conflict raises); loading is strict.

    Args:
        source: a `.pth`/`.pt`, `.npz` or `.safetensors` path, or a state_dict.
        ndf, n_layers, norm: must match the file when given.
        name: the network's name (e.g. "D_Y").
        dtype: dtype policy of the network.

    Returns:
        a PatchDiscriminator or PixelDiscriminator.
    """
    state_dict = _clean(_state_dict_of(source))
    return _naming(source, lambda: _import_discriminator(
        state_dict, ndf, n_layers, norm, name, dtype))


def _import_discriminator(state_dict, ndf, n_layers, norm, name, dtype):
    arch = infer_discriminator(state_dict)
    holds = f"a {arch['netD']} discriminator (ndf={arch['ndf']}, norm={arch['norm']!r})"
    _check_override("ndf", ndf, arch["ndf"], holds)
    _check_override("n_layers", n_layers, arch.get("n_layers"), holds)
    _check_override("norm", norm, arch["norm"], holds)
    kwargs = {key: value for key, value in arch.items() if key != "netD"}
    cls = PixelDiscriminator if arch["netD"] == "pixel" else PatchDiscriminator
    network = cls(**kwargs, name=name, dtype=dtype)
    if arch["norm"] == "none":
        state_dict = _with_zero_biases(network, state_dict)
    load_state_dict(network, state_dict)
    return network


def import_to_keras(path, out=None, overwrite=False, **overrides):
    """Imports a PyTorch generator file and saves it as a `.keras` file.

    What `tfcyclegan import-torch PATH` runs. The saved file reloads with
    `keras.saving.load_model` after `import tfcyclegan`.

    Args:
        path: the `.pth`/`.pt`, `.npz` or `.safetensors` file.
        out: the `.keras` file to write, atomically; default: `path` with the
            suffix `.keras`, e.g. `horse2zebra.keras`. Replaced only with `overwrite`.
        **overrides: `import_generator` arguments (`netG`, `ngf`, `norm`,
            `dropout`, `bn_statistics`, `name`).

    Returns:
        `(model, out_path)`.
    """
    path = pathlib.Path(os.fspath(path))
    out = path.with_suffix(".keras") if out is None else pathlib.Path(os.fspath(out))
    if out.suffix != ".keras":
        raise ValueError(f"The output must be a .keras file. Received: out={str(out)!r}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists. Pass overwrite=True (import-torch --overwrite).")
    model = import_generator(path, **overrides)
    out.parent.mkdir(parents=True, exist_ok=True)
    with fileio.atomic_path(out, suffix=".keras") as tmp:
        model.save(tmp)
    return model, out
