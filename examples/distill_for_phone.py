"""Distill a trained CycleGAN into a phone-sized student, export it, and compare it with its teacher.

    python examples/distill_for_phone.py runs/h2z --out runs/h2z_student --images horse2zebra/testA

The student (a mobile ResNet: depthwise-separable residual blocks, 32 filters) learns the
teacher's G on the teacher's own training images. The run folder is a normal run (resume it
with `tfcyclegan distill --resume`); the student exports to a SavedModel and builtin-op TFLite
files like any generator. Last, the PSNR of the student's translations to the teacher's on
--images, and both generators' sizes.
"""

import argparse
import os

import numpy as np

import tfcyclegan
from tfcyclegan.distillation import student_config, teacher_data_spec
from tfcyclegan.export import export

parser = argparse.ArgumentParser()
parser.add_argument("teacher", help="a trained run folder (tfcyclegan train)")
parser.add_argument("--out", required=True, help="the student's run folder")
parser.add_argument("--images", required=True, help="a folder of domain A images to compare on")
parser.add_argument("--epochs", type=int, help="epochs (default: the teacher's schedule)")
args = parser.parse_args()
tiny = bool(os.environ.get("TFCYCLEGAN_EXAMPLE_TINY"))  # the test suite's setting

config = student_config(args.teacher, direction="a2b", student="mobile_resnet",
                        ngf=4 if tiny else 32, n_blocks=1 if tiny else 9)
if args.epochs is not None:
    config = config.replace(train=config.train.replace(epochs=args.epochs, epochs_decay=args.epochs))
result = tfcyclegan.train(config, args.out, teacher_data_spec(args.teacher), verbose=0 if tiny else "auto")
student = result.model  # a Distill model: .G is the student, .T the frozen teacher

report = export(args.out, os.path.join(args.out, "exported"), tflite_modes=("fp32", "fp16"),
                tflite_io=("float32",), overwrite=True, verbose=False)
for mode, info in report.tflite["a2b"].items():
    print(f"TFLite {mode}: {info['path']} ({info['bytes'] / 1024:.0f} KiB)")

size = config.data.crop_size
paths = tfcyclegan.list_images(args.images)[:8]
images = np.stack([tfcyclegan.load_image(p)[:size, :size] for p in paths]).astype(np.float32) / 127.5 - 1
mine = student.translate(images)
theirs = tfcyclegan.load_run_model(args.teacher).translate(images, "a2b")
mse = np.mean(((mine - theirs) / 2) ** 2, axis=(1, 2, 3))  # on the [0, 1] scale
print(f"PSNR student to teacher on {len(paths)} images: {np.mean(10 * np.log10(1 / mse)):.1f} dB")
parameters = {name: sum(int(np.prod(w.shape)) for w in g.weights) for name, g in (("teacher", student.T),
                                                                                 ("student", student.G))}
print(f"parameters: teacher {parameters['teacher']:,}, student {parameters['student']:,}")
