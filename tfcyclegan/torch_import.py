"""Load the authors' PyTorch weights (state_dicts) into tfcyclegan networks.

The key map below is the single place that knows how PyTorch's
`models/networks.py` names its parameters; the fidelity tests and the
pretrained-model importer both go through `load_state_dict`.

Layouts: `Conv2d.weight` is `(out, in, kh, kw)` and Keras's Conv2D kernel is
`(kh, kw, in, out)`; `ConvTranspose2d.weight` is `(in, out, kh, kw)` and
Keras's Conv2DTranspose kernel is `(kh, kw, out, in)`. Both are
`w.transpose(2, 3, 1, 0)`.
"""

import numpy as np

from tfcyclegan.networks import (
    PatchDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    UnetGenerator,
)

# PyTorch BatchNorm2d's buffers and their Keras names. `num_batches_tracked`
# only matters when momentum is None, which the reference never uses.
_BATCH_NORM = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}
_IGNORED_SUFFIXES = ("num_batches_tracked",)


def _resnet_layers(net):
    """(keras layer path, torch module prefix) pairs of a ResnetGenerator."""
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


def _unet_layers(net):
    pairs = [("down0_conv", "model.model.0"), ("up0_conv", "model.model.3")]
    prefix = "model.model.1.model."
    for i in range(1, net.num_downs):
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
        prefix += "3.model."
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


def torch_key_map(network):
    """Maps every PyTorch state_dict key the network expects to its Keras variable.

    Returns:
        dict `torch_key -> (variable, is_kernel)`; kernels need the layout
        transpose. Norm layers without parameters (instance norm) have no keys,
        exactly like the reference.
    """
    for cls, layers_of in _LAYER_MAPS:
        if isinstance(network, cls):
            break
    else:
        raise TypeError(
            "torch_key_map needs a ResnetGenerator, UnetGenerator, "
            f"PatchDiscriminator or PixelDiscriminator. Received: {type(network).__name__}"
        )
    keys = {}
    for path, prefix in layers_of(network):
        layer = _find_layer(network, path)
        if layer is None:  # norm="none" has no norm layers
            continue
        if hasattr(layer, "moving_mean"):
            for torch_name, keras_name in _BATCH_NORM.items():
                keys[f"{prefix}.{torch_name}"] = (getattr(layer, keras_name), False)
        elif hasattr(layer, "kernel"):
            keys[f"{prefix}.weight"] = (layer.kernel, True)
            if layer.bias is not None:
                keys[f"{prefix}.bias"] = (layer.bias, False)
        else:  # InstanceNormalization, affine or not
            if getattr(layer, "gamma", None) is not None:
                keys[f"{prefix}.weight"] = (layer.gamma, False)
            if getattr(layer, "beta", None) is not None:
                keys[f"{prefix}.bias"] = (layer.beta, False)
    return keys


def strip_data_parallel(state_dict):
    """Drops the `module.` prefix `torch.nn.DataParallel` adds to every key."""
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module."):]: value for key, value in state_dict.items()}
    return dict(state_dict)


def load_state_dict(network, state_dict):
    """Copies a PyTorch state_dict into `network`, all or nothing.

    Args:
        network: a tfcyclegan generator or discriminator.
        state_dict: mapping of PyTorch key to array (numpy or anything
            `np.asarray` accepts), e.g. from `torch.load` or an `.npz`.

    Raises:
        ValueError: listing every missing key, unexpected key and shape
            mismatch. Nothing is assigned unless everything matches.
    """
    state_dict = strip_data_parallel(state_dict)
    expected = torch_key_map(network)
    given = {
        key: value
        for key, value in state_dict.items()
        if not key.endswith(_IGNORED_SUFFIXES) and not key.startswith("__")
    }
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    mismatched = []
    values = {}
    for key in sorted(set(expected) & set(given)):
        variable, is_kernel = expected[key]
        value = np.asarray(given[key], dtype=np.float32)
        if is_kernel:
            if value.ndim != 4:
                mismatched.append(f"{key}: got shape {value.shape}, expected a 4-D weight")
                continue
            value = value.transpose(2, 3, 1, 0)
        if tuple(value.shape) != tuple(variable.shape):
            torch_shape = tuple(np.asarray(given[key]).shape)
            mismatched.append(
                f"{key}: got shape {torch_shape}, the network needs "
                f"{_torch_shape(variable.shape, is_kernel)}"
            )
            continue
        values[key] = value
    if missing or unexpected or mismatched:
        lines = [f"The state_dict does not fit {network.__class__.__name__} '{network.name}':"]
        for title, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        ):
            if items:
                shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
                lines.append(f"  {title} ({len(items)}): " + ", ".join(shown))
        raise ValueError("\n".join(lines))
    for key, value in values.items():
        expected[key][0].assign(value)


def _torch_shape(keras_shape, is_kernel):
    shape = tuple(int(d) for d in keras_shape)
    if is_kernel:
        kh, kw, a, b = shape
        return (b, a, kh, kw)
    return shape
