"""Differentiable augmentation of what a discriminator sees (DiffAugment, Zhao et al. 2020).

With few training images a discriminator memorizes them, and its verdicts stop
carrying information the generator can use. DiffAugment applies the same kind
of random transformation to the real and the generated images before *every*
call of the discriminator, in its own step and in the generator's, so D never
sees an unaugmented image and G's gradient flows through the transformation
(every op here is differentiable). The generator's outputs are not augmented.

Policies, named as the paper's code names them, in [-1, 1] images:

- `color`: a random brightness shift (+-0.5), saturation (x0 to x2) and
  contrast (x0.5 to x1.5) per image. Leave it out when the two domains differ
  in colour (grading, white balance, film looks): D then cannot see the look.
- `translation`: a shift by up to 1/8 of the height and width per image,
  zeros filling what comes in.
- `cutout`: a square of half the height and width, per image at a random
  place, set to zero.
"""

import keras
import tensorflow as tf

from tfcyclegan.config import DIFF_AUGMENT as POLICIES
from tfcyclegan.config import parse_diff_augment


def parse_policy(policy):
    """A policy (a string "a,b", a sequence of names, "" or None) as a tuple of `POLICIES` names."""
    policy = parse_diff_augment("" if policy is None else policy)
    return tuple(policy.split(",")) if policy else ()


def _seeds(seed_generator, count):
    """`count` stateless seeds (shape [2]) drawn from a `keras.random.SeedGenerator`."""
    seeds = tf.cast(keras.random.randint([count, 2], 0, 2**30, seed=seed_generator), tf.int32)
    return tf.unstack(seeds)


def _color(images, seeds):
    batch = tf.shape(images)[0]
    shape = tf.stack([batch, 1, 1, 1])
    brightness, saturation, contrast = seeds
    # In [0, 1] images the paper adds U(-0.5, 0.5); in [-1, 1] that is twice as much.
    images = images + 2.0 * (tf.random.stateless_uniform(shape, brightness, dtype=images.dtype) - 0.5)
    mean = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - mean) * (2.0 * tf.random.stateless_uniform(shape, saturation, dtype=images.dtype)) + mean
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * (tf.random.stateless_uniform(shape, contrast, dtype=images.dtype) + 0.5) + mean


def _shifted_indices(length, shift):
    """[batch, length] source indices into a 1-padded axis for a per-image `shift`."""
    positions = tf.range(length)[tf.newaxis, :] + shift[:, tf.newaxis] + 1
    return tf.clip_by_value(positions, 0, length + 1)


def _translation(images, seeds, ratio=0.125):
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    reach_y = tf.cast(tf.cast(height, tf.float32) * ratio + 0.5, tf.int32)
    reach_x = tf.cast(tf.cast(width, tf.float32) * ratio + 0.5, tf.int32)
    shift_y = tf.random.stateless_uniform([batch], seeds[0], -reach_y, reach_y + 1, dtype=tf.int32)
    shift_x = tf.random.stateless_uniform([batch], seeds[1], -reach_x, reach_x + 1, dtype=tf.int32)
    # One ring of zeros; indices that leave the image land on it.
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    rows = tf.gather(padded, _shifted_indices(height, shift_y), axis=1, batch_dims=1)
    return tf.gather(rows, _shifted_indices(width, shift_x), axis=2, batch_dims=1)


def _cutout(images, seeds, ratio=0.5):
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    size_y = tf.cast(tf.cast(height, tf.float32) * ratio + 0.5, tf.int32)
    size_x = tf.cast(tf.cast(width, tf.float32) * ratio + 0.5, tf.int32)
    top = tf.random.stateless_uniform([batch], seeds[0], 0, height, dtype=tf.int32) - size_y // 2
    left = tf.random.stateless_uniform([batch], seeds[1], 0, width, dtype=tf.int32) - size_x // 2
    rows = tf.range(height)[tf.newaxis, :] - top[:, tf.newaxis]
    cols = tf.range(width)[tf.newaxis, :] - left[:, tf.newaxis]
    inside_y = (rows >= 0) & (rows < size_y)
    inside_x = (cols >= 0) & (cols < size_x)
    keep = tf.logical_not(inside_y[:, :, tf.newaxis] & inside_x[:, tf.newaxis, :])
    return images * tf.cast(keep, images.dtype)[..., tf.newaxis]


_DRAWS = {"color": (_color, 3), "translation": (_translation, 2), "cutout": (_cutout, 2)}


def diff_augment(images, policy, seed_generator):
    """`images` ([batch, height, width, channels], in [-1, 1]) augmented by `policy`.

    Args:
        images: a batch; each image gets its own random draw.
        policy: names from `POLICIES`, applied in that order (`parse_policy`).
        seed_generator: the `keras.random.SeedGenerator` the draws come from
            (checkpoint its `state` to resume the same draws).

    Returns:
        The augmented batch, same shape and dtype; `images` itself for `()`.
    """
    for name in policy:
        function, count = _DRAWS[name]
        images = function(images, _seeds(seed_generator, count))
    return images


__all__ = ["POLICIES", "diff_augment", "parse_policy"]
