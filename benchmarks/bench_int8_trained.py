"""Full int8 against float32 on several briefly trained generators (issue #29, part 4).

Trains CycleGANs on photo-like images (1/f textures, illumination gradients,
objects of their own colour, highlights: `photos`) for every combination of
seeds x ResNet-6/ResNet-9 x transpose/resize_conv upsampling, then converts
each G to fixed-size full int8 twice: plain (no equalization) and as
`convert_tflite` does it (instance-norm equalization), calibrated like a real
photo folder: mostly textured photos plus two low-contrast ones (fog,
overexposure), where a channel's variance nears the norms' epsilon.

Per model: PSNR against Keras float32 of both int8 files (LiteRT, held-out
photos), the equalized float copy against the original on the calibration
images (the guard's measure, `EQUALIZE_MIN_PSNR`), the copy as it is converted
(variance floors, 8-bit statistics: `Equalized.converted_psnr_db`), and the same
copy with the norms' own scalar epsilon, as equalization computed it before
(what made the guard refuse trained models).

With `--data DIR` (a CycleGAN-layout folder: trainA/ trainB/ testA/ testB/,
e.g. `tfcyclegan.looks.make_look_dataset`'s real photos) the models train on
DIR's trainA/trainB (random `--size` crops of images resized to `--size` + 8),
int8 is calibrated on testA as `--representative-data DIR/testA` samples it
(16 spread over the sorted files; two of them made low-contrast, as above), and
PSNR is measured on the other testA images, which must be `--size` px squares.

    python benchmarks/bench_int8_trained.py --steps 300 --ngf 16 --size 64
    python benchmarks/bench_int8_trained.py --steps 300 --data /tmp/looks
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if not __package__:  # run as a script
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import common  # noqa: E402


def _pink(rng, size, channels, power):
    """Noise with a 1/f^(power/2) amplitude spectrum (natural images: power ~2), unit std."""
    import numpy as np

    f = np.fft.fftfreq(size)
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    radius[0, 0] = 1.0
    amplitude = radius ** (-power / 2)
    amplitude[0, 0] = 0.0
    noise = rng.normal(size=(channels, size, size)) + 1j * rng.normal(size=(channels, size, size))
    field = np.real(np.fft.ifft2(noise * amplitude)).transpose(1, 2, 0)
    return (field - field.mean()) / (field.std() + 1e-12)


def photo(rng, size, domain="a"):
    """A photo-like HWC float32 image in [-1, 1]; domain "b" re-tones the same kind of scene."""
    import numpy as np

    mix = rng.normal(size=(3, 3)) * 0.3 + np.eye(3)
    image = _pink(rng, size, 3, rng.uniform(1.6, 2.6)) @ mix.T * rng.uniform(0.15, 0.35)
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi)
    image = image + (np.cos(angle) * xx + np.sin(angle) * yy)[..., None] * rng.uniform(0.2, 0.8)
    image = image + rng.uniform(-0.3, 0.3, size=3)
    for _ in range(rng.integers(2, 6)):
        cy, cx = rng.uniform(0, size, 2)
        radius = rng.uniform(size / 10, size / 3)
        inside = ((yy * size - cy) ** 2 + (xx * size - cx) ** 2 < radius**2)[..., None]
        texture = _pink(rng, size, 1, 1.2) * rng.uniform(0.02, 0.3)
        image = np.where(inside, rng.uniform(-0.9, 0.9, size=3) + texture, image)
    if rng.random() < 0.3:  # saturated highlights and deep shadows
        image = image * rng.uniform(1.5, 2.5)
    if domain == "b":
        image = np.stack([image[..., 1], image[..., 2] * 0.8, image[..., 0]], -1) ** 3 * 0.7
        image = image + 0.2 * np.stack([image[..., 2], image[..., 0], image[..., 1]], -1)
    pixels = np.round((np.clip(image, -1, 1) + 1) * 127.5)  # through uint8, as files are
    return (pixels / 127.5 - 1).astype(np.float32)


def photos(seed, count, size, domain="a"):
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.stack([photo(rng, size, domain) for _ in range(count)])


def train(seed, blocks, upsample, ngf, size, steps, images=200, data=None):
    """G of a CycleGAN trained `steps` steps (batch 1) on photo-like x and re-toned y,
    or on the folder `data`'s trainA/trainB through the package's pipeline."""
    import keras
    import tensorflow as tf

    import tfcyclegan
    from tfcyclegan.data import unpaired_dataset

    keras.utils.set_random_seed(seed)
    config = tfcyclegan.ModelConfig(
        generator=f"resnet_{blocks}blocks", ngf=ngf, ndf=ngf, upsample=upsample
    )
    model = tfcyclegan.CycleGAN.from_model_config(config, seed=seed)
    model.compile(
        generator_optimizer=tfcyclegan.TorchAdam(2e-4, beta_1=0.5),
        discriminator_optimizer=tfcyclegan.TorchAdam(2e-4, beta_1=0.5),
    )
    if data is None:
        x = photos(seed, images, size, "a")
        y = photos(seed + 1000, images, size, "b")
        stream = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(images, seed=seed).repeat().batch(1)
    else:
        # The look benchmark's setting: resize to size + 8, random size crops and flips.
        config = tfcyclegan.DataConfig(load_size=size + 8, crop_size=size, cache=True)
        stream = unpaired_dataset(
            os.path.join(data, "trainA"), os.path.join(data, "trainB"), config, seed=seed
        ).dataset
    model.fit(stream, epochs=1, steps_per_epoch=steps, verbose=0)
    return model.G


def _with_low_contrast(sample):
    """Calibration as from a folder of real photos: 14 textured, 2 low-contrast (fog)."""
    foggy = [0.6 + 0.03 * image for image in sample[:2]]
    return [image[None] for image in [*sample[2:], *foggy]]


def folder_sets(data, size):
    """Calibration and test images (float32 in [-1, 1]) from `data`/testA.

    Calibration: the 16 images `--representative-data data/testA` samples, two
    of them made low-contrast; test: the other testA images.
    """
    import numpy as np

    from tfcyclegan import imaging
    from tfcyclegan.data import list_images, load_image
    from tfcyclegan.export.loading import sample_folder

    folder = os.path.join(data, "testA")
    paths = list_images(folder)
    sampled = set(paths[:: max(1, len(paths) // 16)][:16])  # the files `sample_folder` reads
    held_out = [path for path in paths if path not in sampled]
    sample = [imaging.to_float_array(image) for image in sample_folder(folder, 16, 3)]
    test = [imaging.to_float_array(load_image(p, channels=3)) for p in held_out]
    shapes = {image.shape for image in [*sample, *test]}
    if len(sample) < 16 or not test or shapes != {(size, size, 3)}:
        raise ValueError(
            f"{folder} must hold more than 16 RGB images of {size} x {size} px (`--size`). "
            f"Received: {len(paths)} images of shapes {sorted(shapes)}"
        )
    return _with_low_contrast(sample), np.stack(test).astype(np.float32)


def _litert(flatbuffer, images):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer, num_threads=2)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    outputs = []
    for image in images:
        interpreter.set_tensor(source, image[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target)[0])
    return np.stack(outputs)


def _scalar_epsilon_psnr(equalized, generator, calibration):
    """The equalized copy with its norms' own epsilon (equalization before #29 part 4)
    against the original, on the non-flat calibration images."""
    import numpy as np

    from tfcyclegan.export import quantization
    from tfcyclegan.layers import InstanceNormalization

    norms = [
        layer
        for layer in equalized.generator._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, InstanceNormalization) and np.ndim(layer.epsilon)
    ]
    per_channel = [norm.epsilon for norm in norms]
    originals = {
        layer.path: layer.epsilon
        for layer in generator._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, InstanceNormalization)
    }
    floors = [(norm.variance_floor, norm.statistic_ranges) for norm in norms]
    try:
        for norm in norms:
            norm.epsilon = originals.get(norm.path, 1e-5)
            norm.variance_floor = norm.statistic_ranges = None
        checked = [c for c in calibration if np.ptp(c) >= quantization.FLAT_RANGE]
        return quantization._psnr(
            np.concatenate([quantization._flat(equalized.generator(c, training=False)) for c in checked]),
            np.concatenate([quantization._flat(generator(c, training=False)) for c in checked]),
        )
    finally:
        for norm, epsilon, (floor, ranges) in zip(norms, per_channel, floors):
            norm.epsilon = epsilon
            norm.variance_floor, norm.statistic_ranges = floor, ranges


def measure(generator, size, calibration, test):
    """int8 (equalized and plain) against float32, and the guard's measures; a dict."""
    import numpy as np

    from tfcyclegan.export import quantization, tflite
    from tfcyclegan.export.parity import psnr

    reference = np.asarray(generator(test, training=False))
    equalized = quantization.equalize_instance_norm(generator, calibration)
    row = {
        "pairs": len(equalized.pairs),
        "refused": equalized.refused,
        "guard_db": equalized.psnr_db,
        "converted_db": equalized.converted_psnr_db,
        "spread": max(equalized.spread, default=None),
        "scalar_eps_db": (
            _scalar_epsilon_psnr(equalized, generator, calibration) if equalized.pairs else None
        ),
    }
    int8 = tflite.convert_tflite(
        generator, "int8", calibration, input_size=(size, size), allow_lossy_int8=True
    )
    row["int8_db"] = psnr(_litert(int8, test), reference)
    with tflite.tflite_saved_model(generator, (size, size)) as saved_model_dir:
        plain = tflite._convert(saved_model_dir, "translate", "int8", calibration, False)
    row["plain_int8_db"] = psnr(_litert(plain, test), reference)
    return row


