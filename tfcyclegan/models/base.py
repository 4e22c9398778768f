"""What the models share: a base class, the authors' Adam, optimizer groups, scaled losses,
running a generator.

CycleGAN, pix2pix, CUT and Distill each write their objective in their own
module; the mechanics around it (metrics, batches, serialization and
recompilation in `TranslationModel`; one optimizer per group of networks,
loss scaling for `mixed_float16` and `tf.distribute`) and running a trained
generator over images of any size live here, once.
"""

import weakref

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfcyclegan import augment, imaging
from tfcyclegan.config import ModelConfig
from tfcyclegan.losses import AdversarialLoss
from tfcyclegan.networks import size_requirement


def replica_scale(loss):
    """Divides a per-replica loss by the number of replicas.

    Under `tf.distribute` every replica computes the mean over its own share
    of the global batch and the optimizer sums the replicas' gradients; this
    scaling makes that sum the gradient of the mean over the global batch.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss * (1.0 / replicas)


_TRACED = weakref.WeakKeyDictionary()


def traced_forward(generator):
    """`generator(images, training=False)` as one `tf.function` per generator, kept while
    the generator lives.

    Eagerly, every layer is dispatched op by op and the faster forms that need a graph
    (`tfcyclegan.kernels`) never run: a ResNet-9 at 256 px took about twice as long as
    the same network traced. `reduce_retracing` makes the second image size a trace
    for unknown sizes that every later size reuses, so a folder of mixed sizes costs
    at most two traces.
    """
    forward = _TRACED.get(generator)
    if forward is None:
        forward = tf.function(lambda images: generator(images, training=False), reduce_retracing=True)
        _TRACED[generator] = forward
    return forward


def translate_with(generator, images, batch_size=8):
    """Runs `generator` over images of any size (see `CycleGAN.translate`)."""
    images = np.asarray(images, dtype=np.float32)
    single = images.ndim == 3
    if single:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(
            "Expected images of shape (batch, height, width, channels) or "
            f"(height, width, channels). Received: shape={images.shape}"
        )
    channels = generator.input_shape[-1]
    if images.shape[-1] != channels:
        raise ValueError(
            f"The generator takes {channels}-channel images. Received: shape={images.shape}"
        )
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size!r}")
    multiple, min_size = size_requirement(generator)
    forward = traced_forward(generator)
    outputs = []
    for start in range(0, len(images), batch_size):
        batch, size = imaging.pad_to_multiple(images[start : start + batch_size], multiple, min_size)
        outputs.append(np.asarray(imaging.crop_to(forward(batch), size)))
    result = np.concatenate(outputs) if outputs else np.zeros_like(images)
    return result[0] if single else result


def image_shape(data):
    """The (batch, height, width, channels) of X in `data`, if known statically."""
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        spec = spec[0] if isinstance(spec, (tuple, list)) else None
        shape = getattr(spec, "shape", None)
    else:
        shape = getattr(data, "shape", None)
    if shape is None or len(shape) != 4 or None in tuple(shape)[1:]:
        return None
    return tuple(shape)


def describe(value):
    return "None" if value is None else f"{type(value).__name__} of shape {tuple(value.shape)}"


def check_weights(weights):
    """Refuses loss weights (`{name: value}`) that are not numbers >= 0; a bool is not a weight."""
    for name, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"`{name}` must be a number >= 0. Received: {name}={value!r}")


def check_networks(**networks):
    """Refuses child networks (`{init argument: network}`) that are not `keras.Model`s."""
    for arg, network in networks.items():
        if not isinstance(network, keras.Model):
            raise ValueError(f"`{arg}` must be a keras.Model. Received: {arg}={network!r}")


def check_model_config(config):
    """Refuses a `config` that is not a `ModelConfig` (`from_model_config` of every model)."""
    if not isinstance(config, ModelConfig):
        raise ValueError(
            f"`config` must be a ModelConfig. Received: {type(config).__name__}"
        )


class TranslationModel(keras.Model):
    """What every model shares around its objective: metrics, batches, the
    GAN step, checkpoints, (de)serialization.

    A subclass writes its objective in its own module: `compile` (which ends
    with `_finish_compile`), `train_terms(x, y)` and `test_terms(x, y)` (the
    loss terms of one step, by metric name). It names its child networks in
    `NETWORK_ARGS` (`{init argument: attribute}`, in `get_config` order), the
    batches it trains on in `EXPECTED_BATCHES` (the start of the error for any
    other) and what its training checkpoint holds besides the optimizers in
    `checkpointed()`; its `__init__` sets `self.G`, `self.trackers` (one
    `keras.metrics.Mean` per reported term) and `self.objective = None`.

    Calling the model runs G (so `predict` gives G(x)).
    """

    NETWORK_ARGS = {}
    EXPECTED_BATCHES = ""
    diff_augment = ()
    """The DiffAugment policies applied to what the discriminators see (`set_diff_augment`)."""
    augment_draws = None
    """The `keras.random.SeedGenerator` of those augmentations, once a compile asked for them."""

    @property
    def method(self):
        """The name of the model's record in `tfcyclegan.methods` (e.g. "cyclegan")."""
        raise NotImplementedError

    def call(self, inputs, training=False):
        return self.G(inputs, training=training)

    @property
    def optimizers(self):
        """The generator side's optimizer, then the discriminator's."""
        return [self.generator_groups[0][0], self.discriminator_groups[0][0]]

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _require_compiled(self, doing):
        if self.objective is None:
            raise RuntimeError(
                f"Call `compile()` before {doing} the {type(self).__name__} model."
            )

    def _unpack(self, data):
        """`(x, y)` of a batch, float32."""
        # Keras packs batches as (x, y, sample_weight); sample weights have no
        # meaning for images.
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None or sample_weight is not None:
            raise ValueError(
                f"{self.EXPECTED_BATCHES} Received: x={describe(x)}, y={describe(y)}, "
                f"sample_weight={describe(sample_weight)}"
            )
        return tf.cast(x, tf.float32), tf.cast(y, tf.float32)

    def _update_metrics(self, terms):
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    # === Compilation ===

    def _finish_compile(self, generator_groups, discriminator_groups, objective, *,
                        jit_compile=False, steps_per_execution=1, run_eagerly=False):
        """What every `compile` ends with, once its weights are checked.

        Prepares the optimizer groups (`prepare_groups`), records the
        objective (`{"gan_mode": ..., weights...}`, saved in .keras files) and
        its adversarial loss, and compiles the Keras model with the generator
        side's optimizer as `model.optimizer` (what Keras callbacks read).
        """
        self.generator_groups = prepare_groups(generator_groups)
        self.discriminator_groups = prepare_groups(discriminator_groups)
        self.objective = objective
        self.adversarial = AdversarialLoss(objective["gan_mode"])
        # The models scale their losses themselves (`scaled_losses`), per
        # optimizer group: Keras's own scaling knows one optimizer only.
        super().compile(
            optimizer=self.generator_groups[0][0],
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
            run_eagerly=run_eagerly,
            auto_scale_loss=False,
        )

    def set_diff_augment(self, policy, objective, seed):
        """Records a `compile`'s DiffAugment `policy` in the model and in its `objective` dict.

        The policy is kept in the objective (and so in .keras files) only when
        there is one; its random draws come from a `keras.random.SeedGenerator`
        seeded by `seed`, made once and kept in the training checkpoint.
        """
        self.diff_augment = augment.parse_policy(policy)
        if self.diff_augment:
            objective["diff_augment"] = ",".join(self.diff_augment)
            if self.augment_draws is None:
                # Not tracked by Keras (a loaded model is compiled after it is
                # built, and its saved weights stay those of the networks): the
                # training checkpoint holds the state instead.
                object.__setattr__(self, "augment_draws", keras.random.SeedGenerator(seed, name="augment_draws"))

    def augmented(self, batches, training):
        """`batches` of images for a discriminator, each augmented when training with DiffAugment."""
        if not (training and self.diff_augment):
            return batches
        return [augment.diff_augment(images, self.diff_augment, self.augment_draws) for images in batches]

    # === Training ===

    def train_step(self, data):
        self._require_compiled("training")
        x, y = self._unpack(data)
        return self._update_metrics(self.train_terms(x, y))

    def test_step(self, data):
        self._require_compiled("evaluating")
        x, y = self._unpack(data)
        return self._update_metrics(self.test_terms(x, y))

    def train_terms(self, x, y):
        """One training step on the batch (x, y); returns its loss terms by metric name."""
        raise NotImplementedError

    def test_terms(self, x, y):
        """The loss terms of (x, y) without updates (validation)."""
        raise NotImplementedError

    def discriminator_then_generator(self, generate, discriminator_terms, generator_terms,
                                     generator_groups=None):
        """One step of D on a detached G(x), then of G judged by the updated D.

        The order of the authors' pix2pix and CUT (`optimize_parameters`):
        the generator runs once, recorded on a tape that is paused while D
        learns from its outputs held fixed (nothing of D's update reaches G's
        gradient), then G's terms are added to that tape and G is updated.
        With `lambda_gan = 0` D is neither called nor trained.

        Args:
            generate: `() -> fakes`, the generator's outputs (any structure).
            discriminator_terms: `fakes -> {"D_real", "D_fake"}`, called with
                the fakes detached; D's loss is their mean (halved, as the
                reference).
            generator_terms: `fakes -> {..., "total"}`: G's terms; "total"
                is what the generator groups minimise.
            generator_groups: the (optimizer, networks) to update with G's
                loss, if not `self.generator_groups`.

        Returns:
            G's terms and D's, in one dict.
        """
        g_tape = tf.GradientTape()
        with g_tape:
            fakes = generate()
        if self.objective["lambda_gan"] > 0:
            with tf.GradientTape() as tape:
                d_terms = discriminator_terms(tf.nest.map_structure(tf.stop_gradient, fakes))
                d_loss = 0.5 * (d_terms["D_real"] + d_terms["D_fake"])
                losses = scaled_losses(d_loss, self.discriminator_groups)
            apply_gradients(tape, losses, self.discriminator_groups)
        else:
            d_terms = {"D_real": tf.constant(0.0), "D_fake": tf.constant(0.0)}
        groups = self.generator_groups if generator_groups is None else generator_groups
        with g_tape:
            terms = generator_terms(fakes)
            losses = scaled_losses(terms["total"], groups)
        apply_gradients(g_tape, losses, groups)
        return {**terms, **d_terms}

    # === Checkpoints ===

    def checkpointed(self):
        """{name: trackable} a training checkpoint holds besides the optimizers.

        The names are those of checkpoints already written: renaming one
        would stop old runs from resuming.
        """
        raise NotImplementedError

    def training_checkpoint(self, **extra):
        """A `tf.train.Checkpoint` of everything training needs to resume exactly.

        Holds `checkpointed()` (the networks and any other state), every
        optimizer as `optimizer_0`, `optimizer_1`, ... (moments, step
        counters, loss scales) and `extra` trackables (e.g. an epoch
        counter). Compile the model before restoring.
        """
        self._require_compiled("making a training checkpoint of")
        optimizers = {f"optimizer_{i}": opt for i, opt in enumerate(self.optimizers)}
        state = dict(self.checkpointed())
        if self.augment_draws is not None:
            state["augment_draws"] = self.augment_draws.state
        return tf.train.Checkpoint(**state, **optimizers, **extra)

    # === Inference ===

    def translate(self, images, direction="a2b", batch_size=8):
        """Translates a batch of images of any size, float32 in [-1, 1].

        Images whose height or width the generator cannot take are
        reflect-padded to the next valid size and the result cropped back.

        Args:
            images: NHWC array or tensor in [-1, 1] (a single HWC image too).
            direction: "a2b" or "b2a" (the paper's "x2y" / "y2x"): the
                generator `generator(direction)` gives.
            batch_size: images per generator call.

        Returns:
            A numpy array of the same height and width, in [-1, 1].
        """
        return translate_with(self.generator(direction), images, batch_size=batch_size)

    # === Serialization ===

    def get_config(self):
        """Name, trainable and the child networks; subclasses add their other arguments."""
        config = {"name": self.name, "trainable": self.trainable}
        for arg, attribute in self.NETWORK_ARGS.items():
            config[arg] = keras.layers.serialize(getattr(self, attribute))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for arg in cls.NETWORK_ARGS:
            if isinstance(config[arg], dict):
                config[arg] = keras.layers.deserialize(config[arg])
        return cls(**config)

    def get_compile_config(self):
        # Saved in .keras files so `load_model` recompiles the model; Keras then
        # restores every optimizer's state (moments, step) too.
        if self.objective is None:
            return None
        return dict(
            self.objective,
            jit_compile=self.jit_compile,
            steps_per_execution=self.steps_per_execution,
            **self._optimizers_config(),
        )

    def _optimizers_config(self):
        """The optimizers as `compile` takes them, serialized."""
        return dict(
            generator_optimizer=keras.optimizers.serialize(self.generator_groups[0][0]),
            discriminator_optimizer=keras.optimizers.serialize(self.discriminator_groups[0][0]),
        )

    def compile_from_config(self, config):
        config = dict(config)
        for key in ("generator_optimizer", "discriminator_optimizer"):
            if key in config:
                config[key] = keras.optimizers.deserialize(config[key])
        self.compile(**config)


