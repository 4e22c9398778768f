"""Images in, training batches out: unpaired (CycleGAN) or paired (pix2pix).

A CycleGAN learns from two unpaired sets of images, domain A (the paper's X) and
domain B (Y). `unpaired_dataset` turns either set, given as

- a folder of images (searched recursively),
- the authors' dataset layout (`root/trainA`, `root/trainB`, `root/testA`,
  `root/testB`, e.g. `horse2zebra/`), or
- a TensorFlow Datasets split (`tfds:cycle_gan/horse2zebra`),

into a `tf.data.Dataset` of `(x, y)` batches for `model.fit`: float32 in [-1, 1],
NHWC, each domain shuffled and repeated on its own.

pix2pix learns from aligned pairs. `paired_dataset` reads them (`resolve_pairs`
finds them) from

- the authors' aligned layout: one image per pair, A in the left half and B
  in the right, in `root/train`, `root/val`, `root/test` (e.g. `facades/`), or
- two folders whose files pair by name (`a/001.jpg` with `b/001.png`),

into `(x, y)` batches where y is x's partner, both cropped and flipped alike;
`direction="BtoA"` swaps the sides. It runs the same steps as below, with a
pair where they have an image (`paired`), and `check_pairs` reports what makes
a pair unusable.

How an image becomes a training example, in order, and the module that does it:

1. **Find** (`sources`): folders are listed (`list_images`, hidden files
   skipped, other files counted) and the two domains resolved from what the
   user gave (`resolve_domains`: the authors' layout, two folders, or TFDS).
2. **Check** (`validation`; files only, at start-up): every file is opened
   and decoded once (`check_images`), so a truncated JPEG or a text file named
   `.jpg` is reported with its path before training starts, not as a
   TensorFlow error hours in.
3. **Decode** (`decoding`) with Pillow: EXIF orientation applied, any mode
   (palette, CMYK, 16-bit, alpha, ...) converted to RGB or grayscale, GIFs give
   their first frame. Pillow, not `tf.io.decode_image`, because TensorFlow
   ignores EXIF orientation (phone photos come out sideways) and cannot read
   TIFF, and because the reference resizes with Pillow, which we then match
   exactly. It is not slower: in `benchmarks/bench_data.py` Pillow's decode +
   bicubic resize beats `tf.io.decode_jpeg` + `tf.image.resize(...,
   "bicubic", antialias=True)` on CPU.
4. **Resize** (`geometry`; deterministic, Pillow bicubic), exactly the
   reference's `get_transform` (junyanz/pytorch-CycleGAN-and-pix2pix,
   `data/base_dataset.py`) for each `DataConfig.preprocess` mode.
5. **Cache** (`pipeline`, `DataConfig.cache`): decoded, resized uint8 images
   kept in memory.
6. **Augment** (`pipeline`; training only, after the cache, so every epoch
   sees new crops): random `crop_size` crop, random horizontal flip, seeded per
   image with stateless ops so a seed gives the same batches on every run.
7. **Scale** to [-1, 1] (`pipeline`): `x / 127.5 - 1`, the reference's
   `Normalize(0.5, 0.5)`.

Evaluation (`training=False`; outside tf.data, `geometry.preprocess_for_eval`
and `geometry.load_eval_images`) uses the same steps without randomness: the
random crop becomes a centre crop and there is no flip.

Messages go through the standard `logging` module (loggers under
`tfcyclegan.data`): what was found and ignored at INFO, skipped files and
enlarged images at WARNING.
"""

from tfcyclegan.data.decoding import load_image
from tfcyclegan.data.geometry import load_eval_images, preprocess_for_eval
from tfcyclegan.data.paired import PairedData, paired_dataset
from tfcyclegan.data.pipeline import UnpairedData, unpaired_dataset
from tfcyclegan.data.sources import (
    IMAGE_EXTENSIONS,
    Domains,
    ImageSource,
    PairedSource,
    as_paired_source,
    as_source,
    has_split,
    list_images,
    resolve_domains,
    resolve_pairs,
)
from tfcyclegan.data.validation import (
    BadImage,
    ImageReport,
    PairReport,
    check_images,
    check_pairs,
    format_report,
)
