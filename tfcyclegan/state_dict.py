"""PyTorch state_dicts: reading and writing the files, and loading them into Keras.

A state_dict maps PyTorch's parameter names (`model.1.weight`,
`Mixed_5b.branch1x1.bn.running_mean`) to tensors. Two importers use it: the
authors' CycleGAN / pix2pix networks (`torch_import`) and pytorch-fid's
Inception (`inception`). Each knows its own names (a key map); this module
holds what they share:

- `read_state_dict`, `write_state_dict`: `.pth`/`.pt` (PyTorch, always
  `weights_only=True`), `.npz` and `.safetensors` (neither needs torch).
- `layer_keys`: the keys and Keras variables of one convolution or norm
  layer, so the PyTorch names of batch norm's parameters are written once.
- `assign_state_dict`: copies a state_dict into the variables of a key map,
  all or nothing, listing every missing key, unexpected key and shape
  mismatch when it does not fit.
- `variables_to_state_dict`: the way back, in PyTorch's layouts.

Layouts: `Conv2d.weight` is `(out, in, kh, kw)` and Keras's Conv2D kernel is
`(kh, kw, in, out)`; `ConvTranspose2d.weight` is `(in, out, kh, kw)` and
Keras's Conv2DTranspose kernel is `(kh, kw, out, in)`. Both are
`w.transpose(2, 3, 1, 0)`.
"""

import collections
import collections.abc
import os
import pathlib
import pickle

import keras
import numpy as np

# PyTorch BatchNorm2d's parameters and buffers and their Keras names.
BATCH_NORM = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}
# `num_batches_tracked` only matters when BatchNorm2d's momentum is None,
# which neither the authors' networks nor pytorch-fid's use.
IGNORED_SUFFIXES = ("num_batches_tracked",)
# Errors list at most this many keys of each kind.
_SHOWN = 20

# =============================================================================
# Keys, layouts and the all-or-nothing assignment
# =============================================================================


def layer_keys(prefix, layer):
    """The state_dict keys of one layer, under the PyTorch module path `prefix`.

    Args:
        prefix: the layer's PyTorch module path, e.g. `model.1`.
        layer: a convolution (`kernel`, optional `bias`), a batch norm
            (`gamma`, `beta` and the moving statistics) or an instance norm
            (`gamma` and `beta` when affine, else nothing, like PyTorch's).

    Returns:
        dict `torch_key -> (variable, is_kernel)`; kernels need the layout
        transpose.
    """
    if hasattr(layer, "moving_mean"):
        return {
            f"{prefix}.{torch_name}": (getattr(layer, keras_name), False)
            for torch_name, keras_name in BATCH_NORM.items()
        }
    keys = {}
    if hasattr(layer, "kernel"):
        keys[f"{prefix}.weight"] = (layer.kernel, True)
        if layer.bias is not None:
            keys[f"{prefix}.bias"] = (layer.bias, False)
        return keys
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


def torch_shape(keras_shape, is_kernel):
    """The PyTorch shape of a Keras variable's shape."""
    shape = tuple(int(d) for d in keras_shape)
    if is_kernel:
        kh, kw, a, b = shape
        return (b, a, kh, kw)
    return shape


