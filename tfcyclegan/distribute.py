"""Training under `tf.distribute`: choosing a strategy, and a fit loop for multi-worker.

| name           | strategy                                               | trained by          |
|----------------|--------------------------------------------------------|---------------------|
| `default`      | the default strategy: one device                       | `model.fit`         |
| `mirrored`     | `MirroredStrategy`: every local GPU (or the CPU)        | `model.fit`         |
| `multi_worker` | `MultiWorkerMirroredStrategy`, configured by TF_CONFIG | `fit_distributed`   |
| `tpu`          | `TPUStrategy` on the TPU the resolver finds            | `model.fit`         |

Why `fit_distributed`: in Keras 3 (checked with 3.15.1 and TF 2.21),
`model.fit` under `MultiWorkerMirroredStrategy` fails even for a plain
Sequential model ("Attempt to convert a value (PerReplica:{...}) to a
Tensor", from `_maybe_symbolic_build` reducing the per-replica batch;
keras-team/keras#20585, tensorflow/tensorflow#72388). `fit_distributed` runs
the model's own `train_step` (one implementation of the objective) through
`strategy.run` over `strategy.experimental_distribute_dataset`, and drives
the same Keras callbacks, progress bar and history as `fit`.
"""

import json
import os

import keras
import tensorflow as tf

from tfcyclegan.config import STRATEGIES


def make_strategy(name="default"):
    """The `tf.distribute.Strategy` called `name` (see the module docstring)."""
    if isinstance(name, tf.distribute.Strategy):
        return name
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


def is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy):
    """True on the worker that writes files: the chief, or worker 0 without one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not is_multi_worker(strategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type in (None, "worker") and task_id == 0 and not has_chief


def _even_batches(dataset, global_batch):
    """Re-batches a finite evaluation dataset so every replica gets images.

    The last, smaller batch of an evaluation pass could leave some replicas
    with none (a mean over nothing); it is dropped.
    """
    return dataset.unbatch().batch(global_batch, drop_remainder=True)


def fit_distributed(
    model,
    dataset,
    *,
    strategy,
    epochs,
    steps_per_epoch,
    initial_epoch=0,
    validation_data=None,
    callbacks=(),
    verbose=1,
    global_batch_size=None,
):
    """`model.fit` for strategies where Keras's own fit does not work.

    Runs `model.train_step` on every replica through `strategy.run`; the
    loss metrics are read in cross-replica context, so they average over all
    replicas of all workers. Callbacks see the same calls and logs as in `fit`.

    Args:
        model: a compiled model built under `strategy.scope()`.
        dataset: an endless `tf.data.Dataset` of global batches.
        strategy: the strategy.
        epochs: the epoch to stop at (as in `fit`).
        steps_per_epoch: steps per epoch.
        initial_epoch: the epoch to start at.
        validation_data: a finite dataset evaluated after each epoch.
        callbacks: Keras callbacks.
        verbose: 0 quiet, 1 progress bar, 2 one line per epoch.
        global_batch_size: batch size of `validation_data` (for even batches).

    Returns:
        A `keras.callbacks.History`.
    """
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    evaluation = None
    if validation_data is not None:
        if global_batch_size:
            validation_data = _even_batches(validation_data, global_batch_size)
        evaluation = strategy.experimental_distribute_dataset(validation_data)

    @tf.function
    def train_step(iterator):
        strategy.run(model.train_step, args=(next(iterator),))

    @tf.function
    def test_step(batch):
        strategy.run(model.test_step, args=(batch,))

    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        [*callbacks, history],
        add_history=False,
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=steps_per_epoch,
        model=model,
    )

    def results():
        return {metric.name: float(metric.result()) for metric in model.metrics}

    model.stop_training = False
    logs = {}
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        for metric in model.metrics:
            metric.reset_state()
        callback_list.on_epoch_begin(epoch)
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            train_step(iterator)
            logs = results()
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        if evaluation is not None and not model.stop_training:
            for metric in model.metrics:
                metric.reset_state()
            for batch in evaluation:
                test_step(batch)
            epoch_logs.update({f"val_{name}": value for name, value in results().items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return history
