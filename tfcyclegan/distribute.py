"""Choosing a `tf.distribute` strategy for training.

| name           | strategy                                              |
|----------------|-------------------------------------------------------|
| `default`      | the default strategy: one device                      |
| `mirrored`     | `MirroredStrategy`: every local GPU (or the CPU)      |
| `multi_worker` | `MultiWorkerMirroredStrategy`, configured by TF_CONFIG |
| `tpu`          | `TPUStrategy` on the TPU the resolver finds           |
"""

import json
import os

import tensorflow as tf

from tfcyclegan.config import STRATEGIES


def make_strategy(name="default"):
    """The `tf.distribute.Strategy` called `name` (see the module docstring)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy='multi_worker' reads the cluster from the TF_CONFIG "
                "environment variable, which is not set. Received: TF_CONFIG unset"
            )
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as error:
            raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"`strategy` must be one of {list(STRATEGIES)}. Received: strategy={name!r}")
