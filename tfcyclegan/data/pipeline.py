"""The tf.data pipeline: two domains in, `(x, y)` batches for `model.fit` out.

`unpaired_dataset` checks each domain's files (`validation`), then draws
images by index: a new seeded permutation every epoch (`epoch_orders`), each
image decoded and resized by Pillow in parallel (`decoding`, `geometry`) or
taken from the in-memory cache (`cache_decoded`), then, for training, randomly
cropped and flipped with stateless ops seeded by the image's position in the
stream (`make_augment`), and scaled to [-1, 1]. A seed gives the same batches
on every run, and `UnpairedData.from_step` resumes the stream where it stopped.

The paired pipeline (`paired`) is built from the same pieces; there an
example is a tuple of images (x, y), decoded together, cached together and
cropped and flipped together.
"""

import dataclasses
import io
import logging
import math
import threading
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from tfcyclegan import imaging
from tfcyclegan.checks import check_int
from tfcyclegan.config import DataConfig
from tfcyclegan.data import decoding, geometry, sources, validation

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class UnpairedData:
    """An unpaired dataset ready for `model.fit`.

    Args:
        dataset: `tf.data.Dataset` of `(x, y)` float32 batches in [-1, 1],
            x from domain A and y from domain B. For training it repeats
            forever, so pass `steps_per_epoch` to `fit`.
        steps_per_epoch: batches per epoch: `max(size_a, size_b) // batch_size`
            (at least 1) for training, as in the reference; for evaluation,
            the number of batches in the (finite) dataset.
        size_a: images in domain A (after skipping bad files).
        size_b: images in domain B.
        skipped: a `BadImage` per file left out with `skip_bad_files=True`.
    """

    dataset: tf.data.Dataset
    steps_per_epoch: int
    size_a: int
    size_b: int
    skipped: tuple = ()
    _build: Optional[Callable] = dataclasses.field(default=None, repr=False, compare=False)

    def from_step(self, step):
        """The seeded training stream from batch `step` on, exactly as an
        uninterrupted stream continues there; no image is decoded to skip."""
        return resume(self._build, step)


def resume(build, step):
    """`build(step)`: the `from_step` of both pipelines' results. `build` is
    None for streams that cannot resume (unseeded, or evaluation)."""
    if build is None:
        raise ValueError(
            "from_step needs a seeded training stream (training=True, seed=...)."
        )
    return build(check_int("step", step, 0))


def check_arguments(config, seed, training, start_step):
    """Rejects what no pipeline can use: shared by the unpaired and paired ones."""
    if not isinstance(config, DataConfig):
        raise ValueError(
            f"`config` must be a DataConfig. Received: {type(config).__name__}"
        )
    if seed is not None:
        check_int("seed", seed, 0, hint="or None")
    check_int("start_step", start_step, 0)
    if start_step and (not training or seed is None):
        raise ValueError(
            "`start_step` resumes a seeded training stream; it needs training=True "
            f"and a seed. Received: training={training}, seed={seed}"
        )


def check_channels(channels, config, sides="(A, B)"):
    """`channels` as a checked pair; None means `config.channels` for both."""
    if channels is None:
        return (config.channels, config.channels)
    if not isinstance(channels, (tuple, list)) or len(channels) != 2:
        raise ValueError(
            f"`channels` must be a pair {sides}, e.g. (1, 3). Received: channels={channels!r}"
        )
    # DataConfig checks each value (1 or 3) when the pipeline copies it.
    return tuple(channels)


def _checked_paths(source, config, letter, decode, progress):
    """Validates a file source; returns (good paths, sizes, skipped)."""
    report = validation.check_images(
        source.paths, config, decode=decode, progress=progress
    )
    validation.accept(report, f"Domain {letter} ({source.name})", config)
    return report.good, report.sizes, report.bad


def check_batchable(sizes, paths, config, what):
    """Without a crop, images keep their own sizes and cannot share a batch.

    `what` names the images in the message, e.g. "domain A".
    """
    if config.batch_size == 1 or config.preprocess in geometry.CROP_MODES:
        return
    outputs = {}
    for path, size in zip(paths, sizes):
        outputs.setdefault(geometry.output_size(*size, config), path)
    if len(outputs) > 1:
        examples = ", ".join(
            f"{w}x{h} ({path})" for (w, h), path in list(outputs.items())[:3]
        )
        raise ValueError(
            f"preprocess={config.preprocess!r} keeps each image's aspect ratio, so "
            f"{what} gives {len(outputs)} different sizes (e.g. {examples}), "
            f"which cannot be stacked into batches. Received: batch_size="
            f"{config.batch_size}. Use batch_size=1, or a cropping mode such as "
            "preprocess='scale_width_and_crop'."
        )


