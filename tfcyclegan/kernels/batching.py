"""Calls of one network on several batches as one call on their concatenation.

Instance norm treats every image on its own, so G(x) and G(y) (the identity
term's input) can run as one call of G on [x; y]: the same numbers, fewer and
larger kernels, a smaller graph (docs/cpu_paths.md). Batch norm mixes images, so
its statistics would change: networks with one keep separate calls.
"""

import keras
import tensorflow as tf

from tfcyclegan.kernels import switches


def call(network, batches, training=None):
    """`[network(b, training=training) for b in batches]`, fused into one call when exact."""
    batches = list(batches)
    # Images of their own sizes (preprocess scale_width / none: x, y and pooled
    # fakes may all differ) cannot be concatenated.
    sizes = {tuple(batch.shape[1:3]) for batch in batches}
    same_size = len(sizes) == 1 and None not in next(iter(sizes))
    if len(batches) == 1 or not same_size or not fusable(network):
        return [network(batch, training=training) for batch in batches]
    outputs = network(tf.concat(batches, axis=0), training=training)
    return tf.split(outputs, [tf.shape(batch)[0] for batch in batches], axis=0)


def fusable(network):
    """Whether calls of `network` may be fused here: the form is on and no layer
    mixes the images of a batch (batch normalization)."""
    return switches.enabled("batched_calls") and not any(
        isinstance(layer, keras.layers.BatchNormalization) for layer in network._flatten_layers()
    )
