"""The shared state_dict module: keys of a layer, layouts, the all-or-nothing assignment.

The importers built on it (the authors' networks, pytorch-fid's Inception) are
tested in tests/test_torch_import.py and tests/test_inception.py; here a tiny
convolution and batch norm stand in for a network.
"""

import re

import keras
import numpy as np
import pytest

from tfcyclegan.layers import InstanceNormalization
from tfcyclegan.state_dict import (
    assign_state_dict,
    layer_keys,
    read_state_dict,
    variables_to_state_dict,
    write_state_dict,
)

TITLE = "The state_dict does not fit the tiny network:"


def _built(layer, channels=2):
    layer.build((None, 8, 8, channels))
    return layer


@pytest.fixture
def key_map():
    """A conv (3x3, 2 -> 4, with bias) then a batch norm, under PyTorch-style paths."""
    keys = dict(layer_keys("net.0", _built(keras.layers.Conv2D(4, 3))))
    keys.update(layer_keys("net.1", _built(keras.layers.BatchNormalization(), channels=4)))
    return keys


def _torch_state_dict(rng):
    return {
        "net.0.weight": rng.normal(size=(4, 2, 3, 3)).astype(np.float32),  # (out, in, kh, kw)
        "net.0.bias": rng.normal(size=4).astype(np.float32),
        "net.1.weight": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "net.1.bias": rng.normal(size=4).astype(np.float32),
        "net.1.running_mean": rng.normal(size=4).astype(np.float32),
        "net.1.running_var": rng.uniform(0.5, 1.5, 4).astype(np.float32),
    }


def _values(key_map):
    return {key: np.asarray(variable).copy() for key, (variable, _) in key_map.items()}


def test_layer_keys_name_pytorchs_parameters():
    conv = _built(keras.layers.Conv2D(4, 3, use_bias=False))
    assert {k: is_kernel for k, (_, is_kernel) in layer_keys("c", conv).items()} == {"c.weight": True}
    bn = _built(keras.layers.BatchNormalization())
    assert list(layer_keys("b", bn)) == ["b.weight", "b.bias", "b.running_mean", "b.running_var"]
    assert layer_keys("b", bn)["b.running_var"][0] is bn.moving_variance
    affine = _built(InstanceNormalization(center=True, scale=True))
    assert list(layer_keys("n", affine)) == ["n.weight", "n.bias"]
    # PyTorch's InstanceNorm2d(affine=False) has no parameters either.
    assert layer_keys("n", _built(InstanceNormalization(center=False, scale=False))) == {}


def test_assign_then_export_is_the_identity_in_pytorchs_layout(key_map):
    given = _torch_state_dict(np.random.default_rng(0))
    assign_state_dict(key_map, given, title=TITLE)
    kernel = np.asarray(key_map["net.0.weight"][0])
    np.testing.assert_array_equal(kernel, given["net.0.weight"].transpose(2, 3, 1, 0))
    exported = variables_to_state_dict(key_map)
    assert list(exported) == list(key_map)
    for key, value in given.items():
        np.testing.assert_array_equal(exported[key], value)
        assert exported[key].flags["C_CONTIGUOUS"]


def test_bookkeeping_and_data_parallel_prefixes_are_dropped(key_map):
    given = _torch_state_dict(np.random.default_rng(1))
    given["net.1.num_batches_tracked"] = np.array(7)
    given["__meta__"] = np.array(1.0)
    given["net.2.running_mean"] = np.zeros(3)  # a stale buffer its caller names
    wrapped = {f"module.{key}": value for key, value in given.items()}
    assign_state_dict(key_map, wrapped, title=TITLE, ignored={"net.2.running_mean"})
    np.testing.assert_array_equal(np.asarray(key_map["net.0.bias"][0]), given["net.0.bias"])


def _refusal(key_map, given, **kwargs):
    before = _values(key_map)
    with pytest.raises(ValueError) as info:
        assign_state_dict(key_map, given, title=TITLE, **kwargs)
    for key, value in _values(key_map).items():  # all or nothing
        np.testing.assert_array_equal(value, before[key])
    message = str(info.value)
    assert message.startswith(TITLE + "\n")
    return message


def test_missing_keys_are_listed(key_map):
    given = _torch_state_dict(np.random.default_rng(2))
    del given["net.1.running_var"]
    assert "  missing keys (1): net.1.running_var" in _refusal(key_map, given)


def test_unexpected_keys_are_listed(key_map):
    given = _torch_state_dict(np.random.default_rng(3))
    given["net.9.weight"] = np.zeros((1, 1, 1, 1), np.float32)
    assert "  unexpected keys (1): net.9.weight" in _refusal(key_map, given)


def test_shape_mismatches_are_listed_in_pytorchs_layout(key_map):
    given = _torch_state_dict(np.random.default_rng(4))
    given["net.0.weight"] = given["net.0.weight"][:, :, :, :2]
    given["net.0.bias"] = np.zeros((), np.float32)
    message = _refusal(key_map, given)
    assert "  shape mismatches (2): net.0.bias: got shape (), expected (4,), " in message
    assert "net.0.weight: got shape (4, 2, 3, 2), expected (4, 2, 3, 3)" in message


def test_long_lists_are_cut_at_twenty(key_map):
    given = _torch_state_dict(np.random.default_rng(5))
    given.update({f"extra.{i:02d}": np.zeros(1) for i in range(25)})
    message = _refusal(key_map, given)
    assert re.search(r"unexpected keys \(25\): extra\.00, .*extra\.19, \.\.\. and 5 more$", message)


def test_optional_keys_may_be_absent_and_are_checked_when_present(key_map):
    optional = {"fc.weight": (10, 4)}
    given = _torch_state_dict(np.random.default_rng(6))
    assign_state_dict(key_map, given, title=TITLE, optional=optional)  # absent: fine
    given["fc.weight"] = np.zeros((10, 4), np.float32)
    assign_state_dict(key_map, given, title=TITLE, optional=optional)  # present: not unexpected
    given["fc.weight"] = np.zeros((1000, 4), np.float32)
    message = _refusal(key_map, given, optional=optional)
    assert "fc.weight: got shape (1000, 4), expected (10, 4)" in message
    assert "unexpected" not in message


def test_the_hint_ends_the_message(key_map):
    given = _torch_state_dict(np.random.default_rng(7))
    given["AuxLogits.fc.weight"] = np.zeros(1)
    message = _refusal(key_map, given, hint="It looks like another network.")
    assert message.endswith("\n  It looks like another network.")
    # No hint when everything fits.
    del given["AuxLogits.fc.weight"]
    assign_state_dict(key_map, given, title=TITLE, hint="never shown")


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_files_round_trip_without_torch(tmp_path, suffix):
    given = _torch_state_dict(np.random.default_rng(8))
    path = write_state_dict(given, tmp_path / f"net{suffix}")
    read = read_state_dict(path)
    assert sorted(read) == sorted(given)  # safetensors stores its keys sorted
    for key, value in given.items():
        np.testing.assert_array_equal(read[key], value)


def test_the_old_import_paths_still_work():
    from tfcyclegan import fid, inception, state_dict, torch_import

    assert torch_import.read_state_dict is state_dict.read_state_dict
    assert torch_import.write_state_dict is state_dict.write_state_dict
    assert torch_import.strip_data_parallel is state_dict.strip_data_parallel
    assert fid.FIDInceptionV3 is inception.FIDInceptionV3
    assert fid.load_fid_inception is inception.load_fid_inception