def assign_state_dict(key_map, state_dict, *, title, ignored=(), optional=None, hint=None):
    """Copies a PyTorch state_dict into the variables of `key_map`, all or nothing.

    `num_batches_tracked` buffers, bookkeeping keys starting with `__` and the
    keys in `ignored` are left out before comparing; a `module.` prefix on
    every key (DataParallel) is dropped.

    Args:
        key_map: dict `torch_key -> (variable, is_kernel)`, every weight the
            network needs (see `layer_keys`).
        state_dict: mapping of PyTorch key to array (numpy or anything
            `np.asarray` accepts), e.g. from `read_state_dict`.
        title: the error's first line, naming what the state_dict should be.
        ignored: keys dropped if present (stale buffers the network lacks).
        optional: dict `torch_key -> PyTorch shape` of keys the file may hold
            or lack; when present their shape is checked, and nothing is
            assigned from them.
        hint: a line added to the error, e.g. what the file looks like instead.

    Raises:
        ValueError: `title`, then every missing key, unexpected key and shape
            mismatch (shapes in PyTorch's layout), at most 20 of each.
            Nothing is assigned unless everything fits.
    """
    optional = optional or {}
    given = {
        key: value
        for key, value in strip_data_parallel(state_dict).items()
        if not key.endswith(IGNORED_SUFFIXES) and not key.startswith("__") and key not in ignored
    }
    missing = sorted(set(key_map) - set(given))
    unexpected = sorted(set(given) - set(key_map) - set(optional))
    mismatched = []
    values = {}
    for key in sorted(set(given) & (set(key_map) | set(optional))):
        value = np.asarray(given[key], dtype=np.float32)
        if key in key_map:
            variable, is_kernel = key_map[key]
            wanted = torch_shape(variable.shape, is_kernel)
        else:
            wanted = tuple(optional[key])
        if value.shape != wanted:
            mismatched.append(f"{key}: got shape {value.shape}, expected {wanted}")
        elif key in key_map:
            values[key] = value.transpose(2, 3, 1, 0) if is_kernel else value
    if missing or unexpected or mismatched:
        lines = [title]
        for kind, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        ):
            if items:
                more = [f"... and {len(items) - _SHOWN} more"] if len(items) > _SHOWN else []
                lines.append(f"  {kind} ({len(items)}): " + ", ".join(items[:_SHOWN] + more))
        if hint:
            lines.append(f"  {hint}")
        raise ValueError("\n".join(lines))
    for key, value in values.items():
        key_map[key][0].assign(value)


def variables_to_state_dict(key_map):
    """The variables of `key_map` as a state_dict: PyTorch's keys and layouts.

    The inverse of `assign_state_dict`. Returns a dict of PyTorch key to
    float32 numpy array, in the key map's order.
    """
    state_dict = {}
    for key, (variable, is_kernel) in key_map.items():
        value = np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)
        # (kh, kw, in, out) -> (out, in, kh, kw); the transposed convolution's
        # (kh, kw, out, in) -> (in, out, kh, kw) is the same permutation.
        state_dict[key] = np.ascontiguousarray(value.transpose(3, 2, 0, 1) if is_kernel else value)
    return state_dict


# =============================================================================
# Files
# =============================================================================

_TORCH_SUFFIXES = (".pth", ".pt")
_SUFFIXES = (*_TORCH_SUFFIXES, ".npz", ".safetensors")


def read_state_dict(path):
    """Reads a state_dict from a `.pth`/`.pt`, `.npz` or `.safetensors` file.

    PyTorch files are opened with `torch.load(weights_only=True)`: tensors and
    plain containers only, so opening a file never runs code from it. `.npz`
    (with `allow_pickle=False`) and `.safetensors` need no torch.

    Args:
        path: the file. The authors' pretrained files (`latest_net_G.pth`,
            `horse2zebra.pth`, ...) are plain state_dicts and read as they are.

    Returns:
        dict of key to numpy array, in file order; floating-point tensors are
        float32.

    Raises:
        FileNotFoundError: no such file.
        ImportError: a `.pth` file and no torch installed.
        ValueError: an unknown suffix, a truncated or corrupt file, a file that
            holds something other than a flat mapping of names to tensors, or
            a pickle that `weights_only` refuses. The message names the path.
    """
    path = pathlib.Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"No state_dict file at {path}")
    suffix = path.suffix.lower()
    if suffix in _TORCH_SUFFIXES:
        state_dict = _read_torch(path)
    elif suffix == ".npz":
        state_dict = _read_npz(path)
    elif suffix == ".safetensors":
        state_dict = _read_safetensors(path)
    else:
        raise ValueError(
            f"Cannot read {path}: a state_dict file must end in one of {list(_SUFFIXES)}. "
            f"Received: suffix={suffix!r}"
        )
    if not state_dict:
        raise ValueError(f"{path} holds no tensors.")
    return state_dict


def _first_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}"


def _corrupt(path, kind, error):
    return ValueError(
        f"{path} is not a readable {kind} file (truncated, corrupt or another "
        f"format?): {_first_line(error)}"
    )


