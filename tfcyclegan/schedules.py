"""The paper's learning-rate schedule: constant, then linearly down to zero.

Section 7.1: "We keep the same learning rate for the first 100 epochs and
linearly decay the rate to zero over the next 100 epochs."
"""

import keras
from keras import ops

from tfcyclegan.checks import check_int


@keras.saving.register_keras_serializable(package="tfcyclegan")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`initial_learning_rate` for `constant_steps`, then linear decay to zero.

    The rate changes every `update_every` steps. With `update_every` equal to
    the steps in an epoch this is the reference's per-epoch `LambdaLR`
    (`1 - max(0, epoch - n_epochs) / (n_epochs_decay + 1)`, applied after
    each epoch); with 1 it decays smoothly. The schedule is a pure function of
    the optimizer's step counter, which checkpoints save, so it is exact after
    a resume.

    Args:
        initial_learning_rate: the constant rate (2e-4 in the paper).
        constant_steps: steps at the initial rate (100 epochs' worth).
        decay_steps: steps of the decay (100 epochs' worth). The rate is 0
            from `constant_steps + decay_steps` on.
        update_every: steps between changes of the rate during the decay.
        name: optional name.
    """

    def __init__(
        self,
        initial_learning_rate,
        constant_steps,
        decay_steps,
        update_every=1,
        name="linear_decay",
    ):
        if not initial_learning_rate > 0:
            raise ValueError(
                "`initial_learning_rate` must be > 0. Received: "
                f"initial_learning_rate={initial_learning_rate!r}"
            )
        constant_steps = check_int("constant_steps", constant_steps, 0)
        decay_steps = check_int("decay_steps", decay_steps, 0)
        update_every = check_int("update_every", update_every, 1)
        if constant_steps % update_every or decay_steps % update_every:
            raise ValueError(
                "`constant_steps` and `decay_steps` must be multiples of `update_every`. "
                f"Received: constant_steps={constant_steps}, decay_steps={decay_steps}, "
                f"update_every={update_every}"
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.constant_steps = constant_steps
        self.decay_steps = decay_steps
        self.update_every = update_every
        self.name = name

    def __call__(self, step):
        period = ops.floor(ops.cast(step, "float32") / self.update_every)
        constant = self.constant_steps // self.update_every
        decay = self.decay_steps // self.update_every
        elapsed = ops.maximum(0.0, period + 1.0 - constant)
        factor = ops.clip(1.0 - elapsed / (decay + 1.0), 0.0, 1.0)
        # At and after the end of the schedule the rate is exactly zero.
        factor = ops.where(period >= constant + decay, 0.0, factor)
        return self.initial_learning_rate * factor

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "constant_steps": self.constant_steps,
            "decay_steps": self.decay_steps,
            "update_every": self.update_every,
            "name": self.name,
        }