def read_image(name, data, channels, max_pixels):
    """Decodes an image's bytes inside `tf.numpy_function`: (name, bytes) -> Pillow.

    A file that has become unreadable since the start-up check (or an
    unchecked TFDS record) raises a ValueError naming it, which surfaces as
    `tf.errors.InvalidArgumentError` with this message.
    """
    name = name.decode("utf-8", "replace")
    try:
        return decoding.decode(io.BytesIO(data), channels, max_pixels)
    except decoding.BadImageError as error:
        raise ValueError(f"Cannot read image {name}: {error.reason}") from None


def _make_loader(config, training, warn_enlarged, letter):
    """The Python function tf.numpy_function runs: (name, bytes) -> uint8."""
    warned = threading.Event()

    def load(name, data):
        image = read_image(name, data, config.channels, config.max_pixels)
        name = name.decode("utf-8", "replace")
        if (
            warn_enlarged
            and not warned.is_set()
            and geometry.is_enlarged(*image.size, config)
        ):
            warned.set()
            logger.warning(
                "Domain %s: %s is %dx%d, smaller than crop_size=%d px; such images "
                "are enlarged (bicubic). Further ones are not logged.",
                letter, name, image.width, image.height, config.crop_size,
            )
        image = geometry.resize(image, config, centre_crop=not training)
        return decoding.to_array(image)

    return load


def _elements(source):
    """A source's images as index-addressable tensors: `(names, blobs, count)`.

    Files give their paths as names and no blobs (a file is read only when it
    is drawn). TFDS splits are read into memory as encoded bytes: training
    draws images by index, which a TFDS record stream cannot serve (the
    `cycle_gan/*` splits are tens to a few hundred MB encoded).
    """
    if not source.is_tfds:
        return tf.constant(list(source.paths)), None, len(source.paths)

    import tensorflow_datasets as tfds  # Slow to import; only TFDS users pay.

    builder = tfds.builder(source.tfds_name, data_dir=source.tfds_data_dir)
    logger.info("Preparing %s (downloads on first use).", source.tfds_name)
    builder.download_and_prepare()
    known = list(builder.info.splits.keys())
    if known and source.tfds_split not in known:
        raise ValueError(
            f"{source.tfds_name} has no split {source.tfds_split!r}. "
            f"Its splits: {sorted(known)}"
        )
    records = builder.as_dataset(
        split=source.tfds_split,
        shuffle_files=False,
        # Keep the encoded bytes: they decode below exactly like files do.
        decoders={"image": tfds.decode.SkipDecoding()},
    )
    blobs = [record["image"] for record in tfds.as_numpy(records)]
    if not blobs:
        raise ValueError(f"{source.name} is empty.")
    names = [f"{source.name}#{i}" for i in range(len(blobs))]
    return tf.constant(names), tf.constant(blobs), len(blobs)


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """A domain after checking, ready for decoding."""

    letter: str
    names: tf.Tensor  # Paths, or "tfds:<name>/<split>#<index>".
    blobs: Optional[tf.Tensor]  # Encoded images (TFDS), or None (read the path).
    size: int
    skipped: tuple
    is_tfds: bool  # Also: sizes were not known up front, so log in decode.


def _prepare(source, config, letter, decode_check, progress):
    """Checks a domain's files (or opens its TFDS split)."""
    skipped = ()
    if not source.is_tfds:
        paths, sizes, skipped = _checked_paths(
            source, config, letter, decode_check, progress
        )
        check_batchable(sizes, paths, config, f"domain {letter}")
        source = dataclasses.replace(source, paths=tuple(paths))
        found = f"{len(paths)} image{'s' if len(paths) != 1 else ''} in {source.name}"
        if source.ignored or source.hidden:
            not_used = sources.describe_ignored(dict(source.ignored), source.hidden)
            found += "; not used: " + not_used
        logger.info("Domain %s: %s", letter, found)
    names, blobs, size = _elements(source)
    return _Prepared(letter, names, blobs, size, tuple(skipped), source.is_tfds)


