"""CycleGAN as one `keras.Model`: four networks, one objective, trained by `fit`.

Names follow the paper (Zhu et al. 2017). X is domain A, Y is domain B.

| here | paper                | reference code (`cycle_gan_model.py`) |
|------|----------------------|---------------------------------------|
| G    | G: X -> Y            | netG_A                                |
| F    | F: Y -> X            | netG_B                                |
| D_Y  | D_Y, judges Y        | netD_A                                |
| D_X  | D_X, judges X        | netD_B                                |
| lambda_a / lambda_b | lambda (one per cycle) | lambda_A / lambda_B |
"""

import keras
import tensorflow as tf

from tfcyclegan import kernels
from tfcyclegan.config import ModelConfig, parse_direction
from tfcyclegan.losses import l1
from tfcyclegan.models import base
from tfcyclegan.networks import build_discriminator, build_generator
from tfcyclegan.pool import ImagePool

NETWORKS = ("G", "F", "D_X", "D_Y")
METRICS = ("G_GAN", "F_GAN", "cycle_x", "cycle_y", "identity", "D_X", "D_Y", "total")


@keras.saving.register_keras_serializable(package="tfcyclegan")
class CycleGAN(base.TranslationModel):
    """Unpaired image-to-image translation with cycle consistency.

    The full objective (paper eq. 3), with the identity term of section 5.2:

        L(G, F, D_X, D_Y) = L_GAN(G, D_Y, X, Y)                          (eq. 1)
                          + L_GAN(F, D_X, Y, X)
                          + lambda_a * E_x ||F(G(x)) - x||_1               (eq. 2)
                          + lambda_b * E_y ||G(F(y)) - y||_1
                          + lambda_identity * (lambda_b * E_y ||G(y) - y||_1
                                             + lambda_a * E_x ||F(x) - x||_1)

    G and F minimise it together (one gradient of the whole objective, so each
    cycle term trains both generators); D_X and D_Y maximise their GAN terms,
    with their loss halved as in the reference. Discriminators see fakes drawn
    from an `ImagePool` of past generator outputs.

    `fit` takes a dataset of `(x, y)` batches, unpaired. Calling the model
    translates X -> Y (so `predict` gives G(x)); `translate` goes either way.

    Args:
        generator_g: G, X -> Y (a `ResnetGenerator` or `UnetGenerator`).
        generator_f: F, Y -> X.
        discriminator_x: D_X, judges images of X.
        discriminator_y: D_Y, judges images of Y.
        pool_size: images in each history pool (50); 0 disables the pools.
        seed: seed of the pools' random draws.
        **kwargs: standard model arguments.
    """

    NETWORK_ARGS = {
        "generator_g": "G",
        "generator_f": "F",
        "discriminator_x": "D_X",
        "discriminator_y": "D_Y",
    }
    EXPECTED_BATCHES = (
        "CycleGAN trains on batches of (x, y): unpaired images of X and of Y, "
        "e.g. `model.fit(dataset_of_x_y_pairs)` or `model.fit(x_images, y_images)`."
    )

    def __init__(
        self,
        generator_g,
        generator_f,
        discriminator_x,
        discriminator_y,
        pool_size=50,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        base.check_networks(generator_g=generator_g, generator_f=generator_f,
                            discriminator_x=discriminator_x, discriminator_y=discriminator_y)
        self.G = generator_g
        self.F = generator_f
        self.D_X = discriminator_x
        self.D_Y = discriminator_y
        self.pool_size = pool_size
        self.seed = seed
        self.pool_x = ImagePool(pool_size, seed=seed, dtype="float32", name="pool_x")
        self.pool_y = ImagePool(
            pool_size, seed=None if seed is None else seed + 1, dtype="float32", name="pool_y"
        )
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRICS}
        self.objective = None

    # === Construction ===

    @classmethod
    def from_model_config(cls, config=None, pool_size=50, seed=None, dtype=None, name="cycle_gan"):
        """Builds G, F, D_X and D_Y as a `ModelConfig` describes them."""
        config = config or ModelConfig()
        base.check_model_config(config)
        seeds = [None] * 4 if seed is None else [4 * seed + i for i in range(4)]
        x_channels, y_channels = config.input_channels, config.output_channels
        return cls(
            build_generator(config, x_channels, y_channels, seeds[0], dtype, name="G"),
            build_generator(config, y_channels, x_channels, seeds[1], dtype, name="F"),
            build_discriminator(config, x_channels, seeds[2], dtype, name="D_X"),
            build_discriminator(config, y_channels, seeds[3], dtype, name="D_Y"),
            pool_size=pool_size,
            seed=seed,
            name=name,
        )

    def build(self, input_shape):
        # The networks are functional and already built; the pools need the
        # image size, which only the data knows.
        height, width = input_shape[1], input_shape[2]
        if not self.pool_x.built:
            self.pool_x.build((None, height, width, self.G.input_shape[-1]))
            self.pool_y.build((None, height, width, self.G.output_shape[-1]))
        self.built = True

    def fit(self, x=None, y=None, *args, **kwargs):
        # Build the pools from the data's static shape before Keras traces the
        # training step: variables created during a trace make TensorFlow
        # trace the (large) step a second time.
        if not self.built:
            shape = base.image_shape(x)
            if shape is not None:
                # In the model's strategy scope, so that the pools become
                # per-replica variables under tf.distribute.
                with self.distribute_strategy.scope():
                    self.build(shape)
        return super().fit(x, y, *args, **kwargs)

    # === Compilation ===

    def compile(
        self,
        generator_optimizer=None,
        discriminator_optimizer=None,
        *,
        optimizers=None,
        gan_mode="lsgan",
        lambda_cycle=10.0,
        lambda_a=None,
        lambda_b=None,
        lambda_identity=0.5,
        lambda_gan=1.0,
        diff_augment="",
        jit_compile=False,
        steps_per_execution=1,
        run_eagerly=False,
    ):
        """Sets the optimizers and the objective's weights.

        Args:
            generator_optimizer: one optimizer for G and F together, as the
                reference. Default: the authors' Adam (`base.default_adam`:
                lr 2e-4, beta_1 0.5, beta_2 0.999, PyTorch's epsilon 1e-8).
            discriminator_optimizer: one optimizer for D_X and D_Y together.
                Same default.
            optimizers: instead of the two above, a dict with one optimizer
                per network: keys "G", "F", "D_X", "D_Y".
            gan_mode: adversarial loss, `lsgan` (paper), `vanilla` or `hinge`.
            lambda_cycle: the paper's lambda (10), weight of both cycle terms.
            lambda_a: override for the forward cycle x -> G -> F -> x.
            lambda_b: override for the backward cycle y -> F -> G -> y.
            lambda_identity: identity weight as a fraction of lambda (0.5);
                needs equal channel counts in X and Y. 0 disables it.
            lambda_gan: weight of the generators' adversarial terms (1).
            diff_augment: DiffAugment policies for every image D_X and D_Y
                see, e.g. "translation,cutout" (`tfcyclegan.augment`); ""
                (the paper): none.

        The paper's ablations (Table 4) are weights, not code paths:
        "Cycle alone" is `lambda_gan=0` (the discriminators are then not
        trained), "GAN alone" `lambda_cycle=0`, "GAN + forward cycle"
        `lambda_b=0`, "GAN + backward cycle" `lambda_a=0`; set
        `lambda_identity=0` for the paper's main experiments without it.

        Under the `mixed_float16` policy every optimizer is wrapped in a
        `LossScaleOptimizer`.
        """
        lambda_a = lambda_cycle if lambda_a is None else lambda_a
        lambda_b = lambda_cycle if lambda_b is None else lambda_b
        weights = dict(
            lambda_a=lambda_a,
            lambda_b=lambda_b,
            lambda_identity=lambda_identity,
            lambda_gan=lambda_gan,
        )
        base.check_weights(weights)
        if lambda_identity > 0 and self.G.input_shape[-1] != self.G.output_shape[-1]:
            raise ValueError(
                "The identity loss compares G(y) with y, so X and Y need the same "
                f"number of channels. Received: X has {self.G.input_shape[-1]}, Y has "
                f"{self.G.output_shape[-1]}; pass lambda_identity=0"
            )
        if optimizers is not None:
            if generator_optimizer is not None or discriminator_optimizer is not None:
                raise ValueError(
                    "Pass either `optimizers` (one per network) or "
                    "`generator_optimizer`/`discriminator_optimizer`, not both."
                )
            if not isinstance(optimizers, dict) or set(optimizers) != set(NETWORKS):
                raise ValueError(
                    f"`optimizers` must be a dict with keys {list(NETWORKS)}. "
                    f"Received: {sorted(optimizers) if isinstance(optimizers, dict) else optimizers!r}"
                )
            generator_groups = [(optimizers["G"], [self.G]), (optimizers["F"], [self.F])]
            discriminator_groups = [
                (optimizers["D_X"], [self.D_X]),
                (optimizers["D_Y"], [self.D_Y]),
            ]
        else:
            generator_groups = [(generator_optimizer or base.default_adam(), [self.G, self.F])]
            discriminator_groups = [
                (discriminator_optimizer or base.default_adam(), [self.D_X, self.D_Y])
            ]
        objective = dict(gan_mode=gan_mode, **weights)
        self.set_diff_augment(diff_augment, objective, None if self.seed is None else self.seed + 2)
        self._finish_compile(
            generator_groups,
            discriminator_groups,
            objective,
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
            run_eagerly=run_eagerly,
        )

    def _networks(self):
        return (self.G, self.F, self.D_X, self.D_Y)

    @property
    def optimizers(self):
        """Every distinct optimizer, generators' first."""
        seen = []
        for optimizer, _ in self.generator_groups + self.discriminator_groups:
            if optimizer not in seen:
                seen.append(optimizer)
        return seen

    # === Training ===

    def _run(self, network, batches, training):
        """`network` on each of `batches` (one call where `tfcyclegan.kernels` may fuse them)."""
        return kernels.batched_calls(network, batches, training)

    def _judge(self, discriminator, batches, training):
        """`discriminator` on each of `batches`, augmented first when training with DiffAugment."""
        return self._run(discriminator, self.augmented(batches, training), training)

    def _generator_terms(self, x, y, training):
        """Every generator-side term of the objective, weighted, and the fakes."""
        w = self.objective
        zero = tf.constant(0.0)
        identity = w["lambda_identity"] > 0
        # G(x) and, for the identity term, G(y); likewise F(y) and F(x).
        fake_y, *same_y = self._run(self.G, [x, y] if identity else [x], training)
        fake_x, *same_x = self._run(self.F, [y, x] if identity else [y], training)
        terms = {
            "cycle_x": w["lambda_a"] * l1(self.F(fake_y, training=training), x),
            "cycle_y": w["lambda_b"] * l1(self.G(fake_x, training=training), y),
        }
        if w["lambda_gan"] > 0:
            adv = self.adversarial.generator_loss
            terms["G_GAN"] = w["lambda_gan"] * adv(*self._judge(self.D_Y, [fake_y], training))
            terms["F_GAN"] = w["lambda_gan"] * adv(*self._judge(self.D_X, [fake_x], training))
        else:
            terms["G_GAN"] = terms["F_GAN"] = zero
        if identity:
            terms["identity"] = w["lambda_identity"] * (
                w["lambda_b"] * l1(same_y[0], y) + w["lambda_a"] * l1(same_x[0], x)
            )
        else:
            terms["identity"] = zero
        terms["total"] = tf.add_n(
            [terms[k] for k in ("G_GAN", "F_GAN", "cycle_x", "cycle_y", "identity")]
        )
        return terms, fake_x, fake_y

    def _discriminator_terms(self, x, y, fake_x, fake_y, training):
        loss = self.adversarial.discriminator_loss
        return {
            "D_X": loss(*self._judge(self.D_X, [x, fake_x], training)),
            "D_Y": loss(*self._judge(self.D_Y, [y, fake_y], training)),
        }

    def train_terms(self, x, y):
        # G and F minimise one objective together, then D_X and D_Y theirs:
        # the reference's order, with the pools between (not the D-then-G
        # step of pix2pix and CUT).
        with tf.GradientTape(persistent=len(self.generator_groups) > 1) as tape:
            terms, fake_x, fake_y = self._generator_terms(x, y, training=True)
            losses = base.scaled_losses(terms["total"], self.generator_groups)
        base.apply_gradients(tape, losses, self.generator_groups)
        del tape

        if self.objective["lambda_gan"] > 0:
            # The pools hold detached fakes from before this step's G update,
            # as in the reference.
            fake_x = self.pool_x(tf.stop_gradient(fake_x))
            fake_y = self.pool_y(tf.stop_gradient(fake_y))
            with tf.GradientTape(persistent=len(self.discriminator_groups) > 1) as tape:
                d_terms = self._discriminator_terms(x, y, fake_x, fake_y, training=True)
                losses = base.scaled_losses(d_terms["D_X"] + d_terms["D_Y"], self.discriminator_groups)
            base.apply_gradients(tape, losses, self.discriminator_groups)
            del tape
            terms.update(d_terms)
        else:
            terms["D_X"] = terms["D_Y"] = tf.constant(0.0)
        return terms

    def test_terms(self, x, y):
        """The same losses on held-out data: no updates, no pools."""
        terms, fake_x, fake_y = self._generator_terms(x, y, training=False)
        if self.objective["lambda_gan"] > 0:
            terms.update(self._discriminator_terms(x, y, fake_x, fake_y, training=False))
        else:
            terms["D_X"] = terms["D_Y"] = tf.constant(0.0)
        return terms

    # === Inference ===

    @property
    def method(self):
        return "cyclegan"

    def generator(self, direction):
        """G for "a2b" (the paper's "x2y"), F for "b2a" ("y2x")."""
        return self.G if parse_direction(direction) == "a2b" else self.F

    def sample_columns(self, x, y):
        """(label, images) columns of a sample grid: both cycles, x -> G -> F and y -> F -> G."""
        fake_y = self.translate(x, "a2b")
        fake_x = self.translate(y, "b2a")
        return [
            ("x", x), ("G(x)", fake_y), ("F(G(x))", self.translate(fake_y, "b2a")),
            ("y", y), ("F(y)", fake_x), ("G(F(y))", self.translate(fake_x, "a2b")),
        ]

    # === Serialization ===

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "seed": self.seed}

    def _optimizers_config(self):
        # As compiled: a generator and a discriminator optimizer, or one per network.
        groups = self.generator_groups + self.discriminator_groups
        if len(groups) == 2:
            return super()._optimizers_config()
        return {
            "optimizers": {
                name: keras.optimizers.serialize(optimizer)
                for name, (optimizer, _) in zip(NETWORKS, groups)
            }
        }

    def compile_from_config(self, config):
        config = dict(config)
        if "optimizers" in config:
            config["optimizers"] = {
                name: keras.optimizers.deserialize(value)
                for name, value in config["optimizers"].items()
            }
        super().compile_from_config(config)

    def checkpointed(self):
        """The four networks and the image pools with their random state."""
        return dict(G=self.G, F=self.F, D_X=self.D_X, D_Y=self.D_Y,
                    pool_x=self.pool_x, pool_y=self.pool_y)

    def training_checkpoint(self, **extra):
        # The pools' variables have the training image size: they exist only
        # once the model is built.
        if self.objective is not None and not self.built:
            raise RuntimeError(
                "Build the model before making a training checkpoint: call "
                "`model.build((None, height, width, channels))` with the training size."
            )
        return super().training_checkpoint(**extra)
