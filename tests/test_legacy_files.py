"""`.keras` files saved by an earlier tfcyclegan still load and translate the same.

tests/data/legacy holds tiny models of every method saved by 28e77a5 (see its
make_fixtures.py) and the translations they gave then; a change of class names,
weight paths or configs that breaks old files fails here. Their convolutions were
`EigenConv2D`s, whose weights Keras named `eigen_conv2d_k`: `tfcyclegan.legacy`
loads them as today's `conv2d_k`.
"""

from pathlib import Path

import keras
import numpy as np
import pytest

import tfcyclegan  # noqa: F401  (registers the classes the files name)
from tfcyclegan import legacy
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
    assert legacy.old_weight_groups_in(LEGACY / f"{stem}.keras"), "the file names a former class"
    model = legacy.load_model(LEGACY / f"{stem}.keras")
    assert isinstance(model, TranslationModel)
    assert model.method == method
    for direction in directions:
        np.testing.assert_allclose(
            model.translate(outputs[inputs], direction=direction),
            outputs[f"{stem}_{direction}"],
            atol=1e-5,
            err_msg=f"{stem} {direction}",
        )


@pytest.mark.parametrize("stem", ["cyclegan_resnet", "pix2pix_unet"])
def test_a_loaded_old_file_saved_again_names_only_todays_classes(stem, outputs, tmp_path):
    method, directions, inputs = FILES[stem]
    again = tmp_path / "again.keras"
    legacy.load_model(LEGACY / f"{stem}.keras").save(again)
    assert not legacy.old_weight_groups_in(again)
    reloaded = keras.saving.load_model(again)  # Keras alone: no upgrade needed
    np.testing.assert_allclose(
        reloaded.translate(outputs[inputs], direction=directions[0]),
        outputs[f"{stem}_{directions[0]}"],
        atol=1e-5,
    )


def test_the_package_loaders_upgrade_old_files(outputs):
    """A run folder's model.keras and a .keras given to translate/export."""
    from tfcyclegan import runs
    from tfcyclegan.export.loading import load_keras

    run_model = runs._load_keras_file(keras, str(LEGACY / "cyclegan_resnet.keras"))  # model.keras of a run
    np.testing.assert_allclose(
        np.asarray(run_model.translate(outputs["images"])), outputs["cyclegan_resnet_a2b"], atol=1e-5
    )
    loaded = load_keras(str(LEGACY / "cyclegan_resnet.keras"))
    np.testing.assert_allclose(
        np.asarray(loaded.translate(outputs["images"], direction="b2a")),
        outputs["cyclegan_resnet_b2a"],
        atol=1e-5,
    )


def test_a_file_with_both_former_and_current_names_is_refused(tmp_path):
    import h5py

    weights = tmp_path / "model.weights.h5"
    with h5py.File(weights, "w") as f:
        f.create_group("G/layers/conv2d")
        f.create_group("G/layers/narrow_conv2d")
    with pytest.raises(ValueError, match="both former and current convolution names"):
        legacy.upgrade_weights(weights)


def test_group_renaming_keeps_the_numbering(tmp_path):
    import h5py

    weights = tmp_path / "model.weights.h5"
    with h5py.File(weights, "w") as f:
        for name in ("eigen_conv2d", "eigen_conv2d_1", "eigen_conv2d_12", "re_lu"):
            f.create_dataset(f"D/layers/{name}/vars/0", data=np.arange(3))
    legacy.upgrade_weights(weights)
    with h5py.File(weights, "r") as f:
        assert sorted(f["D/layers"]) == ["conv2d", "conv2d_1", "conv2d_12", "re_lu"]
        np.testing.assert_array_equal(f["D/layers/conv2d_12/vars/0"][()], np.arange(3))
