"""Shared test settings (quiet TensorFlow, seeded, float32 policy restored) and the tiny
configurations, callbacks and fixtures that several test files use.

Test files import the constants and helpers as `from tests.conftest import TINY_MODEL`;
the fixtures (`rng`, `decode_calls`) need no import.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib
import threading

import keras
import numpy as np
import pytest
from PIL import Image

from tfcyclegan.config import Config, DataConfig, ModelConfig, TrainConfig

DATA = pathlib.Path(__file__).parent / "data"

# The smallest networks every method builds: one residual block of 4 filters and a
# one-layer PatchGAN of 4. A test needing a deeper G replaces `generator` only.
TINY_MODEL = ModelConfig(generator="resnet_1blocks", ngf=4, ndf=4, discriminator="n_layers", n_layers_d=1)
# The same networks as flags of `tfcyclegan train` (and of the commands that train).
TINY_MODEL_FLAGS = ["--netG", "resnet_1blocks", "--ngf", "4", "--ndf", "4", "--netD", "n_layers",
                    "--n-layers-d", "1"]


def tiny_config(batch_size=1, **train):
    """A Config that trains TINY_MODEL on 32 px crops (of 36 px loads) for a few steps.

    Args:
        batch_size: images per step.
        **train: TrainConfig fields; by default one epoch of 2 steps, one of decay, seed 1,
            2 samples and a pool of 2 (the others are TrainConfig's defaults).
    """
    defaults = dict(epochs=1, epochs_decay=1, steps_per_epoch=2, seed=1, num_samples=2, pool_size=2)
    return Config(model=TINY_MODEL, data=DataConfig(load_size=36, crop_size=32, batch_size=batch_size),
                  train=TrainConfig(**{**defaults, **train}))


class StopAfter(keras.callbacks.Callback):
    """Stops training like a Ctrl-C would, after `steps` steps."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.steps:
            self.model.stop_training = True


def noise_image(rng, width, height, channels=3):
    """A uint8 image of uniform noise, HxW (one channel) or HxWxC."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def save_image(path, array, **kwargs):
    """Writes `array` with Pillow (kwargs go to Image.save), making folders; returns str(path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return str(path)


@pytest.fixture(autouse=True)
def _seeded_float32():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def decode_calls(monkeypatch):
    """Counts calls of decoding.decode (the pipeline's Pillow decode): a list, one item a call."""
    from tfcyclegan.data import decoding

    calls = []
    # tf.data's parallel map calls it from several threads.
    lock = threading.Lock()
    original = decoding.decode

    def counting(*args, **kwargs):
        with lock:
            calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(decoding, "decode", counting)
    return calls