def epoch_orders(size, seed, start):
    """Indices into a domain: a new permutation every epoch, from `start` on.

    Epoch e's order is a pure function of (seed, e), unlike
    `Dataset.shuffle(reshuffle_each_iteration=True)`, whose order changes with
    every iterator made from the dataset. So a resumed run that starts a new
    iterator at element `start` sees exactly the elements an uninterrupted
    run would, and skipping to it costs no decoding.
    """
    first_epoch, offset = divmod(start, size)

    def permutation(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(size, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        return tf.data.Dataset.from_tensor_slices(order)

    return tf.data.Dataset.range(first_epoch, 2**62).flat_map(permutation).skip(offset)


def _decoder(prepared, config, training):
    """index -> uint8 HxWxC image, decoded and resized by Pillow."""
    loader = _make_loader(config, training, prepared.is_tfds, prepared.letter)

    def decode(index):
        name = tf.gather(prepared.names, index)
        data = tf.io.read_file(name) if prepared.blobs is None else tf.gather(prepared.blobs, index)
        image = tf.numpy_function(loader, [name, data], tf.uint8, stateful=False)
        image.set_shape([None, None, config.channels])
        return image

    return decode


def _cached_decoder(prepared, config, training):
    """Like `_decoder`, from images decoded once, up front, into memory."""
    decode = _decoder(prepared, config, training)
    return cache_decoded(decode, prepared.size, f"Domain {prepared.letter}", "images")


def _store(arrays):
    """index -> arrays[index], from one flat variable (plus offsets and shapes)."""
    shapes = np.array([a.shape for a in arrays], np.int64)
    offsets = np.concatenate([[0], np.cumsum([a.size for a in arrays])]).astype(np.int64)
    with tf.init_scope():
        store = tf.Variable(np.concatenate([a.ravel() for a in arrays]), trainable=False)
    channels = arrays[0].shape[-1]  # The same for all: decoded to one mode.
    shapes, offsets = tf.constant(shapes), tf.constant(offsets)

    def lookup(index):
        flat = store[offsets[index] : offsets[index + 1]]
        image = tf.reshape(flat, tf.gather(shapes, index))
        image.set_shape([None, None, channels])
        return image

    return lookup, int(offsets[-1])


def cache_decoded(decode, size, what, noun):
    """`decode` (index -> uint8 image, or a tuple of images), from examples
    decoded once, up front, into memory.

    Each image of an example lives in one flat variable (plus offsets and
    shapes), so images of different sizes fit and the dataset graph stays
    small: a captured constant would be copied into every serialized copy of
    the graph. `what` and `noun` word the log line ("Domain A", "images").
    """
    decoded = tf.data.Dataset.range(size).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    items = list(decoded.as_numpy_iterator())
    single = not isinstance(items[0], tuple)
    columns = [items] if single else list(zip(*items))
    stores = [_store(column) for column in columns]
    logger.info(
        "%s: cached %d decoded %s (%.1f MB).",
        what, len(items), noun, sum(nbytes for _, nbytes in stores) / 2**20,
    )

    def from_cache(index):
        images = tuple(lookup(index) for lookup, _ in stores)
        return images[0] if single else images

    return from_cache


def _domain_pipeline(prepared, config, training, shuffle_seed, augment_seed, length, start=0):
    """One domain's images as a dataset of float32 HxWxC in [-1, 1]."""
    if training:
        indices = epoch_orders(prepared.size, shuffle_seed, start)
    else:
        # The shorter domain cycles so both give `length` images.
        indices = tf.data.Dataset.range(length).map(lambda i: i % prepared.size)
    decode = (_cached_decoder if config.cache else _decoder)(prepared, config, training)
    return example_stream(indices, decode, config, training, augment_seed, start)


def example_stream(indices, decode, config, training, augment_seed, start):
    """Indices -> decoded examples -> (training) crop and flip -> [-1, 1].

    `decode` gives a uint8 image or a tuple of images (a pair) per index.
    """
    images = indices.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        # The element's position in the endless stream (across epochs) seeds
        # its crop and flip, so augmentation after the cache differs every
        # epoch and a resumed stream repeats an uninterrupted one exactly.
        augment = make_augment(config, augment_seed)
        return images.enumerate(start=start).map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return images.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)


def _to_float(*images):
    # The reference's ToTensor() + Normalize(0.5, 0.5): [0, 255] -> [-1, 1].
    scaled = tuple(imaging.to_float(image) for image in images)
    return scaled[0] if len(scaled) == 1 else scaled


def make_augment(config, key):
    """(stream position, image or tuple of images) -> cropped, flipped, in [-1, 1].

    The images of a tuple (a pair's x and y, of one height and width) get one
    crop position and one flip decision, like the reference's `get_params`
    for aligned pairs: they are cropped and flipped as one image, stacked
    along channels, so they cannot drift apart.
    """
    crop = config.crop_size if config.preprocess in geometry.CROP_MODES else None

    def augment(index, images):
        single = not isinstance(images, tuple)
        if single:
            image, depths = images, [config.channels]
        else:
            image, depths = tf.concat(images, axis=-1), [im.shape[-1] for im in images]
        seed = tf.stack([tf.constant(key, tf.int64), index])
        crop_seed, flip_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, num=2)
        )
        if crop is not None:
            image = tf.image.stateless_random_crop(
                image, [crop, crop, sum(depths)], seed=crop_seed
            )
        if config.flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
        if single:
            return imaging.to_float(image)
        return _to_float(*tf.split(image, depths, axis=-1))

    return augment


