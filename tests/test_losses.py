import numpy as np
import pytest

from tfcyclegan.losses import AdversarialLoss, l1

REAL = np.array([[0.9, 1.2], [-0.3, 2.0]], "float32")
FAKE = np.array([[0.1, -0.5], [0.4, -2.0]], "float32")


def _bce(z, t):
    s = 1 / (1 + np.exp(-z.astype("float64")))
    return -(t * np.log(s) + (1 - t) * np.log(1 - s))


@pytest.mark.parametrize(
    "mode, generator, discriminator",
    [
        ("lsgan", np.mean((FAKE - 1) ** 2), 0.5 * (np.mean((REAL - 1) ** 2) + np.mean(FAKE**2))),
        ("vanilla", np.mean(_bce(FAKE, 1)), 0.5 * (np.mean(_bce(REAL, 1)) + np.mean(_bce(FAKE, 0)))),
        ("hinge", -np.mean(FAKE),
         0.5 * (np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE)))),
    ],
)
def test_adversarial_losses_match_their_formulas(mode, generator, discriminator):
    loss = AdversarialLoss(mode)
    np.testing.assert_allclose(float(loss.generator_loss(FAKE)), generator, rtol=1e-6)
    np.testing.assert_allclose(float(loss.discriminator_loss(REAL, FAKE)), discriminator, rtol=1e-6)


def test_vanilla_is_stable_for_large_logits():
    loss = AdversarialLoss("vanilla")
    value = float(loss.discriminator_loss(np.array([100.0], "float32"), np.array([-100.0], "float32")))
    assert value == pytest.approx(0.0, abs=1e-6)
    assert np.isfinite(float(loss.generator_loss(np.array([-200.0], "float32"))))


def test_float16_inputs_give_float32_losses():
    loss = AdversarialLoss("lsgan")
    assert loss.generator_loss(FAKE.astype("float16")).dtype == "float32"
    assert l1(FAKE.astype("float16"), REAL).dtype == "float32"


def test_l1_is_the_mean_absolute_error():
    assert float(l1(REAL, FAKE)) == pytest.approx(np.mean(np.abs(REAL - FAKE)))


def test_unknown_mode_is_named():
    with pytest.raises(ValueError, match="gan_mode='wgan'"):
        AdversarialLoss("wgan")