def _read_torch(path):
    try:
        import torch
    except ImportError as err:
        raise ImportError(
            f"Reading {path} needs PyTorch: pip install 'tfcyclegan[torch]' (the CPU "
            "build is enough). Or convert it once, where torch is installed, to a "
            ".npz or .safetensors file, which tfcyclegan reads without torch: "
            'python -c "import sys, torch, numpy; numpy.savez(sys.argv[2], '
            "**{k: v.float().numpy() for k, v in torch.load(sys.argv[1], "
            'weights_only=True).items()})" net_G.pth net_G.npz'
        ) from err
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            raise ValueError(
                f"{path} holds Python objects besides tensors, which "
                "torch.load(weights_only=True) refuses to unpickle: loading them "
                "could run arbitrary code. Only load files from a source you "
                "trust; save just the network's weights with "
                "torch.save(net.state_dict(), path)."
            ) from err
        raise _corrupt(path, "PyTorch", err) from err
    except Exception as err:  # zip, pickle and storage errors differ by format
        raise _corrupt(path, "PyTorch", err) from err
    if not isinstance(contents, collections.abc.Mapping):
        raise ValueError(
            f"{path} holds a {type(contents).__name__}, not a state_dict (a mapping "
            "of parameter names to tensors)."
        )
    others = [key for key, value in contents.items() if not isinstance(value, torch.Tensor)]
    if others:
        nested = [key for key in others if isinstance(contents[key], collections.abc.Mapping)]
        hint = (
            f" It looks like a training checkpoint with the weights under {nested[0]!r}; "
            f"save that entry on its own: torch.save(checkpoint[{nested[0]!r}], 'net_G.pth')."
            if nested
            else ""
        )
        raise ValueError(
            f"{path} is not a plain state_dict: {len(others)} entries are not tensors "
            f"({', '.join(repr(k) for k in others[:5])}). The authors' pretrained "
            f"files are plain state_dicts.{hint}"
        )
    state_dict = {}
    for key, tensor in contents.items():
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point():  # float16 / bfloat16 have no exact numpy twin
            tensor = tensor.float()
        state_dict[str(key)] = tensor.numpy()
    return state_dict


def _read_npz(path):
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive of named arrays")
        with archive:
            return {key: archive[key] for key in archive.files}
    except Exception as err:
        raise _corrupt(path, ".npz", err) from err


def _read_safetensors(path):
    try:
        from safetensors.numpy import load_file
    except ImportError as err:
        raise ImportError(f"Reading {path} needs safetensors: pip install safetensors") from err
    try:
        return dict(load_file(path))
    except Exception as err:
        raise _corrupt(path, ".safetensors", err) from err


def write_state_dict(state_dict, path):
    """Writes a state_dict as `.pth`/`.pt` (needs torch), `.npz` or `.safetensors`.

    The `.pth` file is a plain state_dict, as the authors save theirs, so
    `net.load_state_dict(torch.load(path))` reads it in PyTorch.

    Args:
        state_dict: mapping of key to array, e.g. `export_state_dict(network)`.
        path: where to write; the suffix picks the format.

    Returns:
        the path written, as a `pathlib.Path`.
    """
    path = pathlib.Path(os.fspath(path))
    arrays = {str(key): np.ascontiguousarray(value) for key, value in state_dict.items()}
    suffix = path.suffix.lower()
    if suffix in _TORCH_SUFFIXES:
        try:
            import torch
        except ImportError as err:
            raise ImportError(
                f"Writing {path} needs PyTorch: pip install 'tfcyclegan[torch]', or "
                "write a .npz or .safetensors file instead."
            ) from err
        torch.save(collections.OrderedDict(
            (key, torch.from_numpy(value)) for key, value in arrays.items()
        ), path)
    elif suffix == ".npz":
        np.savez(path, **arrays)
    elif suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(arrays, path)
    else:
        raise ValueError(
            f"Cannot write {path}: the suffix must be one of {list(_SUFFIXES)}. "
            f"Received: suffix={suffix!r}"
        )
    return path
