import json

import pytest

from tfcyclegan.config import (
    NCE_LAYERS,
    Config,
    DataConfig,
    ModelConfig,
    TrainConfig,
    parse_generator,
)


def test_defaults_are_the_papers():
    config = Config()
    assert config.model.generator == "resnet_9blocks"
    assert (config.model.ngf, config.model.ndf, config.model.d_layers) == (64, 64, 3)
    assert config.model.norm == "instance"
    assert (config.data.load_size, config.data.crop_size, config.data.flip) == (286, 256, True)
    assert config.data.batch_size == 1
    train = config.train
    assert (train.gan_mode, train.lambda_a, train.lambda_b, train.lambda_identity) == (
        "lsgan", 10.0, 10.0, 0.5)
    assert (train.pool_size, train.learning_rate, train.beta_1) == (50, 2e-4, 0.5)
    assert (train.epochs, train.epochs_decay) == (100, 100)


def test_json_round_trip(tmp_path):
    config = Config(
        model=ModelConfig(generator="unet_128", ngf=8),
        data=DataConfig(load_size=72, crop_size=64),
        train=TrainConfig(lambda_a=5.0, seed=3),
    )
    path = tmp_path / "config.json"
    config.save(path)
    assert Config.load(path) == config
    assert json.loads(path.read_text())["model"]["generator"] == "unet_128"


@pytest.mark.parametrize(
    "name, expected",
    [("resnet_9blocks", ("resnet", 9)), ("resnet_6blocks", ("resnet", 6)),
     ("resnet_2blocks", ("resnet", 2)), ("unet_128", ("unet", 7)), ("unet_256", ("unet", 8)),
     ("color", ("color", 3))],
)
def test_parse_generator(name, expected):
    assert parse_generator(name) == expected


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (ModelConfig, {"generator": "resnet_x"}, "generator='resnet_x'"),
        (ModelConfig, {"norm": "layer"}, "norm='layer'"),
        (ModelConfig, {"ngf": 0}, "ngf=0"),
        (ModelConfig, {"discriminator": "huge"}, "discriminator='huge'"),
        (ModelConfig, {"nce_layers": ()}, r"nce_layers=\(\)"),
        (ModelConfig, {"nce_layers": (0, -4)}, r"nce_layers=\(0, -4\)"),
        (ModelConfig, {"nce_layers": "0,4"}, "nce_layers='0,4'"),
        (ModelConfig, {"generator": "color", "upsample": "resize_conv"},
         r"without upsampling .* --upsample transpose\)\. Received: upsample='resize_conv'"),
        (ModelConfig, {"generator": "color", "dropout": True}, r"--no-dropout\)\. Received: dropout=True"),
        (ModelConfig, {"generator": "color", "output_channels": 1},
         "same channels. Received: input_channels=3, output_channels=1"),
        (DataConfig, {"preprocess": "zoom"}, "preprocess='zoom'"),
        (DataConfig, {"crop_size": 300}, "crop_size=300, load_size=286"),
        (DataConfig, {"channels": 4}, "channels=4"),
        (DataConfig, {"batch_size": 0}, "batch_size=0"),
        (TrainConfig, {"gan_mode": "wgan"}, "gan_mode='wgan'"),
        (TrainConfig, {"lambda_a": -1.0}, "lambda_a=-1.0"),
        (TrainConfig, {"beta_1": 1.0}, "beta_1=1.0"),
        (TrainConfig, {"pool_size": -1}, "pool_size=-1"),
        (TrainConfig, {"epochs": 0, "epochs_decay": 0}, "epochs_decay=0"),
        (TrainConfig, {"mixed_precision": "fp8"}, "mixed_precision='fp8'"),
        (TrainConfig, {"deterministic": True, "jit_compile": True}, "exclude each other"),
    ],
)
def test_bad_values_are_named(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_nce_layers_round_trip_and_default_for_older_config_files(tmp_path):
    config = Config.for_method("cut").replace(model=ModelConfig(method="cut", nce_layers=[0, 4, 8]))
    assert config.model.nce_layers == (0, 4, 8)  # a list (as JSON gives) becomes a tuple
    path = tmp_path / "config.json"
    config.save(path)
    assert json.loads(path.read_text())["model"]["nce_layers"] == [0, 4, 8]
    assert Config.load(path) == config
    # config.json files written before the field existed get the authors' layers.
    assert Config.from_dict({"model": {"method": "cut"}}).model.nce_layers == NCE_LAYERS == (0, 4, 8, 12, 16)


def test_unknown_keys_are_rejected():
    with pytest.raises(ValueError, match=r"Unknown ModelConfig keys: \['ngff'\]"):
        Config.from_dict({"model": {"ngff": 3}})
    with pytest.raises(ValueError, match=r"Unknown config sections: \['optim'\]"):
        Config.from_dict({"optim": {}})
    with pytest.raises(ValueError, match="not valid JSON"):
        Config.from_json("{model:")


def test_diff_names_changed_values():
    a = Config()
    b = a.replace(model=a.model.replace(generator="unet_256", ngf=32))
    assert a.diff(b) == [
        "model.generator: 'resnet_9blocks' -> 'unet_256'",
        "model.ngf: 64 -> 32",
    ]


def test_an_unknown_preset_is_named():
    with pytest.raises(ValueError, match=r"preset='fast'"):
        Config.for_method("cyclegan", preset="fast")
