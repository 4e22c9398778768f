"""Files saved by earlier versions of tfcyclegan: what it takes to load them.

Until the CPU speed forms moved behind `tfcyclegan.kernels`, the networks'
convolutions were a class named after one of them (`EigenConv2D`, earlier
`NarrowConv2D`), and Keras names a layer's weights in `model.weights.h5` after
its class (`layers/eigen_conv2d_3/vars/0`). Those convolutions are now
`layers.Conv2D`, saved as `layers/conv2d_3`. `load_model` loads either kind of
file: an old one through a copy whose weight groups carry today's names (the
layers are numbered in the same order, so `eigen_conv2d_k` is `conv2d_k`).
`EigenConv2D` and `NarrowConv2D` stay registered for models whose config names
them (functional models built from them); new code never creates them.
"""

import os
import re
import tempfile
import zipfile

import keras

from tfcyclegan.layers import Conv2D

# Class names of former convolutions, as Keras writes them into weight paths.
_OLD_CONV_NAMES = ("eigen_conv2d", "narrow_conv2d")
_OLD_GROUP = re.compile(rf"^({'|'.join(_OLD_CONV_NAMES)})(_\d+)?$")
_WEIGHTS = "model.weights.h5"


@keras.saving.register_keras_serializable(package="tfcyclegan")
class EigenConv2D(Conv2D):
    """`Conv2D` under its former name, for configs saved before tfcyclegan.kernels."""


@keras.saving.register_keras_serializable(package="tfcyclegan")
class NarrowConv2D(Conv2D):
    """`Conv2D` under its first name, for configs saved before tfcyclegan.kernels."""


def old_weight_groups(weights_path):
    """The weight groups of an h5 weights file named after a former convolution class."""
    import h5py

    found = []
    with h5py.File(weights_path, "r") as weights:
        weights.visit(lambda name: found.append(name) if _OLD_GROUP.match(name.rsplit("/", 1)[-1]) else None)
    return found


def old_weight_groups_in(keras_path):
    """`old_weight_groups` of a `.keras` archive's weights."""
    with zipfile.ZipFile(keras_path) as archive, tempfile.TemporaryDirectory() as tmp:
        return old_weight_groups(archive.extract(_WEIGHTS, tmp))


def upgrade_weights(weights_path):
    """Renames, in place, the weight groups of former convolution classes to `conv2d[_k]`.

    Raises:
        ValueError: where a layer list holds both kinds of names (a file of the
            `NarrowConv2D` era, whose other convolutions were plain `conv2d`): the
            order of the two cannot be recovered from the file.
    """
    import h5py

    with h5py.File(weights_path, "r+") as weights:
        parents = {}
        weights.visit(
            lambda name: parents.setdefault(name.rpartition("/")[0], []).append(name.rpartition("/")[2])
        )
        for parent, children in parents.items():
            old = [child for child in children if _OLD_GROUP.match(child)]
            if not old:
                continue
            if any(re.match(r"^conv2d(_\d+)?$", child) for child in children) or len(
                {_OLD_GROUP.match(child).group(1) for child in old}
            ) > 1:
                raise ValueError(
                    f"Cannot upgrade {parent!r} of this file: it holds both former and current "
                    f"convolution names ({sorted(children)}). Load it with the tfcyclegan version "
                    "that saved it and re-save it, or re-import the weights."
                )
            group = weights[parent] if parent else weights
            for child in old:
                group.move(child, "conv2d" + (_OLD_GROUP.match(child).group(2) or ""))


def check_archive(path):
    """Refuses a `.keras` path that is not a zip archive, saying so (Keras's own message
    for a truncated file is "File not found")."""
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Cannot load {path} as a Keras model: it is not a .keras archive (a .keras "
            "file is a zip): truncated or corrupt?"
        )


def load_model(path, **kwargs):
    """`keras.saving.load_model(path)`, also for `.keras` files saved before the
    speed forms moved behind `tfcyclegan.kernels` (see the module docstring).

    Args:
        path: a `.keras` file.
        **kwargs: passed to `keras.saving.load_model`.
    """
    path = os.fspath(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile):  # not a zip: Keras says what it is
        return keras.saving.load_model(path, **kwargs)
    with archive:
        names = archive.namelist()
        if _WEIGHTS not in names:
            return keras.saving.load_model(path, **kwargs)
        with tempfile.TemporaryDirectory(prefix="tfcyclegan-upgrade-") as tmp:
            weights = archive.extract(_WEIGHTS, tmp)
            if not old_weight_groups(weights):
                return keras.saving.load_model(path, **kwargs)
            upgrade_weights(weights)
            upgraded = os.path.join(tmp, "upgraded.keras")
            with zipfile.ZipFile(upgraded, "w") as out:
                for name in names:
                    if name == _WEIGHTS:
                        out.write(weights, name)
                    else:
                        out.writestr(archive.getinfo(name), archive.read(name))
            return keras.saving.load_model(upgraded, **kwargs)
