"""The loss terms of the CycleGAN objective (Zhu et al. 2017, section 3).

Adversarial losses (eq. 1) come in three forms; the paper trains with the
least-squares one (section 4, "Training details"):

- `lsgan`: D minimises (D(y) - 1)^2 + D(G(x))^2; G minimises (D(G(x)) - 1)^2.
- `vanilla`: the original cross-entropy GAN, on logits.
- `hinge`: D minimises relu(1 - D(y)) + relu(1 + D(G(x))); G minimises -D(G(x)).

Every discriminator loss is halved, as in the reference ("we divide the
objective by 2 while optimizing D, which slows down the rate at which D learns").
The cycle-consistency (eq. 2) and identity losses are mean absolute errors.
"""

from keras import ops

from tfcyclegan.config import GAN_MODES


def _f32(x):
    return ops.cast(x, "float32")


class AdversarialLoss:
    """The adversarial loss for one `gan_mode`: `lsgan`, `vanilla` or `hinge`.

    Both methods take the discriminator's raw outputs (logits, one per patch)
    and return a float32 scalar averaged over the batch and all patches.
    """

    def __init__(self, gan_mode="lsgan"):
        if gan_mode not in GAN_MODES:
            raise ValueError(
                f"`gan_mode` must be one of {list(GAN_MODES)}. Received: gan_mode={gan_mode!r}"
            )
        self.gan_mode = gan_mode

    def generator_loss(self, fake_logits):
        """What a generator minimises: its fakes judged real."""
        fake = _f32(fake_logits)
        if self.gan_mode == "lsgan":
            return ops.mean(ops.square(fake - 1.0))
        if self.gan_mode == "vanilla":
            return ops.mean(_bce_with_logits(fake, 1.0))
        return -ops.mean(fake)

    def discriminator_loss(self, real_logits, fake_logits):
        """What a discriminator minimises, halved: reals judged real, fakes fake."""
        real, fake = self.discriminator_terms(real_logits, fake_logits)
        return 0.5 * (real + fake)

    def discriminator_terms(self, real_logits, fake_logits):
        """The two terms of `discriminator_loss`, not halved: `(real, fake)`.

        pix2pix reports them apart (the reference's `D_real`, `D_fake`).
        """
        real, fake = _f32(real_logits), _f32(fake_logits)
        if self.gan_mode == "lsgan":
            return ops.mean(ops.square(real - 1.0)), ops.mean(ops.square(fake))
        if self.gan_mode == "vanilla":
            return ops.mean(_bce_with_logits(real, 1.0)), ops.mean(_bce_with_logits(fake, 0.0))
        return ops.mean(ops.relu(1.0 - real)), ops.mean(ops.relu(1.0 + fake))

    def __repr__(self):
        return f"AdversarialLoss({self.gan_mode!r})"


def _bce_with_logits(logits, target):
    # Stable form of -[t log s(z) + (1 - t) log(1 - s(z))].
    return ops.relu(logits) - logits * target + ops.log1p(ops.exp(-ops.abs(logits)))


def l1(a, b):
    """Mean absolute error in float32: the cycle (eq. 2) and identity losses."""
    return ops.mean(ops.abs(_f32(a) - _f32(b)))
