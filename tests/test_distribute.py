"""tf.distribute: MirroredStrategy on two logical CPUs, two workers on 127.0.0.1.

Each scenario runs in a fresh process: logical devices and TF_CONFIG must be
set before TensorFlow initialises.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import tiny_config
from tfcyclegan import training
from tfcyclegan.config import Config, DataConfig
from tfcyclegan.synthetic import make_demo_dataset

# End to end: each scenario trains in fresh processes. make test-fast skips the file.
pytestmark = pytest.mark.slow

TINY = tiny_config(batch_size=2, steps_per_epoch=3, seed=5, pool_size=3, checkpoint_every=2, validate=True)


def run_python(code, *args, env=None, timeout=300):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            capture_output=True, text=True, env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return str(make_demo_dataset(tmp_path_factory.mktemp("data"), n_train=6, n_test=4, size=32))


MIRRORED = """
import sys
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from tfcyclegan.config import ModelConfig
from tfcyclegan.models import CycleGAN

config = ModelConfig(generator="resnet_1blocks", ngf=4, ndf=4, discriminator="n_layers", n_layers_d=1)
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (8, 16, 16, 3)).astype("float32")
y = rng.uniform(-1, 1, (8, 16, 16, 3)).astype("float32")
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(2, drop_remainder=True)
pool = int(sys.argv[2])

def run(strategy):
    with strategy.scope():
        model = CycleGAN.from_model_config(config, pool_size=pool, seed=0)
        model.compile(keras.optimizers.Adam(2e-4, 0.5), keras.optimizers.Adam(2e-4, 0.5))
    model.fit(data, epochs=1, verbose=0)  # k = 4 steps at global batch 2
    return model

single = run(tf.distribute.get_strategy())
mirrored = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
out = {"replicas": mirrored.distribute_strategy.num_replicas_in_sync}
for name, model in (("single", single), ("mirrored", mirrored)):
    for direction in ("x2y", "y2x"):
        out[f"{name}_{direction}"] = model.translate(x[:2], direction)
    for w in model.weights:
        if "kernel" in w.path:
            out[f"{name}/{w.path}"] = w.numpy()
if pool:
    images = mirrored.pool_x.images.value
    out["pool_replicas"] = len(images.values)
    path = tf.train.Checkpoint(model=mirrored).write(sys.argv[1] + "/mirrored")
    with tf.distribute.get_strategy().scope():
        restored = CycleGAN.from_model_config(config, pool_size=pool, seed=9)
        restored.build((None, 16, 16, 3))
    tf.train.Checkpoint(model=restored).read(path).assert_existing_objects_matched()
    out["restored_x2y"] = restored.translate(x[:2], "x2y")
    out["restored_pool"] = restored.pool_x.images.numpy()
    out["mirrored_pool0"] = images.values[0].numpy()
np.savez(sys.argv[1] + "/out.npz", **out)
"""


def test_mirrored_matches_one_device_at_the_same_global_batch(tmp_path):
    run_python(MIRRORED, tmp_path, 0)
    out = np.load(tmp_path / "out.npz")
    assert int(out["replicas"]) == 2
    # The gradients agree to float round-off (~1e-6 relative), but Adam divides
    # by the gradient's own size, so a component that is ~0 in both runs can
    # step +lr in one and -lr in the other. Bound: half an Adam step (lr 2e-4)
    # after 4 steps. (Measured: 1.3e-5. GAN training amplifies round-off: by
    # 8 steps the gap is 1.6e-4, at lr 1e-3 1e-3.) Biases of convolutions
    # followed by instance norm are not compared at all: their true gradient
    # is zero, so both runs hold noise; outputs do not depend on them.
    kernels = [k.split("/", 1)[1] for k in out.files if k.startswith("single/")]
    assert len(kernels) > 10
    for name in kernels:
        np.testing.assert_allclose(out[f"mirrored/{name}"], out[f"single/{name}"], atol=1e-4, err_msg=name)
    for direction in ("x2y", "y2x"):
        np.testing.assert_allclose(out[f"mirrored_{direction}"], out[f"single_{direction}"], atol=1e-3)


def test_mirrored_pools_are_per_replica_and_checkpoint_to_one_device(tmp_path):
    run_python(MIRRORED, tmp_path, 3)
    out = np.load(tmp_path / "out.npz")
    assert int(out["pool_replicas"]) == 2
    np.testing.assert_allclose(out["restored_x2y"], out["mirrored_x2y"], atol=1e-6)
    # The checkpoint keeps the first replica's pool.
    np.testing.assert_array_equal(out["restored_pool"], out["mirrored_pool0"])


WORKER = """
import json, sys
import numpy as np
from tfcyclegan import training
from tfcyclegan.config import Config

config = Config.from_json(open(sys.argv[1]).read())
result = training.train(config, sys.argv[2], training.DataSpec(data=sys.argv[3]), verbose=0,
                        strategy="multi_worker")
