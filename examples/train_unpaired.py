"""Train a CycleGAN on two folders of unpaired images with plain `model.fit`.

    python examples/train_unpaired.py horses/ zebras/ --out my_run

Uses the paper's settings (ResNet-9, 70x70 PatchGAN, LSGAN, lambda 10, pool 50,
Adam 2e-4, constant then linear decay). TFCYCLEGAN_EXAMPLE_TINY=1 shrinks
everything to seconds (the test suite runs it that way).
"""

import argparse
import os

import keras

import tfcyclegan

parser = argparse.ArgumentParser()
parser.add_argument("domain_a")
parser.add_argument("domain_b")
parser.add_argument("--out", default="cyclegan_run")
parser.add_argument("--epochs", type=int, default=100, help="then as many with linear decay")
args = parser.parse_args()
tiny = os.environ.get("TFCYCLEGAN_EXAMPLE_TINY") == "1"

model_config = tfcyclegan.ModelConfig(generator="resnet_1blocks", ngf=4, ndf=4) if tiny else tfcyclegan.ModelConfig()
data_config = tfcyclegan.DataConfig(load_size=36, crop_size=32) if tiny else tfcyclegan.DataConfig()
data = tfcyclegan.unpaired_dataset(args.domain_a, args.domain_b, data_config, seed=0)
steps = 2 if tiny else data.steps_per_epoch

model = tfcyclegan.CycleGAN.from_model_config(model_config)
schedule = tfcyclegan.LinearDecay(2e-4, args.epochs * steps, args.epochs * steps, update_every=steps)
# TorchAdam is Adam as the authors' PyTorch computes it (epsilon after the bias correction).
model.compile(
    generator_optimizer=tfcyclegan.TorchAdam(schedule, beta_1=0.5),
    discriminator_optimizer=tfcyclegan.TorchAdam(schedule, beta_1=0.5),
)
x, y = next(iter(data.dataset))  # fixed images for the sample grids
model.fit(
    data.dataset,
    epochs=2 * args.epochs,
    steps_per_epoch=steps,
    callbacks=[
        tfcyclegan.SampleGrid(x, y, os.path.join(args.out, "samples")),
        keras.callbacks.ModelCheckpoint(os.path.join(args.out, "cyclegan.keras")),
        keras.callbacks.TensorBoard(os.path.join(args.out, "logs")),
    ],
)