def default_adam(learning_rate=2e-4, beta_1=0.5, beta_2=0.999, name=None):
    """The authors' optimizer for every network: Adam as PyTorch computes it.

    lr 2e-4, beta_1 0.5 (CycleGAN section 7.1, pix2pix section 3.3), PyTorch's
    epsilon 1e-8 added after the bias correction (`TorchAdam`).
    """
    return TorchAdam(
        learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=1e-8, name=name
    )


@keras.saving.register_keras_serializable(package="tfcyclegan")
class TorchAdam(keras.optimizers.Adam):
    """Adam as PyTorch computes it: epsilon added after the bias correction.

    PyTorch (and Algorithm 1 of Kingma and Ba) steps by
    `lr / (1 - beta_1**t) * m / (sqrt(v / (1 - beta_2**t)) + epsilon)`; Keras
    adds epsilon to `sqrt(v)` before the correction (the paper's "epsilon
    hat"), which acts like a PyTorch epsilon of `epsilon / sqrt(1 - beta_2**t)`:
    30x larger on the first step with beta_2 = 0.999. Adam's first steps are
    nearly `lr * sign(g)`, so that shrinks every update whose gradient is
    below ~1e-6. In the authors' pix2pix training step (tests/data/
    reference_steps) Keras's Adam(epsilon=1e-8) lands G 5.3% of an update
    away from the authors' weights (7% in the inner U-Net levels); this one
    0.002%, float32 rounding.

    Args: as `keras.optimizers.Adam`; `epsilon` is PyTorch's (default 1e-8).
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, **kwargs):
        super().__init__(
            learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs
        )

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        correction_1 = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
        correction_2 = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, (gradient - m) * (1 - self.beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * (1 - self.beta_2))
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        denominator = ops.sqrt(v) / ops.sqrt(correction_2) + self.epsilon
        self.assign_sub(variable, m * (lr / correction_1) / denominator)


def computes_in_float16(network):
    """Whether any layer of `network` computes in float16.

    A functional network built with `dtype="mixed_float16"` gives that policy to
    its layers, while the container itself reports the global policy (float32):
    asking the container alone would train float16 layers without loss scaling.
    """
    stack = [network]
    while stack:
        layer = stack.pop()
        if layer.compute_dtype == "float16":
            return True
        stack.extend(getattr(layer, "layers", ()))
    return False


def prepare_groups(groups):
    """Wraps optimizers for float16 and builds them on their variables now.

    A group whose networks compute in float16 gets a `LossScaleOptimizer`.

    Building here, not on the first step, matters twice: Keras 3 under
    `MirroredStrategy` needs optimizer variables created in the strategy's
    scope before `fit`, and a `tf.train.Checkpoint` restores optimizer moments
    only into variables that exist.
    """
    prepared = []
    for optimizer, networks in groups:
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise ValueError(
                f"Optimizers must be keras.optimizers.Optimizer instances. Received: {optimizer!r}"
            )
        float16 = any(computes_in_float16(network) for network in networks)
        if float16 and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        variables = [v for network in networks for v in network.trainable_variables]
        if not optimizer.built:
            optimizer.build(variables)
        prepared.append((optimizer, networks))
    return prepared


def scaled_losses(loss, groups):
    """`loss` as each group's optimizer differentiates it (inside the tape).

    Scaled for the replicas of a `tf.distribute` strategy and, under
    `mixed_float16`, by the optimizer's dynamic loss scale.
    """
    loss = replica_scale(loss)
    return [optimizer.scale_loss(loss) for optimizer, _ in groups]


def apply_gradients(tape, losses, groups):
    """One gradient per optimizer group, of its own scaled loss, applied to its networks only."""
    for loss, (optimizer, networks) in zip(losses, groups):
        variables = [v for network in networks for v in network.trainable_variables]
        optimizer.apply(tape.gradient(loss, variables), variables)
