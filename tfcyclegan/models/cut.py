"""CUT and FastCUT as one `keras.Model`: one generator, contrastive patches instead of a cycle.

Park, Efros, Zhang, Zhu, "Contrastive Learning for Unpaired Image-to-Image
Translation", ECCV 2020. X is domain A, Y domain B; data is unpaired.

| here             | paper                          | reference code (`cut_model.py`)     |
|------------------|--------------------------------|-------------------------------------|
| G                | G: X -> Y (encoder + decoder)  | netG                                |
| H                | H_l, the MLP projection heads  | netF (`PatchSampleF`, mlp_sample)   |
| D                | D, judges Y                    | netD                                |
| lambda_nce       | lambda_X (1 CUT, 10 FastCUT)   | lambda_NCE                          |
| nce_identity     | lambda_Y > 0: NCE on G(y), y   | nce_idt                             |
| nce_layers       | the encoder layers l           | nce_layers "0,4,8,12,16"            |
| flip_equivariance| FastCUT's flip regulariser     | flip_equivariance                   |
"""

import keras
import tensorflow as tf

from tfcyclegan.checks import check_int
from tfcyclegan.config import NCE_LAYERS, ModelConfig, parse_direction
from tfcyclegan.models import base
from tfcyclegan.networks import build_discriminator, build_generator

METRICS = ("G_GAN", "NCE", "NCE_Y", "D_real", "D_fake", "total")


# === PatchNCE ===


def patch_nce_loss(feat_q, feat_k, temperature=0.07, batch_size=1):
    """PatchNCE (CUT eq. 2) per patch: cross-entropy of each query against its key.

    For every patch i of an image, the logits are [q_i . k_i, q_i . k_j for
    every patch j of the same image], divided by `temperature`, with the
    positive first; q_i . k_i among the negatives is replaced by -10 (it is
    the positive). The loss of patch i is the cross-entropy of those logits
    with the positive as the label. Negatives come from the same image only
    (the authors' `nce_includes_all_negatives_from_minibatch=False`).

    Args:
        feat_q: (batch * patches, dim) L2-normalised features of G(x) (queries).
        feat_k: the same of x (keys), same order; not differentiated.
        temperature: tau (0.07).
        batch_size: images the patches come from, in order.

    Returns:
        (batch * patches,) float32 losses.
    """
    feat_q = tf.cast(feat_q, tf.float32)
    feat_k = tf.stop_gradient(tf.cast(feat_k, tf.float32))
    dim = tf.shape(feat_q)[-1]
    positive = tf.reduce_sum(feat_q * feat_k, axis=-1, keepdims=True)
    q = tf.reshape(feat_q, [batch_size, -1, dim])
    k = tf.reshape(feat_k, [batch_size, -1, dim])
    negatives = tf.matmul(q, k, transpose_b=True)  # (batch, patches, patches)
    patches = tf.shape(negatives)[-1]
    diagonal = tf.eye(patches, dtype=tf.bool)[None]
    negatives = tf.where(diagonal, tf.constant(-10.0), negatives)
    logits = tf.concat([positive, tf.reshape(negatives, [-1, patches])], axis=1) / temperature
    # Cross-entropy with label 0: logsumexp - the positive's logit.
    return tf.reduce_logsumexp(logits, axis=1) - logits[:, 0]


