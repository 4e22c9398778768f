"""`.keras` files saved by an earlier tfcyclegan still load and translate the same.

tests/data/legacy holds tiny models of every method saved by 28e77a5 (see its
make_fixtures.py) and the translations they gave then; a change of class names,
weight paths or configs that breaks old files fails here.
"""

from pathlib import Path

import keras
import numpy as np
import pytest

import tfcyclegan  # noqa: F401  (registers the classes the files name)
from tfcyclegan.models.base import TranslationModel

LEGACY = Path(__file__).parent / "data" / "legacy"
FILES = {
    # stem: (method the file holds, directions it translates, input images in outputs.npz)
    "cyclegan_resnet": ("cyclegan", ("a2b", "b2a"), "images"),
    "cyclegan_resize_conv": ("cyclegan", ("a2b", "b2a"), "images"),
    "cyclegan_mobile": ("cyclegan", ("a2b", "b2a"), "images"),
    "pix2pix_unet": ("pix2pix", ("a2b",), "unet_images"),
    "cut_resnet": ("cut", ("a2b",), "images"),
}


@pytest.fixture(scope="module")
def outputs():
    with np.load(LEGACY / "outputs.npz") as arrays:
        return dict(arrays)


def test_every_fixture_is_checked():
    assert {path.stem for path in LEGACY.glob("*.keras")} == set(FILES)


@pytest.mark.parametrize("stem", sorted(FILES))
def test_legacy_file_loads_and_translates_as_saved(stem, outputs):
    method, directions, inputs = FILES[stem]
    model = keras.saving.load_model(LEGACY / f"{stem}.keras")
    assert isinstance(model, TranslationModel)
    assert model.method == method
    for direction in directions:
        np.testing.assert_allclose(
            model.translate(outputs[inputs], direction=direction),
            outputs[f"{stem}_{direction}"],
            atol=1e-5,
            err_msg=f"{stem} {direction}",
        )
