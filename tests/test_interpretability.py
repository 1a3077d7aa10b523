import numpy as np
import pytest

from corex_edu.errors import ConfigurationError
from corex_edu.interpretability import attribute_information, plug_in_information, quantile_bins


def test_quantile_bins_equal_counts():
    values = np.random.default_rng(0).normal(size=(1000, 2))
    binned = quantile_bins(values, 10)
    for column in range(2):
        assert np.all(np.bincount(binned[:, column], minlength=10) == 100)


def test_plug_in_matches_direct_formula():
    rng = np.random.default_rng(1)
    binned = rng.integers(0, 4, size=(500, 1))
    attributes = (rng.random((500, 1)) < 0.3).astype(float)
    joint = np.zeros((4, 2))
    np.add.at(joint, (binned[:, 0], attributes[:, 0].astype(int)), 1)
    joint /= joint.sum()
    product = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    mask = joint > 0
    expected = (joint[mask] * np.log(joint[mask] / product[mask])).sum()
    assert plug_in_information(binned, attributes, 4)[0, 0] == pytest.approx(expected, abs=1e-12)


def test_deterministic_attribute_gives_entropy():
    rng = np.random.default_rng(2)
    attribute = (rng.random(4000) < 0.5).astype(float)
    latent = attribute + 0.01 * rng.normal(size=4000)
    scores = attribute_information(latent[:, None], attribute[:, None], ["a"], bins=20)
    entropy = -(attribute.mean() * np.log(attribute.mean()) + (1 - attribute.mean()) * np.log(1 - attribute.mean()))
    # Only the one bin that straddles the boundary mixes both values.
    assert scores.information[0, 0] == pytest.approx(entropy, abs=0.03)
    assert scores.normalised[0, 0] == pytest.approx(1.0, abs=0.04)


def test_gaussian_channel_information():
    # z = a + noise with a in {0, 1}: I(z : a) is known by numerical integration of the mixture.
    rng = np.random.default_rng(3)
    n = 20000
    attribute = (rng.random(n) < 0.5).astype(float)
    latent = attribute + rng.normal(size=n)
    grid = np.linspace(-6, 7, 20001)
    density0 = np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi)
    density1 = np.exp(-0.5 * (grid - 1) ** 2) / np.sqrt(2 * np.pi)
    mixture = 0.5 * (density0 + density1)
    step = grid[1] - grid[0]
    truth = 0.5 * (np.sum(density0 * np.log(density0 / mixture)) + np.sum(density1 * np.log(density1 / mixture))) * step
    scores = attribute_information(latent[:, None], attribute[:, None], ["a"], bins=20)
    assert scores.information[0, 0] == pytest.approx(truth, abs=0.015)


def test_unrelated_latent_near_zero():
    rng = np.random.default_rng(4)
    attributes = rng.random((2000, 3)) < 0.2
    scores = attribute_information(rng.normal(size=(2000, 4)), attributes, ["a", "b", "c"], bins=20)
    assert scores.information.max() < 0.01
    assert scores.shuffled_mean < 0.01


def test_best_attribute_and_gap():
    rng = np.random.default_rng(5)
    attributes = rng.random((3000, 2)) < 0.5
    latent = attributes[:, 1] + 0.3 * rng.normal(size=3000)
    scores = attribute_information(latent[:, None], attributes, ["first", "second"], bins=20)
    best, share, gap = scores.best(0)
    assert best == "second"
    assert gap == pytest.approx(share - scores.normalised[0, 0])
    assert gap > 0.3


@pytest.mark.parametrize(
    "latent, attributes, names, bins, message",
    [
        (np.zeros((10, 2)), np.zeros((9, 1)), ["a"], 2, "share N"),
        (np.zeros((10, 2)), np.zeros((10, 1)), ["a", "b"], 2, "names"),
        (np.zeros((10, 2)), np.full((10, 1), 2), ["a"], 2, "binary"),
        (np.zeros((10, 2)), np.zeros((10, 1)), ["a"], 5, "bins"),
        (np.full((10, 2), np.nan), np.zeros((10, 1)), ["a"], 2, "NaN"),
    ],
)
def test_invalid_inputs_rejected(latent, attributes, names, bins, message):
    with pytest.raises(ConfigurationError, match=message):
        attribute_information(latent, attributes, names, bins=bins)
