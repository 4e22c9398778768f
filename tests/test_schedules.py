import keras
import numpy as np
import pytest

from tfcyclegan.schedules import LinearDecay


def test_constant_then_linear_to_zero():
    schedule = LinearDecay(2e-4, constant_steps=100, decay_steps=100)
    rates = np.array([float(schedule(step)) for step in range(0, 230)])
    np.testing.assert_allclose(rates[:100], 2e-4)
    np.testing.assert_allclose(rates[100], 2e-4 * 100 / 101, rtol=1e-6)
    np.testing.assert_allclose(rates[199], 2e-4 / 101, rtol=1e-5)
    assert (rates[200:] == 0).all()
    assert (np.diff(rates[99:201]) < 0).all()


def test_per_epoch_updates_match_the_reference_lambda_rule():
    # Reference: lr = base * (1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1))
    # for 0-based epoch, stepped once per epoch.
    steps_per_epoch, n_epochs, n_decay = 7, 5, 4
    schedule = LinearDecay(1.0, n_epochs * steps_per_epoch, n_decay * steps_per_epoch,
                           update_every=steps_per_epoch)
    for epoch in range(n_epochs + n_decay):
        expected = 1 - max(0, epoch + 1 - n_epochs) / (n_decay + 1)
        for step in range(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch):
            assert float(schedule(step)) == pytest.approx(expected, abs=1e-7)


def test_serializes_and_drives_an_optimizer():
    schedule = LinearDecay(1e-3, 2, 3)
    clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert clone.get_config() == schedule.get_config()
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    optimizer.iterations.assign(3)  # as a restored checkpoint would
    assert float(optimizer.learning_rate) == pytest.approx(1e-3 * (1 - 2 / 4))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"initial_learning_rate": 0, "constant_steps": 1, "decay_steps": 1}, "initial_learning_rate=0"),
        ({"initial_learning_rate": 1, "constant_steps": -1, "decay_steps": 1}, "constant_steps=-1"),
        ({"initial_learning_rate": 1, "constant_steps": 1, "decay_steps": 1.5}, "decay_steps=1.5"),
        ({"initial_learning_rate": 1, "constant_steps": 3, "decay_steps": 4, "update_every": 2},
         "constant_steps=3, decay_steps=4, update_every=2"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LinearDecay(**kwargs)