def table(rows):
    def db(value):
        return "–" if value is None else f"{value:.1f}"

    lines = [
        "| seed | generator | upsample | train s | pairs | spread | float copy dB (guard) "
        "| as converted dB | same copy, scalar eps dB | int8 dB | plain int8 dB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        guard = db(r["guard_db"]) + (" refused" if r["refused"] else "")
        spread = "–" if r["spread"] is None else f"{r['spread']:.1f}x"
        lines.append(
            f"| {r['seed']} | ResNet-{r['blocks']} | {r['upsample']} | {r['train_s']:.0f} "
            f"| {r['pairs']} | {spread} | {guard} | {db(r['converted_db'])} | {db(r['scalar_eps_db'])} "
            f"| {db(r['int8_db'])} | {db(r['plain_int8_db'])} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--blocks", type=int, nargs="+", default=[6, 9])
    parser.add_argument("--upsample", nargs="+", default=["transpose", "resize_conv"])
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300, help="training steps (batch 1) per model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--data",
        help="a CycleGAN-layout folder (trainA/ trainB/ testA/ testB/) to train, calibrate "
        "and test on instead of procedural photo-like images",
    )
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    machine = common.machine_info()
    if args.data is None:
        calibration = _with_low_contrast(photos(500, 16, args.size))
        test = photos(700, 8, args.size)
        trained_on = "photo-like images"
        calibrated_on = "16 photos (2 low-contrast)"
        tested_on = f"{len(test)} held-out photos"
    else:
        calibration, test = folder_sets(args.data, args.size)
        trained_on = f"{args.data}'s trainA/trainB ({args.size} px crops of {args.size + 8})"
        calibrated_on = "16 of testA as --representative-data samples it (2 made low-contrast)"
        tested_on = f"the other {len(test)} testA images"
    rows = []
    for seed in args.seeds:
        for blocks in args.blocks:
            for upsample in args.upsample:
                start = time.perf_counter()
                generator = train(
                    seed, blocks, upsample, args.ngf, args.size, args.steps, data=args.data
                )
                seconds = time.perf_counter() - start
                row = {"seed": seed, "blocks": blocks, "upsample": upsample, "train_s": seconds}
                row.update(measure(generator, args.size, calibration, test))
                common.log(f"{row}")
                rows.append(row)
    print(common.describe_machine(machine) + f"; code {common.code_version()}")
    print(
        f"CycleGAN G, ngf {args.ngf}, {args.size} px, {args.steps} steps (batch 1) on {trained_on}; "
        f"int8 calibrated on {calibrated_on}, fixed size; PSNR against Keras float32 on "
        f"{tested_on}, LiteRT {args.threads} threads"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
