"""pix2pix as one `keras.Model`: paired translation with a conditional GAN and L1.

Names follow the paper (Isola et al. 2017, "Image-to-Image Translation with
Conditional Adversarial Networks"). X is domain A (the input), Y is domain B
(the target); training images come in aligned pairs (x, y).

| here              | paper                     | reference code (`pix2pix_model.py`) |
|-------------------|---------------------------|-------------------------------------|
| G                 | G: x -> y                 | netG                                |
| D                 | D, judges (x, y) pairs    | netD                                |
| x, y              | x, y                      | real_A, real_B                      |
| G(x)              | G(x, z) (z: dropout)      | fake_B                              |
| lambda_l1         | lambda (100)              | lambda_L1                           |
| G_GAN             | L_cGAN(G, D), G's side    | loss_G_GAN                          |
| G_L1              | lambda * L_L1(G)          | loss_G_L1                           |
| D_real, D_fake    | L_cGAN(G, D), D's side    | loss_D_real, loss_D_fake            |
| conditional=False | L_GAN, eq. 2 (ablation)   | (not in the reference)              |
"""

import keras
import tensorflow as tf

from tfcyclegan.config import ModelConfig, parse_direction
from tfcyclegan.losses import l1
from tfcyclegan.models import base
from tfcyclegan.networks import build_discriminator, build_generator

METRICS = ("G_GAN", "G_L1", "D_real", "D_fake", "total")

# The authors' pix2pix (`--model pix2pix`): U-Net 256, batch norm, dropout.
DEFAULT_CONFIG = ModelConfig(generator="unet_256", norm="batch", dropout=True)


