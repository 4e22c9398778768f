import json
import os

import keras
import numpy as np
import pytest

from tests.conftest import StopAfter, tiny_config
from tfcyclegan import training
from tfcyclegan.config import Config
from tfcyclegan.synthetic import make_demo_dataset
from tfcyclegan.training import DataSpec

# End to end: each test trains a run folder. make test-fast skips the file.
pytestmark = pytest.mark.slow

TINY = tiny_config(steps_per_epoch=4, checkpoint_every=3, pool_size=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return str(make_demo_dataset(tmp_path_factory.mktemp("data"), n_train=10, n_test=3, size=32))


def test_a_run_folder_has_everything(tmp_path, dataset):
    run = tmp_path / "run"
    result = training.train(TINY, run, DataSpec(data=dataset), verbose=0)
    assert result.step == 8 and not result.interrupted
    assert Config.load(run / "config.json") == TINY
    assert json.loads((run / "run.json").read_text())["data"] == {"data": dataset}
    assert sorted(os.listdir(run / "samples")) == ["epoch_0001.png", "epoch_0002.png", "latest.png"]
    checkpoints = sorted(p for p in os.listdir(run / "checkpoints") if p.endswith(".index"))
    assert checkpoints == ["ckpt-3.index", "ckpt-4.index", "ckpt-6.index", "ckpt-8.index"][-3:] or \
        checkpoints == ["ckpt-4.index", "ckpt-6.index", "ckpt-8.index"]
    history = (run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and "val_total" in history[0] and len(history) == 3
    assert os.listdir(run / "logs")  # TensorBoard
    # The grid shows x, G(x), F(G(x)) | y, F(y), G(F(y)) for 2 samples of 32 px.
    from PIL import Image

    grid = Image.open(run / "samples" / "latest.png")
    # (The header wraps "F(G(x))" onto two 14 px lines at 32 px per column.)
    assert grid.size == (6 * 32, 2 * 32 + 2 * 14)
    loaded = keras.saving.load_model(run / "model.keras")
    np.testing.assert_array_equal(loaded.G.get_weights()[0], result.model.G.get_weights()[0])


def test_learning_rate_follows_the_papers_schedule(tmp_path, dataset):
    result = training.train(TINY, tmp_path / "run", DataSpec(data=dataset), verbose=0)
    # 1 constant epoch then 1 decay epoch of 4 steps, updated per epoch:
    # after 8 steps the rate is zero.
    assert float(result.model.optimizer.learning_rate) == 0.0
    schedule = result.model.optimizer._learning_rate
    assert [float(schedule(s)) for s in (0, 3, 4, 7)] == pytest.approx([2e-4, 2e-4, 1e-4, 1e-4])


def test_stopped_run_resumes_to_the_same_weights(tmp_path, dataset):
    config = TINY.replace(train=TINY.train.replace(checkpoint_every=0, epochs=2, epochs_decay=1))
    straight = training.train(config, tmp_path / "straight", DataSpec(data=dataset), verbose=0)

    stopped = training.train(config, tmp_path / "resumed", DataSpec(data=dataset), verbose=0,
                             extra_callbacks=[StopAfter(6)])
    assert stopped.step == 6  # mid-epoch: epoch 2 of 3, step 2 of 4
    resumed = training.train(training.load_run_config(tmp_path / "resumed"), tmp_path / "resumed",
                             resume=True, verbose=0)
    assert resumed.step == straight.step == 12
    for a, b in zip(straight.model.weights, resumed.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6, err_msg=a.path)
    # The history of the resumed run continues the same CSV.
    assert len((tmp_path / "resumed" / "history.csv").read_text().splitlines()) == 1 + 2 + 2


def test_resume_refuses_a_different_architecture(tmp_path, dataset):
    training.train(TINY, tmp_path / "run", DataSpec(data=dataset), verbose=0)
    changed = TINY.replace(model=TINY.model.replace(ngf=8), data=TINY.data.replace(crop_size=28))
    with pytest.raises(ValueError, match=r"model\.ngf: 4 -> 8\n  data\.crop_size: 32 -> 28"):
        training.train(changed, tmp_path / "run", resume=True, verbose=0)


def test_a_new_run_never_overwrites_an_old_one(tmp_path, dataset):
    training.train(TINY, tmp_path / "run", DataSpec(data=dataset), verbose=0)
    with pytest.raises(FileExistsError, match="already holds a run. Resume it with --resume"):
        training.train(TINY, tmp_path / "run", DataSpec(data=dataset), verbose=0)


def test_resume_needs_a_checkpoint(tmp_path, dataset):
    (tmp_path / "run").mkdir()
    TINY.save(tmp_path / "run" / "config.json")
    (tmp_path / "run" / "run.json").write_text(json.dumps({"data": {"data": dataset}}))
    with pytest.raises(FileNotFoundError, match="has no checkpoint to resume from"):
        training.train(TINY, tmp_path / "run", resume=True, verbose=0)


def test_load_run_model_gives_the_latest_checkpoint(tmp_path, dataset):
    result = training.train(TINY, tmp_path / "run", DataSpec(data=dataset), verbose=0)
    os.remove(tmp_path / "run" / "model.keras")  # as after a SIGKILL
    model = training.load_run_model(tmp_path / "run")
    for a, b in zip(model.G.weights, result.model.G.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_two_folders_without_a_test_split(tmp_path, dataset):
    spec = DataSpec(domain_a=os.path.join(dataset, "trainA"), domain_b=os.path.join(dataset, "trainB"))
    result = training.train(TINY, tmp_path / "run", spec, verbose=0)
    assert "val_total" not in result.history
    assert (tmp_path / "run" / "samples" / "latest.png").exists()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one of"),
        ({"data": "x", "tfds": "y"}, "exactly one of"),
        ({"domain_a": "x"}, "exactly one of"),
    ],
)
def test_data_spec_needs_one_source(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataSpec(**kwargs)


def _generator_values(prefix):
    """The values stored in a checkpoint, read without building a model.

    (A variable is stored under the first path that reaches it, e.g. the
    optimizer's list of G's and F's variables, so they are compared by value.)
    """
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    return {
        (tuple(reader.get_tensor(name).shape), reader.get_tensor(name).tobytes())
        for name in reader.get_variable_to_shape_map()
        if name.endswith("VARIABLE_VALUE")
    }


def _same_values(model, stored):
    """Whether every variable of the model's G holds a value stored in the checkpoint."""
    return all((tuple(v.shape), v.numpy().tobytes()) in stored for v in model.G.weights)


def test_epoch_checkpoints_are_kept_and_any_one_loads(tmp_path, dataset, capsys):
    config = TINY.replace(train=TINY.train.replace(epochs=1, epochs_decay=2, keep_checkpoints=1,
                                                   checkpoint_every=0, save_epoch_every=1, validate=False))
    run = tmp_path / "run"
    training.train(config, run, DataSpec(data=dataset), verbose=0)
    assert sorted(os.listdir(run / "checkpoints" / "epochs")) == [
        "checkpoint", *[f"epoch-{n}.{ext}" for n in (1, 2, 3) for ext in ("data-00000-of-00001", "index")]
    ]
    assert [p for p in os.listdir(run / "checkpoints") if p.endswith(".index")] == ["ckpt-12.index"]
    first = _generator_values(str(run / "checkpoints" / "epochs" / "epoch-1"))
    assert _same_values(training.load_run_model(run, epoch=1), first)
    assert _same_values(training.load_run_model(run, checkpoint="epoch-1"), first)
    latest = training.load_run_model(run, checkpoint="ckpt-12")
    assert _same_values(latest, _generator_values(str(run / "checkpoints" / "ckpt-12")))
    assert not _same_values(latest, first)
    with pytest.raises(ValueError, match=r"has no checkpoint of epoch 7\. It has: \['ckpt-12'\]; epochs \[1, 2, 3\]"):
        training.load_run_model(run, epoch=7)
    # model.keras older than the newest checkpoint: the checkpoint is used, and said so.
    os.utime(run / "model.keras", (1, 1))
    capsys.readouterr()
    assert _same_values(training.load_run_model(run), _generator_values(str(run / "checkpoints" / "ckpt-12")))
    assert "model.keras is older than checkpoint ckpt-12; using the checkpoint." in capsys.readouterr().err


def test_steps_per_execution_keeps_checkpoint_steps_exact(tmp_path, dataset):
    import tensorflow as tf

    from tfcyclegan import callbacks, data, models

    keras.utils.set_random_seed(0)
    model = models.CycleGAN.from_model_config(TINY.model, pool_size=2, seed=0)
    model.compile(steps_per_execution=2)
    model.build((None, 32, 32, 3))
    step = tf.Variable(0, dtype=tf.int64)
    stream = data.unpaired_dataset(os.path.join(dataset, "trainA"), os.path.join(dataset, "trainB"),
                                   TINY.data, seed=0)
    def checkpointing(directory):
        return callbacks.Checkpointing(model.training_checkpoint(step=step), directory, step,
                                       every_n_steps=3, keep=10, epoch_directory=directory / "epochs",
                                       save_epoch_every=1, steps_per_epoch=6)

    model.fit(stream.dataset, epochs=2, steps_per_epoch=6, callbacks=[checkpointing(tmp_path)], verbose=0)
    assert int(step.numpy()) == 12  # Keras called back 6 times for 12 steps
    saved = sorted(int(p[5:-6]) for p in os.listdir(tmp_path) if p.endswith(".index"))
    assert saved == [4, 6, 10, 12]  # past 3, epoch end (past 6), past 9, epoch end
    assert sorted(os.listdir(tmp_path / "epochs"))[1:] == [
        "epoch-1.data-00000-of-00001", "epoch-1.index", "epoch-2.data-00000-of-00001", "epoch-2.index"]
    # Keras would run 6 steps for an epoch of 5 (whole executions): refused.
    with pytest.raises(ValueError, match=r"steps_per_epoch=5 is not a multiple of steps_per_execution=2"):
        model.fit(stream.dataset, epochs=1, steps_per_epoch=5, callbacks=[checkpointing(tmp_path / "b")],
                  verbose=0)


def test_mixed_bfloat16_training_says_what_bfloat16_gains_on_this_cpu(tmp_path, dataset, capsys, monkeypatch):
    from tfcyclegan.kernels import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"avx2", "fma", "avx512f", "avx512_bf16"})
    monkeypatch.setattr(cpu, "_x86", lambda: True)
    config = TINY.replace(train=TINY.train.replace(mixed_precision="mixed_bfloat16", epochs=1,
                                                   epochs_decay=0, validate=False, checkpoint_every=0))
    training.train(config, tmp_path / "run", DataSpec(data=dataset), verbose=1)
    out = capsys.readouterr().out
    assert out.count("Note: AVX512_BF16 without AMX: mixed_bfloat16 training measured") == 1

