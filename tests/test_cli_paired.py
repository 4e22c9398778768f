"""End-to-end: pix2pix from the command line, and `tfcyclegan evaluate` on every model form."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_MODEL_FLAGS
from tfcyclegan import cli, evaluate, training
from tfcyclegan.config import Config
from tfcyclegan.models import Pix2Pix
from tfcyclegan.synthetic import make_paired_dataset

# pix2pix's own defaults (U-Net 256) need 256 px images; tiny runs use a ResNet G.
TINY_PIX2PIX = [
    "--method", "pix2pix", *TINY_MODEL_FLAGS,
    "--load-size", "36", "--crop-size", "32", "--seed", "1", "--num-samples", "2",
    "--progress", "0", "--epochs", "1", "--epochs-decay", "0",
]


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    return str(make_paired_dataset(tmp_path_factory.mktemp("paired"), n_train=6, n_test=4, size=32))


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory, paired):
    runs = str(tmp_path_factory.mktemp("runs"))
    code = cli.main(["train", "--data", paired, "--runs-dir", runs, "--name", "p", "--steps-per-epoch", "3",
                     "--evaluate-every", "1", *TINY_PIX2PIX])
    assert code == cli.EXIT_OK
    return os.path.join(runs, "p")


@pytest.mark.slow
def test_pix2pix_trains_from_the_cli_with_its_authors_defaults(pix2pix_run):
    config = Config.load(os.path.join(pix2pix_run, "config.json"))
    assert config.model.method == "pix2pix" and config.model.norm == "batch" and config.model.dropout
    assert (config.train.gan_mode, config.train.lambda_l1, config.train.pool_size) == ("vanilla", 100.0, 0)
    assert os.path.exists(os.path.join(pix2pix_run, "samples", "epoch_0001.png"))
    model = training.load_run_model(pix2pix_run)
    assert isinstance(model, Pix2Pix) and model.D.input_shape[-1] == 6  # conditional: x and y
    history = open(os.path.join(pix2pix_run, "history.csv")).read()
    assert "G_L1" in history and "val_G_L1" in history  # the aligned test/ split validates
    # --evaluate-every 1: the test split's PSNR/SSIM/L1 as TensorBoard scalars.
    events = os.listdir(os.path.join(pix2pix_run, "logs", "evaluation"))
    assert any(name.startswith("events.out.tfevents") for name in events)
    tags = {
        value.tag
        for name in events
        for event in tf.compat.v1.train.summary_iterator(os.path.join(pix2pix_run, "logs", "evaluation", name))
        for value in event.summary.value
    }
    assert {"evaluation/psnr_db", "evaluation/ssim", "evaluation/l1"} <= tags


@pytest.mark.slow
def test_pix2pix_resumes_and_translates_and_exports(pix2pix_run, paired, tmp_path):
    assert cli.main(["train", "--resume", pix2pix_run, "--epochs", "2", "--progress", "0"]) == cli.EXIT_OK
    assert tf.train.latest_checkpoint(os.path.join(pix2pix_run, "checkpoints")).endswith("ckpt-6")
    out = tmp_path / "translated"
    assert cli.main(["translate", "--model", pix2pix_run, "--input", os.path.join(paired, "test"),
                     "--out", str(out)]) == cli.EXIT_OK
    assert len(list(out.iterdir())) == 4
    # pix2pix learns one direction: exporting "both" gives G only.
    assert cli.main(["export", "--model", pix2pix_run, "--out", str(tmp_path / "exp"),
                     "--format", "saved_model"]) == cli.EXIT_OK
    report = json.loads((tmp_path / "exp" / "export_report.json").read_text())
    assert list(report["saved_models"]) == ["a2b"]


@pytest.mark.slow
def test_btoa_swaps_the_sides(paired):
    config = Config.for_method("pix2pix")
    config = config.replace(data=config.data.replace(load_size=32, crop_size=32, direction="BtoA"))
    spec = training.DataSpec(data=paired)
    forward = spec.dataset(config.replace(data=config.data.replace(direction="AtoB")), "test", training=False)
    backward = spec.dataset(config, "test", training=False)
    (xa, ya), (xb, yb) = next(iter(forward.dataset)), next(iter(backward.dataset))
    np.testing.assert_array_equal(xa.numpy(), yb.numpy())
    np.testing.assert_array_equal(ya.numpy(), xb.numpy())


def test_pix2pix_refuses_tfds_with_a_clear_message_and_writes_nothing(capsys, tmp_path):
    runs = tmp_path / "runs"
    assert cli.main(["train", "--tfds", "cycle_gan/horse2zebra", "--runs-dir", str(runs),
                     *TINY_PIX2PIX]) == cli.EXIT_FAILED
    assert "TFDS is not supported for it" in capsys.readouterr().err
    assert not runs.exists()  # no half-made run folder blocks the name afterwards


# === evaluate ===


def test_paired_metrics_are_the_textbook_ones():
    rng = np.random.default_rng(0)
    target = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    output = target.copy()
    output[1] += 10 / 127.5  # 10 levels brighter everywhere (where not clipped)
    metrics = evaluate.paired_metrics(output, target)
    pixels_out = np.clip(np.round((output + 1) * 127.5), 0, 255)
    pixels_tgt = np.clip(np.round((target + 1) * 127.5), 0, 255)
    mse = np.mean((pixels_out[1] - pixels_tgt[1]) ** 2)
    assert metrics["psnr_db"][1] == pytest.approx(10 * np.log10(255**2 / mse), rel=1e-4)
    assert metrics["l1"][1] == pytest.approx(np.mean(np.abs(pixels_out[1] - pixels_tgt[1])) / 255, rel=1e-5)
    assert metrics["ssim"][0] == pytest.approx(1.0) and metrics["ssim"][1] < 1.0
    # Identical: capped (JSON has no infinity) at one level off in one pixel of 256x256.
    assert metrics["psnr_db"][0] == pytest.approx(10 * np.log10(255**2 * 256 * 256))


def test_evaluate_reports_a_checkerboard_added_by_the_translator(tmp_path):
    from tfcyclegan.evaluate import TestSplit, evaluate

    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.normal(size=(4, 32, 32, 3)), axis=1).astype(np.float32)
    images = np.tanh(smooth / np.abs(smooth).max())
    split = TestSplit(form="aligned", names=[f"{i}.png" for i in range(4)], inputs=images, targets=images,
                      reals=images)
    board = 0.1 * ((np.indices((32, 32)).sum(axis=0) % 2) * 2 - 1)[None, :, :, None].astype(np.float32)
    clean = evaluate(lambda x: x, split, fid=False, verbose=False, out_dir=tmp_path / "clean")
    checkered = evaluate(lambda x: np.clip(x + board, -1, 1), split, fid=False, verbose=False)
    assert clean.checkerboard == pytest.approx(1.0)  # the real images themselves
    assert checkered.checkerboard > 4  # docs/quality.md: the paper's CycleGAN scores 2.2-2.4 at 64 px
    assert "| checkerboard |" in (tmp_path / "clean" / "evaluation.md").read_text()
    assert json.loads((tmp_path / "clean" / "evaluation.json").read_text())["checkerboard"] == pytest.approx(1.0)


@pytest.mark.slow
def test_evaluate_gives_the_same_paired_metrics_for_run_savedmodel_and_tflite(pix2pix_run, paired, tmp_path):
    exported = tmp_path / "exp"
    assert cli.main(["export", "--model", pix2pix_run, "--out", str(exported), "--tflite-mode", "fp32",
                     "--tflite-io", "float32"]) == cli.EXIT_OK
    tflite = next((exported / "tflite").glob("*.tflite"))
    reports = {}
    for name, model in (("run", pix2pix_run), ("saved_model", exported / "pix2pix_a2b"), ("tflite", tflite)):
        out = tmp_path / f"eval_{name}"
        assert cli.main(["evaluate", "--model", str(model), "--data", paired, "--no-fid",
                         "--image-size", "32", "--out", str(out)]) == cli.EXIT_OK
        reports[name] = json.loads((out / "evaluation.json").read_text())
        assert (out / "cases.png").exists() and (out / "per_image.csv").exists()
        assert "| PSNR dB |" in (out / "evaluation.md").read_text()
    assert reports["run"]["count"] == 4 and reports["run"]["data"]["form"] == "aligned"
    # Same images, same numbers within the artifacts' parity (1e-4 on [-1, 1]: at most
    # one 8-bit level where a value sits on a rounding edge).
    for name in ("saved_model", "tflite"):
        for metric in ("psnr_db", "ssim", "l1"):
            assert reports[name]["paired"][metric]["mean"] == pytest.approx(
                reports["run"]["paired"][metric]["mean"], rel=2e-3), (name, metric)


@pytest.mark.slow
def test_evaluate_computes_fid_and_kid_with_given_weights(pix2pix_run, paired, tmp_path):
    # Random FID weights (the real file cannot be downloaded here): the numbers mean
    # nothing, but the whole path runs: features of outputs and of real B images.
    from tfcyclegan import inception
    from tfcyclegan.state_dict import variables_to_state_dict, write_state_dict

    # The network's own random weights in pytorch-fid's layout: OIHW kernels.
    state = variables_to_state_dict(inception.torch_key_map(inception.FIDInceptionV3()))
    weights = write_state_dict(state, tmp_path / "fid.npz")
    report = evaluate.evaluate(pix2pix_run, paired, fid_weights=weights, image_size=32,
                               kid_subsets=5, verbose=False)
    assert np.isfinite(report.fid) and report.fid >= 0
    assert np.isfinite(report.kid["mean"]) and "biased upwards" in report.fid_note


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--model", "MODEL", "--data", "EMPTY", "--no-fid"], "has no test split"),
        (["evaluate", "--model", "/no/such/model", "--data", "PAIRED", "--no-fid"], "No model at /no/such/model"),
        (["evaluate", "--model", "MODEL", "--data", "PAIRED", "--fid-weights", "/no/w.pth"], "/no/w.pth"),
        (["evaluate", "--model", "MODEL", "--data", "PAIRED", "--fid-weights", "BADWEIGHTS"], "BADWEIGHTS"),
    ],
)
def test_evaluate_bad_input_gives_one_clear_error(argv, message, pix2pix_run, paired, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, nonsense=np.zeros(3))
    replace = {"MODEL": pix2pix_run, "PAIRED": paired, "EMPTY": str(tmp_path), "BADWEIGHTS": str(bad)}
    argv = [replace.get(a, a) for a in argv]
    message = replace.get(message, message)
    assert cli.main(argv) == cli.EXIT_FAILED
    assert message in capsys.readouterr().err


# === ablate ===


@pytest.mark.slow
def test_ablate_trains_each_variant_with_the_same_budget_and_writes_the_table(paired, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["ablate", "--data", paired, "--out", str(out), "--variants", "gan_forward,pix2pix_l1",
            *TINY_MODEL_FLAGS,
            "--load-size", "36", "--crop-size", "32", "--seed", "2", "--num-samples", "2", "--epochs", "1",
            "--epochs-decay", "0", "--steps-per-epoch", "2"]
    assert cli.main(argv) == cli.EXIT_OK
    table = (out / "ablation.md").read_text()
    assert "| gan_forward | cyclegan |" in table and "| pix2pix_l1 | pix2pix |" in table
    assert (out / "ablation.png").exists()
    # The same budget and seed; the variant's weights; CycleGAN sees the data unpaired.
    gan_forward = Config.load(out / "runs" / "gan_forward" / "config.json")
    pix2pix = Config.load(out / "runs" / "pix2pix_l1" / "config.json")
    assert (gan_forward.train.lambda_b, gan_forward.train.lambda_a, gan_forward.train.lambda_identity) == (0, 10, 0)
    assert pix2pix.train.lambda_gan == 0 and pix2pix.model.method == "pix2pix"
    for config in (gan_forward, pix2pix):
        assert (config.train.steps_per_epoch, config.train.seed, config.model.ngf) == (2, 2, 4)
    assert sorted(os.listdir(out / "unpaired_view" / "trainA")) == sorted(os.listdir(os.path.join(paired, "train")))
    out_text = capsys.readouterr().out
    assert "[2/2] training pix2pix_l1" in out_text and "min to go" in out_text
    assert "| (input) | - |" in table
    # Run again: finished variants are evaluated, not trained again.
    mtime = (out / "runs" / "pix2pix_l1" / "model.keras").stat().st_mtime
    assert cli.main(argv) == cli.EXIT_OK
    assert (out / "runs" / "pix2pix_l1" / "model.keras").stat().st_mtime == mtime


def test_ablate_refuses_unknown_variants_and_unpaired_data(tmp_path, capsys):
    assert cli.main(["ablate", "--data", str(tmp_path), "--variants", "cyclegan,magic"]) == cli.EXIT_FAILED
    assert "Received: ['cyclegan', 'magic']" in capsys.readouterr().err
    assert cli.main(["ablate", "--data", str(tmp_path), "--variants", "cyclegan"]) == cli.EXIT_FAILED
    assert "needs a paired dataset with train/ and test/" in capsys.readouterr().err
