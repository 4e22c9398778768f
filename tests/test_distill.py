"""Distillation: the mobile student network, the Distill model, and `tfcyclegan distill` runs."""

import os

import keras
import numpy as np
import pytest

from tests.conftest import StopAfter
from tfcyclegan import cli, distillation, export, runs, training
from tfcyclegan.config import Config, DataConfig, DistillConfig, ModelConfig, TrainConfig
from tfcyclegan.export import runtime
from tfcyclegan.models import Distill
from tfcyclegan.models.distill import distill_loss, feature_pairs
from tfcyclegan.networks import MobileResnetGenerator, ResnetGenerator, UnetGenerator, build_generator
from tfcyclegan.synthetic import make_demo_dataset

TEACHER = Config(
    model=ModelConfig(generator="resnet_3blocks", ngf=8, ndf=4, discriminator="n_layers", n_layers_d=1),
    data=DataConfig(load_size=36, crop_size=32),
    train=TrainConfig(epochs=1, epochs_decay=0, steps_per_epoch=2, seed=1, num_samples=0, pool_size=2,
                      validate=False),
)
# The student's settings for every run below: tiny, few steps, checkpoints only at epoch ends.
STUDENT_FLAGS = ["--student", "mobile_resnet", "--ngf", "4", "--n-blocks", "2", "--ndf", "4",
                 "--netD", "n_layers", "--n-layers-d", "1", "--seed", "5", "--num-samples", "1",
                 "--steps-per-epoch", "3", "--epochs", "1", "--epochs-decay", "1",
                 "--checkpoint-every", "0", "--no-validate", "--progress", "0"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return str(make_demo_dataset(tmp_path_factory.mktemp("data"), n_train=6, n_test=2, size=32))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, dataset):
    """A (barely) trained CycleGAN run: 2 steps, ResNet-3 with 8 filters."""
    run = tmp_path_factory.mktemp("runs") / "teacher"
    training.train(TEACHER, run, training.DataSpec(data=dataset), verbose=0)
    return str(run)


