"""Translate a folder of images with a trained CycleGAN, any image size.

    python examples/translate_folder.py my_run/cyclegan.keras photos/ out/ --direction b2a

`CycleGAN.translate` pads each image (reflect) to a size the generator takes
and crops the result back, so images need not be 256 x 256.
"""

import argparse
import os

import keras
import numpy as np
from PIL import Image

import tfcyclegan

parser = argparse.ArgumentParser()
parser.add_argument("model", help="a .keras file saved from a CycleGAN")
parser.add_argument("input")
parser.add_argument("out", help="folder for the translated images")
# The library reads a2b / b2a (and the authors' AtoB / BtoA) itself.
parser.add_argument("--direction", default="a2b", help="a2b uses G (A -> B), b2a uses F")
args = parser.parse_args()

model = keras.saving.load_model(args.model)
channels = model.generator(args.direction).input_shape[-1]
os.makedirs(args.out, exist_ok=True)
for path in tfcyclegan.list_images(args.input):
    pixels = tfcyclegan.load_image(path, channels=channels)  # EXIF-rotated, uint8
    image = pixels.astype("float32") / 127.5 - 1.0
    result = model.translate(image, direction=args.direction)
    result = np.clip(np.round((result + 1.0) * 127.5), 0, 255).astype("uint8")
    name = os.path.splitext(os.path.basename(path))[0] + ".png"
    Image.fromarray(result.squeeze(-1) if channels == 1 else result).save(os.path.join(args.out, name))
    print(f"{path} -> {os.path.join(args.out, name)}")
