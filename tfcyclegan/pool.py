"""The history of generated images the discriminators learn from.

Paper, section 4: "to reduce model oscillation we follow Shrivastava et al.'s
strategy and update the discriminators using a history of generated images
rather than the ones produced by the latest generators. We keep an image
buffer that stores the 50 previously created images."

The reference (`util/image_pool.py`) fills the buffer first; once full, each
new image is, with probability 0.5, swapped for a random stored one (the
stored one is returned, the new one kept), and otherwise returned as is.
Here the buffer is graph state (variables), so it works inside `tf.function`
and XLA, is saved in checkpoints, and resumes exactly.
"""

import random

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="tfcyclegan")
class ImagePool(keras.layers.Layer):
    """A buffer of `pool_size` past generated images, queried once per step.

    Calling the layer with a batch of fakes returns a batch of the same shape
    in which each image is either the new fake or one drawn from history.
    Images are processed one at a time in batch order, as in the reference.
    `pool_size=0` disables the buffer (the call returns its input).

    Under `tf.distribute`, each replica keeps its own buffer (the variables
    synchronise on read); checkpoints store the first replica's buffer.

    Args:
        pool_size: images kept (50 in the paper); 0 disables the pool.
        seed: seed of the pool's own random draws.
        **kwargs: standard layer arguments.
    """

    def __init__(self, pool_size=50, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 0:
            raise ValueError(
                f"`pool_size` must be an integer >= 0. Received: pool_size={pool_size!r}"
            )
        self.pool_size = pool_size
        self.seed = seed

    def build(self, input_shape):
        if self.pool_size == 0:
            return
        image_shape = tuple(input_shape[1:])
        if None in image_shape:
            raise ValueError(
                "ImagePool needs the image height, width and channels to be known "
                f"when it is built. Received: input_shape={input_shape}"
            )
        sync = dict(synchronization="on_read", aggregation="only_first_replica")
        self.images = keras.Variable(
            ops.zeros((self.pool_size, *image_shape), "float32"),
            trainable=False,
            name="images",
            **sync,
        )
        self.count = keras.Variable(0, dtype="int32", trainable=False, name="count", **sync)
        # The random stream is (seed, draws) through a stateless generator, and
        # both are variables: checkpoints then resume the exact same draws,
        # which a keras.random.SeedGenerator's state would not (tf.train.Checkpoint
        # does not see it).
        seed = random.randrange(2**31) if self.seed is None else self.seed
        self.rng_seed = keras.Variable(seed, dtype="int32", trainable=False, name="rng_seed", **sync)
        self.draws = keras.Variable(0, dtype="int32", trainable=False, name="draws", **sync)

    def call(self, images):
        if self.pool_size == 0:
            return images
        stored_shape = tuple(self.images.shape[1:])
        if tuple(images.shape[1:]) != stored_shape and None not in images.shape[1:]:
            raise ValueError(
                f"ImagePool holds images of shape {stored_shape}; every batch of "
                "fakes must have that shape (use a fixed crop size). Received: "
                f"images of shape {tuple(images.shape)}"
            )
        batch = images.shape[0]
        if batch is not None:  # known batch size: unroll (cheapest for batch 1)
            return ops.stack([self._query(images[i]) for i in range(batch)])
        # Unknown batch size (e.g. a last, smaller batch): the same queries, in
        # order, in a graph loop.
        outputs = tf.TensorArray(tf.float32, size=tf.shape(images)[0])
        _, outputs = tf.while_loop(
            lambda i, _: i < tf.shape(images)[0],
            lambda i, acc: (i + 1, acc.write(i, self._query(images[i]))),
            (tf.constant(0), outputs),
        )
        return tf.ensure_shape(outputs.stack(), images.shape)

    def _query(self, image):
        image = ops.cast(image, "float32")
        # Draw every time, used or not, so the random stream does not depend
        # on how full the pool is.
        draws = ops.convert_to_tensor(self.draws.value)
        coin, position = tf.unstack(
            tf.random.stateless_uniform([2], tf.stack([self.rng_seed.value, draws]))
        )
        self.draws.assign(draws + 1)
        slot = tf.minimum(tf.cast(position * self.pool_size, "int32"), self.pool_size - 1)
        count = ops.convert_to_tensor(self.count.value)
        filling = count < self.pool_size
        swap = ops.logical_and(ops.logical_not(filling), coin > 0.5)
        slot = ops.where(filling, count, slot)
        pool = ops.convert_to_tensor(self.images.value)
        stored = ops.take(pool, slot, axis=0)
        returned = ops.where(swap, stored, image)
        written = ops.where(ops.logical_or(filling, swap), image, stored)
        # The whole buffer is written back (one copy, ~39 MB at 256 px: a few
        # ms against a step of seconds) because per-replica (sync-on-read)
        # variables support `assign` but not `scatter_update`.
        self.images.assign(tf.tensor_scatter_nd_update(pool, slot[None, None], written[None]))
        self.count.assign(count + ops.cast(filling, "int32"))
        return returned

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "seed": self.seed}
