"""The registry of methods: lookups, what each record says, and what asks it."""

import csv
import dataclasses
import inspect

import keras
import numpy as np
import pytest

from tfcyclegan import export, methods, runs
from tfcyclegan.config import METHODS, Config, DistillConfig, ModelConfig
from tfcyclegan.models.base import TranslationModel

TINY = dict(ngf=4, ndf=4, discriminator="n_layers", n_layers_d=1)
# Each method's smallest generator its defaults allow (CUT's layers fit 2 blocks).
GENERATORS = {"cyclegan": "resnet_1blocks", "pix2pix": "unet_128", "cut": "resnet_2blocks",
              "fastcut": "resnet_2blocks"}
TRAINABLE = tuple(GENERATORS)


def tiny_config(name):
    config = Config.for_method(name)
    model = config.model.replace(generator=GENERATORS[name], nce_layers=(0, 4, 8), **TINY)
    return config.replace(model=model, train=config.train.replace(seed=0))


def test_unknown_method_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"`method` must be one of \['cyclegan', 'pix2pix', 'cut', "
                                         r"'fastcut', 'distill'\]. Received: method='cyclegann'"):
        methods.method("cyclegann")


def test_the_config_validates_against_the_registry():
    assert METHODS == methods.names()
    with pytest.raises(ValueError, match="method='unit'"):
        ModelConfig(method="unit")


@pytest.mark.parametrize("name", methods.names())
def test_every_setting_is_a_config_field_and_an_argument_of_the_model(name):
    record = methods.method(name)
    sections = {"model": ModelConfig, "train": type(Config().train), "distill": DistillConfig}
    compile_arguments = inspect.signature(record.model_class.compile).parameters
    build_arguments = inspect.signature(record.model_class.from_model_config).parameters
    for setting in record.settings:
        section, field = setting.split(".")
        assert field in {f.name for f in dataclasses.fields(sections[section])}, setting
    for setting in record.compile_settings:
        assert setting.split(".")[1] in compile_arguments, setting
    for argument in [s.split(".")[1] for s in record.build_settings] + list(record.model_arguments):
        assert argument in build_arguments, argument
    assert issubclass(record.model_class, TranslationModel)


def owners(setting):
    return [name for name in methods.names() if setting in methods.method(name).settings]


def test_settings_say_which_method_uses_which_weight():
    assert owners("train.lambda_l1") == ["pix2pix"]
    assert owners("train.lambda_nce") == ["cut", "fastcut"]
    assert owners("train.lambda_identity") == owners("train.pool_size") == ["cyclegan"]
    assert owners("distill.lambda_feature") == ["distill"]


def test_paired_and_teacher_data_come_from_the_records():
    assert [Config.for_method(n).paired for n in TRAINABLE] == [False, True, False, False]
    # A student trains on what its teacher did; only CycleGAN teaches b2a.
    distill = DistillConfig(teacher="/runs/t", teacher_method="pix2pix")
    config = Config(model=ModelConfig(method="distill"), distill=distill)
    assert config.paired
    with pytest.raises(ValueError, match="A pix2pix teacher translates a2b only.*direction='b2a'"):
        DistillConfig(teacher="/runs/t", teacher_method="pix2pix", direction="b2a")
    with pytest.raises(ValueError, match="teacher_method='distill'"):
        DistillConfig(teacher="/runs/t", teacher_method="distill")


@pytest.mark.parametrize("name", TRAINABLE)
def test_each_method_builds_compiles_and_is_found_again(name):
    record = methods.method(name)
    config = tiny_config(name)
    model = runs.build_model(config)
    assert type(model) is record.model_class and model.method == name
    assert methods.method_of(model) is record
    assert tuple(export.generators_of(model)) == record.directions
    assert export.generators_of(model)["a2b"] is model.G
    # Its own weights reached compile; a setting of another method did not.
    arguments = runs.compile_arguments(config, steps_per_epoch=1)
    for setting in record.compile_settings:
        assert arguments[setting.split(".")[1]] == getattr(config.train, setting.split(".")[1])
    assert ("lambda_l1" in arguments) == (name == "pix2pix")
    # One name for the generators' adversarial term across methods.
    assert "G_GAN" in {metric.name for metric in model.metrics}


def test_method_of_anything_else_is_none():
    assert methods.method_of(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])) is None
    assert methods.method_of("cyclegan") is None


@pytest.mark.parametrize("name, expected", [
    ("cyclegan", {"G", "F", "D_X", "D_Y", "pool_x", "pool_y", "optimizer_0", "optimizer_1", "step"}),
    ("pix2pix", {"G", "D", "optimizer_0", "optimizer_1", "step"}),
    ("cut", {"G", "H", "D", "draws", "optimizer_0", "optimizer_1", "step"}),
])
def test_training_checkpoints_keep_their_object_names(name, expected):
    # Checkpoints of runs made before the base class existed must still restore.
    _, step, checkpoint = runs.restorable_model(tiny_config(name).replace(
        data=Config().data.replace(load_size=32, crop_size=32)))
    assert set(checkpoint._trackable_children()) == expected


def test_a_resumed_history_gets_todays_metric_names(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,D_X,D_Y,F_adv,G_adv,total,val_F_adv,val_G_adv\n0,1,2,3,4,5,6,7\n")
    assert runs.upgrade_history(path)
    assert not runs.upgrade_history(path)  # already current
    assert not runs.upgrade_history(tmp_path / "missing.csv")
    logger = keras.callbacks.CSVLogger(str(path), append=True)
    logger.on_train_begin()
    logs = {"D_X": 10, "D_Y": 20, "F_GAN": 30, "G_GAN": 40, "total": 50, "val_F_GAN": 60,
            "val_G_GAN": 70}
    logger.on_epoch_end(1, logs)
    logger.on_train_end()
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(rows[0]["G_GAN"]), float(rows[1]["G_GAN"])] == [4, 40]
    assert [float(rows[0]["val_F_GAN"]), float(rows[1]["val_F_GAN"])] == [6, 60]
    np.testing.assert_array_equal([float(r["total"]) for r in rows], [5, 50])
