"""Train pix2pix on aligned pairs with plain `model.fit`, then measure it on the test split.

    python examples/train_paired.py facades/ --out my_pix2pix

`facades/` is the authors' aligned layout (train/ and test/ of A|B images side
by side). Without a dataset, `--synthetic` draws one offline: the same
landscape in summer (A) and winter (B). The model is the authors' pix2pix
(U-Net 256, batch norm, dropout, conditional PatchGAN, vanilla GAN, lambda_L1
100). TFCYCLEGAN_EXAMPLE_TINY=1 shrinks everything to seconds (the test suite
runs it that way).
"""

import argparse
import os

import keras

import tfcyclegan
from tfcyclegan import evaluate

parser = argparse.ArgumentParser()
parser.add_argument("data", help="dataset root with train/ and test/ (aligned A|B images)")
parser.add_argument("--out", default="pix2pix_run")
parser.add_argument("--epochs", type=int, default=100, help="then as many with linear decay")
parser.add_argument("--synthetic", action="store_true", help="first draw a synthetic paired dataset into DATA")
args = parser.parse_args()
tiny = os.environ.get("TFCYCLEGAN_EXAMPLE_TINY") == "1"

if args.synthetic:
    tfcyclegan.make_paired_dataset(args.data, n_train=8 if tiny else 200, n_test=4 if tiny else 20,
                                   size=32 if tiny else 64)
if tiny:  # pix2pix's U-Net 256 needs 256 px images; tiny runs use a small ResNet G
    model_config = tfcyclegan.ModelConfig(method="pix2pix", generator="resnet_1blocks", ngf=4, ndf=4,
                                          norm="batch", dropout=True)
    data_config = tfcyclegan.DataConfig(load_size=36, crop_size=32)
else:
    model_config = tfcyclegan.Config.for_method("pix2pix").model
    data_config = tfcyclegan.DataConfig()

pairs = tfcyclegan.resolve_pairs(data=args.data, split="train")
data = tfcyclegan.paired_dataset(pairs, data_config, seed=0)
steps = 2 if tiny else data.steps_per_epoch

model = tfcyclegan.Pix2Pix.from_model_config(model_config)
schedule = tfcyclegan.LinearDecay(2e-4, args.epochs * steps, args.epochs * steps, update_every=steps)
model.compile(  # the authors' defaults; lambda_gan=0 would be "L1 alone"
    generator_optimizer=tfcyclegan.TorchAdam(schedule, beta_1=0.5),
    discriminator_optimizer=tfcyclegan.TorchAdam(schedule, beta_1=0.5),
    gan_mode="vanilla",
    lambda_l1=100.0,
)
x, y = next(iter(data.dataset))  # fixed images for the sample grids (x, G(x), y)
model.fit(
    data.dataset,
    epochs=2 * args.epochs,
    steps_per_epoch=steps,
    callbacks=[
        tfcyclegan.SampleGrid(x, y, os.path.join(args.out, "samples")),
        keras.callbacks.ModelCheckpoint(os.path.join(args.out, "pix2pix.keras")),
    ],
)
report = evaluate.evaluate(
    lambda images: model.translate(images), args.data, image_size=data_config.crop_size,
    fid=False, out_dir=os.path.join(args.out, "evaluation"),
)
