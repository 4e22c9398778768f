"""The scripts in examples/ run, on tiny settings, so they never rot."""

import os
import subprocess
import sys

import pytest

from tests.conftest import TINY_MODEL
from tfcyclegan.synthetic import make_demo_dataset

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def run_example(name, *args, cwd):
    env = dict(os.environ, TFCYCLEGAN_EXAMPLE_TINY="1")
    result = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *map(str, args)],
                            capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_examples_train_translate_and_export(tmp_path):
    data = make_demo_dataset(tmp_path / "data", n_train=4, n_test=2, size=32)
    run_example("train_unpaired.py", data / "trainA", data / "trainB", "--out", "run", "--epochs", "1",
                cwd=tmp_path)
    assert (tmp_path / "run" / "cyclegan.keras").exists()
    assert (tmp_path / "run" / "samples" / "epoch_0002.png").exists()

    out = run_example("translate_folder.py", "run/cyclegan.keras", data / "testA", "translated",
                      "--direction", "a2b", cwd=tmp_path)
    assert out.count(" -> ") == 2
    assert len(os.listdir(tmp_path / "translated")) == 2

    out = run_example("export_for_phone_and_server.py", "run/cyclegan.keras", "exported",
                      "--images", data / "testA", cwd=tmp_path)
    assert "serving_default" in out and "LiteRT" in out
    assert (tmp_path / "exported" / "cyclegan_a2b" / "1" / "saved_model.pb").exists()


@pytest.mark.slow
def test_pix2pix_example_trains_on_synthetic_pairs_and_evaluates(tmp_path):
    out = run_example("train_paired.py", "pairs", "--synthetic", "--out", "run", "--epochs", "1", cwd=tmp_path)
    assert "PSNR dB" in out
    assert (tmp_path / "run" / "pix2pix.keras").exists()
    assert (tmp_path / "run" / "evaluation" / "evaluation.json").exists()
    assert (tmp_path / "run" / "samples" / "epoch_0002.png").exists()


@pytest.mark.slow
def test_l1_vs_cgan_figure_script_runs(tmp_path):
    from tfcyclegan.synthetic import make_paired_dataset

    data = make_paired_dataset(tmp_path / "pairs", n_train=4, n_test=4, size=32)
    out = run_example("pix2pix_l1_vs_cgan.py", data, "--out", "study", "--figure", "fig.png", cwd=tmp_path)
    assert "| L1 to truth" in out and "| untrained |" in out and "| pix2pix_l1_cgan |" in out
    assert "edge sharpness" in out
    assert (tmp_path / "fig.png").exists()


@pytest.mark.slow
def test_distill_example_trains_a_student_of_a_tiny_teacher_and_exports_it(tmp_path):
    from tfcyclegan import training
    from tfcyclegan.config import Config, DataConfig, TrainConfig

    data = make_demo_dataset(tmp_path / "data", n_train=4, n_test=2, size=32)
    teacher = Config(
        model=TINY_MODEL,
        data=DataConfig(load_size=36, crop_size=32),
        train=TrainConfig(epochs=1, epochs_decay=0, steps_per_epoch=2, seed=0, num_samples=0, validate=False),
    )
    training.train(teacher, tmp_path / "teacher", training.DataSpec(data=str(data)), verbose=0)
    out = run_example("distill_for_phone.py", "teacher", "--out", "student", "--images", data / "testA",
                      "--epochs", "1", cwd=tmp_path)
    assert "TFLite fp32" in out and "PSNR student to teacher on 2 images" in out
    assert (tmp_path / "student" / "exported" / "student_a2b" / "1" / "saved_model.pb").exists()