def derive_seeds(seed, count=4):
    """`count` independent 32-bit seeds from `seed` (fresh entropy if None).

    The unpaired pipeline takes four (shuffle and augment, per domain), the
    paired one two.
    """
    entropy = np.random.SeedSequence().entropy if seed is None else seed
    words = np.random.SeedSequence(entropy).generate_state(count)
    return [int(w) for w in words]


def batched(ds, config, training, seed):
    """Batches of `config.batch_size`, prefetched, with the pipelines' options."""
    # Training streams are endless, so dropping the remainder loses nothing
    # and gives a static batch dimension (XLA, even splits across replicas).
    ds = ds.batch(config.batch_size, drop_remainder=training)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = seed is not None or not training
    # Elements come from Python-decoded files, not from a file-reading
    # dataset, so FILE sharding has nothing to split: shard by data.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return ds.with_options(options)


def unpaired_dataset(
    source_a,
    source_b,
    config,
    training=True,
    seed=None,
    *,
    decode_check=True,
    progress=False,
    start_step=0,
    channels=None,
):
    """Builds the `(x, y)` batch pipeline for two unpaired domains.

    Training: each domain runs through its images in a new random order every
    epoch, on its own (their sizes rarely match); images are decoded in
    parallel (or taken from the cache), then randomly cropped and flipped;
    batches of `config.batch_size` pairs repeat forever.
    Evaluation (`training=False`): sorted order, no randomness (centre crop, no
    flip), the shorter domain cycles to the longer one's length, and the
    dataset ends after one pass (the last batch may be smaller).

    File sources are checked first (`check_images`): bad files stop the build
    with a list of them, or are skipped and listed when
    `config.skip_bad_files` is set. TFDS records are not pre-checked; an
    unreadable one stops iteration with its index in the message.

    Without a crop (`scale_width`, `none`) images keep their own aspect
    ratios. Batches need one size, so with `batch_size` > 1 the files' output
    sizes are checked up front and differing ones raise a `ValueError`
    naming them (use `batch_size=1` or a cropping mode). TFDS sizes are not
    known up front; there, differing sizes fail when batched.

    With a `seed`, batches are the same on every run (tf.data determinism on;
    each image's crop and flip seeded by its position in the stream). The
    dataset shards by data under `tf.distribute`
    (`strategy.experimental_distribute_dataset`) and `batch_size` is the
    global batch; with several workers, give every worker the same seed so
    that their shards of the stream do not overlap. Decoding runs Python (Pillow,
    via `tf.numpy_function`), so the pipeline needs a Python host: fine for
    CPUs, GPUs and TPU VMs, not for the tf.data service.

    Args:
        source_a: domain A (X): an `ImageSource`, a folder, or a list of files.
        source_b: domain B (Y), the same.
        config: a `DataConfig`.
        training: random augmentation and an endless stream, or a single
            deterministic pass for evaluation.
        seed: int for repeatable batches; None draws fresh randomness.
        decode_check: decode every file at start-up to find truncated ones
            (`check_images(decode=...)`); False reads headers only.
        progress: show a progress bar while checking files.
        start_step: begin the training stream after this many batches, as an
            uninterrupted stream with the same seed would be there (resuming a
            run); only indices are skipped, no image is decoded for it.
        channels: `(channels of A, channels of B)` when the domains differ
            (e.g. grayscale to colour); default `config.channels` for both.

    Returns:
        An `UnpairedData`.
    """
    check_arguments(config, seed, training, start_step)
    source_a, source_b = sources.as_source(source_a), sources.as_source(source_b)
    channels = check_channels(channels, config)
    config_a, config_b = (dataclasses.replace(config, channels=c) for c in channels)
    a = _prepare(source_a, config_a, "A", decode_check, progress)
    b = _prepare(source_b, config_b, "B", decode_check, progress)
    longest = max(a.size, b.size)
    shuffle_a, augment_a, shuffle_b, augment_b = derive_seeds(seed)

    def build(step):
        start = step * config.batch_size
        x = _domain_pipeline(a, config_a, training, shuffle_a, augment_a, longest, start)
        y = _domain_pipeline(b, config_b, training, shuffle_b, augment_b, longest, start)
        return batched(tf.data.Dataset.zip((x, y)), config, training, seed)

    if training:
        steps = max(1, longest // config.batch_size)
    else:
        steps = math.ceil(longest / config.batch_size)
    return UnpairedData(
        dataset=build(start_step),
        steps_per_epoch=steps,
        size_a=a.size,
        size_b=b.size,
        skipped=a.skipped + b.skipped,
        _build=build if training and seed is not None else None,
    )
