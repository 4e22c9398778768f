"""Shared test settings: quiet TensorFlow, seeded, float32 policy restored."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib

import keras
import numpy as np
import pytest

DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _seeded_float32():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
