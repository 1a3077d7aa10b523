import numpy as np
import pytest

from corex_edu import gaussian
from corex_edu.errors import ConfigurationError


def test_identity_covariance_has_zero_tc():
    for d in (1, 2, 5, 50):
        assert gaussian.total_correlation(np.eye(d)) == pytest.approx(0.0, abs=1e-12)


def test_diagonal_covariance_has_zero_tc():
    assert gaussian.total_correlation(np.diag([0.1, 4.0, 9.0])) == pytest.approx(0.0, abs=1e-12)


def test_correlated_pair_rho_09():
    tc = gaussian.total_correlation(gaussian.correlated_pair(0.9))
    assert round(tc, 3) == 0.830
    assert tc == pytest.approx(-0.5 * np.log(1 - 0.81), rel=1e-12)


def test_tc_is_scale_invariant():
    covariance = gaussian.correlated_pair(0.6)
    scale = np.diag([3.0, 0.2])
    assert gaussian.total_correlation(scale @ covariance @ scale) == pytest.approx(gaussian.total_correlation(covariance), rel=1e-12)


def test_entropy_of_univariate_gaussian():
    assert gaussian.entropy([[4.0]]) == pytest.approx(0.5 * np.log(2 * np.pi * np.e * 4.0), rel=1e-12)


def test_tc_equals_sum_of_marginal_entropies_minus_joint():
    rng = np.random.default_rng(0)
    factor = rng.standard_normal((4, 4))
    covariance = factor @ factor.T + np.eye(4)
    expected = gaussian.marginal_entropies(covariance).sum() - gaussian.entropy(covariance)
    assert gaussian.total_correlation(covariance) == pytest.approx(expected, rel=1e-10)


def test_mutual_information_of_pair_equals_tc():
    covariance = gaussian.correlated_pair(-0.7)
    assert gaussian.mutual_information(covariance, [0], [1]) == pytest.approx(gaussian.total_correlation(covariance), rel=1e-12)


def test_mutual_information_rejects_overlapping_sets():
    with pytest.raises(ConfigurationError, match="overlap"):
        gaussian.mutual_information(np.eye(3), [0, 1], [1, 2])


def test_invalid_covariances_are_rejected():
    with pytest.raises(ConfigurationError, match="positive definite"):
        gaussian.total_correlation(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ConfigurationError, match="symmetric"):
        gaussian.total_correlation(np.array([[1.0, 0.5], [0.1, 1.0]]))
    with pytest.raises(ConfigurationError, match="square"):
        gaussian.entropy(np.ones((2, 3)))
    with pytest.raises(ConfigurationError, match="NaN"):
        gaussian.entropy(np.array([[np.nan]]))
    with pytest.raises(ConfigurationError, match="rho"):
        gaussian.correlated_pair(1.0)


def test_factor_posterior_encoder_explains_all_tc():
    # Drawing z from the exact posterior p(s | x) makes (x, z) distributed like (x, s), so
    # TC(x | z) = TC(z) = 0 and the CorEx objective equals TC(x).
    model = gaussian.FactorModel.random(observed=9, factors=3, noise_variance=0.5, seed=3)
    w, psi_inverse = model.loadings, np.diag(1.0 / model.noise_variance)
    posterior_covariance = np.linalg.inv(np.eye(3) + w.T @ psi_inverse @ w)
    weights = posterior_covariance @ w.T @ psi_inverse
    assert np.allclose(posterior_covariance, np.diag(np.diag(posterior_covariance)))  # each x loads on one factor
    terms = gaussian.linear_encoder_decomposition(model.covariance, weights, np.diag(posterior_covariance))
    assert terms.tc_x_given_z == pytest.approx(0.0, abs=1e-9)
    assert terms.tc_z == pytest.approx(0.0, abs=1e-9)
    assert terms.corex_objective == pytest.approx(model.total_correlation(), rel=1e-9)


def test_noisier_encoder_explains_less():
    model = gaussian.FactorModel.random(observed=6, factors=2, seed=1)
    weights = np.linalg.pinv(model.loadings)
    sharp = gaussian.linear_encoder_decomposition(model.covariance, weights, [0.1, 0.1])
    blurred = gaussian.linear_encoder_decomposition(model.covariance, weights, [10.0, 10.0])
    assert blurred.tc_explained < sharp.tc_explained
    assert sharp.corex_objective <= sharp.tc_x + 1e-12


def test_factor_model_samples_match_covariance():
    model = gaussian.FactorModel.random(observed=4, factors=2, seed=0)
    samples = model.sample(200_000, seed=1)
    assert np.allclose(np.cov(samples, rowvar=False), model.covariance, atol=0.05)


def test_factor_model_rejects_bad_shapes():
    with pytest.raises(ConfigurationError, match="noise_variance"):
        gaussian.FactorModel(np.ones((3, 1)), np.ones(2))
    with pytest.raises(ConfigurationError, match="factors"):
        gaussian.FactorModel.random(observed=2, factors=3)
