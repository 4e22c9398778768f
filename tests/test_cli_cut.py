"""End-to-end: CUT and FastCUT from the command line (train, resume, translate, export, evaluate)."""

import json
import os

import pytest
import tensorflow as tf

from tests.conftest import TINY_MODEL_FLAGS
from tfcyclegan import cli, training
from tfcyclegan.config import NCE_LAYERS, Config
from tfcyclegan.models import CUT
from tfcyclegan.synthetic import make_paired_dataset

# End to end: each test trains through the CLI. make test-fast skips the file.
pytestmark = pytest.mark.slow

# CUT's default PatchNCE layers (0, 4, 8, 12, 16) reach past the one residual block of TINY_MODEL_FLAGS.
TINY = [*TINY_MODEL_FLAGS, "--netG", "resnet_6blocks",
        "--load-size", "36", "--crop-size", "32", "--seed", "1", "--num-samples", "2", "--progress", "0",
        "--epochs", "1", "--epochs-decay", "0", "--steps-per-epoch", "2"]


def test_nce_layers_flag_sets_the_model_config(capsys):
    def config(*flags):
        return cli.config_from_args(cli.build_parser().parse_args(["train", "--data", "d", "--method", "fastcut",
                                                                   *flags]))

    assert config().model.nce_layers == NCE_LAYERS
    assert config("--nce-layers", "0,4,8,12").model.nce_layers == (0, 4, 8, 12)
    assert cli.main(["train", "--data", "d", "--nce-layers", "0,four"]) == cli.EXIT_USAGE
    assert ("argument --nce-layers: expected comma-separated integers, e.g. 0,4,8,12,16; got '0,four'"
            in capsys.readouterr().err)
    assert cli.main(["train", "--data", "d", "--method", "cut", "--nce-layers", "0,-4"]) == cli.EXIT_FAILED
    assert "Received: nce_layers=(0, -4)" in capsys.readouterr().err
    # A student has no PatchNCE term.
    assert cli.main(["distill", "--teacher", "t", "--nce-layers", "0"]) == cli.EXIT_USAGE


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return str(make_paired_dataset(tmp_path_factory.mktemp("pairs"), n_train=4, n_test=2, size=32))


def test_a_model_that_cannot_be_built_leaves_no_run_behind(pairs, tmp_path, capsys):
    from tfcyclegan.ablate import unpaired_view

    data = str(unpaired_view(pairs, tmp_path))
    runs = tmp_path / "runs"
    args = ["train", "--method", "fastcut", "--data", data, "--runs-dir", str(runs), "--name", "f", *TINY,
            "--netG", "resnet_4blocks"]
    assert cli.main(args) == cli.EXIT_FAILED  # NCE layer 16 does not exist with 4 blocks
    assert "--nce-layers 0,4,8,12" in capsys.readouterr().err
    assert not (runs / "f").exists()
    assert cli.main(args + ["--nce-layers", "0,4,8,12"]) == cli.EXIT_OK  # the same name, fixed


@pytest.mark.parametrize("method", ["cut", "fastcut"])
def test_cut_trains_resumes_exports_and_evaluates_from_the_cli(method, pairs, tmp_path):
    from tfcyclegan.ablate import unpaired_view

    data = str(unpaired_view(pairs, tmp_path))  # trainA/ trainB/: CUT is unpaired
    runs = str(tmp_path / "runs")
    assert cli.main(["train", "--method", method, "--data", data, "--runs-dir", runs, "--name", "c", *TINY]) == 0
    run = os.path.join(runs, "c")
    config = Config.load(os.path.join(run, "config.json"))
    assert (config.model.method, config.model.upsample, config.train.pool_size) == (method, "antialias", 0)
    assert isinstance(training.load_run_model(run), CUT)
    assert cli.main(["train", "--resume", run, "--epochs", "2", "--progress", "0"]) == 0
    assert tf.train.latest_checkpoint(os.path.join(run, "checkpoints")).endswith("ckpt-4")
    out = tmp_path / "exp"
    assert cli.main(["export", "--model", run, "--out", str(out), "--tflite-mode", "fp32",
                     "--tflite-io", "float32"]) == 0
    report = json.loads((out / "export_report.json").read_text())
    assert list(report["saved_models"]) == ["a2b"] and report["saved_models"]["a2b"].startswith("cut_a2b")
    assert cli.main(["evaluate", "--model", run, "--data", pairs, "--no-fid", "--out", str(tmp_path / "ev")]) == 0