def images(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32")


# === The student networks ===


def test_mobile_generator_shape_config_and_save_load(tmp_path):
    g = MobileResnetGenerator(ngf=4, n_blocks=2, seed=3, name="G")
    x = images((2, 16, 24, 3))
    assert g(x).shape == (2, 16, 24, 3)
    # Depthwise-separable blocks: far fewer weights than the paper's blocks of the same width.
    plain = ResnetGenerator(ngf=4, n_blocks=2, seed=3)
    block = lambda net: sum(w.numpy().size for w in net.weights if w.path.startswith("block"))  # noqa: E731
    assert block(g) == 2 * 2 * (16 * 9 + 16 * 16 + 16)  # 2 blocks x 2 (depthwise, pointwise + bias)
    assert block(plain) == 2 * 2 * (16 * 16 * 9 + 16)
    rebuilt = MobileResnetGenerator.from_config(g.get_config())
    assert rebuilt.get_config() == g.get_config()
    g.save(tmp_path / "g.keras")
    loaded = keras.saving.load_model(tmp_path / "g.keras")
    assert isinstance(loaded, MobileResnetGenerator)
    np.testing.assert_allclose(loaded(x), g(x), atol=1e-6)


def test_generator_names_build_the_students():
    config = ModelConfig(generator="mobile_resnet_2blocks", ngf=4, upsample="resize_conv")
    g = build_generator(config, 3, 1)
    assert isinstance(g, MobileResnetGenerator) and (g.n_blocks, g.upsample) == (2, "resize_conv")
    assert g(images((1, 8, 8, 3))).shape == (1, 8, 8, 1)
    with pytest.raises(ValueError, match="generator='mobile_resnet'"):
        ModelConfig(generator="mobile_resnet")


@pytest.mark.slow
def test_mobile_student_exports_to_builtin_tflite_ops():
    g = MobileResnetGenerator(ngf=4, n_blocks=1, seed=0)
    flatbuffer = export.convert_tflite(g, "fp32")
    ops = set(export.check_builtin_ops(flatbuffer))
    assert "DEPTHWISE_CONV_2D" in ops and "CONV_2D" in ops
    x = images((1, 16, 16, 3))
    out = runtime.TFLiteRunner(flatbuffer, num_threads=1)(x)
    np.testing.assert_allclose(out, np.asarray(g(x)), atol=1e-4)


# === The objective ===


def test_distill_loss_is_l1_or_l2_against_the_teacher():
    s, t = images((2, 4, 4, 3), 1), images((2, 4, 4, 3), 2)
    assert float(distill_loss(s, t, "l1")) == pytest.approx(np.mean(np.abs(s - t)), rel=1e-6)
    assert float(distill_loss(s, t, "l2")) == pytest.approx(np.mean((s - t) ** 2), rel=1e-6)
    with pytest.raises(ValueError, match="loss='l3'"):
        distill_loss(s, t, "l3")


def test_feature_pairs_meet_at_equal_depth():
    student = MobileResnetGenerator(ngf=4, n_blocks=6)
    teacher = ResnetGenerator(ngf=4, n_blocks=9)
    assert feature_pairs(student, teacher) == [("block1", "block2"), ("block3", "block5"),
                                               ("block5", "block8")]


def test_a_student_learns_its_teacher_on_a_fixed_batch():
    teacher = ResnetGenerator(ngf=8, n_blocks=2, seed=1)
    config = ModelConfig(generator="mobile_resnet_1blocks", ngf=4, ndf=4, discriminator="n_layers",
                         n_layers_d=1)
    model = Distill.from_model_config(teacher, config, seed=2)
    model.compile(keras.optimizers.Adam(2e-3), lambda_feature=1.0)
    a, b = images((2, 16, 16, 3), 3), images((2, 16, 16, 3), 4)
    teacher_weights = [w.numpy().copy() for w in teacher.weights]
    first = model.train_on_batch(a, b, return_dict=True)
    for _ in range(40):
        last = model.train_on_batch(a, b, return_dict=True)
    assert last["distill"] < 0.5 * first["distill"]
    assert last["feature"] < first["feature"]
    assert last["G_GAN"] == 0 and last["D_real"] == 0  # lambda_gan = 0: D untouched
    for before, w in zip(teacher_weights, teacher.weights):  # the teacher is frozen
        np.testing.assert_array_equal(before, w.numpy())


def test_a_unet_teacher_has_no_features_to_match_but_teaches():
    # pix2pix's U-Net has no residual blocks: no feature pairs, L1 to its output still works.
    teacher = UnetGenerator(num_downs=5, ngf=4, seed=1)
    config = ModelConfig(generator="resnet_1blocks", ngf=4, ndf=4, discriminator="n_layers", n_layers_d=1)
    model = Distill.from_model_config(teacher, config, seed=2)
    assert model.pairs == [] and model.adapters == []
    with pytest.raises(ValueError, match="UnetGenerator.*Received: lambda_feature=1"):
        model.compile(lambda_feature=1)
    model.compile()
    logs = model.train_on_batch(images((1, 32, 32, 3), 3), images((1, 32, 32, 3), 4), return_dict=True)
    assert logs["distill"] > 0 and logs["feature"] == 0


def test_the_gan_term_trains_the_discriminator():
    teacher = ResnetGenerator(ngf=4, n_blocks=1, seed=1)
    config = ModelConfig(generator="resnet_1blocks", ngf=4, ndf=4, discriminator="n_layers", n_layers_d=1)
    model = Distill.from_model_config(teacher, config, direction="b2a", seed=2)
    model.compile(lambda_gan=1.0)
    d_before = model.D.get_weights()[0].copy()
    logs = model.train_on_batch(images((1, 16, 16, 3), 3), images((1, 16, 16, 3), 4), return_dict=True)
    assert logs["G_GAN"] > 0 and logs["D_real"] > 0
    assert not np.array_equal(d_before, model.D.get_weights()[0])


def test_bad_weights_are_named():
    model = Distill.from_model_config(ResnetGenerator(ngf=4, n_blocks=1), ModelConfig(
        generator="resnet_1blocks", ngf=4, ndf=4, discriminator="n_layers", n_layers_d=1))
    with pytest.raises(ValueError, match="lambda_gan=-1"):
        model.compile(lambda_gan=-1)
    with pytest.raises(ValueError, match="nothing to learn"):
        model.compile(lambda_distill=0)
    with pytest.raises(ValueError, match="lambda_feature=-0.5"):
        DistillConfig(teacher="runs/t", lambda_feature=-0.5)


# === Student runs ===


@pytest.mark.slow
def test_student_run_trains_resumes_exactly_and_exports(tmp_path, teacher):
    runs = str(tmp_path / "runs")
    argv = ["distill", "--teacher", teacher, "--runs-dir", runs, *STUDENT_FLAGS]
    assert cli.main([*argv, "--name", "straight"]) == cli.EXIT_OK
    straight = os.path.join(runs, "straight")
    config = Config.load(os.path.join(straight, "config.json"))
    assert config.model.method == "distill" and config.model.generator == "mobile_resnet_2blocks"
    assert config.distill.teacher == teacher and config.data.crop_size == 32  # the teacher's
    assert os.path.exists(os.path.join(straight, "samples", "epoch_0002.png"))
    history = open(os.path.join(straight, "history.csv")).read().splitlines()
    assert "distill" in history[0] and len(history) == 1 + 2

    # Stopped after 4 of 6 steps (mid-epoch), then resumed: the same weights.
    stopped_dir = tmp_path / "runs" / "stopped"
    stopped = training.train(config, stopped_dir, distillation.teacher_data_spec(teacher), verbose=0,
                             extra_callbacks=[StopAfter(4)])
    assert stopped.step == 4 and stopped.interrupted
    assert cli.main(["distill", "--resume", str(stopped_dir), "--progress", "0"]) == cli.EXIT_OK
    a = keras.saving.load_model(os.path.join(straight, "model.keras"))
    b = keras.saving.load_model(stopped_dir / "model.keras")
    assert isinstance(a, Distill)
    for wa, wb in zip(a.G.weights + a.D.weights, b.G.weights + b.D.weights):
        np.testing.assert_allclose(wa.numpy(), wb.numpy(), rtol=1e-4, atol=1e-6, err_msg=wa.path)

    # Export: only the student, SavedModel and builtin-op TFLite, equal to Keras.
    out = tmp_path / "exported"
    assert cli.main(["export", "--model", straight, "--out", str(out), "--tflite-mode", "fp32",
                     "--tflite-io", "float32", "--no-parity"]) == cli.EXIT_OK
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["student_a2b", "tflite"]
    x = images((2, 32, 32, 3), 7)
    expected = np.asarray(a.G(x))
    assert not np.allclose(expected, np.asarray(a.T(x)), atol=1e-3)  # the student, not the teacher
    for artifact in (out, out / "tflite" / "student_a2b_fp32.tflite"):
        got = runtime.load_translator(artifact, "a2b")(x)
        np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.slow
def test_b2a_student_learns_f_and_deploys_as_b2a_only(teacher):
    config = distillation.student_config(teacher, direction="b2a", student="resnet", ngf=4, n_blocks=1)
    assert config.model.generator == "resnet_1blocks" and config.distill.direction == "b2a"
    model = runs.build_model(config)
    teacher_model = training.load_run_model(teacher)
    x = images((1, 32, 32, 3), 8)
    np.testing.assert_allclose(np.asarray(model.T(x)), np.asarray(teacher_model.F(x)), atol=1e-6)
    assert isinstance(model.G, ResnetGenerator) and model.G.ngf == 4
    with pytest.raises(ValueError, match="b2a direction only. Received: direction='a2b'"):
        export.generators_of(model, "a2b")
    assert export.generators_of(model, "both") == {"b2a": model.G}
    # x is the B side of the (a, b) batches: the first sample column is y.
    a, b = images((1, 32, 32, 3), 1), images((1, 32, 32, 3), 2)
    (_, shown), (_, taught), _ = model.sample_columns(a, b)
    np.testing.assert_array_equal(shown, b)
    np.testing.assert_allclose(taught, np.asarray(teacher_model.F(b)), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv, message",
    [
        (["distill", "--student", "mobile_resnet"], "--teacher RUN_DIR"),
        (["distill", "--teacher", "/no/such/run"], "The teacher /no/such/run does not exist"),
        (["distill", "--teacher", "."], "has no config.json"),
        (["distill", "--teacher", "UNTRAINED"], "has neither checkpoints nor model.keras"),
        (["distill", "--teacher", "TEACHER", "--lambda-feature", "-1"], "lambda_feature=-1.0"),
        (["distill", "--teacher", "TEACHER", "--lambda-gan", "-2"], "lambda_gan=-2.0"),
        (["distill", "--teacher", "TEACHER", "--ngf", "0"], "ngf=0"),
        (["distill", "--teacher", "TEACHER", "--epoch", "7"], "has no checkpoint of epoch 7"),
        (["train", "--data", "d", "--model", "distill"], "tfcyclegan distill"),
    ],
)
def test_bad_inputs_give_a_message_naming_the_value(argv, message, teacher, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    untrained = tmp_path / "untrained"  # a run folder that never reached a checkpoint
    untrained.mkdir()
    (untrained / "config.json").write_text(TEACHER.to_json())
    argv = [teacher if a == "TEACHER" else str(untrained) if a == "UNTRAINED" else a for a in argv]
    assert cli.main([*argv, "--runs-dir", str(tmp_path / "runs"), "--progress", "0"]
                    if argv[0] == "distill" else argv) == cli.EXIT_FAILED
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing half made


def test_unknown_student_is_a_usage_error(capsys):
    assert cli.main(["distill", "--teacher", "t", "--student", "tiny"]) == cli.EXIT_USAGE
    assert "invalid choice: 'tiny'" in capsys.readouterr().err


def test_distill_help_reads(capsys):
    assert cli.main(["distill", "--help"]) == cli.EXIT_OK
    text = capsys.readouterr().out
    for phrase in ("--teacher RUN_DIR", "--student {resnet,mobile_resnet}", "--lambda-feature", "--resume"):
        assert phrase in text