@keras.saving.register_keras_serializable(package="tfcyclegan")
class PatchSampler(keras.layers.Layer):
    """H: samples patches of each feature map and projects them (the authors' PatchSampleF).

    For each encoder feature map (batch, height, width, channels): the
    features at `num_patches` positions (one random set of positions per map,
    shared by every image of the batch and reused for the map of G(x) so that
    query i and key i come from the same place), through a 2-layer MLP
    (Linear(channels, units), ReLU, Linear(units, units)), L2-normalised.

    Args:
        channels: channels of each feature map, in order (one MLP each).
        units: the MLP's width (256).
        seed: seed of the MLPs' initial weights (N(0, 0.02), zero biases).
    """

    def __init__(self, channels, units=256, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.channels = [int(c) for c in channels]
        self.units = units
        self.seed = seed
        def dense(i, activation=None):
            init = keras.initializers.RandomNormal(0.0, 0.02, seed=None if seed is None else seed + i)
            return keras.layers.Dense(units, activation=activation, kernel_initializer=init,
                                      dtype=self.dtype_policy, name=f"mlp{i // 2}_{i % 2}")

        # One flat list (first, second, first, second, ...): Keras tracks it.
        self.dense_layers = [dense(i, "relu" if i % 2 == 0 else None) for i in range(2 * len(self.channels))]

    @property
    def mlps(self):
        return list(zip(self.dense_layers[0::2], self.dense_layers[1::2]))

    def build(self, input_shape=None):
        for (first, second), channels in zip(self.mlps, self.channels):
            first.build((None, channels))
            second.build((None, self.units))
        self.built = True

    def sample_ids(self, features, num_patches, seed):
        """One set of positions per feature map: `num_patches` distinct of its height x width."""
        ids = []
        for i, feature in enumerate(features):
            positions = tf.shape(feature)[1] * tf.shape(feature)[2]
            order = tf.argsort(tf.random.stateless_uniform([positions], seed=seed + [0, i]))
            ids.append(order[: tf.minimum(num_patches, positions)])
        return ids

    def call(self, features, ids):
        """[(batch * patches, units)] for each map: sampled, projected, L2-normalised."""
        outputs = []
        for feature, patch_ids, (first, second) in zip(features, ids, self.mlps):
            flat = tf.reshape(feature, [tf.shape(feature)[0], -1, tf.shape(feature)[-1]])
            sampled = tf.reshape(tf.gather(flat, patch_ids, axis=1), [-1, flat.shape[-1]])
            projected = tf.cast(second(first(sampled)), tf.float32)
            norm = tf.sqrt(tf.reduce_sum(tf.square(projected), axis=-1, keepdims=True))
            outputs.append(projected / (norm + 1e-7))
        return outputs

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "units": self.units, "seed": self.seed}


def encoder_layer_names(generator, nce_layers=NCE_LAYERS):
    """Our layers whose outputs are the authors' `nce_layers` of a ResNet generator.

    The authors index their generator's `nn.Sequential`: reflection pad, 7x7
    conv, norm, ReLU, then per downsampling conv (stride 2), norm, ReLU (with
    anti-aliasing: conv (stride 1), norm, ReLU, blur-pool), then the residual
    blocks. Index i is the output of element i. A norm our network leaves out
    (`norm="none"`) is an identity there: its predecessor stands in.
    """
    names = ["stem_pad", "stem_conv", "stem_norm", "stem_relu"]
    antialias = getattr(generator, "upsample", "transpose") == "antialias"
    for i in range(2):
        names += [f"down{i}_conv", f"down{i}_norm", f"down{i}_relu"]
        names += [f"down{i}_blur"] if antialias else []
    names += [f"block{j}" for j in range(getattr(generator, "n_blocks", 0))]
    present = {layer.name for layer in generator.layers}
    if "stem_conv" not in present:
        raise ValueError(
            "CUT's PatchNCE compares the encoder features of a ResNet generator (resnet_<n>blocks, "
            f"mobile_resnet_<n>blocks); {type(generator).__name__} {generator.name!r} has no such "
            "encoder. A per-pixel colour look (generator='color') trains with CycleGAN or pix2pix."
        )
    chosen = []
    for index in nce_layers:
        if not 0 <= index < len(names):
            fitting = [i for i in nce_layers if 0 <= i < len(names)] or [0]
            raise ValueError(
                f"`nce_layers` index {index} is outside the generator's encoder (0 to "
                f"{len(names) - 1}). Received: nce_layers={tuple(nce_layers)}; choose layers "
                f"within it, e.g. nce_layers={tuple(fitting)} (tfcyclegan train: --nce-layers "
                f"{','.join(map(str, fitting))})"
            )
        j = index
        while names[j] not in present:  # an identity in the authors' network
            j -= 1
        chosen.append(names[j])
    return chosen


