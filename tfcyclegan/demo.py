"""The demo: README command 1. Offline, a few minutes on a 2-core CPU.

1. Draws a small unpaired dataset: summer landscapes (A) and winter ones (B).
2. Trains a small CycleGAN on it with `model.fit` (progress bar, sample grids,
   checkpoints), through the same `training.train` as `tfcyclegan train`.
3. Exports G (summer -> winter) as a SavedModel for TF Serving and as TFLite
   files for phones, checking each against Keras.
4. Translates the test photos with the fp32 `.tflite` file, through LiteRT.
"""

import dataclasses
import os
import shutil
import time

from tfcyclegan import export as export_lib
from tfcyclegan import training
from tfcyclegan.checks import check_int
from tfcyclegan.config import Config, DataConfig, ModelConfig, TrainConfig
from tfcyclegan.synthetic import make_demo_dataset
from tfcyclegan.translate import translate_files

# Chosen to show a clear summer -> winter translation within 1-3 minutes of
# training on 2 CPU cores: 64 px images, a 3-block ResNet with 16 filters
# (the paper's design at 1/20 the compute), the paper's loss, pool and
# schedule shape (constant, then linear decay), 1000 steps.
DEMO_SIZE = 64
DEMO_STEPS = 1000
DEMO_TRAIN_IMAGES = 200
DEMO_TEST_IMAGES = 8


@dataclasses.dataclass
class DemoResult:
    """Where the demo put everything."""

    out_dir: str
    data_dir: str
    run_dir: str
    export_dir: str
    translated_dir: str
    samples: str
    interrupted: bool
    seconds: float


def demo_config(size=DEMO_SIZE, steps=DEMO_STEPS):
    """The demo's Config: the paper's settings, scaled down to minutes on a CPU."""
    epochs = 4
    steps_per_epoch = max(1, steps // epochs)
    return Config(
        model=ModelConfig(generator="resnet_3blocks", ngf=16, ndf=16),
        data=DataConfig(load_size=round(size * 286 / 256), crop_size=size),
        train=TrainConfig(
            epochs=epochs // 2,
            epochs_decay=epochs - epochs // 2,
            steps_per_epoch=steps_per_epoch,
            seed=0,
            checkpoint_every=0,
            sample_every=max(1, steps_per_epoch // 2),
            num_samples=4,
        ),
    )


def run_demo(out_dir="demo_output", steps=None, size=None, verbose=1):
    """Runs the whole demo into `out_dir` (replacing an earlier demo there)."""
    start = time.time()
    if steps is not None:
        check_int("steps", steps, 1)
    if size is not None:
        check_int("size", size, 1)
    steps = steps or DEMO_STEPS
    size = size or DEMO_SIZE
    out_dir = os.path.abspath(out_dir)
    paths = {name: os.path.join(out_dir, name) for name in ("data", "run", "export", "translated")}
    for name in ("run", "export", "translated"):  # the demo's own outputs, remade each time
        shutil.rmtree(paths[name], ignore_errors=True)

    _say(verbose, f"1/4  Drawing the demo dataset (summer -> winter, {size} px) in {paths['data']}")
    make_demo_dataset(
        paths["data"], n_train=DEMO_TRAIN_IMAGES, n_test=DEMO_TEST_IMAGES, size=size, overwrite=True
    )

    _say(verbose, f"2/4  Training a small CycleGAN for {steps} steps with model.fit")
    result = training.train(
        demo_config(size, steps), paths["run"], training.DataSpec(data=paths["data"]), verbose=verbose
    )
    samples = os.path.join(paths["run"], "samples", "latest.png")
    if result.interrupted:
        _say(verbose, f"Stopped early; the run is in {paths['run']}.")
        return DemoResult(out_dir, paths["data"], paths["run"], paths["export"],
                          paths["translated"], samples, True, time.time() - start)

    _say(verbose, "3/4  Exporting G (summer -> winter) for TF Serving and for phones")
    report = export_lib.export(
        paths["run"],
        paths["export"],
        direction="a2b",
        tflite_modes=("fp32", "fp16"),
        tflite_io=("float32",),
        representative_data=os.path.join(paths["data"], "testA"),
        model_name="demo",
        verbose=verbose > 0,
    )
    tflite = os.path.join(paths["export"], report.tflite["a2b"]["fp32"]["path"])

    _say(verbose, f"4/4  Translating the test photos with {os.path.basename(tflite)} (LiteRT)")
    translated = translate_files(
        tflite, os.path.join(paths["data"], "testA"), paths["translated"], progress=verbose > 0
    )
    seconds = time.time() - start
    if verbose:
        print(
            f"\nDone in {seconds / 60:.1f} min. Look at:\n"
            f"  sample grids        {os.path.join(paths['run'], 'samples')}  "
            "(columns: x, G(x), F(G(x)) | y, F(y), G(F(y)))\n"
            f"  latest grid         {samples}\n"
            f"  the trained model   {os.path.join(paths['run'], training.MODEL_FILE)}\n"
            f"  TensorBoard logs    tensorboard --logdir {os.path.join(paths['run'], 'logs')}\n"
            f"  TF Serving model    {os.path.join(paths['export'], 'demo_a2b')}\n"
            f"  TFLite files        {os.path.dirname(tflite)}\n"
            f"  export report       {os.path.join(paths['export'], 'export_report.json')}\n"
            f"  translated photos   {paths['translated']} ({len(translated.written)} images)\n"
            f"Train on your own images: tfcyclegan train --domain-a DIR_A --domain-b DIR_B"
        )
    return DemoResult(out_dir, paths["data"], paths["run"], paths["export"],
                      paths["translated"], samples, False, seconds)


def _say(verbose, message):
    if verbose:
        print(f"\n{message}", flush=True)
