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

Built for a fixed image size (the cropping preprocess modes), the buffer is
one (pool_size, H, W, C) variable. Built with unknown height and width (the
`scale_width` and `none` modes keep each image's own size), each slot is a
variable of its own that takes an image of any size, as the reference's list
of tensors does; a history image may then differ in size from the new one,
which a fully convolutional discriminator takes as it is.
"""

import random

import keras
import tensorflow as tf
from keras import ops

from tfcyclegan.checks import check_int


@keras.saving.register_keras_serializable(package="tfcyclegan")
class ImagePool(keras.layers.Layer):
    """A buffer of `pool_size` past generated images, queried once per step.

    Calling the layer with a batch of fakes returns a batch of the same shape
    in which each image is either the new fake or one drawn from history.
    Images are processed one at a time in batch order, as in the reference.
    `pool_size=0` disables the buffer (the call returns its input).

    Under `tf.distribute`, each replica keeps its own buffer (the variables
    synchronise on read); checkpoints store the first replica's buffer.

    Built with unknown height and width (`build((None, None, None, C))`), the
    pool stores images of any size, one variable per slot; a batch of several
    images then needs them to be of one size, and what it returns may mix
    sizes only for batches of one image.

    Args:
        pool_size: images kept (50 in the paper); 0 disables the pool.
        seed: seed of the pool's own random draws.
        **kwargs: standard layer arguments.
    """

    def __init__(self, pool_size=50, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = check_int("pool_size", pool_size, 0)
        self.seed = seed

    def build(self, input_shape):
        if self.pool_size == 0:
            return
        image_shape = tuple(input_shape[1:])
        if len(image_shape) != 3 or image_shape[-1] is None:
            raise ValueError(
                "ImagePool needs the images' channels to be known when it is built "
                f"(height and width may be None). Received: input_shape={input_shape}"
            )
        sync = dict(synchronization="on_read", aggregation="only_first_replica")
        self.any_size = None in image_shape
        if self.any_size:
            # One variable per slot, of unknown height and width: keras.Variable
            # needs a full shape, so these are tf.Variables (tracked for
            # checkpoints like the others; not in .keras files, which keep
            # weights only).
            slots = []
            for i in range(self.pool_size):
                slot = tf.Variable(
                    tf.zeros((0, 0, image_shape[-1])),
                    shape=tf.TensorShape([None, None, image_shape[-1]]),
                    trainable=False,
                    name=f"slot_{i}",
                    synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                )
                # One attribute each: that is how tf.train.Checkpoint finds them
                # (Keras's tracked lists are not checkpoint dependencies).
                setattr(self, f"slot_{i}", slot)
                slots.append(slot)
            self.slots = tuple(slots)
        else:
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
        if self.any_size:
            return self._call_any_size(images)
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

    def _draw(self):
        """(slot, filling, swap) of the next query, as the reference decides them."""
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
        self.count.assign(count + ops.cast(filling, "int32"))
        return slot, filling, swap

    def _call_any_size(self, images):
        if images.shape[0] == 1:
            return self._query_any_size(images[0])[None]
        # Several images (of one size, as a batch is): the same queries in a
        # graph loop; each returned image must then have the batch's size.
        outputs = tf.TensorArray(tf.float32, size=tf.shape(images)[0])
        _, outputs = tf.while_loop(
            lambda i, _: i < tf.shape(images)[0],
            lambda i, acc: (i + 1, acc.write(i, self._query_any_size(images[i], tf.shape(images)[1:]))),
            (tf.constant(0), outputs),
        )
        return tf.ensure_shape(outputs.stack(), images.shape)

    def _query_any_size(self, image, required_shape=None):
        image = ops.cast(image, "float32")
        slot, filling, swap = self._draw()
        write = ops.logical_or(filling, swap)

        def branch(variable):
            def visit():
                stored = tf.identity(variable.read_value())
                kept = tf.cond(write, lambda: image, lambda: stored)
                with tf.control_dependencies([stored]):
                    assigned = variable.assign(kept, read_value=False)
                with tf.control_dependencies([assigned]):
                    return tf.identity(stored)

            return visit

        stored = tf.switch_case(slot, [branch(variable) for variable in self.slots])
        if required_shape is not None:
            # A stored image of another size cannot join this batch: pass the new one.
            fits = tf.reduce_all(tf.equal(tf.shape(stored), required_shape))
            swap = ops.logical_and(swap, fits)
        return tf.cond(swap, lambda: stored, lambda: image)

    def _query(self, image):
        image = ops.cast(image, "float32")
        slot, filling, swap = self._draw()
        pool = ops.convert_to_tensor(self.images.value)
        stored = ops.take(pool, slot, axis=0)
        returned = ops.where(swap, stored, image)
        written = ops.where(ops.logical_or(filling, swap), image, stored)
        # The whole buffer is written back (one copy, ~39 MB at 256 px: a few
        # ms against a step of seconds) because per-replica (sync-on-read)
        # variables support `assign` but not `scatter_update`.
        self.images.assign(tf.tensor_scatter_nd_update(pool, slot[None, None], written[None]))
        return returned

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "seed": self.seed}
