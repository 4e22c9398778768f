"""The paired tf.data pipeline: aligned (A, B) pairs in, `(x, y)` batches out.

pix2pix learns from pairs: x and y show the same scene in two domains, pixel
for pixel. `paired_dataset` checks the pairs (`validation.check_pairs`), then
draws them by index from a new seeded permutation every epoch; each pair is
decoded and resized by Pillow (`decoding`, `geometry`) or taken from the
in-memory cache, then, for training, cropped and flipped (x and y alike), and
scaled to [-1, 1]. It is the unpaired pipeline's machinery (`pipeline`), with
a pair where that has an image.

What it matches in the authors' `AlignedDataset`
(junyanz/pytorch-CycleGAN-and-pix2pix, `data/aligned_dataset.py`):

- One file holds a pair: `AB = Image.open(path).convert('RGB')`,
  `w2 = int(w / 2)`, `A = AB.crop((0, 0, w2, h))`,
  `B = AB.crop((w2, 0, w, h))`: A is the left half, B the right.
- `get_params(opt, A.size)` draws one crop position and one flip decision,
  and A and B both go through `get_transform(opt, params)`: each resized
  (to `load_size` x `load_size` for `resize_and_crop`), then cropped at the
  same position and flipped alike. Here x and y are cropped and flipped as
  one image (stacked along channels), which gives the same guarantee.
- Grayscale: A is converted when `input_nc == 1` and B when
  `output_nc == 1`, and the two swap for `--direction BtoA`; so `channels`
  here are those of x and y.
- `--direction BtoA` feeds B as x and A as y (the authors' model picks
  `real_A = input['A' if AtoB else 'B']`).

Where it differs: an A|B image of odd width, where the authors' split gives
B one column more than A, is refused with its name and size (or skipped with
`skip_bad_files`) instead of being split unevenly; pairs are checked before
training starts; and the randomness is stateless and seeded, so
`PairedData.from_step` resumes a stream exactly.
"""

import dataclasses
import logging
import math
from typing import Callable, Optional

import tensorflow as tf

from tfcyclegan.config import DATA_DIRECTIONS, check_choice
from tfcyclegan.data import decoding, geometry, pipeline, sources, validation

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PairedData:
    """A paired dataset ready for `model.fit`.

    Args:
        dataset: `tf.data.Dataset` of `(x, y)` float32 batches in [-1, 1],
            y the pixel-aligned partner of x (x from A and y from B, or the
            other way round with `direction="BtoA"`). For training it repeats
            forever, so pass `steps_per_epoch` to `fit`.
        steps_per_epoch: batches per epoch: `size // batch_size` (at least 1)
            for training; for evaluation, the number of batches in the
            (finite) dataset.
        size: usable pairs (after skipping bad ones).
        skipped: a `BadImage` per pair (or partnerless file) left out with
            `skip_bad_files=True`.
    """

    dataset: tf.data.Dataset
    steps_per_epoch: int
    size: int
    skipped: tuple = ()
    _build: Optional[Callable] = dataclasses.field(default=None, repr=False, compare=False)

    def from_step(self, step):
        """The seeded training stream from batch `step` on, exactly as an
        uninterrupted stream continues there; no image is decoded to skip."""
        return pipeline.resume(self._build, step)


def _finish(image, config, training):
    """One side of a pair: its channels, the deterministic resize, uint8."""
    if config.channels == 1 and image.mode != "L":
        image = image.convert("L")  # What decoding does for channels=1.
    return decoding.to_array(geometry.resize(image, config, centre_crop=not training))


def _aligned_loader(config_a, config_b, training):
    """(name, bytes) of an A|B image -> (A, B) uint8, for tf.numpy_function."""
    # Decode in colour unless both sides are grayscale; each half is then
    # converted on its own, like the authors' per-side Grayscale(1).
    channels = 1 if config_a.channels == config_b.channels == 1 else 3

    def load(name, data):
        image = pipeline.read_image(name, data, channels, config_a.max_pixels)
        width, height = image.size
        if width % 2:  # Checked at start-up; the file changed since.
            raise ValueError(
                f"Cannot split {name.decode('utf-8', 'replace')} into A|B halves: "
                f"odd width ({width}x{height} px)."
            )
        half = width // 2
        a = image.crop((0, 0, half, height))
        b = image.crop((half, 0, width, height))
        return _finish(a, config_a, training), _finish(b, config_b, training)

    return load


def _folders_loader(config_a, config_b, training):
    """(name, bytes) of A and of B -> (A, B) uint8, for tf.numpy_function."""

    def load(name_a, data_a, name_b, data_b):
        a = pipeline.read_image(name_a, data_a, config_a.channels, config_a.max_pixels)
        b = pipeline.read_image(name_b, data_b, config_b.channels, config_b.max_pixels)
        a, b = _finish(a, config_a, training), _finish(b, config_b, training)
        if a.shape[:2] != b.shape[:2]:  # Checked at start-up; a file changed since.
            raise ValueError(
                f"{name_a.decode('utf-8', 'replace')} and "
                f"{name_b.decode('utf-8', 'replace')} come out in different sizes: "
                f"{a.shape[1]}x{a.shape[0]} and {b.shape[1]}x{b.shape[0]}."
            )
        return a, b

    return load