@keras.saving.register_keras_serializable(package="tfcyclegan")
class Pix2Pix(base.TranslationModel):
    """Paired image-to-image translation: a conditional GAN plus L1 (pix2pix).

    The objective, with the paper's equation numbers:

        L_cGAN(G, D) = E_x,y [log D(x, y)] + E_x,z [log(1 - D(x, G(x, z)))]    (eq. 1)
        L_L1(G)      = E_x,y,z ||y - G(x, z)||_1                               (eq. 3)
        G* = arg min_G max_D  lambda_gan * L_cGAN(G, D) + lambda_l1 * L_L1(G)  (eq. 4)

    with `lambda_gan = 1` and `lambda_l1 = 100` (the paper's lambda). As in
    the paper (section 3.3) and the reference, G maximises log D(x, G(x))
    instead of minimising log(1 - D(x, G(x))), and D's loss is halved:
    `0.5 * (D_real + D_fake)`. `gan_mode="lsgan"` or `"hinge"` swaps the log
    terms for least squares or hinge ones. With `conditional=False` D judges
    y alone, the paper's unconditional GAN (eq. 2) of its ablation (Table 1).

    Each step follows the reference: G(x) once; then D is updated on
    (x, G(x)) with G(x) held fixed, and on (x, y); then G is updated, its GAN
    term judged by the already updated D. Batch norm runs in training mode in
    every call of a training step, so its moving statistics move once per
    step in G and three times in D (fake, real, fake again), as in PyTorch.

    The paper's variants are weights, not code paths: "L1" alone is
    `lambda_gan=0` (D is then neither called nor trained), "cGAN" alone is
    `lambda_l1=0`, "L1+cGAN" the default; "L1+GAN" is `conditional=False`.

    `fit` takes a dataset of aligned `(x, y)` batches. Calling the model
    translates x -> y (so `predict` gives G(x)).

    Args:
        generator: G, X -> Y (a `UnetGenerator` in the paper; any network
            mapping images to images of the same size).
        discriminator: D. Takes `x_channels + y_channels` channels (x and y
            concatenated) when `conditional`, else `y_channels`.
        conditional: whether D sees the input x beside y (True, the paper).
        **kwargs: standard model arguments.
    """

    NETWORK_ARGS = {"generator": "G", "discriminator": "D"}
    EXPECTED_BATCHES = (
        "Pix2Pix trains on batches of aligned pairs (x, y): an input and its target, "
        "e.g. `model.fit(dataset_of_x_y_pairs)` or `model.fit(x_images, y_images)`."
    )

    def __init__(self, generator, discriminator, conditional=True, **kwargs):
        super().__init__(**kwargs)
        base.check_networks(generator=generator, discriminator=discriminator)
        if not isinstance(conditional, bool):
            raise ValueError(f"`conditional` must be a bool. Received: conditional={conditional!r}")
        x_channels, y_channels = generator.input_shape[-1], generator.output_shape[-1]
        expected = x_channels + y_channels if conditional else y_channels
        if discriminator.input_shape[-1] != expected:
            judged = "concat(x, y)" if conditional else "y"
            raise ValueError(
                f"With conditional={conditional} the discriminator judges {judged}: "
                f"{expected} channels (x has {x_channels}, y has {y_channels}). Received: a "
                f"discriminator taking {discriminator.input_shape[-1]} channels"
            )
        self.G = generator
        self.D = discriminator
        self.conditional = conditional
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRICS}
        self.objective = None
        # G and D are functional networks, already built; nothing depends on
        # the image size.
        self.built = True

    # === Construction ===

    @classmethod
    def from_model_config(
        cls, config=None, conditional=True, seed=None, dtype=None, name="pix2pix"
    ):
        """Builds G and D as a `ModelConfig` describes them.

        Without `config`, the authors' pix2pix: `unet_256`, batch norm,
        dropout, the 70x70 PatchGAN.
        """
        config = DEFAULT_CONFIG if config is None else config
        base.check_model_config(config)
        seeds = (None, None) if seed is None else (2 * seed, 2 * seed + 1)
        x_channels, y_channels = config.input_channels, config.output_channels
        d_channels = x_channels + y_channels if conditional else y_channels
        return cls(
            build_generator(config, x_channels, y_channels, seeds[0], dtype, name="G"),
            build_discriminator(config, d_channels, seeds[1], dtype, name="D"),
            conditional=conditional,
            name=name,
        )

    # === Compilation ===

    def compile(
        self,
        generator_optimizer=None,
        discriminator_optimizer=None,
        *,
        gan_mode="vanilla",
        lambda_l1=100.0,
        lambda_gan=1.0,
        jit_compile=False,
        steps_per_execution=1,
        run_eagerly=False,
    ):
        """Sets the optimizers and the objective's weights.

        Args:
            generator_optimizer: G's optimizer. Default: the authors',
                `TorchAdam(2e-4, beta_1=0.5, beta_2=0.999, epsilon=1e-8)`.
            discriminator_optimizer: D's optimizer. Same default.
            gan_mode: adversarial loss, `vanilla` (the paper's, cross-entropy
                on logits), `lsgan` or `hinge`.
            lambda_l1: weight of the L1 term (the paper's lambda, 100).
            lambda_gan: weight of G's adversarial term (1); 0 trains G by L1
                alone and leaves D untouched.

        Under the `mixed_float16` policy both optimizers are wrapped in a
        `LossScaleOptimizer`.
        """
        weights = dict(lambda_l1=lambda_l1, lambda_gan=lambda_gan)
        base.check_weights(weights)
        if lambda_l1 == 0 and lambda_gan == 0:
            raise ValueError(
                "With both weights 0 the generator has nothing to learn: set `lambda_l1` or "
                f"`lambda_gan` above 0. Received: lambda_l1={lambda_l1!r}, "
                f"lambda_gan={lambda_gan!r}"
            )
        self._finish_compile(
            [(generator_optimizer or base.default_adam(), [self.G])],
            [(discriminator_optimizer or base.default_adam(), [self.D])],
            dict(gan_mode=gan_mode, **weights),
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
            run_eagerly=run_eagerly,
        )

    # === Training ===

    def _judge(self, x, image, training):
        """D's logits for `image` (a real or generated y), given the input x."""
        judged = tf.concat([x, tf.cast(image, x.dtype)], axis=-1) if self.conditional else image
        return self.D(judged, training=training)

    def _discriminator_terms(self, x, y, fake_y, training):
        # Fake first, then real, each its own call as in the reference: batch
        # norm statistics differ per call, and the order fixes the moving ones.
        fake_logits = self._judge(x, fake_y, training)
        real_logits = self._judge(x, y, training)
        real, fake = self.adversarial.discriminator_terms(real_logits, fake_logits)
        return {"D_real": real, "D_fake": fake}

    def _generator_terms(self, x, y, fake_y, training):
        w = self.objective
        terms = {"G_L1": w["lambda_l1"] * l1(fake_y, y)}
        if w["lambda_gan"] > 0:
            logits = self._judge(x, fake_y, training)
            terms["G_GAN"] = w["lambda_gan"] * self.adversarial.generator_loss(logits)
        else:
            terms["G_GAN"] = tf.constant(0.0)
        terms["total"] = terms["G_GAN"] + terms["G_L1"]
        return terms

    def train_terms(self, x, y):
        # G(x) once; D learns from it held fixed, then G, judged by the D
        # just updated (the reference's order).
        return self.discriminator_then_generator(
            lambda: self.G(x, training=True),
            lambda fake_y: self._discriminator_terms(x, y, fake_y, training=True),
            lambda fake_y: self._generator_terms(x, y, fake_y, training=True),
        )

    def test_terms(self, x, y):
        """The same losses on held-out data, without updates."""
        fake_y = self.G(x, training=False)
        terms = self._generator_terms(x, y, fake_y, training=False)
        if self.objective["lambda_gan"] > 0:
            terms.update(self._discriminator_terms(x, y, fake_y, training=False))
        else:
            terms["D_real"] = terms["D_fake"] = tf.constant(0.0)
        return terms

    # === Inference ===

    @property
    def method(self):
        return "pix2pix"

    def generator(self, direction="a2b"):
        """G for "a2b" (the paper's "x2y"): pix2pix learns one direction only.

        `translate` runs batch norm with its moving statistics
        (`training=False`, PyTorch's `eval()`); the authors' `test.py`
        normalizes each image by its own statistics instead (see
        `torch_import`, `bn_statistics="image"`).
        """
        if parse_direction(direction) != "a2b":
            raise ValueError(
                "Pix2Pix translates one way only, A -> B: `direction` must be 'a2b' (or "
                "'x2y'); for B -> A train another model with --direction BtoA. "
                f"Received: direction={direction!r}"
            )
        return self.G

    def sample_columns(self, x, y):
        """(label, images) columns of a sample grid: the input, G's output, the target."""
        return [("x", x), ("G(x)", self.translate(x)), ("y", y)]

    # === Serialization ===

    def get_config(self):
        return {**super().get_config(), "conditional": self.conditional}

    def checkpointed(self):
        """G and D, with batch norm's moving statistics."""
        return dict(G=self.G, D=self.D)
