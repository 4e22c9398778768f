"""tfcyclegan.legacy: `.keras` files saved before the speed forms moved behind
tfcyclegan.kernels (by 28e77a5, tests/data/legacy/make_fixtures.py) still load, with
the numbers they gave then."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from tfcyclegan import legacy

LEGACY = Path(__file__).parent / "data" / "legacy"
FILES = sorted(path.stem for path in LEGACY.glob("*.keras"))
# The translations were computed eagerly, as they are now: only the order of float32
# sums may differ.
TOLERANCE = 1e-5


def test_every_method_has_a_file():
    assert {"cyclegan_resnet", "cyclegan_resize_conv", "cyclegan_mobile", "pix2pix_unet", "cut_resnet"} <= set(FILES)


@pytest.mark.parametrize("stem", FILES)
def test_old_files_load_with_their_weights_and_translate_as_they_did(stem, tmp_path):
    outputs = np.load(LEGACY / "outputs.npz")
    assert legacy.old_weight_groups_in(LEGACY / f"{stem}.keras"), "the file names a former class"
    model = legacy.load_model(LEGACY / f"{stem}.keras")
    images = outputs["unet_images"] if stem.startswith("pix2pix") else outputs["images"]
    directions = [key.rsplit("_", 1)[1] for key in outputs.files if key.startswith(stem + "_")]
    assert directions
    for direction in directions:
        np.testing.assert_allclose(
            np.asarray(model.translate(images, direction=direction)),
            outputs[f"{stem}_{direction}"],
            atol=TOLERANCE,
            err_msg=f"{stem} {direction}",
        )
    # Saved again, it names only today's classes, and loads without the upgrade.
    again = tmp_path / "again.keras"
    model.save(again)
    assert not legacy.old_weight_groups_in(again)
    with zipfile.ZipFile(again) as archive:
        assert b"EigenConv2D" not in archive.read("config.json")
    import keras

    reloaded = keras.saving.load_model(again)
    np.testing.assert_allclose(
        np.asarray(reloaded.translate(images, direction=directions[0])),
        outputs[f"{stem}_{directions[0]}"],
        atol=TOLERANCE,
    )


def test_the_package_loaders_upgrade_old_files():
    """A run folder's model.keras and a .keras given to translate/export."""
    from tfcyclegan.export.loading import load_keras

    outputs = np.load(LEGACY / "outputs.npz")
    import keras

    from tfcyclegan import runs

    run_model = runs._load_keras_file(keras, str(LEGACY / "cyclegan_resnet.keras"))  # model.keras of a run
    np.testing.assert_allclose(
        np.asarray(run_model.translate(outputs["images"])), outputs["cyclegan_resnet_a2b"], atol=TOLERANCE
    )
    loaded = load_keras(str(LEGACY / "cyclegan_resnet.keras"))
    np.testing.assert_allclose(
        np.asarray(loaded.translate(outputs["images"], direction="b2a")),
        outputs["cyclegan_resnet_b2a"],
        atol=TOLERANCE,
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