# === The model ===


@keras.saving.register_keras_serializable(package="tfcyclegan")
class CUT(base.TranslationModel):
    """Contrastive unpaired translation: CUT and FastCUT.

    The objective (CUT section 3, eq. 5):

        L = L_GAN(G, D, X, Y) + lambda_X * L_PatchNCE(G, H, X)
                              + lambda_Y * L_PatchNCE(G, H, Y)

    L_PatchNCE(G, H, X) averages, over the encoder layers l and sampled
    patches s, the cross-entropy of the query H_l(G_enc^l(G(x)))_s against its
    positive H_l(G_enc^l(x))_s and negatives from other positions of the same
    image (eq. 2, temperature 0.07). CUT: lambda_X = lambda_Y = 1 (the two NCE
    terms are averaged, as the reference does); FastCUT: lambda_X = 10, no
    identity term, flip equivariance (G sees x flipped half of the time and
    its features are flipped back before the comparison).

    Each step, as the reference: G(x) (and G(y) for the identity term) once;
    D is updated on G(x) held fixed and on y; then G and H are updated, the
    GAN term judged by the updated D. LSGAN, no image pool. With
    `lambda_gan = 0` (PatchNCE alone) D is neither called nor trained.

    `fit` takes a dataset of unpaired `(x, y)` batches, like `CycleGAN`.

    Args:
        generator: G, a `ResnetGenerator` (its encoder layers give the features).
        discriminator: D, judges images of Y.
        nce_layers: the authors' encoder layer indices (0, 4, 8, 12, 16).
        num_patches: patches sampled per layer (256).
        units: width of the projection heads (256).
        temperature: tau (0.07).
        mode: "cut" or "fastcut": the defaults of `compile` and flip equivariance.
        seed: seed of the heads' weights and the patch and flip draws.
    """

    NETWORK_ARGS = {"generator": "G", "discriminator": "D"}
    EXPECTED_BATCHES = "CUT trains on batches of (x, y): unpaired images of X and of Y."

    def __init__(self, generator, discriminator, nce_layers=NCE_LAYERS, num_patches=256, units=256,
                 temperature=0.07, mode="cut", seed=None, **kwargs):
        super().__init__(**kwargs)
        base.check_networks(generator=generator, discriminator=discriminator)
        if mode not in ("cut", "fastcut"):
            raise ValueError(f"`mode` must be 'cut' or 'fastcut'. Received: mode={mode!r}")
        num_patches = check_int("num_patches", num_patches, 1)
        units = check_int("units", units, 1)
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature!r}")
        self.G = generator
        self.D = discriminator
        self.nce_layers = tuple(int(i) for i in nce_layers)
        self.num_patches = num_patches
        self.units = units
        self.temperature = float(temperature)
        self.mode = mode
        self.flip_equivariance = mode == "fastcut"
        self.seed = seed
        names = encoder_layer_names(generator, self.nce_layers)
        outputs = [generator.get_layer(name).output for name in names]
        self.encoder = keras.Model(generator.inputs, outputs, name=f"{generator.name}_encoder")
        self.H = PatchSampler([o.shape[-1] for o in outputs], units, seed=seed, name="H",
                              dtype=generator.dtype_policy)
        self.H.build()
        self.draws = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRICS}
        self.objective = None
        self.built = True

    @classmethod
    def from_model_config(cls, config=None, mode="cut", seed=None, dtype=None, name="cut", **kwargs):
        """G (a ResNet generator), D and the PatchNCE layers as a `ModelConfig` describes them.

        `kwargs` go to `CUT`; a `nce_layers` there overrides `config.nce_layers`.
        """
        config = config or ModelConfig(method=mode)
        base.check_model_config(config)
        kwargs.setdefault("nce_layers", config.nce_layers)
        seeds = (None, None, None) if seed is None else (3 * seed, 3 * seed + 1, 3 * seed + 2)
        return cls(
            build_generator(config, config.input_channels, config.output_channels, seeds[0], dtype, name="G"),
            build_discriminator(config, config.output_channels, seeds[1], dtype, name="D"),
            mode=mode, seed=seeds[2], name=name, **kwargs,
        )

    # === Compilation ===

    def compile(self, generator_optimizer=None, discriminator_optimizer=None, *, gan_mode="lsgan",
                lambda_gan=1.0, lambda_nce=None, nce_identity=None, diff_augment="", jit_compile=False,
                steps_per_execution=1, run_eagerly=False):
        """Sets the optimizers and the objective's weights.

        Args:
            generator_optimizer: G's and H's optimizer (the reference's optimizer_G
                and optimizer_F, the same settings). Default: the authors' Adam.
            discriminator_optimizer: D's. Same default.
            gan_mode: `lsgan` (CUT's), `vanilla` or `hinge`.
            lambda_gan: weight of G's adversarial term (1).
            lambda_nce: lambda_X; default 1 (CUT) or 10 (FastCUT).
            nce_identity: the PatchNCE term on (y, G(y)); default on for CUT, off for FastCUT.
            diff_augment: DiffAugment policies for every image D sees, e.g.
                "translation,cutout" (`tfcyclegan.augment`); "" (CUT's): none.
        """
        fast = self.mode == "fastcut"
        lambda_nce = (10.0 if fast else 1.0) if lambda_nce is None else lambda_nce
        nce_identity = (not fast) if nce_identity is None else nce_identity
        base.check_weights(dict(lambda_gan=lambda_gan, lambda_nce=lambda_nce))
        if lambda_gan == 0 and lambda_nce == 0:
            raise ValueError(
                "With both weights 0 the generator has nothing to learn: set `lambda_nce` or "
                f"`lambda_gan` above 0. Received: lambda_nce={lambda_nce!r}, "
                f"lambda_gan={lambda_gan!r}"
            )
        objective = dict(gan_mode=gan_mode, lambda_gan=float(lambda_gan), lambda_nce=float(lambda_nce),
                         nce_identity=bool(nce_identity))
        self.set_diff_augment(diff_augment, objective, None if self.seed is None else self.seed + 1)
        self._finish_compile(
            [(generator_optimizer or base.default_adam(), [self.G, self.H])],
            [(discriminator_optimizer or base.default_adam(), [self.D])],
            objective,
            jit_compile=jit_compile, steps_per_execution=steps_per_execution,
            run_eagerly=run_eagerly,
        )

    # === Training ===

    def nce_loss(self, source, translated, flipped=False, training=True):
        """L_PatchNCE between `source` images and `translated` = G(source).

        Training draws new patch positions from the model's seed generator;
        evaluation (`training=False`) uses fixed positions, so validation
        neither varies between epochs nor moves the training's random stream.
        """
        feat_k = self.encoder(source, training=training)
        feat_q = self.encoder(translated, training=training)
        if flipped:  # G saw the source flipped: flip its features back
            feat_q = [tf.reverse(f, axis=[2]) for f in feat_q]
        if training:
            seed = tf.cast(keras.random.randint([2], 0, 2**30, seed=self.draws), tf.int32)
        else:
            seed = tf.constant([0, 0], tf.int32)
        ids = self.H.sample_ids(feat_k, self.num_patches, seed)
        keys, queries = self.H(feat_k, ids), self.H(feat_q, ids)
        batch = tf.shape(source)[0]
        total = tf.add_n([
            tf.reduce_mean(patch_nce_loss(q, k, self.temperature, batch)) for q, k in zip(queries, keys)
        ])
        return self.objective["lambda_nce"] * total / len(keys)

    def _discriminator_terms(self, y, fake_y, training):
        y, fake_y = self.augmented([y, fake_y], training)
        real, fake = self.adversarial.discriminator_terms(
            self.D(y, training=training), self.D(fake_y, training=training)
        )
        return {"D_real": real, "D_fake": fake}

    def _generator_terms(self, x, y, fake_y, fake_idt, training, flipped=False):
        """G's terms: L_GAN and the PatchNCE terms on x (and on y: the identity term)."""
        w = self.objective
        if w["lambda_gan"] > 0:
            judged, = self.augmented([fake_y], training)
            g_gan = w["lambda_gan"] * self.adversarial.generator_loss(self.D(judged, training=training))
        else:
            g_gan = tf.constant(0.0)
        if self.flip_equivariance and training:
            # The features of G(flip(x)) flipped back are compared with x's.
            nce = tf.cond(
                flipped,
                lambda: self.nce_loss(x, fake_y, flipped=True),
                lambda: self.nce_loss(x, fake_y),
            )
        else:
            nce = self.nce_loss(x, fake_y, training=training)
        nce_y = tf.constant(0.0)
        both = nce
        if w["nce_identity"]:
            nce_y = self.nce_loss(y, fake_idt, training=training)
            both = 0.5 * (nce + nce_y)
        return dict(G_GAN=g_gan, NCE=nce, NCE_Y=nce_y, total=g_gan + both)

    def train_terms(self, x, y):
        w = self.objective
        real = tf.concat([x, y], axis=0) if w["nce_identity"] else x
        flipped = False
        if self.flip_equivariance:
            flipped = keras.random.uniform([], seed=self.draws) < 0.5
            real = tf.cond(flipped, lambda: tf.reverse(real, axis=[2]), lambda: real)
        batch = tf.shape(x)[0]

        def generate():
            # G(x) and, for the identity term, G(y): one call.
            fake = self.G(real, training=True)
            return fake[:batch], fake[batch:]

        # D on G(x) held fixed, then G and H, judged by the updated D.
        return self.discriminator_then_generator(
            generate,
            lambda fakes: self._discriminator_terms(y, fakes[0], training=True),
            lambda fakes: self._generator_terms(x, y, *fakes, training=True, flipped=flipped),
        )

    def test_terms(self, x, y):
        """The same losses on held-out data: no updates, no flip, fixed patch positions."""
        fake_y = self.G(x, training=False)
        fake_idt = self.G(y, training=False) if self.objective["nce_identity"] else None
        terms = self._generator_terms(x, y, fake_y, fake_idt, training=False)
        if self.objective["lambda_gan"] > 0:
            terms.update(self._discriminator_terms(y, fake_y, training=False))
        else:
            terms["D_real"] = terms["D_fake"] = tf.constant(0.0)
        return terms

    # === Inference ===

    @property
    def method(self):
        """"cut" or "fastcut": one class, two records (`tfcyclegan.methods`)."""
        return self.mode

    def generator(self, direction="a2b"):
        """G for "a2b": CUT learns one direction only."""
        if parse_direction(direction) != "a2b":
            raise ValueError(
                "CUT translates one way only, A -> B: `direction` must be 'a2b' (or 'x2y'). "
                f"Received: direction={direction!r}"
            )
        return self.G

    def sample_columns(self, x, y):
        """(label, images) columns of a sample grid: x, G(x), and a real y."""
        return [("x", x), ("G(x)", self.translate(x)), ("y", y)]

    # === Serialization ===

    def get_config(self):
        return {
            **super().get_config(),
            "nce_layers": list(self.nce_layers),
            "num_patches": self.num_patches,
            "units": self.units,
            "temperature": self.temperature,
            "mode": self.mode,
            "seed": self.seed,
        }

    def checkpointed(self):
        """G, H, D and the state of the random draws (patch positions, flips)."""
        return dict(G=self.G, H=self.H, D=self.D, draws=self.draws.state)
