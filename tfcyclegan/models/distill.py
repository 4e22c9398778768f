"""Distillation as one `keras.Model`: a small student generator learns a trained teacher's outputs.

The idea of GAN Compression (Li, Lin, Ding, Liu, Zhu, Han, "GAN Compression:
Efficient Architectures for Interactive Conditional GANs", CVPR 2020): a
trained generator G' (the teacher) labels every input image, and a much
cheaper G (the student, e.g. a `MobileResnetGenerator`) is trained to give
the same image, optionally with a GAN term and with its intermediate
features matched to the teacher's through learned 1x1 convolutions.

X is the side the student translates from (domain A for "a2b", B for
"b2a"), Y the side it translates to; data is unpaired `(a, b)` batches (or
aligned pairs for a pix2pix teacher), as the teacher trained on.

| here            | GAN Compression (sec. 3.1)      | reference (`distillers/resnet_distiller.py`) |
|-----------------|---------------------------------|----------------------------------------------|
| T               | G', the pre-trained teacher     | netG_teacher                                 |
| G               | G, the compressed student       | netG_student                                 |
| D               | D, judges Y                     | netD                                         |
| adapters        | f_t, the 1x1 convs of eq. 3     | netAs                                        |
| distill         | lambda_recon * L_recon (eq. 2)  | loss_G_recon                                 |
| feature         | lambda_distill * L_distill (3)  | loss_G_distill                               |
| G_GAN           | L_cGAN, G's side                | loss_G_gan                                   |
"""

import keras
import tensorflow as tf

from tfcyclegan.config import DISTILL_LOSSES, check_choice, parse_direction
from tfcyclegan.models import base
from tfcyclegan.networks import build_discriminator, build_generator

METRICS = ("distill", "feature", "G_GAN", "D_real", "D_fake", "total")
FEATURE_POINTS = 3
"""Residual-block outputs matched by the feature term: at 1/3, 2/3 and the end of each network's blocks."""


def distill_loss(student_images, teacher_images, loss="l1"):
    """L_recon: mean |G(x) - T(x)| (`l1`) or mean (G(x) - T(x))^2 (`l2`) over every pixel."""
    check_choice("loss", loss, DISTILL_LOSSES)
    difference = tf.cast(student_images, tf.float32) - tf.cast(teacher_images, tf.float32)
    if loss == "l1":
        return tf.reduce_mean(tf.abs(difference))
    return tf.reduce_mean(tf.square(difference))


