"""Export a trained CycleGAN for TF Serving and for phones, and use both.

    python examples/export_for_phone_and_server.py my_run/cyclegan.keras exported/ --images photos/

Writes a SavedModel (exported/cyclegan_a2b/1/, for TF Serving) and TFLite
files (exported/tflite/, builtin ops only) and checks each against Keras.
Then it runs the SavedModel's REST-style signature on an encoded image and
the phone model through LiteRT.
"""

import argparse
import os

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import tfcyclegan
from tfcyclegan.export import export

parser = argparse.ArgumentParser()
parser.add_argument("model", help="a .keras file or run folder")
parser.add_argument("out")
parser.add_argument("--images", required=True, help="a few images: int8 calibration and parity check")
args = parser.parse_args()

report = export(args.model, args.out, direction="a2b", tflite_modes=("fp32", "fp16", "int8"),
                tflite_io=("float32",), representative_data=args.images, overwrite=True)

# Server: the SavedModel answers encoded images with PNGs, as TF Serving would.
server = tf.saved_model.load(os.path.join(args.out, "cyclegan_a2b", "1"))
first = tfcyclegan.list_images(args.images)[0]
with open(first, "rb") as f:
    png = server.signatures["serving_default"](image_bytes=tf.constant([f.read()]))["output_bytes"][0]
print(f"serving_default: {first} -> {len(png.numpy())} bytes of PNG")

# Phone: the fp32 .tflite file with LiteRT, resized to this image.
tflite = os.path.join(args.out, report.tflite["a2b"]["fp32"]["path"])
interpreter = Interpreter(model_path=tflite, num_threads=2)
pixels = tfcyclegan.load_image(first)
height, width = (s // 4 * 4 for s in pixels.shape[:2])  # a ResNet generator takes multiples of 4
image = pixels[None, :height, :width].astype(np.float32) / 127.5 - 1.0
interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], image.shape)
interpreter.allocate_tensors()
interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
interpreter.invoke()
output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
print(f"LiteRT {os.path.basename(tflite)}: {image.shape} -> {output.shape}, range [{output.min():.2f}, {output.max():.2f}]")
