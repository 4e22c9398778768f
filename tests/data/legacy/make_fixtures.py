"""Writes the `.keras` files of tests/test_legacy_files.py: tiny models of every method,
saved by tfcyclegan as it was at 28e77a5 (before the CPU speed forms moved behind
`tfcyclegan.kernels`), with the translations they gave then.

Kept for the record: it ran once, on that commit; re-running it on a later one would
make fixtures of the later code, which is not what the test is for.
    git worktree add /tmp/old 28e77a5 && cd /tmp/old && \
        python tests/data/legacy/make_fixtures.py OUT_DIR
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np

from tfcyclegan.config import Config
from tfcyclegan.runs import build_model
from tfcyclegan.training import save_model_atomically

# Each: (file stem, method, preset, ModelConfig changes). Small, but each names the
# classes a real file of its method names (the ResNet head and convolutions,
# the transposed convolution's crop, U-Net, CUT's blur pool and heads).
FIXTURES = (
    ("cyclegan_resnet", "cyclegan", "paper", dict(generator="resnet_2blocks")),
    ("cyclegan_resize_conv", "cyclegan", "recommended", dict(generator="resnet_1blocks")),
    ("cyclegan_mobile", "cyclegan", "paper", dict(generator="mobile_resnet_1blocks")),
    ("pix2pix_unet", "pix2pix", "paper", dict(generator="unet_128")),
    ("cut_resnet", "cut", "paper", dict(generator="resnet_2blocks", nce_layers=(0, 4, 8, 12))),
)


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    unet_images = np.random.default_rng(1).uniform(-1, 1, (1, 128, 128, 3)).astype("float32")
    arrays = {"images": images, "unet_images": unet_images}
    for stem, method, preset, changes in FIXTURES:
        config = Config.for_method(method, preset)
        model_config = dataclasses.replace(config.model, ngf=4, ndf=4, **changes)
        config = dataclasses.replace(config, model=model_config)
        model = build_model(dataclasses.replace(config, train=dataclasses.replace(config.train, seed=0)))
        inputs = unet_images if method == "pix2pix" else images
        model.translate(inputs[:1])  # builds every network
        for direction in ("a2b", "b2a") if method == "cyclegan" else ("a2b",):
            arrays[f"{stem}_{direction}"] = np.asarray(model.translate(inputs, direction=direction))
        save_model_atomically(model, out / f"{stem}.keras")
        print("wrote", out / f"{stem}.keras")
    np.savez(out / "outputs.npz", **arrays)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