def _as_list(outputs):
    """A functional model's outputs as a list (a one-output model returns a bare tensor)."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def block_names(generator):
    """The residual-block outputs of a ResNet-style generator, in order (`block0`, `block1`, ...)."""
    present = {layer.name for layer in generator.layers}
    count = getattr(generator, "n_blocks", 0)
    return [f"block{i}" for i in range(count) if f"block{i}" in present]


def feature_pairs(student, teacher, points=FEATURE_POINTS):
    """(student layer, teacher layer) pairs for feature matching, at equal fractions of depth.

    Block `round(k * n / points) - 1` of each network for k = 1 .. points,
    so a 6-block student's blocks 1, 3, 5 meet a 9-block teacher's 2, 5, 8.
    Empty when either network has no residual blocks (a U-Net teacher).
    """
    mine, theirs = block_names(student), block_names(teacher)
    if not mine or not theirs:
        return []
    pairs = []
    for k in range(1, points + 1):
        pair = (mine[max(round(k * len(mine) / points) - 1, 0)],
                theirs[max(round(k * len(theirs) / points) - 1, 0)])
        if pair not in pairs:
            pairs.append(pair)
    return pairs


@keras.saving.register_keras_serializable(package="tfcyclegan")
class Distill(base.TranslationModel):
    """A student generator G trained to reproduce a frozen teacher T.

    The objective (GAN Compression, eq. 2-4), for x of the student's input side:

        L_distill = E_x || G(x) - T(x) ||_1            (or squared: loss="l2")   (eq. 2)
        L_feature = 1/|P| sum_(s, t in P) E_x || f_s(G_s(x)) - T_t(x) ||_2^2        (eq. 3)
        L_GAN     = E_y [(D(y) - 1)^2] + E_x [D(G(x))^2]     (LSGAN; D on real y)
        L = lambda_distill * L_distill + lambda_feature * L_feature + lambda_gan * L_GAN

    P are the `feature_pairs` (a student and a teacher residual-block output at
    the same fraction of depth) and f_s a learned 1x1 convolution from the
    student's channels to the teacher's (the adapters). T never trains: its
    outputs are the labels. With `lambda_gan = 0` (the default of
    `tfcyclegan distill`) the student learns by regression alone and D is
    neither called nor trained; with `lambda_gan > 0`, each step updates D on
    G(x) held fixed and a real y, then G (and the adapters), as in pix2pix.

    `fit` takes `(a, b)` batches (unpaired, or aligned for a pix2pix teacher):
    for direction "a2b" x = a and the real images D sees are y = b; for
    "b2a" the other way round. Calling the model runs the student.

    Args:
        teacher: T, a trained generator (frozen here: `trainable = False`).
        student: G, the generator to train; the same input and output
            channels as the teacher.
        discriminator: D, judges images of Y (used when `lambda_gan > 0`).
        direction: the teacher's direction, "a2b" or "b2a": which side of the
            batches is the input.
        **kwargs: standard model arguments.
    """

    NETWORK_ARGS = {"teacher": "T", "student": "G", "discriminator": "D"}
    EXPECTED_BATCHES = (
        "Distill trains on batches of (a, b): images of domain A and of domain B "
        "(the input side is chosen by `direction`)."
    )

    def __init__(self, teacher, student, discriminator, direction="a2b", **kwargs):
        super().__init__(**kwargs)
        base.check_networks(teacher=teacher, student=student, discriminator=discriminator)
        channels = lambda g: (g.input_shape[-1], g.output_shape[-1])  # noqa: E731
        if channels(student) != channels(teacher):
            raise ValueError(
                "The student must take and give the teacher's channels (in, out) "
                f"{channels(teacher)}. Received: a student with {channels(student)}"
            )
        if discriminator.input_shape[-1] != teacher.output_shape[-1]:
            raise ValueError(
                f"D judges the teacher's outputs ({teacher.output_shape[-1]} channels). "
                f"Received: a discriminator taking {discriminator.input_shape[-1]} channels"
            )
        self.direction = parse_direction(direction)
        self.T = teacher
        self.T.trainable = False
        self.G = student
        self.D = discriminator

        # === Feature matching: the block outputs of both, and 1x1 adapters ===
        self.pairs = feature_pairs(student, teacher)
        self.student_features = keras.Model(
            student.inputs, [student.get_layer(s).output for s, _ in self.pairs] + [student.output],
            name=f"{student.name}_features",
        )
        self.teacher_features = keras.Model(
            teacher.inputs, [teacher.get_layer(t).output for _, t in self.pairs] + [teacher.output],
            name=f"{teacher.name}_features",
        )
        self.adapters = []
        for i, (s, t) in enumerate(self.pairs):
            adapter = keras.layers.Conv2D(
                teacher.get_layer(t).output.shape[-1], 1, dtype=student.dtype_policy,
                name=f"adapter{i}",
            )
            adapter.build((None, None, None, student.get_layer(s).output.shape[-1]))
            self.adapters.append(adapter)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRICS}
        self.objective = None
        self.built = True

    @classmethod
    def from_model_config(cls, teacher, config, direction="a2b", seed=None, dtype=None,
                          name="distill"):
        """The student G and D as a `ModelConfig` describes them, around `teacher`.

        The channels are the teacher's: `config.input_channels` /
        `output_channels` need not match them.
        """
        base.check_model_config(config)
        seeds = (None, None) if seed is None else (2 * seed, 2 * seed + 1)
        x_channels, y_channels = teacher.input_shape[-1], teacher.output_shape[-1]
        return cls(
            teacher,
            build_generator(config, x_channels, y_channels, seeds[0], dtype, name="G"),
            build_discriminator(config, y_channels, seeds[1], dtype, name="D"),
            direction=direction,
            name=name,
        )

    # === Compilation ===

    def compile(self, generator_optimizer=None, discriminator_optimizer=None, *, loss="l1",
                lambda_distill=10.0, lambda_feature=0.0, lambda_gan=0.0, gan_mode="lsgan",
                jit_compile=False, steps_per_execution=1, run_eagerly=False):
        """Sets the optimizers and the objective's weights.

        Args:
            generator_optimizer: G's and the adapters' optimizer. Default: the
                authors' Adam (lr 2e-4, beta_1 0.5).
            discriminator_optimizer: D's. Same default.
            loss: the distillation distance, `l1` (GAN Compression's) or `l2`.
            lambda_distill: weight of L_distill (10, GAN Compression's lambda_recon).
            lambda_feature: weight of L_feature (0: off; GAN Compression uses 10).
            lambda_gan: weight of G's adversarial term (0: off).
            gan_mode: `lsgan` (CycleGAN's), `vanilla` or `hinge`.
        """
        check_choice("loss", loss, DISTILL_LOSSES)
        weights = dict(lambda_distill=lambda_distill, lambda_feature=lambda_feature,
                       lambda_gan=lambda_gan)
        base.check_weights(weights)
        if not any(weights.values()):
            raise ValueError(
                "With every weight 0 the student has nothing to learn: set `lambda_distill`, "
                f"`lambda_feature` or `lambda_gan` above 0. Received: {weights}"
            )
        if lambda_feature > 0 and not self.pairs:
            raise ValueError(
                "Feature matching pairs residual-block outputs, and the teacher "
                f"({type(self.T).__name__}) or the student ({type(self.G).__name__}) has none. "
                f"Received: lambda_feature={lambda_feature!r}; use 0 with this teacher."
            )
        self._finish_compile(
            [(generator_optimizer or base.default_adam(), [self.G, *self.adapters])],
            [(discriminator_optimizer or base.default_adam(), [self.D])],
            dict(loss=loss, gan_mode=gan_mode, **{k: float(v) for k, v in weights.items()}),
            jit_compile=jit_compile, steps_per_execution=steps_per_execution,
            run_eagerly=run_eagerly,
        )

    # === Training ===

    def _unpack(self, data):
        """(x, y) of an (a, b) batch: the student's input side first."""
        a, b = super()._unpack(data)
        return (a, b) if self.direction == "a2b" else (b, a)

    def _terms(self, x, y, student_outputs, training):
        """G's loss terms: distillation, features and (with lambda_gan > 0) GAN."""
        w = self.objective
        teacher_outputs = [tf.stop_gradient(t) for t in _as_list(self.teacher_features(x, training=False))]
        *student_feats, fake_y = student_outputs
        *teacher_feats, teacher_y = teacher_outputs
        terms = {"distill": w["lambda_distill"] * distill_loss(fake_y, teacher_y, w["loss"])}
        if w["lambda_feature"] > 0:
            mse = [
                tf.reduce_mean(tf.square(tf.cast(adapter(s), tf.float32) - tf.cast(t, tf.float32)))
                for adapter, s, t in zip(self.adapters, student_feats, teacher_feats)
            ]
            terms["feature"] = w["lambda_feature"] * tf.add_n(mse) / len(mse)
        else:
            terms["feature"] = tf.constant(0.0)
        if w["lambda_gan"] > 0:
            logits = self.D(fake_y, training=training)
            terms["G_GAN"] = w["lambda_gan"] * self.adversarial.generator_loss(logits)
        else:
            terms["G_GAN"] = tf.constant(0.0)
        terms["total"] = terms["distill"] + terms["feature"] + terms["G_GAN"]
        return terms

    def _discriminator_terms(self, y, fake_y, training):
        real, fake = self.adversarial.discriminator_terms(
            self.D(y, training=training), self.D(fake_y, training=training)
        )
        return {"D_real": real, "D_fake": fake}

    def train_terms(self, x, y):
        # The optimizer holds the adapters' moments either way (one checkpoint
        # layout for every lambda_feature); they are only updated when used.
        optimizer = self.generator_groups[0][0]
        networks = [self.G, *self.adapters] if self.objective["lambda_feature"] > 0 else [self.G]
        # D first, on G(x) held fixed, then G (and the adapters), as pix2pix.
        return self.discriminator_then_generator(
            lambda: _as_list(self.student_features(x, training=True)),
            lambda student_outputs: self._discriminator_terms(y, student_outputs[-1], training=True),
            lambda student_outputs: self._terms(x, y, student_outputs, training=True),
            generator_groups=[(optimizer, networks)],
        )

    def test_terms(self, x, y):
        """The same losses on held-out data, without updates."""
        student_outputs = _as_list(self.student_features(x, training=False))
        terms = self._terms(x, y, student_outputs, training=False)
        if self.objective["lambda_gan"] > 0:
            terms.update(self._discriminator_terms(y, student_outputs[-1], training=False))
        else:
            terms["D_real"] = terms["D_fake"] = tf.constant(0.0)
        return terms

    # === Inference ===

    @property
    def method(self):
        return "distill"

    def generator(self, direction=None):
        """G, the student: it translates in the teacher's direction only."""
        if direction is not None and parse_direction(direction) != self.direction:
            raise ValueError(
                f"This student learned the teacher's {self.direction} direction only. "
                f"Received: direction={direction!r}"
            )
        return self.G

    def translate(self, images, direction=None, batch_size=8):
        """The student's translation of images of any size (see `CycleGAN.translate`)."""
        return base.translate_with(self.generator(direction), images, batch_size=batch_size)

    def sample_columns(self, x, y):
        """(label, images) columns of a sample grid: x, the teacher's T(x), the student's G(x).

        `x` and `y` are the (a, b) images of the sample batch; the input is
        `y` for a "b2a" student. (Short labels: a column is the image size.)
        """
        source = x if self.direction == "a2b" else y
        return [("x", source), ("T(x)", base.translate_with(self.T, source)),
                ("G(x)", self.translate(source))]

    # === Serialization ===

    def get_config(self):
        return {**super().get_config(), "direction": self.direction}

    def checkpointed(self):
        """G, the adapters and D. Not the teacher: it does not change, and a run
        rebuilds it from the teacher run (see `tfcyclegan.methods`)."""
        adapters = {f"adapter_{i}": adapter for i, adapter in enumerate(self.adapters)}
        return dict(G=self.G, D=self.D, **adapters)
