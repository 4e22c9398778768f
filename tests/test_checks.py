"""The one integer check: what it accepts, and each of its error messages."""

import json

import numpy as np
import pytest

from tfcyclegan.checks import check_int
from tfcyclegan.config import Config, DataConfig


def test_integers_at_or_above_the_minimum_pass_as_python_ints():
    assert check_int("epochs", 0, 0) == 0
    assert check_int("epochs", 200, 1) == 200
    value = check_int("batch_size", np.int64(4), 1)  # a count computed with numpy
    assert value == 4 and type(value) is int


def test_a_value_below_the_minimum_is_refused():
    with pytest.raises(ValueError, match=r"^`epochs` must be an integer >= 1\. Received: epochs=0$"):
        check_int("epochs", 0, 1)


@pytest.mark.parametrize("value", [True, False, 2.0, "3", None], ids=repr)
def test_what_is_not_an_integer_is_refused(value):
    # bools are ints to Python, but `epochs=True` is a mistake, never a count.
    with pytest.raises(ValueError, match=rf"^`epochs` must be an integer >= 0\. Received: epochs={value!r}$"):
        check_int("epochs", value, 0)


def test_the_owner_is_named_first():
    with pytest.raises(ValueError, match=r"^ResnetGenerator: `ngf` must be an integer >= 1\. Received: ngf=0$"):
        check_int("ngf", 0, 1, owner="ResnetGenerator")


def test_the_hint_says_why():
    with pytest.raises(
        ValueError,
        match=r"^`version` must be an integer >= 1 \(TF Serving loads numbered folders\)\. Received: version=0$",
    ):
        check_int("version", 0, 1, hint="TF Serving loads numbered folders")


def test_config_keeps_python_ints_so_that_it_writes_json():
    config = Config(data=DataConfig(batch_size=np.int64(2), load_size=np.int32(143), crop_size=128))
    assert type(config.data.batch_size) is int and type(config.data.load_size) is int
    assert json.loads(config.to_json())["data"]["batch_size"] == 2
    with pytest.raises(ValueError, match="`batch_size` must be an integer >= 1. Received: batch_size=True"):
        DataConfig(batch_size=True)
