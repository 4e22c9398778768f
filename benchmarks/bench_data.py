"""How fast the input pipeline delivers training images, and what it costs.

Prints, for ~200 generated 400x300 JPEGs (two domains) at the paper's setting
(resize_and_crop 286 -> 256, flip, batch 1):

- the start-up check (`check_images`, every file decoded once);
- `unpaired_dataset` throughput, without and with `cache`;
- for comparison, the same pipeline decoding and resizing with TensorFlow ops
  (`tf.io.decode_jpeg` + `tf.image.resize(bicubic, antialias=True)`), the
  alternative to our Pillow decode;

between two matmul calibration lines, so figures from different machines (or
a busy one) can be compared. No asserts: run it and read it.

    python benchmarks/bench_data.py [--images 200] [--steps 300] [--repeats 2]

Images per second count both domains (each step yields one x and one y per
batch element). The last line sets the pipeline against the training step's
consumption at 256 px, read from the last full `run_all.py` (results.json).
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks import common  # noqa: E402
from tfcyclegan import data  # noqa: E402
from tfcyclegan.config import DataConfig  # noqa: E402
from tfcyclegan.synthetic import draw_scene  # noqa: E402

PAPER = DataConfig(load_size=286, crop_size=256, preprocess="resize_and_crop", flip=True)


def make_jpeg_domains(root, count=200, width=400, height=300, seed=0):
    """Writes `count` JPEGs split over `root/A` (summer) and `root/B` (winter).

    Scenes with photographic-ish grain (noise, quality 90), so files decode
    at a realistic cost rather than as flat colour.
    """
    rng = np.random.default_rng(seed)
    folders = []
    halves = (("A", "summer", count - count // 2), ("B", "winter", count // 2))
    for letter, season, n in halves:
        folder = os.path.join(root, letter)
        os.makedirs(folder, exist_ok=True)
        for i in range(n):
            scene = np.asarray(draw_scene(rng, season, width, height), np.float32)
            grain = rng.normal(0.0, 6.0, scene.shape)
            image = np.clip(scene + grain, 0, 255).astype(np.uint8)
            Image.fromarray(image).save(
                os.path.join(folder, f"{season}_{i:04d}.jpg"), quality=90
            )
        folders.append(folder)
    return folders


def _images_per_second(dataset, batch_size, steps, warmup):
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return 2 * batch_size * steps / (time.perf_counter() - start)


def pipeline_images_per_second(
    source_a, source_b, config=PAPER, steps=300, warmup=30, seed=0
):
    """Images per second (both domains) `unpaired_dataset` delivers.

    Args:
        source_a: domain A: folder, list of files or `ImageSource`.
        source_b: domain B.
        config: the `DataConfig` to measure (the paper's 286 -> 256 by default).
        steps: batches timed.
        warmup: batches read first and not timed (fills caches and buffers).
        seed: passed to `unpaired_dataset` (deterministic mode, as in tests).

    Returns:
        Images per second, counting x and y.
    """
    result = data.unpaired_dataset(source_a, source_b, config, seed=seed)
    return _images_per_second(result.dataset, config.batch_size, steps, warmup)


def tf_native_images_per_second(
    folder_a, folder_b, config=PAPER, steps=300, warmup=30, seed=0
):
    """The same pipeline with TensorFlow's JPEG decoder and bicubic resize.

    The alternative to Pillow, for comparison only: it ignores EXIF
    orientation, cannot read TIFF, and its antialiased bicubic differs from
    Pillow's (the reference's) by up to 3 levels (mean 0.2) at 400x300 -> 286.
    """
    size, crop = config.load_size, config.crop_size

    def domain(folder, offset):
        paths = data.list_images(folder)

        def load(path):
            image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3,
                                      dct_method="INTEGER_ACCURATE")
            image = tf.image.resize(image, (size, size), "bicubic", antialias=True)
            return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

        def augment(index, image):
            seeds = tf.random.experimental.stateless_split(
                tf.stack([tf.constant(seed + offset, tf.int64), index]), 2)
            image = tf.image.stateless_random_crop(image, [crop, crop, 3], seeds[0])
            image = tf.image.stateless_random_flip_left_right(image, seeds[1])
            return tf.cast(image, tf.float32) / 127.5 - 1.0

        ds = tf.data.Dataset.from_tensor_slices(paths)
        ds = ds.shuffle(len(paths), seed=seed + offset).repeat()
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE)

    ds = tf.data.Dataset.zip((domain(folder_a, 0), domain(folder_b, 1)))
    ds = ds.batch(config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return _images_per_second(ds, config.batch_size, steps, warmup)


def _print_consumption(pipeline_rate):
    """The training step's consumption at 256 px, from the last full run_all.py, beside the pipeline."""
    import json

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")
    try:
        with open(path) as f:
            result = json.load(f)
        step = result["train"]["256"]["keras"]["min"]
    except (OSError, KeyError, ValueError):
        print("training consumption: run benchmarks/run_all.py for the training step's figure")
        return
    consumed = 2 / step  # one x and one y per step at batch 1
    print(f"training consumption at 256 px: {consumed:.2f} images/s ({step:.2f} s per step, "
          f"benchmarks/results.json of {result['machine']['date']}): the pipeline is "
          f"{pipeline_rate / consumed:.0f}x faster")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images", type=int, default=200, help="JPEGs to generate (both domains)"
    )
    parser.add_argument("--steps", type=int, default=300, help="batches timed per figure")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each figure")
    args = parser.parse_args(argv)

    print(f"tensorflow {tf.__version__}, {os.cpu_count()} CPUs")
    print(common.calibration_line("before", common.matmul_gflops()))
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        folder_a, folder_b = make_jpeg_domains(root, args.images)
        print(f"wrote {args.images} 400x300 JPEGs in {time.perf_counter() - start:.1f} s")

        paths = data.list_images(folder_a) + data.list_images(folder_b)
        for decode in (True, False):
            start = time.perf_counter()
            data.check_images(paths, PAPER, decode=decode)
            seconds = time.perf_counter() - start
            kind = "decode" if decode else "header"
            rate = len(paths) / seconds
            print(f"start-up check ({kind:6s}):        {rate:8.0f} files/s")

        setting = "resize_and_crop 286->256, flip, batch 1"
        candidates = [
            ("tfcyclegan (Pillow decode)", lambda: pipeline_images_per_second(
                folder_a, folder_b, PAPER, args.steps)),
            ("TensorFlow-native decode", lambda: tf_native_images_per_second(
                folder_a, folder_b, PAPER, args.steps)),
            ("tfcyclegan, cache=True", lambda: pipeline_images_per_second(
                folder_a, folder_b, PAPER.replace(cache=True), args.steps,
                warmup=args.images)),
        ]
        # Interleaved repeats, so a machine that gets busier or quieter
        # during the run does not favour whichever is measured last.
        rates = {name: [] for name, _ in candidates}
        for _ in range(args.repeats):
            for name, measure in candidates:
                rates[name].append(measure())
        print(f"pipeline throughput, {setting} (best of {args.repeats}; all runs):")
        for name, values in rates.items():
            runs = ", ".join(f"{v:.0f}" for v in values)
            print(f"  {name:28s} {max(values):8.0f} images/s   ({runs})")
        _print_consumption(max(rates["tfcyclegan (Pillow decode)"]))
    print(common.calibration_line("after", common.matmul_gflops()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