np.savez(sys.argv[4], **{w.path: w.numpy() for w in result.model.weights if "pool" not in w.path})
print(json.dumps({"step": result.step, "history": result.history}))
"""


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_identically_and_the_chief_resumes_on_one_device(tmp_path, dataset):
    config_path = tmp_path / "config.json"
    TINY.replace(train=TINY.train.replace(strategy="multi_worker")).save(config_path)
    run_dir = tmp_path / "run"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, config_path, run_dir, dataset, tmp_path / f"w{index}.npz"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    logs = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
    assert [log["step"] for log in logs] == [6, 6]
    assert "val_total" in logs[0]["history"]  # validation ran on both workers

    first, second = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert first.files == second.files and len(first.files) > 20
    for name in first.files:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)

    # Only the chief wrote the run folder; its checkpoint resumes on one device.
    assert sorted(os.listdir(run_dir / "samples"))[-1] == "latest.png"
    config = training.load_run_config(run_dir)
    config = config.replace(train=config.train.replace(strategy="default", epochs=2))
    resumed = training.train(config, run_dir, resume=True, verbose=0)
    assert resumed.step == 9
    # ... starting from the workers' weights.
    reloaded = training.load_run_model(run_dir)
    assert reloaded.G.count_params() == resumed.model.G.count_params()


def test_mixed_precision_and_jit_runs_are_finite(tmp_path, dataset):
    for name, changes in (("fp16", dict(mixed_precision="mixed_float16")),
                          ("bf16", dict(mixed_precision="mixed_bfloat16")),
                          ("xla", dict(jit_compile=True))):
        config = TINY.replace(data=TINY.data.replace(batch_size=1),
                              train=TINY.train.replace(validate=False, checkpoint_every=0, **changes))
        result = training.train(config, tmp_path / name, training.DataSpec(data=dataset), verbose=0)
        assert all(np.isfinite(values[-1]) for values in result.history.values()), name
        assert result.model.jit_compile == (name == "xla")  # not silently dropped by Keras


def test_batch_must_split_over_replicas(tmp_path, dataset):
    code = """
    import sys, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfcyclegan import training
    from tfcyclegan.config import Config
    config = Config.from_json(open(sys.argv[1]).read())
    try:
        training.train(config, sys.argv[2], training.DataSpec(data=sys.argv[3]), verbose=0,
                       strategy=tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    except ValueError as error:
        print(error)
    """
    TINY.replace(data=TINY.data.replace(batch_size=3)).save(tmp_path / "c.json")
    out = run_python(code, tmp_path / "c.json", tmp_path / "run", dataset)
    assert "batch_size must be a multiple of 2. Received: batch_size=3" in out


def test_multi_worker_needs_tf_config(monkeypatch):
    from tfcyclegan.distribute import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multi_worker")
    with pytest.raises(ValueError, match="strategy='cluster'"):
        make_strategy("cluster")


def _train_mirrored(method, generator, data, tmp_path):
    """Trains `method`'s tiny published config for 2 steps under MirroredStrategy on two
    logical CPUs, in a subprocess; returns {"step", "replicas", "losses": last values}."""
    config = Config.for_method(method)
    config = config.replace(
        model=config.model.replace(generator=generator, ngf=4, ndf=4, discriminator="n_layers", n_layers_d=1),
        data=DataConfig(load_size=36, crop_size=32, batch_size=2),
        train=config.train.replace(epochs=1, epochs_decay=0, steps_per_epoch=2, seed=3, num_samples=2),
    )
    config.save(tmp_path / "c.json")
    code = """
    import json, sys, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfcyclegan import training
    from tfcyclegan.config import Config
    config = Config.from_json(open(sys.argv[1]).read())
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = training.train(config, sys.argv[2], training.DataSpec(data=sys.argv[3]), verbose=0, strategy=strategy)
    print(json.dumps({"step": result.step, "replicas": strategy.num_replicas_in_sync,
                      "losses": {k: float(v[-1]) for k, v in result.history.items()}}))
    """
    return json.loads(run_python(code, tmp_path / "c.json", tmp_path / "run", data).strip().splitlines()[-1])


def test_pix2pix_trains_under_mirrored_strategy_and_resumes_on_one_device(tmp_path):
    from tfcyclegan.synthetic import make_paired_dataset

    pairs = make_paired_dataset(tmp_path / "pairs", n_train=4, n_test=2, size=32)
    out = _train_mirrored("pix2pix", "resnet_1blocks", pairs, tmp_path)
    assert out["step"] == 2 and out["replicas"] == 2
    assert all(np.isfinite(value) for value in out["losses"].values()), out["losses"]
    # The mirrored run's checkpoint resumes on one device.
    model = training.load_run_model(tmp_path / "run")
    assert type(model).__name__ == "Pix2Pix"


def test_cut_trains_under_mirrored_strategy_and_resumes_on_one_device(tmp_path, dataset):
    out = _train_mirrored("cut", "resnet_5blocks", dataset, tmp_path)
    assert out["step"] == 2 and out["replicas"] == 2
    # Every term of CUT's objective ran on both replicas: finite and non-zero (NCE_Y is the identity term).
    for name in ("G_GAN", "NCE", "NCE_Y", "D_real", "D_fake"):
        assert np.isfinite(out["losses"][name]) and out["losses"][name] > 0, (name, out["losses"])
    model = training.load_run_model(tmp_path / "run")
    assert type(model).__name__ == "CUT"