def _decoder(pairs, layout, config_a, config_b, training):
    """index -> (A, B) uint8 HxWxC, decoded and resized by Pillow."""
    names_a = tf.constant([a for a, _ in pairs])
    names_b = tf.constant([b for _, b in pairs])
    if layout == "aligned":
        loader = _aligned_loader(config_a, config_b, training)
    else:
        loader = _folders_loader(config_a, config_b, training)

    def decode(index):
        name_a = tf.gather(names_a, index)
        inputs = [name_a, tf.io.read_file(name_a)]
        if layout != "aligned":
            name_b = tf.gather(names_b, index)
            inputs += [name_b, tf.io.read_file(name_b)]
        a, b = tf.numpy_function(loader, inputs, [tf.uint8, tf.uint8], stateful=False)
        a.set_shape([None, None, config_a.channels])
        b.set_shape([None, None, config_b.channels])
        return a, b

    return decode


def paired_dataset(
    source,
    config,
    training=True,
    seed=None,
    *,
    direction=None,
    decode_check=True,
    progress=False,
    start_step=0,
    channels=None,
):
    """Builds the `(x, y)` batch pipeline for aligned pairs (pix2pix).

    Training: the pairs in a new random order every epoch; each pair decoded
    (or taken from the cache), resized, then randomly cropped and flipped,
    x and y alike (one crop position, one flip decision); batches of
    `config.batch_size` pairs repeat forever.
    Evaluation (`training=False`): sorted order, no randomness (centre crop,
    no flip), one pass (the last batch may be smaller).

    The pairs are checked first (`check_pairs`): unreadable files, A|B images
    of odd width, files without a partner and pairs whose sides come out in
    different sizes stop the build with a list of them, or are skipped and
    listed in `skipped` when `config.skip_bad_files` is set.

    A and B are resized on their own, as the authors do: with
    `resize_and_crop` both become `load_size` x `load_size`, whatever their
    sizes; the other modes keep sizes or aspect ratios, so there a pair's
    sides must agree (see `check_pairs`). Without a crop (`scale_width`,
    `none`) and with `batch_size` > 1, pairs of different output sizes
    cannot share a batch and raise a `ValueError` naming them.

    Seeds, resuming and `tf.distribute` work as in `unpaired_dataset`.

    Args:
        source: a `PairedSource` (see `resolve_pairs`), a folder of aligned
            A|B images (one split, e.g. `facades/train`), or a pair
            `(folder_a, folder_b)` of folders whose files pair by name.
        config: a `DataConfig`.
        training: random augmentation and an endless stream, or a single
            deterministic pass for evaluation.
        seed: int for repeatable batches; None draws fresh randomness.
        direction: `"AtoB"` (x from A, y from B) or `"BtoA"` (swapped);
            None takes `config.direction`.
        decode_check: decode every file at start-up to find truncated ones;
            False reads headers only.
        progress: show a progress bar while checking files.
        start_step: begin the training stream after this many batches, as an
            uninterrupted stream with the same seed would be there.
        channels: `(channels of x, channels of y)`, the model's input and
            output channels (the authors' `input_nc`, `output_nc`; with
            "BtoA", x's are B's); default `config.channels` for both.

    Returns:
        A `PairedData`.
    """
    pipeline.check_arguments(config, seed, training, start_step)
    direction = config.direction if direction is None else direction
    check_choice("direction", direction, DATA_DIRECTIONS)
    channels_x, channels_y = pipeline.check_channels(channels, config, sides="(x, y)")
    channels_a, channels_b = (
        (channels_x, channels_y) if direction == "AtoB" else (channels_y, channels_x)
    )
    config_a = dataclasses.replace(config, channels=channels_a)
    config_b = dataclasses.replace(config, channels=channels_b)
    source = sources.as_paired_source(source)

    title = f"Pairs ({source.name})"
    report = validation.check_pairs(source, config, decode=decode_check, progress=progress)
    validation.accept(report, title, config)
    pairs = report.good
    pipeline.check_batchable(
        report.sizes, [a for a, _ in pairs], config, f"the set of pairs {source.name}"
    )
    found = f"{len(pairs)} pair{'s' if len(pairs) != 1 else ''} ({source.layout} layout)"
    if source.ignored or source.hidden:
        found += "; not used: " + sources.describe_ignored(dict(source.ignored), source.hidden)
    logger.info("%s: %s", title, found)

    decode = _decoder(pairs, source.layout, config_a, config_b, training)
    if config.cache:
        decode = pipeline.cache_decoded(decode, len(pairs), title, "pairs")
    shuffle_seed, augment_seed = pipeline.derive_seeds(seed, count=2)

    def build(step):
        start = step * config.batch_size
        if training:
            indices = pipeline.epoch_orders(len(pairs), shuffle_seed, start)
        else:
            indices = tf.data.Dataset.range(len(pairs))
        ds = pipeline.example_stream(indices, decode, config, training, augment_seed, start)
        if direction == "BtoA":
            ds = ds.map(lambda a, b: (b, a))
        return pipeline.batched(ds, config, training, seed)

    if training:
        steps = max(1, len(pairs) // config.batch_size)
    else:
        steps = math.ceil(len(pairs) / config.batch_size)
    return PairedData(
        dataset=build(start_step),
        steps_per_epoch=steps,
        size=len(pairs),
        skipped=report.bad,
        _build=build if training and seed is not None else None,
    )
